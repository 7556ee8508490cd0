//! A defect the sweep found, as a scenario anyone can replay: the swept scenario with the
//! cell's values set, the one injected fault as a `[[fault]]`, minimised — ops of
//! `[target] ops` and the scenario's own faults are dropped one at a time, from the last,
//! while the verdict keeps its kind and signature (each try reruns the baseline and the
//! faulted case, since dropping an op changes what the baseline sets up) — and an
//! `[[expect]]` for the outcome seen. Written to `scenarios/found/<target>-<defect>.toml`.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::plan::{Fault, Injection};
use super::verdict::{self, Kind, Verdict};
use super::{Judge, SweepError, Tables};
use crate::engine::Engine;
use crate::report::Report;
use crate::scenario::Case;

/// The `[[fault]]` entry for one injection.
pub fn fault_entry(inj: &Injection) -> Table {
    let mut t = Table::new();
    let mut put = |k: &str, v: Value| {
        t.insert(k.into(), v);
    };
    match &inj.fault {
        Fault::Dbus { error, message } => {
            put("dbus", Value::String(inj.site.path.clone()));
            put("error", Value::String(error.clone()));
            put("message", Value::String(message.clone()));
        }
        Fault::Errno(e) => {
            put("op", Value::String(inj.site.op.name().into()));
            put("path", Value::String(inj.glob()));
            put("errno", Value::String(e.clone()));
        }
        Fault::OpenErrno(e) => {
            put("op", Value::String("open".into()));
            put("path", Value::String(inj.glob()));
            put("errno", Value::String(e.clone()));
        }
        Fault::Short(n) => {
            put("op", Value::String("write".into()));
            put("path", Value::String(inj.glob()));
            put("short", Value::Integer(*n as i64));
        }
        Fault::Delay(d) => {
            put("op", Value::String(inj.site.op.name().into()));
            put("path", Value::String(inj.glob()));
            put(
                "delay",
                Value::String(humantime::format_duration(*d).to_string()),
            );
        }
    }
    t
}

