//! The supervisor: receives the listener fd and answers notifications on a thread.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::procpath::{self, PidSpec};
use super::remote::{self, read_cstr};
use super::{magic, nr, SyscallPlan};
pub use crate::evidence::{EndReason, SupervisorStats};
use crate::fault::engine::Rules;
use crate::fault::{Effect, FaultHit, Layer, Op};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (6.6+), for `SECCOMP_IOCTL_NOTIF_SET_FLAGS`.
const SYNC_WAKE_UP: u64 = 1;
pub(super) const RESOLVE_IN_ROOT: u64 = 0x10;
const O_TMPFILE_DIR: i32 = libc::O_TMPFILE;

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct OpenHow {
    pub(super) flags: u64,
    pub(super) mode: u64,
    pub(super) resolve: u64,
}

/// Why the supervisor stopped answering (recorded in [`SupervisorStats::errors`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error("no seccomp listener fd received within {0:?}")]
    NoListenerWithin(Duration),
    #[error("poll on the fd socket: {0}")]
    Poll(#[source] std::io::Error),
    #[error("stopped before a seccomp listener fd arrived")]
    StoppedBeforeListener,
    #[error(
        "the child closed the fd socket without sending a seccomp listener (failed before exec?)"
    )]
    ChildClosed,
    #[error("recvmsg: {0}")]
    Recvmsg(#[source] std::io::Error),
    #[error("message on the fd socket carried no fd")]
    NoFdInMessage,
    #[error("SECCOMP_IOCTL_NOTIF_RECV: {0}")]
    NotifRecv(#[source] std::io::Error),
}

/// How the supervisor runs.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// How long to wait for the child to send the listener fd.
    pub recv_timeout: Duration,
    /// Ask the kernel (6.6+) to wake the target on the supervisor's CPU after each answer
    /// (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`): a trapped call then costs about the same as
    /// with both pinned to one CPU. Ignored if the kernel refuses it.
    pub sync_wakeup: bool,
    /// Pin the supervisor thread to this CPU (measurement aid; off by default).
    pub pin_cpu: Option<usize>,
    /// Asked on every trapped fork/clone (the plan traps them when
    /// [`super::SimKernel::gate_forks`] is set): `Some(errno)` refuses it.
    pub fork_gate: Option<ForkGate>,
    /// The userns strategy: the case's user namespace (its init's), for the lookups on
    /// the case's FUSE mount that FUSE refuses a task outside it (module `joined`).
    pub userns: Option<Arc<OwnedFd>>,
    /// Renders a per-process `cgroup` view (`/proc/self/cgroup`, `/proc/<pid>/cgroup`, …)
    /// at open time; without it the static file answers.
    pub proc_cgroup: Option<ProcCgroup>,
}

/// Whose `/proc/<pid>/cgroup` is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupViewOf {
    /// The caller's own view, as the supervisor numbers the task: its thread-group leader
    /// (`self`) or the calling thread (`thread-self`).
    Caller(u32),
    /// `/proc/<pid>/...` or `.../task/<tid>/...` opened by a task of another PID namespace
    /// (the case's): the pid or tid as that namespace numbers it.
    CaseNs(u32),
    /// The same, opened by a task of the supervisor's PID namespace.
    Supervisor(u32),
}

/// Renders `/proc/<pid>/cgroup` from the cgroupfs model (see `Session`): called with whose
/// view it is and the host's static view, it answers the content, or `None` to keep the
/// static file.
#[derive(Clone)]
pub struct ProcCgroup(pub Arc<RenderCgroupView>);

/// See [`ProcCgroup`]: (whose view, the static view) → the content, or `None`.
pub type RenderCgroupView = dyn Fn(CgroupViewOf, &[u8]) -> Option<Vec<u8>> + Send + Sync;

impl std::fmt::Debug for ProcCgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProcCgroup")
    }
}

/// Decides whether a task may fork: called with the caller's pid as the supervisor sees
/// it; the cgroupfs model's `pids.max` enforcement (see `Session`).
#[derive(Clone)]
pub struct ForkGate(pub Arc<dyn Fn(u32) -> Option<i32> + Send + Sync>);

impl std::fmt::Debug for ForkGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForkGate")
    }
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            recv_timeout: Duration::from_secs(30),
            sync_wakeup: true,
            pin_cpu: None,
            fork_gate: None,
            userns: None,
            proc_cgroup: None,
        }
    }
}

/// The supervising thread. Dropping it stops it too.
pub struct Supervisor {
    thread: Option<JoinHandle<()>>,
    stop_fd: OwnedFd,
    done: mpsc::Receiver<()>,
    stats: Arc<Mutex<SupervisorStats>>,
}

impl Supervisor {
    /// Receive the listener fd on `sock` (with [`SupervisorOptions::recv_timeout`]) and
    /// supervise on a new thread.
    pub fn start(sock: OwnedFd, plan: Arc<SyscallPlan>) -> Supervisor {
        Supervisor::start_with(sock, plan, SupervisorOptions::default())
    }

