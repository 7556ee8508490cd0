//! Kernel semantics the cgroups-rs 0.3.4 suite showed missing from the model, checked on the
//! model alone (no sandbox): `cgroup.kill` kills, a threaded group's plain sibling is
//! `domain invalid`, and `pids.max` refuses a fork.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cgrepro::host::{CgroupMode, HostData, HostSpec};
use cgrepro::sandbox::cgroupfs::corpus::on_model;
use cgrepro::sandbox::cgroupfs::{Model, Pids};

/// Pids 1..1000 exist; kills are recorded.
struct Recorded(Arc<Mutex<Vec<u32>>>);
impl Pids for Recorded {
    fn exists(&self, pid: u32) -> bool {
        (1..1000).contains(&pid)
    }
    fn kill(&self, pid: u32) {
        self.0.lock().unwrap().push(pid);
    }
}

fn model(release: &str, mode: CgroupMode) -> (Model, Arc<Mutex<Vec<u32>>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = HostData::load(&root.join("fixtures")).expect("host data");
    let host = data
        .resolve(&HostSpec {
            kernel: Some(release.into()),
            cgroup: Some(mode),
            ..HostSpec::default()
        })
        .expect("host");
    let killed = Arc::new(Mutex::new(Vec::new()));
    let m = Model::new(
        &host,
        &data,
        &[],
        Vec::new(),
        Box::new(Recorded(Arc::clone(&killed))),
    )
    .expect("model");
    (m, killed)
}

fn op(m: &mut Model, op: &str, path: &str, value: Option<&str>) -> String {
    on_model(m, op, path, value, 1)
}

#[test]
fn writing_cgroup_kill_kills_every_task_below() {
    let (mut m, killed) = model("6.1.0-28-amd64", CgroupMode::V2);
    assert_eq!(op(&mut m, "mkdir", "pod", None), "ok");
    assert_eq!(op(&mut m, "mkdir", "pod/c", None), "ok");
    assert_eq!(op(&mut m, "write", "pod/c/cgroup.procs", Some("42")), "ok");
    assert_eq!(op(&mut m, "write", "cgroup.procs", Some("7")), "ok");
    assert_eq!(op(&mut m, "write", "pod/cgroup.kill", Some("1")), "ok");
    assert_eq!(
        *killed.lock().unwrap(),
        vec![42],
        "42 is below pod, 7 is not"
    );
    // What real 6.1 and 6.12 kernels answer (lane fixtures 6.1-v2-014, 6.12-v2-030):
    // cgroup_kill_write parses an int, anything but 1 is ERANGE, a non-number EINVAL.
    assert_eq!(op(&mut m, "write", "pod/cgroup.kill", Some("2")), "ERANGE");
    assert_eq!(op(&mut m, "write", "pod/cgroup.kill", Some("x")), "EINVAL");
}

#[test]
fn a_plain_sibling_of_a_threaded_group_is_domain_invalid() {
    let (mut m, _) = model("6.1.0-28-amd64", CgroupMode::V2);
    for d in ["x", "x/t1", "x/t2"] {
        assert_eq!(op(&mut m, "mkdir", d, None), "ok");
    }
    assert_eq!(
        op(&mut m, "write", "x/t1/cgroup.type", Some("threaded")),
        "ok"
    );
    assert_eq!(
        op(&mut m, "read", "x/t1/cgroup.type", None),
        "ok threaded\n"
    );
    assert_eq!(
        op(&mut m, "read", "x/t2/cgroup.type", None),
        "ok domain invalid\n"
    );
    assert_eq!(
        op(&mut m, "read", "x/cgroup.type", None),
        "ok domain threaded\n"
    );
    // cgroup_migrate_vet_dst: no task into an invalid domain.
    assert_eq!(
        op(&mut m, "write", "x/t2/cgroup.procs", Some("5")),
        "EOPNOTSUPP"
    );
    assert_eq!(
        op(&mut m, "write", "x/t2/cgroup.type", Some("threaded")),
        "ok"
    );
    assert_eq!(
        op(&mut m, "read", "x/t2/cgroup.type", None),
        "ok threaded\n"
    );
}

#[test]
fn pids_max_refuses_the_fork_that_would_exceed_it_and_counts_it() {
    for (release, mode, dir) in [
        ("6.1.0-28-amd64", CgroupMode::V2, ""),
        ("6.1.0-28-amd64", CgroupMode::V1, "pids/"),
    ] {
        let (mut m, _) = model(release, mode);
        if mode == CgroupMode::V2 {
            assert_eq!(
                op(&mut m, "write", "cgroup.subtree_control", Some("+pids")),
                "ok"
            );
        }
        let g = format!("{dir}lim");
        assert_eq!(op(&mut m, "mkdir", &g, None), "ok");
        assert_eq!(
            op(&mut m, "write", &format!("{g}/cgroup.procs"), Some("9")),
            "ok"
        );
        assert_eq!(m.fork(9), Ok(()), "{mode:?}: no limit yet");
        assert_eq!(
            op(&mut m, "write", &format!("{g}/pids.max"), Some("1")),
            "ok"
        );
        assert_eq!(m.fork(9), Err(libc::EAGAIN), "{mode:?}: 1 task, max 1");
        assert_eq!(m.fork(8), Ok(()), "{mode:?}: 8 is not in the group");
        assert_eq!(
            op(&mut m, "read", &format!("{g}/pids.events"), None),
            "ok max 1\n",
            "{mode:?}"
        );
        assert_eq!(
            op(&mut m, "write", &format!("{g}/pids.max"), Some("2")),
            "ok"
        );
        assert_eq!(m.fork(9), Ok(()));
        let log: Vec<String> = m.log().iter().map(|e| e.line()).collect();
        assert!(log.contains(&format!("fork {g} -> EAGAIN")), "{log:?}");
    }
}
