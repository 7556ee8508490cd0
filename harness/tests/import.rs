//! From a bug report to a replayable case: `cgrepro import` on the corpus of real reports
//! (fixtures/reports), `cgrepro bisect` on a version axis, `cgrepro capture` of this
//! machine replayed as a host file.
//!
//! The story: a developer saves an issue's text, runs `cgrepro import` on it, and gets a
//! scenario draft whose every value says where it came from; run unchanged, the draft
//! shows the reported crash. Reports about code cgrepro cannot drive are refused with a
//! TODO, not run against something else. Hostile input writes nothing unexpected.

use std::path::PathBuf;
use std::process::{Command, Output};

mod support;

use support::{available_only, need_sandbox, root, Need, Suite};

fn main() {
    let mut suite = Suite::new();
    suite
        .test(
            "the_kata_10756_report_becomes_a_draft_that_quotes_it",
            the_kata_10756_report_becomes_a_draft_that_quotes_it,
        )
        .test(
            "reports_about_other_code_are_refused_not_replayed_on_something_else",
            reports_about_other_code_are_refused_not_replayed_on_something_else,
        )
        .test(
            "every_corpus_report_drafts_with_every_value_accounted_for",
            every_corpus_report_drafts_with_every_value_accounted_for,
        )
        .test(
            "drafts_run_unchanged_reproduce_the_reports",
            drafts_run_unchanged_reproduce_the_reports,
        )
        .test_needing(
            "kata_shim_drafts_run_unchanged_reproduce_the_reports",
            need_kata_shim(),
            kata_shim_drafts_run_unchanged_reproduce_the_reports,
        )
        .test(
            "hostile_reports_get_clear_errors_and_write_nothing_unexpected",
            hostile_reports_get_clear_errors_and_write_nothing_unexpected,
        )
        .test(
            "bisect_finds_the_cgroups_rs_release_that_stopped_panicking",
            bisect_finds_the_cgroups_rs_release_that_stopped_panicking,
        )
        .test(
            "this_machine_captures_read_only_in_seconds",
            this_machine_captures_read_only_in_seconds,
        )
        .test_needing(
            "this_machine_captured_replays_as_a_host_file",
            need_sandbox(),
            this_machine_captured_replays_as_a_host_file,
        )
        .test_needing(
            "a_run_groups_its_failing_cells_by_signature",
            need_sandbox(),
            a_run_groups_its_failing_cells_by_signature,
        )
        .test(
            "lane_captures_match_their_presets",
            lane_captures_match_their_presets,
        )
        .test(
            "a_capture_imports_as_the_drafts_host",
            a_capture_imports_as_the_drafts_host,
        );
    suite.run()
}

/// The real Kata shim 3.13.0 (`bash ci/kata-shim.sh` builds it; CI machines may lack it:
/// ignored there too).
fn need_kata_shim() -> Need {
    available_only(kata_shim().map(|_| ()).ok_or_else(|| {
        "no containerd-shim-kata-v2-3.13.0 in the shim directory (bash ci/kata-shim.sh)".to_owned()
    }))
}

fn cgrepro() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cgrepro"));
    c.current_dir(root())
        .env("CGREPRO_SKIP_BUILD", "1")
        .env_remove("CGREPRO_KATA_SHIM");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn report(name: &str) -> PathBuf {
    root().join("fixtures/reports").join(name)
}

/// The Kata release the corpus's shim reports name, from the shim directory.
fn kata_shim() -> Option<PathBuf> {
    let dir = std::env::var_os("CGREPRO_KATA_SHIM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cgrepro/kata-shims"));
    let p = dir.join("containerd-shim-kata-v2-3.13.0");
    p.is_file().then_some(p)
}

fn draft_of(name: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("draft.toml");
    let o = cgrepro()
        .args(["import", "--no-run", "-o"])
        .arg(&out)
        .arg(report(name))
        .output()
        .unwrap();
    let draft = std::fs::read_to_string(&out).unwrap_or_default();
    (text(&o), draft)
}

