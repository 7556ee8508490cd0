//! `cgrepro sweep`: inject every plausible kernel failure at every cgroupfs operation a
//! real controller makes, and report what it does wrong.
//!
//! For each selected case (one matrix cell = one target):
//!
//! 1. a fault-free **baseline** run on the cgroupfs model gives the op log and the final
//!    state (the limits as this library writes them);
//! 2. [`plan`]: each distinct op × path of the op log (capped) × each fault the kernel can
//!    produce there (`fixtures/sweep/errnos.toml`, short writes, delays past a shim's call
//!    deadline) is one **injection**, applied with the existing fault mechanisms (a
//!    `[[fault]]` on the exact path, served by the cgroupfs model);
//! 3. the injections run in parallel on the [`crate::pool`], each judged by [`verdict`]
//!    against the baseline and the pod's limits; results are appended to a **state file**
//!    as they come, so an interrupted sweep resumes where it stopped;
//! 4. per defect (faults with one signature), [`found`] minimises the first fault's case
//!    (fewest ops, fewest of the scenario's own faults, same signature) and writes it as a
//!    scenario under `scenarios/found/`.
//!
//! Deterministic: the plan is in op-log order, results are collected by index, and the
//! state file is keyed by injection.

pub mod cli;
mod error;
pub mod found;
pub mod plan;
pub mod verdict;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use error::SweepError;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::pool;
use crate::report::Report;
use crate::scenario::{Case, TargetKind};
use plan::{ErrnoTable, Injection, Mode};
use verdict::{Evidence, Kind, LimitFiles, Verdict};

/// The key of the row for the fault-free run's own defect.
const BASELINE: &str = "baseline";

/// Knobs of one sweep.
#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    /// At most this many op × path sites per target.
    pub cap: usize,
    /// The state file (resume). Default: `target/sweep/<case>.jsonl` under the repository.
    pub state: Option<PathBuf>,
    /// Where minimised scenarios go; `None`: do not write them.
    pub found_dir: Option<PathBuf>,
}

/// One judged injection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub op: String,
    pub path: String,
    pub fault: String,
    pub outcome: String,
    pub verdict: Verdict,
}

/// The sweep of one target (one case).
#[derive(Debug, Clone)]
pub struct TargetSweep {
    pub case: String,
    pub target: String,
    pub host: String,
    pub baseline: String,
    /// Limits the pod asks for that even the baseline does not write.
    pub unapplied: Vec<String>,
    pub sites: usize,
    pub beyond_cap: usize,
    pub rows: Vec<Row>,
    /// Resumed from the state file (not rerun).
    pub resumed: usize,
    /// Per bug signature: the scenario written for it.
    pub found: BTreeMap<String, PathBuf>,
    pub seconds: f64,
}

/// The data the sweep reads from `fixtures/sweep/`.
pub struct Tables {
    pub errnos: ErrnoTable,
    pub dbus: plan::DbusErrors,
    pub limits: LimitFiles,
}

impl Tables {
    pub fn load(root: &Path) -> Result<Tables, SweepError> {
        let dir = root.join("fixtures/sweep");
        Ok(Tables {
            errnos: ErrnoTable::load(&dir.join("errnos.toml"))?,
            dbus: plan::DbusErrors::load(&dir.join("dbus-errors.toml"))?,
            limits: LimitFiles::load(&dir.join("limits.toml"))?,
        })
    }
}

/// Everything needed to judge runs of one case.
pub(crate) struct Judge<'a> {
    pub case: &'a Case,
    pub baseline: &'a Report,
    pub requested_v1: Vec<(String, Vec<String>)>,
    pub requested_v2: Vec<(String, Vec<String>)>,
}

impl<'a> Judge<'a> {
    pub fn new(case: &'a Case, baseline: &'a Report, limits: &LimitFiles) -> Judge<'a> {
        Judge {
            case,
            baseline,
            requested_v1: limits.requested(&case.pod, Mode::V1),
            requested_v2: limits.requested(&case.pod, Mode::V2),
        }
    }

    pub fn judge(&self, inj: &Injection, run: &Report) -> Verdict {
        verdict::judge(&Evidence {
            injection: inj,
            outcome: &run.outcome,
            op_log: &run.cgroupfs_ops,
            effects: &run.effects,
            baseline: &self.baseline.effects,
            first_op: self
                .case
                .target
                .ops
                .first()
                .map_or("create", String::as_str),
            baseline_fails_first_op: match &self.baseline.outcome {
                crate::outcome::Outcome::Error { op, .. } => {
                    op.as_deref() == self.case.target.ops.first().map(String::as_str)
                }
                _ => false,
            },
            host: self.case.host.cgroup,
            requested_v1: &self.requested_v1,
            requested_v2: &self.requested_v2,
        })
    }
}

