//! The process chain of one case: harness → sandbox init (pid 1 of a fresh PID
//! namespace) → target.
//!
//! Everything that runs between `clone` and `execve` lives here and obeys one rule: it is
//! async-signal-safe. The harness is multithreaded (parallel cases, libtest threads), and
//! the child is made with a raw `clone` syscall, so the child may only use raw syscalls on
//! data prepared beforehand ([`Prepared`]): no allocation, no locks, no glibc function that
//! depends on the thread's cached tid (raise, pthread_*) or on glibc's list of threads
//! (setuid and friends broadcast to all threads: use the raw syscalls). Failures are reported to the
//! harness as fixed-size records on the status pipe ([`Record`]).
//!
//! Two strategies, chosen by privilege:
//!
//! * [`Strategy::Root`] (harness is root): init is cloned into new mount, PID, network,
//!   UTS, IPC and cgroup namespaces *without* a user namespace, so it can detach the real
//!   cgroup mounts (`umount2(MNT_DETACH)`) before mounting the simulated tree. (Where the
//!   session prepared a mount namespace with those mounts detached, [`super::template`],
//!   init is cloned without one and enters a copy of that instead: [`Step::EnterMounts`].) The target
//!   then enters a user namespace of its own in which its uid 0 is an unprivileged uid on
//!   the host: even a root target that reaches a real cgroupfs cannot write a file in it,
//!   and it cannot undo init's mounts (their namespace belongs to the initial user
//!   namespace).
//! * [`Strategy::UserNs`] (not root, or forced): init is cloned into a user namespace as
//!   well. The real cgroup mounts are then locked and can only be *covered*; the target's
//!   root is again an unprivileged uid on the host. Init's user namespace owns the case's
//!   mount namespace, so the target goes one level deeper: init makes a child user
//!   namespace (the same ids, `nested_map`) and the target joins it right before exec. As
//!   with `Root`, the target then cannot undo init's mounts (unmount the private /tmp,
//!   remount the read-only root read-write). The cgroupfs model's FUSE mount must be made
//!   with a /dev/fuse opened in init's user namespace: init opens it, mounts it and hands
//!   the fd to the harness ([`Step::MountFuse`]).

use std::ffi::CString;
use std::os::fd::RawFd;

use libc::{c_char, c_int, c_long, c_ulong};

/// How the namespaces are arranged; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Root,
    UserNs,
}

