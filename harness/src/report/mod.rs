//! Everything shown to a user about a case is rendered from one [`Report`]: the snapshot
//! (YAML, via insta in tests and compared byte for byte by the CLI), the expectation
//! check, the verbose replay, and the matrix table ([`matrix`]).

pub mod artifacts;
pub mod html;
pub mod junit;
pub mod libtest;
pub mod matrix;
pub mod results;
pub mod signatures;
pub mod snapshot;
pub mod yaml;

use serde_json::{json, Map, Value};

use crate::evidence::{Effects, Observed};
use crate::fault::Layer;
use crate::outcome::normalize::Normalizer;
use crate::outcome::parse::{OpResult, OpStatus};
use crate::outcome::{describe_exit, Outcome};
use crate::scenario::{Case, Expect};
use crate::subject::shim::ShimEvidence;

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
    /// `model` or `tree` (absent when the case never ran).
    pub cgroupfs: Option<&'static str>,
    /// The cgroupfs model's op log.
    pub cgroupfs_ops: Vec<String>,
    pub leftovers: u32,
    pub stdout_tail: String,
    pub stdout_bytes: u64,
    /// Command targets that run a Rust test suite: `binary::test` → libtest's verdict.
    pub tests: std::collections::BTreeMap<String, String>,
    pub stderr_tail: String,
    pub stderr_bytes: u64,
    /// Shim targets: the client-side result and the shim's own evidence.
    pub shim: Option<ShimEvidence>,
    /// Not part of the snapshot (unstable); shown by the CLI.
    pub duration: std::time::Duration,
    /// What the syscall layer trapped ([`crate::evidence::SupervisorStats::summary`]);
    /// not part of the snapshot, shown by `cgrepro replay`.
    pub syscall_layer: Option<String>,
    pub kept: Option<std::path::PathBuf>,
    /// The case's artifacts directory (full output, logs), when the run keeps them.
    pub artifacts: Option<std::path::PathBuf>,
    /// Failed `[[expect]]` checks.
    pub expectation_failures: Vec<String>,
    /// The case's faults on operations (with their seeds), each with the layer it was
    /// routed to, and every call they fired on, by fault id.
    pub faults: Vec<String>,
    pub faults_fired: Vec<String>,
    /// Calls the syscall layer refused (mounts of real cgroup filesystems).
    pub refused: Vec<String>,
}

impl Report {
    pub fn new(
        case: &Case,
        observed: &Observed,
        outcome: Outcome,
        ops: Vec<OpResult>,
        norm: &Normalizer,
    ) -> Report {
        let stdout_full = norm.apply(&observed.stdout.text());
        let stdout_tail = tail(&stdout_full);
        let mut expectation_failures =
            check_expectations(&case.expect, &outcome, None, &stdout_full);
        expectation_failures.extend(check_log(case, &norm.apply(&observed.stderr.text())));
        Report {
            case: case.name.clone(),
            scenario: case.scenario.name.clone(),
            cell: case.cell.clone(),
            host: case.host.summary(),
            target: case.target.summary(),
            exit: describe_exit(observed.exit),
            outcome,
            ops,
            effects: pids_of(case, observed.effects.clone()),
            cgroupfs: observed.cgroupfs.map(|k| k.name()),
            cgroupfs_ops: observed
                .cgroupfs_ops
                .iter()
                .map(|l| op_pids(case, l))
                .collect(),
            leftovers: observed.leftovers,
            tests: libtest::verdicts(&stdout_full),
            stdout_tail,
            stdout_bytes: observed.stdout.total,
            stderr_tail: tail(&norm.apply(&observed.stderr.text())),
            stderr_bytes: observed.stderr.total,
            shim: None,
            duration: observed.duration,
            syscall_layer: observed.syscalls.as_ref().map(|s| s.summary()),
            kept: observed.kept.clone(),
            artifacts: None,
            expectation_failures,
            faults: case
                .op_faults
                .iter()
                .map(|f| {
                    // A case that never ran routed nothing.
                    let layer = observed.cgroupfs.map(|_| {
                        if observed.model_faults.contains(&f.id) {
                            Layer::Model
                        } else {
                            Layer::Syscall
                        }
                    });
                    match layer {
                        Some(l) => format!("{} ({})", f.describe(), l.name()),
                        None => f.describe(),
                    }
                })
                .collect(),
            faults_fired: crate::fault::describe_hits(
                observed
                    .syscalls
                    .iter()
                    .flat_map(|s| &s.faults_fired)
                    .chain(&observed.model_hits),
            )
            .iter()
            .map(|l| norm.apply(l))
            .collect(),
            refused: observed
                .syscalls
                .iter()
                .flat_map(|s| &s.denied)
                .map(|d| norm.apply(d))
                .collect(),
        }
    }

    /// A report for a case that never ran (harness error before the sandbox).
    pub fn harness_error(case: &Case, message: String) -> Report {
        let outcome = Outcome::HarnessError { message };
        Report::new(
            case,
            &Observed::default(),
            outcome,
            vec![],
            &Normalizer::new(None, None),
        )
    }

    /// Attach a shim's evidence (client-side result, bootstrap, daemon, log, syslog) and
    /// check the expectations again with the client-side result.
    pub fn with_shim(mut self, case: &Case, shim: Option<ShimEvidence>) -> Report {
        self.expectation_failures = check_expectations(
            &case.expect,
            &self.outcome,
            Some(shim.as_ref().map_or("", |s| s.client.as_str())),
            &self.stdout_tail,
        );
        if let Some(s) = &shim {
            let mut log = s.log.clone();
            for l in s.syslog.iter().chain(&s.teardown) {
                log.push('\n');
                log.push_str(l);
            }
            self.expectation_failures.extend(check_log(case, &log));
        }
        self.shim = shim;
        if let crate::scenario::TargetKind::Shim { name, .. } = &case.target.kind {
            if name == crate::subject::shim::KATA {
                self.unstable_pids();
            }
        }
        self
    }

