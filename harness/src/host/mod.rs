//! The host model: what the code under test believes it runs on.
//!
//! A [`HostSpec`] (the scenario's `[host]` table: a preset plus overrides) resolves against
//! the data in `fixtures/hosts/` (distro presets) and `fixtures/kernels/` (which cgroup
//! controllers and interface files exist from which kernel version) into a [`Host`]. A
//! host is then *materialized* once per run into a directory: the cgroupfs tree the case
//! sees at `/sys/fs/cgroup`, and the /proc views (mountinfo, /proc/self/cgroup,
//! /proc/cgroups, osrelease, version). Content faults from the scenario are applied at
//! materialization, so they are part of the host's identity ([`Host::key`]).
//!
//! Submodules: [`version`] (kernel releases), [`data`] (the fixture files), `resolve`
//! (spec -> host), [`tree`] (hierarchies, groups, interface files -> [`Plan`]), `procfs`
//! (/proc views), `sysfs` (the /sys entries a host shows), `faults` (content faults on a
//! plan), `materialize` (a plan on disk).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod captured;
pub mod compare;
pub mod data;
mod faults;
mod materialize;
mod procfs;
mod resolve;
mod sysfs;
pub mod tree;
pub mod version;

#[cfg(test)]
mod tests;

pub use tree::{Layer, Level, Node, Plan};
pub use version::KernelVersion;

/// cgroup layout of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// One hierarchy per controller (plus co-mounts and `name=systemd`) under a tmpfs.
    V1,
    /// v1 hierarchies plus cgroup2 at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// cgroup2 at `/sys/fs/cgroup`.
    V2,
}

/// The scenario's `[host]` table, before resolution. Every field overrides the preset.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub preset: Option<String>,
    /// A host file (what `cgrepro capture` writes), relative to the repository root or
    /// absolute. Used like a preset; a captured host's tree replays as captured.
    pub file: Option<String>,
    /// Kernel release, e.g. "5.10.230" or "5.4.0-182-generic".
    pub kernel: Option<String>,
    pub cgroup: Option<CgroupMode>,
    pub swap_accounting: Option<bool>,
    /// systemd version, or absent. `false` (or `0`) means "no systemd" (overrides a preset's);
    /// `true` the preset's systemd ([`PRESET_SYSTEMD`]), so `[matrix] "host.systemd" =
    /// [true, false]` is the axis "systemd present / absent".
    #[serde(default, deserialize_with = "systemd_version")]
    pub systemd: Option<u32>,
    /// Device nodes present, e.g. ["kvm"].
    pub devices: Option<Vec<String>>,
    /// Kernel config knobs, e.g. { memcg_v1 = false, rt_group_sched = true }.
    pub options: Option<BTreeMap<String, bool>>,
    /// How the cgroupfs is served: `model` (FUSE, default where available) or `tree`.
    pub cgroupfs: Option<crate::evidence::CgroupfsKind>,
    /// Extra directories the target may write, private to the case (the rest of the
    /// machine's file system is read-only to it).
    pub writable: Option<Vec<String>>,
}

/// `0o644` -> `rw-r--r--`.
pub fn captured_mode(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `systemd = true` as [`HostSpec::systemd`] stores it: the preset's version.
pub const PRESET_SYSTEMD: u32 = u32::MAX;

/// `systemd = 252`, `systemd = false` (stored as `Some(0)`: none, whatever the preset says)
/// or `systemd = true` (the preset's).
fn systemd_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        Version(u32),
        Flag(bool),
    }
    match V::deserialize(d) {
        Ok(V::Version(v)) => Ok(Some(v)),
        Ok(V::Flag(false)) => Ok(Some(0)),
        Ok(V::Flag(true)) => Ok(Some(PRESET_SYSTEMD)),
        _ => Err(serde::de::Error::custom(
            "expected a systemd version (e.g. 252), true (the preset's) or false (no systemd)",
        )),
    }
}

