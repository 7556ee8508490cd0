//! `cgrepro capture`: read a real node's host facts into a host file that cgrepro replays
//! as it is (see `host::captured` for the format and how it replays).
//!
//! Read-only: only `readdir`, `lstat`, `readlink`, `open(O_RDONLY|O_NONBLOCK)` and `read`
//! on /proc, /sys and /dev, plus `systemctl --version` when systemd runs; the one file
//! written is the output, by the caller. Unprivileged where files are readable: a file that
//! cannot be read is recorded with its errno. What it reads comes through a [`Source`]: the
//! live file system ([`FsSource`], optionally under another root for tests) or a recording
//! made elsewhere ([`Recorded`]: what the real-kernel lane's guest dumps).
//!
//! What is normalised (listed in the file's `captured.normalised`): the node's hostname
//! and machine id wherever they appear; pids in `cgroup.procs`, `tasks` and
//! `cgroup.threads` (only pid 1 is kept: the case's processes are its own); the capturing
//! process's own `/proc/self/cgroup` (a replay puts the target at the root).

pub mod lane;
pub mod render;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::captured::{
    Captured, CapturedFile, CapturedGroup, CgroupMount, MAX_VALUE_BYTES, SCHEMA,
};
use crate::host::data::Preset;
use crate::host::{CgroupMode, KernelVersion};

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path}: {why}")]
    Read {
        path: String,
        #[source]
        why: Errno,
    },
    #[error("{0}")]
    NoCgroup(String),
    #[error("--path `{0}`: a cgroup path starts with `/` and has no `..` (e.g. /kubepods.slice)")]
    BadPath(String),
}

/// A failed read at the source: the errno's name (`ENOENT`), as the node reported it
/// (a [`Recorded`] dump stores it as that string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{0}")]
pub struct Errno(pub String);

impl From<&str> for Errno {
    fn from(name: &str) -> Errno {
        Errno(name.to_owned())
    }
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Link,
    Char,
    Other,
}

/// One entry of a listed directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
}

