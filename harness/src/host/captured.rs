//! Captured hosts: the `[captured]` part of a host file, written by `cgrepro capture` on a
//! real node (or inside the real-kernel lane's VMs), and how such a host becomes files.
//!
//! A host file is a preset (`fixtures/hosts/*.toml` keys: kernel, proc_version, cgroup,
//! systemd, ...) plus, when it was captured, the node's cgroup mounts, `/proc/cgroups`, the
//! cgroupfs groups it read (every interface file with its mode and value), page sizes and
//! CPUs. A captured host replays *as it is*: its groups, files, modes and values are the
//! case's `/sys/fs/cgroup` ([`topology`], [`tree`]), its mount lines and `/proc/cgroups`
//! the /proc views ([`mountinfo`]); only groups the code under test creates get their files
//! from the kernel tables, as on any host.
//!
//! Loading is defensive ([`load`], [`Captured::validate`]): a size cap, UTF-8 text only,
//! every name a single path component, so a hostile host file cannot make the harness write
//! outside the case's directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::{parse_mode, Preset};
use super::tree::{Group, Layer, Mounted, Node, Topology};
use super::{CgroupMode, Host, HostData, HostError};

/// The `schema` of a host file with a `[captured]` table.
pub const SCHEMA: &str = "cgrepro-host/1";
/// A host file larger than this is refused (a v1 node with every group of a busy kubelet
/// slice captured is well under 4 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// One interface file's captured value is cut at this many bytes (cgroupfs files are
/// small: the largest on a 6.12 kernel, `memory.stat`, is under 2 KiB).
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Groups and files a host file may hold.
const MAX_GROUPS: usize = 4096;
const MAX_ENTRIES: usize = 200_000;
/// Depth of a captured group path.
const MAX_DEPTH: usize = 32;

/// What `cgrepro capture` read on a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Captured {
    /// How and where it was taken (`cgrepro capture 0.1.0, uid 0, ...`).
    pub source: String,
    /// What was replaced or left out so the file names no node (hostnames, machine ids,
    /// pids) or is stable between two captures.
    #[serde(default)]
    pub normalised: Vec<String>,
    /// `/sys/kernel/mm/hugepages/hugepages-<size>kB`.
    #[serde(default)]
    pub hugepage_sizes_kb: Vec<u64>,
    /// `/sys/devices/system/cpu/online`.
    pub cpus_online: String,
    /// `/sys/devices/system/node/online` (absent without NUMA support).
    #[serde(default)]
    pub nodes_online: Option<String>,
    /// `/proc/cgroups` as read.
    pub proc_cgroups: String,
    /// Device nodes seen that cgrepro does not model (e.g. `vfio/vfio`); informational.
    #[serde(default)]
    pub other_devices: Vec<String>,
    /// Mounts at or below /sys/fs/cgroup, in mountinfo order.
    pub mount: Vec<CgroupMount>,
    /// Links directly under /sys/fs/cgroup (`cpu` -> `cpu,cpuacct`).
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    /// Groups read, roots first.
    #[serde(default)]
    pub group: Vec<CapturedGroup>,
}

/// One line of /proc/self/mountinfo at or below /sys/fs/cgroup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CgroupMount {
    /// Mount point relative to /sys/fs/cgroup ("" = /sys/fs/cgroup itself).
    pub dir: String,
    /// `tmpfs`, `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Per-mount options (`rw,nosuid,nodev,noexec,relatime`).
    pub options: String,
    /// Super options (`rw,nsdelegate,memory_recursiveprot`; v1: `rw,cpu,cpuacct`).
    pub super_options: String,
    /// The mount's root inside its hierarchy (`/` on a node; a path inside a container
    /// with a private cgroup namespace).
    #[serde(default = "slash")]
    pub root: String,
}

fn slash() -> String {
    "/".into()
}