/// A shim's call deadline (delays past it are injected); drivers have none.
fn deadline(case: &Case) -> Option<std::time::Duration> {
    match case.target.kind {
        TargetKind::Shim { .. } => Some(case.target.call_timeout),
        _ => None,
    }
}

fn state_path(engine: &Engine, case: &Case, opts: &Options) -> PathBuf {
    opts.state.clone().unwrap_or_else(|| {
        let name: String = case
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".=-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        engine
            .root
            .join("target/sweep")
            .join(format!("{name}.jsonl"))
    })
}

/// The state file's first line: which case and which plan its rows belong to.
/// Rows are reused only when all of it matches: same case, same verdict logic, same
/// baseline state, same plan.
#[derive(Serialize, Deserialize, PartialEq)]
struct Header {
    case: String,
    logic: u32,
    baseline: String,
    plan: Vec<String>,
}

/// Bump when the verdict logic changes (rows of older state files are then rerun).
const LOGIC: u32 = 4;

/// Rows of a previous run of the same plan (none if the file is absent or for another plan).
fn load_state(path: &Path, header: &Header) -> BTreeMap<String, Row> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let mut lines = text.lines();
    match lines
        .next()
        .and_then(|l| serde_json::from_str::<Header>(l).ok())
    {
        Some(h) if h == *header => {}
        _ => return BTreeMap::new(),
    }
    lines
        .filter_map(|l| serde_json::from_str::<Row>(l).ok())
        .filter(|r| r.verdict.kind != Kind::HarnessError)
        .map(|r| (r.key.clone(), r))
        .collect()
}

