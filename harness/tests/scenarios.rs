//! Every scenario × matrix cell under `scenarios/` is one test.
//!
//! A case passes when its outcome matches the scenario's `[[expect]]` blocks and its
//! insta snapshot (`scenarios/snapshots/`). Cases this machine cannot run (no sandbox
//! support, a target that is not there) are reported ignored, with the reason. A scenario
//! file with errors is one failing test named `<scenario>::load`.
//!
//! `cargo test -p cgrepro --test scenarios -- kata-4687` filters as usual; `--list` lists;
//! works under `cargo nextest run` (one process per case).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use cgrepro::engine::Engine;
use cgrepro::outcome::{Class, Outcome};
use cgrepro::report::snapshot;
use cgrepro::sandbox::interrupt;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let _ = interrupt::install();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let engine = match Engine::new(&root) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(101);
        }
    };
    let listing = args.list;
    if !listing {
        if let Err(e) = engine.build_drivers() {
            eprintln!("error: {e}");
            std::process::exit(101);
        }
    }

    let (scenarios, errors) = engine.load_all();
    let mut trials = Vec::new();
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
        trials.push(Trial::ignorable_test(case.name.clone(), move || {
            if let Some(why) = engine.ignore_reason(&case) {
                return Ok(Completion::ignored_with(why));
            }
            let report = engine.run(&case, false);
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
            if problems.is_empty() {
                Ok(Completion::Completed)
            } else {
                Err(format!("{}\n\n{rendered}", problems.join("\n")).into())
            }
        }));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(engine);
    if interrupt::interrupted() {
        eprintln!("interrupted: running cases were killed");
        std::process::exit(130);
    }
    conclusion.exit();
}
