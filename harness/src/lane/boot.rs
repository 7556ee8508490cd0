//! One boot of the lane: the initramfs (the static `/init` plus `/lane.json`, written with
//! the `cpio` crate as a newc archive, which the kernel unpacks without any tool in the
//! guest), QEMU under TCG (KVM is not usable here), and the results read back from the
//! guest's second serial port, one JSON line per op sequence.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::command::{CommandOut, CommandSpec, InitrdEntry};
use super::{Kernel, LaneError};
use crate::fault::errno_label as errno_name;
use crate::fuzz::Op;
use crate::host::tree::Topology;

/// The cgroupfs layout the guest mounts: that of the simulated host.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub mounts: Vec<MountSpec>,
    pub symlinks: Vec<(String, String)>,
    pub tmpfs_readonly: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MountSpec {
    pub fstype: String,
    pub dir: String,
    pub options: String,
}

impl Layout {
    /// The mounts of a simulated host's topology: tmpfs plus one mount per v1 hierarchy
    /// (co-mounts and named hierarchies as the model has them), and cgroup2 where it sits.
    pub fn of(topo: &Topology) -> Layout {
        let mut mounts = Vec::new();
        let mut symlinks = Vec::new();
        let v1 = !topo.v1.is_empty();
        if v1 {
            mounts.push(MountSpec {
                fstype: "tmpfs".into(),
                dir: String::new(),
                options: "mode=755".into(),
            });
        }
        for m in &topo.v1 {
            let options = match &m.name {
                Some(n) if m.controllers.is_empty() => format!("none,name={n}"),
                Some(n) => format!("{},name={n}", m.controllers.join(",")),
                None => m.controllers.join(","),
            };
            mounts.push(MountSpec {
                fstype: "cgroup".into(),
                dir: m.dir.clone(),
                options,
            });
            for l in &m.symlinks {
                symlinks.push((l.clone(), m.dir.clone()));
            }
        }
        if let Some(d) = &topo.v2_dir {
            mounts.push(MountSpec {
                fstype: "cgroup2".into(),
                dir: d.clone(),
                options: String::new(),
            });
        }
        Layout {
            mounts,
            symlinks,
            tmpfs_readonly: v1,
        }
    }
}

/// One op sequence: its own helper processes (`{p0}`…), paths already filled.
#[derive(Debug, Clone, Serialize)]
pub struct Sequence {
    pub id: u64,
    pub helpers: usize,
    pub ops: Vec<Op>,
}

/// What one boot runs.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    #[serde(flatten)]
    pub layout: Layout,
    /// Ops run once before the sequences (e.g. enabling controllers at the v2 root).
    pub prologue: Vec<Op>,
    pub sequences: Vec<Sequence>,
    /// A program `/init` runs after the prologue (and the sequences), its output sent back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// What else the initramfs holds (the command's files).
    #[serde(skip)]
    pub files: Vec<InitrdEntry>,
}

/// What a boot takes: a [`Job`], alone or inside a [`CaptureJob`]; serialised as
/// `/lane.json`, with the files it packs into the initramfs.
pub trait LaneJob: Serialize {
    fn files(&self) -> &[InitrdEntry];
}

impl LaneJob for Job {
    fn files(&self) -> &[InitrdEntry] {
        &self.files
    }
}

impl LaneJob for CaptureJob {
    fn files(&self) -> &[InitrdEntry] {
        &self.job.files
    }
}

/// A job that also records paths for `cgrepro capture --lane` (the guest's `dump`).
#[derive(Debug, Clone, Serialize)]
pub struct CaptureJob {
    #[serde(flatten)]
    pub job: Job,
    pub dump: Vec<DumpRoot>,
}

/// An absolute path the guest records: a directory to `depth` levels, a file, a link.
#[derive(Debug, Clone, Serialize)]
pub struct DumpRoot {
    pub path: String,
    pub depth: u32,
}

/// The result of one op on the real kernel, as the guest reported it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Res {
    Ok,
    Err { errno: i32 },
    OpenErr { errno: i32 },
    Read { content: String },
}

