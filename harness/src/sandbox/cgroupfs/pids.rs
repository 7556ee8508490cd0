//! The case's processes as the model sees them: pids of the case's PID namespace, looked
//! up in the case's own procfs through its init (`/proc/<init>/root/proc`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Model, Pids};
use crate::sandbox::syscall::{CgroupViewOf, ProcCgroup};

pub struct CasePids {
    proc_root: PathBuf,
}

impl CasePids {
    /// `init` is the case's pid 1 as the harness sees it.
    pub fn new(init: libc::pid_t) -> CasePids {
        CasePids {
            proc_root: PathBuf::from(format!("/proc/{init}/root/proc")),
        }
    }
}

impl Pids for CasePids {
    fn exists(&self, pid: u32) -> bool {
        // A zombie still exists for the kernel's cgroup.procs writes? No: a task that has
        // exited is gone from its cgroup; check its state.
        match std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat")) {
            Ok(s) => !s
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    fn kill(&self, pid: u32) {
        self.signal(pid, libc::SIGKILL);
    }

    fn signal(&self, pid: u32, sig: i32) {
        // A /proc/<pid> directory of the case's procfs is a pidfd for pidfd_send_signal
        // (5.1+): the signal reaches the case's pid, not the harness's namesake.
        let Ok(dir) = std::fs::File::open(self.proc_root.join(pid.to_string())) else {
            return;
        };
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal on a pid directory fd we hold open, with no siginfo (a
        // null pointer is allowed) and no flags; it touches no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                dir.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        }
    }

    fn charged(&self, pid: u32) -> bool {
        // Alive or a zombie: either way still in the case's procfs until reaped.
        self.proc_root.join(pid.to_string()).join("stat").exists()
    }

    fn threads(&self, pid: u32) -> Vec<u32> {
        // A process's threads (`/proc/<pid>/task`); a thread id stands for itself.
        if self.tgid(pid) != Some(pid) {
            return vec![pid];
        }
        let mut v: Vec<u32> = std::fs::read_dir(self.proc_root.join(pid.to_string()).join("task"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if v.is_empty() {
            v.push(pid);
        }
        v
    }

    fn ppid(&self, pid: u32) -> Option<u32> {
        // `pid (comm) S ppid ...`: comm may hold spaces and parentheses, so after the last ')'.
        let s = std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat")).ok()?;
        let (_, rest) = s.rsplit_once(')')?;
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    fn all(&self) -> Vec<u32> {
        std::fs::read_dir(&self.proc_root)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn tgid(&self, tid: u32) -> Option<u32> {
        let s =
            std::fs::read_to_string(self.proc_root.join(tid.to_string()).join("status")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// The pid in the case's own PID namespace of a task the harness knows as `pid` (the last
/// `NSpid` of its status), if it is still there.
pub fn case_pid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// The syscall layer's renderer of `/proc/<pid>/cgroup` for a case on the model: the pid
/// translated to the case's PID namespace (as the model records pids), the view rendered
/// by [`Model::proc_cgroup`] from the host's static one.
pub fn proc_cgroup_view(model: Arc<Mutex<Model>>) -> ProcCgroup {
    ProcCgroup(Arc::new(move |of, static_view: &[u8]| {
        let tid = match of {
            CgroupViewOf::CaseNs(p) => p,
            CgroupViewOf::Caller(p) | CgroupViewOf::Supervisor(p) => case_pid(p)?,
        };
        let static_view = std::str::from_utf8(static_view).ok()?;
        let m = model.lock().unwrap_or_else(|e| e.into_inner());
        Some(m.proc_cgroup(tid, static_view).into_bytes())
    }))
}
