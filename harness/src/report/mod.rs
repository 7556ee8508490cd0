//! Everything shown to a user about a case is rendered from one [`Report`]: the snapshot
//! (YAML, via insta in tests and compared byte for byte by the CLI), the expectation
//! check, the verbose replay, and the matrix table ([`matrix`]).

pub mod matrix;
pub mod snapshot;
pub mod yaml;

use serde_json::{json, Map, Value};

use crate::outcome::normalize::Normalizer;
use crate::outcome::parse::{OpResult, OpStatus};
use crate::outcome::{describe_exit, Outcome};
use crate::sandbox::{Effects, Observed};
use crate::scenario::Case;
use crate::target::shim::ShimEvidence;

/// Lines of output kept in a snapshot.
const TAIL_LINES: usize = 20;
const LINE_CHARS: usize = 200;

/// A case's result: outcome plus evidence, normalised.
#[derive(Debug, Clone)]
pub struct Report {
    pub case: String,
    pub scenario: String,
    pub cell: Vec<(String, String)>,
    pub host: String,
    pub target: String,
    pub outcome: Outcome,
    pub ops: Vec<OpResult>,
    pub exit: String,
    pub effects: Effects,
    pub leftovers: u32,
    pub stdout_tail: String,
    pub stdout_bytes: u64,
    pub stderr_tail: String,
    pub stderr_bytes: u64,
    /// Shim targets: the client-side result and the shim's own evidence.
    pub shim: Option<ShimEvidence>,
    /// Not part of the snapshot (unstable); shown by the CLI.
    pub duration: std::time::Duration,
    pub kept: Option<std::path::PathBuf>,
    /// Failed `[[expect]]` checks.
    pub expectation_failures: Vec<String>,
}

impl Report {
    pub fn new(
        case: &Case,
        observed: &Observed,
        outcome: Outcome,
        ops: Vec<OpResult>,
        norm: &Normalizer,
    ) -> Report {
        let expectation_failures = check_expectations(case, &outcome, None);
        Report {
            case: case.name.clone(),
            scenario: case.scenario.name.clone(),
            cell: case.cell.clone(),
            host: case.host.summary(),
            target: case.target.summary(),
            exit: describe_exit(observed.exit),
            outcome,
            ops,
            effects: observed.effects.clone(),
            leftovers: observed.leftovers,
            stdout_tail: tail(&norm.apply(&observed.stdout.text())),
            stdout_bytes: observed.stdout.total,
            stderr_tail: tail(&norm.apply(&observed.stderr.text())),
            stderr_bytes: observed.stderr.total,
            shim: None,
            duration: observed.duration,
            kept: observed.kept.clone(),
            expectation_failures,
        }
    }

    /// A report for a case that never ran (harness error before the sandbox).
    pub fn harness_error(case: &Case, message: String) -> Report {
        let outcome = Outcome::HarnessError { message };
        Report {
            case: case.name.clone(),
            scenario: case.scenario.name.clone(),
            cell: case.cell.clone(),
            host: case.host.summary(),
            target: case.target.summary(),
            exit: describe_exit(None),
            expectation_failures: check_expectations(case, &outcome, None),
            outcome,
            ops: vec![],
            effects: Effects::default(),
            leftovers: 0,
            stdout_tail: String::new(),
            stdout_bytes: 0,
            stderr_tail: String::new(),
            stderr_bytes: 0,
            shim: None,
            duration: Default::default(),
            kept: None,
        }
    }

    /// Attach a shim's evidence (client-side result, bootstrap, daemon, log, syslog) and
    /// check the expectations again with the client-side result.
    pub fn with_shim(mut self, case: &Case, shim: Option<ShimEvidence>) -> Report {
        self.expectation_failures = check_expectations(
            case,
            &self.outcome,
            Some(shim.as_ref().map_or("", |s| s.client.as_str())),
        );
        self.shim = shim;
        self
    }

    pub fn signature(&self) -> String {
        self.outcome.signature()
    }

