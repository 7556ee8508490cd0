//! Syscall faults: errno and/or delay by operation, path glob and when.

use std::str::FromStr;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

use super::SyscallError;

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
    type Err = SyscallError;
    fn from_str(s: &str) -> Result<Op, SyscallError> {
        Op::ALL
            .iter()
            .copied()
            .find(|op| op.name() == s)
            .ok_or_else(|| {
                SyscallError::BadFault(format!(
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

#[derive(Debug)]
pub(crate) struct CompiledFault {
    pub fault: SyscallFault,
    pub glob: GlobMatcher,
}

impl CompiledFault {
    pub fn new(f: &SyscallFault) -> Result<CompiledFault, SyscallError> {
        let glob = GlobBuilder::new(&f.path)
            .literal_separator(true)
            .build()
            .map_err(|e| SyscallError::BadGlob {
                pattern: f.path.clone(),
                why: e.kind().to_string(),
            })?
            .compile_matcher();
        match f.when {
            When::Nth(0) => return Err(SyscallError::BadFault("nth call counts from 1".into())),
            When::Probability { p, .. } if !(0.0..=1.0).contains(&p) => {
                return Err(SyscallError::BadFault(format!(
                    "probability {p} is not between 0 and 1"
                )))
            }
            _ => {}
        }
        if f.errno.is_none() && f.delay.is_none() {
            return Err(SyscallError::BadFault(format!(
                "fault on {} `{}` has neither errno nor delay",
                f.op.name(),
                f.path
            )));
        }
        Ok(CompiledFault {
            fault: f.clone(),
            glob,
        })
    }
}

/// Per-fault counters and random streams, owned by the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct FaultState {
    pub count: u64,
    rng: SplitMix64,
}

impl FaultState {
    pub fn new(f: &SyscallFault) -> FaultState {
        let seed = match f.when {
            When::Probability { seed, .. } => seed,
            _ => 0,
        };
        FaultState {
            count: 0,
            rng: SplitMix64(seed),
        }
    }

    /// Count one matching call and say whether the fault fires on it.
    pub fn fires(&mut self, when: When) -> bool {
        self.count += 1;
        match when {
            When::Always => true,
            When::Nth(n) => self.count == n,
            When::After(n) => self.count > n,
            When::Probability { p, .. } => self.rng.next_f64() < p,
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, deterministic, good enough for fault dice.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("ESRCH", libc::ESRCH),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("ENOEXEC", libc::ENOEXEC),
    ("EBADF", libc::EBADF),
    ("ECHILD", libc::ECHILD),
    ("EAGAIN", libc::EAGAIN),
    ("EWOULDBLOCK", libc::EWOULDBLOCK),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("ENOTBLK", libc::ENOTBLK),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("EXDEV", libc::EXDEV),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ENFILE", libc::ENFILE),
    ("EMFILE", libc::EMFILE),
    ("ENOTTY", libc::ENOTTY),
    ("ETXTBSY", libc::ETXTBSY),
    ("EFBIG", libc::EFBIG),
    ("ENOSPC", libc::ENOSPC),
    ("ESPIPE", libc::ESPIPE),
    ("EROFS", libc::EROFS),
    ("EMLINK", libc::EMLINK),
    ("EPIPE", libc::EPIPE),
    ("EDOM", libc::EDOM),
    ("ERANGE", libc::ERANGE),
    ("EDEADLK", libc::EDEADLK),
    ("ENAMETOOLONG", libc::ENAMETOOLONG),
    ("ENOLCK", libc::ENOLCK),
    ("ENOSYS", libc::ENOSYS),
    ("ENOTEMPTY", libc::ENOTEMPTY),
    ("ELOOP", libc::ELOOP),
    ("ENOMSG", libc::ENOMSG),
    ("EIDRM", libc::EIDRM),
    ("ENODATA", libc::ENODATA),
    ("ETIME", libc::ETIME),
    ("ENOLINK", libc::ENOLINK),
    ("EPROTO", libc::EPROTO),
    ("EBADMSG", libc::EBADMSG),
    ("EOVERFLOW", libc::EOVERFLOW),
    ("EILSEQ", libc::EILSEQ),
    ("EUSERS", libc::EUSERS),
    ("ENOTSOCK", libc::ENOTSOCK),
    ("EMSGSIZE", libc::EMSGSIZE),
    ("EPROTONOSUPPORT", libc::EPROTONOSUPPORT),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("ENOTSUP", libc::ENOTSUP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
    ("EADDRINUSE", libc::EADDRINUSE),
    ("EADDRNOTAVAIL", libc::EADDRNOTAVAIL),
    ("ENETDOWN", libc::ENETDOWN),
    ("ENETUNREACH", libc::ENETUNREACH),
    ("ECONNABORTED", libc::ECONNABORTED),
    ("ECONNRESET", libc::ECONNRESET),
    ("ENOBUFS", libc::ENOBUFS),
    ("EISCONN", libc::EISCONN),
    ("ENOTCONN", libc::ENOTCONN),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("ECONNREFUSED", libc::ECONNREFUSED),
    ("EHOSTUNREACH", libc::EHOSTUNREACH),
    ("EALREADY", libc::EALREADY),
    ("EINPROGRESS", libc::EINPROGRESS),
    ("ESTALE", libc::ESTALE),
    ("EDQUOT", libc::EDQUOT),
    ("ECANCELED", libc::ECANCELED),
    ("EOWNERDEAD", libc::EOWNERDEAD),
    ("ENOTRECOVERABLE", libc::ENOTRECOVERABLE),
    ("ENOMEDIUM", libc::ENOMEDIUM),
    ("EMEDIUMTYPE", libc::EMEDIUMTYPE),
    ("ENOKEY", libc::ENOKEY),
    ("EKEYEXPIRED", libc::EKEYEXPIRED),
    ("EKEYREVOKED", libc::EKEYREVOKED),
    ("EKEYREJECTED", libc::EKEYREJECTED),
    ("ERFKILL", libc::ERFKILL),
    ("EHWPOISON", libc::EHWPOISON),
];

/// Parse an errno name ("EINVAL", case-insensitive) or a positive number ("22").
pub fn parse_errno(s: &str) -> Result<i32, SyscallError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..4096).contains(&n) {
            return Ok(n);
        }
    }
    ERRNOS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(t))
        .map(|(_, e)| *e)
        .ok_or_else(|| SyscallError::UnknownErrno(s.to_string()))
}

/// The canonical name of an errno ("EINVAL"), or "E?" when unknown.
pub fn errno_name(e: i32) -> &'static str {
    ERRNOS
        .iter()
        .find(|(_, v)| *v == e)
        .map(|(n, _)| *n)
        .unwrap_or("E?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos() {
        assert_eq!(parse_errno("EINVAL").unwrap(), libc::EINVAL);
        assert_eq!(parse_errno("enospc").unwrap(), libc::ENOSPC);
        assert_eq!(parse_errno("13").unwrap(), libc::EACCES);
        assert!(parse_errno("EWHAT").is_err());
        assert_eq!(errno_name(libc::EBUSY), "EBUSY");
        assert_eq!(errno_name(libc::EAGAIN), "EAGAIN");
    }

    #[test]
    fn when_counts() {
        let f = |when| SyscallFault {
            op: Op::Write,
            path: "/x".into(),
            errno: Some(libc::EIO),
            when,
            delay: None,
        };
        let run = |when: When| {
            let mut s = FaultState::new(&f(when));
            (0..6).map(|_| s.fires(when)).collect::<Vec<_>>()
        };
        assert_eq!(run(When::Nth(3)), [false, false, true, false, false, false]);
        assert_eq!(
            run(When::After(4)),
            [false, false, false, false, true, true]
        );
        assert_eq!(run(When::Always), [true; 6]);
        let p = When::Probability { p: 0.5, seed: 42 };
        assert_eq!(run(p), run(p), "same seed, same hits");
        let p2 = When::Probability { p: 0.5, seed: 43 };
        let many = |when: When| {
            let mut s = FaultState::new(&f(when));
            (0..64).map(|_| s.fires(when)).collect::<Vec<_>>()
        };
        assert_ne!(many(p), many(p2));
        let hits = many(p).iter().filter(|b| **b).count();
        assert!((16..48).contains(&hits), "{hits}");
    }

    #[test]
    fn globs() {
        let c = CompiledFault::new(&SyscallFault {
            op: Op::Write,
            path: "/sys/fs/cgroup/**/memory.max".into(),
            errno: Some(libc::EINVAL),
            when: When::Always,
            delay: None,
        })
        .unwrap();
        assert!(c.glob.is_match("/sys/fs/cgroup/a/b/memory.max"));
        assert!(c.glob.is_match("/sys/fs/cgroup/memory.max"));
        assert!(!c.glob.is_match("/sys/fs/cgroup/a/memory.high"));
        let c = CompiledFault::new(&SyscallFault {
            op: Op::Write,
            path: "/tmp/*.txt".into(),
            errno: Some(libc::EINVAL),
            when: When::Always,
            delay: None,
        })
        .unwrap();
        assert!(!c.glob.is_match("/tmp/a/b.txt"));
        assert!(c.glob.is_match("/tmp/b.txt"));
    }
}
