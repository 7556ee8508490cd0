//! Opening a target's path from inside the case's user namespace.
//!
//! Under the userns strategy the case's cgroupfs model is a FUSE mount made in the case's
//! user namespace, and FUSE serves only tasks of that namespace or below (`allow_other`
//! on a mount in a user namespace, `fuse_allow_current_process`): the supervisor, in the
//! machine's user namespace, gets `EACCES` for any lookup below /sys/fs/cgroup, root or
//! not. [`open_in_root`] does such a lookup in a short-lived child that first joins the
//! case's user namespace: a vfork-style clone (`CLONE_VM|CLONE_VFORK|CLONE_FILES`, so no
//! copy of the harness's memory, and the fd it opens lands in the harness's fd table) may
//! `setns` into a user namespace, being a thread group of its own with its own `fs`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::c_int;

use super::supervisor::{OpenHow, RESOLVE_IN_ROOT};

/// What the child is given and what it answers; lives on the supervisor's stack while
/// the supervisor thread is suspended (CLONE_VFORK).
struct Job {
    userns: RawFd,
    root: CString,
    rel: CString,
    /// The O_PATH fd, or -errno.
    fd: c_int,
    /// `fstatfs` of it, as a task the FUSE mount serves sees it.
    statfs: libc::statfs,
}

/// `abs` (absolute, as the target sees it) opened O_PATH inside the target's root, by a
/// task of the user namespace `userns` (the case's), and the file system's statfs as the
/// target would see it; or the errno.
pub(super) fn open_in_root(
    userns: &OwnedFd,
    pid: u32,
    abs: &[u8],
) -> Result<(OwnedFd, libc::statfs), i32> {
    let bad = |_| libc::EINVAL;
    let rel = abs.strip_prefix(b"/").unwrap_or(abs);
    let mut job = Job {
        userns: userns.as_raw_fd(),
        root: CString::new(format!("/proc/{pid}/root")).map_err(bad)?,
        rel: CString::new(if rel.is_empty() { b"." } else { rel }).map_err(bad)?,
        fd: -libc::EIO,
        // SAFETY: statfs is plain old data; all-zero is a valid value.
        statfs: unsafe { std::mem::zeroed() },
    };
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the child runs `child` on the top of `stack` (16-byte aligned, within the
    // Vec) with a pointer to `job`; both outlive it: CLONE_VFORK suspends this thread
    // until the child has exited. The child makes only raw syscalls (see `child`).
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        let top = ((top as usize) & !15) as *mut libc::c_void;
        libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD,
            (&mut job as *mut Job).cast(),
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    let mut st: c_int = 0;
    // SAFETY: waitpid on our own child, writing into a live int.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    if job.fd < 0 {
        return Err(-job.fd);
    }
    // SAFETY: the child opened this fd in our fd table (CLONE_FILES) and nothing else
    // knows its number.
    Ok((unsafe { OwnedFd::from_raw_fd(job.fd) }, job.statfs))
}

extern "C" fn child(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` is the suspended parent's live `Job` (CLONE_VM|CLONE_VFORK); only this
    // child touches it until it exits. Everything here is a raw syscall on `job`'s C
    // strings and plain data: async-signal-safe, no allocation, no lock.
    unsafe {
        let job = &mut *(arg as *mut Job);
        let err = || {
            -std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        // Into the namespace, as its root: FUSE refuses requests from ids the mount's
        // namespace cannot name (EOVERFLOW), such as the machine's root. Raw syscalls:
        // glibc's wrappers would signal the harness's other threads. An id change makes
        // the memory non-dumpable, and the memory is the harness's (CLONE_VM): restored.
        let dumpable = libc::prctl(libc::PR_GET_DUMPABLE);
        let joined = libc::setns(job.userns, libc::CLONE_NEWUSER) == 0
            && libc::syscall(libc::SYS_setresgid, 0, 0, 0) == 0
            && libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0;
        if !joined {
            job.fd = err();
        }
        if dumpable >= 0 {
            libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong);
        }
        if !joined {
            libc::_exit(0);
        }
        let rfd = libc::open(
            job.root.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY,
        );
        if rfd < 0 {
            job.fd = err();
            libc::_exit(0);
        }
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT,
        };
        let mut fd = libc::syscall(
            libc::SYS_openat2,
            rfd,
            job.rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        ) as c_int;
        if fd < 0 && err() == -libc::ENOSYS {
            fd = libc::openat(rfd, job.rel.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        }
        job.fd = if fd < 0 { err() } else { fd };
        libc::close(rfd);
        if fd >= 0 && libc::fstatfs(fd, &mut job.statfs) != 0 {
            job.fd = err();
            libc::close(fd);
        }
        libc::_exit(0);
    }
}
