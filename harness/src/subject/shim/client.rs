//! `cgrepro-shim-client`: containerd's part, played inside a case's sandbox.
//!
//! Reads a [`ClientConfig`] on stdin and reports on the driver channel (fd
//! `CGREPRO_CHANNEL_FD`): one `op_start`/`op` pair per Task call, then one `shim` event
//! ([`ShimEvent`]). Exits 0 when it could report, 2 when it could not even read its config.
//!
//! Steps (see the parent module for why this runs inside the sandbox):
//!
//! 1. keep copies of its own simulated `/proc/self/{mountinfo,cgroup}` views;
//! 2. become child subreaper; unshare a mount and a network namespace (owned by the
//!    sandbox's user namespace, so the shim may mount and configure its network as root
//!    does on a host); `lo` up;
//! 3. private `/run` (and `/var/run` when it is not a link to it), `/tmp`, the pod's
//!    network namespace bound at `/var/run/netns/cni-cgrepro`, a private `/dev` with
//!    null, zero, full, random, urandom, tty, `shm`, the preset's devices (`kvm`) and a
//!    syslog socket at `/dev/log`;
//! 4. the configuration and placeholder files, the bundle (`config.json`, `rootfs/`, the
//!    `log` FIFO, opened for reading first);
//! 5. `SHIM -namespace NS -address ADDR -publish-binary /bin/true -id ID start` in the
//!    bundle, with containerd's environment (`TTRPC_ADDRESS`, `NAMESPACE`, ...); read the
//!    address it prints and the daemon's pid from `shim.pid`; bind the simulated views
//!    over the daemon's `/proc/<pid>/{mountinfo,cgroup}` (belt and braces: the syscall
//!    layer already redirects every process's opens of them, but code that reads them
//!    some other way — mmap, a procfs mounted later — still sees the host's);
//! 6. ttrpc Task client: the calls, each with a deadline; after the first failure no
//!    further call is made (containerd tears down);
//! 7. teardown: Shutdown if the daemon still runs, the grace period, SIGKILL of its
//!    process group; every other process of the case killed; everything reaped.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::Message;
use serde_json::{json, Value};

use cgrepro_driver::{channel, Channel, Event, CHANNEL_FD_ENV};

use super::task_api::{self, Bootstrap};
use super::{ClientConfig, ShimEvent};

const CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The fd fixture shims find the channel on (`CGREPRO_CHANNEL_FD`).
const SHIM_CHANNEL_FD: RawFd = 5;

/// The client's entry point.
pub fn main() -> ! {
    // The protocol's channel (close-on-exec: the shim must not inherit it by accident).
    let chan = channel();
    let mut input = String::new();
    let config: ClientConfig = match std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&input).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: reading the shim client config: {e}");
            std::process::exit(2);
        }
    };
    let mut ev = ShimEvent::default();
    let t = Instant::now();
    match Host::prepare(&config) {
        Ok(host) => {
            ev.phase("host", t);
            run(&config, &host, &chan, &mut ev)
        }
        Err(e) => ev.setup_error = Some(e.to_string()),
    }
    teardown_everything(&mut ev);
    let mut v = serde_json::to_value(&ev).unwrap_or(Value::Null);
    v["event"] = json!("shim");
    chan.send(&v);
    std::process::exit(0)
}

/// A step of preparing the shim's host that failed: what was being done, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct HostSetupError {
    what: String,
    #[source]
    source: std::io::Error,
}

impl HostSetupError {
    /// `what` failed with this I/O error.
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HostSetupError {
        let what = what.into();
        move |source| HostSetupError { what, source }
    }

    /// `what` failed with the calling thread's errno.
    fn last_os(what: impl Into<String>) -> HostSetupError {
        HostSetupError::io(what)(std::io::Error::last_os_error())
    }
}

fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), HostSetupError> {
    nix::mount::mount(
        Some(src),
        target,
        (!fstype.is_empty()).then_some(fstype),
        nix::mount::MsFlags::from_bits_retain(flags),
        (!data.is_empty()).then_some(data),
    )
    .map_err(|e| {
        HostSetupError::io(format!("mount {fstype} {src} on {target}"))(std::io::Error::from(e))
    })
}

