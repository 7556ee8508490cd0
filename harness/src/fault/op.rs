//! The operations a fault names, and which of their calls it fires on.

use std::str::FromStr;

use super::FaultError;

/// A filesystem operation, as a scenario names it. Each maps to the syscalls that
/// perform it (see [`Op::syscalls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Open,
    Read,
    Write,
    Mkdir,
    Rmdir,
    Unlink,
    Rename,
    Statfs,
    Stat,
    Truncate,
    Chmod,
    Chown,
    Readdir,
    Mount,
}

impl Op {
    pub const ALL: &'static [Op] = &[
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Mkdir,
        Op::Rmdir,
        Op::Unlink,
        Op::Rename,
        Op::Statfs,
        Op::Stat,
        Op::Truncate,
        Op::Chmod,
        Op::Chown,
        Op::Readdir,
        Op::Mount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Statfs => "statfs",
            Op::Stat => "stat",
            Op::Truncate => "truncate",
            Op::Chmod => "chmod",
            Op::Chown => "chown",
            Op::Readdir => "readdir",
            Op::Mount => "mount",
        }
    }

    /// The x86_64 syscalls that perform this operation (and that the filter must send to
    /// the supervisor when a fault names it).
    pub fn syscalls(self) -> &'static [&'static str] {
        match self {
            Op::Open => &["open", "openat", "openat2", "creat"],
            Op::Read => &["read", "pread64", "readv", "preadv", "preadv2"],
            Op::Write => &["write", "pwrite64", "writev", "pwritev", "pwritev2"],
            Op::Mkdir => &["mkdir", "mkdirat"],
            Op::Rmdir => &["rmdir", "unlinkat"],
            Op::Unlink => &["unlink", "unlinkat"],
            Op::Rename => &["rename", "renameat", "renameat2"],
            Op::Statfs => &["statfs", "fstatfs"],
            Op::Stat => &["stat", "lstat", "fstat", "newfstatat", "statx"],
            Op::Truncate => &["truncate", "ftruncate"],
            Op::Chmod => &["chmod", "fchmod", "fchmodat", "fchmodat2"],
            Op::Chown => &["chown", "fchown", "lchown", "fchownat"],
            Op::Readdir => &["getdents", "getdents64"],
            Op::Mount => &["mount"],
        }
    }
}

impl FromStr for Op {
    type Err = FaultError;
    fn from_str(s: &str) -> Result<Op, FaultError> {
        Op::ALL
            .iter()
            .copied()
            .find(|op| op.name() == s)
            .ok_or_else(|| {
                FaultError::Bad(format!(
                    "unknown op `{s}`; known: {}",
                    Op::ALL
                        .iter()
                        .map(|o| o.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// Which matching calls a fault fires on. Calls are counted per fault, from 1, over the
/// calls whose op and path match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    Always,
    /// Only the nth matching call.
    Nth(u64),
    /// Every matching call after the first n.
    After(u64),
    /// Each matching call with probability `p`, from a splitmix64 stream seeded by `seed`:
    /// the same sequence of matching calls gives the same hits.
    Probability {
        p: f64,
        seed: u64,
    },
}

impl When {
    /// Whether the `when` can be met: nth counts from 1, a probability is in [0, 1].
    pub fn check(self) -> Result<(), FaultError> {
        match self {
            When::Nth(0) => Err(FaultError::Bad("nth call counts from 1".into())),
            When::Probability { p, .. } if !(0.0..=1.0).contains(&p) => Err(FaultError::Bad(
                format!("probability {p} is not between 0 and 1"),
            )),
            _ => Ok(()),
        }
    }

    /// `always`, `call 3 only`, `every call after 2`, `with probability 0.5 (seed 7)`.
    pub fn describe(self) -> String {
        match self {
            When::Always => "always".to_string(),
            When::Nth(n) => format!("call {n} only"),
            When::After(n) => format!("every call after {n}"),
            When::Probability { p, seed } => format!("with probability {p} (seed {seed})"),
        }
    }
}