    pub fn start_with(
        sock: OwnedFd,
        plan: Arc<SyscallPlan>,
        opts: SupervisorOptions,
    ) -> Supervisor {
        // SAFETY: plain syscall.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(efd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: efd is a fresh fd we own.
        let stop_fd = unsafe { OwnedFd::from_raw_fd(efd) };
        let stop_raw = stop_fd.as_raw_fd();
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int. Before the thread starts, so the sender's
        // credentials are delivered with the fd.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                &one as *const _ as *const libc::c_void,
                4,
            )
        };
        let stats = Arc::new(Mutex::new(SupervisorStats::default()));
        let (tx, done) = mpsc::channel();
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("cgrepro-seccomp".into())
            .spawn(move || {
                run(sock, plan, opts, stop_raw, &st);
                let _ = tx.send(());
            })
            .expect("spawn supervisor thread");
        Supervisor {
            thread: Some(thread),
            stop_fd,
            done,
            stats,
        }
    }

    /// A copy of the statistics so far.
    pub fn snapshot(&self) -> SupervisorStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the thread has ended on its own (hangup, no listener, error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Wait up to `timeout` for the supervisor to end on its own (every filtered process
    /// gone). Returns whether it ended.
    pub fn wait_hangup(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.is_finished() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Stop supervising and return the statistics. Never hangs: if the thread does not
    /// end within 5 s (a handler stuck in the kernel), it is left behind and the
    /// statistics so far are returned with an error noted.
    pub fn stop(mut self) -> SupervisorStats {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> SupervisorStats {
        let Some(thread) = self.thread.take() else {
            return self.snapshot();
        };
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our eventfd.
        unsafe {
            libc::write(
                self.stop_fd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
        match self.done.recv_timeout(Duration::from_secs(5)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                s.errors
                    .push("supervisor thread did not stop within 5s; left behind".into());
                // Leak the eventfd: the thread may still poll it.
                std::mem::forget(std::mem::replace(
                    &mut self.stop_fd,
                    // SAFETY: a fresh eventfd; only a placeholder to drop.
                    unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) },
                ));
            }
        }
        self.snapshot()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_inner();
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Receive the listener (and the sender's pid, via SO_PASSCRED) from `sock`.
fn recv_listener(
    sock: RawFd,
    stop: RawFd,
    timeout: Duration,
) -> Result<(OwnedFd, Option<u32>), SupervisorError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SupervisorError::NoListenerWithin(timeout));
        }
        let mut fds = [
            libc::pollfd {
                fd: sock,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of 2 pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, left.as_millis().min(1000) as i32 + 1) };
        if r < 0 && errno() != libc::EINTR {
            return Err(SupervisorError::Poll(std::io::Error::last_os_error()));
        }
        if fds[1].revents != 0 {
            return Err(SupervisorError::StoppedBeforeListener);
        }
        if fds[0].revents != 0 {
            break;
        }
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain old data; all pointers refer to live stack buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let n = loop {
        // SAFETY: as above.
        let n =
            unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        break n;
    };
    if n <= 0 {
        return Err(if n == 0 {
            SupervisorError::ChildClosed
        } else {
            SupervisorError::Recvmsg(std::io::Error::last_os_error())
        });
    }
    let mut listener = None;
    let mut pid = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET {
                if (*c).cmsg_type == libc::SCM_RIGHTS {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                    listener = Some(OwnedFd::from_raw_fd(fd));
                } else if (*c).cmsg_type == libc::SCM_CREDENTIALS {
                    let cred = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::ucred);
                    if cred.pid > 0 {
                        pid = Some(cred.pid as u32);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    listener
        .map(|l| (l, pid))
        .ok_or(SupervisorError::NoFdInMessage)
}

fn run(
    sock: OwnedFd,
    plan: Arc<SyscallPlan>,
    opts: SupervisorOptions,
    stop: RawFd,
    stats: &Mutex<SupervisorStats>,
) {
    let set =
        |f: &dyn Fn(&mut SupervisorStats)| f(&mut stats.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(cpu) = opts.pin_cpu {
        // SAFETY: cpu_set_t is plain old data; affects this thread only.
        unsafe {
            let mut cs: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut cs);
            libc::sched_setaffinity(0, std::mem::size_of_val(&cs), &cs);
        }
    }
    let (listener, pid) = match recv_listener(sock.as_raw_fd(), stop, opts.recv_timeout) {
        Ok(x) => x,
        Err(e) => {
            set(&|s| {
                s.errors.push(e.to_string());
                s.ended = EndReason::NoListener;
            });
            return;
        }
    };
    drop(sock);
    let mut sync = false;
    if opts.sync_wakeup {
        // SAFETY: ioctl on our listener with a u64 flag value (passed by value).
        sync = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SYNC_WAKE_UP,
            )
        } == 0;
    }
    set(&|s| {
        s.target_pid = pid;
        s.sync_wakeup = sync;
    });
    let mut sup = Ctx::new(plan, listener, pid);
    sup.fork_gate = opts.fork_gate.clone();
    sup.userns = opts.userns.clone();
    sup.proc_cgroup = opts.proc_cgroup.clone();
    let end = sup.serve(stop, stats);
    set(&|s| s.ended = end);
}

/// An answer to a notification.
enum Response {
    Continue,
    Errno(i32),
    Value(i64),
    AddFd { fd: OwnedFd, cloexec: bool },
}

struct Pending {
    due: Instant,
    id: u64,
    response: Response,
}

/// What a fd/path argument of a syscall is.
#[derive(Clone, Copy)]
enum PathArg {
    /// A path string relative to the cwd.
    Cwd(u64),
    /// `dirfd`, path string; `empty_ok` for AT_EMPTY_PATH.
    At(i32, u64, bool),
    /// A file descriptor.
    Fd(i32),
}

struct Ctx {
    plan: Arc<SyscallPlan>,
    fork_gate: Option<ForkGate>,
    /// See [`SupervisorOptions::userns`].
    userns: Option<Arc<OwnedFd>>,
    /// See [`SupervisorOptions::proc_cgroup`].
    proc_cgroup: Option<ProcCgroup>,
    listener: OwnedFd,
    names: Vec<Option<&'static str>>,
    /// The plan's faults with this run's counters.
    faults: Rules,
    /// Pids (supervisor namespace) known to be under the filter.
    known: HashSet<u32>,
    sup_pidns: Option<u64>,
    utsname: libc::utsname,
    /// This thread's own UTS namespace (fd, inode), to come back to.
    home_uts: Option<(OwnedFd, u64)>,
    addfd_send: bool,
    pending: Vec<Pending>,
    /// Disk paths of the simulated files (as readlink shows them).
    sim_disk_paths: Vec<Vec<u8>>,
    buf: Vec<u8>,
}

impl Ctx {
    fn new(plan: Arc<SyscallPlan>, listener: OwnedFd, pid: Option<u32>) -> Ctx {
        let mut names = vec![None; 512];
        for (name, n) in nr::SYSCALLS {
            if let Some(slot) = names.get_mut(*n as usize) {
                *slot = Some(*name);
            }
        }
        // SAFETY: utsname is plain old data.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer.
        unsafe { libc::uname(&mut u) };
        let k = &plan.kernel;
        if !k.release.is_empty() {
            put_field(&mut u.release, &k.release);
        }
        if !k.version.is_empty() {
            put_field(&mut u.version, &k.version);
        }
        if let Some(n) = &k.nodename {
            put_field(&mut u.nodename, n);
        }
        let sim_disk_paths = k
            .proc_files
            .iter()
            .filter_map(|(_, p)| std::fs::canonicalize(p).ok())
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect();
        Ctx {
            fork_gate: None,
            userns: None,
            proc_cgroup: None,
            faults: plan.faults.clone(),
            plan,
            listener,
            names,
            known: pid.into_iter().collect(),
            sup_pidns: remote::ns_inode("/proc/self/ns/pid"),
            utsname: u,
            home_uts: open_file(
                Path::new("/proc/thread-self/ns/uts"),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
            .zip(remote::ns_inode("/proc/thread-self/ns/uts")),
            addfd_send: true,
            pending: Vec::new(),
            sim_disk_paths,
            buf: Vec::with_capacity(remote::PATH_MAX),
        }
    }

    fn serve(&mut self, stop: RawFd, stats: &Mutex<SupervisorStats>) -> EndReason {
        loop {
            let now = Instant::now();
            let timeout = self
                .pending
                .iter()
                .map(|p| p.due.saturating_duration_since(now).as_millis() as i32 + 1)
                .min()
                .unwrap_or(1000)
                .min(1000);
            let mut fds = [
                libc::pollfd {
                    fd: self.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: valid array of 2 pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if r < 0 && errno() != libc::EINTR {
                lock(stats)
                    .errors
                    .push(format!("poll: {}", std::io::Error::last_os_error()));
                return EndReason::Error;
            }
            self.flush_pending(stats);
            if fds[1].revents != 0 {
                // Answer delayed calls now rather than leave them to fail with ENOSYS
                // when the listener closes.
                for p in std::mem::take(&mut self.pending) {
                    self.respond(p.id, p.response, &mut lock(stats));
                }
                return EndReason::Stopped;
            }
            let rev = fds[0].revents;
            if rev & libc::POLLIN != 0 {
                if let Err(e) = self.one(stats) {
                    lock(stats).errors.push(e.to_string());
                    return EndReason::Error;
                }
                continue;
            }
            if rev & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return EndReason::Hangup;
            }
        }
    }

    fn flush_pending(&mut self, stats: &Mutex<SupervisorStats>) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].due <= now {
                let p = self.pending.swap_remove(i);
                let mut s = lock(stats);
                self.respond(p.id, p.response, &mut s);
            } else {
                i += 1;
            }
        }
    }

    /// Receive and answer one notification.
    fn one(&mut self, stats: &Mutex<SupervisorStats>) -> Result<(), SupervisorError> {
        // SAFETY: the kernel requires a zeroed struct.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl with a valid pointer to a seccomp_notif.
        let r = unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut n,
            )
        };
        if r < 0 {
            return match errno() {
                // The caller was interrupted/killed between poll and recv.
                libc::ENOENT | libc::EINTR | libc::EAGAIN => Ok(()),
                e => Err(SupervisorError::NotifRecv(
                    std::io::Error::from_raw_os_error(e),
                )),
            };
        }
        let name = self
            .names
            .get(n.data.nr as usize)
            .copied()
            .flatten()
            .unwrap_or("?");
        self.known.insert(n.pid);
        let (response, delay) = self.handle(&n, name, stats);
        let mut s = lock(stats);
        s.notifications += 1;
        *s.per_syscall.entry(name).or_default() += 1;
        match delay {
            Some(d) => self.pending.push(Pending {
                due: Instant::now() + d,
                id: n.id,
                response,
            }),
            None => self.respond(n.id, response, &mut s),
        }
        Ok(())
    }

    fn respond(&mut self, id: u64, response: Response, s: &mut SupervisorStats) {
        let fd = self.listener.as_raw_fd();
        let (val, error, flags) = match response {
            Response::Continue => {
                s.continued += 1;
                (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
            }
            Response::Errno(e) => (0, -e, 0),
            Response::Value(v) => (v, 0, 0),
            Response::AddFd { fd: src, cloexec } => {
                let mut add = libc::seccomp_notif_addfd {
                    id,
                    flags: if self.addfd_send {
                        libc::SECCOMP_ADDFD_FLAG_SEND as u32
                    } else {
                        0
                    },
                    srcfd: src.as_raw_fd() as u32,
                    newfd: 0,
                    newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
                };
                // SAFETY: ioctl with a valid seccomp_notif_addfd.
                let r = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut add) };
                if r >= 0 {
                    s.redirected += 1;
                    if self.addfd_send {
                        return;
                    }
                    (r as i64, 0, 0)
                } else {
                    match errno() {
                        libc::EINVAL if self.addfd_send => {
                            // Kernel before 5.14: no ADDFD_FLAG_SEND; add, then answer.
                            self.addfd_send = false;
                            return self.respond(id, Response::AddFd { fd: src, cloexec }, s);
                        }
                        libc::ENOENT => {
                            s.gone += 1;
                            return;
                        }
                        e => {
                            s.errors.push(format!(
                                "SECCOMP_IOCTL_NOTIF_ADDFD: {}",
                                std::io::Error::from_raw_os_error(e)
                            ));
                            (0, -libc::EIO, 0)
                        }
                    }
                }
            }
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: ioctl with a valid seccomp_notif_resp.
        let r = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        if r < 0 {
            match errno() {
                libc::ENOENT => s.gone += 1,
                e => s.errors.push(format!(
                    "SECCOMP_IOCTL_NOTIF_SEND: {}",
                    std::io::Error::from_raw_os_error(e)
                )),
            }
        }
    }

    fn id_valid(&self, id: u64) -> bool {
        // SAFETY: ioctl with a valid pointer to a u64.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &id,
            ) == 0
        }
    }

    fn handle(
        &mut self,
        n: &libc::seccomp_notif,
        name: &'static str,
        stats: &Mutex<SupervisorStats>,
    ) -> (Response, Option<Duration>) {
        let a = n.data.args;
        let pid = n.pid;
        // A fault either fails the call or (a pure delay) lets the usual handling answer
        // it later: a delay never bypasses the cgroupfs mount refusal.
        let mut delay = None;
        if let Some((errno, d)) = self.check_faults(n, name, stats) {
            if let Some(e) = errno {
                return (Response::Errno(e), d);
            }
            delay = d;
        }
        let r = match name {
            "uname" => self.uname(n),
            "statfs" => self.statfs(n, PathArg::Cwd(a[0]), a[1]),
            "fstatfs" => self.statfs(n, PathArg::Fd(a[0] as i32), a[1]),
            "open" => self.open(n, libc::AT_FDCWD, a[0], a[1], 0),
            "openat" => self.open(n, a[0] as i32, a[1], a[2], 0),
            "openat2" => {
                let mut how = OpenHow::default();
                // SAFETY: OpenHow is repr(C) plain old data.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(
                        &mut how as *mut OpenHow as *mut u8,
                        std::mem::size_of::<OpenHow>(),
                    )
                };
                if a[3] < 24 || remote::read_mem(pid, a[2], bytes) != Ok(24) {
                    Response::Continue
                } else {
                    self.open(n, a[0] as i32, a[1], how.flags, how.resolve)
                }
            }
            "mount" => self.deny_cgroupfs(n, a[2], Some(a[1]), stats),
            "fsopen" => self.deny_cgroupfs(n, a[0], None, stats),
            "clone" | "clone3" | "fork" | "vfork" => match &self.fork_gate {
                Some(gate) => gate.0(pid).map_or(Response::Continue, Response::Errno),
                None => Response::Continue,
            },
            _ => Response::Continue,
        };
        if matches!(r, Response::Value(_)) {
            lock(stats).spoofed += 1;
        }
        (r, delay)
    }

    fn check_faults(
        &mut self,
        n: &libc::seccomp_notif,
        name: &'static str,
        stats: &Mutex<SupervisorStats>,
    ) -> Option<(Option<i32>, Option<Duration>)> {
        if self.faults.is_empty() {
            return None;
        }
        let (op, first, second) = op_of(name, &n.data.args)?;
        if !self.faults.faults().any(|f| f.op == op) {
            return None;
        }
        let paths: Vec<String> = [Some(first), second]
            .into_iter()
            .flatten()
            .filter_map(|arg| self.target_path(n.pid, arg))
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .collect();
        let fired = self.faults.next_hit(op, &paths, 0)?;
        let f = fired.fault;
        let errno = match f.effect {
            Some(Effect::Errno(e)) => Some(e),
            _ => None,
        };
        let hit = FaultHit {
            fault: f.id,
            layer: Layer::Syscall,
            op,
            syscall: name,
            path: fired.path.to_owned(),
            effect: f.effect.clone(),
            call: fired.call,
            pid: n.pid,
        };
        let delay = f.delay;
        lock(stats).faults_fired.push(hit);
        Some((errno, delay))
    }

    /// The target's root as the supervisor sees it, if it is not "/".
    fn root_prefix(&self, pid: u32) -> Option<Vec<u8>> {
        remote::readlink(format!("/proc/{pid}/root").as_bytes()).filter(|r| r != b"/")
    }

    fn strip_root(&self, pid: u32, p: Vec<u8>) -> Vec<u8> {
        if p.first() != Some(&b'/') {
            return p;
        }
        match self.root_prefix(pid) {
            Some(root) => match procpath::strip_prefix(&p, &root) {
                Some(rest) => procpath::join(b"/", rest),
                None => p,
            },
            None => p,
        }
    }

    /// A path argument as the target names it, absolute and normalized (symlinks not
    /// followed); for fds whatever readlink shows ("pipe:[..]" for pipes).
    fn target_path(&mut self, pid: u32, arg: PathArg) -> Option<Vec<u8>> {
        let (dirfd, addr, empty_ok) = match arg {
            PathArg::Fd(fd) => {
                let l = remote::readlink(format!("/proc/{pid}/fd/{fd}").as_bytes())?;
                return Some(self.strip_root(pid, l));
            }
            PathArg::Cwd(a) => (libc::AT_FDCWD, a, false),
            PathArg::At(d, a, e) => (d, a, e),
        };
        let mut s = std::mem::take(&mut self.buf);
        let ok = read_cstr(pid, addr, &mut s).is_ok();
        let out = if !ok {
            None
        } else if s.first() == Some(&b'/') {
            Some(procpath::normalize(&s))
        } else {
            let base = if dirfd == libc::AT_FDCWD {
                format!("/proc/{pid}/cwd")
            } else {
                format!("/proc/{pid}/fd/{dirfd}")
            };
            remote::readlink(base.as_bytes()).map(|b| {
                let b = self.strip_root(pid, b);
                if s.is_empty() && empty_ok {
                    b
                } else {
                    procpath::join(&b, &s)
                }
            })
        };
        self.buf = s;
        out
    }

    fn uname(&mut self, n: &libc::seccomp_notif) -> Response {
        let mut u = self.utsname;
        if self.plan.kernel.nodename.is_none() {
            if let Some(t) = self.target_uts(n.pid) {
                u.nodename = t.nodename;
                u.domainname = t.domainname;
            }
        }
        // SAFETY: utsname is plain old data.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                &u as *const _ as *const u8,
                std::mem::size_of::<libc::utsname>(),
            )
        };
        if !self.id_valid(n.id) {
            return Response::Continue;
        }
        match remote::write_mem(n.pid, n.data.args[0], bytes) {
            Ok(()) => Response::Value(0),
            Err(_) => Response::Errno(libc::EFAULT),
        }
    }

    /// The real uname of the target's UTS namespace when it differs from ours (the
    /// target set its own hostname): enter it on this thread, ask, come back.
    fn target_uts(&self, pid: u32) -> Option<libc::utsname> {
        let path = format!("/proc/{pid}/ns/uts");
        let ino = remote::ns_inode(&path)?;
        if Some(ino) == self.home_uts.as_ref().map(|h| h.1) {
            return None;
        }
        let home = self.home_uts.as_ref()?;
        let fd = open_file(Path::new(&path), libc::O_RDONLY | libc::O_CLOEXEC)?;
        // SAFETY: setns/uname on this (dedicated) thread with valid fds and buffer.
        unsafe {
            if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWUTS) != 0 {
                return None;
            }
            let mut t: libc::utsname = std::mem::zeroed();
            let ok = libc::uname(&mut t) == 0;
            libc::setns(home.0.as_raw_fd(), libc::CLONE_NEWUTS);
            ok.then_some(t)
        }
    }

    fn statfs(&mut self, n: &libc::seccomp_notif, arg: PathArg, buf: u64) -> Response {
        let k = &self.plan.kernel;
        if k.statfs_magic.is_empty()
            && (self.sim_disk_paths.is_empty() || !matches!(arg, PathArg::Fd(_)))
        {
            return Response::Continue;
        }
        let pid = n.pid;
        // The file the target means, opened O_PATH, and its canonical path (and the file
        // system's statfs when it had to be opened from the case's user namespace).
        let mut known = None;
        let (fd, canonical) = match arg {
            PathArg::Fd(fd) => {
                let link = format!("/proc/{pid}/fd/{fd}");
                let Some(l) = remote::readlink(link.as_bytes()) else {
                    return Response::Continue;
                };
                if self.sim_disk_paths.contains(&l) {
                    // fstatfs on a redirected /proc file: it is a procfs file.
                    return self.statfs_answer(n, &link, None, magic::PROC, buf);
                }
                (None, self.strip_root(pid, l))
            }
            _ => {
                let Some(abs) = self.target_path(pid, arg) else {
                    return Response::Continue;
                };
                if !self.id_valid(n.id) {
                    return Response::Continue;
                }
                let fd = match (open_in_root(pid, &abs), &self.userns) {
                    (Ok(fd), _) => fd,
                    (Err(libc::EACCES), Some(userns)) => {
                        match super::joined::open_in_root(userns, pid, &abs) {
                            Ok((fd, st)) => {
                                known = Some(st);
                                fd
                            }
                            Err(_) => return Response::Continue,
                        }
                    }
                    (Err(_), _) => return Response::Continue,
                };
                let Some(l) =
                    remote::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())
                else {
                    return Response::Continue;
                };
                (Some(fd), self.strip_root(pid, l))
            }
        };
        let best = self
            .plan
            .kernel
            .statfs_magic
            .iter()
            .filter_map(|(prefix, m)| {
                let p = prefix.as_os_str().as_bytes();
                procpath::strip_prefix(&canonical, p).map(|_| (p.len(), *m))
            })
            .max_by_key(|(len, _)| *len);
        let Some((_, m)) = best else {
            return Response::Continue;
        };
        match (fd, arg) {
            (Some(_), _) if known.is_some() => self.statfs_reply(n, known, m, buf),
            (Some(fd), _) => self.statfs_answer(n, "", Some(fd.as_raw_fd()), m, buf),
            (None, PathArg::Fd(tfd)) => {
                self.statfs_answer(n, &format!("/proc/{pid}/fd/{tfd}"), None, m, buf)
            }
            _ => Response::Continue,
        }
    }

    fn statfs_answer(
        &mut self,
        n: &libc::seccomp_notif,
        path: &str,
        fd: Option<RawFd>,
        f_type: i64,
        buf: u64,
    ) -> Response {
        let st = match fd {
            Some(fd) => remote::fstatfs(fd),
            None => remote::statfs(path.as_bytes()),
        };
        self.statfs_reply(n, st.ok(), f_type, buf)
    }

    /// Answer a statfs with `st` (`None`: let the kernel answer), its type replaced.
    fn statfs_reply(
        &mut self,
        n: &libc::seccomp_notif,
        st: Option<libc::statfs>,
        f_type: i64,
        buf: u64,
    ) -> Response {
        let Some(mut st) = st else {
            return Response::Continue;
        };
        st.f_type = f_type as _;
        // SAFETY: statfs is plain old data.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                &st as *const libc::statfs as *const u8,
                std::mem::size_of::<libc::statfs>(),
            )
        };
        if !self.id_valid(n.id) {
            return Response::Continue;
        }
        match remote::write_mem(n.pid, buf, bytes) {
            Ok(()) => Response::Value(0),
            Err(_) => Response::Errno(libc::EFAULT),
        }
    }

    fn open(
        &mut self,
        n: &libc::seccomp_notif,
        dirfd: i32,
        addr: u64,
        flags: u64,
        resolve: u64,
    ) -> Response {
        let flags = flags as i32;
        let pid = n.pid;
        if self.plan.templates.is_empty()
            || flags & libc::O_ACCMODE != libc::O_RDONLY
            || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_DIRECTORY | O_TMPFILE_DIR) != 0
        {
            return Response::Continue;
        }
        let mut raw = std::mem::take(&mut self.buf);
        let read = read_cstr(pid, addr, &mut raw);
        let target = if read.is_ok() && self.plan.templates.candidate(&raw) {
            self.proc_rel(pid, dirfd, &raw, resolve & RESOLVE_IN_ROOT != 0)
                .and_then(|rel| {
                    let cgroup_view = (procpath::last_component(&rel) == b"cgroup")
                        .then(|| procpath::view_task(&rel));
                    self.plan
                        .templates
                        .lookup(&rel)
                        .map(|(f, s)| (f.clone(), s, cgroup_view))
                })
        } else {
            None
        };
        self.buf = raw;
        let Some((file, spec, cgroup_view)) = target else {
            return Response::Continue;
        };
        if let Some(PidSpec::Pid(p)) = spec {
            if !self.is_target_pid(pid, p) {
                return Response::Continue;
            }
        }
        if !self.id_valid(n.id) {
            return Response::Continue;
        }
        let keep = flags & (libc::O_NONBLOCK | libc::O_PATH | libc::O_NOATIME);
        if let (Some(task), Some(spec)) = (cgroup_view, spec) {
            if let Some(fd) = self.rendered_cgroup_view(pid, spec, task, &file, keep) {
                return Response::AddFd {
                    fd,
                    cloexec: flags & libc::O_CLOEXEC != 0,
                };
            }
        }
        match open_file(&file, libc::O_RDONLY | libc::O_CLOEXEC | keep) {
            Some(fd) => Response::AddFd {
                fd,
                cloexec: flags & libc::O_CLOEXEC != 0,
            },
            None => Response::Errno(libc::ENOENT),
        }
    }

    /// A per-process `cgroup` view rendered now by [`SupervisorOptions::proc_cgroup`]: a
    /// memfd with the content, reopened read-only (as the target asked: `keep` flags). `None`
    /// keeps the static file (no renderer, the task gone, or no memfd).
    fn rendered_cgroup_view(
        &mut self,
        caller: u32,
        spec: PidSpec,
        task: procpath::ViewTask,
        file: &Path,
        keep: i32,
    ) -> Option<OwnedFd> {
        use procpath::ViewTask;
        let render = self.proc_cgroup.clone()?;
        // A pid the caller named, as its procfs numbers it.
        let named = |p: u32| {
            let ns = remote::ns_inode(&format!("/proc/{caller}/ns/pid"));
            if ns.is_some() && ns != self.sup_pidns {
                CgroupViewOf::CaseNs(p)
            } else {
                CgroupViewOf::Supervisor(p)
            }
        };
        let of = match (task, spec) {
            (ViewTask::Thread(tid), _) => named(tid),
            (ViewTask::CallerThread, _) => CgroupViewOf::Caller(caller),
            // `self`: the thread-group leader's view, whichever thread opens it.
            (ViewTask::Process, PidSpec::Caller) => {
                CgroupViewOf::Caller(remote::tgid_ppid(caller).map_or(caller, |(tgid, _)| tgid))
            }
            (ViewTask::Process, PidSpec::Pid(p)) => named(p),
        };
        let static_view = std::fs::read(file).ok()?;
        let content = render.0(of, &static_view)?;
        let mem = nix::sys::memfd::memfd_create(c"cgroup", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .ok()?;
        let mut f = std::fs::File::from(mem);
        std::io::Write::write_all(&mut f, &content).ok()?;
        // A read-only open of the memfd (its own offset 0), as the target's open asked.
        open_file(
            Path::new(&format!("/proc/self/fd/{}", f.as_raw_fd())),
            libc::O_RDONLY | libc::O_CLOEXEC | keep,
        )
    }

    /// The opened path relative to the root of the procfs it lies in, if it lies in one.
    fn proc_rel(&mut self, pid: u32, dirfd: i32, raw: &[u8], in_root: bool) -> Option<Vec<u8>> {
        if raw.first() == Some(&b'/') && !in_root {
            let p = procpath::normalize(raw);
            if let Some(rel) = procpath::strip_prefix(&p, b"/proc") {
                return Some(rel.to_vec());
            }
            // A procfs mounted elsewhere?
            let mi = remote::read_file(format!("/proc/{pid}/mountinfo").as_bytes())?;
            let mounts = procpath::parse_mountinfo(&mi);
            let m = procpath::containing_mount(&mounts, &p)?;
            if m.fstype != b"proc" {
                return None;
            }
            return procpath::strip_prefix(&p, &m.mount_point).map(<[u8]>::to_vec);
        }
        let raw = if in_root {
            raw.strip_prefix(b"/").unwrap_or(raw)
        } else {
            raw
        };
        let base = if dirfd == libc::AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{dirfd}")
        };
        let link = remote::readlink(base.as_bytes())?;
        let on_proc = remote::statfs(base.as_bytes()).ok()?.f_type as i64 == magic::PROC;
        if !on_proc {
            // A relative path from outside procfs: resolve it as an absolute one.
            let link = self.strip_root(pid, link);
            let abs = procpath::join(&link, raw);
            return self.proc_rel(pid, libc::AT_FDCWD, &abs, false);
        }
        let link = self.strip_root(pid, link);
        let full = procpath::join(&link, raw);
        if link == b"/proc" || link.starts_with(b"/proc/") {
            return procpath::strip_prefix(&full, b"/proc").map(<[u8]>::to_vec);
        }
        // Where is this procfs mounted? Detached (fsmount, open_tree) mounts are not in
        // mountinfo, and readlink shows paths relative to their root.
        let mi = remote::read_file(format!("/proc/{pid}/mountinfo").as_bytes())?;
        let mounts = procpath::parse_mountinfo(&mi);
        let mount_point: Vec<u8> = if dirfd == libc::AT_FDCWD {
            procpath::containing_mount(&mounts, &link)?
                .mount_point
                .clone()
        } else {
            let id = remote::fd_mnt_id(pid, dirfd)?;
            match mounts.iter().find(|m| m.id == id) {
                Some(m) => m.mount_point.clone(),
                None => b"/".to_vec(),
            }
        };
        procpath::strip_prefix(&full, &mount_point).map(<[u8]>::to_vec)
    }

    /// Whether `p` (a pid as the caller's procfs numbers it) is a process of the target.
    fn is_target_pid(&mut self, caller: u32, p: u32) -> bool {
        let caller_ns = remote::ns_inode(&format!("/proc/{caller}/ns/pid"));
        if caller_ns.is_some() && caller_ns != self.sup_pidns {
            // The target has its own pid namespace: every pid it can name is a process of
            // the simulated host, if it exists (looked up in the target's /proc).
            return Path::new(&format!("/proc/{caller}/root/proc/{p}")).exists();
        }
        let mut x = p;
        for _ in 0..64 {
            if self.known.contains(&x) {
                self.known.insert(p);
                return true;
            }
            let Some((tgid, ppid)) = remote::tgid_ppid(x) else {
                return false;
            };
            if self.known.contains(&tgid) {
                self.known.insert(p);
                return true;
            }
            if ppid <= 1 {
                return false;
            }
            x = ppid;
        }
        false
    }

    fn deny_cgroupfs(
        &mut self,
        n: &libc::seccomp_notif,
        fstype: u64,
        target: Option<u64>,
        stats: &Mutex<SupervisorStats>,
    ) -> Response {
        if fstype == 0 {
            return Response::Continue;
        }
        let mut s = Vec::new();
        if read_cstr(n.pid, fstype, &mut s).is_err() {
            // Fail closed: we cannot tell what would be mounted.
            return Response::Errno(libc::EFAULT);
        }
        // "cpuset" is the legacy name of a v1 cgroup hierarchy with the cpuset controller.
        if s != b"cgroup" && s != b"cgroup2" && s != b"cpuset" {
            return Response::Continue;
        }
        let what = match target.and_then(|t| self.target_path(n.pid, PathArg::Cwd(t))) {
            Some(p) => format!(
                "mount {} on {}",
                String::from_utf8_lossy(&s),
                String::from_utf8_lossy(&p)
            ),
            None => format!("fsopen {}", String::from_utf8_lossy(&s)),
        };
        lock(stats).denied.push(what);
        Response::Errno(libc::EPERM)
    }
}