/// Each report's draft says what the report says (values quoted from it), and marks
/// what it guessed and what it could not know.
fn the_kata_10756_report_becomes_a_draft_that_quotes_it() {
    let (out, draft) = draft_of("kata-10756.txt");
    for line in [
        r#"preset              = "amazonlinux-2""#,
        r#"shim                = "kata""#,
        r#"version             = "3.13.0""#,
        r#"hypervisor          = "firecracker""#,
        "sandbox_cgroup_only = true",
        r#"cgroups_path        = "kubepods-besteffort-pod5c1f0a7e_2b3d_4e5f_8a9b_0c1d2e3f4a5b.slice:cri-containerd:{id}""#,
        r#"class               = "crash""#,
        r#"signal              = "SIGSEGV""#,
        r#"message             = "resourcecontrol.NewSandboxResourceController""#,
        r#"client              = "ttrpc: closed""#,
    ] {
        assert!(draft.contains(line), "missing {line:?} in:\n{draft}");
    }
    // Where each came from, quoted; what was guessed, marked.
    assert!(
        draft.contains(r#"# report: "- Kernel: 5.10.230-223.885.amzn2.x86_64""#)
            || draft.contains(r#"# report: "- EKS worker nodes, Amazon Linux 2""#),
        "{draft}"
    );
    assert!(draft.contains("# GUESSED: what containerd does for a pod sandbox"));
    assert!(
        draft.contains("# memory"),
        "the limit it does not know is a TODO line:\n{draft}"
    );
    assert!(out.contains("guessed:"), "{out}");
}

/// Reports about code cgrepro cannot drive get a TODO [target] and are not run.
fn reports_about_other_code_are_refused_not_replayed_on_something_else() {
    for name in [
        "runc-2096.txt",
        "crun-570.txt",
        "moby-50123.txt",
        "containerd-11001.txt",
    ] {
        let (out, draft) = draft_of(name);
        assert!(
            draft.contains("# TODO: the report names no code under test"),
            "{name}:\n{draft}"
        );
        assert!(out.contains("names no code under test"), "{name}: {out}");
    }
}

/// Every corpus report drafts (none crashes the importer), each field of the draft is
/// either quoted, guessed with a reason, or a TODO.
fn every_corpus_report_drafts_with_every_value_accounted_for() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("fixtures/reports"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".txt") {
            continue;
        }
        n += 1;
        let (out, draft) = draft_of(&name);
        assert!(out.contains("draft "), "{name}: {out}");
        for l in draft.lines() {
            let l = l.trim();
            let is_value = !l.is_empty()
                && !l.starts_with('#')
                && !l.starts_with('[')
                && !l.starts_with("title")
                && !l.starts_with("tags");
            if is_value {
                assert!(
                    l.contains("# report: ") || l.contains("# GUESSED: "),
                    "{name}: a value with no source: {l}\n{draft}"
                );
            }
        }
    }
    assert!(n >= 26, "the corpus has {n} reports");
}

fn reproduces(name: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let o = cgrepro()
        .args(extra)
        .args(["import", "-o"])
        .arg(dir.path().join("draft.toml"))
        .arg(report(name))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        o.status.success() && t.contains("reproduced: the replay shows the report's symptom"),
        "{name} did not reproduce:\n{t}"
    );
    t
}

/// The corpus reports whose code cgrepro drives reproduce when their drafts run
/// unchanged: the Kata shim ones with the real shim of the release they name.
fn drafts_run_unchanged_reproduce_the_reports() {
    let t = reproduces("kata-4687.txt", &[]);
    assert!(t.contains("panic"), "{t}");
    reproduces("kata-8245.txt", &[]);
}

