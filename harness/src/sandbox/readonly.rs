//! The machine's file system, read-only to the target.
//!
//! A case's mount namespace starts as a copy of the harness's. Before the target runs,
//! init remounts every mount of that copy read-only (`MS_BIND|MS_REMOUNT|MS_RDONLY`: a
//! per-mount flag of *this namespace's* copy; the machine's mounts are not touched) and
//! then mounts the places the target may write, all private to the case:
//!
//! * the sandbox's own: empty tmpfs on `/tmp`, `/var/tmp`, `/dev/shm`, `/run` (and
//!   `/var/run` when it is no link), the simulated `/sys/fs/cgroup` and a fresh `/proc`;
//! * the scenario's `[host] writable` directories: an empty tmpfs owned by the target's
//!   root on each. One that does not exist on the machine is made in a copy-on-write
//!   layer (overlayfs, upper layer in the case directory) over its nearest existing
//!   ancestor, so the machine never sees the directory either.
//!
//! The target cannot undo this: its user namespace does not own the case's mount
//! namespace (see [`super::spawn`]).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::spawn::Step;

/// Where the sandbox mounts its own private, empty tmpfs (with their modes). Only those
/// that exist on the machine are mounted.
pub const PRIVATE: [(&str, &str); 4] = [
    ("/run", "mode=755"),
    ("/tmp", "mode=1777"),
    ("/dev/shm", "mode=1777"),
    ("/var/tmp", "mode=1777"),
];

/// Trees the sandbox replaces with its own mounts: their machine mounts are covered.
const REPLACED: [&str; 2] = ["/proc", "/sys/fs/cgroup"];

/// One mount of the harness's mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub path: PathBuf,
    /// The per-mount flags a read-only remount must keep (a user namespace may not drop
    /// a locked nosuid, nodev or noexec).
    pub keep: libc::c_ulong,
}

/// The harness's mounts, in `/proc/self/mountinfo` order (parents before children).
pub fn host_mounts() -> std::io::Result<Vec<HostMount>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The harness's mount table, read once and again only when it changed: the kernel
/// flags an open `/proc/self/mountinfo` (`POLLPRI`) when a mount is added to or removed
/// from the namespace, so a case pays one `poll` instead of reading and parsing the
/// table, and a mount made on the machine during a session is still made read-only in
/// the next case.
#[derive(Debug)]
pub struct MountTable {
    watch: std::fs::File,
    mounts: std::sync::Mutex<std::sync::Arc<Vec<HostMount>>>,
}

impl MountTable {
    pub fn open() -> std::io::Result<MountTable> {
        // Opened before the first read: a change in between is reported by the next poll.
        let watch = std::fs::File::open("/proc/self/mountinfo")?;
        Ok(MountTable {
            watch,
            mounts: std::sync::Mutex::new(std::sync::Arc::new(host_mounts()?)),
        })
    }

    /// The mounts now.
    pub fn current(&self) -> std::io::Result<std::sync::Arc<Vec<HostMount>>> {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.watch.as_fd(),
            nix::poll::PollFlags::POLLPRI,
        )];
        // Under the lock: two cases that see the change re-read it once each at most.
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        let changed = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO)
            .map_err(std::io::Error::from)?
            > 0;
        if changed {
            *mounts = std::sync::Arc::new(host_mounts()?);
        }
        Ok(std::sync::Arc::clone(&mounts))
    }
}

fn parse_mountinfo(text: &str) -> Vec<HostMount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let path = unescape(fields.nth(4)?);
            let opts = fields.next()?;
            let keep = opts.split(',').fold(0, |acc, o| {
                acc | match o {
                    "nosuid" => libc::MS_NOSUID,
                    "nodev" => libc::MS_NODEV,
                    "noexec" => libc::MS_NOEXEC,
                    _ => 0,
                }
            });
            Some(HostMount {
                path: PathBuf::from(path),
                keep,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(o)) = (b[i], oct) {
            out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The flags to keep when remounting `path`'s mount read-only (from statvfs).
pub fn mount_flags(path: &Path) -> libc::c_ulong {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return 0;
    };
    let mut keep = 0;
    let flags = st.flags();
    if flags.contains(FsFlags::ST_NOSUID) {
        keep |= libc::MS_NOSUID;
    }
    if flags.contains(FsFlags::ST_NODEV) {
        keep |= libc::MS_NODEV;
    }
    if flags.contains(FsFlags::ST_NOEXEC) {
        keep |= libc::MS_NOEXEC;
    }
    keep
}

/// A `[host] writable` directory as the sandbox provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writable {
    /// Below one of the sandbox's private tmpfs: writable already.
    AlreadyPrivate,
    /// Exists on the machine: an empty tmpfs over it.
    Tmpfs(PathBuf),
    /// Does not exist: an overlay over `ancestor` (upper layer in the case directory),
    /// the missing directories made in it, then an empty tmpfs over `path`.
    Overlay { ancestor: PathBuf, path: PathBuf },
}

