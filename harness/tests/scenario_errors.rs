//! A malformed scenario gets an error naming the file, line, column and field, with a
//! hint — never a panic, never a silent pass. Each file in `fixtures/bad-scenarios/` is
//! one mistake a user makes; its rendered error is snapshotted.

use std::path::PathBuf;

use cgrepro::engine::Engine;
use rstest::rstest;

mod support;

use support::root;

#[rstest]
fn malformed_scenarios_get_located_errors(
    #[files("../fixtures/bad-scenarios/*.toml")] path: PathBuf,
) {
    let root = root();
    let engine = Engine::new(&root).unwrap();
    let err = match engine.load(&path) {
        Ok(s) => panic!(
            "{} loaded ({} cases) but should not",
            path.display(),
            s.cases.len()
        ),
        Err(e) => e,
    };
    let rendered = err.to_string().replace(&format!("{}/", root.display()), "");
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    // Each case file says where its error is (its last line), as ui_test's cases do.
    let src = std::fs::read_to_string(&path).unwrap();
    let declared = src
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("# This file is a test case: its error is at "))
        .and_then(|r| r.strip_suffix(" (line:column)."))
        .and_then(|p| p.split_once(':'))
        .map(|(l, c)| (l.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()))
        .unwrap_or_else(|| {
            panic!(
                "{} does not say where its error is: end it with \
                 `# This file is a test case: its error is at LINE:COL (line:column).`",
                path.display()
            )
        });
    assert_eq!(
        (err.line, err.col),
        declared,
        "{}: the error is not where the file says\n{rendered}",
        path.display()
    );
    assert!(
        rendered.contains(&format!(
            "fixtures/bad-scenarios/{stem}.toml:{}:{}",
            err.line, err.col
        )),
        "{rendered}"
    );
    insta::with_settings!({ snapshot_suffix => stem.clone(), omit_expression => true }, {
        insta::assert_snapshot!("error", rendered);
    });
}

#[test]
fn every_shipped_scenario_loads() {
    let engine = Engine::new(&root()).unwrap();
    let (scenarios, errors) = engine.load_all();
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", rendered.join("\n\n"));
    assert!(scenarios.iter().map(|s| s.cases.len()).sum::<usize>() > 0);
}

/// A failing `[[expect]]` cites its own block's line, not the first block's.
#[test]
fn each_failing_expectation_cites_its_own_block() {
    let engine = Engine::new(&root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-expects.toml");
    let src = "[scenario]\ntitle = \"two blocks\"\n\n[target]\ndriver = \"crasher-abort\"\n\n\
               [[expect]]\nclass = \"crash\"\n\n# a comment\n\n[[expect]]\nsignal = \"SIGSEGV\"\n\n\
               [[expect]]\nmessage = \"nowhere\"\n";
    std::fs::write(&path, src).unwrap();
    let scenario = engine.load(&path).unwrap();
    let case = &scenario.cases[0];
    let lines: Vec<String> = case
        .expect
        .iter()
        .map(|e| e.at.rsplit_once(".toml:").unwrap().1.to_owned())
        .collect();
    assert_eq!(lines, ["7 (expect #1)", "12 (expect #2)", "15 (expect #3)"]);
    // Their failures (every block fails on a killed target) cite those lines.
    let outcome = cgrepro::outcome::Outcome::Killed {
        signal: "SIGKILL".into(),
    };
    let failures = cgrepro::report::check_expectations(&case.expect, &outcome, None, "");
    assert_eq!(failures.len(), 3, "{failures:?}");
    for (f, l) in failures.iter().zip(&lines) {
        assert!(f.ends_with(&format!(":{l}")), "{f}");
    }
}
