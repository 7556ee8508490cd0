//! `[target] shim = ...`: cgrepro plays containerd for one pod sandbox.
//!
//! The case's target is not the shim itself but `cgrepro-shim-client` ([`client`]), a
//! stand-in for containerd that runs *inside* the case's sandbox: it prepares the shim's
//! host (its own mount and network namespaces; private `/run`, `/var/run/netns` with the
//! pod's network namespace, `/dev` with the preset's device nodes and a syslog socket at
//! `/dev/log`; the runtime configuration and placeholder hypervisor files), writes the
//! bundle, runs `SHIM ... start` as its child while being child subreaper (so the
//! daemonized shim is reparented to it and its exit status — signal included — is
//! reaped), reads the bundle's `log` FIFO, connects a ttrpc Task client to the address the
//! shim printed and makes the scenario's calls, each with a deadline. It reports on the
//! driver channel: one `op` event per call, then one `shim` event with everything else.
//! Teardown always ends with the shim reaped and nothing left running.
//!
//! Running the client inside the sandbox keeps the shim's socket (file or abstract), its
//! network namespace and its subreaper where containerd has them, and needs no change to
//! the sandbox's process chain. [`interpret`] turns the client's report back into the
//! *shim's* outcome (its own class, signal, panic and frames, from the daemon's wait
//! status, its log and its channel events) plus the client-side result (`ttrpc: closed`).
//!
//! This module (harness side) renders what the client needs: the OCI spec (`oci-spec`),
//! the Kata `configuration.toml` ([`kata`]), the placeholder files, and the argv/env.

pub mod client;
pub mod kata;
pub mod task_api;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Drivers;
use crate::evidence::{Captured, Exit, Observed};
use crate::outcome::normalize::Normalizer;
use crate::outcome::parse::OpStatus;
use crate::outcome::{self, describe_exit, Classified, Outcome};
use crate::sandbox::Launch;
use crate::scenario::{Case, Pod};

/// The scenario name of the real Kata shim.
pub const KATA: &str = "kata";
/// Where the real Kata shim binary is found when `--shim` is not given.
pub const KATA_SHIM_ENV: &str = "CGREPRO_KATA_SHIM";
/// Where Kata releases (`target.version`) are found when `--shim-dir` is not given.
pub const KATA_SHIM_DIR_ENV: &str = "CGREPRO_KATA_SHIM_DIR";
/// The client binary (a `cgrepro` crate binary).
pub const CLIENT_BIN: &str = "cgrepro-shim-client";
/// containerd's namespace for CRI pods.
pub const NAMESPACE: &str = "k8s.io";
/// Where the client writes the runtime configuration and the placeholder files.
pub const RUNTIME_DIR: &str = "/run/cgrepro/runtime";
/// The pod's network namespace, as CRI names one.
pub const POD_NETNS: &str = "/var/run/netns/cni-cgrepro";

