//! The data files under `fixtures/`: their serde shapes, loading, and load-time validation
//! (unknown controllers, knobs or modes in the data are errors naming the file).
//!
//! `fixtures/kernels/`: `controllers.toml` (controllers by version, v1 hierarchy layout),
//! `files-v1.toml` / `files-v2.toml` (interface files), `options.toml` (kernel config knobs),
//! `systemd.toml`, `procfs.toml`, `syscalls.toml`. `fixtures/hosts/*.toml`: one preset each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::version::KernelVersion;
use super::{CgroupMode, HostError};

/// Which groups of a hierarchy have an interface file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum At {
    Root,
    Child,
    Both,
}

/// One `[[file]]` of files-v1.toml / files-v2.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    /// Owning controller; `cgroup` for core files.
    pub controller: String,
    pub at: At,
    /// Permission bits, parsed from the `ls` form (`rw-r--r--`).
    #[serde(deserialize_with = "de_mode")]
    pub mode: u32,
    /// Default content; may hold placeholders (`{procs}`, `{controllers}`, ...).
    pub content: String,
    pub root_content: Option<String>,
    pub since: Option<KernelVersion>,
    pub removed_in: Option<KernelVersion>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    pub with_controller: Option<String>,
    pub without_controller: Option<String>,
    pub verified: Option<String>,
    pub note: Option<String>,
}

impl FileEntry {
    pub fn exists_in(&self, v: KernelVersion) -> bool {
        self.since.is_none_or(|s| v >= s) && self.removed_in.is_none_or(|r| v < r)
    }
}

fn de_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    parse_mode(&s).ok_or_else(|| {
        serde::de::Error::custom(format!("bad mode `{s}`: want 9 chars like rw-r--r--"))
    })
}

/// `rw-r--r--` -> 0o644.
pub fn parse_mode(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 9 {
        return None;
    }
    let mut mode = 0;
    for (i, &c) in b.iter().enumerate() {
        let bit = match (i % 3, c) {
            (_, b'-') => 0,
            (0, b'r') => 4,
            (1, b'w') => 2,
            (2, b'x') => 1,
            _ => return None,
        };
        mode = (mode << if i % 3 == 0 { 3 } else { 0 }) | bit;
    }
    Some(mode)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    pub name: String,
    pub since: KernelVersion,
    pub v2_name: Option<String>,
    pub v2_since: Option<KernelVersion>,
    #[serde(default)]
    pub v2_implicit: bool,
    #[serde(default)]
    pub v1_requires: Vec<String>,
}

