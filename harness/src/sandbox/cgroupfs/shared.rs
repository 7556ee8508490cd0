//! One FUSE connection per session: every case's cgroupfs model served by the same
//! superblock, each case given a bind of its own directory.
//!
//! A per-case FUSE mount costs a superblock per case, and the kernel tears it down when
//! the case's mount namespace dies — slowly, and slowing whatever runs next (measured in
//! BENCHMARKS.md). Here the harness makes one FUSE superblock when the session first
//! needs the model (`fsopen("fuse")`, `fsconfig`, `fsmount`: a *detached* mount, never
//! attached anywhere on the machine), serves it from a few threads (fuser's
//! `n_threads` with `clone_fd`, so two cases never queue behind each other), and gives
//! each case a detached clone of its own directory (`open_tree(OPEN_TREE_CLONE)`) that
//! the case's init moves onto its /sys/fs/cgroup (`move_mount`, [`crate::sandbox::spawn::Step::MoveMount`]).
//! A case that ends drops a bind mount; the superblock stays. When the session ends the
//! mount's last fd is closed, the superblock goes, and the kernel aborts the connection.
//!
//! Cloning a subtree of a detached `fsmount` mount needs Linux 6.15; on older kernels
//! [`Shared::start`] fails with [`SharedError::DetachedClone`] and the session falls back
//! to a FUSE mount per case (module `server`).
//!
//! The connection belongs to the harness's PID namespace, so requests carry the
//! harness's pids: the one place the model needs the caller's pid (a write of `0` to a
//! procs file) translates it to the case's namespace (`server::Fs::caller`).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, INodeNo, SessionACL};

use super::model::Model;
use super::server::{self, Cases, Fs};

// Constants of the new mount API (linux/mount.h), which libc does not carry.
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `move_mount` flag: the source is the fd itself.
pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Threads reading the connection: cases on other threads never wait for a busy one
/// (a `delay` fault answers from a thread of its own anyway).
const THREADS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("cannot open /dev/fuse: {0}")]
    Device(io::Error),
    #[error("cannot make the session's FUSE mount ({step}): {source}")]
    Mount {
        step: &'static str,
        source: io::Error,
    },
    #[error(
        "this kernel cannot clone a directory of a detached mount \
         (open_tree(OPEN_TREE_CLONE) on an fsmount mount needs Linux 6.15): {0}"
    )]
    DetachedClone(io::Error),
    #[error("FUSE handshake: {0}")]
    Handshake(io::Error),
    #[error("cannot start the FUSE threads: {0}")]
    Thread(io::Error),
    #[error("cannot clone case {slot}'s directory of the session's FUSE mount: {source}")]
    Clone { slot: u32, source: io::Error },
}

struct Inner {
    cases: Arc<Cases>,
    notifier: fuser::Notifier,
}

/// The session's FUSE connection and its serving threads.
pub struct Shared {
    inner: Arc<Inner>,
    /// The detached mount (the superblock's only mount outside the cases' clones).
    mount: Option<OwnedFd>,
    next: AtomicU32,
    thread: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// `fsconfig(fd, FSCONFIG_SET_STRING, key, value)`, or `SET_FLAG` without a value.
fn fsconfig(fd: &OwnedFd, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    let (cmd, v) = match value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: fsconfig reads the two NUL-terminated strings (or none) and changes only
    // the fs context behind `fd`, which we own.
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, fd.as_raw_fd(), cmd, key.as_ptr(), v, 0) };
    if r < 0 {
        return Err(last_err());
    }
    Ok(())
}

/// An fd the kernel just returned, owned.
fn owned(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(last_err());
    }
    // SAFETY: a new fd from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

