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

impl SupervisorStats {
    /// One line on what the layer trapped and how it answered, e.g. `34 calls trapped
    /// (openat 30, statfs 2, uname 2): 5 answered from a /proc view, 2 spoofed, 27 let
    /// through` (`cgrepro replay` prints it: a trap costs ~10 µs, see BENCHMARKS.md).
    pub fn summary(&self) -> String {
        let by: Vec<String> = self
            .per_syscall
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let mut line = format!("{} calls trapped", self.notifications);
        if !by.is_empty() {
            line.push_str(&format!(" ({})", by.join(", ")));
        }
        line.push_str(&format!(
            ": {} answered from a /proc view, {} spoofed, {} let through",
            self.redirected, self.spoofed, self.continued
        ));
        if !self.denied.is_empty() {
            line.push_str(&format!(", {} refused", self.denied.len()));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_each_trapped_syscall_and_each_kind_of_answer() {
        let s = SupervisorStats {
            notifications: 7,
            per_syscall: [("openat", 5), ("uname", 1), ("mount", 1)].into(),
            redirected: 2,
            spoofed: 1,
            continued: 3,
            denied: vec!["mount cgroup2 on /x".into()],
            ..Default::default()
        };
        assert_eq!(
            s.summary(),
            "7 calls trapped (mount 1, openat 5, uname 1): 2 answered from a /proc view, \
             1 spoofed, 3 let through, 1 refused"
        );
    }
}
