//! The cgroupfs model replays the errno facts captured from real kernels (Debian 6.1 and
//! 6.12, booted in QEMU in v1 and v2 mode: `fixtures/fidelity/errno-debian-6.1-6.12.json`,
//! copied from the project's reference data) and must give the same result for each.

use std::path::Path;

use cgrepro::host::{CgroupMode, HostData, HostSpec};
use cgrepro::sandbox::cgroupfs::corpus::on_model;
use cgrepro::sandbox::cgroupfs::{Model, Pids};
use serde_json::Value;

struct SmallPids;
impl Pids for SmallPids {
    fn exists(&self, pid: u32) -> bool {
        pid < 100_000
    }
}

fn data() -> HostData {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    HostData::load(&root.join("fixtures")).expect("host data")
}

/// A model set up like the VM before the facts ran (see the data's README).
fn model(data: &HostData, release: &str, mode: CgroupMode) -> Model {
    let spec = HostSpec {
        kernel: Some(release.into()),
        cgroup: Some(mode),
        systemd: Some(if mode == CgroupMode::V1 { 252 } else { 0 }),
        swap_accounting: Some(true),
        ..HostSpec::default()
    };
    let host = data.resolve(&spec).expect("host");
    let mut m = Model::new(&host, data, &[], Vec::new(), Box::new(SmallPids)).expect("model");
    if mode == CgroupMode::V2 {
        let ctl = on_model(&mut m, "read", "cgroup.controllers", None, 1);
        let ctl: Vec<String> = ctl
            .trim_start_matches("ok ")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for c in &ctl {
            let v = format!("+{c}");
            assert_eq!(
                on_model(&mut m, "write", "cgroup.subtree_control", Some(&v), 1),
                "ok"
            );
        }
        assert_eq!(on_model(&mut m, "mkdir", "probe", None, 1), "ok");
        for c in &ctl {
            let v = format!("+{c}");
            let r = on_model(&mut m, "write", "probe/cgroup.subtree_control", Some(&v), 1);
            assert_eq!(r, "ok", "+{c} in probe");
        }
        assert_eq!(on_model(&mut m, "mkdir", "probe/leaf", None, 1), "ok");
    } else {
        for h in [
            "cpuset",
            "cpu,cpuacct",
            "blkio",
            "memory",
            "devices",
            "freezer",
            "net_cls,net_prio",
            "perf_event",
            "hugetlb",
            "pids",
            "rdma",
            "misc",
            "systemd",
        ] {
            let _ = on_model(&mut m, "mkdir", &format!("{h}/probe"), None, 1);
        }
    }
    m
}

fn expected(op: &str, r: &Value) -> String {
    let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
    match op {
        "mkdir" | "rmdir" | "unlink" => s("result").unwrap_or_default(),
        "read" | "observe(read)" => {
            if let Some(c) = s("content") {
                format!("ok {c}")
            } else if let Some(e) = s("open_error") {
                format!("open {e}")
            } else {
                s("read_error").unwrap_or_default()
            }
        }
        _ => match s("open").as_deref() {
            Some("ok") => s("write").unwrap_or_default(),
            Some(e) => format!("open {e}"),
            None => String::new(),
        },
    }
}

#[test]
fn model_agrees_with_the_captured_errno_facts() {
    let data = data();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("fixtures/fidelity/errno-debian-6.1-6.12.json"))
        .expect("errno facts");
    let facts: Value = serde_json::from_str(&text).expect("json");
    let facts = facts["facts"].as_array().expect("facts");
    let mut total = 0;
    let mut failures = Vec::new();
    for (kernel, release) in [("6.1", "6.1.0-56-amd64"), ("6.12", "6.12.118+deb13-amd64")] {
        for mode in [CgroupMode::V2, CgroupMode::V1] {
            let mode_name = if mode == CgroupMode::V2 { "v2" } else { "v1" };
            let mut m = model(&data, release, mode);
            for f in facts.iter().filter(|f| f["mode"] == mode_name) {
                let Some(r) = f["results"].get(kernel) else {
                    continue;
                };
                let op = f["op"].as_str().unwrap_or_default();
                let args: Vec<&str> = f["args"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let Some(path) = args.first().and_then(|p| p.strip_prefix("/sys/fs/cgroup")) else {
                    continue; // /proc, /tmp observations
                };
                let path = path.trim_start_matches('/');
                let mop = match op {
                    "observe(read)" => "read",
                    "shellcreate" => "shellwrite",
                    "mount" => continue,
                    o => o,
                };
                // The args show the 6.1 helper pid; on 6.12 the helper was pid 191.
                let value = args.get(1).map(|v| {
                    if kernel == "6.12" && mode == CgroupMode::V2 {
                        v.replace("142", "191")
                    } else {
                        (*v).to_owned()
                    }
                });
                let got = on_model(&mut m, mop, path, value.as_deref(), 1);
                let want = expected(op, r);
                total += 1;
                if got != want {
                    failures.push(format!(
                        "{kernel} {} {op} {args:?}: model {got:?}, kernel {want:?}",
                        f["id"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    assert!(total >= 200, "only {total} facts replayed");
    assert!(
        failures.is_empty(),
        "{} of {total} facts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn building_a_model_is_cheap() {
    let data = data();
    let host = data
        .resolve(&HostSpec {
            preset: Some("ubuntu-20.04".into()),
            ..HostSpec::default()
        })
        .expect("host");
    let t = std::time::Instant::now();
    for _ in 0..10 {
        Model::new(&host, &data, &[], Vec::new(), Box::new(SmallPids)).expect("model");
    }
    let each = t.elapsed() / 10;
    eprintln!("Model::new: {each:?}");
    // The session builds one per host and copies it for each case.
    let template = Model::new(&host, &data, &[], Vec::new(), Box::new(SmallPids)).expect("model");
    let t = std::time::Instant::now();
    for _ in 0..10 {
        template.for_case(Vec::new(), Box::new(SmallPids));
    }
    eprintln!("Model::for_case: {:?}", t.elapsed() / 10);
}

#[test]
fn a_model_copied_for_a_case_behaves_as_a_new_one() {
    let data = data();
    let host = data
        .resolve(&HostSpec {
            preset: Some("ubuntu-20.04".into()),
            ..HostSpec::default()
        })
        .expect("host");
    let template = Model::new(&host, &data, &[], Vec::new(), Box::new(SmallPids)).expect("model");
    let mut fresh = Model::new(&host, &data, &[], Vec::new(), Box::new(SmallPids)).expect("model");
    let mut copy = template.for_case(Vec::new(), Box::new(SmallPids));
    let ops: [(&str, &str, Option<&str>); 6] = [
        ("read", "memory/memory.limit_in_bytes", None),
        ("mkdir", "memory/case", None),
        (
            "write",
            "memory/case/memory.limit_in_bytes",
            Some("1048576"),
        ),
        ("write", "memory/case/cgroup.procs", Some("42")),
        ("read", "memory/case/cgroup.procs", None),
        ("read", "pids/cgroup.procs", None),
    ];
    for (op, path, value) in ops {
        assert_eq!(
            on_model(&mut copy, op, path, value, 1),
            on_model(&mut fresh, op, path, value, 1),
            "{op} {path}"
        );
    }
    assert_eq!(copy.effects(), fresh.effects());
    let lines = |m: &Model| m.log().iter().map(|e| e.line()).collect::<Vec<_>>();
    assert_eq!(lines(&copy), lines(&fresh));
    // The template itself served nothing.
    assert!(template.log().is_empty());
}
