//! What a shim case costs, measured (run: `cargo bench -p cgrepro --bench shims`).
//!
//! In one run, next to each other: the kata#10756 crash cell and the whole 20-cell matrix,
//! against the real Kata shim (3.13.0 from the shim directory, see `ci/kata-shim.sh`) and
//! against the fixture shim; and, for scale, a bare spawn of the same shim binary
//! (`containerd-shim-kata-v2 --version`: one Go program start, no namespaces, no
//! containerd part) and of the fixture shim. Without a real shim, its rows are skipped
//! with the reason. Environment: `CGREPRO_BENCH_N` (runs per cell, default 30).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;

use cgrepro::outcome::Class;
use cgrepro::pool;
use cgrepro::scenario::Case;

fn median_p90(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn crash_cell(cases: &[Case]) -> &Case {
    cases
        .iter()
        .find(|c| {
            let v = |a: &str| c.cell.iter().find(|(k, _)| k == a).map(|(_, v)| v.as_str());
            v("host.preset") == Some("amazonlinux-2")
                && v("runtime.sandbox_cgroup_only") == Some("true")
                && v("pod.cgroups_path").is_some_and(|p| p.starts_with("kubepods-"))
        })
        .expect("the crash cell")
}

fn main() {
    let Some((root, engine)) = support::bench_engine() else {
        return;
    };
    let n = support::env_count("CGREPRO_BENCH_N", 30);
    println!(
        "cgrepro shim benchmark ({} CPUs), {n} runs per cell",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let kata = cgrepro::subject::shim::release_binary(&engine.drivers.kata_shim_dir, "3.13.0");
    let fixture = engine
        .drivers
        .bin_dir()
        .join("containerd-shim-fixture-cgroups-rs-v2");
    for (label, file, bin, arg) in [
        (
            "real Kata shim 3.13.0",
            "scenarios/kata/10756-sandbox-cgroup-only.toml",
            kata.clone(),
            "--version",
        ),
        (
            "fixture shim",
            "scenarios/kata/10756-sandbox-cgroup-only-fixture.toml",
            fixture.clone(),
            "delete",
        ),
    ] {
        let scenario = engine.load(&root.join(file)).expect("scenario");
        let crash = crash_cell(&scenario.cases);
        if let Some(why) = engine.ignore_reason(crash) {
            println!("\n{label}: skipped: {why}");
            continue;
        }
        println!("\n{label}");
        let bare = |_| {
            let t = Instant::now();
            let ok = Command::new(&bin)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(ok, "bare spawn of {}", bin.display());
            t.elapsed()
        };
        let case = |_| {
            let t = Instant::now();
            let r = engine.run(crash, false);
            assert_eq!(r.outcome.class(), Class::Crash, "{}", r.snapshot());
            t.elapsed()
        };
        for i in 0..3 {
            bare(i);
            case(i);
        }
        let (mut b, mut c) = (Vec::new(), Vec::new());
        for i in 0..n {
            b.push(bare(i));
            c.push(case(i));
        }
        let (bm, b90) = median_p90(b);
        let (cm, c90) = median_p90(c);
        println!("  bare spawn of the shim binary ({arg})   median {bm:>9.2?}  p90 {b90:>9.2?}");
        println!("  crash cell, a full cgrepro case          median {cm:>9.2?}  p90 {c90:>9.2?}");
        let cases: Vec<&Case> = scenario.cases.iter().collect();
        for jobs in [1, 2] {
            let mut runs = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let reports = pool::map(&cases, jobs, |c| engine.run(c, false));
                runs.push(t.elapsed());
                let errors = reports
                    .iter()
                    .flatten()
                    .filter(|r| r.outcome.class() == Class::HarnessError)
                    .count();
                assert_eq!(errors, 0, "harness errors in the matrix");
            }
            let (m, _) = median_p90(runs);
            println!(
                "  the {}-cell matrix, --jobs {jobs}             median {m:>9.2?} of 3 ({:.0} ms a cell)",
                cases.len(),
                m.as_secs_f64() * 1000.0 / cases.len() as f64
            );
        }
    }
}
