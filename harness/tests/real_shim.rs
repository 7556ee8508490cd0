//! The real Kata shim, end to end: what a run of it leaves behind, and how cgrepro speaks
//! to it.
//!
//! The story: a developer replays kata#10756 against the real `containerd-shim-kata-v2`
//! (3.13.0, from the shim directory `ci/kata-shim.sh` fills). cgrepro negotiates task API
//! v2 from the shim's plain-address reply (as containerd 2.x does), the crash cell dies of
//! the real Go nil dereference, and the cells that fail cleanly keep the shim's own error.
//! Afterwards no shim process is alive, the machine's mount table is as it was, and the
//! machine's `/run` holds nothing the shim made (`/run/vc`, `/run/kata-containers`,
//! `/run/containerd/s/...`): the shim's state lived in the case's private `/run`.
//!
//! Without the shim binary (any machine where `ci/kata-shim.sh` has not run) or without
//! root, each test is reported ignored, with the reason.

use std::collections::BTreeSet;
use std::path::Path;

use cgrepro::engine::Engine;
use cgrepro::outcome::Class;
use cgrepro::scenario::Case;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

const RELEASE: &str = "3.13.0";

mod support;

use support::{adopt_orphans, ours, root};

fn unsupported(engine: &Engine) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("checks the machine's own /run and mount table: needs root".into());
    }
    let bin = cgrepro::subject::shim::release_binary(&engine.drivers.kata_shim_dir, RELEASE);
    (!bin.is_file()).then(|| {
        format!(
            "needs the real Kata shim {RELEASE} at {} (build it with ci/kata-shim.sh)",
            bin.display()
        )
    })
}

/// This run's Kata shim processes: descendants of this test process (which adopts
/// orphans, `support::adopt_orphans`); a concurrent run's shims are not counted.
fn shim_processes() -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            if exe
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("containerd-shim-kata-v2"))
                && ours(pid)
            {
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

/// Everything under the machine's /run to depth 3, and its mount points.
fn machine_state() -> BTreeSet<String> {
    fn walk(dir: &Path, depth: usize, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            // Other sessions come and go in /run/user; cgrepro's own are in /dev/shm.
            out.insert(format!("file {}", p.display()));
            if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, depth - 1, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/run"), 3, &mut out);
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = l.split(' ').collect();
        out.insert(format!("mount {}", f.get(4).unwrap_or(&"")));
    }
    out
}

fn cell<'a>(cases: &'a [Case], want: &[(&str, &str)]) -> &'a Case {
    cases
        .iter()
        .find(|c| {
            want.iter().all(|(a, v)| {
                c.cell.iter().any(|(ca, cv)| {
                    ca == a
                        && globset::Glob::new(v)
                            .unwrap()
                            .compile_matcher()
                            .is_match(cv)
                })
            })
        })
        .expect("cell exists")
}

fn runs_leave_nothing_behind() -> Result<(), Failed> {
    let root = root();
    let engine = Engine::new(&root)?;
    engine.build_drivers()?;
    let scenario = engine
        .load(&root.join("scenarios/kata/10756-sandbox-cgroup-only.toml"))
        .map_err(|e| e.to_string())?;
    let before = machine_state();
    let crash = cell(
        &scenario.cases,
        &[
            ("host.preset", "amazonlinux-2"),
            ("runtime.sandbox_cgroup_only", "true"),
            ("pod.cgroups_path", "kubepods-*"),
        ],
    );
    let clean = cell(
        &scenario.cases,
        &[
            ("host.preset", "debian-12"),
            ("runtime.sandbox_cgroup_only", "false"),
            ("pod.cgroups_path", "/kubepods/*"),
        ],
    );
    for (case, class) in [(crash, Class::Crash), (clean, Class::Error)] {
        let report = engine.run(case, false);
        if report.outcome.class() != class {
            return Err(format!("{}: expected {class}\n{}", case.name, report.snapshot()).into());
        }
        let task_api = report
            .shim
            .as_ref()
            .and_then(|s| s.task_api.clone())
            .unwrap_or_default();
        if !task_api.contains("containerd.task.v2.Task") {
            return Err(format!(
                "Kata prints a plain address: task API v2 expected, got `{task_api}`"
            )
            .into());
        }
    }
    let left = shim_processes();
    if !left.is_empty() {
        return Err(format!("shim processes survived: {left:?}").into());
    }
    let after = machine_state();
    let new: Vec<&String> = after.difference(&before).collect();
    if !new.is_empty() {
        return Err(format!("the machine's /run or mount table changed: {new:?}").into());
    }
    Ok(())
}

fn main() {
    adopt_orphans();
    let args = Arguments::from_args();
    let engine = Engine::new(&root()).expect("repository");
    // Known at list time, so libtest and nextest both show it ignored; the reason is
    // printed, and given again if the test is forced with --include-ignored.
    let why = unsupported(&engine);
    if let Some(why) = &why {
        eprintln!("real_shim: ignored: {why}");
    }
    let ignored = why.is_some();
    let trial = Trial::ignorable_test("a_real_shim_run_leaves_nothing_behind", move || {
        if let Some(why) = &why {
            return Ok(Completion::ignored_with(why));
        }
        runs_leave_nothing_behind().map(|()| Completion::Completed)
    })
    .with_ignored_flag(ignored);
    libtest_mimic::run(&args, vec![trial]).exit();
}