/// Fixture shims: crates under `fixtures/shims/` with binaries `containerd-shim-<name>-v2`.
pub fn discover_fixtures(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.join("fixtures/shims")) else {
        return names;
    };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("Cargo.toml")) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        let bins = doc.get("bin").and_then(|b| b.as_array());
        for b in bins.into_iter().flatten() {
            if let Some(n) = b.get("name").and_then(|n| n.as_str()) {
                if let Some(name) = n
                    .strip_prefix("containerd-shim-")
                    .and_then(|n| n.strip_suffix("-v2"))
                {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names.sort();
    names
}

fn binary_name(name: &str) -> String {
    format!("containerd-shim-{name}-v2")
}

/// Where Kata releases are looked for without `--shim-dir` / `CGREPRO_KATA_SHIM_DIR`: where
/// `ci/kata-shim.sh` puts them — `/var/cache/cgrepro/kata-shims` for root (whose home is
/// not reachable by the sandbox's unprivileged root), else
/// `${XDG_CACHE_HOME:-~/.cache}/cgrepro/kata-shims`.
pub fn default_shim_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(KATA_SHIM_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/cache/cgrepro/kata-shims");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("cgrepro/kata-shims")
}

/// A Kata release tag: `3.13.0`, `3.2.0-rc0`.
pub fn is_release(v: &str) -> bool {
    let core = v.split('-').next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// The binary of a Kata release in the shim directory.
pub fn release_binary(dir: &Path, version: &str) -> PathBuf {
    dir.join(format!("{}-{version}", binary_name(KATA)))
}

/// Why a shim case's binary is not usable here (the case is then ignored with this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShimUnavailable {
    #[error(
        "needs Kata {version}: no {} (build it with `ci/kata-shim.sh KATA_GIT_DIR {version}`, \
         or point --shim-dir / {dir_env} at a directory holding it)",
        path.display(),
        dir_env = KATA_SHIM_DIR_ENV
    )]
    NoRelease { version: String, path: PathBuf },
    #[error(
        "the Kata shim {} does not exist (from --shim or {env})",
        .0.display(),
        env = KATA_SHIM_ENV
    )]
    NoSuchShim(PathBuf),
    #[error(
        "needs the real Kata shim, which is not on this machine: pass \
         `--shim /path/to/containerd-shim-kata-v2` to cgrepro, or set \
         {env}=/path/to/containerd-shim-kata-v2 (also for `cargo test`); \
         `ci/kata-shim.sh` builds one from Kata's source",
        env = KATA_SHIM_ENV
    )]
    NoKataShim,
    #[error("fixture shim {} is not built (run `cargo build --workspace --bins`)", .0.display())]
    FixtureNotBuilt(PathBuf),
    #[error(
        "the Kata shim {} is not readable and executable by others, as the sandbox's \
         unprivileged root needs (chmod o+rx it)",
        .0.display()
    )]
    NotExecutableByOthers(PathBuf),
    #[error(
        "the Kata shim {} is below {}, which others cannot enter: the sandbox's \
         unprivileged root could not reach it. Put it elsewhere (e.g. {}), or chmod o+x {}",
        shim.display(),
        dir.display(),
        default_shim_dir().display(),
        dir.display()
    )]
    Unreachable { shim: PathBuf, dir: PathBuf },
}

/// The shim binary of a case, or why there is none here.
pub fn binary(
    name: &str,
    version: Option<&str>,
    drivers: &Drivers,
) -> Result<PathBuf, ShimUnavailable> {
    if name == KATA {
        let p = match (version, &drivers.kata_shim) {
            (Some(v), _) => {
                let p = release_binary(&drivers.kata_shim_dir, v);
                if !p.is_file() {
                    return Err(ShimUnavailable::NoRelease {
                        version: v.to_owned(),
                        path: p,
                    });
                }
                p
            }
            (None, Some(p)) if p.is_file() => p.clone(),
            (None, Some(p)) => return Err(ShimUnavailable::NoSuchShim(p.clone())),
            (None, None) => return Err(ShimUnavailable::NoKataShim),
        };
        reachable_by_sandbox(&p)?;
        return Ok(p);
    }
    let p = drivers.bin_dir().join(binary_name(name));
    if p.is_file() {
        Ok(p)
    } else {
        Err(ShimUnavailable::FixtureNotBuilt(p))
    }
}

/// Directories the sandbox makes private and binds exposed binaries back into.
const BOUND_BACK: [&str; 4] = ["/tmp", "/run", "/dev/shm", "/var/tmp"];

/// Run as root, a case's root is an unprivileged uid on the machine: a shim it cannot
/// reach (a parent directory without search permission for others, such as root's home,
/// or a binary not executable by others) would fail inside the sandbox for a reason
/// that is not the shim's. Say so before the case runs.
fn reachable_by_sandbox(p: &Path) -> Result<(), ShimUnavailable> {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let bound_back = |d: &Path| BOUND_BACK.iter().any(|b| d.starts_with(b));
    let mode = |d: &Path| {
        std::fs::metadata(d)
            .map(|m| m.permissions().mode())
            .unwrap_or(0)
    };
    if mode(p) & 0o005 != 0o005 {
        return Err(ShimUnavailable::NotExecutableByOthers(p.to_owned()));
    }
    for d in p.ancestors().skip(1) {
        if bound_back(d) {
            break;
        }
        if mode(d) & 0o001 == 0 {
            return Err(ShimUnavailable::Unreachable {
                shim: p.to_owned(),
                dir: d.to_owned(),
            });
        }
    }
    Ok(())
}

