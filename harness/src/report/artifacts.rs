//! A run's artifacts on disk: `target/cgrepro/<run>/<group>/<case>/` holds, for every case
//! that ran, its whole `stdout.log` and `stderr.log` (written as the case runs), the
//! shim's log (`shim.log`), the op log (`ops.log`: the target's operations and the
//! cgroupfs model's), the report as in the snapshot (`report.yaml`) and the case's JSON
//! record (`case.json`). The run directory also holds `cases.jsonl` (every record) and
//! `index.html` (`cgrepro report`). The newest [`KEEP_RUNS`] runs are kept. Snapshots keep
//! only the normalised tail.

use std::path::{Path, PathBuf};

use super::Report;
use crate::scenario::Case;

/// A new run directory under `base` (`<root>/target/cgrepro` by default), named by the
/// UTC time and the process id; `base/latest` points at it.
pub fn new_run_dir(base: &Path) -> std::io::Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let dir = base.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    prune(base, KEEP_RUNS);
    let latest = base.join("latest");
    let _ = std::fs::remove_file(&latest);
    if let Some(name) = dir.file_name() {
        let _ = std::os::unix::fs::symlink(name, &latest);
    }
    Ok(dir)
}

/// Runs kept under the base directory (whole outputs add up: crashers/big-output alone
/// writes 100 MB); older ones are removed when a run starts.
pub const KEEP_RUNS: usize = 5;

/// Remove all but the `keep` newest run directories (named by [`new_run_dir`]).
fn prune(base: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    let is_run = regex::Regex::new(r"^\d{8}T\d{6}Z-\d+$").expect("valid regex");
    let mut runs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p.is_symlink()
                && p.file_name()
                    .is_some_and(|n| is_run.is_match(&n.to_string_lossy()))
        })
        .collect();
    runs.sort();
    let excess = runs.len().saturating_sub(keep);
    for old in &runs[..excess] {
        let _ = std::fs::remove_dir_all(old);
    }
}

/// A case's directory in a run (named as its snapshot). A scenario outside `scenarios/` is
/// named by its absolute path: its directory still goes under the run, never beside the
/// scenario file.
pub fn case_dir(run: &Path, case: &Case) -> PathBuf {
    let within: PathBuf = Path::new(case.snapshot_dir())
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    run.join(within).join(case.snapshot_name())
}

/// Write what the report holds beyond the captured output (which the sandbox wrote as
/// the case ran): shim log, op log, the report itself.
pub fn write(dir: &Path, report: &Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.yaml"), report.snapshot())?;
    let mut ops = String::new();
    for o in &report.ops {
        if let Some(s) = super::op_line(o).as_str() {
            ops.push_str(s);
            ops.push('\n');
        }
    }
    if !report.cgroupfs_ops.is_empty() {
        ops.push_str("# cgroupfs model\n");
        for l in &report.cgroupfs_ops {
            ops.push_str(l);
            ops.push('\n');
        }
    }
    if !ops.is_empty() {
        std::fs::write(dir.join("ops.log"), ops)?;
    }
    if let Some(shim) = &report.shim {
        if !shim.log.is_empty() || !shim.syslog.is_empty() {
            let mut log = shim.log.clone();
            if !shim.syslog.is_empty() {
                log.push_str("\n# syslog\n");
                log.push_str(&shim.syslog.join("\n"));
                log.push('\n');
            }
            std::fs::write(dir.join("shim.log"), log)?;
        }
    }
    Ok(())
}