/// Where a capture reads from. Paths are absolute paths of the node.
pub trait Source {
    /// A file's content (cut at [`MAX_VALUE_BYTES`]), or the errno name of the failure.
    fn read(&self, path: &str) -> Result<String, Errno>;
    /// A directory's entries (without `.`/`..`), sorted by name.
    fn list(&self, dir: &str) -> Result<Vec<Entry>, Errno>;
    /// lstat: kind and permission bits.
    fn stat(&self, path: &str) -> Option<(Kind, u32)>;
    fn read_link(&self, path: &str) -> Result<String, Errno>;
    /// The running systemd's version, if the source can ask it.
    fn systemd_version(&self) -> Option<u32> {
        None
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno(match e.raw_os_error() {
        Some(n) => crate::sandbox::cgroupfs::errno_name(n),
        None => e.kind().to_string(),
    })
}

/// The live file system, under `root` (`/` on a node).
pub struct FsSource {
    pub root: PathBuf,
}

impl FsSource {
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

fn kind_of(t: std::fs::FileType) -> Kind {
    if t.is_symlink() {
        Kind::Link
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else if t.is_char_device() {
        Kind::Char
    } else {
        Kind::Other
    }
}

impl Source for FsSource {
    fn read(&self, path: &str) -> Result<String, Errno> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(self.at(path))
            .map_err(|e| errno_of(&e))?;
        let mut buf = Vec::new();
        f.take(MAX_VALUE_BYTES as u64)
            .read_to_end(&mut buf)
            .map_err(|e| errno_of(&e))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn list(&self, dir: &str) -> Result<Vec<Entry>, Errno> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.at(dir)).map_err(|e| errno_of(&e))? {
            let e = e.map_err(|e| errno_of(&e))?;
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            out.push(Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind: kind_of(meta.file_type()),
                mode: meta.permissions().mode() & 0o777,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    fn stat(&self, path: &str) -> Option<(Kind, u32)> {
        let m = self.at(path).symlink_metadata().ok()?;
        Some((kind_of(m.file_type()), m.permissions().mode() & 0o777))
    }
    fn read_link(&self, path: &str) -> Result<String, Errno> {
        std::fs::read_link(self.at(path))
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| errno_of(&e))
    }
    fn systemd_version(&self) -> Option<u32> {
        if self.root != Path::new("/") || !Path::new("/run/systemd/system").is_dir() {
            return None;
        }
        let out = std::process::Command::new("systemctl")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        systemd_from_version_output(&String::from_utf8_lossy(&out.stdout))
    }
}

/// `systemd 252 (252.22-1~deb12u1)` -> 252.
pub fn systemd_from_version_output(s: &str) -> Option<u32> {
    s.lines()
        .next()?
        .strip_prefix("systemd ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Files, directories and links read somewhere else (e.g. inside a lane guest), replayed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recorded {
    pub files: BTreeMap<String, Result<String, Errno>>,
    pub dirs: BTreeMap<String, Vec<Entry>>,
    pub links: BTreeMap<String, String>,
    #[serde(default)]
    pub systemd: Option<u32>,
}

impl Source for Recorded {
    fn read(&self, path: &str) -> Result<String, Errno> {
        self.files
            .get(path)
            .cloned()
            .unwrap_or_else(|| Err("ENOENT".into()))
    }
    fn list(&self, dir: &str) -> Result<Vec<Entry>, Errno> {
        self.dirs.get(dir).cloned().ok_or_else(|| "ENOENT".into())
    }
    fn stat(&self, path: &str) -> Option<(Kind, u32)> {
        let (dir, name) = path.rsplit_once('/')?;
        let dir = if dir.is_empty() { "/" } else { dir };
        self.dirs
            .get(dir)?
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.kind, e.mode))
    }
    fn read_link(&self, path: &str) -> Result<String, Errno> {
        self.links.get(path).cloned().ok_or_else(|| "ENOENT".into())
    }
    fn systemd_version(&self) -> Option<u32> {
        self.systemd
    }
}

/// What to capture.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Cgroup paths to read in every hierarchy besides the roots and their direct children
    /// (`/kubepods.slice/kubepods-besteffort.slice`); their ancestors are read too.
    pub paths: Vec<String>,
    /// Also read the direct children of every hierarchy root (default on).
    pub no_children: bool,
    /// Free text for `captured.source` (how the capture was run).
    pub how: String,
}

/// One parsed line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
struct MountLine {
    root: String,
    point: String,
    options: String,
    fstype: String,
    super_options: String,
}

fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 6 || post.len() < 3 {
                return None;
            }
            Some(MountLine {
                root: unescape(pre[3]),
                point: unescape(pre[4]),
                options: pre[5].to_owned(),
                fstype: post[0].to_owned(),
                super_options: post[2].to_owned(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Devices cgrepro models (fixtures/hosts/devices.txt) and where they live.
const DEVICES: [(&str, &str); 3] = [
    ("kvm", "/dev/kvm"),
    ("vhost-vsock", "/dev/vhost-vsock"),
    ("vhost-net", "/dev/vhost-net"),
];

fn mode_str(mode: u32) -> String {
    crate::host::captured_mode(mode)
}

/// Read one group: every regular file with its mode and value; child directory names.
fn read_group(
    src: &dyn Source,
    hierarchy: &str,
    path: &str,
) -> Option<(CapturedGroup, Vec<String>)> {
    let fs_dir = group_dir(hierarchy, path);
    let (_, mode) = src.stat(&fs_dir)?;
    let entries = src.list(&fs_dir).ok()?;
    let mut files = BTreeMap::new();
    let mut children = Vec::new();
    for e in entries {
        match e.kind {
            Kind::Dir => children.push(e.name),
            Kind::File => {
                let (content, error) = match src.read(&format!("{fs_dir}/{}", e.name)) {
                    Ok(c) => (Some(c), None),
                    Err(errno) => (None, Some(errno.0)),
                };
                files.insert(
                    e.name,
                    CapturedFile {
                        mode: mode_str(e.mode),
                        content,
                        error,
                    },
                );
            }
            _ => {}
        }
    }
    Some((
        CapturedGroup {
            hierarchy: hierarchy.to_owned(),
            path: path.to_owned(),
            mode: mode_str(mode),
            files,
            unread: Vec::new(),
        },
        children,
    ))
}

fn group_dir(hierarchy: &str, path: &str) -> String {
    let mut d = CGROUP_ROOT.to_owned();
    if !hierarchy.is_empty() {
        d = format!("{d}/{hierarchy}");
    }
    if path != "/" {
        d += path;
    }
    d
}

fn valid_cgroup_path(p: &str) -> bool {
    p == "/" || (p.starts_with('/') && p[1..].split('/').all(crate::host::captured::valid_name))
}

/// Capture a host from `src`.
pub fn capture(src: &dyn Source, opts: &Options) -> Result<Preset, CaptureError> {
    for p in &opts.paths {
        if !valid_cgroup_path(p) {
            return Err(CaptureError::BadPath(p.clone()));
        }
    }
    let need = |path: &str| {
        src.read(path).map_err(|why| CaptureError::Read {
            path: path.into(),
            why,
        })
    };
    let kernel = need("/proc/sys/kernel/osrelease")?.trim().to_owned();
    let mut proc_version = need("/proc/version")?.trim_end().to_owned();
    let mountinfo = need("/proc/self/mountinfo")?;
    let proc_cgroups = need("/proc/cgroups")?;
    let mut normalised = Vec::new();

    let mut mount = Vec::new();
    for m in parse_mountinfo(&mountinfo) {
        let dir = if m.point == CGROUP_ROOT {
            String::new()
        } else if let Some(rest) = m.point.strip_prefix("/sys/fs/cgroup/") {
            rest.to_owned()
        } else {
            continue;
        };
        if !matches!(m.fstype.as_str(), "tmpfs" | "cgroup" | "cgroup2") {
            continue;
        }
        // A later mount on the same point hides the earlier one.
        mount.retain(|x: &CgroupMount| x.dir != dir);
        mount.push(CgroupMount {
            dir,
            fstype: m.fstype,
            options: m.options,
            super_options: m.super_options,
            root: m.root,
        });
    }
    if !mount.iter().any(|m| m.fstype != "tmpfs") {
        return Err(CaptureError::NoCgroup(
            "no cgroup or cgroup2 file system is mounted at or below /sys/fs/cgroup (see /proc/self/mountinfo): nothing to capture".into(),
        ));
    }
    if mount.iter().any(|m| m.root != "/") {
        normalised.push(
            "a cgroup mount's root is not `/` (a private cgroup namespace or a container): the tree is what this namespace sees".into(),
        );
    }

    let mut symlinks = BTreeMap::new();
    if mount
        .iter()
        .any(|m| m.dir.is_empty() && m.fstype == "tmpfs")
    {
        for e in src.list(CGROUP_ROOT).unwrap_or_default() {
            if e.kind == Kind::Link {
                if let Ok(t) = src.read_link(&format!("{CGROUP_ROOT}/{}", e.name)) {
                    let t = t.trim_start_matches("/sys/fs/cgroup/").to_owned();
                    if crate::host::captured::valid_name(&t) {
                        symlinks.insert(e.name, t);
                    }
                }
            }
        }
    }

    // Groups: every hierarchy's root, its children, the named paths and their ancestors.
    let mut group = Vec::new();
    for m in mount.iter().filter(|m| m.fstype != "tmpfs") {
        let mut wanted: Vec<String> = vec!["/".into()];
        for p in &opts.paths {
            let mut acc = String::new();
            for part in p
                .trim_start_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
            {
                acc = format!("{acc}/{part}");
                if !wanted.contains(&acc) {
                    wanted.push(acc.clone());
                }
            }
        }
        let mut i = 0;
        while i < wanted.len() {
            let path = wanted[i].clone();
            i += 1;
            let Some((mut g, children)) = read_group(src, &m.dir, &path) else {
                continue;
            };
            for c in children {
                let child = if path == "/" {
                    format!("/{c}")
                } else {
                    format!("{path}/{c}")
                };
                let read_it = (path == "/" && !opts.no_children) || wanted.contains(&child);
                if read_it {
                    if !wanted.contains(&child) {
                        wanted.push(child);
                    }
                } else {
                    g.unread.push(c);
                }
            }
            group.push(g);
        }
    }

    // Pids: the node's processes are not the case's.
    let mut dropped = 0;
    for g in &mut group {
        for name in ["cgroup.procs", "tasks", "cgroup.threads"] {
            if let Some(f) = g.files.get_mut(name) {
                if let Some(c) = &f.content {
                    let n = c.lines().count();
                    let keep: String = c
                        .lines()
                        .filter(|l| *l == "1")
                        .map(|l| format!("{l}\n"))
                        .collect();
                    dropped += n - keep.lines().count();
                    f.content = Some(keep);
                }
            }
        }
    }
    if dropped > 0 {
        normalised.push(format!(
            "pids: {dropped} pid(s) other than 1 removed from cgroup.procs, tasks and cgroup.threads"
        ));
    }

    // Hostname and machine id.
    let mut secrets = Vec::new();
    if let Ok(h) = src.read("/proc/sys/kernel/hostname") {
        let h = h.trim().to_owned();
        if h.len() >= 4 {
            secrets.push((h, "[HOSTNAME]"));
        }
    }
    if let Ok(id) = src.read("/etc/machine-id") {
        let id = id.trim().to_owned();
        if id.len() >= 8 {
            secrets.push((id, "[MACHINE-ID]"));
        }
    }
    let mut hits = 0;
    let mut scrub = |s: &mut String| {
        for (secret, with) in &secrets {
            if s.contains(secret.as_str()) {
                *s = s.replace(secret.as_str(), with);
                hits += 1;
            }
        }
    };
    scrub(&mut proc_version);
    for g in &mut group {
        let mut renamed = BTreeMap::new();
        for (mut name, mut f) in std::mem::take(&mut g.files) {
            scrub(&mut name);
            if let Some(c) = &mut f.content {
                scrub(c);
            }
            renamed.insert(name, f);
        }
        g.files = renamed;
        scrub(&mut g.path);
        for u in &mut g.unread {
            scrub(u);
        }
    }
    if !secrets.is_empty() {
        normalised.push(format!(
            "hostname and machine id replaced by [HOSTNAME] / [MACHINE-ID] ({hits} place(s))"
        ));
    }
    normalised.push(
        "/proc/self/cgroup not captured: a replay puts the target at the root of every hierarchy"
            .into(),
    );

    // Devices, pages, CPUs.
    let mut devices = Vec::new();
    for (name, path) in DEVICES {
        if matches!(src.stat(path), Some((Kind::Char, _))) {
            devices.push(name.to_owned());
        }
    }
    let other_devices: Vec<String> = src
        .list("/dev/vfio")
        .unwrap_or_default()
        .into_iter()
        .map(|e| format!("vfio/{}", e.name))
        .collect();
    let mut hugepage_sizes_kb: Vec<u64> = src
        .list("/sys/kernel/mm/hugepages")
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            e.name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()
        })
        .collect();
    hugepage_sizes_kb.sort_unstable();
    let cpus_online = src
        .read("/sys/devices/system/cpu/online")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let nodes_online = src
        .read("/sys/devices/system/node/online")
        .ok()
        .map(|s| s.trim().to_owned());

    let captured = Captured {
        source: opts.how.clone(),
        normalised,
        hugepage_sizes_kb,
        cpus_online,
        nodes_online,
        proc_cgroups,
        other_devices,
        mount,
        symlinks,
        group,
    };
    let cgroup = captured.mode();
    let version = KernelVersion::parse_release(&kernel);
    let systemd = src.systemd_version();
    let (swap_accounting, swap_how) = swap_accounting(&captured, version);
    let options = options_seen(&captured);
    let os = src
        .read("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "unknown distribution".into());
    let mode = match cgroup {
        CgroupMode::V1 => "v1",
        CgroupMode::Hybrid => "hybrid",
        CgroupMode::V2 => "v2",
    };
    let systemd_s = systemd.map_or("no systemd seen".to_owned(), |v| format!("systemd {v}"));
    let mut source = opts.how.clone();
    if let Some(h) = swap_how {
        source.push_str(&format!("; {h}"));
    }
    Ok(Preset {
        schema: Some(SCHEMA.into()),
        description: format!("captured: {os}, kernel {kernel}, cgroup {mode}, {systemd_s}"),
        source: Some(source),
        kernel,
        proc_version,
        cgroup,
        systemd,
        swap_accounting,
        devices,
        options,
        captured: Some(std::sync::Arc::new(captured)),
    })
}

/// Swap accounting as the files show it: `memory.swap.max` (v2) or `memory.memsw.*` (v1)
/// in a group with the memory controller. Unseen: the upstream default for the version,
/// and a note saying so.
fn swap_accounting(c: &Captured, v: Option<KernelVersion>) -> (bool, Option<String>) {
    let v2_memory_child = c
        .group
        .iter()
        .filter(|g| g.path != "/")
        .find(|g| g.files.contains_key("memory.current"));
    if let Some(g) = v2_memory_child {
        return (g.files.contains_key("memory.swap.max"), None);
    }
    let v1_memory = c
        .group
        .iter()
        .find(|g| g.files.contains_key("memory.limit_in_bytes"));
    if let Some(g) = v1_memory {
        return (g.files.contains_key("memory.memsw.limit_in_bytes"), None);
    }
    let guess = v.is_some_and(|v| v >= KernelVersion::new(5, 8, 0));
    (
        guess,
        Some(format!(
            "swap_accounting {guess}: not seen (no non-root memory group was read), the kernel's default assumed"
        )),
    )
}

/// Kernel config knobs (fixtures/kernels/options.toml) the files prove.
fn options_seen(c: &Captured) -> BTreeMap<String, bool> {
    let mut o = BTreeMap::new();
    let has = |name: &str| c.group.iter().any(|g| g.files.contains_key(name));
    if has("cpu.rt_runtime_us") {
        o.insert("rt_group_sched".into(), true);
    }
    if has("blkio.bfq.weight") || has("io.bfq.weight") {
        o.insert("bfq".into(), true);
    }
    if has("cpu.uclamp.min") {
        o.insert("uclamp".into(), true);
    }
    if has("io.latency") {
        o.insert("iolatency".into(), true);
    }
    if let Some(root) = c.find("", "/") {
        o.insert(
            "psi".into(),
            root.files.contains_key("cgroup.pressure")
                || root.files.contains_key("memory.pressure"),
        );
    }
    if c.mode() != CgroupMode::V2 {
        let mounted = |ctl: &str| {
            c.mount
                .iter()
                .any(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == ctl))
        };
        o.insert("memcg_v1".into(), mounted("memory"));
        o.insert("cpusets_v1".into(), mounted("cpuset"));
    }
    o
}

/// Write `text` to `out` (the only file a capture writes), or to stdout for `-`.
pub fn write_output(out: &Path, text: &str) -> std::io::Result<()> {
    if out == Path::new("-") {
        use std::io::Write;
        return std::io::stdout().write_all(text.as_bytes());
    }
    std::fs::write(out, text)
}