/// A content fault: the host's file at `file` (a path the target sees: under
/// /sys/fs/cgroup or one of the /proc views) is missing, empty, replaced, or loses lines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ContentFault {
    pub file: String,
    pub action: ContentAction,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ContentAction {
    /// The file is absent (the tree only: /proc views cannot be removed).
    Missing,
    Empty,
    Replace(String),
    /// Drop every line containing this substring.
    DropLines(String),
}

/// A fully resolved host.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Host {
    /// Preset name, if one was used.
    pub preset: Option<String>,
    /// Full kernel release as `uname -r` prints it.
    pub kernel: String,
    pub cgroup: CgroupMode,
    pub swap_accounting: bool,
    pub systemd: Option<u32>,
    pub devices: Vec<String>,
    /// Every config knob of options.toml with its value, plus controllers forced on or off.
    pub options: BTreeMap<String, bool>,
    /// `/proc/version`.
    pub proc_version: String,
    /// The cgroupfs asked for (a case that cannot have it is ignored, never moved).
    pub cgroupfs: crate::evidence::CgroupfsKind,
    /// Directories private to the case and writable by its target (`[host] writable`),
    /// besides the sandbox's own (/tmp, /var/tmp, /run, /dev/shm).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writable: Vec<std::path::PathBuf>,
    /// The capture a host file carried: its tree replaces the generated one.
    #[serde(skip)]
    pub captured: Option<std::sync::Arc<captured::Captured>>,
    /// [`captured::Captured::digest`] of it (part of [`Host::key`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_digest: Option<String>,
}

/// Errors resolving a host spec. `field` is the `[host]` key at fault.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("unknown preset `{name}`")]
    UnknownPreset { name: String, known: Vec<String> },
    #[error("invalid kernel release `{0}`: expected something like 5.10.230 or 5.4.0-182-generic")]
    BadKernel(String),
    #[error("cgroup mode {mode:?} is not possible on kernel {kernel}: {why}")]
    Unsupported {
        mode: CgroupMode,
        kernel: String,
        why: String,
    },
    #[error("unknown host option `{name}`")]
    UnknownOption { name: String, known: Vec<String> },
    #[error("fault on `{file}`: {why}")]
    BadFault { file: String, why: String },
    #[error("`systemd = true` asks for the preset's systemd, and {preset} has none")]
    NoPresetSystemd { preset: String },
    #[error("host data in {path}: {why}")]
    Data { path: PathBuf, why: String },
    #[error("host file {path}: {why}")]
    HostFile { path: PathBuf, why: String },
    #[error("`{field}` cannot be combined with `file`: a captured host's tree is what the node had; {hint}")]
    CapturedOverride { field: String, hint: String },
    #[error("materializing the host in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The data under fixtures/ (kernels + presets), loaded once.
pub struct HostData {
    /// The `fixtures/` directory the data came from.
    pub root: PathBuf,
    /// fixtures/kernels/*.toml.
    pub kernels: std::sync::Arc<data::KernelTables>,
    /// fixtures/hosts/*.toml by preset name.
    pub presets: BTreeMap<String, data::Preset>,
}

/// Where a materialized host lives on disk. Hierarchy roots are `r-xr-xr-x` like the
/// kernel's, so removing the tree needs CAP_DAC_OVERRIDE (the sandbox root) or a chmod first.
/// Materialize into a tmpfs: file creation on a disk filesystem dominates the cost.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The cgroupfs tree: mounted (as the lower layer of an overlay) at /sys/fs/cgroup.
    pub tree: PathBuf,
    /// Files to bind over /proc paths, as (path the target sees, file on disk). Includes
    /// /proc/self/mountinfo, /proc/self/cgroup, /proc/cgroups,
    /// /proc/sys/kernel/osrelease, /proc/version. A `missing` fault on a view is rejected
    /// (`HostError::BadFault`): a bind mount cannot make a /proc file disappear.
    pub proc_views: Vec<(PathBuf, PathBuf)>,
    /// Files and directories to bind over sysfs paths (`/sys/kernel/mm/hugepages`,
    /// `/sys/devices/system/cpu/online`), as (path the target sees, path on disk).
    pub sys_views: Vec<(PathBuf, PathBuf)>,
}