/// An `O_PATH` handle on `path`, if it exists (kept across the mounts that cover it).
fn path_fd(path: &str) -> Option<OwnedFd> {
    use nix::fcntl::{open, OFlag};
    open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
}

fn touch(path: &str) -> Result<(), HostSetupError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(|_| ())
        .map_err(HostSetupError::io(format!("creating {path}")))
}

fn mkdir_p(path: &str) -> Result<(), HostSetupError> {
    std::fs::create_dir_all(path).map_err(HostSetupError::io(format!("creating {path}")))
}

/// The shim's host, prepared.
struct Host {
    views: Vec<(String, String)>,
    syslog: UnixDatagram,
    log: std::fs::File,
}

impl Host {
    fn prepare(config: &ClientConfig) -> Result<Host, HostSetupError> {
        // Our own simulated views, before anything changes.
        let mut views = Vec::new();
        for name in ["mountinfo", "cgroup"] {
            let text = std::fs::read_to_string(format!("/proc/self/{name}"))
                .map_err(HostSetupError::io(format!("reading /proc/self/{name}")))?;
            views.push((name.to_owned(), text));
        }
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| HostSetupError::io("PR_SET_CHILD_SUBREAPER")(std::io::Error::from(e)))?;
        use nix::sched::CloneFlags;
        nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET).map_err(|e| {
            HostSetupError::io("unshare(CLONE_NEWNS|CLONE_NEWNET)")(std::io::Error::from(e))
        })?;
        mount("", "/", "", libc::MS_REC | libc::MS_PRIVATE, "")?;
        // SAFETY: loopback_up makes two ioctls on a socket it opens and closes; it only
        // needs to run in the network namespace to change (ours, just unshared).
        if unsafe { crate::sandbox::spawn::loopback_up() } != 0 {
            return Err(HostSetupError::last_os("bringing up lo"));
        }
        // Device nodes of the real /dev, held before /dev is covered.
        let mut held = Vec::new();
        for n in ["null", "zero", "full", "random", "urandom", "tty"] {
            if let Some(fd) = path_fd(&format!("/dev/{n}")) {
                held.push((n.to_owned(), fd));
            }
        }
        let kvm_src = match &config.kvm_node {
            Some(p) => path_fd(&p.to_string_lossy()),
            None => None,
        };
        let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
        // The host's systemd sockets (crate::systemd) stay visible in the fresh /run.
        let mut sockets = Vec::new();
        for d in ["/run/systemd", "/run/dbus"] {
            if let Some(fd) = path_fd(d) {
                sockets.push((d, fd));
            }
        }
        mount("tmpfs", "/run", "tmpfs", nosuid, "mode=755")?;
        let var_run = Path::new("/var/run");
        let own_var_run = var_run.is_dir() && !var_run.is_symlink();
        if own_var_run {
            mount("tmpfs", "/var/run", "tmpfs", nosuid, "mode=755")?;
        }
        for (d, fd) in &sockets {
            let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let mut targets = vec![d.to_string()];
            if own_var_run {
                targets.push(format!("/var{d}"));
            }
            for t in targets {
                mkdir_p(&t)?;
                mount(&src, &t, "", libc::MS_BIND, "")?;
            }
        }
        // /tmp is already private to the case (and may hold the exposed binaries' dir).
        // The pod's network namespace, as CRI makes one.
        let netns_dir = Path::new(&config.netns)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        mkdir_p(&netns_dir)?;
        touch(&config.netns)?;
        mount("/proc/self/ns/net", &config.netns, "", libc::MS_BIND, "")?;
        // /dev.
        mount(
            "tmpfs",
            "/dev",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "mode=755",
        )?;
        for (n, fd) in &held {
            let target = format!("/dev/{n}");
            touch(&target)?;
            mount(
                &format!("/proc/self/fd/{}", fd.as_raw_fd()),
                &target,
                "",
                libc::MS_BIND,
                "",
            )?;
        }
        mkdir_p("/dev/shm")?;
        mount("tmpfs", "/dev/shm", "tmpfs", nosuid, "mode=1777")?;
        for d in &config.devices {
            let target = format!("/dev/{d}");
            touch(&target)?;
            let src = match (d.as_str(), &kvm_src) {
                ("kvm", Some(fd)) => format!("/proc/self/fd/{}", fd.as_raw_fd()),
                _ => "/dev/null".to_owned(),
            };
            mount(&src, &target, "", libc::MS_BIND, "")?;
        }
        drop(held);
        let syslog =
            UnixDatagram::bind("/dev/log").map_err(HostSetupError::io("binding /dev/log"))?;
        let _ = std::fs::set_permissions("/dev/log", std::fs::Permissions::from_mode(0o666));
        syslog
            .set_nonblocking(true)
            .map_err(HostSetupError::io("/dev/log"))?;
        // Configuration and placeholders.
        for f in &config.files {
            if let Some(dir) = Path::new(&f.path).parent() {
                mkdir_p(&dir.to_string_lossy())?;
            }
            std::fs::write(&f.path, &f.content)
                .map_err(HostSetupError::io(format!("writing {}", f.path)))?;
            std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(f.mode))
                .map_err(HostSetupError::io(format!("chmod {}", f.path)))?;
        }
        mkdir_p("/run/containerd")?;
        // The bundle.
        mkdir_p(&config.bundle)?;
        mkdir_p(&format!("{}/rootfs", config.bundle))?;
        let spec = serde_json::to_string_pretty(&config.spec).unwrap_or_default();
        std::fs::write(format!("{}/config.json", config.bundle), spec)
            .map_err(HostSetupError::io("writing config.json"))?;
        let fifo = format!("{}/log", config.bundle);
        nix::unistd::mkfifo(
            fifo.as_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o700),
        )
        .map_err(|e| HostSetupError::io("mkfifo log")(std::io::Error::from(e)))?;
        // Read-write: never EOF before the shim opens it, never blocks.
        let log = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("{}/log", config.bundle))
            .map_err(HostSetupError::io("opening the log FIFO"))?;
        Ok(Host { views, syslog, log })
    }
}

