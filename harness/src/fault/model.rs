//! Faults the cgroupfs model applies, as a scenario states them: an errno, a delay, a
//! short write or a corrupted read, by operation and path glob, on every / the nth / every
//! after the nth matching call. The model (`sandbox::cgroupfs::faults`) realises them.
//!
//! Same op names, glob rules (`*` does not cross `/`, `**` does) and counting (per fault,
//! from 1, over matching calls) as the syscall faults ([`super::SyscallFault`]). Paths are
//! relative to /sys/fs/cgroup; a glob given as an absolute `/sys/fs/cgroup/...` path is
//! accepted too. Converting a `SyscallFault` whose path is under /sys/fs/cgroup is a
//! field-by-field copy ([`ModelFault::new`]).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    Open,
    Read,
    Write,
    Mkdir,
    Rmdir,
}

impl FaultOp {
    pub fn parse(s: &str) -> Option<FaultOp> {
        Some(match s {
            "open" => FaultOp::Open,
            "read" => FaultOp::Read,
            "write" => FaultOp::Write,
            "mkdir" => FaultOp::Mkdir,
            "rmdir" => FaultOp::Rmdir,
            _ => return None,
        })
    }
}

/// Which matching calls fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultWhen {
    Always,
    Nth(u64),
    After(u64),
}

/// What a fired fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    Errno(i32),
    /// Hold the caller: the operation takes effect when it arrives, and its answer
    /// reaches the caller this much later. Only the caller waits: the server answers
    /// other calls meanwhile (see `server`).
    Delay(Duration),
    /// A write accepts only this many bytes (and the model applies only those).
    Short(usize),
    /// A read returns this content instead.
    Corrupt(String),
}

#[derive(Debug, Clone)]
pub struct ModelFault {
    pub op: FaultOp,
    pub glob: String,
    pub when: FaultWhen,
    pub action: FaultAction,
}

impl ModelFault {
    pub fn new(op: FaultOp, glob: &str, when: FaultWhen, action: FaultAction) -> ModelFault {
        ModelFault {
            op,
            glob: glob.to_owned(),
            when,
            action,
        }
    }
}