/// A `/dev/kvm` stand-in in the session directory: a character device 10:232 (what Kata
/// checks: "is a character device"), mode 0600 and owned by the real root, so the sandbox's
/// root (an unprivileged uid on the host) cannot open it — no real KVM is reachable. Needs
/// root; without it the client binds /dev/null (also a character device) instead.
pub fn make_kvm_node(session: &Path) -> Option<PathBuf> {
    let dir = session.join("shim-dev");
    std::fs::create_dir_all(&dir).ok()?;
    let node = dir.join("kvm");
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(
        node.as_path(),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        makedev(10, 232),
    )
    .ok()
    .map(|()| node)
}

/// Why a shim case cannot run here, if it cannot.
pub fn unavailable(name: &str, version: Option<&str>, drivers: &Drivers) -> Option<String> {
    if let Err(why) = binary(name, version, drivers) {
        return Some(why.to_string());
    }
    let client = drivers.bin_dir().join(CLIENT_BIN);
    (!client.is_file()).then(|| {
        format!(
            "the shim client {} is not built (run `cargo build --workspace --bins`)",
            client.display()
        )
    })
}

/// What the client is told: everything containerd would know, rendered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientConfig {
    pub shim: PathBuf,
    pub namespace: String,
    pub id: String,
    /// The bundle directory (created by the client).
    pub bundle: String,
    /// The OCI spec, `config.json`.
    pub spec: Value,
    /// Files to create before the shim starts: configuration, placeholders.
    pub files: Vec<FileSpec>,
    /// Extra environment for the shim (`KATA_CONF_FILE`).
    pub env: Vec<(String, String)>,
    /// Task calls, in order.
    pub ops: Vec<String>,
    pub call_timeout_ms: u64,
    /// Between Shutdown and SIGKILL at teardown.
    pub grace_ms: u64,
    /// Device nodes of the host preset (`kvm`).
    pub devices: Vec<String>,
    /// A char device node 10:232 made by the harness (mode 0600, root: unopenable by the
    /// sandbox), bound at /dev/kvm; without one /dev/kvm is a bind of /dev/null.
    pub kvm_node: Option<PathBuf>,
    /// Pass the driver channel to the shim (fixture shims report panics with frames).
    pub channel_to_shim: bool,
    /// The pod's network namespace file.
    pub netns: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSpec {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// The launch of a shim case: the client, with the rendered [`ClientConfig`] on stdin.
pub fn launch(
    case: &Case,
    name: &str,
    version: Option<&str>,
    drivers: &Drivers,
    keep: bool,
) -> Option<Launch> {
    let shim = binary(name, version, drivers).ok()?;
    let bundle = format!(
        "/run/containerd/io.containerd.runtime.v2.task/{NAMESPACE}/{}",
        case.pod.id
    );
    let mut files = Vec::new();
    let mut env = Vec::new();
    let mut annotations = vec![
        ("io.kubernetes.cri.container-type", "sandbox".to_owned()),
        ("io.kubernetes.cri.sandbox-id", case.pod.id.clone()),
        ("io.kubernetes.cri.sandbox-name", "cgrepro".to_owned()),
        ("io.kubernetes.cri.sandbox-namespace", "default".to_owned()),
    ];
    // Kata and the fixture shims read a Kata configuration.toml.
    let rendered = kata::render(&case.runtime);
    let conf = format!("{RUNTIME_DIR}/configuration.toml");
    files.push(FileSpec {
        path: conf.clone(),
        content: rendered.config,
        mode: 0o644,
    });
    files.extend(rendered.placeholders);
    env.push(("KATA_CONF_FILE".to_owned(), conf.clone()));
    annotations.push(("io.katacontainers.config_path", conf));
    let spec = spec(case, &annotations);
    let config = ClientConfig {
        shim: shim.clone(),
        namespace: NAMESPACE.into(),
        id: case.pod.id.clone(),
        bundle,
        spec,
        files,
        env,
        ops: case.target.ops.clone(),
        call_timeout_ms: case.target.call_timeout.as_millis() as u64,
        grace_ms: case.target.grace.as_millis() as u64,
        devices: case.host.devices.clone(),
        kvm_node: drivers.kvm_node.clone(),
        channel_to_shim: name != KATA,
        netns: POD_NETNS.into(),
    };
    Some(Launch {
        exe: drivers.bin_dir().join(CLIENT_BIN),
        argv: vec![CLIENT_BIN.to_owned()],
        env: super::environment(case),
        stdin: serde_json::to_vec(&config).unwrap_or_default(),
        timeout: case.target.timeout,
        grace: case.target.grace,
        keep,
        faults: case.op_faults.clone(),
        dbus_faults: case.dbus_faults.clone(),
        // The client, the fixture shims, and a real shim wherever it is.
        expose: [
            Some(drivers.bin_dir().to_path_buf()),
            shim.parent().map(Path::to_path_buf),
        ]
        .into_iter()
        .flatten()
        .collect(),
        capture: None,
    })
}

/// The OCI runtime spec CRI hands a runtime for a pod sandbox (the pause container).
pub fn spec(case: &Case, annotations: &[(&str, String)]) -> Value {
    use oci_spec::runtime::{
        LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
        LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, ProcessBuilder, RootBuilder,
        Spec,
    };
    let pod: &Pod = &case.pod;
    let mut resources = LinuxResourcesBuilder::default();
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(m) = pod.memory {
        memory = memory.limit(m as i64);
    }
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(c) = &pod.cpus {
        cpu = cpu.cpus(c.clone());
    }
    if let Some(s) = pod.cpu_shares {
        cpu = cpu.shares(s);
    }
    if let Some(q) = pod.cpu_quota {
        cpu = cpu.quota(q);
    }
    if let Some(p) = pod.cpu_period {
        cpu = cpu.period(p);
    }
    if pod.memory.is_some() {
        if let Ok(m) = memory.build() {
            resources = resources.memory(m);
        }
    }
    if pod.cpus.is_some() || pod.cpu_shares.is_some() || pod.cpu_quota.is_some() {
        if let Ok(c) = cpu.build() {
            resources = resources.cpu(c);
        }
    }
    if let Some(p) = pod.pids_limit {
        if let Ok(p) = LinuxPidsBuilder::default().limit(p).build() {
            resources = resources.pids(p);
        }
    }
    let mut namespaces = Vec::new();
    for (typ, path) in [
        (LinuxNamespaceType::Pid, None),
        (LinuxNamespaceType::Ipc, None),
        (LinuxNamespaceType::Uts, None),
        (LinuxNamespaceType::Mount, None),
        (LinuxNamespaceType::Network, Some(POD_NETNS)),
    ] {
        let mut b = LinuxNamespaceBuilder::default().typ(typ);
        if let Some(p) = path {
            b = b.path(p);
        }
        if let Ok(ns) = b.build() {
            namespaces.push(ns);
        }
    }
    let mut linux = LinuxBuilder::default()
        .cgroups_path(PathBuf::from(&pod.cgroups_path))
        .namespaces(namespaces);
    if let Ok(r) = resources.build() {
        linux = linux.resources(r);
    }
    let mut spec = Spec::default();
    if let Ok(l) = linux.build() {
        spec.set_linux(Some(l));
    }
    if let Ok(root) = RootBuilder::default().path("rootfs").readonly(true).build() {
        spec.set_root(Some(root));
    }
    if let Ok(p) = ProcessBuilder::default()
        .args(vec!["/pause".to_owned()])
        .cwd("/")
        .build()
    {
        spec.set_process(Some(p));
    }
    spec.set_hostname(Some(pod.id.clone()));
    spec.set_annotations(Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    ));
    serde_json::to_value(&spec).unwrap_or(Value::Null)
}

