//! How code under test is started: drivers (workspace binaries speaking the driver
//! protocol, `fixtures/drivers/PROTOCOL.md`), plain commands, and containerd shims driven
//! over ttrpc ([`shim`]).
//!
//! [`Drivers`] knows the workspace's driver binaries by reading the `[[bin]]` tables of
//! the crates under `fixtures/` (so scenarios are validated even before anything is
//! built) and finds the built executables next to the running harness. [`launch`] turns a
//! [`Case`] into the argv, environment and stdin of a [`Launch`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sandbox::Launch;
use crate::scenario::{Case, TargetKind};

pub mod shim;

/// The fd on which drivers write their events.
pub const CHANNEL_FD: i32 = 3;

/// Workspace driver binaries: `<driver>` or `<driver>-<version with _ for .>`.
#[derive(Debug, Clone)]
pub struct Drivers {
    bin_dir: PathBuf,
    bins: Vec<String>,
    /// Fixture shims (`fixtures/shims/*`): names `<name>` of binaries
    /// `containerd-shim-<name>-v2`.
    shims: Vec<String>,
    /// The real Kata shim: `--shim PATH`, else `CGREPRO_KATA_SHIM`.
    pub kata_shim: Option<PathBuf>,
    /// Kata releases, `containerd-shim-kata-v2-<version>`: `--shim-dir`, else
    /// `CGREPRO_KATA_SHIM_DIR`, else where `ci/kata-shim.sh` builds them.
    pub kata_shim_dir: PathBuf,
    /// A placeholder `/dev/kvm` node for shim hosts (see [`shim::make_kvm_node`]).
    pub kvm_node: Option<PathBuf>,
}

impl Drivers {
    /// Read the binaries of every crate in `fixtures/drivers/*` and `fixtures/crashers`.
    pub fn discover(root: &Path, bin_dir: PathBuf) -> Drivers {
        let mut manifests = vec![root.join("fixtures/crashers/Cargo.toml")];
        if let Ok(rd) = std::fs::read_dir(root.join("fixtures/drivers")) {
            let mut dirs: Vec<PathBuf> =
                rd.flatten().map(|e| e.path().join("Cargo.toml")).collect();
            dirs.sort();
            manifests.extend(dirs);
        }
        let mut bins = Vec::new();
        for m in manifests {
            let Ok(text) = std::fs::read_to_string(&m) else {
                continue;
            };
            let Ok(doc) = text.parse::<toml::Table>() else {
                continue;
            };
            let declared: Vec<String> = doc
                .get("bin")
                .and_then(|b| b.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            bins.extend(declared);
            // Auto-discovered binaries: src/bin/*.rs.
            if let Ok(rd) = std::fs::read_dir(m.with_file_name("src/bin")) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "rs") {
                        if let Some(stem) = p.file_stem() {
                            bins.push(stem.to_string_lossy().into_owned());
                        }
                    }
                }
            }
        }
        bins.sort();
        bins.dedup();
        Drivers {
            bin_dir,
            bins,
            shims: shim::discover_fixtures(root),
            kata_shim: std::env::var_os(shim::KATA_SHIM_ENV)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            kata_shim_dir: shim::default_shim_dir(),
            kvm_node: None,
        }
    }

    /// Shim names a scenario may use: `kata` and the fixture shims.
    pub fn shim_names(&self) -> Vec<String> {
        let mut n = vec![shim::KATA.to_owned()];
        n.extend(self.shims.iter().cloned());
        n
    }

    /// Where built binaries are: `CGREPRO_BIN_DIR`, else the directory of the running
    /// executable (`target/<profile>`, also for test binaries in `target/<profile>/deps`).
    pub fn default_bin_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("CGREPRO_BIN_DIR") {
            return PathBuf::from(d);
        }
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.parent().map(Path::to_path_buf).unwrap_or(dir)
        } else {
            dir
        }
    }

    fn split(bin: &str) -> (&str, Option<String>) {
        if let Some((name, v)) = bin.rsplit_once('-') {
            if !v.is_empty()
                && v.split('_')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && v.contains('_')
            {
                return (name, Some(v.replace('_', ".")));
            }
        }
        (bin, None)
    }

    /// Driver names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .bins
            .iter()
            .map(|b| Self::split(b).0.to_owned())
            .collect();
        n.dedup();
        n
    }

    /// Versions of a driver (empty: a single, unversioned binary); `None`: unknown driver.
    pub fn versions(&self, driver: &str) -> Option<Vec<String>> {
        let mut found = false;
        let mut versions = Vec::new();
        for b in &self.bins {
            let (n, v) = Self::split(b);
            if n == driver {
                found = true;
                if let Some(v) = v {
                    versions.push(v);
                }
            }
        }
        found.then_some(versions)
    }

    pub fn bin_name(driver: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("{driver}-{}", v.replace('.', "_")),
            None => driver.to_owned(),
        }
    }

    pub fn path(&self, driver: &str, version: Option<&str>) -> PathBuf {
        self.bin_dir.join(Self::bin_name(driver, version))
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }
}

