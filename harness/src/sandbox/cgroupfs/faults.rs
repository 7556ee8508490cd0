//! Operation faults the model applies: an errno, a delay, a short write or a corrupted
//! read, by operation and path glob, on every / the nth / every after the nth matching call.
//!
//! This is the model's side of the syscall layer's `SyscallFault` (branch `seccomp`,
//! `sandbox/syscall/fault.rs`): same op names, same glob rules (`*` does not cross `/`,
//! `**` does), same counting (per fault, from 1, over matching calls). Paths here are
//! relative to /sys/fs/cgroup; a glob given as an absolute `/sys/fs/cgroup/...` path is
//! accepted too. Converting a `SyscallFault` whose path is under /sys/fs/cgroup is a
//! field-by-field copy ([`ModelFault::new`]).

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

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

pub(crate) struct FaultSet {
    rules: Vec<(ModelFault, Option<GlobMatcher>, u64)>,
    /// Delays fired by the current call, for the server to hold its answer.
    held: Duration,
}

impl FaultSet {
    pub fn new(faults: Vec<ModelFault>) -> FaultSet {
        FaultSet {
            rules: faults
                .into_iter()
                .map(|f| {
                    let g = f
                        .glob
                        .trim_start_matches("/sys/fs/cgroup")
                        .trim_start_matches('/');
                    let m = GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .ok()
                        .map(|g| g.compile_matcher());
                    (f, m, 0)
                })
                .collect(),
            held: Duration::ZERO,
        }
    }

    /// The delay the last call's faults asked for (then zero again).
    pub fn take_delay(&mut self) -> Duration {
        std::mem::take(&mut self.held)
    }

    /// The first fault that fires for this call. Delays add up in [`FaultSet::take_delay`]
    /// (nothing sleeps here, under the model's lock) and the search goes on, so a delay
    /// and an errno can combine.
    pub fn fire(&mut self, op: FaultOp, path: &str) -> Option<FaultAction> {
        for (f, m, n) in &mut self.rules {
            if f.op != op || !m.as_ref().is_some_and(|m| m.is_match(path)) {
                continue;
            }
            *n += 1;
            let hit = match f.when {
                FaultWhen::Always => true,
                FaultWhen::Nth(k) => *n == k,
                FaultWhen::After(k) => *n > k,
            };
            if !hit {
                continue;
            }
            match &f.action {
                FaultAction::Delay(d) => self.held += *d,
                a => return Some(a.clone()),
            }
        }
        None
    }
}
