//! What the syscall layer did during a case: notifications answered, faults fired,
//! refusals. The supervisor (`sandbox::syscall`) fills it; reports read it.

use std::collections::BTreeMap;

use crate::fault::FaultHit;

/// Why supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndReason {
    /// Still running (a snapshot).
    #[default]
    Running,
    /// Every process holding the filter is gone (listener POLLHUP).
    Hangup,
    /// `Supervisor::stop` was called.
    Stopped,
    /// No listener fd arrived (the child failed before sending it, or timed out).
    NoListener,
    /// An unexpected error on the listener; see `errors`.
    Error,
}

/// What the supervisor did.
#[derive(Debug, Clone, Default)]
pub struct SupervisorStats {
    pub ended: EndReason,
    /// The pid (supervisor's namespace) of the process that sent the listener, if known.
    pub target_pid: Option<u32>,
    /// Whether `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` is in effect.
    pub sync_wakeup: bool,
    pub notifications: u64,
    pub per_syscall: BTreeMap<&'static str, u64>,
    /// Opens answered with a simulated /proc file.
    pub redirected: u64,
    /// uname/statfs/fstatfs answered with simulated data.
    pub spoofed: u64,
    /// Calls let through to the kernel unchanged.
    pub continued: u64,
    /// Refused attempts to mount a real cgroup filesystem, e.g. "mount cgroup2 on /x".
    pub denied: Vec<String>,
    pub faults_fired: Vec<FaultHit>,
    /// Notifications whose caller was gone before the answer.
    pub gone: u64,
    pub errors: Vec<String>,
}
