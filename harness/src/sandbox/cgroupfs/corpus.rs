//! Op sequences as data (`fixtures/fidelity/*.toml`), and running them on a [`Model`].
//! The fidelity check runs the same sequences on the real kernel and compares results.
//!
//! Ops: `mkdir`, `rmdir`, `write` (open O_WRONLY + one write), `shellwrite` (open
//! O_WRONLY|O_CREAT|O_TRUNC + one write, what `echo v > f` does), `read`, `attach` (write
//! the helper's pid to `<path>/cgroup.procs`), `unlink`. A result is `ok`, an errno name,
//! `open <errno>` when the open failed, or `ok <content>` for reads.

use serde::Deserialize;

use super::model::{Model, ROOT};
use crate::fault::errno_label as errno_name;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusOp {
    pub op: String,
    /// Relative to the hierarchy's directory; `{g}` is the throwaway group.
    pub path: String,
    #[serde(default)]
    pub value: Option<String>,
    /// Why this op is in the corpus (documentation only).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    /// Hierarchy key: `memory`, `cpu`, `cpuset`, `pids`, `freezer`, `devices`, `blkio`,
    /// `systemd` (name=systemd), `unified` (cgroup2).
    pub hierarchy: String,
    pub op: Vec<CorpusOp>,
}

/// `path` with `{g}` and `{pid}` filled in.
pub fn fill(s: &str, g: &str, pid: u32) -> String {
    s.replace("{g}", g).replace("{pid}", &pid.to_string())
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", path),
    }
}

/// Run one op on the model; `path` is relative to /sys/fs/cgroup, already filled.
pub fn on_model(m: &mut Model, op: &str, path: &str, value: Option<&str>, pid: u32) -> String {
    let res = |r: Result<(), i32>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => errno_name(e),
    };
    let parent_of = |m: &Model, p: &str| m.resolve(split(p).0);
    match op {
        // The mount point itself.
        "rmdir" if path.is_empty() => errno_name(libc::EBUSY),
        "mkdir" | "rmdir" | "unlink" => {
            let Some(parent) = parent_of(m, path) else {
                return errno_name(libc::ENOENT);
            };
            let name = split(path).1;
            res(match op {
                "mkdir" => m.mkdir(parent, name).map(|_| ()),
                "rmdir" => m.rmdir(parent, name),
                _ => m.unlink(parent, name),
            })
        }
        "read" => {
            let Some(ino) = m.resolve(path) else {
                return format!("open {}", errno_name(libc::ENOENT));
            };
            if let Err(e) = m.open(ino, false) {
                return format!("open {}", errno_name(e));
            }
            match m.read(ino) {
                Ok(b) => format!("ok {}", String::from_utf8_lossy(&b)),
                Err(e) => errno_name(e),
            }
        }
        "write" | "shellwrite" | "attach" => {
            let (path, value) = if op == "attach" {
                (format!("{path}/cgroup.procs"), pid.to_string())
            } else {
                (path.to_owned(), value.unwrap_or("").to_owned())
            };
            let ino = match m.resolve(&path) {
                Some(i) => i,
                None if op == "shellwrite" => {
                    let Some(parent) = parent_of(m, &path) else {
                        return format!("open {}", errno_name(libc::ENOENT));
                    };
                    return match m.create(parent, split(&path).1) {
                        Ok(_) => "ok".into(),
                        Err(e) => format!("open {}", errno_name(e)),
                    };
                }
                None => return format!("open {}", errno_name(libc::ENOENT)),
            };
            if let Err(e) = m.open(ino, true) {
                return format!("open {}", errno_name(e));
            }
            match m.write(ino, value.as_bytes(), pid) {
                Ok(_) => "ok".into(),
                Err(e) => errno_name(e),
            }
        }
        other => format!("unknown op {other}"),
    }
}

/// The model's root inode (for callers that walk it).
pub const MODEL_ROOT: u64 = ROOT;
