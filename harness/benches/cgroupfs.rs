//! The cgroupfs model's costs (run: `cargo bench -p cgrepro --bench cgroupfs`):
//!
//! 1. per-op latency (mkdir, open+write+close, open+read+close, rmdir) measured by python3
//!    inside a case, on the case's /sys/fs/cgroup served by the model over FUSE, on the
//!    plain tree (overlayfs over tmpfs), and on the case's /tmp (tmpfs);
//! 2. per-case cost of the model: the no-op driver case with `cgroupfs = model` versus
//!    `tree` (the difference is the FUSE mount, the model's construction and its thread).
//!
//! Real-cgroupfs latencies come from the fidelity check (the only code allowed to touch
//! real cgroups): `cargo test -p cgrepro --test fidelity -- --ignored --nocapture`.
//! Figures go to BENCHMARKS.md. `CGREPRO_BENCH_N`: cases per strategy (default 100).

use std::time::{Duration, Instant};

use cgrepro::evidence::CgroupfsKind;

#[path = "../tests/support/mod.rs"]
mod support;

fn main() {
    let Some((root, engine)) = support::bench_engine() else {
        return;
    };
    let n = support::env_count("CGREPRO_BENCH_N", 100);

    let ops = engine
        .load(&root.join("fixtures/bench/cgroupfs-ops.toml"))
        .expect("ops scenario");
    let noop = engine
        .load(&root.join("fixtures/bench/noop.toml"))
        .expect("noop scenario");
    if let Some(why) = engine.ignore_reason(&noop.cases[0]) {
        println!("skipped: {why}");
        return;
    }
    println!("per-op latency inside a case, µs (mean of 300 ops, python3 timing):");
    for kind in [CgroupfsKind::Model, CgroupfsKind::Tree] {
        let mut case = ops.cases[0].clone();
        case.host.cgroupfs = kind;
        let r = engine.run(&case, false);
        println!("  cgroupfs = {}: {}", kind.name(), r.stdout_tail.trim());
    }

    println!("per-case cost ({n} no-op driver cases each, sequential):");
    for kind in [CgroupfsKind::Tree, CgroupfsKind::Model] {
        let mut case = noop.cases[0].clone();
        case.host.cgroupfs = kind;
        engine.run(&case, false); // materialize the host once
        let mut v: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let r = engine.run(&case, false);
                assert_eq!(r.signature(), "ok", "{}", r.snapshot());
                t.elapsed()
            })
            .collect();
        v.sort();
        let mean = v.iter().sum::<Duration>() / v.len() as u32;
        println!(
            "  cgroupfs = {}: median {:?}, p90 {:?}, mean {:?}",
            kind.name(),
            v[v.len() / 2],
            v[v.len() * 9 / 10],
            mean
        );
    }
}
