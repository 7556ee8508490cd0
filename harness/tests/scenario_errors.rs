//! A malformed scenario gets an error naming the file, line, column and field, with a
//! hint — never a panic, never a silent pass. Each file in `fixtures/bad-scenarios/` is
//! one mistake a user makes; its rendered error is snapshotted.

use std::path::{Path, PathBuf};

use cgrepro::engine::Engine;
use rstest::rstest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

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
    assert!(err.line >= 1 && err.col >= 1);
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