/// Collects the log FIFO and syslog while the shim runs.
struct Collector {
    log: Arc<Mutex<Vec<u8>>>,
    syslog: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(host: &Host) -> Result<Collector, HostSetupError> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let syslog = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let log_f = host
            .log
            .try_clone()
            .map_err(HostSetupError::io("cloning the log FIFO"))?;
        let sys = host
            .syslog
            .try_clone()
            .map_err(HostSetupError::io("cloning /dev/log"))?;
        let (l, s, st) = (Arc::clone(&log), Arc::clone(&syslog), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let last = st.load(Ordering::SeqCst);
                let mut pfds = [
                    libc::pollfd {
                        fd: log_f.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: sys.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: `pfds` is a live array of two pollfds; the fds are ours (held open
                // by `log_f` and `sys` for the whole loop).
                unsafe { libc::poll(pfds.as_mut_ptr(), 2, if last { 0 } else { 5 }) };
                loop {
                    // SAFETY: reads into `buf`, a live buffer of `buf.len()` bytes, from an fd
                    // `log_f` holds open.
                    let n = unsafe {
                        libc::read(log_f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n <= 0 {
                        break;
                    }
                    let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
                    if g.len() < 4 * 1024 * 1024 {
                        g.extend_from_slice(&buf[..n as usize]);
                    }
                }
                while let Ok(n) = sys.recv(&mut buf) {
                    let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
                    let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                    if g.len() < 10_000 {
                        g.push(line);
                    }
                }
                if last {
                    break;
                }
            }
        });
        Ok(Collector {
            log,
            syslog,
            stop,
            thread: Some(thread),
        })
    }

    fn finish(mut self, ev: &mut ShimEvent) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        ev.log = String::from_utf8_lossy(&self.log.lock().unwrap_or_else(|e| e.into_inner()))
            .into_owned();
        ev.syslog = std::mem::take(&mut *self.syslog.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

fn wait_timeout(pid: libc::pid_t, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes the status into `st`, a live i32.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return Some(st);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn run(config: &ClientConfig, host: &Host, chan: &Channel, ev: &mut ShimEvent) {
    let collector = match Collector::start(host) {
        Ok(c) => c,
        Err(e) => {
            ev.setup_error = Some(format!("starting the log readers: {e}"));
            return;
        }
    };
    let call_timeout = Duration::from_millis(config.call_timeout_ms.max(1));
    let grace = Duration::from_millis(config.grace_ms.max(1));
    let t = Instant::now();
    let daemon = bootstrap(config, ev, call_timeout);
    ev.phase("start", t);
    if let Some(pid) = daemon {
        ev.daemon_pid = Some(pid);
        for (name, text) in &host.views {
            // Best effort: the daemon may already be gone.
            let file = format!("/run/cgrepro/views/{name}");
            if mkdir_p("/run/cgrepro/views").is_ok() && std::fs::write(&file, text).is_ok() {
                let _ = mount(&file, &format!("/proc/{pid}/{name}"), "", libc::MS_BIND, "");
            }
        }
        calls(config, ev, chan, pid, call_timeout, grace);
    }
    collector.finish(ev);
}

/// `SHIM ... start`: the daemon's pid, when it printed an address and wrote shim.pid.
fn bootstrap(config: &ClientConfig, ev: &mut ShimEvent, timeout: Duration) -> Option<i32> {
    let mut cmd = std::process::Command::new(&config.shim);
    cmd.args([
        "-namespace",
        &config.namespace,
        "-address",
        CONTAINERD_ADDRESS,
        "-publish-binary",
        "/bin/true",
        "-id",
        &config.id,
        "start",
    ])
    .current_dir(&config.bundle)
    .env_clear()
    .envs(std::env::vars().filter(|(k, _)| !k.starts_with("CGREPRO_")))
    .env("TTRPC_ADDRESS", format!("{CONTAINERD_ADDRESS}.ttrpc"))
    .env("GRPC_ADDRESS", CONTAINERD_ADDRESS)
    .env("NAMESPACE", &config.namespace)
    .env("MAX_SHIM_VERSION", "2")
    .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if config.channel_to_shim {
        cmd.env(CHANNEL_FD_ENV, SHIM_CHANNEL_FD.to_string());
        if let Some(fd) = channel().fd() {
            // SAFETY: dup2 is async-signal-safe; the new fd has no CLOEXEC.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(fd, SHIM_CHANNEL_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            ev.bootstrap_stderr = format!("cannot execute {}: {e}", config.shim.display());
            return None;
        }
    };
    // One thread reads start's output while waiting: no thread is created meanwhile, so
    // the daemon's pid (it shows in cgroup.procs) is the same on every run.
    let out = child.stdout.take();
    let err = child.stderr.take();
    let pid = child.id() as libc::pid_t;
    let mut bufs = [Vec::new(), Vec::new()];
    let fds = [
        out.as_ref().map_or(-1, |o| o.as_raw_fd()),
        err.as_ref().map_or(-1, |e| e.as_raw_fd()),
    ];
    let mut open = [fds[0] >= 0, fds[1] >= 0];
    let deadline = Instant::now() + timeout;
    let mut status = None;
    let mut exited: Option<Instant> = None;
    let mut chunk = [0u8; 4096];
    loop {
        if status.is_none() {
            let mut st = 0;
            // SAFETY: waitpid writes the status into `st`, a live i32.
            if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                status = Some(st);
                exited = Some(Instant::now());
            }
        }
        let now = Instant::now();
        // The daemon may hold start's pipes: drain at most 200 ms after start exited.
        let drain_over = exited.is_some_and(|t| now >= t + Duration::from_millis(200));
        if (status.is_some() && !open.iter().any(|o| *o)) || drain_over {
            break;
        }
        if status.is_none() && now >= deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = wait_timeout(pid, Duration::from_secs(1));
            ev.teardown.push(format!(
                "start did not finish within {}: killed",
                humantime::format_duration(timeout)
            ));
            break;
        }
        let mut pfds: Vec<libc::pollfd> = (0..2)
            .filter(|&i| open[i])
            .map(|i| libc::pollfd {
                fd: fds[i],
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `pfds` is a live vector of pollfds on fds `out` and `err` hold open.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, 1) };
        for p in &pfds {
            if p.revents == 0 {
                continue;
            }
            let i = if p.fd == fds[0] { 0 } else { 1 };
            // SAFETY: reads into `chunk`, a live buffer of `chunk.len()` bytes, from an fd
            // `out` or `err` holds open.
            let n = unsafe { libc::read(p.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n <= 0 {
                open[i] = false;
            } else if bufs[i].len() < 1 << 20 {
                bufs[i].extend_from_slice(&chunk[..n as usize]);
            }
        }
    }
    drop((out, err));
    std::mem::forget(child); // reaped above
    ev.bootstrap_status = status;
    ev.bootstrap_stdout = String::from_utf8_lossy(&bufs[0]).into_owned();
    ev.bootstrap_stderr = String::from_utf8_lossy(&bufs[1]).into_owned();
    if status != Some(0) {
        return None;
    }
    let pid_file = format!("{}/shim.pid", config.bundle);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if ev.bootstrap_stdout.trim().is_empty() {
        return None;
    }
    // containerd decides the task API from the reply; a version it does not speak ends
    // the task's creation there (the daemon is left to teardown).
    match task_api::parse(&ev.bootstrap_stdout) {
        Ok(b) => ev.task_api = Some(b),
        Err(e) => ev.client = Some(e.to_string()),
    }
    Some(pid)
}

/// containerd's wording of a ttrpc client error.
fn wording(e: &ttrpc::Error) -> String {
    match e {
        ttrpc::Error::Socket(_)
        | ttrpc::Error::LocalClosed
        | ttrpc::Error::RemoteClosed
        | ttrpc::Error::Eof => "ttrpc: closed".into(),
        ttrpc::Error::Nix(e)
            if [libc::EPIPE, libc::ECONNRESET, libc::ECONNREFUSED].contains(&(*e as i32)) =>
        {
            "ttrpc: closed".into()
        }
        ttrpc::Error::RpcStatus(s) => {
            let code = format!("{:?}", s.code()).to_lowercase().replace('_', " ");
            format!("{}: {code}", s.message)
        }
        ttrpc::Error::Others(m) if m.contains("timeout") => "context deadline exceeded".into(),
        other => other.to_string(),
    }
}

fn ctx(timeout: Duration) -> ttrpc::context::Context {
    ttrpc::context::with_timeout(timeout.as_nanos() as i64)
}

fn calls(
    config: &ClientConfig,
    ev: &mut ShimEvent,
    chan: &Channel,
    daemon: i32,
    timeout: Duration,
    grace: Duration,
) {
    let Some(negotiated) = ev.task_api.clone() else {
        // Refused at bootstrap: nothing to call; the daemon is killed below.
        return kill_daemon(ev, daemon, grace);
    };
    let address = negotiated.address.clone();
    let client = match ttrpc::Client::connect(&address) {
        Ok(c) => Some(Task::new(c, &negotiated)),
        Err(e) => {
            let why = match &e {
                ttrpc::Error::Nix(n) => std::io::Error::from_raw_os_error(*n as i32).to_string(),
                other => other.to_string(),
            };
            ev.client = Some(format!("dial {address}: connect: {why}"));
            None
        }
    };
    let mut alive = client.is_some();
    if let Some(task) = &client {
        for op in &config.ops {
            chan.emit(&Event::op_start(op));
            let t = Instant::now();
            let mut r = call(task, op, config, timeout);
            ev.phase(op, t);
            // containerd ignores `ttrpc: closed` from Shutdown: the shim may exit before
            // its reply is written.
            if op == "shutdown" && r.as_ref().is_err_and(|e| wording(e) == "ttrpc: closed") {
                r = Ok(None);
            }
            match r {
                Ok(value) => chan.emit(&Event::op_ok(op, value)),
                Err(e) => {
                    let w = wording(&e);
                    chan.emit(&Event::op_error(op, &w));
                    alive = w != "ttrpc: closed";
                    ev.client = Some(w);
                    break;
                }
            }
            if op == "shutdown" {
                ev.shutdown_sent = true;
                alive = false;
            }
        }
    }
    // Teardown: Shutdown if the daemon may still serve, then wait, then kill.
    let t = Instant::now();
    if let (true, Some(task)) = (alive, &client) {
        ev.shutdown_sent = true;
        let mut req = api::ShutdownRequest::new();
        req.set_id(config.id.clone());
        let r = task.call::<_, api::Empty>("Shutdown", &req, timeout);
        ev.teardown.push(match r {
            Ok(_) => "shutdown: ok".into(),
            Err(e) if wording(&e) == "ttrpc: closed" => "shutdown: ok".into(),
            Err(e) => format!("shutdown: {}", wording(&e)),
        });
    }
    drop(client);
    kill_daemon(ev, daemon, grace);
    ev.phase("teardown", t);
}

/// The end of every shim: its exit within the grace period, else SIGKILL of its process
/// group (recorded as a teardown kill, never as the shim's outcome).
fn kill_daemon(ev: &mut ShimEvent, daemon: i32, grace: Duration) {
    let mut status = wait_timeout(daemon, grace);
    if status.is_none() {
        ev.killed_at_teardown = true;
        ev.teardown
            .push("still running after the grace period: SIGKILL".into());
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(daemon), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(daemon), Signal::SIGKILL);
        status = wait_timeout(daemon, Duration::from_secs(2));
    }
    ev.daemon_status = status;
}

/// A Task client for the negotiated service. (The generated `TaskClient` of
/// containerd-shim-protos speaks `containerd.task.v3.Task` only; the messages of v2 and v3
/// are the same, so one client serves both by naming the service per call.)
struct Task {
    client: ttrpc::Client,
    service: &'static str,
}

impl Task {
    fn new(client: ttrpc::Client, b: &Bootstrap) -> Task {
        Task {
            client,
            service: b.service(),
        }
    }

    fn call<Req: Message, Resp: Message>(
        &self,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, ttrpc::Error> {
        let mut cres = Resp::new();
        let ctx = ctx(timeout);
        ttrpc::client_request!(self, ctx, req, self.service, method, cres);
        Ok(cres)
    }
}

fn call(
    task: &Task,
    op: &str,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<Option<Value>, ttrpc::Error> {
    match op {
        "create" => {
            let mut req = api::CreateTaskRequest::new();
            req.set_id(config.id.clone());
            req.set_bundle(config.bundle.clone());
            req.set_terminal(false);
            task.call::<_, api::CreateTaskResponse>("Create", &req, timeout)
                .map(|r| Some(json!({ "pid": r.pid })))
        }
        "start" => {
            let mut req = api::StartRequest::new();
            req.set_id(config.id.clone());
            task.call::<_, api::StartResponse>("Start", &req, timeout)
                .map(|_| None)
        }
        "delete" => {
            let mut req = api::DeleteRequest::new();
            req.set_id(config.id.clone());
            task.call::<_, api::DeleteResponse>("Delete", &req, timeout)
                .map(|r| Some(json!({ "exit_status": r.exit_status })))
        }
        "shutdown" => {
            let mut req = api::ShutdownRequest::new();
            req.set_id(config.id.clone());
            task.call::<_, api::Empty>("Shutdown", &req, timeout)
                .map(|_| None)
        }
        other => Err(ttrpc::Error::Others(format!("unknown call `{other}`"))),
    }
}

/// Kill every other process of the case (we are its subreaper) and reap everything.
fn teardown_everything(ev: &mut ShimEvent) {
    // Reap what already exited (e.g. a crashed daemon's children).
    let mut leftovers = 0;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-1),
        nix::sys::signal::Signal::SIGKILL,
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes the status into `st`, a live i32.
        let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if r > 0 {
            if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL {
                leftovers += 1;
            }
            continue;
        }
        if r < 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    ev.leftovers = leftovers;
}
