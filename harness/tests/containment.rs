//! The sandbox holds against hostile code running as root, and leaves nothing behind.
//!
//! The story: a target that tries every way out — writing the cgroupfs, mounting cgroup
//! and cgroup2 itself, going through `/proc/<pid>/root` of other processes, `setns`,
//! `open_by_handle_at`, killing its parent — runs as root in the sandbox, under both
//! sandbox strategies. Afterwards the machine's real cgroup hierarchies and mount table are
//! exactly as before, no process of the case is alive, and no temp dir is left. The
//! same target then tries to leave files on the machine's file system — in world-writable
//! directories, /etc, /root, the repository; directly, through `..`, through symlinks,
//! through /proc/<pid>/root, and after trying to undo the sandbox's mounts — and every
//! listing of those directories is unchanged afterwards. Then a `cgrepro run` is
//! interrupted with Ctrl-C in the middle of a hanging case: it exits 130 and again leaves
//! nothing behind; one killed with SIGKILL leaves its session directory, which the next
//! run removes and names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;
use cgrepro::sandbox::Strategy;

/// The tests compare machine-wide state (fixture processes, host cgroups, mounts): they
/// must not overlap, or one sees the other's running case as a survivor.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

mod support;

use support::{adopt_orphans, need_root, ours, root, Suite};

