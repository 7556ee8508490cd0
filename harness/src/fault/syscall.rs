//! Syscall faults as a scenario states them: errno and/or delay by operation, path glob
//! and when; and the hits the syscall layer reports. The syscall layer
//! (`sandbox::syscall`) realises them.

use std::str::FromStr;
use std::time::Duration;

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

/// A syscall fault (the scenario's `[[fault]]` with an `op`).
#[derive(Debug, Clone, PartialEq)]
pub struct SyscallFault {
    pub op: Op,
    /// Glob over the path as the target names it (made absolute against its cwd or
    /// directory fd, `.`/`..` folded, symlinks not followed; for fd-based syscalls the
    /// path of the fd). `*` does not cross `/`, `**` does.
    pub path: String,
    /// errno to fail with; `None` for a pure delay (the call then proceeds normally).
    pub errno: Option<i32>,
    pub when: When,
    /// Hold the call this long before answering (other calls keep being served).
    pub delay: Option<Duration>,
}

/// One fired fault, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultHit {
    /// Index of the fault in the plan's list.
    pub fault: usize,
    pub op: Op,
    /// The syscall that was failed, e.g. "openat".
    pub syscall: &'static str,
    pub path: String,
    /// errno returned; `None` for a pure delay.
    pub errno: Option<i32>,
    /// Which matching call this was (1-based, counted per fault).
    pub call: u64,
    /// Thread id of the caller, in the supervisor's pid namespace.
    pub pid: u32,
}
