//! Session directories left behind by a cgrepro that was killed (SIGKILL, OOM, power cut
//! of a container): found and removed when the next session starts.
//!
//! Every session directory holds an `owner` file naming the process that made it: its pid
//! and its start time (field 22 of `/proc/<pid>/stat`, so a recycled pid is not mistaken
//! for the owner). A directory whose owner is gone is stale. Directories without an owner
//! file are never touched: a session kept with `--keep` drops its owner file on purpose,
//! and other programs' `cgrepro-*` directories are not ours to judge.

use std::fs;
use std::path::{Path, PathBuf};

/// The file naming a session directory's owner.
pub const OWNER_FILE: &str = "owner";

/// A stale session directory that was removed, and whose it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub dir: PathBuf,
    pub pid: u32,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed stale session directory {} (its cgrepro, pid {}, is gone)",
            self.dir.display(),
            self.pid
        )
    }
}

/// `"<pid> <start time>\n"` of the calling process.
pub fn owner_record() -> String {
    let pid = std::process::id();
    format!("{pid} {}\n", start_time(pid).unwrap_or(0))
}

/// The start time of `pid` in clock ticks since boot, if it is running (a zombie — killed,
/// not yet reaped — is not).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last ')'. The state (field 3) is the first after it, field 22 the 20th.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(rest.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

/// Whether the process a record names is still running (same pid, same start time).
fn alive(record: &str) -> Option<(u32, bool)> {
    let mut it = record.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    Some((pid, start_time(pid) == Some(start)))
}

/// Remove the `cgrepro-*` session directories in `scratch` whose owner is gone.
pub fn sweep(scratch: &Path) -> Vec<Removed> {
    let Ok(rd) = fs::read_dir(scratch) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let dir = e.path();
        let is_session = e.file_name().to_string_lossy().starts_with("cgrepro-")
            && e.file_type().is_ok_and(|t| t.is_dir());
        if !is_session {
            continue;
        }
        let Ok(record) = fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        if let Some((pid, false)) = alive(&record) {
            super::session::remove_tree(&dir);
            if !dir.exists() {
                removed.push(Removed { dir, pid });
            }
        }
    }
    removed.sort_by(|a, b| a.dir.cmp(&b.dir));
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_whose_owner_is_gone_is_removed_and_a_live_ones_is_kept() {
        let scratch = tempfile::tempdir().unwrap();
        let live = scratch.path().join("cgrepro-live");
        let dead = scratch.path().join("cgrepro-dead");
        let kept = scratch.path().join("cgrepro-kept");
        for d in [&live, &dead, &kept] {
            fs::create_dir_all(d.join("cases/0/work")).unwrap();
        }
        fs::write(live.join(OWNER_FILE), owner_record()).unwrap();
        // Our own pid with another start time: the pid was recycled, the owner is gone.
        let pid = std::process::id();
        fs::write(dead.join(OWNER_FILE), format!("{pid} 1\n")).unwrap();
        let removed = sweep(scratch.path());
        assert_eq!(
            removed,
            vec![Removed {
                dir: dead.clone(),
                pid
            }]
        );
        assert!(live.exists() && kept.exists() && !dead.exists());
    }

    #[test]
    fn a_killed_but_unreaped_owner_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(start_time(pid).is_some());
        child.kill().unwrap();
        // Not reaped yet: a zombie, which owns nothing any more.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while start_time(pid).is_some() {
            assert!(std::time::Instant::now() < deadline, "{pid} still alive");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
    }
}