/// The client's final report (the `shim` channel event).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShimEvent {
    /// `SHIM ... start`: raw wait status, stdout, stderr.
    pub bootstrap_status: Option<i32>,
    pub bootstrap_stdout: String,
    pub bootstrap_stderr: String,
    /// What containerd negotiated from `start`'s reply (task API version, address).
    pub task_api: Option<task_api::Bootstrap>,
    /// The daemon's pid (from `shim.pid`), in the case's PID namespace.
    pub daemon_pid: Option<i32>,
    /// The daemon's raw wait status.
    pub daemon_status: Option<i32>,
    /// The daemon was still running after Shutdown and the grace period: SIGKILLed.
    pub killed_at_teardown: bool,
    /// A Shutdown call was made (by the scenario's ops or at teardown).
    pub shutdown_sent: bool,
    /// What teardown did: `shutdown: ok`, `shutdown: ttrpc: closed` ...
    pub teardown: Vec<String>,
    /// The bundle's `log` FIFO.
    pub log: String,
    /// Lines received on /dev/log.
    pub syslog: Vec<String>,
    /// Other processes still running at teardown (killed).
    pub leftovers: u32,
    /// The first failed call's client-side error, containerd's wording.
    pub client: Option<String>,
    /// Setup problems of the client itself (a harness error).
    pub setup_error: Option<String>,
    /// Where the time went, in order: `host`, `start`, each call, `teardown` (µs).
    #[serde(default)]
    pub phases: Vec<(String, u64)>,
}

