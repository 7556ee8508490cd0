//! The scenario runner fits CI: it takes libtest's arguments and works under cargo-nextest.
//!
//! The story: a CI job runs `cargo test -- kata syscall` or shards the matrix with
//! `cargo nextest run --partition hash:K/N`. Cases this machine cannot run (the real Kata
//! shim is not installed) are listed as ignored — by libtest's `--list --ignored` and by
//! nextest — and are never counted as passed; asked to run them anyway, they fail with
//! the reason.

use std::process::{Command, Output};

mod support;

use support::{root, Need, Suite, Unmet};

fn main() {
    let mut suite = Suite::new();
    suite
        .test(
            "the_runner_takes_libtest_arguments",
            the_runner_takes_libtest_arguments,
        )
        .test(
            "cases_that_cannot_run_are_ignored_when_listed",
            cases_that_cannot_run_are_ignored_when_listed,
        )
        .test_needing(
            "nextest_partitions_run_each_case_once_and_never_pass_what_cannot_run",
            need_cargo_tool("nextest"),
            nextest_partitions_run_each_case_once_and_never_pass_what_cannot_run,
        )
        .test_needing(
            "cargo_insta_finds_and_accepts_pending_scenario_snapshots",
            need_cargo_tool("insta"),
            cargo_insta_finds_and_accepts_pending_scenario_snapshots,
        );
    suite.run()
}