/// The Kata shim reports reproduce with the real shim of the release they name, or the
/// one given on the command line.
fn kata_shim_drafts_run_unchanged_reproduce_the_reports() {
    let shim = kata_shim().expect("checked by need_kata_shim");
    let t = reproduces("kata-10756.txt", &[]);
    assert!(t.contains("SIGSEGV") && t.contains("ttrpc: closed"), "{t}");
    // Reports that name no full Kata release run with the shim given on the command line.
    let shim = shim.to_string_lossy().into_owned();
    reproduces("kata-10105.txt", &["--shim", &shim]);
    let t = reproduces("kata-9420.txt", &["--shim", &shim]);
    assert!(t.contains("logged"), "{t}");
    reproduces("kata-11036.txt", &["--shim", &shim]);
}

/// Hostile reports: binary, NUL, huge, a directory; a report named to climb out of the
/// output directory writes only where it was told.
fn hostile_reports_get_clear_errors_and_write_nothing_unexpected() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("core.dump");
    std::fs::write(&bin, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0xff]).unwrap();
    let huge = dir.path().join("huge.log");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    for (path, want) in [
        (bin.clone(), "not text (a NUL byte at offset 7)"),
        (huge.clone(), "more than the 4 MiB"),
        (dir.path().to_owned(), "not a regular file"),
        (dir.path().join("absent.txt"), "cannot read the report"),
    ] {
        let o = cgrepro()
            .args(["import", "--no-run", "-o"])
            .arg(dir.path().join("out.toml"))
            .arg(&path)
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{t}");
        assert!(t.contains(want), "{}: {t}", path.display());
    }
    assert!(!dir.path().join("out.toml").exists());
    // The default output name comes from the report's own name, sanitised.
    let evil = dir.path().join("..%2F..%2Fetc%2Fx.txt");
    std::fs::copy(report("kata-4687.txt"), &evil).unwrap();
    let o = cgrepro()
        .args(["import", "--no-run"])
        .arg(&evil)
        .output()
        .unwrap();
    let t = text(&o);
    let want = root().join("target/cgrepro/imported/2F..-2Fetc-2Fx.toml");
    assert!(t.contains(&want.display().to_string()), "{t}");
    let _ = std::fs::remove_file(want);
}