fn lock(m: &Mutex<SupervisorStats>) -> std::sync::MutexGuard<'_, SupervisorStats> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn put_field(field: &mut [libc::c_char; 65], value: &str) {
    field.fill(0);
    for (d, s) in field.iter_mut().zip(value.bytes().take(64)) {
        *d = s as libc::c_char;
    }
}

fn open_file(path: &Path, flags: i32) -> Option<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    // SAFETY: fresh fd.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `abs` (an absolute path as the target sees it) with O_PATH, resolving inside the
/// target's root (absolute symlinks included) when the kernel has openat2.
fn open_in_root(pid: u32, abs: &[u8]) -> Result<OwnedFd, i32> {
    let root = CString::new(format!("/proc/{pid}/root")).map_err(|_| libc::EINVAL)?;
    // SAFETY: valid C string.
    let rfd = unsafe {
        libc::open(
            root.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY,
        )
    };
    if rfd < 0 {
        return Err(errno());
    }
    // SAFETY: fresh fd.
    let rfd = unsafe { OwnedFd::from_raw_fd(rfd) };
    let rel = abs.strip_prefix(b"/").unwrap_or(abs);
    let rel = CString::new(if rel.is_empty() { b"." } else { rel }).map_err(|_| libc::EINVAL)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    // SAFETY: valid fd, C string and open_how of the stated size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            rfd.as_raw_fd(),
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    } as i32;
    let fd = if fd < 0 && errno() == libc::ENOSYS {
        // SAFETY: valid fd and C string.
        unsafe {
            libc::openat(
                rfd.as_raw_fd(),
                rel.as_ptr(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        }
    } else {
        fd
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The operation a syscall performs and its path arguments, for fault matching.
fn op_of(name: &str, a: &[u64; 6]) -> Option<(Op, PathArg, Option<PathArg>)> {
    let at = |d: usize, p: usize| PathArg::At(a[d] as i32, a[p], false);
    let cwd = |p: usize| PathArg::Cwd(a[p]);
    let fd = |f: usize| PathArg::Fd(a[f] as i32);
    Some(match name {
        "open" | "creat" => (Op::Open, cwd(0), None),
        "openat" | "openat2" => (Op::Open, at(0, 1), None),
        "read" | "pread64" | "readv" | "preadv" | "preadv2" => (Op::Read, fd(0), None),
        "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => (Op::Write, fd(0), None),
        "mkdir" => (Op::Mkdir, cwd(0), None),
        "mkdirat" => (Op::Mkdir, at(0, 1), None),
        "rmdir" => (Op::Rmdir, cwd(0), None),
        "unlink" => (Op::Unlink, cwd(0), None),
        "unlinkat" if a[2] as i32 & libc::AT_REMOVEDIR != 0 => (Op::Rmdir, at(0, 1), None),
        "unlinkat" => (Op::Unlink, at(0, 1), None),
        "rename" => (Op::Rename, cwd(0), Some(cwd(1))),
        "renameat" | "renameat2" => (Op::Rename, at(0, 1), Some(at(2, 3))),
        "statfs" => (Op::Statfs, cwd(0), None),
        "fstatfs" => (Op::Statfs, fd(0), None),
        "stat" | "lstat" => (Op::Stat, cwd(0), None),
        "fstat" => (Op::Stat, fd(0), None),
        "newfstatat" | "statx" => {
            let flags = if name == "statx" { a[2] } else { a[3] } as i32;
            (
                Op::Stat,
                PathArg::At(a[0] as i32, a[1], flags & libc::AT_EMPTY_PATH != 0),
                None,
            )
        }
        "truncate" => (Op::Truncate, cwd(0), None),
        "ftruncate" => (Op::Truncate, fd(0), None),
        "chmod" => (Op::Chmod, cwd(0), None),
        "fchmod" => (Op::Chmod, fd(0), None),
        "fchmodat" | "fchmodat2" => (Op::Chmod, at(0, 1), None),
        "chown" | "lchown" => (Op::Chown, cwd(0), None),
        "fchown" => (Op::Chown, fd(0), None),
        "fchownat" => (Op::Chown, at(0, 1), None),
        "getdents" | "getdents64" => (Op::Readdir, fd(0), None),
        "mount" => (Op::Mount, cwd(1), None),
        _ => return None,
    })
}
