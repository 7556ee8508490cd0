//! Differential op fuzzing: seeded cgroupfs op sequences run on the model and on a real
//! kernel (the [`crate::lane`]), compared op by op; every disagreement is minimised (delta
//! debugging) to a short sequence and can be written as a fixture
//! (`fixtures/kernels/disagreements/*.toml`).
//!
//! * [`gen`]: the generator (mkdir/rmdir, reads and writes of every interface file with
//!   valid, boundary and invalid values, moves of live processes, freeze/kill, thread mode,
//!   subtree control, depth/descendant limits), driven by the model's own tree.
//! * [`compare`]: running a sequence on the model, and the normalisations applied to
//!   values that are unstable by nature (each documented there).
//! * [`minimise`]: batched ddmin (every candidate of a round runs in one boot).
//! * [`differential`]: one kernel × mode end to end, and its report.
//! * [`fixture`]: the disagreement fixtures.

pub mod compare;
pub mod differential;
pub mod fixture;
pub mod gen;
pub mod minimise;

use serde::{Deserialize, Serialize};

/// One cgroupfs op. `path` is relative to /sys/fs/cgroup; `{g}` is the sequence's own
/// group name and `{p0}`, `{p1}` … the pids of its helper processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// `mkdir`, `rmdir`, `read`, `write` (open O_WRONLY + one write), `shellwrite`
    /// (O_CREAT|O_TRUNC, what `echo v > f` does), `unlink`.
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Op {
    pub fn new(op: &str, path: impl Into<String>, value: Option<String>) -> Op {
        Op {
            op: op.to_owned(),
            path: path.into(),
            value,
        }
    }

    /// `{g}` filled in.
    pub fn in_group(&self, g: &str) -> Op {
        Op {
            op: self.op.clone(),
            path: self.path.replace("{g}", g),
            value: self.value.clone(),
        }
    }

    /// `write memory/{g}/a/memory.max "1G"`.
    pub fn line(&self) -> String {
        match &self.value {
            Some(v) => format!("{} {} {v:?}", self.op, self.path),
            None => format!("{} {}", self.op, self.path),
        }
    }
}

/// Helper processes per sequence (live processes to move around).
pub const HELPERS: usize = 2;