impl Controller {
    /// Name on cgroup v2 (`io` for blkio).
    pub fn v2_name(&self) -> &str {
        self.v2_name.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hierarchy {
    pub dir: String,
    pub controllers: Vec<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub symlinks: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllersFile {
    controller: Vec<Controller>,
    hierarchy: Vec<Hierarchy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesFile {
    file: Vec<FileEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionDef {
    pub default: bool,
    pub doc: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsFile {
    option: BTreeMap<String, OptionDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syscall {
    pub name: String,
    pub since: KernelVersion,
    pub nr: u32,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyscallsFile {
    syscall: Vec<Syscall>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdData {
    pub mount: SystemdMount,
    pub root_subtree_control: RootSubtreeControl,
    pub group: Vec<SystemdGroup>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdMount {
    pub name_systemd: String,
    pub release_agent_before: u32,
    pub release_agent: String,
    pub cgroup2_option: Vec<Cgroup2Option>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cgroup2Option {
    pub name: String,
    pub kernel: KernelVersion,
    pub systemd: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSubtreeControl {
    pub all_since: u32,
    pub older: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemdGroup {
    pub path: String,
    pub since: Option<u32>,
    #[serde(default)]
    pub procs: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcfsData {
    pub mountinfo: MountinfoData,
    pub version: VersionTemplate,
    pub sysfs: SysfsData,
}

/// The sysfs files the simulated machine shows (`[sysfs]` of procfs.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysfsData {
    pub hugepage_sizes_kb: Vec<u64>,
    pub cpu_online: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountinfoData {
    pub sysfs_mount_id: u32,
    pub next_mount_id: u32,
    pub next_minor: u32,
    pub next_shared: u32,
    pub base: Vec<String>,
    pub mount_options: String,
    pub tmpfs_options: String,
    pub tmpfs_super: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionTemplate {
    pub template: String,
}

/// One `fixtures/hosts/<name>.toml`, or a host file (`[host] file`): the same keys, plus
/// `schema` and `[captured]` when `cgrepro capture` wrote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// `cgrepro-host/1` in captured host files.
    #[serde(default)]
    pub schema: Option<String>,
    pub description: String,
    /// Where the preset's facts come from (a capture, a distro's documentation).
    #[serde(default)]
    pub source: Option<String>,
    pub kernel: String,
    pub proc_version: String,
    pub cgroup: CgroupMode,
    pub systemd: Option<u32>,
    pub swap_accounting: bool,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
    /// What a capture read on the node (see `host::captured`).
    #[serde(default, deserialize_with = "shared_capture")]
    pub captured: Option<std::sync::Arc<super::captured::Captured>>,
}

/// `[captured]` behind an `Arc`: every case of a host shares one copy.
fn shared_capture<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::sync::Arc<super::captured::Captured>>, D::Error> {
    Ok(Option::<super::captured::Captured>::deserialize(d)?.map(std::sync::Arc::new))
}

/// Everything under `fixtures/kernels/`.
#[derive(Debug, Clone)]
pub struct KernelTables {
    pub controllers: Vec<Controller>,
    pub hierarchies: Vec<Hierarchy>,
    pub files_v1: Vec<FileEntry>,
    pub files_v2: Vec<FileEntry>,
    pub options: BTreeMap<String, OptionDef>,
    pub syscalls: Vec<Syscall>,
    pub systemd: SystemdData,
    pub procfs: ProcfsData,
}

impl KernelTables {
    pub fn controller(&self, name: &str) -> Option<&Controller> {
        self.controllers.iter().find(|c| c.name == name)
    }

    /// Names usable in `[host] options`: config knobs, then controller names.
    pub fn option_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.options.keys().cloned().collect();
        names.extend(self.controllers.iter().map(|c| c.name.clone()));
        names
    }
}

fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, HostError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostError::Data {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| HostError::Data {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

pub fn load_kernels(dir: &Path) -> Result<KernelTables, HostError> {
    let cf: ControllersFile = read_toml(&dir.join("controllers.toml"))?;
    let v1: FilesFile = read_toml(&dir.join("files-v1.toml"))?;
    let v2: FilesFile = read_toml(&dir.join("files-v2.toml"))?;
    let options: OptionsFile = read_toml(&dir.join("options.toml"))?;
    let syscalls: SyscallsFile = read_toml(&dir.join("syscalls.toml"))?;
    let systemd: SystemdData = read_toml(&dir.join("systemd.toml"))?;
    let procfs: ProcfsData = read_toml(&dir.join("procfs.toml"))?;
    let tables = KernelTables {
        controllers: cf.controller,
        hierarchies: cf.hierarchy,
        files_v1: v1.file,
        files_v2: v2.file,
        options: options.option,
        syscalls: syscalls.syscall,
        systemd,
        procfs,
    };
    validate(&tables, dir)?;
    Ok(tables)
}

/// Cross-file checks: every name a data file refers to must exist.
fn validate(t: &KernelTables, dir: &Path) -> Result<(), HostError> {
    let bad = |file: &str, why: String| HostError::Data {
        path: dir.join(file),
        why,
    };
    let knob_ok = |k: &str| {
        k == "swap_accounting"
            || k == "systemd"
            || t.options.contains_key(k)
            || t.controller(k).is_some()
    };
    for c in &t.controllers {
        if let Some(k) = c.v1_requires.iter().find(|k| !t.options.contains_key(*k)) {
            return Err(bad(
                "controllers.toml",
                format!("controller {}: unknown option `{k}`", c.name),
            ));
        }
    }
    for h in &t.hierarchies {
        if let Some(c) = h.controllers.iter().find(|c| t.controller(c).is_none()) {
            return Err(bad(
                "controllers.toml",
                format!("hierarchy {}: unknown controller `{c}`", h.dir),
            ));
        }
        if let Some(k) = h.requires.iter().find(|k| !knob_ok(k)) {
            return Err(bad(
                "controllers.toml",
                format!("hierarchy {}: unknown knob `{k}`", h.dir),
            ));
        }
    }
    for (file, entries, v2) in [
        ("files-v1.toml", &t.files_v1, false),
        ("files-v2.toml", &t.files_v2, true),
    ] {
        let ctl_ok = |c: &str| {
            c == "cgroup"
                || t.controllers
                    .iter()
                    .any(|k| if v2 { k.v2_name() == c } else { k.name == c })
        };
        for e in entries.iter() {
            let why = if !ctl_ok(&e.controller) {
                Some(format!("unknown controller `{}`", e.controller))
            } else if let Some(k) = e.requires.iter().chain(&e.excludes).find(|k| !knob_ok(k)) {
                Some(format!("unknown knob `{k}`"))
            } else if let Some(c) = e
                .with_controller
                .iter()
                .chain(&e.without_controller)
                .find(|c| !ctl_ok(c))
            {
                Some(format!("unknown controller `{c}`"))
            } else if let (Some(s), Some(r)) = (e.since, e.removed_in) {
                (s >= r).then(|| format!("since {s} is not before removed_in {r}"))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(bad(file, format!("file {}: {why}", e.name)));
            }
        }
    }
    Ok(())
}

pub fn load_presets(dir: &Path) -> Result<BTreeMap<String, Preset>, HostError> {
    let entries = std::fs::read_dir(dir).map_err(|e| HostError::Data {
        path: dir.to_owned(),
        why: e.to_string(),
    })?;
    let mut presets = BTreeMap::new();
    for entry in entries {
        let path: PathBuf = entry
            .map_err(|e| HostError::Data {
                path: dir.to_owned(),
                why: e.to_string(),
            })?
            .path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let preset = super::captured::load_path(&path).map_err(|e| match e {
                HostError::HostFile { path, why } => HostError::Data { path, why },
                e => e,
            })?;
            presets.insert(name, preset);
        }
    }
    Ok(presets)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_modes() {
        assert_eq!(super::parse_mode("rw-r--r--"), Some(0o644));
        assert_eq!(super::parse_mode("-w-------"), Some(0o200));
        assert_eq!(super::parse_mode("-w--w--w-"), Some(0o222));
        assert_eq!(super::parse_mode("r-xr-xr-x"), Some(0o555));
        assert_eq!(super::parse_mode("---------"), Some(0));
        assert_eq!(super::parse_mode("rw-r--r"), None);
        assert_eq!(super::parse_mode("rwxrwxrwz"), None);
    }
}