    /// A Go shim's pid in its case depends on how many threads the runtime started
    /// before (threads take pids): pids written to `cgroup.procs`, `tasks` and
    /// `cgroup.threads` become `[PID]` in the op log and the effects. (Fixture shims and
    /// drivers start no threads before that write: their pids stay, and are evidence.)
    fn unstable_pids(&mut self) {
        static PID_FILES: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r#"^(write \S*/(?:cgroup\.procs|tasks|cgroup\.threads) )"\d+"(.*)$"#)
                .expect("static regex")
        });
        let pid_files = &*PID_FILES;
        for op in &mut self.cgroupfs_ops {
            *op = pid_files.replace(op, r#"$1"[PID]"$2"#).into_owned();
        }
        for (path, content) in &mut self.effects.written {
            let name = path.rsplit('/').next().unwrap_or("");
            if ["cgroup.procs", "tasks", "cgroup.threads"].contains(&name)
                && !content.is_empty()
                && content.lines().all(|l| l.trim().parse::<u32>().is_ok())
            {
                *content = content
                    .lines()
                    .map(|_| "[PID]")
                    .collect::<Vec<_>>()
                    .join("\n");
            }
        }
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
        if let Some(k) = self.cgroupfs {
            m.insert("cgroupfs".into(), json!(k));
        }
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
        if !self.tests.is_empty() {
            m.insert("tests".into(), json!(self.tests));
        }
        if !self.cgroupfs_ops.is_empty() {
            m.insert("cgroupfs_ops".into(), json!(self.cgroupfs_ops));
        }
        if !self.effects.is_empty() {
            m.insert(
                "cgroupfs_effects".into(),
                serde_json::to_value(&self.effects).unwrap_or(Value::Null),
            );
        }
        if !self.faults.is_empty() {
            let mut o = Map::new();
            o.insert("configured".into(), json!(self.faults));
            o.insert("fired".into(), json!(self.faults_fired));
            m.insert("faults".into(), Value::Object(o));
        }
        if !self.refused.is_empty() {
            m.insert("refused_by_syscall_layer".into(), json!(self.refused));
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

pub(crate) fn op_line(o: &OpResult) -> Value {
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

/// Check a case's `[[expect]]` blocks against an outcome (and, for shims, the
/// client-side result); one message per failure, in block order.
pub fn check_expectations(
    expect: &[Expect],
    outcome: &Outcome,
    client: Option<&str>,
    stdout: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    for e in expect {
        if let Some(want) = &e.stdout {
            if !stdout.contains(want.as_str()) {
                failures.push(format!("expected stdout containing `{want}` — {}", e.at));
            }
        }
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

/// The `log` expectations: each a substring of what the target logged.
pub fn check_log(case: &Case, log: &str) -> Vec<String> {
    case.expect
        .iter()
        .filter_map(|e| {
            let want = e.log.as_ref()?;
            (!log.contains(want.as_str()))
                .then(|| format!("expected the target to log `{want}` — {}", e.at))
        })
        .collect()
}

/// A shim's processes (Go daemons: threads take pids at their own pace) get different pids
/// from run to run: in the op log and the effects, the pids moved into cgroups (membership
/// writes, the simulated systemd's `PIDs=`) are `[PID]` for shim targets, and for command
/// targets that are Go programs (the go-systemd client).
fn varying_pids(case: &Case) -> bool {
    match &case.target.kind {
        crate::scenario::TargetKind::Shim { .. } => true,
        crate::scenario::TargetKind::Command { argv } => {
            argv.first().is_some_and(|p| go_program(p))
        }
        crate::scenario::TargetKind::Driver { .. } => false,
    }
}

/// Whether the file at this absolute path is a Go executable (it carries Go's build-info
/// magic, `\xff Go buildinf:`). Cached per path.
fn go_program(path: &str) -> bool {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, bool>>> =
        std::sync::OnceLock::new();
    if !path.starts_with('/') {
        return false;
    }
    let seen = SEEN.get_or_init(Default::default);
    if let Some(&go) = seen.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        return go;
    }
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    let go = std::fs::read(path)
        .map(|bytes| bytes.windows(MAGIC.len()).any(|w| w == MAGIC))
        .unwrap_or(false);
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_owned(), go);
    go
}

fn op_pids(case: &Case, line: &str) -> String {
    static RULES: std::sync::OnceLock<[regex::Regex; 2]> = std::sync::OnceLock::new();
    if !varying_pids(case) {
        return line.to_owned();
    }
    let [write, dbus] = RULES.get_or_init(|| {
        [
            regex::Regex::new(r#"^(write \S*(?:cgroup\.procs|tasks|cgroup\.threads)) "\d+""#)
                .expect("static regex"),
            regex::Regex::new(r"\bPIDs=\[[\d,]*\]").expect("static regex"),
        ]
    });
    let l = write.replace(line, r#"$1 "[PID]""#);
    dbus.replace_all(&l, "PIDs=[[PID]]").into_owned()
}

fn pids_of(case: &Case, mut effects: Effects) -> Effects {
    if varying_pids(case) {
        for (path, v) in effects.written.iter_mut() {
            let name = path.rsplit('/').next().unwrap_or_default();
            if ["cgroup.procs", "tasks", "cgroup.threads"].contains(&name) {
                *v = v
                    .lines()
                    .map(|l| {
                        if l.trim().parse::<u32>().is_ok() {
                            "[PID]"
                        } else {
                            l
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
            }
        }
    }
    effects
}

#[cfg(test)]
mod expect_tests;
