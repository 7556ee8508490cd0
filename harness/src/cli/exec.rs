//! Running a selection of cases for `run` and `matrix`: in parallel, with progress and a
//! line per case as it finishes, each case's artifacts kept in a run directory, then the
//! run's `cases.jsonl`, JUnit and HTML written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::output::{OutputArgs, Progress};
use crate::engine::Engine;
use crate::pool::{self, Event};
use crate::report::results::{CaseResult, Status, Tally};
use crate::report::snapshot::Comparison;
use crate::report::{self, artifacts, Report};
use crate::sandbox::interrupt;
use crate::scenario::Case;

/// What a run left: every selected case's result (in selection order) and its directory.
pub struct Run {
    pub results: Vec<CaseResult>,
    pub dir: Option<PathBuf>,
    pub elapsed: std::time::Duration,
}

/// Problems of a case that ran (empty: as expected) and how it compares with its snapshot.
pub fn verdict(engine: &Engine, case: &Case, report: &Report) -> (Vec<String>, &'static str) {
    let mut problems = report.expectation_failures.clone();
    if let crate::outcome::Outcome::HarnessError { message } = &report.outcome {
        if case
            .expect
            .iter()
            .all(|e| e.class != Some(crate::outcome::Class::HarnessError))
        {
            problems.push(format!("harness error: {message}"));
        }
    }
    let snap = match report::snapshot::compare(&engine.scenarios_root, case, &report.snapshot()) {
        Comparison::Same => "same",
        Comparison::New => "new",
        Comparison::Changed(_) => {
            problems.push(format!(
                "outcome differs from the snapshot {} (see the diff with `cargo test -p cgrepro --test scenarios -- --exact '{}'`)",
                report::snapshot::file(&engine.scenarios_root, case).display(),
                case.name
            ));
            "changed"
        }
    };
    (problems, snap)
}

/// Run `cases` on `jobs` threads.
pub fn execute(engine: &Engine, cases: &[&Case], jobs: usize, opts: &OutputArgs) -> Run {
    let base = opts
        .artifacts
        .clone()
        .unwrap_or_else(|| engine.root.join("target").join("cgrepro"));
    let dir = match artifacts::new_run_dir(&base) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!(
                "warning: cannot make a run directory under {}: {e} (no artifacts kept)",
                base.display()
            );
            None
        }
    };
    let progress = Progress::new(cases.len(), opts.format);
    let start = Instant::now();
    let one = |case: &&Case| -> CaseResult {
        if let Some(why) = engine.ignore_reason(case) {
            return CaseResult::not_run(case, Status::Ignored, Some(why));
        }
        let started = start.elapsed();
        let case_dir = dir.as_deref().map(|d| artifacts::case_dir(d, case));
        let report = engine.run_keeping(case, false, case_dir.as_deref());
        let (problems, snap) = verdict(engine, case, &report);
        let status = if problems.is_empty() {
            Status::Passed
        } else if interrupt::interrupted() {
            // Killed by the stop (Ctrl-C, SIGTERM, a closed stdout): not judged.
            Status::Interrupted
        } else {
            Status::Failed
        };
        CaseResult {
            name: case.name.clone(),
            scenario: case.scenario.name.clone(),
            cell: case.cell.clone(),
            status,
            reason: None,
            problems,
            expectations: case.expect.iter().map(|e| e.at.clone()).collect(),
            snapshot: Some(snap),
            started: Some(started),
            report: Some(report),
        }
    };
    let results = pool::map_with_events(cases, jobs, one, |ev| match ev {
        Event::Started(_, c) => progress.started(&c.name),
        Event::Done(_, _, r) => progress.done(r),
    });
    progress.finish();
    let results: Vec<CaseResult> = cases
        .iter()
        .zip(results)
        .map(|(c, r)| r.unwrap_or_else(|| CaseResult::not_run(c, Status::NotStarted, None)))
        .collect();
    let run = Run {
        results,
        dir,
        elapsed: start.elapsed(),
    };
    write_outputs(&run, opts);
    run
}

