//! The manager's story on the cgroupfs model of real presets: what Kata's
//! `createCgroupsSystemd` asks for, what each host's systemd answers, and the cgroups it
//! leaves behind.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use zvariant::{OwnedValue, Value};

use super::*;
use crate::host::{Host, HostData, HostSpec};
use crate::sandbox::cgroupfs::{AnyPid, Model};
use crate::systemd::cgroups::ModelCgroups;

fn data() -> &'static HostData {
    static DATA: OnceLock<HostData> = OnceLock::new();
    DATA.get_or_init(|| {
        HostData::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures"
        )))
        .expect("fixtures load")
    })
}

fn host(preset: &str) -> Host {
    data()
        .resolve(&HostSpec {
            preset: Some(preset.into()),
            ..Default::default()
        })
        .unwrap()
}

fn manager(preset: &str, faults: Vec<DbusFault>) -> (Manager, Arc<Mutex<Model>>) {
    let h = host(preset);
    let model = Arc::new(Mutex::new(
        Model::new(&h, data(), &[], Vec::new(), Box::new(AnyPid)).unwrap(),
    ));
    let m = Manager::new(
        h.systemd.unwrap(),
        Layout::of(&h, data()),
        Box::new(ModelCgroups(Arc::clone(&model))),
        faults,
    );
    (m, model)
}

fn v(x: Value<'static>) -> OwnedValue {
    OwnedValue::try_from(x).unwrap()
}

/// The properties Kata 3.13's createCgroupsSystemd sends for a scope (utils_linux.go).
fn kata_props(pid: u32) -> Vec<(String, OwnedValue)> {
    vec![
        (
            "Description".into(),
            v(Value::from("cgroup cri-containerd-x.scope")),
        ),
        ("DefaultDependencies".into(), v(Value::from(false))),
        ("MemoryAccounting".into(), v(Value::from(true))),
        ("CPUAccounting".into(), v(Value::from(true))),
        ("IOAccounting".into(), v(Value::from(true))),
        (
            "Slice".into(),
            v(Value::from("kubepods-besteffort-pod123.slice")),
        ),
        ("Delegate".into(), v(Value::from(true))),
        ("PIDs".into(), v(Value::from(vec![pid]))),
    ]
}

fn log(model: &Arc<Mutex<Model>>) -> Vec<String> {
    model
        .lock()
        .unwrap()
        .log()
        .iter()
        .map(|e| e.line())
        .collect()
}

#[test]
fn amazon_linux_2_systemd_refuses_katas_scope_and_creates_nothing() {
    let (mut m, model) = manager("amazonlinux-2", vec![]);
    let e = m
        .start_transient_unit("cri-containerd-x.scope", "replace", &kata_props(7))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "org.freedesktop.DBus.Error.PropertyReadOnly: Cannot set property IOAccounting, or unknown property."
    );
    let log = log(&model);
    assert_eq!(log.len(), 1, "{log:#?}");
    assert!(log[0].starts_with("dbus StartTransientUnit cri-containerd-x.scope replace "));
    assert!(log[0].ends_with("-> error org.freedesktop.DBus.Error.PropertyReadOnly: Cannot set property IOAccounting, or unknown property."));
    assert!(model.lock().unwrap().effects().created.is_empty());
    assert!(m.get_unit("cri-containerd-x.scope").is_err());
}

#[test]
fn rhel_8_systemd_makes_the_scope_in_name_systemd_and_the_accounting_hierarchies() {
    let (mut m, model) = manager("rhel-8", vec![]);
    let job = m
        .start_transient_unit("cri-containerd-x.scope", "replace", &kata_props(7))
        .unwrap();
    assert_eq!(job.result, "done");
    let created = model.lock().unwrap().effects().created;
    let scope = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-x.scope";
    // Delegate=yes: every hierarchy systemd manages; not those it does not (freezer, ...).
    for h in [
        "systemd",
        "memory",
        "cpu,cpuacct",
        "blkio",
        "pids",
        "devices",
    ] {
        assert!(
            created.contains(&format!("{h}/{scope}")),
            "{h}: {created:#?}"
        );
    }
    assert!(
        !created.iter().any(|c| c.starts_with("freezer/")),
        "{created:#?}"
    );
    let log = log(&model);
    assert!(
        log.contains(&format!("write memory/{scope}/cgroup.procs \"7\" -> ok")),
        "{log:#?}"
    );
    assert_eq!(
        log.last().unwrap(),
        "dbus JobRemoved 1 cri-containerd-x.scope done"
    );
    assert_eq!(
        m.get_unit("cri-containerd-x.scope").unwrap(),
        "/org/freedesktop/systemd1/unit/cri_2dcontainerd_2dx_2escope"
    );
}

#[test]
fn on_v2_each_parent_enables_the_units_controllers_one_write_each() {
    let (mut m, model) = manager("debian-12", vec![]);
    let mut props = kata_props(7);
    props.retain(|(n, _)| n != "Delegate");
    props.push(("MemoryMax".into(), v(Value::from(536_870_912u64))));
    m.start_transient_unit("cri-containerd-x.scope", "replace", &props)
        .unwrap();
    let log = log(&model);
    for l in [
        "write cgroup.subtree_control \"+memory\" -> ok",
        "mkdir kubepods.slice -> ok",
        "write kubepods.slice/cgroup.subtree_control \"+cpu\" -> ok",
        "write kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-x.scope/memory.max \"536870912\" -> ok",
    ] {
        assert!(log.iter().any(|x| x == l), "{l}\n{log:#?}");
    }
    let effects = model.lock().unwrap().effects();
    assert_eq!(
        effects.written["kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-x.scope/memory.max"],
        "536870912"
    );
}

#[test]
fn a_second_start_of_the_same_unit_is_refused_and_stop_removes_it() {
    let (mut m, _model) = manager("debian-12", vec![]);
    m.start_transient_unit("a.scope", "replace", &[]).unwrap();
    let e = m
        .start_transient_unit("a.scope", "replace", &[])
        .unwrap_err();
    assert_eq!(e.name, "org.freedesktop.systemd1.UnitExists");
    assert_eq!(
        m.control_group("a.scope").as_deref(),
        Some("system.slice/a.scope")
    );
    assert_eq!(m.stop_unit("a.scope", "replace").unwrap().result, "done");
    assert_eq!(
        m.get_unit("a.scope").unwrap_err().name,
        "org.freedesktop.systemd1.NoSuchUnit"
    );
}

#[test]
fn a_dbus_fault_answers_the_nth_call_with_the_scenarios_error() {
    let fault = DbusFault {
        method: "StartTransientUnit".into(),
        error: "org.freedesktop.DBus.Error.TimedOut".into(),
        message: "Connection timed out".into(),
        when: crate::fault::When::Nth(2),
    };
    let (mut m, model) = manager("debian-12", vec![fault]);
    assert!(m.start_transient_unit("a.scope", "replace", &[]).is_ok());
    let e = m
        .start_transient_unit("b.scope", "replace", &[])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "org.freedesktop.DBus.Error.TimedOut: Connection timed out"
    );
    assert!(m.start_transient_unit("c.scope", "replace", &[]).is_ok());
    assert!(!model
        .lock()
        .unwrap()
        .effects()
        .created
        .iter()
        .any(|c| c.contains("b.scope")));
}
