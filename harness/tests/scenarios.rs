//! Every scenario × matrix cell under `scenarios/` is one test.
//!
//! A case passes when its outcome matches the scenario's `[[expect]]` blocks and its
//! insta snapshot (`scenarios/snapshots/`). Cases this machine cannot run (no sandbox
//! support, a target that is not there) are marked ignored when tests are *listed*, so
//! libtest and cargo-nextest both show them as ignored, never as passed; run anyway
//! (`--ignored`, `--include-ignored`), such a case fails with the reason. A scenario file
//! with errors is one failing test named `<scenario>::load`.
//!
//! The arguments are libtest's (several filters, `--exact`, `--skip`, `--list`,
//! `--format terse`, `--ignored`, `--include-ignored`); works under `cargo nextest run`
//! (one process per case, `--partition count:K/N` and `hash:K/N`). Every case's full
//! output is kept under `target/cgrepro/tests/<case>/` (see `cgrepro::report::artifacts`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use cgrepro::engine::Engine;
use cgrepro::outcome::{Class, Outcome};
use cgrepro::report::{artifacts, snapshot};
use cgrepro::sandbox::interrupt;
use cgrepro::scenario::TargetKind;
use cgrepro::subject;
use libtest_mimic::{Arguments, Failed, Trial};

/// libtest accepts several filters (a test runs when its name contains any of them);
/// libtest-mimic takes one. Split the positional filters off the options.
fn parse_args() -> (Arguments, Vec<String>) {
    // libtest's options that take a value as the next argument.
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--logfile",
        "--skip",
        "--color",
        "--format",
        "-Z",
    ];
    let mut rest: Vec<String> = Vec::new();
    let mut filters = Vec::new();
    let mut it = std::env::args();
    rest.extend(it.next());
    while let Some(a) = it.next() {
        if a == "--" {
            filters.extend(it.by_ref());
        } else if a.starts_with('-') {
            let takes_value = WITH_VALUE.contains(&a.as_str());
            rest.push(a);
            if takes_value {
                rest.extend(it.next());
            }
        } else {
            filters.push(a);
        }
    }
    let mut args = Arguments::from_iter(rest);
    if filters.len() == 1 {
        args.filter = filters.pop();
    }
    (args, filters)
}