/// One setup step run by init. Paths are prepared C strings; `BindView` binds one of the
/// simulated /proc views (opened by init at its start, while the session directory is
/// still visible) over a path.
#[derive(Debug)]
pub enum Step {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`.
    MakePrivate,
    /// `umount2(path, MNT_DETACH)`: detaches the mount and everything below it.
    Detach(CString),
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: c_ulong,
        data: Option<CString>,
    },
    /// Bind view number `view` (an index into [`Prepared::views`]) over `target`.
    BindView {
        view: usize,
        target: CString,
    },
    Mkdir(CString),
    Hostname(CString),
    /// `ip link set lo up`, via ioctl.
    LoopbackUp,
    /// Join the network namespace open as this fd (the session's shared one).
    JoinNetns(RawFd),
    /// `move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`: attach a detached
    /// mount the harness made (the case's clone of the session's cgroupfs connection).
    MoveMount {
        fd: RawFd,
        target: CString,
    },
    /// `mount(NULL, target, NULL, MS_BIND|MS_REMOUNT|MS_RDONLY|keep, NULL)`: this mount
    /// namespace's copy of a mount becomes read-only (the machine's stays as it is).
    /// A mount that cannot be reached by its path (hidden under a later mount: EINVAL,
    /// ENOENT, EACCES) is skipped: the target cannot reach it either.
    ReadOnly {
        target: CString,
        keep: c_ulong,
    },
    /// UserNs, the cgroupfs model: mount the `/dev/fuse` fd init opened (see
    /// [`Prepared::opens_fuse`]) on `target` with `fd=<n>,<options>`, then hand the fd to
    /// the harness over the unix socket `sock` (SCM_RIGHTS), which serves the model on it.
    /// The kernel accepts a FUSE mount in a user namespace only with a /dev/fuse fd
    /// opened by that namespace (`fuse_fill_super`: `f_cred->user_ns != s_user_ns` is
    /// EINVAL), so the harness cannot open it itself as it does for `Root`.
    MountFuse {
        target: CString,
        flags: c_ulong,
        options: CString,
        sock: RawFd,
    },
    /// Enter the session's prepared mount namespace (open as this fd) and take a private
    /// copy of it (`setns` + `unshare(CLONE_NEWNS)`; see [`super::template`]). Only as
    /// init's first step, which init then runs before it opens the views; init is
    /// cloned without a mount namespace of its own.
    EnterMounts(RawFd),
}

impl Step {
    /// What the step does, for error messages in the harness.
    pub fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::MakePrivate => "make / private (MS_REC|MS_PRIVATE)".into(),
            Step::Detach(p) => format!("detach the real mounts at {}", s(p)),
            Step::Mount { fstype, target, .. } => format!("mount {} on {}", s(fstype), s(target)),
            Step::BindView { target, .. } => format!("bind the simulated view over {}", s(target)),
            Step::Mkdir(p) => format!("mkdir {}", s(p)),
            Step::Hostname(h) => format!("set hostname {}", s(h)),
            Step::LoopbackUp => "bring up lo".into(),
            Step::JoinNetns(_) => "join the session's network namespace".into(),
            Step::MoveMount { target, .. } => format!("attach the cgroupfs at {}", s(target)),
            Step::ReadOnly { target, .. } => format!("remount {} read-only", s(target)),
            Step::MountFuse { target, .. } => {
                format!("mount the cgroupfs model (FUSE) on {}", s(target))
            }
            Step::EnterMounts(_) => "enter the session's prepared mount namespace".into(),
        }
    }
}

/// Everything the child needs, prepared by the harness before `clone`.
pub struct Prepared {
    pub strategy: Strategy,
    /// Namespaces for init.
    pub clone_flags: c_int,
    pub init_steps: Vec<Step>,
    /// Files with simulated /proc content, opened by init before its own mounts (in the
    /// session's prepared mount namespace when it entered one).
    pub views: Vec<CString>,
    /// Views bound over the target's own /proc/<pid>/<name> before it execs:
    /// (view index, name), e.g. (0, "mountinfo").
    pub process_views: Vec<(usize, CString)>,
    /// "0 <host uid> <count>\n" for init's user namespace (UserNs; written by the harness).
    pub uid_map: CString,
    pub gid_map: CString,
    /// Root: the session's user namespace (uid 0 = an unprivileged host uid), which the
    /// target joins right before exec.
    pub userns: Option<RawFd>,
    pub exe: CString,
    /// Owners of what `argv_ptrs`/`envp_ptrs` point into: private, so that nothing can
    /// change them under those pointers.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    pub cwd: CString,
    /// Harness-side fds handed to the target as 0, 1, 2, 3.
    pub stdio: [RawFd; 4],
    /// Write end of the status pipe (init and target report on it).
    pub status_w: RawFd,
    /// Read end of the go-ahead pipe (harness → init, after writing id maps and starting
    /// the case's supervisor; Root: init reads it only before starting the target).
    pub sync_r: RawFd,
    /// Fds init must keep open (everything above), sorted.
    keep: Vec<RawFd>,
    /// Extra work in the target right before exec (the syscall layer's filter install).
    pub before_exec: Option<Box<dyn Fn() -> Result<(), c_int> + Send + Sync>>,
    // Pointer arrays for execve, built once from argv/envp.
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    /// UserNs: "0 0 <count>\n", the id map of the child user namespace init makes for the
    /// target (set by the harness after [`Prepared::new`]; see the module docs).
    pub nested_map: Option<CString>,
    /// The stack the target runs on between its vfork-style clone and exec: capacity
    /// only, never initialised here (zeroing 256 KiB made `Prepared::new` cost 0.12-0.15
    /// ms a case, now under 0.02 ms; the target touches only the pages it uses).
    target_stack: Vec<u8>,
    /// Init opens the views on `view_fd_base + i` (above every fd it keeps).
    view_fd_base: c_int,
}

// SAFETY: the raw pointers (`argv_ptrs`, `envp_ptrs`) point only into the heap data of the
// private `_argv`/`_envp` CStrings of the same struct, which nothing changes after `new`
// (moving the struct does not move that heap data); they are only read, by execve.
unsafe impl Send for Prepared {}
// SAFETY: as for Send: every access through the pointers is a read of immutable data.
unsafe impl Sync for Prepared {}

impl Prepared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        strategy: Strategy,
        init_steps: Vec<Step>,
        views: Vec<CString>,
        process_views: Vec<(usize, CString)>,
        uid_map: CString,
        gid_map: CString,
        exe: CString,
        argv: Vec<CString>,
        envp: Vec<CString>,
        cwd: CString,
        stdio: [RawFd; 4],
        status_w: RawFd,
        sync_r: RawFd,
        userns: Option<RawFd>,
        extra_keep: Vec<RawFd>,
    ) -> Prepared {
        let mut clone_flags =
            libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWCGROUP;
        if strategy == Strategy::UserNs {
            clone_flags |= libc::CLONE_NEWUSER;
        }
        let mut keep = Vec::new();
        // A prepared mount namespace to copy (EnterMounts), else a copy of the harness's.
        match init_steps.first() {
            Some(Step::EnterMounts(fd)) => keep.push(*fd),
            _ => clone_flags |= libc::CLONE_NEWNS,
        }
        // A fresh network namespace costs ~0.6 ms; a session may share one (JoinNetns).
        match init_steps.iter().find_map(|s| match s {
            Step::JoinNetns(fd) => Some(*fd),
            _ => None,
        }) {
            Some(fd) => keep.push(fd),
            None => clone_flags |= libc::CLONE_NEWNET,
        }
        keep.extend_from_slice(&stdio);
        keep.extend(userns);
        keep.extend(extra_keep);
        keep.push(status_w);
        keep.push(sync_r);
        keep.sort_unstable();
        keep.dedup();
        let view_fd_base = keep.last().map_or(16, |&k| (k + 1).max(16));
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|a| a.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        Prepared {
            strategy,
            clone_flags,
            init_steps,
            views,
            process_views,
            uid_map,
            gid_map,
            userns,
            exe,
            _argv: argv,
            _envp: envp,
            cwd,
            stdio,
            status_w,
            sync_r,
            keep,
            before_exec: None,
            nested_map: None,
            argv_ptrs,
            envp_ptrs,
            target_stack: Vec::with_capacity(TARGET_STACK),
            view_fd_base,
        }
    }
}

impl Prepared {
    /// Whether init opens /dev/fuse for a [`Step::MountFuse`]. Async-signal-safe (a scan
    /// of the steps): init asks.
    pub fn opens_fuse(&self) -> bool {
        self.init_steps
            .iter()
            .any(|s| matches!(s, Step::MountFuse { .. }))
    }
}

/// A setup step outside init's [`Step`] list that can fail, as reported on the status
/// pipe (negative numbers; a non-negative number is an index into `init_steps` for init,
/// into `process_views` for the target). Shared by the child (which sends it) and the
/// session (which names it in the case's error).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStep {
    /// Init (UserNs) or the target: become uid/gid 0 of its user namespace.
    BecomeRoot = -2,
    /// The target: join its user namespace.
    JoinUserns = -1,
    Stdio = -3,
    Chdir = -4,
    /// The before-exec hook: installing the syscall layer.
    SyscallLayer = -5,
    /// Init: clone the target.
    CloneTarget = -6,
    /// Init: more views than it can hold.
    TooManyViews = -7,
    /// Init: open the views.
    OpenViews = -8,
    /// Init (UserNs): make the target's user namespace.
    MakeUserns = -9,
    /// Init (UserNs, the cgroupfs model): open /dev/fuse.
    OpenFuse = -10,
}

impl SetupStep {
    const ALL: [SetupStep; 10] = [
        SetupStep::JoinUserns,
        SetupStep::BecomeRoot,
        SetupStep::Stdio,
        SetupStep::Chdir,
        SetupStep::SyscallLayer,
        SetupStep::CloneTarget,
        SetupStep::TooManyViews,
        SetupStep::OpenViews,
        SetupStep::MakeUserns,
        SetupStep::OpenFuse,
    ];

    pub fn from_code(code: i32) -> Option<SetupStep> {
        SetupStep::ALL.into_iter().find(|s| *s as i32 == code)
    }

    pub fn describe(self) -> &'static str {
        match self {
            SetupStep::JoinUserns => "enter the target's user namespace",
            SetupStep::BecomeRoot => "switch to the sandbox's root",
            SetupStep::Stdio => "set up the target's stdio",
            SetupStep::Chdir => "chdir",
            SetupStep::SyscallLayer => "install the syscall layer",
            SetupStep::CloneTarget => "fork the target",
            SetupStep::TooManyViews => "open the /proc views (too many)",
            SetupStep::OpenViews => "open the /proc views",
            SetupStep::MakeUserns => "create the target's user namespace",
            SetupStep::OpenFuse => "open /dev/fuse",
        }
    }
}

/// Status pipe records: 12 bytes, written atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Init setup step `step` failed with errno.
    InitStepFailed {
        step: i32,
        errno: i32,
    },
    /// Target setup step failed (index into `process_views`, or a [`SetupStep`]).
    TargetStepFailed {
        step: i32,
        errno: i32,
    },
    ExecFailed {
        errno: i32,
    },
    /// The target process exited; raw wait status.
    TargetExited {
        status: i32,
    },
    /// Processes still running in the case after the target exited (then killed).
    Leftovers {
        count: i32,
    },
}

const TAG_INIT_FAIL: i32 = 1;
const TAG_TARGET_FAIL: i32 = 2;
const TAG_EXEC_FAIL: i32 = 3;
const TAG_EXIT: i32 = 4;
const TAG_LEFTOVERS: i32 = 5;

impl Record {
    pub fn decode(b: &[u8; 12]) -> Option<Record> {
        let w = |i: usize| i32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (tag, a, c) = (w(0), w(4), w(8));
        Some(match tag {
            TAG_INIT_FAIL => Record::InitStepFailed { step: a, errno: c },
            TAG_TARGET_FAIL => Record::TargetStepFailed { step: a, errno: c },
            TAG_EXEC_FAIL => Record::ExecFailed { errno: c },
            TAG_EXIT => Record::TargetExited { status: a },
            TAG_LEFTOVERS => Record::Leftovers { count: a },
            _ => return None,
        })
    }
}

fn send(fd: RawFd, tag: i32, a: i32, b: i32) {
    let mut buf = [0u8; 12];
    buf[0..4].copy_from_slice(&tag.to_ne_bytes());
    buf[4..8].copy_from_slice(&a.to_ne_bytes());
    buf[8..12].copy_from_slice(&b.to_ne_bytes());
    // SAFETY: `buf` is a live 12-byte stack buffer; write(2) is async-signal-safe, so this
    // is callable from init and the target before exec. A failed write is the harness's
    // EOF to see.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), 12);
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A raw fork-like clone: no stack switch, no tid bookkeeping. Returns 0 in the child.
///
/// # Safety
/// The child is a copy of a possibly multithreaded process with only the calling thread:
/// until it execs or `_exit`s it may make only async-signal-safe calls (no allocation, no
/// locks, nothing that runs destructors or atexit handlers).
pub(crate) unsafe fn raw_clone(flags: c_int) -> c_long {
    // SAFETY: SYS_clone without CLONE_VM and with a null stack and tid pointers forks the
    // calling thread like fork(2); what the child then does is the caller's contract above.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

/// Start init. Returns init's pid (in the harness's PID namespace) or the clone errno.
///
/// # Safety
/// `p` must stay alive until the call returns (the child works on its own copy).
pub unsafe fn start(p: &Prepared) -> Result<libc::pid_t, c_int> {
    // SAFETY: the child runs only init_main, which makes raw syscalls and allocates
    // nothing; the parent returns at once. `p` is alive for the call (caller's contract).
    unsafe {
        match raw_clone(p.clone_flags) {
            -1 => Err(errno()),
            0 => init_main(p),
            pid => Ok(pid as libc::pid_t),
        }
    }
}

/// Close every fd that is not in `keep` (sorted).
///
/// # Safety
/// Closes fds that other code of this process may own: only for a post-clone child.
unsafe fn close_others(keep: &[RawFd]) {
    // SAFETY: only close_range below (raw syscalls); the caller is a post-clone child that
    // owns every fd it inherited.
    unsafe {
        let mut next: u32 = 0;
        for &k in keep {
            let k = k as u32;
            if k > next {
                close_range(next, k - 1);
            }
            next = k + 1;
        }
        close_range(next, u32::MAX);
    }
}

/// # Safety
/// As [`close_others`].
unsafe fn close_range(first: u32, last: u32) {
    // SAFETY: close_range(2) and close(2) on plain integers; no memory is touched. Closing
    // fds we do not own is the caller's contract (a post-clone child).
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, last, 0u32) == 0 {
            return;
        }
        // Before 5.9: close one by one up to a sane bound.
        let mut fd = first;
        while fd <= last && fd < 65_536 {
            libc::close(fd as c_int);
            fd += 1;
        }
    }
}

/// Write `data` into an existing file (async-signal-safe).
///
/// # Safety
/// `path` must be NUL-terminated.
unsafe fn write_file(path: &[u8], data: &[u8]) -> Result<(), c_int> {
    // SAFETY: `path` is NUL-terminated (contract) and `data` a live slice of `data.len()`
    // bytes; open/write/close are async-signal-safe and the fd is ours.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if n as usize == data.len() {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// Write `/proc/<pid>/{setgroups,uid_map,gid_map}` (async-signal-safe: formats the pid by
/// hand into a stack buffer).
///
/// # Safety
/// Only raw syscalls on the given data; callable between `clone` and `exec`.
pub unsafe fn write_id_maps(
    pid: libc::pid_t,
    uid_map: &CString,
    gid_map: &CString,
    deny_setgroups: bool,
) -> Result<(), c_int> {
    // SAFETY: CPath formats on the stack (no allocation); each path is NUL-terminated, as
    // write_file requires.
    unsafe {
        let file = |name: &[u8]| {
            let mut p = CPath::new();
            p.push(b"/proc/").num(pid as u32).push(b"/").push(name);
            p
        };
        if deny_setgroups {
            write_file(&file(b"setgroups").buf, b"deny")?;
        }
        write_file(&file(b"uid_map").buf, uid_map.as_bytes())?;
        write_file(&file(b"gid_map").buf, gid_map.as_bytes())?;
        Ok(())
    }
}

/// Run one of init's setup steps.
///
/// # Safety
/// Changes the calling process's mounts and namespaces: only for init, in its own
/// namespaces, after clone.
unsafe fn run_step(step: &Step, view_fds: &[c_int], fuse_fd: c_int) -> Result<(), c_int> {
    // SAFETY: every pointer passed is a NUL-terminated CString of `step` or a stack CPath,
    // alive for the call, or null where the syscall allows it; mount/umount2/mkdir/
    // sethostname/setns/move_mount are raw syscalls (async-signal-safe, no allocation).
    unsafe {
        let r = match step {
            Step::MakePrivate => libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            Step::Detach(p) => libc::umount2(p.as_ptr(), libc::MNT_DETACH),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                *flags,
                data.as_ref()
                    .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
            ),
            Step::BindView { view, target } => {
                let mut src = CPath::new();
                src.push(b"/proc/self/fd/").num(view_fds[*view] as u32);
                bind(&src, target.as_ptr())
            }
            Step::Mkdir(p) => {
                let r = libc::mkdir(p.as_ptr(), 0o755);
                if r != 0 && errno() == libc::EEXIST {
                    0
                } else {
                    r
                }
            }
            Step::Hostname(h) => libc::sethostname(h.as_ptr(), h.as_bytes().len()),
            Step::LoopbackUp => loopback_up(),
            Step::JoinNetns(fd) => libc::setns(*fd, libc::CLONE_NEWNET),
            Step::EnterMounts(fd) => {
                let r = libc::setns(*fd, libc::CLONE_NEWNS);
                if r == 0 {
                    libc::unshare(libc::CLONE_NEWNS)
                } else {
                    r
                }
            }
            Step::MoveMount { fd, target } => libc::syscall(
                libc::SYS_move_mount,
                *fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                crate::sandbox::cgroupfs::shared::MOVE_MOUNT_F_EMPTY_PATH,
            ) as c_int,
            Step::ReadOnly { target, keep } => {
                // MS_BIND is what keeps this a per-mount change: without it, MS_REMOUNT would
                // make the file system itself read-only, for the whole machine.
                let r = libc::mount(
                    std::ptr::null(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
                    std::ptr::null(),
                );
                if r != 0 && matches!(errno(), libc::EINVAL | libc::ENOENT | libc::EACCES) {
                    0
                } else {
                    r
                }
            }
            Step::MountFuse {
                target,
                flags,
                options,
                sock,
            } => {
                let mut data = CPath::new();
                data.push(b"fd=")
                    .num(fuse_fd as u32)
                    .push(b",")
                    .push(options.as_bytes());
                let r = libc::mount(
                    c"cgrepro".as_ptr(),
                    target.as_ptr(),
                    c"fuse".as_ptr(),
                    *flags,
                    data.as_ptr().cast(),
                );
                // The mount holds the connection and the harness its own copy of the fd;
                // nothing of it is left for the target to inherit (send_fd closes it).
                let sent = if r == 0 {
                    crate::sandbox::syscall::send_fd(*sock, fuse_fd)
                } else {
                    let e = errno();
                    libc::close(fuse_fd);
                    Err(e)
                };
                libc::close(*sock);
                sent?;
                r
            }
        };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }
}

/// Run `steps` in order; the index and errno of the first that fails.
///
/// # Safety
/// As [`run_step`]; for a post-clone child that owns the mount namespace it changes (the
/// session's template).
pub(crate) unsafe fn run_steps(steps: &[Step]) -> Result<(), (usize, c_int)> {
    for (i, step) in steps.iter().enumerate() {
        // SAFETY: the caller's contract; no step here binds a view.
        unsafe { run_step(step, &[], -1) }.map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Bring up `lo` in the caller's network namespace (0 or -1 with errno).
///
/// # Safety
/// None beyond the syscalls' own: unsafe so that it may be called between clone and exec
/// (it is async-signal-safe: a socket, two ioctls on a stack ifreq, close).
pub(crate) unsafe fn loopback_up() -> c_int {
    // SAFETY: an all-zero ifreq is valid (a C struct of integers and byte arrays); the
    // ioctls read and write only `ifr`, which lives on this stack; `s` is our own socket.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return -1;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as c_char;
        ifr.ifr_name[1] = b'o' as c_char;
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as i16;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(s);
        r
    }
}

extern "C" fn forward_term(_: c_int) {
    // As pid 1 of the case: SIGTERM every other process of the case.
    // SAFETY: kill(2) is async-signal-safe (this is a signal handler) and touches no memory.
    unsafe {
        libc::kill(-1, libc::SIGTERM);
    }
}

/// Become uid/gid 0 of the current user namespace.
///
/// # Safety
/// Changes the ids of the calling thread only (raw syscalls): for post-clone children,
/// whose only thread it is.
unsafe fn become_root() -> Result<(), c_int> {
    // SAFETY: raw setresgid/setresuid/setgroups syscalls; setgroups gets size 0 with a
    // null list, which the kernel accepts.
    unsafe {
        // Raw syscalls, not glibc's wrappers: those broadcast the change to every thread
        // glibc believes the process has (the harness's, copied by clone) and can wait
        // forever for a thread that was being created at the time of the clone.
        if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
        {
            return Err(errno());
        }
        // Drop supplementary groups where the user namespace allows it.
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>());
        Ok(())
    }
}

/// A NUL-terminated path built without allocating.
struct CPath {
    buf: [u8; 256],
    len: usize,
}

impl CPath {
    fn new() -> CPath {
        CPath {
            buf: [0; 256],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) -> &mut Self {
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self.buf[self.len] = 0;
        self
    }

    fn num(&mut self, mut v: u32) -> &mut Self {
        let mut digits = [0u8; 10];
        let mut d = 0;
        loop {
            digits[d] = b'0' + (v % 10) as u8;
            d += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        digits[..d].reverse();
        self.push(&digits[..d])
    }

    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

/// Bind-mount `src` over `target`.
///
/// # Safety
/// `target` must be a NUL-terminated path, alive for the call.
unsafe fn bind(src: &CPath, target: *const c_char) -> c_int {
    // SAFETY: `src` is NUL-terminated by CPath, `target` by the caller's contract; null
    // fstype and data are allowed with MS_BIND.
    unsafe {
        libc::mount(
            src.as_ptr(),
            target,
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    }
}

const MAX_VIEWS: usize = 16;

/// Bytes of stack for the target between clone and exec.
const TARGET_STACK: usize = 256 * 1024;

/// Init (UserNs): a child user namespace of init's with the ids of `map`, open on fd
/// `at`. Made by a child that only waits, like the harness's `target_userns`.
///
/// # Safety
/// Replaces fd `at`: only for init, after clone, which owns every fd.
unsafe fn nested_userns(map: &CString, at: c_int) -> Result<(), c_int> {
    // SAFETY: in init, a post-clone child: only raw syscalls on our own fds and stack
    // buffers (CPath, `fds`, `b`, `st`), no allocation; the grandchild only reads one byte
    // and _exits; write_id_maps and raw_clone are used within their contracts.
    unsafe {
        let mut fds = [0 as c_int; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(errno());
        }
        // Init's id switch made it non-dumpable (when the harness is root), so the child's
        // /proc files would belong to the machine's root and init could not write its id
        // maps: dumpable for the clone only (no target exists yet that could ptrace init
        // meanwhile), then as before. A non-root harness's init made no switch and stays
        // dumpable: the harness reads the case's procfs through /proc/<init>/root (the
        // cgroupfs model's pids); the target, in a child user namespace, still cannot
        // ptrace init (it has no capability in init's namespace).
        let was = libc::prctl(libc::PR_GET_DUMPABLE);
        libc::prctl(libc::PR_SET_DUMPABLE, 1);
        let pid = raw_clone(libc::CLONE_NEWUSER);
        if pid != 0 && was >= 0 {
            libc::prctl(libc::PR_SET_DUMPABLE, was as c_ulong);
        }
        if pid == 0 {
            let mut b = 0u8;
            libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
        let result = if pid < 0 {
            Err(errno())
        } else {
            let pid = pid as libc::pid_t;
            let mut path = CPath::new();
            path.push(b"/proc/").num(pid as u32).push(b"/ns/user");
            let r = write_id_maps(pid, map, map, false).and_then(|()| {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::dup3(fd, at, libc::O_CLOEXEC) < 0 {
                    return Err(errno());
                }
                libc::close(fd);
                Ok(())
            });
            libc::write(fds[1], [1u8].as_ptr().cast(), 1);
            let mut st: c_int = 0;
            libc::waitpid(pid, &mut st, 0);
            r
        };
        libc::close(fds[0]);
        libc::close(fds[1]);
        result
    }
}

/// Wait for the harness's go-ahead byte (id maps written, the case's supervisor and
/// services started), then close the pipe. If the harness died before init armed its
/// parent-death signal, its end of the pipe is closed: EOF, and init exits.
///
/// # Safety
/// Only for init (a post-clone child): `sync_r` is its own fd, which this closes.
unsafe fn wait_go_ahead(sync_r: RawFd) {
    // SAFETY: read(2) into a live stack byte, close(2) and _exit(2): async-signal-safe
    // raw calls on init's own fd.
    unsafe {
        let mut b = 0u8;
        if libc::read(sync_r, (&mut b as *mut u8).cast(), 1) != 1 {
            libc::_exit(1);
        }
        libc::close(sync_r);
    }
}

/// Pid 1 of the case.
///
/// # Safety
/// Only in the child of [`start`]'s clone: it closes every fd but `p.keep`, changes the
/// process's mounts and namespaces and never returns.
unsafe fn init_main(p: &Prepared) -> ! {
    // SAFETY: a post-clone child of a multithreaded harness: everything here is a raw
    // syscall or stack-only code (CPath, arrays), no allocation or lock; the pointers passed
    // are into `p`'s CStrings (its own copy of the harness's memory) or stack buffers. The
    // target's clone uses CLONE_VM|CLONE_VFORK: init is suspended until the target execs
    // or dies, and the target writes only its own stack (`target_stack`, 16-byte aligned,
    // its top the end of the Vec's allocation: spare capacity the Vec owns and nothing
    // else reads).
    unsafe {
        close_others(&p.keep);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
        // UserNs: init needs its id maps (written by the harness) before anything else.
        // Root: init builds the case's mounts while the harness starts the case's
        // supervisor and services, and waits only before starting the target (the two
        // setups overlap on two CPUs).
        if p.strategy == Strategy::UserNs {
            wait_go_ahead(p.sync_r);
        }
        let status = p.status_w;
        // UserNs, the cgroupfs model: /dev/fuse is opened before init becomes its
        // namespace's root, while it still has the harness's uid on the machine (so it may
        // open what the harness may, e.g. root's mode-0600 /dev/fuse when the harness is
        // root); the fd's credentials already name init's user namespace, as the FUSE
        // mount requires (Step::MountFuse).
        // On a fixed number above the views and the target's user namespace fd.
        let fuse_fd = p.view_fd_base + MAX_VIEWS as c_int + 1;
        if p.opens_fuse() {
            let fd = libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 || libc::dup3(fd, fuse_fd, libc::O_CLOEXEC) < 0 {
                send(status, TAG_INIT_FAIL, SetupStep::OpenFuse as i32, errno());
                libc::_exit(1);
            }
            libc::close(fd);
        }
        if p.strategy == Strategy::UserNs {
            if let Err(e) = become_root() {
                send(status, TAG_INIT_FAIL, SetupStep::BecomeRoot as i32, e);
                libc::_exit(1);
            }
            // Changing the effective uid on the machine (a root harness's init becomes
            // uid 100000) cleared the parent-death signal: armed again, and if the harness
            // died meanwhile (its end of the status pipe is gone), init leaves at once.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong);
            let mut pfd = libc::pollfd {
                fd: status,
                events: libc::POLLOUT,
                revents: 0,
            };
            if libc::poll(&mut pfd, 1, 0) == 1 && pfd.revents & libc::POLLERR != 0 {
                libc::_exit(1);
            }
        }
        // Into the session's prepared mount namespace first: the views must be opened in
        // the namespace that binds them.
        let entered = match p.init_steps.first() {
            Some(step @ Step::EnterMounts(_)) => {
                if let Err(e) = run_step(step, &[], -1) {
                    send(status, TAG_INIT_FAIL, 0, e);
                    libc::_exit(1);
                }
                1
            }
            _ => 0,
        };
        // Open the views while the session directory is visible (before /tmp is covered);
        // binding them later goes through /proc/self/fd, inside this mount namespace.
        let mut view_fds = [-1 as c_int; MAX_VIEWS];
        if p.views.len() > MAX_VIEWS {
            send(
                status,
                TAG_TARGET_FAIL,
                SetupStep::TooManyViews as i32,
                libc::E2BIG,
            );
            libc::_exit(1);
        }
        for (i, v) in p.views.iter().enumerate() {
            // On fixed numbers (`view_fd_base + i`) so the target finds them too.
            let fd = libc::open(v.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            let fixed = p.view_fd_base + i as c_int;
            if fd < 0 || libc::dup3(fd, fixed, libc::O_CLOEXEC) < 0 {
                send(
                    status,
                    TAG_TARGET_FAIL,
                    SetupStep::OpenViews as i32,
                    errno(),
                );
                libc::_exit(1);
            }
            libc::close(fd);
            view_fds[i] = fixed;
        }
        let view_fds = &view_fds[..p.views.len()];
        for (i, step) in p.init_steps.iter().enumerate().skip(entered) {
            if let Err(e) = run_step(step, view_fds, fuse_fd) {
                send(status, TAG_INIT_FAIL, i as i32, e);
                libc::_exit(1);
            }
        }
        if let Some(map) = &p.nested_map {
            if let Err(e) = nested_userns(map, p.view_fd_base + MAX_VIEWS as c_int) {
                send(status, TAG_TARGET_FAIL, SetupStep::MakeUserns as i32, e);
                libc::_exit(1);
            }
            // The namespace's maker was pid 2 of the case: the target becomes pid 2 again,
            // as under Root, so that pids in op logs and snapshots are the same under both
            // strategies. Init may (CAP_SYS_ADMIN in the user namespace that owns the case's
            // PID namespace). Best effort: without CONFIG_CHECKPOINT_RESTORE the file does
            // not exist and the target is pid 3 (a snapshot diff says so).
            let _ = write_file(b"/proc/sys/kernel/ns_last_pid\0", b"1");
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = forward_term as *const () as usize;
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        if p.strategy == Strategy::Root {
            wait_go_ahead(p.sync_r);
        }

        // The target: a vfork-style clone on its own stack (no second copy of the harness's
        // page tables); init resumes once it has exec'd or died. It reports its own setup
        // failures on the status pipe.
        let stack_top = p.target_stack.as_ptr().add(p.target_stack.capacity()) as *mut libc::c_void;
        let stack_top = ((stack_top as usize) & !15) as *mut libc::c_void;
        let target = libc::clone(
            target_entry,
            stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            p as *const Prepared as *mut libc::c_void,
        );
        if target < 0 {
            send(
                status,
                TAG_TARGET_FAIL,
                SetupStep::CloneTarget as i32,
                errno(),
            );
            libc::_exit(1);
        }
        for &fd in p.stdio.iter().chain(view_fds) {
            libc::close(fd);
        }

        // Reap until the target exits; then end everything else in the case.
        loop {
            let mut st: c_int = 0;
            let pid = libc::waitpid(-1, &mut st, 0);
            if pid == target {
                send(status, TAG_EXIT, st, 0);
                break;
            }
            if pid < 0 && errno() != libc::EINTR {
                break;
            }
        }
        libc::kill(-1, libc::SIGKILL);
        let mut leftovers = 0;
        loop {
            let mut st: c_int = 0;
            let pid = libc::waitpid(-1, &mut st, 0);
            if pid > 0 {
                leftovers += 1;
            } else if errno() != libc::EINTR {
                break;
            }
        }
        send(status, TAG_LEFTOVERS, leftovers, 0);
        // Close explicitly: on exit, the last close of a file is deferred until after the
        // namespaces are torn down (milliseconds with a FUSE mount), and the harness waits for
        // this EOF. The teardown itself is the reaper's to wait for.
        libc::close(status);
        libc::_exit(0);
    }
}

extern "C" fn target_entry(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` is the `Prepared` of init, alive (init is suspended) until we exec.
    unsafe { target_main(&*(arg as *const Prepared)) }
}

