//! The sandbox holds against hostile code running as root, and leaves nothing behind.
//!
//! The story: a target that tries every way out — writing the cgroupfs, mounting cgroup
//! and cgroup2 itself, going through `/proc/<pid>/root` of other processes, `setns`,
//! `open_by_handle_at`, killing its parent — runs as root in the sandbox, under both
//! sandbox strategies. Afterwards the machine's real cgroup hierarchies and mount table are
//! exactly as before, no process of the case is alive, and no temp dir is left. Then a
//! `cgrepro run` is interrupted with Ctrl-C in the middle of a hanging case: it exits 130
//! and again leaves nothing behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;
use cgrepro::sandbox::Strategy;
use rstest::rstest;

/// The tests compare machine-wide state (fixture processes, host cgroups, mounts): they
/// must not overlap, or one sees the other's running case as a survivor.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Why these tests cannot run here, if they cannot.
fn unsupported() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("containment tests need root (they check the real host hierarchies)".into());
    }
    None
}

/// What the machine's real cgroup hierarchies look like: every directory of every
/// mounted hierarchy, and the limit files of our own groups. Process lists are left out
/// (other processes come and go).
fn host_fingerprint() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = String::new();
    let mut mounts: Vec<String> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        out.push_str(&format!(
            "mount {} {} {}\n",
            fields[4],
            fields[dash + 1],
            fields[dash + 2]
        ));
        if fields[dash + 1] == "cgroup" || fields[dash + 1] == "cgroup2" {
            mounts.push(fields[4].to_owned());
        }
    }
    fn walk(dir: &Path, out: &mut String, depth: usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push_str(&format!("dir {}\n", p.display()));
                if depth < 8 {
                    walk(&p, out, depth + 1);
                }
            } else if [
                "memory.limit_in_bytes",
                "cgroup.subtree_control",
                "pids.max",
                "cpu.cfs_quota_us",
                "cpuset.cpus",
                "memory.max",
            ]
            .contains(&e.file_name().to_string_lossy().as_ref())
            {
                let c = std::fs::read_to_string(&p).unwrap_or_default();
                out.push_str(&format!("file {} = {}\n", p.display(), c.trim()));
            }
        }
    }
    for m in mounts {
        walk(Path::new(&m), &mut out, 0);
    }
    out
}

/// Pids of processes running a binary from our target directory's fixtures.
fn fixture_processes() -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            let name = exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // This checkout's binaries only: another checkout's tests may run meanwhile.
            let ours = exe.starts_with(root());
            if ours && (name.starts_with("crasher-") || name.starts_with("cgroups-rs-")) {
                found.push(format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    exe.display()
                ));
            }
        }
    }
    found
}

fn session_dirs(tmp: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("cgrepro-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[rstest]
#[case::root_strategy(Strategy::Root)]
#[case::user_namespace_strategy(Strategy::UserNs)]
fn hostile_root_target_cannot_touch_the_host(#[case] strategy: Strategy) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = unsupported() {
        eprintln!("ignored: {why}");
        return;
    }
    let root = root();
    let before = host_fingerprint();
    let engine = Engine::with_strategy(&root, Some(strategy)).unwrap();
    engine.build_drivers().unwrap();
    let session_dir = engine
        .session()
        .expect("sandbox available")
        .path()
        .to_path_buf();
    let scenario = engine
        .load(&root.join("scenarios/crashers/hostile.toml"))
        .unwrap();
    assert!(!scenario.cases.is_empty());
    for case in &scenario.cases {
        let report = engine.run(case, false);
        assert_ne!(
            report.outcome.class(),
            Class::HarnessError,
            "{}",
            report.snapshot()
        );
        let out = &report.stdout_tail;
        // The target really tried (and reported each attempt).
        assert!(
            out.contains("attempt:"),
            "hostile target reported nothing:\n{}",
            report.snapshot()
        );
        // No mount of a real cgroup hierarchy led to a write.
        for line in out
            .lines()
            .filter(|l| l.contains("cgrepro-escape") && l.contains("/tmp/"))
        {
            assert!(!line.ends_with("-> ok"), "escape attempt succeeded: {line}");
        }
    }
    assert_eq!(
        fixture_processes(),
        Vec::<String>::new(),
        "processes of the case survived"
    );
    drop(engine);
    assert!(
        !session_dir.exists(),
        "session dir {} left behind",
        session_dir.display()
    );
    let after = host_fingerprint();
    assert_eq!(
        before, after,
        "the host's cgroup hierarchies or mounts changed"
    );
}

#[test]
fn ctrl_c_in_the_middle_of_a_run_kills_the_case_and_cleans_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = unsupported() {
        eprintln!("ignored: {why}");
        return;
    }
    let root = root();
    let tmp = tempfile::tempdir().unwrap();
    let before = host_fingerprint();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cgrepro"))
        .args(["run", "crashers/hang"])
        .current_dir(&root)
        .env("TMPDIR", tmp.path())
        .env("CGREPRO_SKIP_BUILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the hanging target is running.
    let start = Instant::now();
    while !fixture_processes()
        .iter()
        .any(|p| p.contains("crasher-hang"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the hang case never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        session_dirs(tmp.path()).len(),
        1,
        "a running case has its session dir"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "cgrepro did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "exit status after Ctrl-C; output:\n{out}"
    );
    assert!(
        out.contains("interrupted"),
        "partial results name the interrupted case:\n{out}"
    );
    assert!(
        !fixture_processes()
            .iter()
            .any(|p| p.contains("crasher-hang")),
        "the hanging target survived"
    );
    assert_eq!(
        session_dirs(tmp.path()),
        BTreeSet::new(),
        "session dir left behind"
    );
    assert_eq!(before, host_fingerprint());
}

/// A checkout under /tmp (as a CI runner's may be): the sandbox makes /tmp private, yet the
/// target's binaries there still run — their directory is bound back, read-only.
#[test]
fn targets_built_under_tmp_still_run() {
    if let Some(why) = unsupported() {
        eprintln!("ignored: {why}");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let mut engine = Engine::new(&root).unwrap();
    engine.build_drivers().unwrap();
    let bins = tempfile::Builder::new()
        .prefix("cgrepro-bins-")
        .tempdir_in("/tmp")
        .unwrap();
    let from = cgrepro::target::Drivers::default_bin_dir();
    std::fs::copy(
        from.join("crasher-exit3"),
        bins.path().join("crasher-exit3"),
    )
    .unwrap();
    engine.drivers = cgrepro::target::Drivers::discover(&root, bins.path().to_path_buf());
    let scenario = engine
        .load(&root.join("scenarios/crashers/exit3.toml"))
        .unwrap();
    let report = engine.run(&scenario.cases[0], false);
    assert_eq!(
        report.outcome.class(),
        Class::Error,
        "{}",
        report.snapshot()
    );
    assert!(report.exit.contains("status 3"), "{}", report.snapshot());
}
