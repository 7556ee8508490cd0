//! A run's results, one [`CaseResult`] per selected case, and their machine-readable form:
//! one JSON object per case ([`CaseResult::json`], schema [`SCHEMA`], documented in the
//! README's "Output formats"), which `--format json`, `cases.jsonl`, JUnit and the HTML
//! page are all made from.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::Report;
use crate::scenario::Case;

/// Version of the JSON record; bumped when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

/// What became of a case in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Ran; outcome, expectations and snapshot agree.
    Passed,
    /// Ran; an expectation, the snapshot or the harness failed.
    Failed,
    /// Cannot run on this machine (the reason says why).
    Ignored,
    /// Killed mid-run because the run was interrupted (Ctrl-C, SIGTERM, a closed pipe).
    Interrupted,
    /// Never started: the run was interrupted first.
    NotStarted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Ignored => "ignored",
            Status::Interrupted => "interrupted",
            Status::NotStarted => "not-started",
        }
    }
}

/// One case's result in a run.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub scenario: String,
    pub cell: Vec<(String, String)>,
    pub status: Status,
    /// Why an ignored case cannot run here.
    pub reason: Option<String>,
    /// What failed (expectations with their `[[expect]]` line, snapshot, harness).
    pub problems: Vec<String>,
    /// Where the case's `[[expect]]` blocks are (file:line), all checked.
    pub expectations: Vec<String>,
    /// `same`, `new` or `changed` against the stored snapshot.
    pub snapshot: Option<&'static str>,
    /// When the case started, from the start of the run.
    pub started: Option<Duration>,
    pub report: Option<Report>,
}

impl CaseResult {
    /// A case that did not run (ignored or never started).
    pub fn not_run(case: &Case, status: Status, reason: Option<String>) -> CaseResult {
        CaseResult {
            name: case.name.clone(),
            scenario: case.scenario.name.clone(),
            cell: case.cell.clone(),
            status,
            reason,
            problems: vec![],
            expectations: case.expect.iter().map(|e| e.at.clone()).collect(),
            snapshot: None,
            started: None,
            report: None,
        }
    }

    pub fn signature(&self) -> String {
        self.report
            .as_ref()
            .map_or_else(String::new, Report::signature)
    }

    /// The case's JSON record (one line of `--format json` and `cases.jsonl`).
    pub fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schema".into(), json!(SCHEMA));
        m.insert("case".into(), json!(self.name));
        m.insert("scenario".into(), json!(self.scenario));
        let cell: Map<String, Value> = self
            .cell
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("cell".into(), Value::Object(cell));
        m.insert("status".into(), json!(self.status.name()));
        if let Some(r) = &self.reason {
            m.insert("reason".into(), json!(r));
        }
        if let Some(r) = &self.report {
            m.insert("class".into(), json!(r.outcome.class().name()));
            m.insert("signature".into(), json!(r.signature()));
            m.insert(
                "outcome".into(),
                serde_json::to_value(&r.outcome).unwrap_or(Value::Null),
            );
            m.insert("exit".into(), json!(r.exit));
            m.insert(
                "expectations".into(),
                json!({
                    "checked": self.expectations,
                    "failed": r.expectation_failures,
                }),
            );
        }
        if let Some(s) = self.snapshot {
            m.insert("snapshot".into(), json!(s));
        }
        m.insert("problems".into(), json!(self.problems));
        let mut t = Map::new();
        if let Some(s) = self.started {
            t.insert("started_ms".into(), json!(s.as_millis() as u64));
        }
        if let Some(r) = &self.report {
            t.insert("duration_ms".into(), json!(r.duration.as_millis() as u64));
        }
        m.insert("timings".into(), Value::Object(t));
        if let Some(dir) = self.report.as_ref().and_then(|r| r.artifacts.as_ref()) {
            let mut a = Map::new();
            a.insert("dir".into(), json!(dir));
            for f in [
                "stdout.log",
                "stderr.log",
                "shim.log",
                "ops.log",
                "report.yaml",
                "case.json",
            ] {
                let p: PathBuf = dir.join(f);
                if p.is_file() || f == "case.json" {
                    a.insert(f.trim_end_matches(".log").replace('.', "_"), json!(p));
                }
            }
            m.insert("artifacts".into(), Value::Object(a));
        }
        Value::Object(m)
    }
}

/// Counts of a run, by status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    pub interrupted: usize,
    pub not_started: usize,
}

impl Tally {
    pub fn of(results: &[CaseResult]) -> Tally {
        let mut t = Tally::default();
        for r in results {
            match r.status {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Ignored => t.ignored += 1,
                Status::Interrupted => t.interrupted += 1,
                Status::NotStarted => t.not_started += 1,
            }
        }
        t
    }
}
