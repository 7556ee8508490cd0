//! `/proc/<pid>/cgroup` follows the cgroupfs model, as on a real kernel: a process that
//! moves itself (`echo $$ > .../x/cgroup.procs`) then reads its own view sees `/x` in that
//! hierarchy's line, and so do the children it forks afterwards.
//!
//! * the rendering, on the model alone (a fake process tree);
//! * the scenarios `cgroupfs/proc-cgroup-*` run as a user runs them:
//!   their stdout on the model is, line for line, what Debian's 6.1 and 6.12 printed in the
//!   real-kernel lane (recorded in `fixtures/kernels/proc-cgroup/`);
//! * where QEMU and the 6.1 kernel are cached (`bash ci/kernel-lane.sh 6.1`), the same
//!   script boots on the real kernel again (v1) and must still print the recorded output.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use cgrepro::host::{CgroupMode, HostData, HostSpec};
use cgrepro::sandbox::cgroupfs::corpus::on_model;
use cgrepro::sandbox::cgroupfs::{Model, Pids};

mod support;

use support::{available_only, lane, need_sandbox, root, Suite};

const SCENARIO: &str = "scenarios/cgroupfs/proc-cgroup-follows-moves.toml";

fn main() {
    let mut suite = Suite::new();
    suite
        .test(
            "a_moved_process_and_its_later_children_see_the_new_group",
            a_moved_process_and_its_later_children_see_the_new_group,
        )
        .test(
            "lines_of_unknown_hierarchies_and_unmoved_processes_stay_static",
            lines_of_unknown_hierarchies_and_unmoved_processes_stay_static,
        )
        .test(
            "a_thread_moved_alone_shows_its_group_in_its_own_view_only",
            a_thread_moved_alone_shows_its_group_in_its_own_view_only,
        )
        .test_needing(
            "the_scenarios_print_what_the_real_kernels_printed",
            need_sandbox(),
            the_scenarios_print_what_the_real_kernels_printed,
        )
        .test_needing(
            "a_real_6_1_kernel_booted_now_prints_the_recorded_output",
            available_only(lane("6.1")),
            a_real_6_1_kernel_booted_now_prints_the_recorded_output,
        );
    suite.run()
}

/// A process tree the test grows: pid → (tgid, ppid).
#[derive(Clone, Default)]
struct Tree(Arc<Mutex<HashMap<u32, (u32, u32)>>>);

impl Tree {
    fn spawn(&self, pid: u32, tgid: u32, ppid: u32) {
        self.0.lock().unwrap().insert(pid, (tgid, ppid));
    }
    fn get(&self, pid: u32) -> Option<(u32, u32)> {
        self.0.lock().unwrap().get(&pid).copied()
    }
}

