//! The fault vocabulary: what a scenario can ask the simulated kernel to get wrong, the
//! one engine that decides which calls a fault fires on, and the errno names every layer
//! prints.
//!
//! A [`Fault`] (a scenario's `[[fault]]` with an `op`, or one the sweep injects) names an
//! operation, a path glob, an [`Effect`] (errno, short write, corrupted read) and/or a
//! delay, and [`When`] it fires; its [`FaultId`] is its number in the case. [`route`]
//! decides which layer of the sandbox applies it: the cgroupfs model (faults on
//! /sys/fs/cgroup files it serves, so its op log shows them) or the syscall layer. Both
//! layers match and count calls with the same [`engine::Rules`], and report the
//! [`FaultHit`]s the report prints by fault id.
//!
//! This module depends on nothing else in the crate, so the flow scenario → host →
//! sandbox → outcome → report stays one-way.

pub mod engine;
pub mod errno;
pub mod op;

use std::time::Duration;

pub use errno::{errno_label, errno_name, parse_errno};
pub use op::{Op, When};

/// A fault's number in its case, from 1, in the order of the scenario's `[[fault]]` blocks
/// with an `op` (a fault the sweep injects comes after them).
pub type FaultId = u32;

/// A fault on an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub id: FaultId,
    pub op: Op,
    /// Glob over the path as the target names it (made absolute against its cwd or
    /// directory fd, `.`/`..` folded, symlinks not followed; for fd-based syscalls the
    /// path of the fd). `*` does not cross `/`, `**` does.
    pub path: String,
    /// What the call does instead; `None` for a pure delay (the call then proceeds).
    pub effect: Option<Effect>,
    /// Hold the call this long before answering (other calls keep being served).
    pub delay: Option<Duration>,
    pub when: When,
}

/// What a fired fault does to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Fail with this errno.
    Errno(i32),
    /// A write accepts only this many bytes (cgroupfs model only).
    Short(usize),
    /// A read returns this content instead (cgroupfs model only).
    Corrupt(String),
}

impl Effect {
    /// `EINVAL`, `short write of 3 bytes`, `corrupted read "max"`.
    pub fn describe(&self) -> String {
        match self {
            Effect::Errno(e) => errno_name(*e).to_owned(),
            Effect::Short(1) => "short write of 1 byte".to_string(),
            Effect::Short(n) => format!("short write of {n} bytes"),
            Effect::Corrupt(c) => format!("corrupted read {c:?}"),
        }
    }
}

/// The part of the sandbox that applied a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The seccomp syscall layer (`sandbox::syscall`).
    Syscall,
    /// The cgroupfs model served over FUSE (`sandbox::cgroupfs`).
    Model,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Syscall => "syscall layer",
            Layer::Model => "cgroupfs model",
        }
    }
}

impl Fault {
    /// Short writes and corrupted reads exist only in the cgroupfs model.
    pub fn needs_model(&self) -> bool {
        matches!(self.effect, Some(Effect::Short(_) | Effect::Corrupt(_)))
    }

    /// `#1 write /sys/fs/cgroup/**/memory.max -> EINVAL, always, delay 10ms`.
    pub fn describe(&self) -> String {
        let mut s = format!("#{} {} {}", self.id, self.op.name(), self.path);
        if let Some(e) = &self.effect {
            s.push_str(&format!(" -> {}", e.describe()));
        }
        s.push_str(&format!(", {}", self.when.describe()));
        if let Some(d) = self.delay {
            s.push_str(&format!(", delay {}", humantime::format_duration(d)));
        }
        s
    }
}

/// One call a fault fired on, as the layer that applied it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultHit {
    pub fault: FaultId,
    pub layer: Layer,
    pub op: Op,
    /// The syscall that was faulted (`openat`), or the model's operation (`write`).
    pub syscall: &'static str,
    pub path: String,
    /// What the call did instead; `None` for a pure delay.
    pub effect: Option<Effect>,
    /// Which matching call this was (1-based, counted per fault).
    pub call: u64,
    /// Thread id of the caller in the supervisor's pid namespace (0: not known, as in the
    /// cgroupfs model).
    pub pid: u32,
}

