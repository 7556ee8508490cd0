//! Where the simulated systemd makes its cgroups: the case's cgroupfs model (its
//! operations then show in the op log, by pid 1 as systemd is), or the plain tree of
//! files the case sees (through its init's root: `/proc/<init>/root/sys/fs/cgroup`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::sandbox::cgroupfs::Model;

/// The cgroupfs as the manager uses it. Paths are relative to /sys/fs/cgroup.
pub trait Cgroups: Send {
    fn exists(&self, path: &str) -> bool;
    fn mkdir(&mut self, path: &str) -> Result<(), i32>;
    fn rmdir(&mut self, path: &str) -> Result<(), i32>;
    fn write(&mut self, path: &str, value: &str) -> Result<(), i32>;
    /// The living processes of the group at `path` and of its descendants (systemd's
    /// `cg_kill_recursive` reads them; not in the op log).
    fn procs(&self, path: &str) -> Vec<u32>;
    /// Send `sig` to a process of the case.
    fn signal(&mut self, pid: u32, sig: i32);
    /// The process exists in the case (not a zombie).
    fn pid_exists(&self, pid: u32) -> bool;
    /// A line of the op log (`StartTransientUnit ...`, without the `dbus ` prefix).
    fn note(&mut self, line: String);
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The cgroupfs model of the case (shared with its FUSE server).
pub struct ModelCgroups(pub Arc<Mutex<Model>>);

impl ModelCgroups {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// systemd is pid 1 of the host.
const SYSTEMD_PID: u32 = 1;

impl Cgroups for ModelCgroups {
    fn exists(&self, path: &str) -> bool {
        self.model().resolve(path).is_some()
    }

    fn mkdir(&mut self, path: &str) -> Result<(), i32> {
        let (parent, name) = split(path);
        let mut m = self.model();
        let p = m.resolve(parent).ok_or(libc::ENOENT)?;
        m.mkdir(p, name).map(|_| ())
    }

    fn rmdir(&mut self, path: &str) -> Result<(), i32> {
        let (parent, name) = split(path);
        let mut m = self.model();
        let p = m.resolve(parent).ok_or(libc::ENOENT)?;
        m.rmdir(p, name)
    }

    fn write(&mut self, path: &str, value: &str) -> Result<(), i32> {
        let mut m = self.model();
        let ino = m.resolve(path).ok_or(libc::ENOENT)?;
        m.write(ino, value.as_bytes(), SYSTEMD_PID).map(|_| ())
    }

    fn procs(&self, path: &str) -> Vec<u32> {
        self.model().procs_below(path)
    }

    fn signal(&mut self, pid: u32, sig: i32) {
        self.model().signal(pid, sig);
    }

    fn pid_exists(&self, pid: u32) -> bool {
        self.model().pid_exists(pid)
    }

    fn note(&mut self, line: String) {
        self.model().note_dbus(line);
    }
}

/// The plain tree the case sees (an overlay: what systemd creates shows in the effects).
/// Its op log holds only the D-Bus lines.
pub struct TreeCgroups {
    pub root: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The case's processes (its procfs, through its init).
    pids: crate::sandbox::cgroupfs::pids::CasePids,
    proc_root: PathBuf,
}

impl TreeCgroups {
    /// The case's /sys/fs/cgroup through its init.
    pub fn of_case(init: libc::pid_t, log: Arc<Mutex<Vec<String>>>) -> TreeCgroups {
        TreeCgroups::new(
            PathBuf::from(format!("/proc/{init}/root/sys/fs/cgroup")),
            log,
            init,
        )
    }

    /// The tree at `root`, with the processes of the PID namespace whose init is `init`.
    pub fn new(root: PathBuf, log: Arc<Mutex<Vec<String>>>, init: libc::pid_t) -> TreeCgroups {
        TreeCgroups {
            root,
            log,
            pids: crate::sandbox::cgroupfs::pids::CasePids::new(init),
            proc_root: PathBuf::from(format!("/proc/{init}/root/proc")),
        }
    }
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Cgroups for TreeCgroups {
    fn exists(&self, path: &str) -> bool {
        self.root.join(path).exists()
    }

    fn mkdir(&mut self, path: &str) -> Result<(), i32> {
        std::fs::create_dir(self.root.join(path)).map_err(errno)
    }

    fn rmdir(&mut self, path: &str) -> Result<(), i32> {
        // A plain directory holds the interface files the tree was made with.
        std::fs::remove_dir_all(self.root.join(path)).map_err(errno)
    }

    fn write(&mut self, path: &str, value: &str) -> Result<(), i32> {
        std::fs::write(self.root.join(path), value).map_err(errno)
    }

    fn procs(&self, path: &str) -> Vec<u32> {
        // The plain tree keeps what was written to each cgroup.procs; those pids still
        // alive in the case are the group's.
        let mut out = Vec::new();
        let mut stack = vec![self.root.join(path)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
            let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok())
                    .filter(|p| self.proc_root.join(p.to_string()).exists()),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn signal(&mut self, pid: u32, sig: i32) {
        use crate::sandbox::cgroupfs::Pids;
        self.pids.signal(pid, sig);
    }

    fn pid_exists(&self, pid: u32) -> bool {
        use crate::sandbox::cgroupfs::Pids;
        self.pids.exists(pid)
    }

    fn note(&mut self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("dbus {line}"));
    }
}
