//! Making a subprocess see the simulated host, and nothing else.
//!
//! A [`Session`] owns one temporary directory per harness run: every distinct host is
//! materialized there once, and every case gets a copy-on-write layer (overlayfs) over its
//! host's tree, so the upper layer *is* the list of the case's cgroupfs effects
//! ([`effects`]). [`Session::run`] starts the process chain of [`spawn`] (own mount, PID,
//! network, UTS, IPC, cgroup and user namespaces; the real cgroup mounts detached; a
//! fresh procfs with the simulated /proc views bound over it; a private /run and /tmp) and
//! [`supervise`]s it: output capture, the driver channel, timeout escalation, Ctrl-C.
//! Nothing outlives a case: the namespaces die with init, and the case directory is
//! removed when the case is done (unless kept for inspection).

pub mod cgroupfs;
pub mod effects;
pub mod interrupt;
pub mod readonly;
mod reaper;
mod session;
pub mod spawn;
pub mod stale;
mod supervise;
pub mod syscall;

pub use effects::Effects;
pub use session::{probe, Session, SessionError, SANDBOX_DEVICES};
pub use spawn::Strategy;

use std::path::PathBuf;
use std::time::Duration;

/// What to run in a case's sandbox.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    /// argv, including argv[0].
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Bytes the target reads on stdin (the driver protocol's case JSON), or nothing.
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL on timeout.
    pub grace: Duration,
    /// Leave the case directory (and the session's hosts) on disk.
    pub keep: bool,
    /// Errno/delay faults. Those on /sys/fs/cgroup paths go to the cgroupfs model when
    /// it serves the case (so its op log shows them), the rest to the syscall layer.
    pub syscall_faults: Vec<syscall::SyscallFault>,
    /// Short writes and corrupted reads: the cgroupfs model's own.
    pub cgroupfs_faults: Vec<cgroupfs::ModelFault>,
    /// Directories of the machine the case must still see (read-only) though they lie
    /// below a place the sandbox makes private (/tmp, /var/tmp, /dev/shm, /run): where the
    /// target's binaries are, e.g. a checkout under /tmp.
    pub expose: Vec<PathBuf>,
    /// Faults of the simulated systemd's D-Bus methods (hosts with systemd).
    pub dbus_faults: Vec<crate::systemd::DbusFault>,
    /// Write the target's whole stdout and stderr here too (`stdout.log`, `stderr.log`;
    /// the report keeps only a tail): a run's artifacts directory for the case.
    pub capture: Option<PathBuf>,
}

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
    pub cgroupfs: Option<cgroupfs::CgroupfsKind>,
    /// The cgroupfs model's op log, one line per operation (empty with the tree).
    pub cgroupfs_ops: Vec<String>,
    pub duration: Duration,
    /// Where the case was kept (`--keep`).
    pub kept: Option<PathBuf>,
    /// What the syscall layer did (faults fired, refusals).
    pub syscalls: Option<syscall::SupervisorStats>,
    /// Path globs of the faults the cgroupfs model applied (rather than the syscall layer).
    pub model_faults: Vec<String>,
    /// The host's systemd answered on the case's sockets.
    pub systemd: bool,
}