impl FaultHit {
    /// `#1 openat /sys/fs/cgroup/x/memory.max -> EINVAL (call 2, syscall layer)`.
    pub fn describe(&self) -> String {
        self.describe_calls(self.call, self.call)
    }

    /// The same line for a run of calls `first..=last` of this hit's kind
    /// (`calls 1–10`).
    fn describe_calls(&self, first: u64, last: u64) -> String {
        let what = self
            .effect
            .as_ref()
            .map_or_else(|| "delayed".to_string(), Effect::describe);
        let calls = if first == last {
            format!("call {first}")
        } else {
            format!("calls {first}–{last}")
        };
        format!(
            "#{} {} {} -> {what} ({calls}, {})",
            self.fault,
            self.syscall,
            self.path,
            self.layer.name()
        )
    }

    /// Whether `next` is the call after this one, of the same fault, site and effect.
    fn continued_by(&self, next: &FaultHit) -> bool {
        next.call == self.call + 1
            && next.fault == self.fault
            && next.layer == self.layer
            && next.syscall == self.syscall
            && next.path == self.path
            && next.effect == self.effect
    }
}

/// One line per run of consecutive calls a fault fired on at one site: a retry loop that
/// meets the same fault ten times reads as `(calls 1–10, ...)`, not as ten lines.
pub fn describe_hits<'a>(hits: impl IntoIterator<Item = &'a FaultHit>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut run: Option<(&FaultHit, &FaultHit)> = None;
    for h in hits {
        run = match run {
            Some((first, last)) if last.continued_by(h) => Some((first, h)),
            Some((first, last)) => {
                lines.push(first.describe_calls(first.call, last.call));
                Some((h, h))
            }
            None => Some((h, h)),
        };
    }
    if let Some((first, last)) = run {
        lines.push(first.describe_calls(first.call, last.call));
    }
    lines
}

/// The operations the cgroupfs model applies faults to.
const MODEL_OPS: [Op; 5] = [Op::Open, Op::Read, Op::Write, Op::Mkdir, Op::Rmdir];

/// A case's faults, by the layer that applies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routed {
    pub model: Vec<Fault>,
    pub syscall: Vec<Fault>,
}

/// Which faults the cgroupfs model applies (when it serves the case: `model`) and which
/// the syscall layer does. The model takes short writes and corrupted reads, and the
/// faults on /sys/fs/cgroup files of the ops it serves whose effect is one errno or one
/// delay (counted per fault, always / nth / after); the syscall layer takes the rest.
pub fn route(faults: &[Fault], model: bool) -> Result<Routed, FaultError> {
    let mut r = Routed::default();
    for f in faults {
        if f.needs_model() {
            if !model {
                return Err(FaultError::NeedsModel);
            }
            r.model.push(f.clone());
            continue;
        }
        let one_effect = f.effect.is_some() != f.delay.is_some();
        let counted = !matches!(f.when, When::Probability { .. });
        if model
            && f.path.starts_with("/sys/fs/cgroup/")
            && MODEL_OPS.contains(&f.op)
            && counted
            && one_effect
        {
            r.model.push(f.clone());
        } else {
            r.syscall.push(f.clone());
        }
    }
    Ok(r)
}

/// A fault that cannot be stated or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    #[error("unknown errno `{0}`: expected a name like EINVAL or ENOSPC, or a number")]
    UnknownErrno(String),
    #[error("bad path glob `{pattern}`: {why}")]
    BadGlob { pattern: String, why: String },
    #[error("fault: {0}")]
    Bad(String),
    #[error(
        "short-write and corrupted-read faults need the cgroupfs model \
         ([host] cgroupfs = \"model\", root, /dev/fuse)"
    )]
    NeedsModel,
}

#[cfg(test)]
mod tests;