/// How to provide `path` (absolute and normalized: the scenario parser checked it).
pub fn plan_writable(path: &Path) -> Result<Writable, ReadonlyError> {
    if PRIVATE
        .iter()
        .any(|(d, _)| path.starts_with(d) && path != Path::new(d))
    {
        return Ok(Writable::AlreadyPrivate);
    }
    if path.is_dir() && !path.is_symlink() {
        return Ok(Writable::Tmpfs(path.to_owned()));
    }
    if path.exists() || path.is_symlink() {
        return Err(ReadonlyError::NotADirectory(path.to_owned()));
    }
    let ancestor = path
        .ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"));
    if ancestor == Path::new("/") || ancestor.ancestors().any(|a| a.is_symlink()) {
        return Err(ReadonlyError::NoAncestor {
            path: path.to_owned(),
            ancestor: ancestor.to_owned(),
        });
    }
    Ok(Writable::Overlay {
        ancestor: ancestor.to_owned(),
        path: path.to_owned(),
    })
}

fn under(path: &Path, roots: &[&Path]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// The read-only remounts of the machine's mounts, skipping those the sandbox covers
/// (`covered`: its private places and the overlays' ancestors).
pub fn read_only_steps(
    mounts: &[HostMount],
    covered: &[&Path],
) -> Result<Vec<Step>, ReadonlyError> {
    let replaced: Vec<&Path> = REPLACED.iter().map(Path::new).collect();
    let mut steps = Vec::new();
    let mut seen: Vec<&Path> = Vec::new();
    for m in mounts {
        if under(&m.path, &replaced) || under(&m.path, covered) || seen.contains(&m.path.as_path())
        {
            continue;
        }
        seen.push(&m.path);
        steps.push(Step::ReadOnly {
            target: cstring(&m.path)?,
            keep: m.keep,
        });
    }
    Ok(steps)
}

pub(crate) fn cstring(p: &Path) -> Result<CString, ReadonlyError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| ReadonlyError::Nul(p.to_owned()))
}

/// Why the machine's file system cannot be made read-only to a case as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadonlyError {
    #[error("[host] writable: {} exists on this machine and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "[host] writable: {} does not exist on this machine and its nearest existing \
         ancestor is {}; the sandbox makes a missing writable directory in a \
         copy-on-write layer over an existing directory other than / (and not through a \
         symlink): create its parent on the machine, or choose a path below an existing one",
        path.display(),
        ancestor.display()
    )]
    NoAncestor { path: PathBuf, ancestor: PathBuf },
    #[error("mount point {} has a NUL byte", .0.display())]
    Nul(PathBuf),
}

// TEMPORARY (issue 12): session.rs still reports setup failures as strings; its rewrite
// types them and takes `ReadonlyError` as a source. Remove this then.
impl From<ReadonlyError> for String {
    fn from(e: ReadonlyError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped_and_locked_flags_kept() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    28 27 0:25 / /mnt/a\\040b ro,nosuid,nodev,relatime - tmpfs x ro\n\
                    29 27 0:26 / /srv rw,noexec - tmpfs y rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(
            m,
            vec![
                HostMount {
                    path: "/".into(),
                    keep: 0
                },
                HostMount {
                    path: "/mnt/a b".into(),
                    keep: libc::MS_NOSUID | libc::MS_NODEV
                },
                HostMount {
                    path: "/srv".into(),
                    keep: libc::MS_NOEXEC
                },
            ]
        );
    }

    #[test]
    fn covered_and_replaced_mounts_are_not_remounted() {
        let mounts: Vec<HostMount> = [
            "/",
            "/proc",
            "/sys",
            "/sys/fs/cgroup/memory",
            "/tmp",
            "/tmp/x",
            "/",
            "/var/lib/x",
        ]
        .iter()
        .map(|p| HostMount {
            path: p.into(),
            keep: 0,
        })
        .collect();
        let steps = read_only_steps(&mounts, &[Path::new("/tmp"), Path::new("/var/lib")]).unwrap();
        let targets: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            targets,
            vec!["remount / read-only", "remount /sys read-only"]
        );
    }

    #[test]
    fn writable_paths_are_planned_by_what_exists() {
        assert_eq!(
            plan_writable(Path::new("/tmp/anything")).unwrap(),
            Writable::AlreadyPrivate
        );
        assert_eq!(
            plan_writable(Path::new("/etc")).unwrap(),
            Writable::Tmpfs("/etc".into())
        );
        assert_eq!(
            plan_writable(Path::new("/etc/cgrepro-none/a")).unwrap(),
            Writable::Overlay {
                ancestor: "/etc".into(),
                path: "/etc/cgrepro-none/a".into()
            }
        );
        assert!(plan_writable(Path::new("/cgrepro-none"))
            .unwrap_err()
            .to_string()
            .contains("nearest existing ancestor is /"));
        assert!(plan_writable(Path::new("/etc/hostname"))
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
