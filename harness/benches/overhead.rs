//! cgrepro's own cost, measured (run: `cargo bench -p cgrepro --bench overhead`).
//!
//! 1. Per case: the same driver binary with the same stdin, (a) spawned bare with
//!    `std::process::Command` (stdout/stderr captured) and (b) run as a full cgrepro case
//!    (namespaces, overlay over the host tree, /proc views, classification, effects diff,
//!    report). The driver is the cgroups-rs driver with no ops, so the bare spawn touches
//!    nothing on this machine.
//! 2. Throughput: a 220-case matrix of the real cgroups-rs driver (create, apply,
//!    delete) at several `--jobs`.
//!
//! Both with the plain tree cgroupfs and with the cgroupfs model (FUSE), the default; and
//! with the model on the same host without its systemd (what an unused systemd costs).
//!
//! 3. With `CGREPRO_BENCH_1000=1`: the 1,000-case model matrix
//!    (`fixtures/bench/throughput-1000.toml`) at `--jobs` 1–4.
//!
//! Per case also a command target (`/bin/true`) against a bare spawn of it.
//!
//! Figures go to BENCHMARKS.md. Environment: `CGREPRO_BENCH_N` (iterations, default 300),
//! `CGREPRO_BENCH_PER_CASE=0` / `CGREPRO_BENCH_THROUGHPUT=0` skip parts 1 / 2.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;
use cgrepro::{pool, subject};

#[path = "../tests/support/mod.rs"]
mod support;

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    (v[v.len() / 2], v[v.len() * 9 / 10], mean)
}

