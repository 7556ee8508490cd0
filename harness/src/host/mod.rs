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
//! INTERFACE CONTRACT (used by scenario/, sandbox/, report/): keep these names and
//! signatures; add fields freely.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Kernel release, e.g. "5.10.230" or "5.4.0-182-generic".
    pub kernel: Option<String>,
    pub cgroup: Option<CgroupMode>,
    pub swap_accounting: Option<bool>,
    /// systemd version, or absent.
    pub systemd: Option<u32>,
    /// Device nodes present, e.g. ["kvm"].
    pub devices: Option<Vec<String>>,
    /// Kernel config knobs, e.g. { memcg_v1 = false, rt_group_sched = true }.
    pub options: Option<BTreeMap<String, bool>>,
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
    pub options: BTreeMap<String, bool>,
}

/// Errors resolving a host spec. `field` is the `[host]` key at fault.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("unknown preset `{name}`")]
    UnknownPreset { name: String, known: Vec<String> },
    #[error("invalid kernel release `{0}`: expected something like 5.10.230 or 5.4.0-182-generic")]
    BadKernel(String),
    #[error("cgroup mode {mode:?} is not possible on kernel {kernel}: {why}")]
    Unsupported { mode: CgroupMode, kernel: String, why: String },
    #[error("unknown host option `{name}`")]
    UnknownOption { name: String, known: Vec<String> },
    #[error("fault on `{file}`: {why}")]
    BadFault { file: String, why: String },
    #[error("host data in {path}: {why}")]
    Data { path: PathBuf, why: String },
    #[error("materializing the host in {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The data under fixtures/ (kernels + presets), loaded once.
pub struct HostData {
    // filled by the implementation
}

/// Where a materialized host lives on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The cgroupfs tree: mounted (as the lower layer of an overlay) at /sys/fs/cgroup.
    pub tree: PathBuf,
    /// Files to bind over /proc paths, as (path the target sees, file on disk). Includes
    /// /proc/self/mountinfo, /proc/self/cgroup, /proc/cgroups,
    /// /proc/sys/kernel/osrelease, /proc/version. A view removed by a `missing` fault is
    /// simply absent here... (see ContentAction::Missing handling in the implementation).
    pub proc_views: Vec<(PathBuf, PathBuf)>,
}

impl HostData {
    /// Load `fixtures/kernels/*.toml` and `fixtures/hosts/*.toml` under `fixtures`.
    pub fn load(fixtures: &Path) -> Result<HostData, HostError> {
        let _ = fixtures;
        todo!()
    }
    /// Names of all presets, sorted.
    pub fn presets(&self) -> Vec<String> {
        todo!()
    }
    /// Resolve a spec: preset (if any) then overrides; validate.
    pub fn resolve(&self, spec: &HostSpec) -> Result<Host, HostError> {
        let _ = spec;
        todo!()
    }
}

impl Host {
    /// One line for reports: `ubuntu-20.04: kernel 5.4.0-182-generic, cgroup hybrid, systemd 245, swap accounting off`.
    pub fn summary(&self) -> String {
        todo!()
    }
    /// Stable key for caching materialized trees (host + faults).
    pub fn key(&self, faults: &[ContentFault]) -> String {
        let _ = faults;
        todo!()
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
        let _ = (data, faults, dir, owner);
        todo!()
    }
}