/// The target, before exec. Runs in init's memory (CLONE_VM) while init is suspended:
/// it must write nothing but its own stack.
///
/// # Safety
/// Only as the entry of init's CLONE_VM|CLONE_VFORK clone, with init's `Prepared`.
unsafe fn target_main(p: &Prepared) -> ! {
    // SAFETY: between clone and exec in init's memory: raw syscalls only, on `p`'s CStrings
    // and pointer arrays (alive: init is suspended) and stack buffers; no allocation, no
    // lock. `before_exec` is the syscall layer's hook, which promises the same.
    unsafe {
        let status = p.status_w;
        let fail = |step: i32, e: c_int| -> ! {
            send(status, TAG_TARGET_FAIL, step, e);
            libc::_exit(127);
        };
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        // Its own /proc/self views, bound while it still may (in init's mount namespace).
        for (i, (view, name)) in p.process_views.iter().enumerate() {
            let mut src = CPath::new();
            src.push(b"/proc/self/fd/")
                .num((p.view_fd_base + *view as c_int) as u32);
            let mut dst = CPath::new();
            dst.push(b"/proc/self/").push(name.as_bytes());
            if bind(&src, dst.as_ptr()) != 0 {
                fail(i as i32, errno());
            }
        }
        // Root: into the session's user namespace, where uid 0 is an unprivileged uid on the
        // host. Its mount namespace stays init's (owned by the initial user namespace), so
        // the target cannot undo any of init's mounts.
        let userns = match p.nested_map {
            Some(_) => Some(p.view_fd_base + MAX_VIEWS as c_int),
            None => p.userns,
        };
        if let Some(fd) = userns {
            if libc::setns(fd, libc::CLONE_NEWUSER) != 0 {
                fail(SetupStep::JoinUserns as i32, errno());
            }
            if let Err(e) = become_root() {
                fail(SetupStep::BecomeRoot as i32, e);
            }
        }
        libc::setsid();
        // Move the four stdio fds out of the way, then into place.
        let mut high = [0 as c_int; 4];
        for (i, &fd) in p.stdio.iter().enumerate() {
            high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 512);
            if high[i] < 0 {
                fail(SetupStep::Stdio as i32, errno());
            }
        }
        for (i, &fd) in high.iter().enumerate() {
            if libc::dup2(fd, i as c_int) < 0 {
                fail(SetupStep::Stdio as i32, errno());
            }
        }
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(SetupStep::Chdir as i32, errno());
        }
        if let Some(hook) = &p.before_exec {
            if let Err(e) = hook() {
                fail(SetupStep::SyscallLayer as i32, e);
            }
        }
        libc::execve(p.exe.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr());
        send(status, TAG_EXEC_FAIL, 0, errno());
        libc::_exit(127);
    }
}