    /// The snapshot's content, as a JSON tree in display order.
    pub fn snapshot_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("case".into(), json!(self.case));
        m.insert("host".into(), json!(self.host));
        m.insert("target".into(), json!(self.target));
        if !self.ops.is_empty() {
            let ops: Vec<Value> = self.ops.iter().map(op_line).collect();
            m.insert("ops".into(), Value::Array(ops));
        }
        m.insert(
            "outcome".into(),
            serde_json::to_value(&self.outcome).unwrap_or(Value::Null),
        );
        m.insert("signature".into(), json!(self.signature()));
        if let Some(shim) = &self.shim {
            m.insert("client".into(), json!(shim.client));
            m.insert(
                "shim".into(),
                serde_json::to_value(shim).unwrap_or(Value::Null),
            );
        }
        m.insert("exit".into(), json!(self.exit));
        if !self.effects.is_empty() {
            m.insert(
                "cgroupfs_effects".into(),
                serde_json::to_value(&self.effects).unwrap_or(Value::Null),
            );
        }
        if self.leftovers > 0 {
            m.insert(
                "leftover_processes".into(),
                json!(format!(
                    "{} still running after the target exited (killed)",
                    self.leftovers
                )),
            );
        }
        for (name, text, bytes) in [
            ("stdout", &self.stdout_tail, self.stdout_bytes),
            ("stderr", &self.stderr_tail, self.stderr_bytes),
        ] {
            if bytes > 0 {
                let mut o = Map::new();
                o.insert("bytes".into(), json!(bytes));
                o.insert("tail".into(), json!(text));
                m.insert(name.into(), Value::Object(o));
            }
        }
        Value::Object(m)
    }

    pub fn snapshot(&self) -> String {
        yaml::to_yaml(&self.snapshot_value())
    }
}

fn op_line(o: &OpResult) -> Value {
    let mut s = match o.status {
        OpStatus::Ok => format!("{}: ok", o.op),
        OpStatus::Error => format!("{}: error: {}", o.op, o.error.as_deref().unwrap_or("")),
        OpStatus::Running => format!("{}: did not return", o.op),
    };
    if let Some(v) = &o.value {
        s.push_str(&format!(" → {v}"));
    }
    json!(s)
}

/// The last lines of a text, each cut to a sane width.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[… {start} lines before]\n"));
    }
    for l in &lines[start..] {
        if l.chars().count() > LINE_CHARS {
            out.extend(l.chars().take(LINE_CHARS));
            out.push('…');
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    out
}

/// Check the case's `[[expect]]` blocks against an outcome (and, for shims, the
/// client-side result); one message per failure.
pub fn check_expectations(case: &Case, outcome: &Outcome, client: Option<&str>) -> Vec<String> {
    let mut failures = Vec::new();
    for e in &case.expect {
        if let Some(c) = e.class {
            if outcome.class() != c {
                failures.push(format!(
                    "expected class `{c}`, got `{}` ({}) — {}",
                    outcome.class(),
                    outcome.signature(),
                    e.at
                ));
            }
        }
        if let Some(sig) = &e.signal {
            if outcome.signal() != Some(sig.as_str()) {
                failures.push(format!(
                    "expected signal {sig}, got {} ({}) — {}",
                    outcome.signal().unwrap_or("no signal"),
                    outcome.signature(),
                    e.at
                ));
            }
        }
        if let Some(m) = &e.message {
            let in_message = outcome.message().is_some_and(|x| x.contains(m.as_str()));
            if !in_message && !outcome.signature().contains(m.as_str()) {
                failures.push(format!(
                    "expected a message containing `{m}`, got {:?} — {}",
                    outcome.message().unwrap_or(""),
                    e.at
                ));
            }
        }
        if let Some(want) = &e.client {
            match client {
                Some(got) if got.contains(want.as_str()) => {}
                Some(got) => failures.push(format!(
                    "expected the client to see `{want}`, it saw `{got}` — {}",
                    e.at
                )),
                None => failures.push(format!(
                    "expected the client to see `{want}`, but this target has no client — {}",
                    e.at
                )),
            }
        }
    }
    failures
}