impl Res {
    /// Rendered like the model side's results (`ok`, `EBUSY`, `open ENOENT`, `ok <content>`).
    pub fn render(&self) -> String {
        match self {
            Res::Ok => "ok".into(),
            Res::Err { errno } => errno_name(*errno),
            Res::OpenErr { errno } => format!("open {}", errno_name(*errno)),
            Res::Read { content } => format!("ok {content}"),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Line {
    hello: Option<String>,
    seq: Option<u64>,
    results: Option<Vec<Res>>,
    micros: Option<u64>,
    error: Option<String>,
    command: Option<CommandOut>,
    #[serde(default)]
    dump: Option<crate::capture::Recorded>,
}

/// What a boot gave.
#[derive(Debug, Clone)]
pub struct Boot {
    /// `uname -r` inside the guest.
    pub release: String,
    /// From QEMU's start to the guest's first line (kernel boot and /init start).
    pub boot_time: Duration,
    /// Whole QEMU run.
    pub total_time: Duration,
    /// Time the guest spent in the sequences' ops (its own clock).
    pub ops_time: Duration,
    pub prologue: Vec<String>,
    /// Sequence id → rendered results.
    pub results: BTreeMap<u64, Vec<String>>,
    /// The command's output, when the job had one.
    pub command: Option<CommandOut>,
    /// What the guest recorded for a [`CaptureJob`].
    pub dump: Option<crate::capture::Recorded>,
}

/// The static `/init`: `target/x86_64-unknown-linux-gnu/<profile>/cgrepro-lane-init`,
/// brought up to date with cargo (a no-op build when it is): a stale `/init` would not
/// know what the harness asks of it.
pub fn payload(root: &Path) -> Result<PathBuf, LaneError> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target_dir.join("x86_64-unknown-linux-gnu/debug/cgrepro-lane-init");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "-p",
            "cgrepro-lane-init",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LaneError::Payload(format!("cargo: {e}")))?;
    if !out.status.success() || !bin.is_file() {
        return Err(LaneError::Payload(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(bin)
}

/// The initramfs: `/init`, `/lane.json` and the mount points.
pub fn initramfs(init: &[u8], job: &impl LaneJob) -> Result<Vec<u8>, LaneError> {
    use cpio::newc::Builder;
    let json = serde_json::to_vec(job).expect("a job serialises");
    let dir = |name: &str| {
        (
            Builder::new(name).mode(0o040755).nlink(2),
            Cursor::new(Vec::new()),
        )
    };
    let file = |name: &str, mode: u32, data: Vec<u8>| {
        (Builder::new(name).mode(0o100000 | mode), Cursor::new(data))
    };
    let mut entries = vec![
        dir("dev"),
        dir("proc"),
        dir("sys"),
        dir("tmp"),
        file("init", 0o755, init.to_vec()),
        file("lane.json", 0o644, json),
    ];
    for e in job.files() {
        entries.push(match e {
            InitrdEntry::Dir(p) => dir(p),
            InitrdEntry::File { path, mode, data } => file(path, *mode, data.clone()),
            InitrdEntry::Symlink { path, target } => (
                Builder::new(path).mode(0o120777),
                Cursor::new(target.clone().into_bytes()),
            ),
        });
    }
    cpio::write_cpio(entries.into_iter(), Vec::new())
        .map_err(LaneError::io("writing the initramfs"))
}

/// Boot `kernel` with `job`; `work` receives the initramfs and the serial logs. A boot
/// that dies before /init says anything (a kernel panic at boot under a loaded TCG) is
/// tried once more.
pub fn boot(
    kernel: &Kernel,
    init: &Path,
    job: &impl LaneJob,
    work: &Path,
    timeout: Duration,
) -> Result<Boot, LaneError> {
    let mut tries = 0;
    loop {
        match boot_once(kernel, init, job, work, timeout) {
            Err(LaneError::Guest(e)) if e.starts_with(NOTHING) && tries < 2 => {
                tries += 1;
                std::thread::sleep(Duration::from_secs(2));
            }
            // A panic under TCG (seen once in ~30 boots of 6.12: an int3 Oops at a
            // text-patching site in the scheduler, with no cgroupfs op involved) gets one
            // more boot; a panic the ops cause comes back and is reported.
            Err(LaneError::Guest(e)) if tries < 2 && panicked(work) => {
                eprintln!("the guest kernel panicked ({e}); booting once more");
                tries = 2;
            }
            r => return r,
        }
    }
}

const NOTHING: &str = "the guest said nothing";

fn panicked(work: &Path) -> bool {
    std::fs::read_to_string(work.join("console.log")).is_ok_and(|c| c.contains("Kernel panic"))
}

fn boot_once(
    kernel: &Kernel,
    init: &Path,
    job: &impl LaneJob,
    work: &Path,
    timeout: Duration,
) -> Result<Boot, LaneError> {
    let qemu = "qemu-system-x86_64";
    if which(qemu).is_none() {
        return Err(LaneError::NoQemu(qemu.into()));
    }
    std::fs::create_dir_all(work).map_err(LaneError::io(work.display().to_string()))?;
    let init_bytes = std::fs::read(init).map_err(LaneError::io(init.display().to_string()))?;
    let cpio = work.join("initramfs.cpio");
    std::fs::write(&cpio, initramfs(&init_bytes, job)?)
        .map_err(LaneError::io(cpio.display().to_string()))?;
    let console = work.join("console.log");
    let results = work.join("results.jsonl");
    let _ = std::fs::remove_file(&results);
    // The initramfs is unpacked into RAM next to its own copy: room for both.
    let payload_mb = job
        .files()
        .iter()
        .map(|e| match e {
            InitrdEntry::File { data, .. } => data.len(),
            _ => 0,
        })
        .sum::<usize>()
        >> 20;
    let memory = format!("{}", 512 + 3 * payload_mb);
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-accel", "tcg", "-m", &memory])
        .args(["-smp", "2", "-nodefaults", "-display", "none"])
        .args(["-no-reboot", "-kernel"])
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&cpio)
        // no_timer_check: under TCG on a loaded machine the kernel's IO-APIC timer check
        // can fail and panic the boot (seen on 6.1).
        .args([
            "-append",
            "console=ttyS0 panic=-1 loglevel=4 no_timer_check rdinit=/init",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(LaneError::io(qemu))?;
    // The first line (the guest's hello) marks the end of the boot.
    let mut boot_time = None;
    loop {
        if boot_time.is_none()
            && std::fs::metadata(&results)
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            boot_time = Some(start.elapsed());
        }
        match child.try_wait().map_err(LaneError::io(qemu))? {
            Some(_) => break,
            None if start.elapsed() > timeout || crate::sandbox::interrupt::interrupted() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaneError::Timeout {
                    secs: timeout.as_secs(),
                    log: console,
                });
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let total_time = start.elapsed();
    let status = child.wait().map_err(LaneError::io(qemu))?;
    let mut qemu_err = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut qemu_err);
    }
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    let mut out = Boot {
        release: String::new(),
        boot_time: boot_time.unwrap_or(total_time),
        total_time,
        ops_time: Duration::ZERO,
        prologue: Vec::new(),
        results: BTreeMap::new(),
        command: None,
        dump: None,
    };
    let mut done = false;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let line: Line = serde_json::from_str(l.trim()).map_err(|e| {
            LaneError::Guest(format!("unreadable line from the guest ({e}): {l:.200}"))
        })?;
        if let Some(e) = line.error {
            return Err(LaneError::Guest(e));
        }
        if let Some(c) = line.command {
            out.command = Some(c);
            continue;
        }
        if line.dump.is_some() {
            out.dump = line.dump;
            continue;
        }
        match (line.hello, line.seq, line.results) {
            (Some(h), _, _) if h == "done" => done = true,
            (Some(h), _, _) => out.release = h,
            (_, Some(u64::MAX), Some(r)) => out.prologue = r.iter().map(Res::render).collect(),
            (_, Some(id), Some(r)) => {
                out.ops_time += Duration::from_micros(line.micros.unwrap_or(0));
                out.results.insert(id, r.iter().map(Res::render).collect());
            }
            _ => {}
        }
    }
    if out.release.is_empty() {
        return Err(LaneError::Guest(format!(
            "{NOTHING} (qemu {status}: {}; console: {})",
            qemu_err.trim(),
            console.display()
        )));
    }
    if !done {
        return Err(LaneError::Guest(format!(
            "the guest stopped before it was done (qemu {status}: {}; console: {})",
            qemu_err.trim(),
            console.display()
        )));
    }
    Ok(out)
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}