impl ShimEvent {
    /// Record a phase that started at `t`.
    pub fn phase(&mut self, name: &str, t: std::time::Instant) {
        self.phases
            .push((name.to_owned(), t.elapsed().as_micros() as u64));
    }
}

/// Shim evidence shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShimEvidence {
    /// The client-side result: `ok`, `ttrpc: closed`, `context deadline exceeded`, or the
    /// error the shim returned (shown on its own line of the report).
    #[serde(skip_serializing)]
    pub client: String,
    pub bootstrap: String,
    /// The task API containerd negotiated from the bootstrap reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_api: Option<String>,
    pub daemon: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teardown: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub syslog: Vec<String>,
    /// Where the client's time went (not in snapshots: timings vary).
    #[serde(skip_serializing)]
    pub phases: Vec<(String, std::time::Duration)>,
}

/// Read the client's report and classify the *shim*: its outcome (from the daemon's wait
/// status, its log and its channel events), and the client-side result.
pub fn interpret(observed: &Observed, norm: &Normalizer) -> (Classified, Option<ShimEvidence>) {
    let mut event: Option<ShimEvent> = None;
    let mut lines = Vec::new();
    for l in &observed.channel {
        let v: Option<Value> = serde_json::from_str(l).ok();
        if v.as_ref()
            .and_then(|v| v.get("event"))
            .and_then(Value::as_str)
            == Some("shim")
        {
            event = v.and_then(|v| serde_json::from_value(v).ok());
        } else {
            lines.push(l.clone());
        }
    }
    let client_failed = observed.setup_error.is_some()
        || observed.interrupted
        || observed.timed_out
        || observed.exit != Some(Exit::Code(0));
    let Some(ev) = event.filter(|_| !client_failed) else {
        // The client itself did not finish: classify it (harness error, timeout ...).
        let mut c = outcome::classify(observed, norm);
        if !matches!(
            c.outcome,
            Outcome::HarnessError { .. } | Outcome::Timeout { .. }
        ) {
            c.outcome = Outcome::HarnessError {
                message: format!(
                    "the shim client failed ({}): {}",
                    describe_exit(observed.exit),
                    norm.apply(
                        &outcome::parse::last_line(&observed.stderr.text()).unwrap_or_default()
                    )
                ),
            };
        }
        return (c, None);
    };
    if let Some(e) = &ev.setup_error {
        let c = Classified {
            outcome: Outcome::HarnessError {
                message: norm.apply(&format!("shim host setup: {e}")),
            },
            ops: vec![],
        };
        return (c, None);
    }
    let mut shim_obs = Observed {
        channel: lines,
        ..Observed::default()
    };
    let mut stderr = Captured::default();
    stderr.push(ev.bootstrap_stderr.as_bytes());
    stderr.push(ev.log.as_bytes());
    shim_obs.stderr = stderr;
    let bootstrap_exit = ev.bootstrap_status.map(Exit::from_raw);
    let daemon_exit = ev.daemon_status.map(Exit::from_raw);
    // The end of a shim after containerd shut it down is teardown, not its outcome: the
    // client's SIGKILL after the grace period, and a SIGKILL or SIGTERM the shim gets
    // while shutting down (Kata's Shutdown kills its hypervisor's pid, which is 0 — its
    // own process group — when no VM was started). A crash then is still a crash.
    let ended_by_teardown = ev.killed_at_teardown
        || (ev.shutdown_sent
            && matches!(daemon_exit, Some(Exit::Signal { signal, .. })
                if signal == libc::SIGKILL || signal == libc::SIGTERM));
    shim_obs.exit = match (ev.daemon_pid, daemon_exit) {
        _ if ended_by_teardown => Some(Exit::Code(0)),
        (Some(_), Some(e)) => Some(e),
        _ => bootstrap_exit,
    };
    let mut c = outcome::classify(&shim_obs, norm);
    let failed = c.ops.iter().find(|o| o.status == OpStatus::Error).cloned();
    if ev.daemon_pid.is_none() && c.outcome == Outcome::Ok {
        c.outcome = Outcome::Error {
            op: Some("bootstrap".into()),
            message: "`start` printed no address and wrote no shim.pid".into(),
            exit_code: 0,
        };
    }
    if let (Outcome::Ok, None, Some(e)) = (&c.outcome, &failed, &ev.client) {
        // No call made: the bootstrap reply was refused, or the connection failed.
        c.outcome = Outcome::Error {
            op: Some(
                if ev.task_api.is_none() {
                    "bootstrap"
                } else {
                    "connect"
                }
                .into(),
            ),
            message: e.clone(),
            exit_code: 0,
        };
    }
    if let (Outcome::Ok, Some(f)) = (&c.outcome, &failed) {
        let msg = f.error.clone().unwrap_or_default();
        c.outcome = if msg.contains("deadline exceeded") {
            Outcome::Timeout {
                op: Some(f.op.clone()),
            }
        } else {
            Outcome::Error {
                op: Some(f.op.clone()),
                message: msg,
                exit_code: match shim_obs.exit {
                    Some(Exit::Code(c)) => c,
                    _ => 0,
                },
            }
        };
    }
    // A crash inside a call: name the call.
    if let Some(f) = &failed {
        match &mut c.outcome {
            Outcome::Crash { op, .. } | Outcome::Panic { op, .. } if op.is_none() => {
                *op = Some(f.op.clone());
            }
            _ => {}
        }
    }
    let daemon = match (ev.daemon_pid, daemon_exit) {
        (None, _) => "not started".to_owned(),
        (Some(_), _) if ev.killed_at_teardown && ev.shutdown_sent => {
            "still running after Shutdown: killed at teardown".to_owned()
        }
        (Some(_), _) if ev.killed_at_teardown => {
            "killed at teardown (no Task call reached it)".to_owned()
        }
        (Some(_), e) if ended_by_teardown => format!("{} after Shutdown", describe_exit(e)),
        (Some(_), e) => describe_exit(e),
    };
    let bootstrap = match bootstrap_exit {
        None => "did not finish".to_owned(),
        Some(e) => {
            let mut s = describe_exit(Some(e));
            let addr = ev.bootstrap_stdout.trim();
            if !addr.is_empty() {
                s.push_str(&format!(", printed {addr}"));
            }
            s
        }
    };
    // Thread ids in Rust panic lines depend on thread start order.
    let tid = regex::Regex::new(r"thread '([^']*)' \(\d+\)").expect("static regex");
    let mut log = tid.replace_all(&ev.log, "thread '$1' ([TID])").into_owned();
    // A Go trace names the build machine's tree: cut it where the frames were cut.
    if let Some(prefix) = outcome::parse::go_panic(&log).and_then(|g| g.build_prefix) {
        log = log.replace(&prefix, "[BUILD]/");
    }
    let evidence = ShimEvidence {
        client: norm.apply(ev.client.as_deref().unwrap_or("ok")),
        bootstrap: norm.apply(&bootstrap),
        task_api: ev.task_api.as_ref().map(task_api::Bootstrap::describe),
        phases: ev
            .phases
            .iter()
            .map(|(n, us)| (n.clone(), std::time::Duration::from_micros(*us)))
            .collect(),
        daemon,
        teardown: ev.teardown.clone(),
        log: tail(&norm.apply(&log)),
        syslog: ev
            .syslog
            .iter()
            .rev()
            .take(TAIL)
            .rev()
            .map(|l| norm.apply(l))
            .collect(),
    };
    (c, Some(evidence))
}

const TAIL: usize = 20;

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[… {start} lines before]\n"));
    }
    for l in &lines[start..] {
        let l: String = l.chars().take(200).collect();
        out.push_str(&l);
        out.push('\n');
    }
    out
}