fn main() {
    let (args, filters) = parse_args();
    let _ = interrupt::install();
    // CGREPRO_ROOT: another repository's scenarios (the runner's own tests use a copy).
    let root = std::env::var_os("CGREPRO_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let root = root.canonicalize().unwrap_or(root);
    let engine = match Engine::new(&root) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(101);
        }
    };
    let (scenarios, errors) = engine.load_all();
    // Build the drivers before deciding what can run: a driver not built yet is no reason
    // to ignore its cases. Under nextest (one process per case, after a listing that
    // built them) only when one is missing, so that each process does not run cargo.
    let missing_driver = scenarios.iter().flat_map(|s| &s.cases).any(|c| {
        matches!(c.target.kind, TargetKind::Driver { .. })
            && subject::unavailable(c, &engine.drivers).is_some()
    });
    if args.list || std::env::var_os("NEXTEST").is_none() || missing_driver {
        if let Err(e) = engine.build_drivers() {
            eprintln!("error: {e}");
            std::process::exit(101);
        }
    }
    let mut trials = Vec::new();
    let mut reasons = std::collections::HashMap::new();
    // Each case's whole output and logs; CI uploads the directory.
    let artifacts_root = std::env::var_os("CGREPRO_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/cgrepro/tests"));
    for e in errors {
        let name = e
            .file
            .strip_prefix(&engine.scenarios_root)
            .unwrap_or(&e.file)
            .with_extension("")
            .display()
            .to_string();
        let msg = e.to_string();
        trials.push(Trial::test(format!("{name}::load"), move || {
            Err(Failed::from(msg))
        }));
    }
    for case in scenarios.into_iter().flat_map(|s| s.cases) {
        let engine = Arc::clone(&engine);
        let artifacts_root = artifacts_root.clone();
        // Known when listing: nextest lists with `--ignored` to learn which are ignored.
        let cannot_run = engine.ignore_reason(&case);
        let name = case.name.clone();
        let ignored = cannot_run.is_some();
        if let Some(r) = &cannot_run {
            reasons.insert(name.clone(), r.clone());
        }
        trials.push(
            Trial::test(name, move || {
                if let Some(why) = cannot_run {
                    // Only reached with --ignored / --include-ignored: asked to run, it cannot.
                    return Err(format!("cannot run here: {why}").into());
                }
                let artifacts = artifacts::case_dir(&artifacts_root, &case);
                let report = engine.run_keeping(&case, false, Some(&artifacts));
                if let Outcome::HarnessError { message } = &report.outcome {
                    if case
                        .expect
                        .iter()
                        .all(|e| e.class != Some(Class::HarnessError))
                    {
                        return Err(format!("harness error: {message}").into());
                    }
                }
                let rendered = report.snapshot();
                let snap = catch_unwind(AssertUnwindSafe(|| {
                    snapshot::assert(&engine.scenarios_root, &case, &rendered)
                }));
                let mut problems = report.expectation_failures.clone();
                if snap.is_err() {
                    problems.push(format!(
                        "snapshot {} does not match (diff above; `cargo insta review` to accept)",
                        snapshot::file(&engine.scenarios_root, &case).display()
                    ));
                }
                if interrupt::interrupted() {
                    return Err("interrupted (the case was killed)".into());
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{}\n\n{rendered}\nartifacts (whole output, logs): {}",
                        problems.join("\n"),
                        artifacts.display()
                    )
                    .into())
                }
            })
            .with_ignored_flag(ignored),
        );
    }
    if !filters.is_empty() {
        // Several filters: keep a test that any of them selects (`--exact`: by whole name).
        trials.retain(|t| {
            filters.iter().any(|f| {
                if args.exact {
                    t.name() == f
                } else {
                    t.name().contains(f.as_str())
                }
            })
        });
    }
    // Cases selected (by the filters) that will run, and those that cannot run here.
    let selected = trials.iter().filter(|t| !args.is_filtered_out(t));
    let (will_run, cannot_run) = selected.fold((0usize, 0usize), |(r, c), t| {
        if !args.is_ignored(t) {
            (r + 1, c)
        } else if reasons.contains_key(t.name()) {
            (r, c + 1)
        } else {
            (r, c)
        }
    });
    if !args.list {
        // Say loudly which selected cases will not run, and why (libtest only says "ignored").
        let mut why: std::collections::BTreeMap<&str, usize> = Default::default();
        for t in &trials {
            if !args.is_filtered_out(t) && args.is_ignored(t) {
                if let Some(r) = reasons.get(t.name()) {
                    *why.entry(r.as_str()).or_default() += 1;
                }
            }
        }
        for (r, n) in &why {
            eprintln!("ignored: {n} case(s) cannot run here: {r}");
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // A run in which every selected case was ignored proved nothing: red, not green
    // (README, "Running the scenarios"). A filter that selects no case (`cargo test
    // some_unit_test` reaches this binary too) is not that.
    let nothing_ran = !args.list && will_run == 0 && cannot_run > 0;
    if nothing_ran && std::env::var_os("CGREPRO_ALLOW_IGNORED").is_none_or(|v| v.is_empty()) {
        eprintln!(
            "error: all {cannot_run} selected scenario case(s) were ignored: this machine cannot \
             run them (reasons above). Run as root (or where user namespaces work), or set \
             CGREPRO_ALLOW_IGNORED=1 to accept a run that proves nothing."
        );
        drop(engine);
        std::process::exit(1);
    }
    drop(engine);
    if interrupt::interrupted() {
        eprintln!("interrupted: running cases were killed");
        std::process::exit(130);
    }
    conclusion.exit();
}
