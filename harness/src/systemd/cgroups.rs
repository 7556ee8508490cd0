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

    fn note(&mut self, line: String) {
        self.model().note_dbus(line);
    }
}

/// The plain tree the case sees (an overlay: what systemd creates shows in the effects).
/// Its op log holds only the D-Bus lines.
pub struct TreeCgroups {
    pub root: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl TreeCgroups {
    /// The case's /sys/fs/cgroup through its init.
    pub fn of_case(init: libc::pid_t, log: Arc<Mutex<Vec<String>>>) -> TreeCgroups {
        TreeCgroups {
            root: PathBuf::from(format!("/proc/{init}/root/sys/fs/cgroup")),
            log,
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

    fn note(&mut self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("dbus {line}"));
    }
}
