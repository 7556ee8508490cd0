//! What `cgrepro run` and `matrix` show people and CI.
//!
//! The story: a developer runs the crashers through a pipe and sees each case as it
//! finishes; on a terminal a progress bar; `| head -1` ends quietly. CI asks for
//! `--format json` and `--junit`, and keeps the artifacts: each case's whole output, logs
//! and report. Ctrl-C lists the killed and never-started cases apart from failures. A run
//! where selected cases cannot run here fails loudly unless `--allow-ignored`. A failing
//! expectation reaches JSON and JUnit with its own `[[expect]]` line.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod support;

use support::{need_root, root, Need, Suite, Unmet};

fn main() {
    let mut suite = Suite::new();
    suite
        .test(
            "json_junit_and_artifacts_for_ci",
            json_junit_and_artifacts_for_ci,
        )
        .test(
            "a_scenario_outside_scenarios_keeps_its_artifacts_in_the_run",
            a_scenario_outside_scenarios_keeps_its_artifacts_in_the_run,
        )
        .test("several_filters_select_any", several_filters_select_any)
        .test(
            "whole_output_is_kept_beyond_the_snapshot_tail",
            whole_output_is_kept_beyond_the_snapshot_tail,
        )
        .test(
            "lines_come_as_cases_finish_through_a_pipe",
            lines_come_as_cases_finish_through_a_pipe,
        )
        .test("a_closed_stdout_ends_quietly", a_closed_stdout_ends_quietly)
        .test("progress_on_a_terminal", progress_on_a_terminal)
        .test(
            "an_interrupted_run_lists_killed_and_never_started_cases_apart",
            an_interrupted_run_lists_killed_and_never_started_cases_apart,
        )
        .test(
            "cases_that_cannot_run_fail_the_run_unless_allowed",
            cases_that_cannot_run_fail_the_run_unless_allowed,
        )
        .test(
            "the_html_page_is_self_contained",
            the_html_page_is_self_contained,
        )
        .test_needing(
            "the_html_page_renders_in_a_real_browser",
            need_chromium(),
            the_html_page_renders_in_a_real_browser,
        )
        .test_needing(
            "a_non_root_user_runs_cases_or_fails_loudly",
            need_root("drops to nobody from root"),
            a_non_root_user_runs_cases_or_fails_loudly,
        );
    suite.run()
}

fn cgrepro(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cgrepro"));
    c.current_dir(root)
        .env("CGREPRO_SKIP_BUILD", "1")
        .env_remove("CGREPRO_KATA_SHIM");
    c
}

/// A repository of its own (the real fixtures) with one scenario whose second
/// expectation fails.
fn repo_with_a_failing_case() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root().join("fixtures"), dir.path().join("fixtures")).unwrap();
    std::fs::create_dir_all(dir.path().join("scenarios/demo")).unwrap();
    std::fs::write(
        dir.path().join("scenarios/demo/abort.toml"),
        "[scenario]\ntitle = \"abort, expected wrongly\"\n\n[target]\ndriver = \"crasher-abort\"\n\n\
         [[expect]]\nclass = \"crash\"\n\n[[expect]]\nsignal = \"SIGSEGV\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("scenarios/demo/exit3.toml"),
        "[scenario]\ntitle = \"exit 3\"\n\n[target]\ndriver = \"crasher-exit3\"\n\n\
         [[expect]]\nclass = \"error\"\n",
    )
    .unwrap();
    dir
}

