//! A long run on the cgroupfs model leaves nothing behind.
//!
//! The story: a user runs a big matrix on the model (the default). The session serves
//! every case from one FUSE connection, each case seeing a bind of its own directory.
//! While it runs there is exactly that one connection and no mount of it on the machine
//! (the session's mount is detached); after each case the connection serves one case
//! fewer; when the session ends the connection is gone from /sys/fs/fuse/connections, no
//! process of ours is left, no mount was added to the machine's table, and the session
//! directory is removed.
//!
//! `cargo test` runs 200 cases; `CGREPRO_CLEANUP_N=10000` makes it the 10,000-case check
//! of BENCHMARKS.md.

use std::collections::BTreeSet;
use std::path::Path;

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;
use cgrepro::pool;

mod support;

use support::{need_root, need_sandbox, root, Suite};

/// The machine's mounts as (mount id, device, mount point): ids are never reused while
/// the machine runs, so a mount made and left by us would show as a new id.
fn mounts() -> BTreeSet<(String, String, String)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[2].to_owned(), f[4].to_owned())
        })
        .collect()
}

/// Processes descended from this test process (its own threads are not processes).
fn descendants() -> Vec<u32> {
    let me = std::process::id();
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(pp) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent.insert(pid, pp);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parent.get(&cur) {
                    Some(&pp) if pp == me => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Threads of this process serving a FUSE connection (fuser names them `fuser-N`; the
/// per-case fallback's are `cgroupfs`).
fn fuse_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .filter(|c| c.starts_with("fuser-") || c.starts_with("cgroupfs"))
        .collect()
}

fn main() {
    let mut suite = Suite::new();
    suite.test_needing(
        "a_long_run_on_the_model_leaves_nothing_behind",
        need_root("the cgroupfs model").and_then(|()| need_sandbox()),
        a_long_run_on_the_model_leaves_nothing_behind,
    );
    suite.run()
}

fn a_long_run_on_the_model_leaves_nothing_behind() {
    let n: usize = std::env::var("CGREPRO_CLEANUP_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let before = mounts();
    let engine = Engine::new(&root()).expect("engine");
    engine.build_drivers().expect("drivers build");
    let noop = engine
        .load(&root().join("fixtures/bench/noop.toml"))
        .expect("noop scenario");
    let case = &noop.cases[0];
    if let Some(why) = engine.ignore_reason(case) {
        panic!("as root with a sandbox, the model case cannot run: {why}");
    }
    let session_dir = engine.session().expect("session").path().to_path_buf();
    let indices: Vec<usize> = (0..n).collect();
    let classes = pool::map(&indices, 2, |_| engine.run(case, false).outcome.class());
    let bad: Vec<_> = classes
        .iter()
        .flatten()
        .filter(|c| **c != Class::Ok)
        .collect();
    assert!(bad.is_empty(), "cases that did not pass: {bad:?}");
    assert_eq!(classes.iter().flatten().count(), n);

    let session = engine.session().expect("session");
    if let Some(why) = session.cgroupfs_per_case_reason() {
        eprintln!("a FUSE mount per case on this machine ({why}); checking that path");
    }
    assert_eq!(
        session.cgroupfs_serving(),
        0,
        "cases still served after the run"
    );
    let conn = session.cgroupfs_connection();
    // /sys/fs/fuse/connections lists the connections where fusectl is mounted.
    let fusectl = Path::new("/sys/fs/fuse/connections/")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some());
    if let Some(c) = conn {
        assert!(
            !fusectl || Path::new(&format!("/sys/fs/fuse/connections/{c}")).exists(),
            "the session's connection {c} is not listed while the session lives"
        );
        assert!(
            !fuse_threads().is_empty(),
            "no thread serves the session's connection"
        );
        let dev = format!("0:{c}");
        assert!(
            !mounts().iter().any(|(_, d, _)| *d == dev),
            "the session's FUSE connection is mounted on the machine"
        );
    }
    drop(engine);

    if let Some(c) = conn {
        assert!(
            !Path::new(&format!("/sys/fs/fuse/connections/{c}")).exists(),
            "the session's FUSE connection {c} outlived the session"
        );
    }
    // The serving threads end when the kernel aborts the connection: its end.
    assert_eq!(
        fuse_threads(),
        Vec::<String>::new(),
        "FUSE threads outlived the session"
    );
    let added: Vec<_> = mounts().difference(&before).cloned().collect();
    assert!(added.is_empty(), "mounts left on the machine: {added:?}");
    assert_eq!(descendants(), Vec::<u32>::new(), "processes left behind");
    assert!(
        !session_dir.exists(),
        "session directory {} left behind",
        session_dir.display()
    );
}
