//! Making a subprocess see the simulated host, and nothing else.
//!
//! A [`Session`] owns one temporary directory per harness run, where every distinct host
//! is materialized once. Each case's `/sys/fs/cgroup` is, by default, the live
//! [`cgroupfs`] model served over FUSE (kernel semantics, an op log, model faults); with
//! `[host] cgroupfs = "tree"` it is a copy-on-write layer (overlayfs) over the host's
//! plain tree, whose upper layer is the case's cgroupfs effects ([`effects`]). The
//! [`syscall`] layer (seccomp user notification) answers uname/statfs and /proc reads as
//! the simulated kernel would, injects syscall faults and refuses real cgroup mounts.
//! [`Session::run`] starts the process chain of [`spawn`] (own mount, PID, network, UTS,
//! IPC, cgroup and user namespaces; the real cgroup mounts detached; a fresh procfs with
//! the simulated /proc views bound over it; a private /run and /tmp; the machine's file
//! system read-only, see [`readonly`]) and supervises it: output capture, the driver
//! channel, timeout escalation, Ctrl-C ([`interrupt`]). Nothing outlives a case: the
//! namespaces die with init, and the case directory is removed when the case is done
//! (unless kept for inspection); [`stale`] removes what a killed run left.
//!
//! What a case produces is [`crate::evidence`]; the faults it is given are
//! [`crate::fault`]'s vocabulary, realised here.

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
pub mod template;

pub use crate::evidence::{Captured, Effects, Exit, Observed};
pub use session::{probe, CaseError, PerCaseReason, Session, SessionError, SANDBOX_DEVICES};
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
    /// Faults on operations: [`crate::fault::route`] gives those on /sys/fs/cgroup files
    /// to the cgroupfs model when it serves the case (so its op log shows them), the rest
    /// to the syscall layer.
    pub faults: Vec<crate::fault::Fault>,
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