impl HostData {
    /// Load `fixtures/kernels/*.toml` and `fixtures/hosts/*.toml` under `fixtures`.
    pub fn load(fixtures: &Path) -> Result<HostData, HostError> {
        Ok(HostData {
            root: fixtures.to_owned(),
            kernels: std::sync::Arc::new(data::load_kernels(&fixtures.join("kernels"))?),
            presets: data::load_presets(&fixtures.join("hosts"))?,
        })
    }
    /// Names of all presets, sorted.
    pub fn presets(&self) -> Vec<String> {
        self.presets.keys().cloned().collect()
    }
    /// Resolve a spec: preset (if any) then overrides; validate. With neither a preset nor a
    /// kernel, the host is the `debian-12` preset. A kernel without a preset gets cgroup v2
    /// from 5.10 on (v1 below), no systemd, swap accounting from 5.8 on, no devices.
    pub fn resolve(&self, spec: &HostSpec) -> Result<Host, HostError> {
        resolve::resolve(self, spec)
    }
    /// The host a loaded preset or host file stands for (`name` for reports).
    pub fn resolve_preset(&self, name: &str, preset: &data::Preset) -> Result<Host, HostError> {
        resolve::resolve_with(
            self,
            &HostSpec::default(),
            Some(name.to_owned()),
            Some(preset),
        )
    }
    /// Names of the syscalls (syscalls.toml) that the host's kernel does not have yet.
    pub fn syscalls_newer_than(&self, host: &Host) -> Vec<String> {
        let v = host.version();
        self.kernels
            .syscalls
            .iter()
            .filter(|s| s.since > v)
            .map(|s| s.name.clone())
            .collect()
    }
}

impl Host {
    /// One line for reports: `ubuntu-20.04: kernel 5.4.0-182-generic, cgroup hybrid, systemd 245, swap accounting off`.
    pub fn summary(&self) -> String {
        let systemd = match self.systemd {
            Some(v) => format!("systemd {v}"),
            None => "no systemd".to_owned(),
        };
        let mode = match self.cgroup {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        };
        let swap = if self.swap_accounting { "on" } else { "off" };
        format!(
            "{}: kernel {}, cgroup {mode}, {systemd}, swap accounting {swap}",
            self.preset.as_deref().unwrap_or("custom"),
            self.kernel
        )
    }
    /// Stable key for caching materialized trees (host + faults): 16 hex digits of a SHA-256
    /// over the JSON of both.
    pub fn key(&self, faults: &[ContentFault]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("a Host serializes"));
        h.update([0]);
        h.update(serde_json::to_vec(faults).expect("faults serialize"));
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
    /// The kernel version (the release's `major.minor.patch`).
    pub fn version(&self) -> KernelVersion {
        KernelVersion::parse_release(&self.kernel).expect("a resolved host has a valid release")
    }
    /// The host as files, in memory: the tree and the /proc views, faults applied.
    pub fn plan(&self, data: &HostData, faults: &[ContentFault]) -> Result<Plan, HostError> {
        let mut plan = tree::build(self, data);
        faults::apply(&mut plan, self, data, faults)?;
        Ok(plan)
    }
    /// Write the tree and the /proc views under `dir` (which exists and is empty). Every
    /// file and directory is owned by `owner` (uid, gid) — the sandbox's root.
    pub fn materialize(
        &self,
        data: &HostData,
        faults: &[ContentFault],
        dir: &Path,
        owner: (u32, u32),
    ) -> Result<Layout, HostError> {
        let plan = self.plan(data, faults)?;
        let mut layout = materialize::write(&plan, dir, owner)?;
        layout.sys_views = match &self.captured {
            Some(c) => sysfs::write(&captured::sysfs(data, c), dir, owner)?,
            None => sysfs::write(&data.kernels.procfs.sysfs, dir, owner)?,
        };
        Ok(layout)
    }
}