/// One cgroup as read: its directory mode and interface files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapturedGroup {
    /// Mount dir of the hierarchy (a [`CgroupMount::dir`]).
    pub hierarchy: String,
    /// `/` or `/kubepods.slice/...`.
    pub path: String,
    /// Mode of the directory, `ls` style without the type (`r-xr-xr-x`).
    pub mode: String,
    /// Interface files by name.
    pub files: BTreeMap<String, CapturedFile>,
    /// Subdirectories that exist but were not read (names only).
    #[serde(default)]
    pub unread: Vec<String>,
}

/// One interface file: its mode, and its value or why it could not be read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapturedFile {
    pub mode: String,
    #[serde(default)]
    pub content: Option<String>,
    /// errno name of a failed open or read (`EINVAL` for write-only files read as root,
    /// `EACCES` when the capture ran unprivileged).
    #[serde(default)]
    pub error: Option<String>,
}

/// A name that may become one path component on disk.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

/// A `/`-rooted group path whose components are all [`valid_name`]s.
fn valid_group_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() <= MAX_DEPTH && parts.iter().all(|p| valid_name(p))
}

/// A mount dir: "" or names joined by `/`.
fn valid_dir(dir: &str) -> bool {
    dir.is_empty() || (dir.split('/').count() <= 4 && dir.split('/').all(valid_name))
}