/// `cargo <tool>` (cargo-nextest, cargo-insta): CI has it (ci/setup.sh installs it).
fn need_cargo_tool(tool: &str) -> Need {
    let here = cargo()
        .args([tool, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if here {
        Ok(())
    } else {
        Err(Unmet::ci_provides(format!(
            "cargo-{tool} is not installed (cargo install cargo-{tool} --locked; ci/setup.sh installs it)"
        )))
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    // The real Kata shim stays out of it (also where this machine has built releases):
    // its cases are the ones that cannot run here.
    c.env_remove("CGREPRO_KATA_SHIM")
        .env("CGREPRO_KATA_SHIM_DIR", NO_SHIMS);
    c
}

/// A shim directory that holds no Kata release.
const NO_SHIMS: &str = "/nonexistent/cgrepro-no-kata-shims";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `cargo test -p cgrepro --test scenarios -- ARGS`, its listing as names.
fn scenarios_list(args: &[&str]) -> Vec<String> {
    let o = cargo()
        .args(["test", "-q", "-p", "cgrepro", "--test", "scenarios", "--"])
        .args(["--list", "--format", "terse"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// `cgrepro list`: name and, for a case that cannot run here, the reason.
fn cgrepro_list() -> Vec<(String, Option<String>)> {
    let o = Command::new(env!("CARGO_BIN_EXE_cgrepro"))
        .arg("list")
        .current_dir(root())
        .env_remove("CGREPRO_KATA_SHIM")
        .env("CGREPRO_KATA_SHIM_DIR", NO_SHIMS)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| match l.split_once("  (ignored: ") {
            Some((n, why)) => (n.to_owned(), Some(why.trim_end_matches(')').to_owned())),
            None => (l.to_owned(), None),
        })
        .collect()
}

fn the_runner_takes_libtest_arguments() {
    let all = scenarios_list(&[]);
    let kata = scenarios_list(&["kata"]);
    let syscall = scenarios_list(&["syscall"]);
    assert!(!kata.is_empty() && !syscall.is_empty());
    // Several filters: a case runs when any selects it.
    let both = scenarios_list(&["kata", "syscall"]);
    assert_eq!(both.len(), kata.len() + syscall.len(), "{both:?}");
    // --skip, --exact, and several --exact names.
    let skipped = scenarios_list(&["--skip", "kata"]);
    assert_eq!(skipped.len(), all.len() - kata.len());
    assert!(skipped.iter().all(|n| !n.contains("kata")));
    let one = scenarios_list(&["--exact", &syscall[0]]);
    assert_eq!(one, vec![syscall[0].clone()]);
    let two = scenarios_list(&["--exact", &syscall[0], &syscall[1]]);
    assert_eq!(two, vec![syscall[0].clone(), syscall[1].clone()]);
    // A prefix is no exact name.
    assert!(scenarios_list(&["--exact", "syscall"]).is_empty());
}

fn cases_that_cannot_run_are_ignored_when_listed() {
    let listed = cgrepro_list();
    let cannot: Vec<&String> = listed
        .iter()
        .filter(|(_, why)| why.is_some())
        .map(|(n, _)| n)
        .collect();
    // What `cgrepro list` says cannot run is exactly what libtest lists as ignored.
    let ignored = scenarios_list(&["--ignored"]);
    assert_eq!(ignored.iter().collect::<Vec<_>>(), cannot);
    if nix::unistd::geteuid().is_root() {
        // As root here, only the cases of programs built from public source can be
        // missing: the real Kata shim (no shim in the shim dir), the go-systemd client
        // (ci/go-systemd-client.sh, in /var/cache/cgrepro/clients).
        assert!(!cannot.is_empty());
        for (n, why) in listed.iter().filter(|(_, w)| w.is_some()) {
            assert!(
                why.as_deref().is_some_and(
                    |w| w.contains("Kata") || w.contains("/var/cache/cgrepro/clients/")
                ),
                "{n}: {why:?}"
            );
        }
    }
}

/// `cargo nextest run` over the scenario runner; (passed, failed, skipped) from its summary.
fn nextest_run(args: &[&str]) -> (usize, usize, usize, String) {
    let o = cargo()
        .args(["nextest", "run", "-p", "cgrepro", "--test", "scenarios"])
        .args(["--no-fail-fast", "--color", "never", "--hide-progress-bar"])
        .args(args)
        .output()
        .unwrap();
    let out = text(&o);
    let summary = out
        .lines()
        .rev()
        .find(|l| l.contains("Summary"))
        .unwrap_or_else(|| panic!("no nextest summary in:\n{out}"))
        .to_owned();
    let num = |word: &str| -> usize {
        let re = regex::Regex::new(&format!(r"(\d+) (?:tests? )?{word}")).unwrap();
        re.captures(&summary).map_or(0, |c| c[1].parse().unwrap())
    };
    (num("passed"), num("failed"), num("skipped"), out)
}

fn nextest_partitions_run_each_case_once_and_never_pass_what_cannot_run() {
    let listed = cgrepro_list();
    let cannot: Vec<&String> = listed
        .iter()
        .filter(|(_, w)| w.is_some())
        .map(|(n, _)| n)
        .collect();

    // nextest learns at list time what is ignored.
    let o = cargo()
        .args(["nextest", "list", "-p", "cgrepro", "--test", "scenarios"])
        .args(["--message-format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases = &list["rust-suites"]["cgrepro::scenarios"]["testcases"];
    let mut ignored: Vec<&String> = cases
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, t)| t["ignored"] == true)
        .map(|(n, _)| n)
        .collect();
    ignored.sort();
    let mut want = cannot.clone();
    want.sort();
    assert_eq!(ignored, want);

    // Shards: every runnable case of the selection runs once, in one shard.
    let selection = "test(/^syscall\\//)";
    let runnable = listed
        .iter()
        .filter(|(n, w)| n.starts_with("syscall/") && w.is_none())
        .count();
    assert!(runnable > 1);
    for kind in ["count", "hash"] {
        let mut passed = 0;
        for k in 1..=2 {
            let part = format!("{kind}:{k}/2");
            let (p, f, _, out) = nextest_run(&["--partition", &part, "-E", selection]);
            assert_eq!(f, 0, "{part}:\n{out}");
            passed += p;
        }
        assert_eq!(passed, runnable, "{kind} partitions");
    }

    // The CI recipe's invocation (ci/github-actions.yml): its nextest profile writes JUnit.
    let recipe = std::fs::read_to_string(root().join("ci/github-actions.yml")).unwrap();
    for needed in [
        "--config-file ci/nextest.toml --profile ci",
        "--partition hash:${{ matrix.shard }}/4",
        "target/nextest/ci/junit.xml",
        "--junit target/cgrepro/junit.xml --html target/cgrepro/report.html",
    ] {
        assert!(
            recipe.contains(needed),
            "ci/github-actions.yml lacks `{needed}`"
        );
    }
    let junit = root().join("target/nextest/ci/junit.xml");
    let _ = std::fs::remove_file(&junit);
    let (p, f, _, out) = nextest_run(&[
        "--config-file",
        "ci/nextest.toml",
        "--profile",
        "ci",
        "--partition",
        "hash:1/4",
        "-E",
        selection,
    ]);
    assert_eq!(f, 0, "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), p, "{xml}");

    if !cannot.is_empty() {
        // Asked to run what cannot run: each fails with the reason, none passes.
        let (p, f, _, out) = nextest_run(&["--run-ignored", "only"]);
        assert_eq!((p, f), (0, cannot.len()), "{out}");
        assert!(out.contains("cannot run here:"), "{out}");
    }
}

/// The README's review flow: a changed case leaves a pending `.snap.new` under
/// `scenarios/snapshots/`; `cargo insta pending-snapshots --workspace-root scenarios` finds
/// it and `cargo insta accept --workspace-root scenarios` applies it.
fn cargo_insta_finds_and_accepts_pending_scenario_snapshots() {
    // A repository of its own: one real scenario, its snapshot made stale.
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    std::os::unix::fs::symlink(root().join("fixtures"), r.join("fixtures")).unwrap();
    // cargo-insta asks cargo for the workspace around --workspace-root: give the copy one,
    // as the real repository has.
    std::fs::write(
        r.join("Cargo.toml"),
        "[package]\nname = \"copy\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[lib]\npath = \"lib.rs\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(r.join("lib.rs"), "").unwrap();
    std::fs::create_dir_all(r.join("scenarios/crashers")).unwrap();
    std::fs::create_dir_all(r.join("scenarios/snapshots/crashers")).unwrap();
    std::fs::copy(
        root().join("scenarios/crashers/abort.toml"),
        r.join("scenarios/crashers/abort.toml"),
    )
    .unwrap();
    let snap = r.join("scenarios/snapshots/crashers/abort.snap");
    let good =
        std::fs::read_to_string(root().join("scenarios/snapshots/crashers/abort.snap")).unwrap();
    std::fs::write(
        &snap,
        good.replace("signature: SIGABRT", "signature: SIGSEGV"),
    )
    .unwrap();

    let scenarios = |update: &str| {
        cargo()
            .args([
                "test",
                "-q",
                "-p",
                "cgrepro",
                "--test",
                "scenarios",
                "--",
                "crashers/abort",
            ])
            .env("CGREPRO_ROOT", r)
            // The drivers are this workspace's (built); the copy has no Cargo.toml.
            .env("CGREPRO_SKIP_BUILD", "1")
            .env("INSTA_UPDATE", update)
            .env_remove("CI")
            .output()
            .unwrap()
    };
    // The case fails and leaves its new snapshot pending.
    let o = scenarios("new");
    assert!(!o.status.success(), "{}", text(&o));
    let pending = snap.with_extension("snap.new");
    assert!(pending.is_file(), "{}", text(&o));

    let insta = |cmd: &str| {
        cargo()
            .args(["insta", cmd, "--workspace-root"])
            .arg(r.join("scenarios"))
            .output()
            .unwrap()
    };
    let o = insta("pending-snapshots");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("abort.snap"), "{}", text(&o));
    let o = insta("accept");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!pending.exists());
    assert!(std::fs::read_to_string(&snap)
        .unwrap()
        .contains("signature: SIGABRT"));
    // Accepted: the case passes again.
    let o = scenarios("no");
    assert!(o.status.success(), "{}", text(&o));
}