fn set(doc: &mut Table, path: &[&str], value: Value) {
    let mut table = doc;
    for seg in &path[..path.len() - 1] {
        let entry = table
            .entry(seg.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        table = entry.as_table_mut().expect("just made a table");
    }
    table.insert(path[path.len() - 1].to_string(), value);
}

fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The scenario document of one cell: `[matrix]` and `[[expect]]` gone, the cell's values
/// set, `[target] ops` explicit.
pub fn cell_document(case: &Case) -> Result<Table, SweepError> {
    let path = &case.scenario.path;
    let src = std::fs::read_to_string(path).map_err(SweepError::read(path))?;
    let mut doc: Table = toml::from_str(&src).map_err(SweepError::toml(path))?;
    let matrix = doc.remove("matrix");
    doc.remove("expect");
    for (axis, value) in &case.cell {
        let v = matrix
            .as_ref()
            .and_then(|m| m.get(axis))
            .and_then(Value::as_array)
            .and_then(|vals| vals.iter().find(|v| label(v) == *value).cloned())
            .unwrap_or_else(|| Value::String(value.clone()));
        let parts: Vec<&str> = axis.split('.').collect();
        set(&mut doc, &parts, v);
    }
    let ops = case
        .target
        .ops
        .iter()
        .map(|o| Value::String(o.clone()))
        .collect();
    set(&mut doc, &["target", "ops"], Value::Array(ops));
    Ok(doc)
}

/// Loads scenario documents written to a scratch directory.
struct Scratch {
    dir: PathBuf,
    n: std::cell::Cell<usize>,
}

impl Scratch {
    fn new() -> Result<Scratch, SweepError> {
        let dir = std::env::temp_dir().join(format!("cgrepro-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(SweepError::write(&dir))?;
        Ok(Scratch {
            dir,
            n: std::cell::Cell::new(0),
        })
    }

    fn case(&self, engine: &Engine, doc: &Table) -> Result<Case, SweepError> {
        let n = self.n.get() + 1;
        self.n.set(n);
        let p = self.dir.join(format!("try-{n}.toml"));
        let text = toml::to_string(doc)?;
        std::fs::write(&p, text).map_err(SweepError::write(&p))?;
        let s = engine
            .load(&p)
            .map_err(|e| SweepError::Scenario(Box::new(e)))?;
        let _ = std::fs::remove_file(&p);
        s.cases.into_iter().next().ok_or(SweepError::NoCase)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn faults(doc: &Table) -> Vec<Value> {
    doc.get("fault")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn with_fault(doc: &Table, extra: &Table) -> Table {
    let mut d = doc.clone();
    let mut f = faults(doc);
    f.push(Value::Table(extra.clone()));
    d.insert("fault".into(), Value::Array(f));
    d
}

/// Run a document without and with the injected fault; the verdict and the faulted report.
/// Without an injection (a defect of the fault-free run), the document's own verdict.
fn evaluate(
    engine: &Engine,
    tables: &Tables,
    scratch: &Scratch,
    doc: &Table,
    inj: Option<&Injection>,
) -> Result<(Verdict, Report), SweepError> {
    let base = scratch.case(engine, doc)?;
    let baseline = engine.run(&base, false);
    let Some(inj) = inj else {
        let v = verdict::baseline_verdict(&baseline.outcome).unwrap_or(Verdict {
            kind: Kind::Tolerated,
            signature: baseline.signature(),
            detail: String::new(),
        });
        return Ok((v, baseline));
    };
    let faulted = scratch.case(engine, &with_fault(doc, &fault_entry(inj)))?;
    let run = engine.run(&faulted, false);
    let judge = Judge::new(&base, &baseline, &tables.limits);
    Ok((judge.judge(inj, &run), run))
}

fn same(a: &Verdict, b: &Verdict) -> bool {
    a.kind == b.kind && a.signature == b.signature
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// `cgroups-rs-0.3.4-amazonlinux-2`: the target and the cell's other values.
fn target_slug(case: &Case) -> String {
    let mut parts = vec![case.target.summary()];
    if let Some(p) = &case.host.preset {
        parts.push(p.clone());
    }
    for (axis, v) in &case.cell {
        if axis != "target.version" && axis != "host.preset" {
            parts.push(v.clone());
        }
    }
    slug(&parts.join(" ").replace("driver ", "").replace("shim ", ""))
}

/// Minimise the case of `inj` (same verdict kind and signature as `want`) and write it
/// under `dir`; returns the file. `inj` is `None` for a defect of the fault-free run.
pub fn minimise_and_write(
    engine: &Engine,
    tables: &Tables,
    case: &Case,
    inj: Option<&Injection>,
    want: &Verdict,
    dir: &Path,
) -> Result<PathBuf, SweepError> {
    let scratch = Scratch::new()?;
    let mut doc = cell_document(case)?;
    let (first, mut run) = evaluate(engine, tables, &scratch, &doc, inj)?;
    if !same(&first, want) {
        return Err(SweepError::NotReproduced {
            kind: first.kind.name().to_owned(),
            got: first.signature,
            want: want.signature.clone(),
        });
    }
    let ops_before = case.target.ops.clone();
    let faults_before = faults(&doc).len();
    // Fewest ops: drop each, last first, while the defect stays.
    let mut i = case.target.ops.len();
    while i > 0 {
        i -= 1;
        let mut ops: Vec<Value> = doc["target"]["ops"].as_array().cloned().unwrap_or_default();
        if ops.len() <= 1 || i >= ops.len() {
            continue;
        }
        ops.remove(i);
        let mut cand = doc.clone();
        set(&mut cand, &["target", "ops"], Value::Array(ops));
        if let Ok((v, r)) = evaluate(engine, tables, &scratch, &cand, inj) {
            if same(&v, want) {
                doc = cand;
                run = r;
            }
        }
    }
    // Fewest faults of the scenario's own.
    let mut j = faults_before;
    while j > 0 {
        j -= 1;
        let mut f = faults(&doc);
        if j >= f.len() {
            continue;
        }
        f.remove(j);
        let mut cand = doc.clone();
        if f.is_empty() {
            cand.remove("fault");
        } else {
            cand.insert("fault".into(), Value::Array(f));
        }
        if let Ok((v, r)) = evaluate(engine, tables, &scratch, &cand, inj) {
            if same(&v, want) {
                doc = cand;
                run = r;
            }
        }
    }
    let ops_after: Vec<String> = doc["target"]["ops"]
        .as_array()
        .map(|a| a.iter().map(label).collect())
        .unwrap_or_default();
    let faults_after = faults(&doc).len();

    // The scenario: title, tags, the fault, the expectation.
    let mut out = match inj {
        Some(i) => with_fault(&doc, &fault_entry(i)),
        None => doc.clone(),
    };
    let mut meta = Table::new();
    meta.insert(
        "title".into(),
        Value::String(format!("{}: {}", case.target.summary(), want.signature)),
    );
    meta.insert(
        "tags".into(),
        Value::Array(
            ["found", "sweep", want.kind.name()]
                .iter()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
    );
    out.insert("scenario".into(), Value::Table(meta));
    let mut expect = Table::new();
    let class = match want.kind {
        Kind::Swallowed => "ok",
        Kind::Leak => "error",
        _ => run.outcome.class().name(),
    };
    expect.insert("class".into(), Value::String(class.into()));
    if let Some(sig) = run.outcome.signal() {
        expect.insert("signal".into(), Value::String(sig.into()));
    }
    if !matches!(want.kind, Kind::Swallowed | Kind::Timeout) {
        if let Some(m) = run.outcome.message() {
            let m: String = m.chars().take(40).collect();
            if !m.is_empty() {
                expect.insert("message".into(), Value::String(m));
            }
        }
    }
    out.insert("expect".into(), Value::Array(vec![Value::Table(expect)]));
    // Keep [scenario] first.
    let mut ordered = Table::new();
    for k in [
        "scenario", "host", "target", "pod", "runtime", "fault", "expect",
    ] {
        if let Some(v) = out.remove(k) {
            ordered.insert(k.into(), v);
        }
    }
    ordered.extend(out);

    let name = match inj {
        Some(inj) => format!(
            "{}-{}-{}-{}-{}",
            target_slug(case),
            want.kind.name(),
            inj.site.op.name(),
            slug(inj.site.file()),
            slug(&inj.fault.label())
        ),
        None => format!("{}-{}-without-fault", target_slug(case), want.kind.name()),
    };
    std::fs::create_dir_all(dir).map_err(SweepError::write(dir))?;
    let file = dir.join(format!("{name}.toml"));
    let rel = file
        .strip_prefix(&engine.root)
        .unwrap_or(&file)
        .display()
        .to_string();
    let source = case
        .scenario
        .path
        .strip_prefix(&engine.root)
        .unwrap_or(&case.scenario.path)
        .display()
        .to_string();
    let cells: String = case
        .cell
        .iter()
        .map(|(k, v)| format!(" --cell '{k}={v}'"))
        .collect();
    let mut header = String::new();
    header += &format!("# Found by `cgrepro sweep {source}{cells}`.\n");
    header += &format!("# Defect: {}\n", want.signature);
    for line in want.detail.lines() {
        header += &format!("#   {line}\n");
    }
    header += &format!(
        "# Minimised: ops {:?} -> {:?}; the scenario's own faults {} -> {}; {}.\n",
        ops_before,
        ops_after,
        faults_before,
        faults_after,
        if inj.is_some() {
            "one injected fault"
        } else {
            "no injected fault: the fault-free run already shows it"
        }
    );
    header += &format!("# Replay: cgrepro replay {rel}\n\n");
    let body = toml::to_string(&ordered)?;
    std::fs::write(&file, header + &body).map_err(SweepError::write(&file))?;
    Ok(file)
}