impl Pids for Tree {
    fn exists(&self, pid: u32) -> bool {
        self.get(pid).is_some()
    }
    fn tgid(&self, tid: u32) -> Option<u32> {
        self.get(tid).map(|t| t.0)
    }
    fn ppid(&self, pid: u32) -> Option<u32> {
        self.get(pid).map(|t| t.1)
    }
    fn all(&self) -> Vec<u32> {
        let t = self.0.lock().unwrap();
        t.iter()
            .filter(|(p, v)| **p == v.0)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// The case: init 1, a shell 10 (child of 1) with a second thread 11; 20 another child of
/// init.
fn tree() -> Tree {
    let t = Tree::default();
    t.spawn(1, 1, 0);
    t.spawn(10, 10, 1);
    t.spawn(11, 10, 1);
    t.spawn(20, 20, 1);
    t
}

fn host_model(mode: CgroupMode, systemd: u32) -> (Model, String) {
    host_model_with(mode, systemd, tree())
}

fn host_model_with(mode: CgroupMode, systemd: u32, tree: Tree) -> (Model, String) {
    let data = HostData::load(&root().join("fixtures")).expect("host data");
    let spec = HostSpec {
        kernel: Some("6.1.0-57-amd64".into()),
        cgroup: Some(mode),
        systemd: Some(systemd),
        ..HostSpec::default()
    };
    let host = data.resolve(&spec).expect("host");
    let view = host.plan(&data, &[]).expect("plan").proc["/proc/self/cgroup"].clone();
    let m = Model::new(&host, &data, &[], Vec::new(), Box::new(tree)).expect("model");
    (m, view)
}

/// The view with `line`'s hierarchy (its `id:controllers:` prefix) at `path`.
fn with_path(view: &str, prefix: &str, path: &str) -> String {
    view.lines()
        .map(|l| match l.strip_prefix(prefix) {
            Some(_) => format!("{prefix}{path}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

fn a_moved_process_and_its_later_children_see_the_new_group() {
    // Hybrid with systemd: a named hierarchy (name=systemd) and cgroup2 at unified/.
    let procs = tree();
    // 12: the shell's child forked before the move; 13: its grandchild.
    procs.spawn(12, 12, 10);
    procs.spawn(13, 13, 12);
    let (mut m, view) = host_model_with(CgroupMode::Hybrid, 252, procs.clone());
    let mem = view
        .lines()
        .find(|l| l.ends_with(":memory:/"))
        .expect("a memory line");
    let mem = &mem[..mem.len() - 1];
    assert_eq!(on_model(&mut m, "mkdir", "memory/x", None, 10), "ok");
    assert_eq!(on_model(&mut m, "mkdir", "memory/x/y", None, 10), "ok");
    assert_eq!(
        on_model(&mut m, "write", "memory/x/y/cgroup.procs", Some("0"), 10),
        "ok"
    );
    let moved = with_path(&view, mem, "/x/y");
    assert_ne!(moved, view);
    // A child forked after the move (14) and its child (15) start in the new group.
    procs.spawn(14, 14, 10);
    procs.spawn(15, 15, 14);
    // The process, its other thread, and its later children.
    for pid in [10, 11, 14, 15] {
        assert_eq!(m.proc_cgroup(pid, &view), moved, "pid {pid}");
    }
    // Children forked before it moved stay where they were forked.
    assert_eq!(m.proc_cgroup(12, &view), view);
    assert_eq!(m.proc_cgroup(13, &view), view);
    // Another process of the case, and init: untouched.
    assert_eq!(m.proc_cgroup(20, &view), view);
    assert_eq!(m.proc_cgroup(1, &view), view);
    // cgroup2 (unified) too; then the move back to the root reads `/`.
    assert_eq!(on_model(&mut m, "mkdir", "unified/u", None, 10), "ok");
    assert_eq!(
        on_model(&mut m, "write", "unified/u/cgroup.procs", Some("10"), 10),
        "ok"
    );
    let both = with_path(&moved, "0::", "/u");
    assert_eq!(m.proc_cgroup(10, &view), both);
    // 14, forked between the two moves, is in the first one's group only; 12, forked
    // before either, in neither; 16, forked after both, in both.
    assert_eq!(m.proc_cgroup(14, &view), moved);
    assert_eq!(m.proc_cgroup(12, &view), view);
    procs.spawn(16, 16, 10);
    assert_eq!(m.proc_cgroup(16, &view), both);
    // The shell moves back to the memory root: it reads `/` there; its children stay.
    assert_eq!(
        on_model(&mut m, "write", "memory/cgroup.procs", Some("10"), 10),
        "ok"
    );
    assert_eq!(m.proc_cgroup(10, &view), with_path(&view, "0::", "/u"));
    assert_eq!(m.proc_cgroup(14, &view), moved);
    assert_eq!(m.proc_cgroup(16, &view), both);
    // A refused move changes nothing: ESRCH for a pid that is not there.
    assert_eq!(
        on_model(&mut m, "write", "memory/x/cgroup.procs", Some("999"), 10),
        "ESRCH"
    );
    assert_eq!(m.proc_cgroup(10, &view), with_path(&view, "0::", "/u"));
}

fn lines_of_unknown_hierarchies_and_unmoved_processes_stay_static() {
    let (mut m, view) = host_model(CgroupMode::V2, 0);
    assert_eq!(view, "0::/\n");
    assert_eq!(on_model(&mut m, "mkdir", "pod", None, 10), "ok");
    assert_eq!(
        on_model(&mut m, "write", "pod/cgroup.procs", Some("10"), 10),
        "ok"
    );
    assert_eq!(m.proc_cgroup(10, &view), "0::/pod\n");
    // A content fault may have made the static view anything: lines that name no
    // hierarchy of the model, or are not `id:controllers:path`, are kept as they are.
    let odd = "7:cpu:/elsewhere\ngarbage\n0::/\nno newline at the end";
    assert_eq!(
        m.proc_cgroup(10, odd),
        "7:cpu:/elsewhere\ngarbage\n0::/pod\nno newline at the end"
    );
    assert_eq!(m.proc_cgroup(20, odd), odd);
}

/// A thread moved alone into a threaded group (`cgroup.threads`): its own view
/// (`thread-self`, `task/<tid>`) names the threaded group, its process's (`self`, `<pid>`,
/// the leader's) the domain.
fn a_thread_moved_alone_shows_its_group_in_its_own_view_only() {
    let procs = tree();
    let (mut m, view) = host_model_with(CgroupMode::V2, 0, procs.clone());
    for (op, path, value) in [
        ("mkdir", "d", None),
        ("write", "d/cgroup.procs", Some("10")),
        ("mkdir", "d/t", None),
        ("write", "d/t/cgroup.type", Some("threaded")),
        ("write", "d/t/cgroup.threads", Some("11")),
    ] {
        assert_eq!(on_model(&mut m, op, path, value, 10), "ok", "{op} {path}");
    }
    procs.spawn(12, 12, 10);
    assert_eq!(m.proc_cgroup(11, &view), "0::/d/t\n");
    assert_eq!(m.proc_cgroup(10, &view), "0::/d\n");
    assert_eq!(m.proc_cgroup(12, &view), "0::/d\n");
}

/// The scenarios' cells (v1, v2, hybrid on the lane's 6.1 and 6.12; a child forked before
/// the move on 6.1) print exactly what the real kernels printed.
fn the_scenarios_print_what_the_real_kernels_printed() {
    let root = root();
    let work = tempfile::tempdir().expect("artifacts dir");
    let o = Command::new(env!("CARGO_BIN_EXE_cgrepro"))
        .arg("run")
        .arg("--root")
        .arg(&root)
        .arg("--artifacts")
        .arg(work.path())
        .arg("-j1")
        .arg("cgroupfs/proc-cgroup-")
        .output()
        .expect("cgrepro run");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (series, scenario, modes, suffix) in [
        (
            "6.1",
            "proc-cgroup-follows-moves",
            &["v1", "v2", "hybrid"][..],
            "",
        ),
        (
            "6.12",
            "proc-cgroup-follows-moves-6.12",
            &["v1", "v2", "hybrid"][..],
            "",
        ),
        (
            "6.1",
            "proc-cgroup-child-forked-before-move",
            &["v1", "v2"][..],
            "-forked-before",
        ),
    ] {
        for mode in modes {
            let kernel = recorded(&root, series, &format!("{mode}{suffix}"));
            let case = format!("{scenario}@host.cgroup={mode}");
            let out = find(work.path(), &case).unwrap_or_else(|| {
                panic!(
                    "no artifacts of {case} in {}: {said}",
                    work.path().display()
                )
            });
            let model = std::fs::read_to_string(out.join("stdout.log")).expect("stdout.log");
            assert_eq!(
                model, kernel,
                "{series} {mode}: the model (left) and the kernel (right) differ"
            );
        }
    }
}

fn recorded(root: &Path, series: &str, mode: &str) -> String {
    let f = root.join(format!("fixtures/kernels/proc-cgroup/{series}-{mode}.txt"));
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
}

/// The directory named `name` below `dir`.
fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        }
    }
    None
}

/// The scenario's script, as a file the lane packs.
fn script(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join(SCENARIO)).expect("scenario");
    let t: toml::Table = text.parse().expect("scenario TOML");
    let argv = t["target"]["command"].as_array().expect("command");
    let body = argv[2].as_str().expect("sh -c SCRIPT");
    format!("#!/bin/sh\n{}", body.trim_start_matches('\n'))
}

fn a_real_6_1_kernel_booted_now_prints_the_recorded_output() {
    let root = root();
    let dir = tempfile::tempdir().expect("payload dir");
    let run = dir.path().join("payload");
    std::fs::create_dir(&run).expect("mkdir");
    let prog = run.join("run");
    std::fs::write(&prog, script(&root)).expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let work = dir.path().join("work");
    let o = Command::new(env!("CARGO_BIN_EXE_cgrepro"))
        .args(["real-kernel", "--kernel", "6.1", "--mode", "v1", "--root"])
        .arg(&root)
        .arg("--command")
        .arg(&prog)
        .arg("--work")
        .arg(&work)
        .output()
        .expect("cgrepro real-kernel");
    // `--command` is made for libtest runners: a script with no verdicts exits 1 although
    // it ran; what counts is the guest's exit status in the summary line.
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.lines()
            .any(|l| l.starts_with("6.1 v1 (") && l.contains(": exit 0,")),
        "the script did not run to exit 0 in the guest:\n{said}"
    );
    let out = std::fs::read_to_string(work.join("6.1-v1-command/stdout.txt"))
        .unwrap_or_else(|e| panic!("the guest's stdout: {e}\n{said}"));
    assert_eq!(
        out,
        recorded(&root, "6.1", "v1"),
        "6.1 v1 now (left) and as recorded (right)"
    );
}