fn main() {
    // `cargo test --benches` lists benches: nothing to list here. Ctrl-C: running cases
    // are killed, the assertion below fails, and unwinding removes the session directory.
    let Some((root, engine)) = support::bench_engine() else {
        return;
    };
    let n = support::env_count("CGREPRO_BENCH_N", 300);
    let strategy = engine
        .session()
        .map(|s| format!("{:?}", s.strategy()))
        .unwrap_or_default();
    println!(
        "cgrepro overhead benchmark ({} CPUs, sandbox strategy {strategy})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. Per-case overhead, with the cgroupfs model (the default) and the plain tree
    // (CGREPRO_BENCH_PER_CASE=0 skips it).
    let per_case_on = std::env::var("CGREPRO_BENCH_PER_CASE").as_deref() != Ok("0");
    for (fixture, label) in [
        ("noop-tree.toml", "tree cgroupfs"),
        ("noop.toml", "cgroupfs model"),
        ("noop-no-systemd.toml", "cgroupfs model, no systemd"),
        (
            "noop-command.toml",
            "command target (/bin/true), cgroupfs model",
        ),
    ]
    .into_iter()
    .filter(|_| per_case_on)
    {
        per_case(
            &engine,
            &root.join("fixtures/bench").join(fixture),
            label,
            n,
        );
    }

    // 1b. The simulated systemd alone: what a case on a host with systemd pays when its
    // target never talks to it (sockets bound, manager made, thread started and joined).
    systemd_unused(&engine, n.max(1000));

    // 2. Throughput.
    let throughput_on = std::env::var("CGREPRO_BENCH_THROUGHPUT").as_deref() != Ok("0");
    for (fixture, label) in [
        ("throughput-tree.toml", "tree cgroupfs"),
        ("throughput.toml", "cgroupfs model"),
    ]
    .into_iter()
    .filter(|_| throughput_on)
    {
        throughput(
            &engine,
            &root.join("fixtures/bench").join(fixture),
            label,
            &[1, 2, 4],
        );
    }
    // 3. The 1,000-case model matrix and its --jobs curve (CGREPRO_BENCH_1000=1).
    if std::env::var("CGREPRO_BENCH_1000").as_deref() == Ok("1") {
        throughput(
            &engine,
            &root.join("fixtures/bench/throughput-1000.toml"),
            "cgroupfs model, 1,000 cases",
            &[1, 2, 3, 4],
        );
    }
}

fn throughput(engine: &Engine, path: &Path, label: &str, jobs: &[usize]) {
    let matrix = engine.load(path).expect("throughput scenario");
    let cases: Vec<_> = matrix.cases.iter().collect();
    println!(
        "\nmatrix throughput, {label}: {} cases (cgroups-rs create/apply/delete)",
        cases.len()
    );
    for &jobs in jobs {
        let t = Instant::now();
        let reports = pool::map(&cases, jobs, |c| engine.run(c, false));
        let el = t.elapsed();
        // Every case must have done what the matrix says (created, limited and deleted
        // its group): a panic or an error would be timing something else. On the plain
        // tree a group is a directory that keeps its files, so cgroups-rs's delete ends
        // in ENOTEMPTY (after its own retries): that one error is the tree's.
        let tree = path.to_string_lossy().contains("-tree");
        if let Some(r) = reports.iter().flatten().find(|r| {
            r.outcome.class() != Class::Ok
                && !(tree
                    && r.signature().starts_with("error in delete:")
                    && r.signature().contains("DirectoryNotEmpty"))
        }) {
            panic!("a throughput case did not succeed:\n{}", r.snapshot());
        }
        println!(
            "  --jobs {jobs}: {el:>8.2?} total, {:>7.2?} per case, {:>6.0} cases/s",
            el / cases.len() as u32,
            cases.len() as f64 / el.as_secs_f64()
        );
    }
}

fn per_case(engine: &Engine, path: &Path, label: &str, n: usize) {
    let noop = engine.load(path).expect("noop scenario");
    let case = &noop.cases[0];
    if let Some(why) = engine.ignore_reason(case) {
        println!("skipped: {why}");
        return;
    }
    let launch = subject::launch(case, &engine.drivers, false).expect("driver built");
    let input = std::env::temp_dir().join(format!("cgrepro-bench-input-{}", std::process::id()));
    std::fs::File::create(&input)
        .and_then(|mut f| f.write_all(&launch.stdin))
        .expect("input file");

    let bare = |_: usize| {
        let t = Instant::now();
        let out = Command::new(&launch.exe)
            .arg0(&launch.argv[0])
            .args(&launch.argv[1..])
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::fs::File::open(&input).expect("input"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("bare spawn");
        assert!(out.status.success(), "bare driver failed: {out:?}");
        t.elapsed()
    };
    let sandboxed = |_: usize| {
        let t = Instant::now();
        let r = engine.run(case, false);
        assert_eq!(r.outcome.class(), Class::Ok, "{}", r.snapshot());
        t.elapsed()
    };
    // Warm up both paths (page cache, host materialization).
    for i in 0..10 {
        bare(i);
        sandboxed(i);
    }
    // Interleave so both see the same machine conditions.
    let mut b = Vec::with_capacity(n);
    let mut s = Vec::with_capacity(n);
    for i in 0..n {
        b.push(bare(i));
        s.push(sandboxed(i));
    }
    let _ = std::fs::remove_file(&input);
    let (bm, b90, bmean) = stats(b);
    let (sm, s90, smean) = stats(s);
    println!("\nper case, {label}, {n} runs each, sequential     median      p90     mean");
    println!("  bare spawn (Command::output)      {bm:>9.2?} {b90:>9.2?} {bmean:>9.2?}");
    println!("  cgrepro case (Engine::run)        {sm:>9.2?} {s90:>9.2?} {smean:>9.2?}");
    println!(
        "  ratio (median)                    {:>8.2}x   overhead {:.2?}",
        sm.as_secs_f64() / bm.as_secs_f64(),
        sm.saturating_sub(bm)
    );
}

fn systemd_unused(engine: &Engine, n: usize) {
    use cgrepro::systemd::{bus, cgroups::TreeCgroups, units::Layout, Manager};
    let host = engine
        .hosts
        .resolve(&cgrepro::host::HostSpec {
            preset: Some("ubuntu-20.04".into()),
            ..Default::default()
        })
        .expect("preset");
    // Where sessions put case directories (a tmpfs), as the sandbox binds them.
    let dir = tempfile::Builder::new()
        .prefix("cgrepro-bench-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        })
        .expect("tempdir");
    let owner = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Worked out once per host, as the session does.
    let layout = Layout::of(&host, &engine.hosts);
    let once = |i: usize| {
        let t = Instant::now();
        let run = dir.path().join(i.to_string());
        let sockets = bus::Sockets::bind(&run, owner).expect("sockets");
        let sink = Box::new(TreeCgroups::new(
            dir.path().join("cgroup"),
            std::sync::Arc::clone(&log),
            std::process::id() as libc::pid_t,
        ));
        let manager = Manager::new(245, layout.clone(), sink, Vec::new());
        bus::serve(sockets, manager).expect("serve").finish();
        let el = t.elapsed();
        let _ = std::fs::remove_dir_all(&run);
        el
    };
    for i in 0..20 {
        once(i);
    }
    let (p50, p90, mean) = stats((0..n).map(|i| once(100 + i)).collect());
    println!(
        "\nsimulated systemd, unused (sockets + manager + thread, per case; {n} runs): \
         p50 {p50:.2?}, p90 {p90:.2?}, mean {mean:.2?}"
    );
}
