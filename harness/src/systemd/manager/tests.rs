//! The manager's story on the cgroupfs model of real presets: what Kata's
//! `createCgroupsSystemd` asks for, what each host's systemd answers, and the cgroups it
//! leaves behind.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use zvariant::{OwnedValue, Value};

use super::*;
use crate::host::{Host, HostData, HostSpec};
use crate::sandbox::cgroupfs::{AnyPid, Model, Pids};
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
    assert_eq!(job, "/org/freedesktop/systemd1/job/1");
    assert_eq!(m.take_finished()[0].result, "done");
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
    m.stop_unit("a.scope", "replace", Instant::now()).unwrap();
    let jobs = m.take_finished();
    assert_eq!(jobs.last().unwrap().result, "done");
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

/// Processes of a case as a test plays them: each pid lives until a signal it does not
/// ignore reaches it; every signal is recorded.
#[derive(Clone, Default)]
struct Procs {
    dead: Arc<Mutex<Vec<u32>>>,
    signals: Arc<Mutex<Vec<(u32, i32)>>>,
    /// Pids that ignore SIGTERM (a shell's trap '' TERM).
    deaf: Arc<Mutex<Vec<u32>>>,
}

impl Pids for Procs {
    fn exists(&self, pid: u32) -> bool {
        !self.dead.lock().unwrap().contains(&pid)
    }
    fn signal(&self, pid: u32, sig: i32) {
        self.signals.lock().unwrap().push((pid, sig));
        let ignored = sig == libc::SIGCONT
            || (sig == libc::SIGTERM && self.deaf.lock().unwrap().contains(&pid));
        if !ignored {
            self.dead.lock().unwrap().push(pid);
        }
    }
}

fn manager_with(preset: &str, procs: &Procs) -> (Manager, Arc<Mutex<Model>>) {
    let h = host(preset);
    let model = Arc::new(Mutex::new(
        Model::new(&h, data(), &[], Vec::new(), Box::new(procs.clone())).unwrap(),
    ));
    let m = Manager::new(
        h.systemd.unwrap(),
        Layout::of(&h, data()),
        Box::new(ModelCgroups(Arc::clone(&model))),
        Vec::new(),
    );
    (m, model)
}

fn scope_props(pids: &[u32], extra: Vec<(&str, Value<'static>)>) -> Vec<(String, OwnedValue)> {
    let mut p = vec![
        ("Slice".to_string(), v(Value::from("kubepods.slice"))),
        ("PIDs".to_string(), v(Value::from(pids.to_vec()))),
    ];
    for (n, x) in extra {
        p.push((n.to_string(), v(x)));
    }
    p
}

#[test]
fn stopping_a_scope_on_v2_sends_sigterm_and_waits_for_its_cgroup_to_empty() {
    let procs = Procs::default();
    let (mut m, model) = manager_with("debian-12", &procs);
    m.start_transient_unit("a.scope", "replace", &scope_props(&[7, 8], vec![]))
        .unwrap();
    m.take_finished();
    let t0 = Instant::now();
    m.stop_unit("a.scope", "replace", t0).unwrap();
    // SIGTERM and SIGCONT to both; both die of SIGTERM.
    let sent = procs.signals.lock().unwrap().clone();
    assert_eq!(
        sent,
        [
            (7, libc::SIGTERM),
            (7, libc::SIGCONT),
            (8, libc::SIGTERM),
            (8, libc::SIGCONT)
        ]
    );
    assert!(m.stopping(), "systemd waits for the cgroup-empty event");
    assert!(m.take_finished().is_empty());
    m.poll(t0 + Duration::from_millis(2));
    let jobs = m.take_finished();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].result, "done");
    assert!(
        m.get_unit("a.scope").is_err(),
        "an inactive transient unit is collected"
    );
    let log = log(&model);
    assert!(
        log.contains(&"rmdir kubepods.slice/a.scope -> ok".to_string()),
        "{log:#?}"
    );
}

