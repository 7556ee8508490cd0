//! A fault sweep of real code, end to end.
//!
//! The story: a maintainer sweeps cgroups-rs 0.3.4's Create+Apply of a Kata sandbox cgroup
//! on an Amazon Linux 2 host (cgroup v1). Without being told about it, the sweep finds the
//! known defect — EINVAL on `memory.limit_in_bytes` is reported as success and the limit
//! is missing — judges a refused `pids.max` (which cgroups-rs does report, naming the file)
//! correct, minimises a scenario for the defect that replays to the same outcome,
//! and, run again, resumes every fault from its state file instead of rerunning it.

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;
use cgrepro::sweep::plan::{Fault, Injection, Site, SiteOp};
use cgrepro::sweep::verdict::Kind;
use cgrepro::sweep::{found, sweep_case, Options, Tables};

mod support;

use support::{need_sandbox, root, Suite};

fn main() {
    let mut suite = Suite::new();
    suite.test_needing(
        "a_sweep_of_cgroups_rs_0_3_4_finds_the_swallowed_memory_limit_and_resumes",
        need_sandbox(),
        a_sweep_of_cgroups_rs_0_3_4_finds_the_swallowed_memory_limit_and_resumes,
    );
    suite.run()
}

fn a_sweep_of_cgroups_rs_0_3_4_finds_the_swallowed_memory_limit_and_resumes() {
    let root = root();
    let engine = Engine::new(&root).unwrap();
    engine.build_drivers().unwrap();
    let scenario = engine
        .load(&root.join("scenarios/sweep/cgroups-rs-create-apply.toml"))
        .unwrap();
    let case = scenario
        .cases
        .iter()
        .find(|c| {
            c.name
                .ends_with("target.version=0.3.4,host.preset=amazonlinux-2")
        })
        .unwrap();
    if let Some(why) = engine.ignore_reason(case) {
        panic!("the sweep's case cannot run on a machine with a sandbox: {why}");
    }
    let tables = Tables::load(&root).unwrap();
    let scratch = std::env::temp_dir().join(format!("cgrepro-sweep-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let opts = Options {
        jobs: 2,
        cap: 200,
        state: Some(scratch.join("state.jsonl")),
        found_dir: None,
    };
    let mut out = Vec::new();
    let t = sweep_case(&engine, &tables, case, &opts, &mut out).unwrap();

    let row = |key: &str| {
        t.rows
            .iter()
            .find(|r| r.key == key)
            .unwrap_or_else(|| panic!("no row `{key}`"))
    };
    let limit = row("write memory/kata_sandboxed_pod/cgrepro-sandbox/memory.limit_in_bytes EINVAL");
    assert_eq!(limit.verdict.kind, Kind::Swallowed, "{:?}", limit.verdict);
    assert!(
        limit.verdict.detail.contains("requested limit `memory`"),
        "{}",
        limit.verdict.detail
    );
    let pids = row("write pids/kata_sandboxed_pod/cgrepro-sandbox/pids.max EINVAL");
    assert_eq!(pids.verdict.kind, Kind::Correct, "{:?}", pids.verdict);
    assert!(t.rows.iter().all(|r| r.verdict.kind != Kind::HarnessError));

    // The minimised scenario (written as the sweep writes one per defect) replays to the
    // defect: ok, and no memory limit written.
    let inj = Injection {
        site: Site {
            op: SiteOp::Write,
            path: limit.path.clone(),
            value: Some("268435456".into()),
        },
        fault: Fault::Errno("EINVAL".into()),
    };
    let file = found::minimise_and_write(
        &engine,
        &tables,
        case,
        Some(&inj),
        &limit.verdict,
        &scratch.join("found"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("ops = [\"create\", \"apply\"]"),
        "apply is needed, create too: {text}"
    );
    let found = engine.load(&file).unwrap();
    let report = engine.run(&found.cases[0], false);
    assert_eq!(report.outcome.class(), Class::Ok);
    assert!(!report
        .effects
        .written
        .keys()
        .any(|k| k.ends_with("memory.limit_in_bytes")));
    assert!(report
        .cgroupfs_ops
        .iter()
        .any(|l| l.contains("memory.limit_in_bytes") && l.ends_with("-> EINVAL")));

    // Again: everything comes from the state file.
    let again = sweep_case(&engine, &tables, case, &opts, &mut out).unwrap();
    assert_eq!(again.resumed, t.rows.len());
    assert_eq!(again.rows.len(), t.rows.len());
    std::fs::remove_dir_all(&scratch).unwrap();
}
