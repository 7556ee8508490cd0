//! The same cases as root and as a non-root user.
//!
//! The story: a CI runner that is not root (here `nobody`, with /dev/fuse open to every
//! user as distributions ship it) runs the scenario cases and gets root's outcomes and
//! snapshots, the cgroupfs model's included. Where the user namespace it runs in truly
//! differs, the difference is named here, line by line, and nothing else may differ.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod support;

use support::nobody::cgrepro_as_nobody;
use support::{need_root, root, Suite};

fn main() {
    let mut suite = Suite::new();
    suite.test_needing(
        "nobody_gets_roots_outcomes_and_snapshots",
        need_root("runs the cases as root and as nobody"),
        nobody_gets_roots_outcomes_and_snapshots,
    );
    suite.run()
}

/// A representative set: the model's own cases, the syscall layer's, real libraries on
/// the model (cgroups-rs, youki), the simulated systemd, the crashers (the hostile one
/// included) and the real Kata shims (where built).
const FILTERS: [&str; 7] = [
    "cgroupfs/",
    "syscall/",
    "cgroups-rs/",
    "youki/",
    "systemd/",
    "crashers/",
    "kata/",
];

/// Report lines that differ as nobody, and why: (case prefix, root's line, nobody's line).
const KNOWN: [(&str, &str, &str); 4] = [
    // In the userns strategy init and the target are the same user on the machine (a
    // non-root user has one uid), so kill(2) passes the permission check; pid 1 of a PID
    // namespace ignores signals from inside it all the same, and the case goes on.
    (
        "crashers/hostile",
        "attempt: kill(getppid(), SIGKILL) -> EPERM",
        "attempt: kill(getppid(), SIGKILL) -> ok",
    ),
    (
        "crashers/hostile",
        "attempt: kill(1, SIGKILL) -> EPERM",
        "attempt: kill(1, SIGKILL) -> ok",
    ),
    // The directories init makes for a `[host] writable` path belong to the sandbox's
    // root (init is that user), not to the machine's root: the target may touch them.
    // They are in the case's copy-on-write layer either way; the machine's /var/lib is
    // never written (containment.rs checks it).
    (
        "crashers/writable",
        "/var/lib: not writable",
        "/var/lib: WRITABLE",
    ),
    // The /dev/kvm stand-in is a 10:232 node made with mknod, which needs root; without
    // it the client binds /dev/null (1:3), and the shim allows that device.
    (
        "",
        "devices.allow \"c 10:232 rwm\" -> ok",
        "devices.allow \"c 1:3 rwm\" -> ok",
    ),
];

/// One JSON record per case, by case name.
fn records(stdout: &str) -> BTreeMap<String, Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|r| (r["case"].as_str().unwrap().to_string(), r))
        .collect()
}

/// Lines of two reports that differ (the reports must have as many lines), the stdout
/// and stderr byte counts left out (they follow the lines).
fn differing(a: &str, b: &str) -> Result<Vec<(String, String)>, String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if a.len() != b.len() {
        return Err(format!("{} lines as root, {} as nobody", a.len(), b.len()));
    }
    Ok(a.iter()
        .zip(&b)
        .filter(|(x, y)| x != y && !x.trim_start().starts_with("bytes: "))
        .map(|(x, y)| (x.trim().to_string(), y.trim().to_string()))
        .collect())
}

fn nobody_gets_roots_outcomes_and_snapshots() {
    use std::os::unix::fs::PermissionsExt;
    let repo = root();
    let runs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runs.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Root's shims, for both runs (nobody's own cache has none).
    let shims = ("CGREPRO_KATA_SHIM_DIR", "/var/cache/cgrepro/kata-shims");
    let mut compared = 0;
    let mut model_cases = 0;
    let mut known_seen = Vec::new();
    for filter in FILTERS {
        let dir = |who: &str| runs.path().join(who).join(filter.trim_end_matches('/'));
        let root_dir = dir("root");
        let args = |artifacts: &Path| {
            let a = artifacts.to_str().unwrap().to_string();
            [
                "run",
                filter,
                "--format",
                "json",
                "--allow-ignored",
                "--artifacts",
            ]
            .map(String::from)
            .into_iter()
            .chain([a])
            .collect::<Vec<String>>()
        };
        let as_root = Command::new(env!("CARGO_BIN_EXE_cgrepro"))
            .args(args(&root_dir))
            .current_dir(&repo)
            .env("CGREPRO_SKIP_BUILD", "1")
            .env_remove("CGREPRO_STRATEGY")
            .env(shims.0, shims.1)
            .output()
            .unwrap();
        let nobody_dir = dir("nobody");
        std::fs::create_dir_all(&nobody_dir).unwrap();
        std::fs::set_permissions(&nobody_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let nobody_args = args(&nobody_dir);
        let as_nobody = cgrepro_as_nobody(
            &repo,
            0o666,
            &nobody_args.iter().map(String::as_str).collect::<Vec<_>>(),
            &[shims],
        );
        let root_records = records(&String::from_utf8_lossy(&as_root.stdout));
        let nobody_records = records(&as_nobody.stdout);
        assert!(!root_records.is_empty(), "{filter}: nothing ran as root");
        assert_eq!(
            root_records.keys().collect::<Vec<_>>(),
            nobody_records.keys().collect::<Vec<_>>(),
            "{filter}: other cases as nobody\n{}",
            as_nobody.stderr
        );
        for (case, r) in &root_records {
            let n = &nobody_records[case];
            if r["status"] == "ignored" {
                assert_eq!(n["status"], "ignored", "{case}");
                continue;
            }
            assert_eq!(r["status"], "passed", "{case} as root: {r}");
            compared += 1;
            let read = |rec: &Value| {
                let p = rec["artifacts"]["report_yaml"].as_str().unwrap();
                std::fs::read_to_string(Path::new(p)).unwrap()
            };
            if read(n).contains("\ncgroupfs: model\n") {
                model_cases += 1;
            }
            if n["status"] == "passed" {
                // Both match the committed snapshot.
                continue;
            }
            let lines = differing(&read(r), &read(n))
                .unwrap_or_else(|e| panic!("{case}: {e}\n{}", read(n)));
            for (a, b) in lines {
                let known = KNOWN
                    .iter()
                    .find(|(c, x, y)| case.starts_with(c) && a.ends_with(x) && b.ends_with(y));
                match known {
                    Some(k) => known_seen.push(k.1),
                    None => panic!("{case} differs as nobody:\n  root:   {a}\n  nobody: {b}"),
                }
            }
        }
    }
    assert!(compared >= 100, "only {compared} cases compared");
    assert!(model_cases >= 50, "only {model_cases} cases on the model");
    // The hostile case's kill attempts and the writable case's touch did differ: the
    // differences above are real, not a list that excuses nothing.
    for k in &KNOWN[..3] {
        assert!(known_seen.contains(&k.1), "{:?} never seen", k.1);
    }
    eprintln!("{compared} cases compared as root and as nobody, {model_cases} on the model");
}