/// `case.json` per case, `cases.jsonl`, the HTML page, and JUnit if asked.
fn write_outputs(run: &Run, opts: &OutputArgs) {
    let name = run
        .dir
        .as_deref()
        .and_then(Path::file_name)
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    let records: Vec<serde_json::Value> = run.results.iter().map(CaseResult::json).collect();
    if let Some(dir) = &run.dir {
        let mut jsonl = String::new();
        for (r, v) in run.results.iter().zip(&records) {
            jsonl.push_str(&v.to_string());
            jsonl.push('\n');
            if let Some(a) = r.report.as_ref().and_then(|x| x.artifacts.as_ref()) {
                let _ = std::fs::write(a.join("case.json"), format!("{v:#}\n"));
            }
        }
        warn(
            std::fs::write(dir.join("cases.jsonl"), jsonl),
            &dir.join("cases.jsonl"),
        );
        let page = report::html::render(&format!("cgrepro run {name}"), &records);
        warn(
            std::fs::write(dir.join("index.html"), &page),
            &dir.join("index.html"),
        );
    }
    if let Some(f) = &opts.html {
        let page = report::html::render(&format!("cgrepro run {name}"), &records);
        warn(std::fs::write(f, page), f);
    }
    if let Some(f) = &opts.junit {
        warn(
            std::fs::write(f, report::junit::render(&name, &run.results)),
            f,
        );
    }
}

fn warn(r: std::io::Result<()>, path: &Path) {
    if let Err(e) = r {
        eprintln!("warning: cannot write {}: {e}", path.display());
    }
}

/// The closing lines of a run (the counts line is what CI log readers look for), and the
/// exit status: 1 a case failed or was interrupted; 3 cases cannot run here (unless
/// `--allow-ignored`); else 0.
pub fn summary(run: &Run, opts: &OutputArgs, say: impl Fn(&str)) -> i32 {
    let t = Tally::of(&run.results);
    let failing = report::signatures::failing(run.results.iter().filter_map(|r| r.report.as_ref()));
    if let Some(block) = report::signatures::render(&failing) {
        say(&format!("\n{block}"));
    }
    say(&format!(
        "\n{} passed, {} failed, {} ignored ({} cases in {:.2?})",
        t.passed,
        t.failed,
        t.ignored,
        run.results.len(),
        run.elapsed
    ));
    let names = |st: Status| -> Vec<&str> {
        run.results
            .iter()
            .filter(|r| r.status == st)
            .map(|r| r.name.as_str())
            .collect()
    };
    if t.failed > 0 {
        say(&format!("failed: {}", names(Status::Failed).join(", ")));
    }
    if t.interrupted > 0 {
        say(&format!(
            "interrupted (killed mid-run, not judged): {}",
            names(Status::Interrupted).join(", ")
        ));
    }
    if t.not_started > 0 {
        say(&format!(
            "not started ({} case(s)): {}",
            t.not_started,
            names(Status::NotStarted).join(", ")
        ));
    }
    if let Some(d) = &run.dir {
        say(&format!(
            "artifacts: {}  (page: {})",
            d.display(),
            d.join("index.html").display()
        ));
    }
    if t.failed > 0 || t.interrupted > 0 {
        return 1;
    }
    if t.ignored > 0 && !opts.allow_ignored {
        let mut why: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &run.results {
            if let Some(w) = &r.reason {
                *why.entry(w.as_str()).or_default() += 1;
            }
        }
        eprintln!(
            "\nerror: {} of {} selected case(s) cannot run on this machine, so this run proves nothing about them:",
            t.ignored,
            run.results.len()
        );
        for (w, n) in why {
            eprintln!("  {n} case(s): {w}");
        }
        eprintln!("pass --allow-ignored to accept that (exit 0), or select the cases that can run");
        return 3;
    }
    0
}