/// `cgrepro bisect` finds kata#4687's boundary across cgroups-rs releases: 0.2.9 and
/// 0.3.4 panic, 0.5.1 returns an error.
fn bisect_finds_the_cgroups_rs_release_that_stopped_panicking() {
    let o = cgrepro()
        .args([
            "bisect",
            "scenarios/cgroups-rs/kata-4687-overhead-path.toml",
            "--axis",
            "target.version",
            "--by",
            "class",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("boundary  target.version: 0.3.4 -> 0.5.1"),
        "{t}"
    );
    assert!(t.contains("(3 runs)"), "{t}");
}

/// `cgrepro capture` on this machine: read-only, seconds; returns the host file (in `dir`)
/// and this machine's kernel release.
fn capture_this_machine(dir: &tempfile::TempDir) -> (PathBuf, String) {
    let file = dir.path().join("node.toml");
    let t0 = std::time::Instant::now();
    let o = cgrepro()
        .args(["capture", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{t}");
    let host = std::fs::read_to_string(&file).unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        host.contains(&format!("kernel          = \"{}\"", release.trim())),
        "{host:.400}"
    );
    // Only the output was written.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    (file, release)
}

/// `cgrepro capture` on this machine writes a host file that names its kernel.
fn this_machine_captures_read_only_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    capture_this_machine(&dir);
}

/// The host file `cgrepro capture` writes loads as a host that replays (`[host] file`).
fn this_machine_captured_replays_as_a_host_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file, release) = capture_this_machine(&dir);

    // A scenario on that host file: the shell sees the captured kernel and tree.
    let repo = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("fixtures"), repo.path().join("fixtures")).unwrap();
    std::fs::create_dir_all(repo.path().join("scenarios")).unwrap();
    let scenario = repo.path().join("scenarios/on-node.toml");
    std::fs::write(
        &scenario,
        format!(
            "[scenario]\ntitle = \"this node, captured\"\n\n[host]\nfile = {:?}\ncgroupfs = \"tree\"\n\n\
             [target]\ncommand = [\"/bin/sh\", \"-c\", \"uname -r; grep -c cgroup /proc/self/mountinfo; ls /sys/fs/cgroup | head -3\"]\n",
            file.display().to_string()
        ),
    )
    .unwrap();
    let o = cgrepro()
        .current_dir(repo.path())
        .args(["replay", "scenarios/on-node.toml"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(t.contains(&format!("kernel {}", release.trim())), "{t}");
    assert!(
        t.contains(release.trim()),
        "the target saw the captured release:\n{t}"
    );
}

/// A matrix with two distinct failures, two cells each: the run ends with them grouped.
fn a_run_groups_its_failing_cells_by_signature() {
    let repo = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("fixtures"), repo.path().join("fixtures")).unwrap();
    std::fs::create_dir_all(repo.path().join("scenarios")).unwrap();
    std::fs::write(
        repo.path().join("scenarios/two-bugs.toml"),
        "[scenario]\ntitle = \"two bugs, two hosts\"\n\n[target]\ndriver = \"crasher-abort\"\n\n\
         [matrix]\n\"host.preset\" = [\"debian-12\", \"amazonlinux-2\"]\n\
         \"target.driver\" = [\"crasher-abort\", \"crasher-exit3\"]\n",
    )
    .unwrap();
    let o = cgrepro()
        .current_dir(repo.path())
        .args(["matrix", "scenarios/two-bugs.toml", "--allow-ignored"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        t.contains("4 failing cell(s), 2 distinct signature(s):"),
        "{t}"
    );
    let lines: Vec<&str> = t.lines().filter(|l| l.contains("  2 cells: ")).collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(lines.iter().any(|l| l.contains("SIGABRT")), "{t}");
}

/// The captures of real Debian boots (the real-kernel lane) equal the presets they stand
/// for, file by file, after the documented normalisation.
fn lane_captures_match_their_presets() {
    let cache = std::env::var_os("CGREPRO_LANE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cgrepro/lane")
        });
    let qemu = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .any(|d| d.join("qemu-system-x86_64").is_file());
    for (series, like) in [
        ("6.1", "debian-12"),
        ("6.12", "debian-13"),
        ("6.1", "debian-12-v1"),
    ] {
        if !qemu || !cache.join("kernels").join(series).join("vmlinuz").is_file() {
            eprintln!("skipping {series}: no QEMU or no lane kernel (bash ci/kernel-lane.sh)");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let o = cgrepro()
            .args([
                "capture",
                "--lane",
                series,
                "--like",
                like,
                "--compare",
                like,
                "-o",
            ])
            .arg(dir.path().join("lane.toml"))
            .output()
            .unwrap();
        let t = text(&o);
        assert!(o.status.success(), "{series} as {like}:\n{t}");
        assert!(t.contains(" 0 difference(s)"), "{series} as {like}:\n{t}");
    }
}

/// A host file given to import becomes the draft's host (`[host] file`), quoted as such;
/// with no code under test named, the draft is not run.
fn a_capture_imports_as_the_drafts_host() {
    let host = root().join("fixtures/hosts/debian-12-lane.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("draft.toml");
    let o = cgrepro()
        .args(["import", "--no-run", "-o"])
        .arg(&out)
        .arg(&host)
        .output()
        .unwrap();
    let draft = std::fs::read_to_string(&out).unwrap();
    assert!(
        draft.contains(&format!(
            "file                = {:?}",
            host.display().to_string()
        )),
        "{draft}"
    );
    assert!(draft.contains("the report is a host file written by `cgrepro capture`"));
    assert!(
        text(&o).contains("names no code under test"),
        "{}",
        text(&o)
    );
}
