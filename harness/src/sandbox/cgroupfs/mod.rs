//! A live cgroupfs: the case's `/sys/fs/cgroup` served over FUSE by an in-memory model
//! with the simulated kernel's semantics, and an op log of everything the target did.
//!
//! * [`model`]: the tree and its rules (built from the same host data as the plain tree:
//!   `host::tree::{topology, files_for}` and the content faults), value parsing in
//!   [`values`], operation faults in [`faults`]. Pure, testable without FUSE.
//! * [`shared`]: the FUSE side: one connection per session, each case given a bind of
//!   its own directory; [`server`]: the filesystem itself (fuser 0.18), and the fallback
//!   of a FUSE mount per case on kernels older than 6.15 (the case's init mounts it).
//! * the op log: [`LogEntry`], rendered one line per op in the snapshot.

pub mod corpus;
pub mod faults;
pub mod model;
pub mod pids;
pub mod server;
pub mod shared;
pub mod values;

pub use crate::evidence::CgroupfsKind;
pub use model::{AnyPid, Model, Pids};

/// One operation on the cgroupfs, as the op log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOp {
    /// A name that was looked up and does not exist (consecutive repeats folded).
    Lookup,
    Mkdir,
    Rmdir,
    /// An open that failed (successful opens show up as their read or write).
    Open,
    OpenWrite,
    /// open(O_CREAT) of a name that does not exist.
    Create,
    Unlink,
    Read,
    Write,
    /// A D-Bus call to the simulated systemd, or its signal (`path` holds the whole line;
    /// see `crate::systemd`).
    Dbus,
    /// A fork or clone refused by a `pids.max` (path: the task's group).
    Fork,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub op: LogOp,
    /// Relative to /sys/fs/cgroup.
    pub path: String,
    /// The written value.
    pub value: Option<String>,
    pub result: Result<(), i32>,
}

pub use crate::fault::errno_label as errno_name;

impl LogEntry {
    /// `write memory/x/memory.limit_in_bytes "268435456" -> ok`.
    pub fn line(&self) -> String {
        if self.op == LogOp::Dbus {
            return format!("dbus {}", self.path);
        }
        let op = match self.op {
            LogOp::Lookup => "lookup",
            LogOp::Mkdir => "mkdir",
            LogOp::Rmdir => "rmdir",
            LogOp::Open => "open",
            LogOp::OpenWrite => "open(w)",
            LogOp::Create => "create",
            LogOp::Unlink => "unlink",
            LogOp::Read => "read",
            LogOp::Write => "write",
            LogOp::Dbus => "dbus",
            LogOp::Fork => "fork",
        };
        let mut s = format!("{op} {}", self.path);
        if let Some(v) = &self.value {
            let v = if v.len() > 80 {
                {
                    let mut n = 80;
                    while !v.is_char_boundary(n) {
                        n -= 1;
                    }
                    format!("{}…", &v[..n])
                }
            } else {
                v.clone()
            };
            s += &format!(" {v:?}");
        }
        match self.result {
            Ok(()) => s += " -> ok",
            Err(e) => s += &format!(" -> {}", errno_name(e)),
        }
        s
    }
}
