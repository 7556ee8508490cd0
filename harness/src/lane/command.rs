//! A command payload for the lane: a program (with the directory it lives in) run by the
//! guest's `/init` after the cgroupfs mounts and the prologue, its output sent back. What
//! the peer suite's real-kernel verdicts are measured with (`cgrepro real-kernel
//! --command target/peer-suite/cgroups-rs-0.3.4/run`).
//!
//! The guest has nothing but what the initramfs holds, so the payload brings its own
//! world: the program's directory at `/payload`, the shared libraries its ELF files load
//! (as `ldd` names them on this machine, at the same paths) and a static busybox as `/bin`
//! (the `/bin/sh` of a runner script, and `sleep` etc. for tests that spawn commands).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::LaneError;

/// Where the payload's directory sits in the guest.
pub const GUEST_DIR: &str = "payload";

/// busybox applets linked into `/bin` (what runner scripts and peer tests call).
const APPLETS: &[&str] = &[
    "sh", "cat", "dirname", "echo", "false", "kill", "ls", "mkdir", "sleep", "true", "env",
];

/// One entry of the initramfs beyond `/init` and `/lane.json`.
#[derive(Debug, Clone)]
pub enum InitrdEntry {
    Dir(String),
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl InitrdEntry {
    pub fn path(&self) -> &str {
        match self {
            InitrdEntry::Dir(p) => p,
            InitrdEntry::File { path, .. } | InitrdEntry::Symlink { path, .. } => path,
        }
    }
}

/// What `/init` runs and how long it may take.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommandSpec {
    /// Guest paths; `argv[0]` absolute.
    pub argv: Vec<String>,
    pub timeout_secs: u64,
}

/// What came back.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CommandOut {
    /// Exit code, or 128 + signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    #[serde(default)]
    pub timed_out: bool,
}

fn read(p: &Path) -> Result<Vec<u8>, LaneError> {
    std::fs::read(p).map_err(LaneError::io(p.display().to_string()))
}

fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Shared objects a dynamic ELF file loads, by absolute path (`ldd`'s answer; none for a
/// static one).
fn libraries(file: &Path) -> Result<Vec<PathBuf>, LaneError> {
    let out = Command::new("ldd")
        .arg(file)
        .output()
        .map_err(LaneError::io("ldd (libc-bin)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`; `linux-vdso.so.1 (0x…)` has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The entries for `dir` (at `/payload`), the libraries of its ELF files, and busybox.
pub fn entries(dir: &Path) -> Result<Vec<InitrdEntry>, LaneError> {
    let mut out = Vec::new();
    let mut libs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut stack = vec![(dir.to_path_buf(), GUEST_DIR.to_owned())];
    out.push(InitrdEntry::Dir(GUEST_DIR.into()));
    while let Some((host, guest)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&host)
            .map_err(LaneError::io(host.display().to_string()))?
            .flatten()
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let h = e.path();
            let g = format!("{guest}/{}", e.file_name().to_string_lossy());
            let meta = std::fs::metadata(&h).map_err(LaneError::io(h.display().to_string()))?;
            if meta.is_dir() {
                out.push(InitrdEntry::Dir(g.clone()));
                stack.push((h, g));
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let data = read(&h)?;
                if is_elf(&data) {
                    libs.extend(libraries(&h)?);
                }
                out.push(InitrdEntry::File {
                    path: g,
                    mode: meta.permissions().mode() & 0o7777,
                    data,
                });
            }
        }
    }
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for lib in &libs {
        let rel = lib.to_string_lossy().trim_start_matches('/').to_owned();
        let mut parent = Path::new(&rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    dirs.insert("bin".into());
    // Parents before children: sorted paths put `lib` before `lib/x86_64-linux-gnu`.
    out.extend(dirs.into_iter().map(InitrdEntry::Dir));
    for lib in libs {
        out.push(InitrdEntry::File {
            path: lib.to_string_lossy().trim_start_matches('/').to_owned(),
            mode: 0o755,
            data: read(&lib)?,
        });
    }
    let busybox = busybox()?;
    out.push(InitrdEntry::File {
        path: "bin/busybox".into(),
        mode: 0o755,
        data: busybox,
    });
    for a in APPLETS {
        out.push(InitrdEntry::Symlink {
            path: format!("bin/{a}"),
            target: "busybox".into(),
        });
    }
    Ok(out)
}

/// A statically linked busybox (Debian's busybox-static).
fn busybox() -> Result<Vec<u8>, LaneError> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.is_file() {
            let data = read(p)?;
            if libraries(p)?.is_empty() {
                return Ok(data);
            }
        }
    }
    Err(LaneError::Payload(
        "a command payload needs a static busybox: apt-get install busybox-static".into(),
    ))
}