impl Shared {
    /// Make the session's FUSE mount (detached), check that this kernel can clone its
    /// directories, and start serving. Files are owned by `owner` (host ids).
    pub fn start(owner: (u32, u32)) -> Result<Shared, SharedError> {
        let device = server::open_device().map_err(SharedError::Device)?;
        let mount_err = |step| move |source| SharedError::Mount { step, source };
        // SAFETY: fsopen reads a NUL-terminated name and returns a new fd.
        let fsfd = owned(unsafe { libc::syscall(libc::SYS_fsopen, c"fuse".as_ptr(), 1u32) })
            .map_err(mount_err("fsopen"))?;
        let num = |n: u32| CString::new(n.to_string()).expect("digits");
        let fd_num = num(device.as_raw_fd() as u32);
        fsconfig(&fsfd, c"source", Some(c"cgrepro")).map_err(mount_err("fsconfig source"))?;
        fsconfig(&fsfd, c"fd", Some(&fd_num)).map_err(mount_err("fsconfig fd"))?;
        fsconfig(&fsfd, c"rootmode", Some(c"40000")).map_err(mount_err("fsconfig rootmode"))?;
        fsconfig(&fsfd, c"user_id", Some(&num(owner.0))).map_err(mount_err("fsconfig user_id"))?;
        fsconfig(&fsfd, c"group_id", Some(&num(owner.1)))
            .map_err(mount_err("fsconfig group_id"))?;
        fsconfig(&fsfd, c"allow_other", None).map_err(mount_err("fsconfig allow_other"))?;
        // SAFETY: creates the superblock of the context we own (FUSE_INIT is queued, not
        // waited for).
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        if r < 0 {
            return Err(mount_err("fsconfig create")(last_err()));
        }
        // SAFETY: returns a new fd for a detached mount of the superblock just made.
        let mount = owned(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fsfd.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            )
        })
        .map_err(mount_err("fsmount"))?;
        drop(fsfd);
        // Before 6.15 a detached fsmount mount cannot be cloned: find out now, on the root
        // (no FUSE request needed), so the session can fall back to a mount per case.
        clone_tree(&mount, c"").map_err(SharedError::DetachedClone)?;

        let cases = Arc::new(Cases::default());
        let fs = Fs::new(Arc::clone(&cases), true, owner);
        let config = {
            let mut c = Config::default();
            c.acl = SessionACL::All;
            c.n_threads = Some(THREADS);
            c.clone_fd = true;
            c
        };
        let session = fuser::Session::from_fd(fs, device, SessionACL::All, config)
            .map_err(SharedError::Handshake)?;
        let notifier = session.notifier();
        let thread = std::thread::Builder::new()
            .name("cgroupfs-shared".into())
            .spawn(move || session.run())
            .map_err(SharedError::Thread)?;
        Ok(Shared {
            inner: Arc::new(Inner { cases, notifier }),
            mount: Some(mount),
            next: AtomicU32::new(1),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Serve `model` as a new case directory; returns it with a detached clone of that
    /// directory for the case's init to move onto /sys/fs/cgroup.
    pub fn attach(&self, model: Model) -> Result<(Attached, OwnedFd), SharedError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed);
        let model = Arc::new(Mutex::new(model));
        self.inner
            .cases
            .models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot, Arc::clone(&model));
        let attached = Attached {
            slot,
            model,
            inner: Arc::clone(&self.inner),
        };
        let mount = self
            .mount
            .as_ref()
            .expect("mounted while the session lives");
        let name = CString::new(slot.to_string()).expect("digits");
        let tree =
            clone_tree(mount, &name).map_err(|source| SharedError::Clone { slot, source })?;
        Ok((attached, tree))
    }

    /// The connection's number in /sys/fs/fuse/connections (the minor of its device).
    pub fn connection(&self) -> Option<u32> {
        let mount = self.mount.as_ref()?;
        nix::sys::stat::fstat(mount)
            .ok()
            .map(|st| nix::sys::stat::minor(st.st_dev) as u32)
    }

    /// How many cases the connection serves right now (tests: none after a run).
    pub fn serving(&self) -> usize {
        self.inner
            .cases
            .models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// `open_tree(mount, path, OPEN_TREE_CLONE)`: a detached bind of `path` below `mount`.
fn clone_tree(mount: &OwnedFd, path: &CStr) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    // SAFETY: open_tree reads a NUL-terminated path and returns a new fd.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, mount.as_raw_fd(), path.as_ptr(), flags) })
}

impl Drop for Shared {
    /// Close the mount: once the cases' clones are gone too (the session's reaper waited
    /// for their namespaces), the superblock goes and the kernel aborts the connection,
    /// which ends the serving threads.
    fn drop(&mut self) {
        drop(self.mount.take());
        let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

/// One case's model on the session's connection.
pub struct Attached {
    slot: u32,
    model: Arc<Mutex<Model>>,
    inner: Arc<Inner>,
}

impl Attached {
    pub fn model(&self) -> &Arc<Mutex<Model>> {
        &self.model
    }

    /// After the case: stop serving its directory and drop the kernel's cached entries
    /// below it (else the dentries of 10,000 cases stay in the dcache until memory
    /// pressure reclaims them). Hands back the model.
    pub fn finish(self) -> Arc<Mutex<Model>> {
        Arc::clone(&self.model)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.inner
            .cases
            .models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.slot);
        let _ = self
            .inner
            .notifier
            .inval_entry(INodeNo(1), std::ffi::OsStr::new(&self.slot.to_string()));
    }
}
