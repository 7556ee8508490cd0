//! The session's prepared mount namespace (Root strategy).
//!
//! Every case starts from the same view of the machine: its mounts made private, the real
//! cgroup mounts detached, every other mount of the machine read-only (see
//! [`super::readonly`]). Rather than have each case's init redo those steps (one
//! `umount2` that waits for an RCU grace period and a read-only remount per machine
//! mount), the session prepares them once in a mount namespace of its own, the
//! *template*, held open by an fd. A case's init is then cloned without a mount namespace,
//! enters the template (`setns`) and takes a private copy of it (`unshare(CLONE_NEWNS)`),
//! and adds only what is the case's own: its cgroupfs, its procfs and views, its private
//! tmpfs's, its writable places.
//!
//! The template is a copy of the machine's mount table at the time it was made. When that
//! table changes (a mount added or removed on the machine; [`super::readonly::MountTable`]
//! notices), the next case makes a new template, so a case never sees a stale machine. A
//! file system the machine unmounts stays pinned by the old template until then (the
//! next case, or the end of the session).
//!
//! The private places (/run, /tmp, /dev/shm, /var/tmp, /var/run) are left writable in the
//! template, as they were in a case before its own tmpfs's covered them: the session
//! directory lives below one of them (the case's overlay layers are mounted from there).
//! A session whose directory is elsewhere does without a template.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::readonly::{self, HostMount};
use super::spawn::{self, Step};

/// Why a session's cases build their mount namespace step by step instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("CGREPRO_MOUNT_TEMPLATE=0")]
    Disabled,
    #[error(
        "the session directory {} is not below a place the sandbox makes private \
         ({}): a case mounts its overlay layers from there",
        .0.display(),
        readonly::PRIVATE.map(|(d, _)| d).join(", ")
    )]
    SessionDirElsewhere(PathBuf),
    #[error(transparent)]
    Readonly(#[from] readonly::ReadonlyError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing the template: {step}: {source}")]
    Step {
        step: String,
        #[source]
        source: std::io::Error,
    },
}

/// A prepared mount namespace, and the machine mounts it was made from.
#[derive(Debug)]
pub struct MountTemplate {
    ns: OwnedFd,
    mounts: Arc<Vec<HostMount>>,
}

impl MountTemplate {
    /// The fd a case's init enters ([`Step::EnterMounts`]).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.ns.as_raw_fd()
    }

    /// Made from exactly this mount table (the same snapshot).
    pub fn made_from(&self, mounts: &Arc<Vec<HostMount>>) -> bool {
        Arc::ptr_eq(&self.mounts, mounts)
    }

    /// Can a session in `session_dir` use a template at all?
    pub fn usable(session_dir: &Path) -> Result<(), TemplateError> {
        if std::env::var_os("CGREPRO_MOUNT_TEMPLATE").is_some_and(|v| v == "0") {
            return Err(TemplateError::Disabled);
        }
        if !readonly::PRIVATE
            .iter()
            .any(|(d, _)| session_dir.starts_with(d))
        {
            return Err(TemplateError::SessionDirElsewhere(session_dir.to_owned()));
        }
        Ok(())
    }

    /// The steps every case of a Root session used to run first, done once: / private,
    /// the real cgroup mounts detached, the machine's mounts read-only but for the
    /// private places (`covered`).
    pub fn make(
        mounts: Arc<Vec<HostMount>>,
        covered: &[&Path],
    ) -> Result<MountTemplate, TemplateError> {
        let mut steps = vec![
            Step::MakePrivate,
            Step::Detach(readonly::cstring(Path::new("/sys/fs/cgroup"))?),
        ];
        steps.extend(readonly::read_only_steps(&mounts, covered)?);
        let io = |what| move |source| TemplateError::Io { what, source };
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe")(e.into()))?;
        let (go_r, go_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe")(e.into()))?;
        // SAFETY: the child runs only spawn::run_steps (raw mount syscalls on the prepared
        // steps, async-signal-safe, no allocation), writes to and reads from its pipes on
        // stack buffers and leaves with _exit: what a post-clone child of a multithreaded
        // process may do.
        let pid = unsafe { spawn::raw_clone(libc::CLONE_NEWNS) };
        if pid == 0 {
            // SAFETY: as above; the fds are this child's copies.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                let report = match spawn::run_steps(&steps) {
                    Ok(()) => [0i32, 0],
                    Err((i, e)) => [i as i32 + 1, e],
                };
                libc::write(ready_w.as_raw_fd(), report.as_ptr().cast(), 8);
                let mut b = 0u8;
                libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        if pid < 0 {
            return Err(io("clone")(std::io::Error::last_os_error()));
        }
        let pid = pid as libc::pid_t;
        drop(ready_w);
        let mut report = [0u8; 8];
        let got = nix::unistd::read(&ready_r, &mut report);
        let result = match got {
            Ok(8) => {
                let step = i32::from_ne_bytes(report[..4].try_into().expect("4 bytes"));
                let errno = i32::from_ne_bytes(report[4..].try_into().expect("4 bytes"));
                if step == 0 {
                    std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
                        .map(OwnedFd::from)
                        .map_err(io("open the template's mount namespace"))
                } else {
                    Err(TemplateError::Step {
                        step: steps[(step - 1) as usize].describe(),
                        source: std::io::Error::from_raw_os_error(errno),
                    })
                }
            }
            Ok(_) => Err(io("the template's child")(std::io::Error::other(
                "exited before it reported",
            ))),
            Err(e) => Err(io("the template's child")(e.into())),
        };
        // Release the child with a byte (a child cloned at the same moment by another
        // harness thread may hold a copy of our write end, so EOF may never come).
        let _ = nix::unistd::write(&go_w, &[1u8]);
        drop(go_w);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        Ok(MountTemplate {
            ns: result?,
            mounts,
        })
    }
}