/// Why the workspace's drivers could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("cannot run cargo to build the drivers: {0}")]
    Cargo(#[source] std::io::Error),
    /// cargo's stderr.
    #[error("building the drivers failed:\n{0}")]
    Failed(String),
}

/// Build every workspace binary (drivers, crashers) with the cargo that runs us, in the
/// same profile. A no-op when they are up to date.
pub fn ensure_built(root: &Path, bin_dir: &Path) -> Result<(), BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--quiet", "--workspace", "--bins"]);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(BuildError::Cargo)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// Why a case's target cannot run on this machine (reported as ignored), if it can't.
pub fn unavailable(case: &Case, drivers: &Drivers) -> Option<String> {
    match &case.target.kind {
        TargetKind::Driver { name, version } => {
            let p = drivers.path(name, version.as_deref());
            (!p.is_file()).then(|| {
                format!(
                    "driver binary {} is not built (run `cargo build --workspace --bins`)",
                    p.display()
                )
            })
        }
        TargetKind::Command { argv } => resolve_command(&argv[0])
            .is_none()
            .then(|| format!("command `{}` not found on this machine", argv[0])),
        TargetKind::Shim { name, version } => shim::unavailable(name, version.as_deref(), drivers),
    }
}

/// The PATH targets get (and commands are resolved on): the system directories only, the
/// same on every machine (a user's ~/.local or pyenv shims are not the host under test).
const TARGET_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn resolve_command(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(TARGET_PATH)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The case as the driver protocol hands it to a driver.
pub fn case_json(case: &Case) -> serde_json::Value {
    let (driver, version) = match &case.target.kind {
        TargetKind::Driver { name, version } => (Some(name.clone()), version.clone()),
        TargetKind::Command { .. } | TargetKind::Shim { .. } => (None, None),
    };
    serde_json::json!({
        "case": case.name,
        "target": { "driver": driver, "version": version },
        "ops": case.target.ops,
        "pod": case.pod,
        "runtime": case.runtime,
        "host": { "kernel": case.host.kernel, "cgroup": case.host.cgroup },
    })
}

/// The environment every target starts with: small and fixed, so runs are reproducible.
pub(crate) fn environment(case: &Case) -> Vec<(String, String)> {
    vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME".into(), "/root".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("CGREPRO_CASE".into(), case.name.clone()),
        (
            cgrepro_driver::CHANNEL_FD_ENV.into(),
            CHANNEL_FD.to_string(),
        ),
    ]
}

/// Argv, environment and stdin for a case. `None` when the target is unavailable (see
/// [`unavailable`]).
pub fn launch(case: &Case, drivers: &Drivers, keep: bool) -> Option<Launch> {
    let (exe, argv, stdin) = match &case.target.kind {
        TargetKind::Driver { name, version } => {
            let exe = drivers.path(name, version.as_deref());
            let argv0 = Drivers::bin_name(name, version.as_deref());
            let stdin = serde_json::to_vec(&case_json(case)).unwrap_or_default();
            (exe, vec![argv0], stdin)
        }
        TargetKind::Command { argv } => (resolve_command(&argv[0])?, argv.clone(), Vec::new()),
        TargetKind::Shim { name, version } => {
            return shim::launch(case, name, version.as_deref(), drivers, keep)
        }
    };
    Some(Launch {
        exe: exe.clone(),
        argv,
        env: environment(case),
        stdin,
        timeout: case.target.timeout,
        grace: case.target.grace,
        keep,
        faults: case.op_faults.clone(),
        dbus_faults: case.dbus_faults.clone(),
        expose: exe.parent().map(Path::to_path_buf).into_iter().collect(),
        capture: None,
    })
}