#[test]
fn a_process_that_ignores_sigterm_gets_sigkill_after_timeout_stop_usec() {
    let procs = Procs::default();
    procs.deaf.lock().unwrap().push(7);
    let (mut m, _model) = manager_with("debian-12", &procs);
    let props = scope_props(&[7], vec![("TimeoutStopUSec", Value::from(1_000_000u64))]);
    m.start_transient_unit("a.scope", "replace", &props)
        .unwrap();
    let t0 = Instant::now();
    m.stop_unit("a.scope", "replace", t0).unwrap();
    m.poll(t0 + Duration::from_millis(500));
    assert!(m.stopping());
    let state = m
        .unit_properties("a.scope", "org.freedesktop.systemd1.Unit")
        .unwrap();
    let sub = state.iter().find(|(n, _)| n == "SubState").unwrap();
    assert_eq!(sub.1, OwnedValue::from(zvariant::Str::from("stop-sigterm")));
    m.poll(t0 + Duration::from_secs(1));
    assert!(procs.signals.lock().unwrap().contains(&(7, libc::SIGKILL)));
    m.poll(t0 + Duration::from_millis(1002));
    let jobs = m.take_finished();
    assert_eq!(jobs.last().unwrap().result, "done");
    // It stopped with result 'timeout': failed, until ResetFailedUnit.
    assert!(m.get_unit("a.scope").is_ok());
    m.reset_failed_unit("a.scope").unwrap();
    assert!(m.get_unit("a.scope").is_err());
}

#[test]
fn with_kill_mode_none_nothing_is_signalled_and_the_populated_cgroup_stays() {
    let procs = Procs::default();
    let (mut m, model) = manager_with("debian-12", &procs);
    let props = scope_props(&[7], vec![("KillMode", Value::from("none"))]);
    m.start_transient_unit("a.scope", "replace", &props)
        .unwrap();
    m.stop_unit("a.scope", "replace", Instant::now()).unwrap();
    assert!(procs.signals.lock().unwrap().is_empty());
    assert_eq!(m.take_finished().last().unwrap().result, "done");
    assert!(log(&model).contains(&"rmdir kubepods.slice/a.scope -> EBUSY".to_string()));
}

#[test]
fn on_v1_a_delegated_scope_gets_sigterm_then_sigkill_at_once() {
    let procs = Procs::default();
    procs.deaf.lock().unwrap().push(7);
    let (mut m, _model) = manager_with("rhel-8", &procs);
    let props = scope_props(&[7], vec![("Delegate", Value::from(true))]);
    m.start_transient_unit("a.scope", "replace", &props)
        .unwrap();
    m.take_finished();
    m.stop_unit("a.scope", "replace", Instant::now()).unwrap();
    let sent = procs.signals.lock().unwrap().clone();
    assert_eq!(
        sent,
        [(7, libc::SIGTERM), (7, libc::SIGCONT), (7, libc::SIGKILL)]
    );
    assert!(!m.stopping());
    assert_eq!(m.take_finished()[0].result, "done");
}

#[test]
fn kill_unit_signals_the_scopes_processes_and_refuses_what_systemd_refuses() {
    let procs = Procs::default();
    let (mut m, _model) = manager_with("debian-12", &procs);
    m.start_transient_unit("a.scope", "replace", &scope_props(&[7], vec![]))
        .unwrap();
    let e = m.kill_unit("b.scope", "all", libc::SIGTERM).unwrap_err();
    assert_eq!(
        e.to_string(),
        "org.freedesktop.systemd1.NoSuchUnit: Unit b.scope not loaded."
    );
    let e = m.kill_unit("a.scope", "main", libc::SIGTERM).unwrap_err();
    assert_eq!(
        e.to_string(),
        "org.freedesktop.systemd1.NoSuchProcess: scope units have no main processes"
    );
    let e = m
        .kill_unit("a.scope", "everyone", libc::SIGTERM)
        .unwrap_err();
    assert_eq!(e.name, "org.freedesktop.DBus.Error.InvalidArgs");
    let e = m.kill_unit("a.scope", "all", 0).unwrap_err();
    assert_eq!(e.message, "Signal number out of range.");
    m.kill_unit("a.scope", "all", libc::SIGUSR1).unwrap();
    assert_eq!(*procs.signals.lock().unwrap(), [(7, libc::SIGUSR1)]);
}

