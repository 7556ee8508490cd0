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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

use super::task_api::{self, Bootstrap};
use super::{ClientConfig, ShimEvent};

const CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The fd fixture shims find the channel on (`CGREPRO_CHANNEL_FD`).
const SHIM_CHANNEL_FD: RawFd = 5;

struct Channel(Option<RawFd>);

impl Channel {
    fn send(&self, v: &Value) {
        let Some(fd) = self.0 else { return };
        let mut line = serde_json::to_vec(v).unwrap_or_default();
        line.push(b'\n');
        let mut off = 0;
        while off < line.len() {
            let n = unsafe { libc::write(fd, line[off..].as_ptr().cast(), line.len() - off) };
            if n <= 0 {
                return;
            }
            off += n as usize;
        }
    }
}

/// The client's entry point.
pub fn main() -> ! {
    let chan_fd = std::env::var("CGREPRO_CHANNEL_FD")
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    if let Some(fd) = chan_fd {
        // The shim must not inherit the harness's channel by accident.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let chan = Channel(chan_fd);
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
        Err(e) => ev.setup_error = Some(e),
    }
    teardown_everything(&mut ev);
    let mut v = serde_json::to_value(&ev).unwrap_or(Value::Null);
    v["event"] = json!("shim");
    chan.send(&v);
    std::process::exit(0)
}

fn errno_str(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_default()
}

fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let (s, t, f, d) = (cstr(src), cstr(target), cstr(fstype), cstr(data));
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                f.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno_str(&format!("mount {fstype} {src} on {target}")))
    }
}

fn touch(path: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| format!("creating {path}: {e}"))
}

fn mkdir_p(path: &str) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("creating {path}: {e}"))
}

/// The shim's host, prepared.
struct Host {
    views: Vec<(String, String)>,
    syslog: UnixDatagram,
    log: std::fs::File,
}

impl Host {
    fn prepare(config: &ClientConfig) -> Result<Host, String> {
        // Our own simulated views, before anything changes.
        let mut views = Vec::new();
        for name in ["mountinfo", "cgroup"] {
            let text = std::fs::read_to_string(format!("/proc/self/{name}"))
                .map_err(|e| format!("reading /proc/self/{name}: {e}"))?;
            views.push((name.to_owned(), text));
        }
        unsafe {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(errno_str("PR_SET_CHILD_SUBREAPER"));
            }
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET) != 0 {
                return Err(errno_str("unshare(CLONE_NEWNS|CLONE_NEWNET)"));
            }
        }
        mount("", "/", "", libc::MS_REC | libc::MS_PRIVATE, "")?;
        if unsafe { crate::sandbox::spawn::loopback_up() } != 0 {
            return Err(errno_str("bringing up lo"));
        }
        // Device nodes of the real /dev, held before /dev is covered.
        let mut held = Vec::new();
        for n in ["null", "zero", "full", "random", "urandom", "tty"] {
            let p = cstr(&format!("/dev/{n}"));
            let fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd >= 0 {
                held.push((n.to_owned(), unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let kvm_src = match &config.kvm_node {
            Some(p) => {
                let c = cstr(&p.to_string_lossy());
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            }
            None => None,
        };
        let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
        // The host's systemd sockets (crate::systemd) stay visible in the fresh /run.
        let mut sockets = Vec::new();
        for d in ["/run/systemd", "/run/dbus"] {
            let c = cstr(d);
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd >= 0 {
                sockets.push((d, unsafe { OwnedFd::from_raw_fd(fd) }));
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
            UnixDatagram::bind("/dev/log").map_err(|e| format!("binding /dev/log: {e}"))?;
        let _ = std::fs::set_permissions("/dev/log", std::fs::Permissions::from_mode(0o666));
        syslog
            .set_nonblocking(true)
            .map_err(|e| format!("/dev/log: {e}"))?;
        // Configuration and placeholders.
        for f in &config.files {
            if let Some(dir) = Path::new(&f.path).parent() {
                mkdir_p(&dir.to_string_lossy())?;
            }
            std::fs::write(&f.path, &f.content).map_err(|e| format!("writing {}: {e}", f.path))?;
            std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(f.mode))
                .map_err(|e| format!("chmod {}: {e}", f.path))?;
        }
        mkdir_p("/run/containerd")?;
        // The bundle.
        mkdir_p(&config.bundle)?;
        mkdir_p(&format!("{}/rootfs", config.bundle))?;
        let spec = serde_json::to_string_pretty(&config.spec).unwrap_or_default();
        std::fs::write(format!("{}/config.json", config.bundle), spec)
            .map_err(|e| format!("writing config.json: {e}"))?;
        let fifo = cstr(&format!("{}/log", config.bundle));
        if unsafe { libc::mkfifo(fifo.as_ptr(), 0o700) } != 0 {
            return Err(errno_str("mkfifo log"));
        }
        // Read-write: never EOF before the shim opens it, never blocks.
        let log = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("{}/log", config.bundle))
            .map_err(|e| format!("opening the log FIFO: {e}"))?;
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
    fn start(host: &Host) -> Result<Collector, String> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let syslog = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let log_f = host.log.try_clone().map_err(|e| e.to_string())?;
        let sys = host.syslog.try_clone().map_err(|e| e.to_string())?;
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
                unsafe { libc::poll(pfds.as_mut_ptr(), 2, if last { 0 } else { 5 }) };
                loop {
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
        cmd.env("CGREPRO_CHANNEL_FD", SHIM_CHANNEL_FD.to_string());
        let chan = std::env::var("CGREPRO_CHANNEL_FD")
            .ok()
            .and_then(|v| v.parse::<RawFd>().ok());
        if let Some(fd) = chan {
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
            unsafe { libc::kill(pid, libc::SIGKILL) };
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
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, 1) };
        for p in &pfds {
            if p.revents == 0 {
                continue;
            }
            let i = if p.fd == fds[0] { 0 } else { 1 };
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
        Err(e) => ev.client = Some(e),
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
            chan.send(&json!({ "event": "op_start", "op": op }));
            let t = Instant::now();
            let mut r = call(task, op, config, timeout);
            ev.phase(op, t);
            // containerd ignores `ttrpc: closed` from Shutdown: the shim may exit before
            // its reply is written.
            if op == "shutdown" && r.as_ref().is_err_and(|e| wording(e) == "ttrpc: closed") {
                r = Ok(None);
            }
            match r {
                Ok(value) => {
                    let mut e = json!({ "event": "op", "op": op, "status": "ok" });
                    if let Some(v) = value {
                        e["value"] = v;
                    }
                    chan.send(&e);
                }
                Err(e) => {
                    let w = wording(&e);
                    chan.send(&json!({ "event": "op", "op": op, "status": "error", "error": w }));
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
        unsafe {
            libc::kill(-daemon, libc::SIGKILL);
            libc::kill(daemon, libc::SIGKILL);
        }
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
    unsafe { libc::kill(-1, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut st = 0;
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
