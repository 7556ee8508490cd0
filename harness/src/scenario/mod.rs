//! Scenario files: parse, validate, expand the matrix into [`Case`]s.
//!
//! A scenario is one TOML file (reference: README, "Scenario files"). [`load`] reads it,
//! checks every field — unknown keys, bad values, unknown presets, drivers and ops, matrix
//! axes that name no field — and reports problems as [`ScenarioError`]s with file, line,
//! column, the field and a hint. The `[matrix]` is expanded by setting each axis value at
//! its dotted path in the document and resolving the result, so an axis can vary any
//! field; each cell becomes a [`Case`] named `<scenario path>::<axis>=<value>,...`.

// Scenario errors carry their source line for display; they are rare and returned once.
#![allow(clippy::result_large_err)]

pub mod error;
mod matrix;
mod parse;
pub mod select;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use error::ScenarioError;
pub use select::CellError;

use crate::host::{ContentFault, Host, HostData};
use crate::outcome::Class;
use crate::subject::Drivers;

/// What a scenario needs to be validated against.
pub struct Context<'a> {
    pub hosts: &'a HostData,
    pub drivers: &'a Drivers,
}

/// The `[scenario]` table.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A scenario file, loaded and expanded.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file.
    pub path: PathBuf,
    /// Its name: the path below the scenarios directory, without `.toml`.
    pub name: String,
    pub meta: Meta,
    /// Matrix axes in file order, with their values.
    pub axes: Vec<(String, Vec<String>)>,
    pub cases: Vec<Case>,
}

/// How the code under test is started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A workspace binary that drives one library through the ops vocabulary.
    Driver {
        name: String,
        version: Option<String>,
    },
    /// Any argv.
    Command { argv: Vec<String> },
    /// A containerd shim v2 driven over ttrpc: `kata` or a fixture shim. `version`: a
    /// Kata release (`containerd-shim-kata-v2-<version>` from the shim directory).
    Shim {
        name: String,
        version: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub kind: TargetKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Shims: the deadline of each ttrpc call.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
}

impl Target {
    /// `driver cgroups-rs 0.2.9`, `command sh -c ...`.
    pub fn summary(&self) -> String {
        match &self.kind {
            TargetKind::Driver {
                name,
                version: Some(v),
            } => format!("driver {name} {v}"),
            TargetKind::Driver {
                name,
                version: None,
            } => format!("driver {name}"),
            TargetKind::Command { argv } => format!("command {}", argv.join(" ")),
            TargetKind::Shim {
                name,
                version: Some(v),
            } => format!("shim {name} {v}"),
            TargetKind::Shim {
                name,
                version: None,
            } => format!("shim {name}"),
        }
    }
}

/// The `[pod]` table, resolved: `{id}` substituted, quantities in bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pod {
    pub id: String,
    pub cgroups_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

/// An `[[expect]]` block that applies to a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Class>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Substring of the target's stdout (for command targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Shims: a substring of the client-side result (`ttrpc: closed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A substring of what the target logged: a shim's log and syslog lines (teardown
    /// included), another target's stderr. For reports whose symptom is a logged error
    /// the target survives (`error="cgroups: cgroup deleted"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Where the block is, for failure messages (`file:line`).
    #[serde(skip)]
    pub at: String,
}

/// One cell of a scenario's matrix, fully resolved. A case is a test.
#[derive(Debug, Clone)]
pub struct Case {
    /// `<scenario name>::<axis>=<value>,...` (just the scenario name without a matrix).
    pub name: String,
    pub scenario: Arc<ScenarioInfo>,
    /// This cell's axis values, in axis order.
    pub cell: Vec<(String, String)>,
    pub host: Host,
    pub target: Target,
    pub pod: Pod,
    /// The `[runtime]` table, as JSON.
    pub runtime: serde_json::Value,
    pub faults: Vec<ContentFault>,
    /// Faults on operations (`[[fault]]` with an `op`), numbered from 1 in file order:
    /// errno, delay, short write, corrupted read.
    pub op_faults: Vec<crate::fault::Fault>,
    /// Faults of the simulated systemd's D-Bus methods (`[[fault]] dbus = ...`).
    pub dbus_faults: Vec<crate::systemd::DbusFault>,
    pub expect: Vec<Expect>,
}

/// What every case of a scenario shares.
#[derive(Debug, Clone)]
pub struct ScenarioInfo {
    pub path: PathBuf,
    pub name: String,
    pub meta: Meta,
}

impl Case {
    /// File-system-safe name for the case's snapshot: `<scenario file stem>@<cell>`.
    pub fn snapshot_name(&self) -> String {
        let stem = self
            .scenario
            .name
            .rsplit('/')
            .next()
            .unwrap_or(&self.scenario.name);
        let mut s = stem.to_owned();
        if !self.cell.is_empty() {
            s.push('@');
            let cell: Vec<String> = self.cell.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&cell.join(","));
        }
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._=,@+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The directory (below the snapshots root) holding this case's snapshot: the
    /// scenario's group, e.g. `cgroups-rs`.
    pub fn snapshot_dir(&self) -> &str {
        self.scenario.name.rsplit_once('/').map_or("", |(d, _)| d)
    }
}

/// Load and expand one scenario file. `scenarios_root` names it (`cgroups-rs/x` for
/// `<root>/cgroups-rs/x.toml`).
pub fn load(path: &Path, scenarios_root: &Path, ctx: &Context) -> Result<Scenario, ScenarioError> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::file(path, format!("cannot read scenario: {e}")))?;
    let path = &path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let name = path
        .strip_prefix(scenarios_root)
        .unwrap_or(path)
        .with_extension("")
        .to_string_lossy()
        .into_owned();
    parse::parse(path, &name, &src, ctx)
}

/// Parse scenario text as if it were the file `path` (named `name`): what [`load`] does
/// after reading the file. The parser fuzz test drives this.
pub fn parse_str(
    path: &Path,
    name: &str,
    src: &str,
    ctx: &Context,
) -> Result<Scenario, ScenarioError> {
    parse::parse(path, name, src, ctx)
}

/// Every `*.toml` below `root` (the `snapshots` directory excluded), sorted.
pub fn discover(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "snapshots") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// Parse a Kubernetes-style quantity (`256Mi`, `1G`, `512`) into bytes.
pub fn parse_quantity(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        "T" => 1_000_000_000_000,
        "Ti" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The Task calls a shim target makes, in this order by default (`[target] ops`).
pub const SHIM_OPS: &[&str] = &["create", "start", "delete", "shutdown"];

/// The ops vocabulary drivers understand (fixtures/drivers/PROTOCOL.md).
pub const OPS: &[&str] = &[
    "create",
    "load",
    "apply",
    "add_task",
    "add_task_by_tgid",
    "add_thread",
    "freeze",
    "thaw",
    "stats",
    "root",
    "delete",
];

#[cfg(test)]
mod tests;