impl Captured {
    /// Every name a file on disk could get is one path component; sizes are bounded; every
    /// group sits in a mounted hierarchy. `Err` is (field, why).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: String, why: &str| Err((field, why.to_owned()));
        let mut dirs = Vec::new();
        for (i, m) in self.mount.iter().enumerate() {
            if !valid_dir(&m.dir) {
                return bad(
                    format!("captured.mount[{i}].dir"),
                    "must be relative to /sys/fs/cgroup with no `..`, `.` or empty component",
                );
            }
            if !matches!(m.fstype.as_str(), "tmpfs" | "cgroup" | "cgroup2") {
                return bad(
                    format!("captured.mount[{i}].fstype"),
                    "must be tmpfs, cgroup or cgroup2",
                );
            }
            dirs.push((m.dir.as_str(), m.fstype.as_str()));
        }
        if !dirs.iter().any(|(_, t)| *t != "tmpfs") {
            return bad(
                "captured.mount".into(),
                "no cgroup or cgroup2 mount: the node's /sys/fs/cgroup was not a cgroup filesystem",
            );
        }
        for (name, target) in &self.symlinks {
            if !valid_name(name) || !valid_dir(target) || target.is_empty() {
                return bad(
                    format!("captured.symlinks.{name}"),
                    "link and target must be names under /sys/fs/cgroup (no `/`, `..`)",
                );
            }
        }
        if self.group.len() > MAX_GROUPS {
            return bad("captured.group".into(), "more than 4096 groups");
        }
        let mut entries = 0;
        for (i, g) in self.group.iter().enumerate() {
            let at = |f: &str| format!("captured.group[{i}].{f}");
            if !dirs.iter().any(|(d, t)| *d == g.hierarchy && *t != "tmpfs") {
                return bad(at("hierarchy"), "names no cgroup mount of captured.mount");
            }
            if !valid_group_path(&g.path) {
                return bad(
                    at("path"),
                    "must start with `/` and have no `..`, `.` or empty component",
                );
            }
            if parse_mode(&g.mode).is_none() {
                return bad(at("mode"), "want 9 chars like r-xr-xr-x");
            }
            entries += g.files.len() + g.unread.len();
            for (name, f) in &g.files {
                if !valid_name(name) {
                    return bad(
                        at(&format!("files.{name:?}")),
                        "a file name must be one path component (no `/`, `..`, NUL)",
                    );
                }
                if parse_mode(&f.mode).is_none() {
                    return bad(
                        at(&format!("files.{name:?}.mode")),
                        "want 9 chars like rw-r--r--",
                    );
                }
                if f.content
                    .as_ref()
                    .is_some_and(|c| c.len() > MAX_VALUE_BYTES)
                {
                    return bad(at(&format!("files.{name:?}.content")), "longer than 64 KiB");
                }
            }
            if let Some(u) = g.unread.iter().find(|u| !valid_name(u)) {
                return bad(at(&format!("unread.{u:?}")), "not a single path component");
            }
        }
        if entries > MAX_ENTRIES {
            return bad("captured.group".into(), "more than 200000 entries");
        }
        Ok(())
    }

    /// The mount holding cgroup2, if any.
    pub fn cgroup2(&self) -> Option<&CgroupMount> {
        self.mount.iter().find(|m| m.fstype == "cgroup2")
    }

    /// The layout the mounts imply.
    pub fn mode(&self) -> CgroupMode {
        let v1 = self.mount.iter().any(|m| m.fstype == "cgroup");
        match (v1, self.cgroup2()) {
            (false, Some(_)) => CgroupMode::V2,
            (true, Some(_)) => CgroupMode::Hybrid,
            _ => CgroupMode::V1,
        }
    }

    /// A group by hierarchy dir and path.
    pub fn find(&self, hierarchy: &str, path: &str) -> Option<&CapturedGroup> {
        self.group
            .iter()
            .find(|g| g.hierarchy == hierarchy && g.path == path)
    }

    /// Short digest for [`Host::key`].
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).expect("a capture serializes");
        Sha256::digest(json)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `/proc/cgroups` rows: (controller, hierarchy id, enabled).
    pub fn proc_cgroups_rows(&self) -> Vec<(String, u32, bool)> {
        self.proc_cgroups
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    [name, id, _, en, ..] => {
                        Some(((*name).to_owned(), id.parse().ok()?, *en == "1"))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

impl CapturedFile {
    /// The value a replay serves: the content read, or "" for a file that could not be
    /// read (write-only files give EINVAL to a reader on the real kernel too).
    pub fn value(&self) -> &str {
        self.content.as_deref().unwrap_or("")
    }
}

/// Load a host file named by `[host] file`: relative to the repository root (`root`) unless
/// absolute; a relative path may not climb out of the repository.
pub fn load(root: &Path, file: &str) -> Result<Preset, HostError> {
    let p = Path::new(file);
    if file.contains('\0') {
        return Err(HostError::HostFile {
            path: p.to_owned(),
            why: "the path holds a NUL byte".into(),
        });
    }
    if p.is_relative() && p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(HostError::HostFile {
            path: p.to_owned(),
            why: "a relative host file path may not contain `..` (it is relative to the repository root); give an absolute path".into(),
        });
    }
    let path: PathBuf = if p.is_absolute() {
        p.to_owned()
    } else {
        root.join(p)
    };
    load_path(&path)
}

/// Read and check one host file.
pub fn load_path(path: &Path) -> Result<Preset, HostError> {
    let err = |why: String| HostError::HostFile {
        path: path.to_owned(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(err(
            "not a regular file (a host file is the TOML `cgrepro capture` writes)".into(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!(
            "{} bytes: larger than the 16 MiB a host file may have (capture fewer paths)",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        err(format!(
            "not UTF-8 text (byte {}): a host file is TOML written by `cgrepro capture`",
            e.utf8_error().valid_up_to()
        ))
    })?;
    if text.contains('\0') {
        return Err(err("holds a NUL byte: not a text host file".into()));
    }
    let preset: Preset = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    check(&preset).map_err(|e| err(e.to_string()))?;
    Ok(preset)
}

/// Why a preset or host file fails [`check`]; the text follows the file's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("schema `{0}` is not `{SCHEMA}`")]
    Schema(String),
    #[error("kernel: bad release `{0}` (want something like 6.1.0-28-amd64)")]
    Release(String),
    #[error("a file with [captured] needs `schema = \"{SCHEMA}\"` at the top")]
    NoSchema,
    #[error("field `{field}`: {why}")]
    Field { field: String, why: String },
    #[error("field `cgroup`: {declared:?} but the captured mounts are {captured:?}")]
    Cgroup {
        declared: CgroupMode,
        captured: CgroupMode,
    },
}

/// Checks shared by presets and host files: schema, release, and the capture's names.
pub fn check(p: &Preset) -> Result<(), CheckError> {
    if let Some(s) = &p.schema {
        if s != SCHEMA {
            return Err(CheckError::Schema(s.clone()));
        }
    }
    if super::KernelVersion::parse_release(&p.kernel).is_none() {
        return Err(CheckError::Release(p.kernel.clone()));
    }
    if let Some(c) = &p.captured {
        if p.schema.is_none() {
            return Err(CheckError::NoSchema);
        }
        c.validate()
            .map_err(|(field, why)| CheckError::Field { field, why })?;
        if c.mode() != p.cgroup {
            return Err(CheckError::Cgroup {
                declared: p.cgroup,
                captured: c.mode(),
            });
        }
    }
    Ok(())
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// The topology of a captured host: its mounts and the groups it read.
pub fn topology(host: &Host, data: &HostData, c: &Captured) -> Topology {
    let tables = &data.kernels;
    let rows = c.proc_cgroups_rows();
    let available: Vec<String> = rows
        .iter()
        .filter(|(n, _, en)| *en && tables.controller(n).is_some())
        .map(|(n, _, _)| n.clone())
        .collect();
    let mut v1 = Vec::new();
    for m in c.mount.iter().filter(|m| m.fstype == "cgroup") {
        let opts: Vec<&str> = m.super_options.split(',').collect();
        let controllers: Vec<String> = available
            .iter()
            .filter(|a| opts.contains(&a.as_str()))
            .cloned()
            .collect();
        let name = opts
            .iter()
            .find_map(|o| o.strip_prefix("name="))
            .map(str::to_owned);
        let id = controllers
            .first()
            .and_then(|c0| rows.iter().find(|(n, _, _)| n == c0).map(|r| r.1))
            .unwrap_or(0);
        v1.push(Mounted {
            id,
            dir: m.dir.clone(),
            controllers,
            name,
            symlinks: c
                .symlinks
                .iter()
                .filter(|(_, t)| **t == m.dir)
                .map(|(l, _)| l.clone())
                .collect(),
        });
    }
    // Named hierarchies have no /proc/cgroups row: number them after the others.
    let first_free = rows.iter().map(|r| r.1).max().unwrap_or(0) + 1;
    for (id, m) in (first_free..).zip(v1.iter_mut().filter(|m| m.id == 0)) {
        m.id = id;
    }
    v1.sort_by_key(|m| m.id);
    let v2_dir = c.cgroup2().map(|m| m.dir.clone());
    let v2_bound: Vec<String> = rows
        .iter()
        .filter(|(n, id, en)| *en && *id == 0 && tables.controller(n).is_some())
        .map(|(n, _, _)| n.clone())
        .filter(|n| {
            tables
                .controller(n)
                .is_some_and(|k| k.v2_since.is_some_and(|s| host.version() >= s))
        })
        .collect();
    let mut groups = Vec::new();
    for g in &c.group {
        let layer = if Some(&g.hierarchy) == v2_dir.as_ref() {
            Layer::V2
        } else {
            Layer::V1
        };
        let file = |n: &str| g.files.get(n).map(|f| f.value().to_owned());
        let path = g.path.trim_start_matches('/').to_owned();
        let (attached, listed, subtree) = match layer {
            Layer::V1 => (
                v1.iter()
                    .find(|m| m.dir == g.hierarchy)
                    .map(|m| m.controllers.clone())
                    .unwrap_or_default(),
                Vec::new(),
                Vec::new(),
            ),
            Layer::V2 => {
                let listed = words(&file("cgroup.controllers").unwrap_or_default());
                let mut attached = listed.clone();
                for n in &v2_bound {
                    let k = tables.controller(n).expect("filtered above");
                    if k.v2_implicit && !attached.iter().any(|a| a == k.v2_name()) {
                        attached.push(k.v2_name().to_owned());
                    }
                }
                (
                    attached,
                    listed,
                    words(&file("cgroup.subtree_control").unwrap_or_default()),
                )
            }
        };
        let procs = file("cgroup.procs").unwrap_or_default();
        groups.push(Group {
            layer,
            hierarchy: g.hierarchy.clone(),
            path,
            attached,
            listed,
            subtree,
            procs,
        });
    }
    Topology {
        v1,
        v2_dir,
        available,
        v2_bound,
        groups,
    }
}

/// The captured groups as tree nodes (paths relative to /sys/fs/cgroup).
pub fn tree(c: &Captured) -> BTreeMap<String, Node> {
    let mut t = BTreeMap::new();
    for (l, target) in &c.symlinks {
        t.insert(
            l.clone(),
            Node::Symlink {
                target: target.clone(),
            },
        );
    }
    for g in &c.group {
        let rel = join(&g.hierarchy, g.path.trim_start_matches('/'));
        if !rel.is_empty() {
            t.insert(
                rel.clone(),
                Node::Dir {
                    mode: parse_mode(&g.mode).unwrap_or(0o755),
                },
            );
        }
        for (name, f) in &g.files {
            t.insert(
                join(&rel, name),
                Node::File {
                    mode: parse_mode(&f.mode).unwrap_or(0o444),
                    content: f.value().to_owned(),
                },
            );
        }
    }
    // A captured child whose parent was not read still needs its parent directories.
    let dirs: Vec<String> = t
        .keys()
        .flat_map(|k| {
            let mut v = Vec::new();
            let mut p = k.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                v.push(parent.to_owned());
                p = parent;
            }
            v
        })
        .collect();
    for d in dirs {
        t.entry(d).or_insert(Node::Dir { mode: 0o755 });
    }
    t
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// `/proc/self/mountinfo` of a captured host: the model's base lines, then the captured
/// cgroup mounts with their own options, renumbered under the base's /sys mount.
pub fn mountinfo(data: &HostData, c: &Captured) -> String {
    let mi = &data.kernels.procfs.mountinfo;
    let mut text = String::new();
    for line in &mi.base {
        text += line;
        text.push('\n');
    }
    let (mut id, mut minor, mut shared) = (mi.next_mount_id, mi.next_minor, mi.next_shared);
    let mut tmpfs_id = None;
    for m in &c.mount {
        let parent = match (m.dir.is_empty(), tmpfs_id) {
            (false, Some(t)) => t,
            _ => mi.sysfs_mount_id,
        };
        let point = if m.dir.is_empty() {
            "/sys/fs/cgroup".to_owned()
        } else {
            format!("/sys/fs/cgroup/{}", m.dir)
        };
        let _ = writeln!(
            text,
            "{id} {parent} 0:{minor} {} {point} {} shared:{shared} - {} {} {}",
            m.root, m.options, m.fstype, m.fstype, m.super_options
        );
        if m.fstype == "tmpfs" && m.dir.is_empty() {
            tmpfs_id = Some(id);
        }
        id += 1;
        minor += 1;
        shared += 1;
    }
    text
}

/// A captured host's sysfs data (page sizes, CPUs), for the case's /sys views.
pub fn sysfs(data: &HostData, c: &Captured) -> super::data::SysfsData {
    let mut s = data.kernels.procfs.sysfs.clone();
    s.hugepage_sizes_kb = c.hugepage_sizes_kb.clone();
    if !c.cpus_online.trim().is_empty() {
        s.cpu_online = c.cpus_online.trim().to_owned();
    }
    s
}