/// Sweep one case. Progress and the table go to `out`.
pub fn sweep_case(
    engine: &Engine,
    tables: &Tables,
    case: &Case,
    opts: &Options,
    out: &mut dyn std::io::Write,
) -> Result<TargetSweep, SweepError> {
    let start = Instant::now();
    let baseline = engine.run(case, false);
    if let crate::outcome::Outcome::HarnessError { message } = &baseline.outcome {
        return Err(SweepError::BaselineFailed(message.clone()));
    }
    if baseline.cgroupfs != Some("model") {
        return Err(SweepError::NeedsModel);
    }
    let (sites, beyond_cap) = plan::sites(&baseline.cgroupfs_ops, opts.cap);
    let injections = plan::injections(
        &sites,
        &tables.errnos,
        &tables.dbus,
        case.host.cgroup,
        deadline(case),
    );
    let judge = Judge::new(case, &baseline, &tables.limits);
    let mode = plan::mode_of("", case.host.cgroup);
    let requested = tables.limits.requested(&case.pod, mode);
    let unapplied = verdict::unapplied(&requested, &baseline.effects);

    let header = Header {
        case: case.name.clone(),
        logic: LOGIC,
        baseline: serde_json::to_string(&baseline.effects).unwrap_or_default(),
        plan: injections.iter().map(Injection::key).collect(),
    };
    let state = state_path(engine, case, opts);
    let done = load_state(&state, &header);
    if let Some(d) = state.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    // Rewrite the file with the header and the rows kept, then append as results come.
    let mut file = std::fs::File::create(&state).map_err(SweepError::write(&state))?;
    let mut text = serde_json::to_string(&header).unwrap_or_default() + "\n";
    for r in done.values() {
        text += &(serde_json::to_string(r).unwrap_or_default() + "\n");
    }
    file.write_all(text.as_bytes())
        .map_err(SweepError::write(&state))?;
    let file = Mutex::new(file);

    let _ = writeln!(
        out,
        "sweep     {}\ntarget    {}\nhost      {}\nbaseline  {} ({} cgroupfs ops, {} sites{}, {} faults to inject, {} done before)\nstate     {}",
        case.name,
        case.target.summary(),
        case.host.summary(),
        baseline.signature(),
        baseline.cgroupfs_ops.len(),
        sites.len(),
        if beyond_cap > 0 { format!(", {beyond_cap} beyond --cap") } else { String::new() },
        injections.len(),
        injections.iter().filter(|i| done.contains_key(&i.key())).count(),
        state.display()
    );

    let pending: Vec<&Injection> = injections
        .iter()
        .filter(|i| !done.contains_key(&i.key()))
        .collect();
    let results = pool::map(&pending, opts.jobs, |inj| {
        let run = engine.run(&inj.apply(case), false);
        let row = Row {
            key: inj.key(),
            op: inj.site.op.name().into(),
            path: inj.site.path.clone(),
            fault: inj.fault.label(),
            outcome: run.signature(),
            verdict: judge.judge(inj, &run),
        };
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(f, "{}", serde_json::to_string(&row).unwrap_or_default());
        }
        row
    });
    let mut new: BTreeMap<String, Row> = results
        .into_iter()
        .flatten()
        .map(|r| (r.key.clone(), r))
        .collect();
    let resumed = done.len();
    let mut all = done;
    all.append(&mut new);
    let mut rows: Vec<Row> = injections
        .iter()
        .filter_map(|i| all.get(&i.key()).cloned())
        .collect();
    if let Some(v) = verdict::baseline_verdict(&baseline.outcome) {
        rows.insert(
            0,
            Row {
                key: BASELINE.into(),
                op: "(none)".into(),
                path: "(the fault-free run)".into(),
                fault: "none".into(),
                outcome: baseline.signature(),
                verdict: v,
            },
        );
    }

    let mut found_files = BTreeMap::new();
    if let Some(dir) = &opts.found_dir {
        if !crate::sandbox::interrupt::interrupted() {
            let mut seen = std::collections::BTreeSet::new();
            let by_key: BTreeMap<String, &Injection> =
                injections.iter().map(|i| (i.key(), i)).collect();
            for row in &rows {
                if !row.verdict.kind.is_bug() || !seen.insert(row.verdict.signature.clone()) {
                    continue;
                }
                // The baseline row has no injection: its defect needs none.
                let inj = match by_key.get(&row.key) {
                    Some(i) => Some(*i),
                    None if row.key == BASELINE => None,
                    None => continue,
                };
                match found::minimise_and_write(engine, tables, case, inj, &row.verdict, dir) {
                    Ok(p) => {
                        found_files.insert(row.verdict.signature.clone(), p);
                    }
                    Err(e) => {
                        let _ = writeln!(
                            out,
                            "warning: no scenario for `{}`: {e}",
                            row.verdict.signature
                        );
                    }
                }
            }
        }
    }
    Ok(TargetSweep {
        case: case.name.clone(),
        target: case.target.summary(),
        host: case.host.summary(),
        baseline: baseline.signature(),
        unapplied,
        sites: sites.len(),
        beyond_cap,
        rows,
        resumed,
        found: found_files,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The table of one target: bugs first, one group per signature (op × fault → verdict),
/// then the rest, then a count per verdict.
pub fn render(t: &TargetSweep, root: &Path) -> String {
    let mut groups: BTreeMap<(Kind, String), Vec<&Row>> = BTreeMap::new();
    for r in &t.rows {
        groups
            .entry((r.verdict.kind, r.verdict.signature.clone()))
            .or_default()
            .push(r);
    }
    let mut s = String::new();
    if !t.unapplied.is_empty() {
        s += &format!(
            "\nrequested limits the baseline never writes (no fault needed): {}\n",
            t.unapplied.join(", ")
        );
    }
    let width = t
        .rows
        .iter()
        .map(|r| r.op.len() + r.path.len() + 1)
        .max()
        .unwrap_or(0);
    for ((kind, sig), rows) in &groups {
        let tag = if kind.is_bug() { "BUG" } else { "   " };
        s += &format!(
            "\n{tag} {:<11} {sig}  ({} fault{})\n",
            kind.name(),
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        );
        // One line per site and detail: the faults that gave it, joined.
        let mut lines: Vec<(String, Vec<&str>, String)> = Vec::new();
        for r in rows {
            let site = format!("{} {}", r.op, r.path);
            let detail = r.verdict.detail.replace(&format!(" ({})", r.fault), "");
            match lines
                .iter_mut()
                .find(|(s, _, d)| *s == site && *d == detail)
            {
                Some(l) => l.1.push(&r.fault),
                None => lines.push((site, vec![&r.fault], detail)),
            }
        }
        for (site, faults, detail) in lines {
            s += &format!("      {site:<width$}  {:<20}  {detail}\n", faults.join(","));
        }
        if let Some(p) = t.found.get(sig) {
            let rel = p.strip_prefix(root).unwrap_or(p);
            s += &format!("      → cgrepro replay {}\n", rel.display());
        }
    }
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for r in &t.rows {
        *counts.entry(r.verdict.kind).or_default() += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.name()))
        .collect();
    let defects = groups.keys().filter(|(k, _)| k.is_bug()).count();
    s += &format!(
        "\n{} faults ({} resumed): {}; {defects} defect(s); {:.1}s\n",
        t.rows.len(),
        t.resumed,
        counts.join(", "),
        t.seconds
    );
    s
}