fn json_junit_and_artifacts_for_ci() {
    let repo = repo_with_a_failing_case();
    let art = repo.path().join("runs");
    let junit = repo.path().join("junit.xml");
    let o = cgrepro(repo.path())
        .args(["run", "--format", "json", "--junit"])
        .arg(&junit)
        .arg("--artifacts")
        .arg(&art)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    // stdout is JSON only: one record per case.
    let records: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(records.len(), 2);
    let abort = records.iter().find(|r| r["case"] == "demo/abort").unwrap();
    assert_eq!(abort["schema"], 1);
    assert_eq!(abort["status"], "failed");
    assert_eq!(abort["class"], "crash");
    assert_eq!(abort["signature"], "SIGABRT");
    assert_eq!(abort["outcome"]["signal"], "SIGABRT");
    assert_eq!(abort["snapshot"], "new");
    let failed = abort["expectations"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    let msg = failed[0].as_str().unwrap();
    assert!(msg.contains("expected signal SIGSEGV"), "{msg}");
    assert!(msg.ends_with("abort.toml:10 (expect #2)"), "{msg}");
    assert!(abort["timings"]["duration_ms"].as_u64().is_some());
    // Artifacts: whole output, report, record.
    let a = &abort["artifacts"];
    let report = std::fs::read_to_string(a["report_yaml"].as_str().unwrap()).unwrap();
    assert!(report.contains("signature: SIGABRT"), "{report}");
    assert!(Path::new(a["stderr"].as_str().unwrap()).is_file());
    let case_json: Value =
        serde_json::from_str(&std::fs::read_to_string(a["case_json"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(case_json, *abort);
    let exit3 = records.iter().find(|r| r["case"] == "demo/exit3").unwrap();
    assert_eq!(exit3["status"], "passed");
    // The closing lines go to stderr when stdout is JSON.
    assert!(stderr.contains("1 passed, 1 failed, 0 ignored"), "{stderr}");
    // JUnit: a suite per scenario, the failure with its expectation's line.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert!(
        xml.contains("<failure message=\"expected signal SIGSEGV"),
        "{xml}"
    );
    assert!(xml.contains("abort.toml:10 (expect #2)"), "{xml}");
    // The run directory: cases.jsonl and the page.
    let latest = art.join("latest");
    assert_eq!(
        std::fs::read_to_string(latest.join("cases.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(latest.join("index.html").is_file());
}

/// A scenario file anywhere (a bug report saved in /tmp, a benchmark fixture) is named by
/// its absolute path; its cases' artifacts still go under the run directory, never beside
/// the file (they once did: 5,000 files next to a benchmark fixture).
fn a_scenario_outside_scenarios_keeps_its_artifacts_in_the_run() {
    let repo = repo_with_a_failing_case();
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("report.toml");
    std::fs::write(
        &file,
        "[scenario]\ntitle = \"exit 3\"\n\n[target]\ndriver = \"crasher-exit3\"\n",
    )
    .unwrap();
    let art = repo.path().join("runs");
    let o = cgrepro(repo.path())
        .args(["matrix", "--format", "json", "--artifacts"])
        .arg(&art)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let beside: Vec<_> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, [std::ffi::OsString::from("report.toml")]);
    let record: Value = serde_json::from_str(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .expect("a record"),
    )
    .unwrap();
    let report = Path::new(record["artifacts"]["report_yaml"].as_str().unwrap());
    assert!(report.is_file(), "{}", report.display());
    assert!(
        report.starts_with(art.canonicalize().unwrap()) || report.starts_with(&art),
        "{}",
        report.display()
    );
}

/// `cgrepro list|run a b`, as `cargo test -- a b`: a case is selected when its name
/// contains any of the filters.
fn several_filters_select_any() {
    let repo = repo_with_a_failing_case();
    let list = |args: &[&str]| {
        let o = cgrepro(repo.path())
            .arg("list")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(list(&["abort"]), "demo/abort\n");
    assert_eq!(list(&["exit3", "abort"]), "demo/abort\ndemo/exit3\n");
    assert_eq!(list(&["nothing", "exit3"]), "demo/exit3\n");
    assert_eq!(list(&[]), "demo/abort\ndemo/exit3\n");
    let o = cgrepro(repo.path())
        .args(["run", "exit3", "nothing", "--artifacts"])
        .arg(repo.path().join("runs"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 passed, 0 failed, 0 ignored"), "{out}");
}

fn whole_output_is_kept_beyond_the_snapshot_tail() {
    let dir = tempfile::tempdir().unwrap();
    let o = cgrepro(&root())
        .args([
            "run",
            "crashers/big-output",
            "--format",
            "json",
            "--artifacts",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let stdout = Path::new(r["artifacts"]["stdout"].as_str().unwrap());
    // The snapshot keeps 20 lines; the artifact has every byte the target wrote.
    let report = std::fs::read_to_string(r["artifacts"]["report_yaml"].as_str().unwrap()).unwrap();
    let bytes: u64 = regex::Regex::new(r"(?m)^stdout:\n  bytes: (\d+)")
        .unwrap()
        .captures(&report)
        .unwrap()[1]
        .parse()
        .unwrap();
    assert!(bytes > 1_000_000);
    assert_eq!(std::fs::metadata(stdout).unwrap().len(), bytes);
}

fn lines_come_as_cases_finish_through_a_pipe() {
    let mut child = cgrepro(&root())
        .args(["run", "crashers", "-j", "1", "--allow-ignored"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // The first case's line is here while the others still run.
    assert!(
        ["ok ", "FAILED ", "ignored "]
            .iter()
            .any(|p| first.starts_with(p))
            && first.contains(" crashers/"),
        "{first}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run was over before its first line"
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // Every case has its line (whatever its verdict: this is about when lines come).
    let status = child.wait().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{rest}{err}");
    let cases = 1 + rest
        .lines()
        .filter(|l| {
            ["ok ", "FAILED ", "ignored "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .count();
    let listed = String::from_utf8_lossy(
        &cgrepro(&root())
            .args(["list", "crashers"])
            .output()
            .unwrap()
            .stdout,
    )
    .lines()
    .filter(|l| l.starts_with("crashers/"))
    .count();
    assert_eq!(cases, listed, "{first}{rest}");
    // No progress bar when stderr is not a terminal.
    assert!(!err.contains("ETA"), "{err}");
}

fn a_closed_stdout_ends_quietly() {
    // `cgrepro list | head -1` and `cgrepro run crashers | head -1`.
    let runs = tempfile::tempdir().unwrap();
    let art = runs.path().to_str().unwrap();
    for args in [
        &["list"][..],
        &["run", "crashers", "-j", "1", "--artifacts", art][..],
    ] {
        let mut child = cgrepro(&root())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        drop(out);
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
        // `list` may have written everything into the pipe before it closed.
        if args[0] == "run" {
            assert_eq!(status.code(), Some(141), "{err}");
            // It stopped rather than running the rest of the crashers.
            let jsonl = std::fs::read_to_string(runs.path().join("latest/cases.jsonl")).unwrap();
            let not_started = jsonl.matches("\"status\":\"not-started\"").count();
            assert!(not_started >= 5, "{jsonl}");
        } else {
            assert!(matches!(status.code(), Some(0 | 141)), "{err}");
        }
    }
}

fn progress_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("`script` (util-linux) is needed to give the run a terminal");
    }
    let exe = env!("CARGO_BIN_EXE_cgrepro");
    let o = Command::new("script")
        .args(["-qefc"])
        .arg(format!("{exe} run crashers/hang -j 1"))
        .arg("/dev/null")
        .current_dir(root())
        .env("CGREPRO_SKIP_BUILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    // The bar: done/total, elapsed and ETA, the running case; then the case's line.
    assert!(text.contains("0/1 done"), "{text}");
    assert!(text.contains("ETA"), "{text}");
    assert!(text.contains("running: crashers/"), "{text}");
    assert!(text.contains("ok       crashers/hang"), "{text}");
}

fn an_interrupted_run_lists_killed_and_never_started_cases_apart() {
    let mut child = cgrepro(&root())
        .args(["run", "crashers", "-j", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // The second case is running now.
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(!rest.contains("FAILED"), "{rest}");
    assert!(rest.contains("not started ("), "{rest}");
    assert!(rest.contains(" 0 failed"), "{rest}");
}

fn cases_that_cannot_run_fail_the_run_unless_allowed() {
    // Without the real Kata shim (an empty shim directory), its cases cannot run. The
    // filter is a substring: take a case whose name is no other case's prefix.
    let no_shims = tempfile::tempdir().unwrap();
    let cgrepro = |root: &Path| {
        let mut c = cgrepro(root);
        c.env("CGREPRO_KATA_SHIM_DIR", no_shims.path());
        c
    };
    let listing = String::from_utf8_lossy(&cgrepro(&root()).arg("list").output().unwrap().stdout)
        .into_owned();
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split("  (ignored").next().unwrap())
        .collect();
    let cannot: Vec<String> = listing
        .lines()
        .filter(|l| l.contains("(ignored: "))
        .map(|l| l.split("  (ignored").next().unwrap().to_owned())
        .filter(|n| names.iter().filter(|m| m.contains(n.as_str())).count() == 1)
        .collect();
    let one = cannot
        .first()
        .expect("without the Kata shims some case cannot run, and is listed ignored");
    let o = cgrepro(&root()).args(["run", one]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot run on this machine"), "{err}");
    let o = cgrepro(&root())
        .args(["run", one, "--allow-ignored"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 passed, 0 failed, 1 ignored"));
}

/// A headless Chromium, if this machine has one.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Chromium: CI has it (ci/setup.sh installs it).
fn need_chromium() -> Need {
    match chromium() {
        Some(_) => Ok(()),
        None => Err(Unmet::ci_provides(
            "no chromium here (ci/setup.sh installs it): the page cannot be checked in a browser",
        )),
    }
}

/// `cgrepro report --html` of a run: the page and the repository it was made in.
fn html_page_of_a_run() -> (tempfile::TempDir, PathBuf) {
    let repo = repo_with_a_failing_case();
    let art = repo.path().join("runs");
    let o = cgrepro(repo.path())
        .args(["run", "--artifacts"])
        .arg(&art)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    // `cgrepro report` rebuilds the page from the run's cases.jsonl.
    let page = repo.path().join("page.html");
    let o = cgrepro(repo.path())
        .args(["report"])
        .arg(art.join("latest"))
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (repo, page)
}

/// The HTML page stands alone: nothing fetched, nothing run.
fn the_html_page_is_self_contained() {
    let (_repo, page) = html_page_of_a_run();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
}

fn the_html_page_renders_in_a_real_browser() {
    let (repo, page) = html_page_of_a_run();
    let browser = chromium().expect("checked by need_chromium");
    let headless = |extra: &[&str]| {
        let o = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg("--window-size=1000,800")
            .arg(format!(
                "--user-data-dir={}",
                repo.path().join("chromium-profile").display()
            ))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // The browser's DOM: the grid's cells, coloured by class, the failed one framed, the
    // signature and what failed on hover, a link to the report.
    let dom = headless(&["--dump-dom"]);
    assert!(
        dom.contains(
            "<td class=\"cell crash failed\" title=\"failed: SIGABRT\nexpected signal SIGSEGV"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<td class=\"cell error\" title=\"passed: exit 3"),
        "{dom}"
    );
    assert!(dom.contains("<details id=\"c0\">"), "{dom}");
    // The screenshot, for people (CI keeps it): target/cgrepro/page.png.
    let shot = root().join("target/cgrepro/page.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    headless(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// A non-root user (nobody, through `setpriv`) runs cases for real in user namespaces: on
/// the plain tree and on the cgroupfs model (each case's init opens /dev/fuse and mounts
/// it), with the syscall layer answering as the simulated kernel (uname, the statfs magic
/// of a v1 hierarchy on the model) and injecting a fault. Where /dev/fuse is not open to
/// every user, the model's cases fail the run loudly, naming it.
fn a_non_root_user_runs_cases_or_fails_loudly() {
    use std::os::unix::fs::PermissionsExt;
    use support::nobody::cgrepro_as_nobody;
    let repo = repo_with_a_failing_case();
    let p = repo.path();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        p.join("scenarios/demo/abort.toml"),
        "[scenario]\ntitle = \"abort on the tree\"\n\n[host]\ncgroupfs = \"tree\"\n\n\
         [target]\ndriver = \"crasher-abort\"\n\n[[expect]]\nclass = \"crash\"\nsignal = \"SIGABRT\"\n",
    )
    .unwrap();
    std::fs::remove_file(p.join("scenarios/demo/exit3.toml")).unwrap();
    std::fs::write(
        p.join("scenarios/demo/model.toml"),
        r#"[scenario]
title = "the model and the syscall layer, unprivileged"

[host]
preset = "amazonlinux-2"

[target]
command = ["sh", "-c", """
uname -r
stat -f -c %t /sys/fs/cgroup/memory
mkdir /sys/fs/cgroup/memory/x
echo $$ > /sys/fs/cgroup/memory/x/cgroup.procs
cat /sys/fs/cgroup/memory/x/cgroup.procs
cat /etc/os-release
"""]

[[fault]]
op    = "open"
path  = "/etc/os-release"
errno = "EIO"

[[expect]]
class = "error"
"#,
    )
    .unwrap();
    let runs = p.join("runs");
    std::fs::create_dir(&runs).unwrap();
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o777)).unwrap();
    let runs_arg = runs.to_str().unwrap();
    let run = |fuse_mode: u32, args: &[&str]| {
        let args = [args, &["--artifacts", runs_arg]].concat();
        cgrepro_as_nobody(p, fuse_mode, &args, &[])
    };
    // /dev/fuse open to every user (as distributions ship it): both cases run for real.
    let r = run(0o666, &["run"]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, Some(0), "{all}");
    assert!(r.stdout.contains("ok       demo/abort  SIGABRT"), "{all}");
    assert!(r.stdout.contains("2 passed, 0 failed, 0 ignored"), "{all}");
    let report =
        std::fs::read_to_string(runs.join("latest/demo/model/report.yaml")).expect("the report");
    for line in [
        // The model served the case, and its op log saw the target as pid 2 (as under root).
        "cgroupfs: model",
        "- mkdir memory/x -> ok",
        "- write memory/x/cgroup.procs \"2\\n\" -> ok",
        // The syscall layer: the simulated kernel's release and a v1 hierarchy's statfs
        // magic (CGROUP_SUPER_MAGIC, not FUSE's), and the injected fault.
        "5.10.230-223.885.amzn2.x86_64",
        "27e0eb",
        "cat: /etc/os-release: Input/output error",
    ] {
        assert!(report.contains(line), "{line:?} not in\n{report}");
    }
    // /dev/fuse for root alone (mode 0600, as on this machine's VM image): the model case
    // cannot run; loud, with the reason, and a failing exit status.
    let r = run(0o600, &["run"]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, Some(3), "{all}");
    assert!(r.stdout.contains("1 passed, 0 failed, 1 ignored"), "{all}");
    assert!(
        r.stderr
            .contains("error: 1 of 2 selected case(s) cannot run on this machine"),
        "{all}"
    );
    assert!(r.stderr.contains("/dev/fuse is mode 0600 here"), "{all}");
    assert_eq!(run(0o600, &["run", "--allow-ignored"]).code, Some(0));
}