#[test]
fn attach_processes_needs_a_delegated_active_unit_and_systemd_238() {
    let procs = Procs::default();
    let (mut m, model) = manager_with("debian-12", &procs);
    m.start_transient_unit("plain.scope", "replace", &scope_props(&[7], vec![]))
        .unwrap();
    let e = m
        .attach_processes_to_unit("plain.scope", "", &[9], None)
        .unwrap_err();
    assert_eq!(
        e.message,
        "Process migration not available on non-delegated units."
    );
    let props = scope_props(&[7], vec![("Delegate", Value::from(true))]);
    m.start_transient_unit("d.scope", "replace", &props)
        .unwrap();
    let e = m
        .attach_processes_to_unit("d.scope", "sub", &[9], None)
        .unwrap_err();
    assert_eq!(e.message, "Control group path is not absolute: sub");
    let e = m
        .attach_processes_to_unit("d.scope", "", &[1], None)
        .unwrap_err();
    assert_eq!(e.message, "Process 1 is a manager process, refusing.");
    procs.dead.lock().unwrap().push(10);
    let e = m
        .attach_processes_to_unit("d.scope", "", &[10], None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "org.freedesktop.DBus.Error.UnixProcessIdUnknown: Process with ID 10 does not exist."
    );
    m.attach_processes_to_unit("d.scope", "", &[0], Some(9))
        .unwrap();
    assert!(
        log(&model).contains(&"write kubepods.slice/d.scope/cgroup.procs \"9\" -> ok".to_string())
    );

    let (mut old, _) = manager_with("amazonlinux-2", &procs);
    let e = old
        .attach_processes_to_unit("d.scope", "", &[9], None)
        .unwrap_err();
    assert_eq!(e.name, "org.freedesktop.DBus.Error.UnknownMethod");
}

#[test]
fn a_scopes_object_shows_its_state_cgroup_and_the_accounting_it_was_given() {
    let (mut m, _model) = manager("rhel-8", vec![]);
    m.start_transient_unit("cri-containerd-x.scope", "replace", &kata_props(7))
        .unwrap();
    let unit = m
        .unit_properties("cri-containerd-x.scope", "org.freedesktop.systemd1.Unit")
        .unwrap();
    let get = |list: &[(String, OwnedValue)], k: &str| {
        list.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.try_clone().unwrap())
    };
    let s = |x: &str| OwnedValue::from(zvariant::Str::from(x.to_owned()));
    assert_eq!(get(&unit, "ActiveState"), Some(s("active")));
    assert_eq!(get(&unit, "SubState"), Some(s("running")));
    let scope = m
        .unit_properties("cri-containerd-x.scope", "org.freedesktop.systemd1.Scope")
        .unwrap();
    assert_eq!(
        get(&scope, "ControlGroup"),
        Some(s("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-x.scope"))
    );
    assert_eq!(
        get(&scope, "MemoryAccounting"),
        Some(OwnedValue::from(true))
    );
    assert_eq!(get(&scope, "IOAccounting"), Some(OwnedValue::from(true)));
    assert_eq!(get(&scope, "Delegate"), Some(OwnedValue::from(true)));
    assert!(m
        .unit_properties("cri-containerd-x.scope", "org.freedesktop.systemd1.Slice")
        .is_none());
}

#[test]
fn systemd_before_228_makes_no_transient_slices() {
    let (mut m, _model) = manager("amazonlinux-2", vec![]);
    let e = m
        .start_transient_unit("kubepods.slice", "replace", &[])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "org.freedesktop.DBus.Error.InvalidArgs: Unit type slice does not support transient units."
    );
    let (mut m, _model) = manager("rhel-8", vec![]);
    assert!(m
        .start_transient_unit("kubepods.slice", "replace", &[])
        .is_ok());
}