fn main() {
    adopt_orphans();
    let need = || need_root("the containment tests check the real host hierarchies");
    let mut suite = Suite::new();
    suite
        .test_needing(
            "hostile_root_target_cannot_touch_the_host::root_strategy",
            need(),
            || hostile_root_target_cannot_touch_the_host(Strategy::Root),
        )
        .test_needing(
            "hostile_root_target_cannot_touch_the_host::user_namespace_strategy",
            need(),
            || hostile_root_target_cannot_touch_the_host(Strategy::UserNs),
        )
        .test_needing(
            "ctrl_c_in_the_middle_of_a_run_kills_the_case_and_cleans_up",
            need(),
            ctrl_c_in_the_middle_of_a_run_kills_the_case_and_cleans_up,
        )
        .test_needing(
            "a_killed_runs_session_dir_is_removed_by_the_next_run",
            need(),
            a_killed_runs_session_dir_is_removed_by_the_next_run,
        )
        .test_needing(
            "targets_built_under_tmp_still_run",
            need(),
            targets_built_under_tmp_still_run,
        )
        .test_needing(
            "writable_directories_are_private_to_the_case",
            need(),
            writable_directories_are_private_to_the_case,
        );
    suite.run()
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

/// Pids of this run's processes running a fixture binary: descendants of this test
/// process (which adopts orphans, `support::adopt_orphans`), so that another run of these
/// tests on the machine, even of this checkout, is not counted.
fn fixture_processes() -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            let name = exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if (name.starts_with("crasher-") || name.starts_with("cgroups-rs-")) && ours(pid) {
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

/// A test process's world-writable bait directory name.
fn bait_name(pid: u32) -> String {
    format!("cgrepro-ww-{pid}")
}

/// The marker of the files the hostile target tries to leave.
const MARK: &str = "cgrepro-hostile";

/// World-writable directories made for the hostile target to find (it scans
/// /var/lib and the repository's target dir for such directories): removed on drop.
struct WorldWritable(Vec<PathBuf>);

impl WorldWritable {
    fn make(root: &Path) -> WorldWritable {
        use std::os::unix::fs::PermissionsExt;
        // Named for this test process: a concurrent run makes (and removes) its own.
        let name = bait_name(std::process::id());
        let dirs = vec![
            root.join("target").join(&name),
            Path::new("/var/lib").join(&name),
        ];
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        WorldWritable(dirs)
    }
}

impl Drop for WorldWritable {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A listing of every directory the hostile target aims at: the world-writable ones one
/// level below the usual places and the repository (the shared scratch places /tmp,
/// /var/tmp and /dev/shm excepted: other programs write there), /etc, /usr and the
/// repository itself; plus, for /, /root and the scratch places, whether any entry
/// carries the hostile marker.
fn host_listing(root: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let scratch = [
        "/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run", "/proc", "/sys",
    ];
    let mut dirs: Vec<PathBuf> = vec!["/etc".into(), "/usr".into(), root.to_path_buf()];
    let roots = [
        "/",
        "/var",
        "/var/lib",
        "/var/cache",
        "/var/spool",
        "/opt",
        "/srv",
        "/home",
        "/usr/local",
        "/mnt",
        "/etc",
    ];
    for r in roots
        .iter()
        .map(PathBuf::from)
        .chain([root.to_path_buf(), root.join("target")])
    {
        for e in std::fs::read_dir(&r).into_iter().flatten().flatten() {
            let p = e.path();
            let ww = std::fs::symlink_metadata(&p)
                .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o002 != 0);
            // Another test process's bait comes and goes with that run.
            let others_bait = e.file_name().to_str().is_some_and(|n| {
                n.starts_with("cgrepro-ww-") && n != bait_name(std::process::id())
            });
            if ww && !others_bait && !scratch.iter().any(|s| p.starts_with(s)) {
                dirs.push(p);
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut out = String::new();
    for d in &dirs {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        out.push_str(&format!("{}: {}\n", d.display(), names.join(" ")));
    }
    for d in ["/", "/root", "/tmp", "/var/tmp", "/dev/shm"] {
        let marked: Vec<String> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(MARK))
            .collect();
        out.push_str(&format!("{d}: marked {marked:?}\n"));
    }
    out
}

fn hostile_root_target_cannot_touch_the_host(strategy: Strategy) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let world_writable = WorldWritable::make(&root);
    let listing = host_listing(&root);
    assert!(
        listing.contains(&format!("{}: \n", bait_name(std::process::id()))),
        "the world-writable bait directories are listed:\n{listing}"
    );
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
        // On the cgroupfs model under both strategies (under UserNs each case's init
        // mounts its own FUSE connection).
        assert_eq!(
            case.host.cgroupfs,
            cgrepro::sandbox::cgroupfs::CgroupfsKind::Model
        );
        let report = engine.run(case, false);
        assert!(
            report.snapshot().contains("\ncgroupfs: model\n"),
            "{}",
            report.snapshot()
        );
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
        // Every route to the machine's file system was tried and failed, and the
        // sandbox's mounts could not be undone.
        let routes: Vec<&str> = out.lines().filter(|l| l.contains("host-write")).collect();
        assert!(routes.len() >= 5, "host writes not tried:\n{out}");
        for line in routes {
            assert!(line.ends_with("-> none succeeded"), "{line}");
        }
        for line in out.lines().filter(|l| l.contains("attempt: undo")) {
            assert!(!line.ends_with("-> ok"), "the sandbox was undone: {line}");
        }
    }
    // Root: the cases above started from the session's prepared mount namespace (when
    // the session directory is below a private place, as by default), so that is what
    // was just shown to contain them.
    if strategy == Strategy::Root
        && cgrepro::sandbox::readonly::PRIVATE
            .iter()
            .any(|(d, _)| session_dir.starts_with(d))
    {
        assert_eq!(
            engine.session().and_then(|s| s.mount_template_error()),
            None,
            "the cases did not start from the session's mount template"
        );
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
    assert_eq!(
        listing,
        host_listing(&root),
        "the host's writable directories changed"
    );
    drop(world_writable);
}

/// `cgrepro ARGS` in the repository, with its session dirs in `tmp`.
fn cgrepro_in(root: &Path, tmp: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cgrepro"));
    c.args(args)
        .current_dir(root)
        .env("TMPDIR", tmp)
        .env("CGREPRO_SKIP_BUILD", "1");
    c
}

/// `cgrepro run crashers/hang`, returned once the hanging target is running (and when
/// the wait began).
fn run_until_the_hang_case_runs(
    root: &Path,
    tmp: &Path,
    stdout: Stdio,
) -> (std::process::Child, Instant) {
    let child = cgrepro_in(root, tmp, &["run", "crashers/hang"])
        .stdout(stdout)
        .spawn()
        .unwrap();
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
    (child, start)
}

fn ctrl_c_in_the_middle_of_a_run_kills_the_case_and_cleans_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let tmp = tempfile::tempdir().unwrap();
    let before = host_fingerprint();
    let (mut child, start) = run_until_the_hang_case_runs(&root, tmp.path(), Stdio::piped());
    assert_eq!(
        session_dirs(tmp.path()).len(),
        1,
        "a running case has its session dir"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
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

/// A `cgrepro` killed with SIGKILL cannot clean up: its session directory stays. The next
/// run removes it, and says so; a session directory of a live run is left alone.
fn a_killed_runs_session_dir_is_removed_by_the_next_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let tmp = tempfile::tempdir().unwrap();
    let cgrepro = |args: &[&str]| cgrepro_in(&root, tmp.path(), args);
    let (mut child, start) = run_until_the_hang_case_runs(&root, tmp.path(), Stdio::null());
    let stale = session_dirs(tmp.path());
    assert_eq!(stale.len(), 1, "a running case has its session dir");
    child.kill().unwrap();
    child.wait().unwrap();
    // The case dies with its parent (parent-death signal); its directory does not.
    while fixture_processes()
        .iter()
        .any(|p| p.contains("crasher-hang"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the hang case survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        session_dirs(tmp.path()),
        stale,
        "SIGKILL left the session dir"
    );

    let out = cgrepro(&["run", "crashers/exit3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = stale.iter().next().unwrap();
    assert!(
        stderr.contains(&format!(
            "note: removed stale session directory {} (its cgrepro, pid {}, is gone)",
            dir.display(),
            child.id()
        )),
        "the next run names what it removed:\n{stderr}"
    );
    assert_eq!(
        session_dirs(tmp.path()),
        BTreeSet::new(),
        "no session dir remains"
    );
}

/// A checkout under /tmp (as a CI runner's may be): the sandbox makes /tmp private, yet the
/// target's binaries there still run — their directory is bound back, read-only.
fn targets_built_under_tmp_still_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let mut engine = Engine::new(&root).unwrap();
    engine.build_drivers().unwrap();
    let bins = tempfile::Builder::new()
        .prefix("cgrepro-bins-")
        .tempdir_in("/tmp")
        .unwrap();
    let from = cgrepro::subject::Drivers::default_bin_dir();
    std::fs::copy(
        from.join("crasher-exit3"),
        bins.path().join("crasher-exit3"),
    )
    .unwrap();
    engine.drivers = cgrepro::subject::Drivers::discover(&root, bins.path().to_path_buf());
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

/// `[host] writable` directories are the case's own: the target writes them, the machine
/// never sees them (one that did not exist is made in a copy-on-write layer).
fn writable_directories_are_private_to_the_case() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let missing = Path::new("/var/lib/cgrepro-writable");
    assert!(
        !missing.exists(),
        "{} exists before the run",
        missing.display()
    );
    let cache_before: Vec<_> = std::fs::read_dir("/var/cache")
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let engine = Engine::new(&root).unwrap();
    engine.build_drivers().unwrap();
    let scenario = engine
        .load(&root.join("scenarios/crashers/writable.toml"))
        .unwrap();
    let report = engine.run(&scenario.cases[0], false);
    assert_eq!(report.outcome.class(), Class::Ok, "{}", report.snapshot());
    assert!(
        report
            .stdout_tail
            .contains("/var/lib/cgrepro-writable/state: writable")
            && report.stdout_tail.contains("/etc: not writable"),
        "{}",
        report.snapshot()
    );
    assert!(
        !missing.exists(),
        "{} appeared on the machine",
        missing.display()
    );
    let cache_after: Vec<_> = std::fs::read_dir("/var/cache")
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        cache_before, cache_after,
        "/var/cache changed on the machine"
    );
}
