//! The evidence a case produces: how the target ended ([`Exit`]), its output
//! ([`Captured`]), its cgroupfs [`Effects`], what the syscall layer did
//! ([`SupervisorStats`]), all gathered in one [`Observed`].
//!
//! The sandbox fills these; `outcome` classifies them and `report` renders them. Like
//! `crate::fault`, this module sits below both, so neither needs the sandbox.

mod effects;
mod syscalls;

pub use effects::Effects;
pub use syscalls::{EndReason, SupervisorStats};

use std::path::PathBuf;
use std::time::Duration;

use crate::fault::{FaultHit, FaultId};

/// The target's wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    Code(i32),
    Signal { signal: i32, core_dumped: bool },
}

impl Exit {
    pub fn from_raw(st: i32) -> Exit {
        if libc::WIFSIGNALED(st) {
            Exit::Signal {
                signal: libc::WTERMSIG(st),
                core_dumped: libc::WCOREDUMP(st),
            }
        } else {
            Exit::Code(libc::WEXITSTATUS(st))
        }
    }
}

/// Bytes of one output stream: the last [`Captured::LIMIT`] bytes, and how many there were.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub tail: Vec<u8>,
    pub total: u64,
}

impl Captured {
    pub const LIMIT: usize = 64 * 1024;

    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * Self::LIMIT {
            let cut = self.tail.len() - Self::LIMIT;
            self.tail.drain(..cut);
        }
    }

    pub fn text(&self) -> String {
        let start = self.tail.len().saturating_sub(Self::LIMIT);
        String::from_utf8_lossy(&self.tail[start..]).into_owned()
    }
}

/// Everything observed while a case ran: the raw material of an [`crate::outcome::Outcome`].
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub exit: Option<Exit>,
    pub timed_out: bool,
    pub interrupted: bool,
    /// The sandbox could not be set up: what failed.
    pub setup_error: Option<String>,
    pub stdout: Captured,
    pub stderr: Captured,
    /// Lines the target wrote on the driver channel.
    pub channel: Vec<String>,
    /// Processes still running when the target exited (killed by the harness).
    pub leftovers: u32,
    pub effects: Effects,
    /// Which cgroupfs the case got (`None`: it never ran).
    pub cgroupfs: Option<CgroupfsKind>,
    /// The cgroupfs model's op log, one line per operation (empty with the tree).
    pub cgroupfs_ops: Vec<String>,
    pub duration: Duration,
    /// Where the case was kept (`--keep`).
    pub kept: Option<PathBuf>,
    /// What the syscall layer did (faults fired, refusals).
    pub syscalls: Option<SupervisorStats>,
    /// The faults routed to the cgroupfs model (the others went to the syscall layer).
    pub model_faults: Vec<FaultId>,
    /// The calls the cgroupfs model's faults fired on (the syscall layer's are in
    /// [`SupervisorStats::faults_fired`]).
    pub model_hits: Vec<FaultHit>,
    /// The host's systemd answered on the case's sockets.
    pub systemd: bool,
}

/// Which cgroupfs a case got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupfsKind {
    /// The FUSE model (default where FUSE works).
    #[default]
    Model,
    /// Plain files on an overlay (no semantics).
    Tree,
}

impl CgroupfsKind {
    pub fn name(self) -> &'static str {
        match self {
            CgroupfsKind::Model => "model",
            CgroupfsKind::Tree => "tree",
        }
    }
}
