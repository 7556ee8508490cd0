//! The manager's methods that container runtimes call, on a [`Cgroups`] sink: property
//! checks against the host's systemd version ([`Table`]), units and jobs, and the cgroups
//! systemd makes for a unit on each layout (slices created on demand; v1: `name=systemd`
//! plus the hierarchies of the controllers the unit's properties enable; hybrid: also
//! `unified/`; v2: the controllers enabled in every parent's `cgroup.subtree_control`,
//! one `+controller` write each, as systemd writes them), limits written, PIDs moved.
//!
//! Stopping a scope is systemd's state machine (scope.c, `scope_enter_signal`): the
//! unit's KillMode decides who gets SIGTERM (with SIGCONT); systemd waits for the cgroup to
//! empty until TimeoutStopUSec (90 s by default), then SIGKILL (SendSIGKILL=yes), then
//! gives up and leaves the unit failed. On v1 a delegated unit is not waited for (systemd
//! does not trust v1's empty notifications there): SIGTERM, SIGKILL at once, done. The job
//! ends (JobRemoved `done`) when the unit is inactive or failed; an inactive transient
//! unit is collected, its cgroups removed.
//!
//! Pure: no D-Bus here ([`super::bus`] is the wire side), so unit tests drive it directly;
//! time comes in as an argument ([`Manager::poll`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use zvariant::{OwnedValue, Value};

use super::properties::{self, Format, Property, Table};
use super::units::{self, join, Layout, UnitType};
use super::{BusError, Cgroups, DbusFault};
use crate::fault::When;
use crate::host::CgroupMode;

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
const NO_SUCH_PROCESS: &str = "org.freedesktop.systemd1.NoSuchProcess";
const PID_UNKNOWN: &str = "org.freedesktop.DBus.Error.UnixProcessIdUnknown";
const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
/// systemd's DefaultTimeoutStopSec= (a scope's TimeoutStopUSec unless set).
const DEFAULT_TIMEOUT_STOP: Duration = Duration::from_secs(90);
/// AttachProcessesToUnit: NEWS 238.
const ATTACH_SINCE: u32 = 238;
/// `_NSIG` on Linux: valid signals are 1..=64.
const NSIG: i32 = 65;

/// A finished job, as the JobRemoved signal reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u32,
    pub path: String,
    pub unit: String,
    /// `done` or `failed`.
    pub result: &'static str,
}

/// Where a unit is in its life, as its ActiveState/SubState show it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Active,
    /// StopUnit under way: signals sent, waiting for the cgroup to empty until `deadline`.
    Stopping {
        sigkill: bool,
        deadline: Instant,
        job: u32,
        timed_out: bool,
    },
    Failed,
}

/// KillMode= of a scope (kill.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillMode {
    ControlGroup,
    Process,
    Mixed,
    None,
}

impl KillMode {
    fn parse(s: &str) -> Option<KillMode> {
        Some(match s {
            "control-group" => KillMode::ControlGroup,
            "process" => KillMode::Process,
            "mixed" => KillMode::Mixed,
            "none" => KillMode::None,
            _ => return None,
        })
    }
}

/// The kill context of a unit: KillMode=, SendSIGKILL=, TimeoutStopUSec=.
#[derive(Debug, Clone, Copy)]
struct Kill {
    mode: KillMode,
    send_sigkill: bool,
    timeout: Duration,
}

#[derive(Debug, Clone)]
struct Unit {
    ty: UnitType,
    /// Below each hierarchy's root.
    cgroup: String,
    /// Directories made for it, relative to /sys/fs/cgroup.
    realized: Vec<String>,
    state: State,
    /// The properties it was created with (and later set), as the client sent them.
    props: std::sync::Arc<BTreeMap<String, OwnedValue>>,
    kill: Kill,
    delegate: bool,
    /// Started with PIDs: when they are all gone, the scope is dead (cgroup-empty event).
    had_pids: bool,
}

/// The state of one case's systemd.
pub struct Manager {
    version: u32,
    layout: Layout,
    sink: Box<dyn Cgroups>,
    units: BTreeMap<String, Unit>,
    next_job: u32,
    faults: Vec<DbusFault>,
    calls: HashMap<String, u64>,
    table: &'static Table,
    /// Jobs finished since the last [`Manager::take_finished`] (JobRemoved to send).
    finished: Vec<Job>,
    /// Units collected: their objects still answer, as systemd loads a unit named in an
    /// object path on demand (LoadState `not-found`, ActiveState `inactive`).
    gone: std::collections::BTreeSet<String>,
}

/// A property as the manager keeps it: the row it matched and its value.
struct Set<'a> {
    row: &'a Property,
    value: &'a Value<'a>,
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U64(n) => Some(*n),
        Value::U32(n) => Some((*n).into()),
        Value::U16(n) => Some((*n).into()),
        Value::U8(n) => Some((*n).into()),
        Value::I64(n) => u64::try_from(*n).ok(),
        Value::I32(n) => u64::try_from(*n).ok(),
        Value::Value(inner) => as_u64(inner),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Value(inner) => as_bool(inner),
        _ => None,
    }
}

fn as_str<'a>(v: &'a Value<'a>) -> Option<&'a str> {
    match v {
        Value::Str(s) => Some(s.as_str()),
        Value::Value(inner) => as_str(inner),
        _ => None,
    }
}

fn array(v: &Value) -> Option<Vec<u64>> {
    match v {
        Value::Array(a) => a.iter().map(as_u64).collect(),
        Value::Value(inner) => array(inner),
        _ => None,
    }
}

/// A value as the op log shows it: `true`, `512`, `"text"`, `[12]`, a cpu list for masks.
fn render(name: &str, v: &Value) -> String {
    if matches!(name, "AllowedCPUs" | "AllowedMemoryNodes") {
        if let Some(mask) = array(v) {
            let bytes: Vec<u8> = mask.iter().map(|b| *b as u8).collect();
            return format!("\"{}\"", properties::cpu_set(&bytes));
        }
    }
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => format!("{:?}", s.as_str()),
        Value::Value(inner) => render(name, inner),
        Value::Array(_) => match array(v) {
            Some(list) => format!(
                "[{}]",
                list.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => v.to_string(),
        },
        other => match as_u64(other) {
            Some(u64::MAX) => "infinity".into(),
            Some(n) => n.to_string(),
            None => other.to_string(),
        },
    }
}

impl Manager {
    pub fn new(
        version: u32,
        layout: Layout,
        sink: Box<dyn Cgroups>,
        faults: Vec<DbusFault>,
    ) -> Manager {
        Manager {
            version,
            layout,
            sink,
            units: BTreeMap::new(),
            next_job: 1,
            faults,
            calls: HashMap::new(),
            table: Table::get(),
            finished: Vec::new(),
            gone: Default::default(),
        }
    }

    /// The jobs finished since the last call, in order: their JobRemoved signals.
    pub fn take_finished(&mut self) -> Vec<Job> {
        std::mem::take(&mut self.finished)
    }

    /// A unit is stopping: [`Manager::poll`] has work.
    pub fn stopping(&self) -> bool {
        self.units
            .values()
            .any(|u| matches!(u.state, State::Stopping { .. }))
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// A line in the op log.
    pub fn note(&mut self, line: String) {
        self.sink.note(line);
    }

    /// The scenario's fault on this call of `method`, if one fires (counts the call);
    /// `{unit}` in its message is the unit the call names.
    fn fault(&mut self, method: &str, unit: &str) -> Result<(), BusError> {
        // Every call first sees the scopes that emptied since the last one go.
        self.reap_empty();
        let n = self.calls.entry(method.to_owned()).or_default();
        *n += 1;
        let n = *n;
        for f in self.faults.iter().filter(|f| f.method == method) {
            let fires = match f.when {
                When::Always => true,
                When::Nth(k) => n == k,
                When::After(k) => n > k,
                // The scenario parser refuses `p=` for D-Bus faults.
                When::Probability { .. } => false,
            };
            if fires {
                return Err(BusError::new(&f.error, f.message.replace("{unit}", unit)));
            }
        }
        Ok(())
    }

    /// Log the call and its answer; on success, `ok` plus what `detail` says.
    fn answer<T>(
        &mut self,
        call: String,
        r: Result<T, BusError>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T, BusError> {
        let line = match &r {
            Ok(t) => {
                let d = detail(t);
                if d.is_empty() {
                    format!("{call} -> ok")
                } else {
                    format!("{call} -> ok {d}")
                }
            }
            Err(e) => format!("{call} -> error {e}"),
        };
        self.sink.note(line);
        r
    }

    fn checked<'a>(&self, props: &'a [(String, OwnedValue)]) -> Result<Vec<Set<'a>>, BusError> {
        props
            .iter()
            .map(|(name, value)| {
                let row = self.table.accept(self.version, name)?;
                Ok(Set { row, value })
            })
            .collect()
    }

    /// The call as the op log shows it; properties by name (clients build them from hash
    /// maps, in any order).
    fn describe(name: &str, rest: &[&str], props: &[(String, OwnedValue)]) -> String {
        let mut s = name.to_owned();
        for r in rest {
            s.push(' ');
            s.push_str(r);
        }
        let mut sorted: Vec<&(String, OwnedValue)> = props.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, v) in sorted {
            s.push_str(&format!(" {n}={}", render(n, v)));
        }
        s
    }

    /// `StartTransientUnit(name, mode, properties, aux)`: the job's path, or systemd's error
    /// (nothing created). The job runs at once; its JobRemoved is in
    /// [`Manager::take_finished`].
    pub fn start_transient_unit(
        &mut self,
        name: &str,
        mode: &str,
        props: &[(String, OwnedValue)],
    ) -> Result<String, BusError> {
        let call = Self::describe("StartTransientUnit", &[name, mode], props);
        let r = self
            .fault("StartTransientUnit", name)
            .and_then(|()| self.admit(name, props));
        let (cgroup, controllers, id) = self.answer(call, r, |(_, _, id)| format!("job {id}"))?;
        // The job: realize the unit's cgroups, move its PIDs.
        let sets = self.checked(props).unwrap_or_default();
        let pids: Vec<u64> = sets
            .iter()
            .filter(|s| s.row.name == "PIDs")
            .filter_map(|s| array(s.value))
            .flatten()
            .collect();
        let limits: Vec<(&Property, &Value)> = sets
            .iter()
            .filter(|s| s.row.format.is_some())
            .map(|s| (s.row, s.value))
            .collect();
        let (realized, ok) = self.realize(&cgroup, &controllers, &limits, &pids);
        let result = if ok { "done" } else { "failed" };
        let mut kill = Kill {
            mode: KillMode::ControlGroup,
            send_sigkill: true,
            timeout: DEFAULT_TIMEOUT_STOP,
        };
        let mut delegate = false;
        let mut kept = BTreeMap::new();
        for (n, v) in props {
            match n.as_str() {
                "KillMode" => {
                    if let Some(m) = as_str(v).and_then(KillMode::parse) {
                        kill.mode = m;
                    }
                }
                "SendSIGKILL" => kill.send_sigkill = as_bool(v).unwrap_or(true),
                "TimeoutStopUSec" => {
                    if let Some(us) = as_u64(v) {
                        kill.timeout = Duration::from_micros(us);
                    }
                }
                "Delegate" => delegate = as_bool(v).unwrap_or(false),
                _ => {}
            }
            if let Ok(c) = v.try_clone() {
                kept.insert(n.clone(), c);
            }
        }
        let ty = units::unit_type(name).unwrap_or(UnitType::Scope);
        self.gone.remove(name);
        self.units.insert(
            name.to_owned(),
            Unit {
                ty,
                cgroup,
                realized,
                state: if ok { State::Active } else { State::Failed },
                props: std::sync::Arc::new(kept),
                kill,
                delegate,
                had_pids: !pids.is_empty(),
            },
        );
        self.finish_job(id, name, result);
        Ok(job_path(id))
    }

    fn finish_job(&mut self, id: u32, unit: &str, result: &'static str) {
        self.sink.note(format!("JobRemoved {id} {unit} {result}"));
        self.finished.push(Job {
            id,
            path: job_path(id),
            unit: unit.to_owned(),
            result,
        });
    }

    /// The checks systemd makes before queueing the job: name, existing unit, every
    /// property known to this version with a value of the right type, the slice.
    /// Returns the unit's cgroup path, its controllers and the job id.
    fn admit(
        &mut self,
        name: &str,
        props: &[(String, OwnedValue)],
    ) -> Result<(String, Vec<String>, u32), BusError> {
        let ty = units::unit_type(name).ok_or_else(|| {
            BusError::new(INVALID_ARGS, format!("Invalid unit name or type: {name}"))
        })?;
        if ty == UnitType::Slice && self.version < self.table.transient.slice_since {
            return Err(BusError::new(
                INVALID_ARGS,
                "Unit type slice does not support transient units.",
            ));
        }
        if self.units.contains_key(name) {
            return Err(BusError::new(
                UNIT_EXISTS,
                format!("Unit {name} already exists."),
            ));
        }
        let sets = self.checked(props)?;
        let v2 = self.layout.mode == CgroupMode::V2;
        let mut controllers = Vec::new();
        let mut slice = None;
        for s in &sets {
            let bad_type = || {
                BusError::new(
                    INVALID_ARGS,
                    format!("Invalid value type for property {}", s.row.name),
                )
            };
            let name = s.row.name.as_str();
            if name == "Slice" {
                slice = Some(as_str(s.value).ok_or_else(bad_type)?.to_owned());
            } else if name == "PIDs" {
                array(s.value).ok_or_else(bad_type)?;
            }
            // A boolean set to false enables nothing.
            let flag = matches!(name, "Delegate" | "DefaultDependencies" | "SendSIGKILL")
                || name.ends_with("Accounting");
            if flag && !as_bool(s.value).ok_or_else(bad_type)? {
                continue;
            }
            let list = if v2 { &s.row.v2 } else { &s.row.v1 };
            controllers.extend(self.table.controllers(list, v2, self.version));
        }
        controllers.sort();
        controllers.dedup();
        let cgroup = match ty {
            UnitType::Scope => {
                let slice = slice.unwrap_or_else(|| "system.slice".into());
                let parent = units::expand_slice(&slice)?;
                join(&parent, name)
            }
            UnitType::Slice => units::expand_slice(name)?,
        };
        let id = self.next_job;
        self.next_job += 1;
        Ok((cgroup, controllers, id))
    }

    /// Make `dir` and its missing parents. Errors other than EEXIST fail the unit.
    fn ensure(&mut self, dir: &str) -> bool {
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        let mut p = String::new();
        for part in parts {
            p = join(&p, part);
            if !self.sink.exists(&p) {
                match self.sink.mkdir(&p) {
                    Ok(()) | Err(libc::EEXIST) => {}
                    Err(_) => return false,
                }
            }
        }
        true
    }

    fn attach(&mut self, dir: &str, pids: &[u64]) -> bool {
        pids.iter().all(|pid| {
            self.sink
                .write(&join(dir, "cgroup.procs"), &pid.to_string())
                .is_ok()
        })
    }

    /// Create the unit's cgroups, write its limits, move its PIDs. Returns the
    /// directories made and whether the unit started.
    fn realize(
        &mut self,
        cgroup: &str,
        controllers: &[String],
        limits: &[(&Property, &Value)],
        pids: &[u64],
    ) -> (Vec<String>, bool) {
        let mut realized = Vec::new();
        let mut ok = true;
        match self.layout.mode {
            CgroupMode::V2 => {
                let root = self.layout.v2_dir.clone().unwrap_or_default();
                let enable: Vec<String> = controllers
                    .iter()
                    .filter(|c| self.layout.v2_controllers.contains(c))
                    .cloned()
                    .collect();
                // Each ancestor enables the unit's controllers for its children.
                let mut at = root.clone();
                for part in cgroup.split('/').filter(|p| !p.is_empty()) {
                    if !self.ensure(&at) {
                        ok = false;
                        break;
                    }
                    for c in &enable {
                        // systemd logs and goes on when a controller cannot be enabled.
                        let _ = self
                            .sink
                            .write(&join(&at, "cgroup.subtree_control"), &format!("+{c}"));
                    }
                    at = join(&at, part);
                }
                let dir = join(&root, cgroup);
                if ok && self.ensure(&dir) {
                    realized.push(dir.clone());
                    self.write_limits(&dir, None, limits, true);
                    ok = self.attach(&dir, pids);
                } else {
                    ok = false;
                }
            }
            CgroupMode::V1 | CgroupMode::Hybrid => {
                let mut dirs: Vec<(String, Option<Vec<String>>)> = Vec::new();
                if let Some(s) = &self.layout.systemd_dir {
                    dirs.push((s.clone(), None));
                }
                if let Some(u) = &self.layout.v2_dir {
                    dirs.push((u.clone(), None));
                }
                for (d, ctrls) in &self.layout.v1 {
                    if ctrls.iter().any(|c| controllers.contains(c)) {
                        dirs.push((d.clone(), Some(ctrls.clone())));
                    }
                }
                for (hier, ctrls) in dirs {
                    let dir = join(&hier, cgroup);
                    if !self.ensure(&dir) {
                        ok = false;
                        continue;
                    }
                    realized.push(dir.clone());
                    if let Some(ctrls) = &ctrls {
                        self.write_limits(&dir, Some(ctrls), limits, false);
                    }
                    ok &= self.attach(&dir, pids);
                }
            }
        }
        (realized, ok)
    }

    /// Write the limits whose controller lives in this hierarchy (v1: `ctrls`). Failures are
    /// logged by the cgroupfs and ignored, as systemd ignores them.
    fn write_limits(
        &mut self,
        dir: &str,
        ctrls: Option<&[String]>,
        limits: &[(&Property, &Value)],
        v2: bool,
    ) {
        // systemd writes a unit's attributes controller by controller, whatever the order
        // of the properties in the message: here, by property name.
        let mut limits = limits.to_vec();
        limits.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        for (row, value) in limits {
            if let Some(ctrls) = ctrls {
                if !row.v1.first().is_some_and(|c| ctrls.contains(c)) {
                    continue;
                }
            }
            let Some(file) = (if v2 { &row.file_v2 } else { &row.file_v1 }) else {
                continue;
            };
            let Some(format) = row.format else { continue };
            let n = as_u64(value);
            let max = n == Some(u64::MAX);
            let writes: Vec<(String, String)> = match format {
                Format::Bytes | Format::Tasks => {
                    let Some(n) = n else { continue };
                    let v = match (max, v2, format) {
                        (true, true, _) | (true, false, Format::Tasks) => "max".to_string(),
                        (true, false, _) => "-1".to_string(),
                        _ => n.to_string(),
                    };
                    vec![(file.clone(), v)]
                }
                Format::CpuShares => {
                    let Some(n) = n else { continue };
                    let v = if v2 {
                        properties::shares_to_weight(n)
                    } else {
                        n
                    };
                    vec![(file.clone(), v.to_string())]
                }
                Format::CpuWeight => {
                    let Some(n) = n else { continue };
                    let v = if v2 {
                        n
                    } else {
                        properties::weight_to_shares(n)
                    };
                    vec![(file.clone(), v.to_string())]
                }
                Format::CpuQuota => {
                    let Some(n) = n else { continue };
                    let period: u64 = 100_000;
                    let quota = n.saturating_mul(period) / 1_000_000;
                    if v2 {
                        let q = if max {
                            "max".to_string()
                        } else {
                            quota.to_string()
                        };
                        vec![(file.clone(), format!("{q} {period}"))]
                    } else {
                        let q = if max {
                            "-1".to_string()
                        } else {
                            quota.to_string()
                        };
                        vec![
                            ("cpu.cfs_period_us".to_string(), period.to_string()),
                            (file.clone(), q),
                        ]
                    }
                }
                Format::CpuSet => {
                    let Some(mask) = array(value) else { continue };
                    let bytes: Vec<u8> = mask.iter().map(|b| *b as u8).collect();
                    vec![(file.clone(), properties::cpu_set(&bytes))]
                }
            };
            for (f, v) in writes {
                let _ = self.sink.write(&join(dir, &f), &v);
            }
        }
    }

    /// `StopUnit(name, mode)`: the job's path; the scope's processes get its KillMode's
    /// signals now, the job ends when its cgroup is empty or the timeouts run out
    /// ([`Manager::poll`]).
    pub fn stop_unit(&mut self, name: &str, mode: &str, now: Instant) -> Result<String, BusError> {
        let call = format!("StopUnit {name} {mode}");
        let r = self.fault("StopUnit", name).and_then(|()| {
            if !self.units.contains_key(name) {
                return Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                ));
            }
            let id = self.next_job;
            self.next_job += 1;
            Ok(id)
        });
        let id = self.answer(call, r, |id| format!("job {id}"))?;
        let unit = &self.units[name];
        match unit.state {
            // A stop job already runs: this one joins it (ends with it).
            State::Stopping { .. } => {}
            // Nothing to stop: the job is done at once.
            State::Failed => self.finish_job(id, name, "done"),
            State::Active => self.signal_phase(name, id, false, false, now),
        }
        Ok(job_path(id))
    }

    /// The cgroup whose processes systemd signals (its own hierarchy: name=systemd on
    /// v1/hybrid, cgroup2 on v2).
    fn tracked_dir(&self, unit: &Unit) -> String {
        let root = match self.layout.mode {
            CgroupMode::V2 => self.layout.v2_dir.clone().unwrap_or_default(),
            _ => self.layout.systemd_dir.clone().unwrap_or_default(),
        };
        join(&root, &unit.cgroup)
    }

    /// `scope_enter_signal`: SIGTERM (or SIGKILL) by the unit's KillMode; wait if there was
    /// someone to signal and systemd can see the cgroup empty, else go on at once.
    fn signal_phase(&mut self, name: &str, job: u32, sigkill: bool, timed_out: bool, now: Instant) {
        self.signal_phase_with(name, job, sigkill, timed_out, now, None);
    }

    /// As [`Manager::signal_phase`]; `known` are the processes the SIGTERM just before
    /// found (systemd's SIGKILL follows at once there: they have not exited yet).
    fn signal_phase_with(
        &mut self,
        name: &str,
        job: u32,
        sigkill: bool,
        timed_out: bool,
        now: Instant,
        known: Option<Vec<u32>>,
    ) {
        let unit = self.units[name].clone();
        let dir = self.tracked_dir(&unit);
        let procs = known.unwrap_or_else(|| self.sink.procs(&dir));
        // Scopes have no main or control process: only the cgroup is signalled, by
        // control-group always, by mixed only with SIGKILL.
        let by_cgroup = match unit.kill.mode {
            KillMode::ControlGroup => true,
            KillMode::Mixed => sigkill,
            KillMode::Process | KillMode::None => false,
        };
        let sig = if sigkill {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        };
        let signalled = by_cgroup && !procs.is_empty();
        if signalled {
            for &pid in &procs {
                self.sink.signal(pid, sig);
                if !sigkill {
                    self.sink.signal(pid, libc::SIGCONT);
                }
            }
            self.sink.note(format!(
                "{name}: {} to {} process{}",
                signal_name(sig),
                procs.len(),
                if procs.len() == 1 { "" } else { "es" }
            ));
        }
        // unit_kill_context: on v1 a delegated unit's empty cgroup is not waited for.
        let wait = signalled && (self.layout.mode == CgroupMode::V2 || !unit.delegate);
        if wait {
            if let Some(u) = self.units.get_mut(name) {
                u.state = State::Stopping {
                    sigkill,
                    deadline: now + unit.kill.timeout,
                    job,
                    timed_out,
                };
            }
        } else if !sigkill {
            let known = signalled.then_some(procs);
            self.signal_phase_with(name, job, true, timed_out, now, known);
        } else {
            // Not waited for: systemd goes on at once, racing the processes' exit. The
            // simulation lets the SIGKILLed ones finish exiting first (at most 1 s), so the
            // cgroups' removal does not depend on the scheduler.
            if signalled {
                let until = Instant::now() + Duration::from_secs(1);
                while procs.iter().any(|&p| self.sink.pid_exists(p)) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            self.dead(name, job, timed_out);
        }
    }

    /// `scope_enter_dead`: the job is done; an inactive transient unit is collected (its
    /// cgroups removed, deepest first), a failed one stays until ResetFailedUnit.
    fn dead(&mut self, name: &str, job: u32, failed: bool) {
        if failed {
            if let Some(u) = self.units.get_mut(name) {
                u.state = State::Failed;
            }
            self.sink
                .note(format!("{name}: failed with result 'timeout'"));
        } else {
            self.collect(name);
        }
        self.finish_job(job, name, "done");
    }

    /// Forget a unit and remove its cgroups (what is still populated stays: EBUSY).
    fn collect(&mut self, name: &str) {
        let Some(unit) = self.units.remove(name) else {
            return;
        };
        self.gone.insert(name.to_owned());
        for dir in unit.realized.iter().rev() {
            if self.sink.exists(dir) {
                let _ = self.sink.rmdir(dir);
            }
        }
    }

    /// Running scopes whose processes are all gone are dead and collected
    /// (`scope_notify_cgroup_empty_event`). systemd learns it from cgroup.events (v2) or
    /// the release agent (v1) at once; the simulated systemd looks when it is next called.
    fn reap_empty(&mut self) {
        let empty: Vec<String> = self
            .units
            .iter()
            .filter(|(_, u)| u.ty == UnitType::Scope && u.had_pids && u.state == State::Active)
            .filter(|(_, u)| self.sink.procs(&self.tracked_dir(u)).is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for name in empty {
            self.sink.note(format!("{name}: cgroup empty"));
            self.collect(&name);
        }
    }

    /// Advance the stopping units: an empty cgroup ends the stop; a passed deadline sends
    /// SIGKILL (SendSIGKILL=yes) or gives up.
    pub fn poll(&mut self, now: Instant) {
        let stopping: Vec<(String, bool, Instant, u32, bool)> = self
            .units
            .iter()
            .filter_map(|(n, u)| match u.state {
                State::Stopping {
                    sigkill,
                    deadline,
                    job,
                    timed_out,
                } => Some((n.clone(), sigkill, deadline, job, timed_out)),
                _ => None,
            })
            .collect();
        for (name, sigkill, deadline, job, timed_out) in stopping {
            let unit = self.units[&name].clone();
            let empty = self.sink.procs(&self.tracked_dir(&unit)).is_empty();
            if empty {
                self.dead(&name, job, timed_out);
            } else if now >= deadline {
                if !sigkill && unit.kill.send_sigkill {
                    self.sink
                        .note(format!("{name}: stopping timed out, killing"));
                    self.signal_phase(&name, job, true, true, now);
                } else {
                    self.dead(&name, job, true);
                }
            }
        }
    }

    /// `KillUnit(name, whom, signal)`: the signal to the unit's processes (a scope has only
    /// its cgroup: `all`; `main`/`control` are refused as systemd refuses them).
    pub fn kill_unit(&mut self, name: &str, whom: &str, signal: i32) -> Result<(), BusError> {
        let call = format!("KillUnit {name} {whom} {}", signal_name(signal));
        let r = self.fault("KillUnit", name).and_then(|()| {
            let Some(unit) = self.units.get(name) else {
                return Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                ));
            };
            let whom = whom.strip_suffix("-fail").unwrap_or(whom);
            if !matches!(whom, "" | "all" | "main" | "control") {
                return Err(BusError::new(
                    INVALID_ARGS,
                    format!("Invalid who argument {whom}"),
                ));
            }
            if signal <= 0 || signal >= NSIG {
                return Err(BusError::new(INVALID_ARGS, "Signal number out of range."));
            }
            let ty = match unit.ty {
                UnitType::Scope => "scope",
                UnitType::Slice => "slice",
            };
            match whom {
                "main" => Err(BusError::new(
                    NO_SUCH_PROCESS,
                    format!("{ty} units have no main processes"),
                )),
                "control" => Err(BusError::new(
                    NO_SUCH_PROCESS,
                    format!("{ty} units have no control processes"),
                )),
                _ => Ok(self.tracked_dir(unit)),
            }
        });
        let r = r.map(|dir| {
            let procs = self.sink.procs(&dir);
            for &pid in &procs {
                self.sink.signal(pid, signal);
            }
            procs.len()
        });
        self.answer(call, r, |n| {
            format!("({n} process{})", if *n == 1 { "" } else { "es" })
        })
        .map(|_| ())
    }

    /// `AttachProcessesToUnit(name, subcgroup, pids)` (systemd 238+): the processes moved
    /// into the delegated, active unit's cgroup (or `subcgroup` below it) in every hierarchy
    /// it has. `sender` is the caller's pid, for pid 0.
    pub fn attach_processes_to_unit(
        &mut self,
        name: &str,
        subcgroup: &str,
        pids: &[u32],
        sender: Option<u32>,
    ) -> Result<(), BusError> {
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let call = format!(
            "AttachProcessesToUnit {name} {subcgroup:?} [{}]",
            list.join(",")
        );
        let r = self
            .fault("AttachProcessesToUnit", name)
            .and_then(|()| self.attachable(name, subcgroup, pids, sender));
        let (dirs, pids) = self.answer(call, r, |_| String::new())?;
        for dir in dirs {
            for &pid in &pids {
                if let Err(e) = self
                    .sink
                    .write(&join(&dir, "cgroup.procs"), &pid.to_string())
                {
                    return Err(BusError::new(
                        &errno_error_name(e),
                        format!(
                            "Failed to attach processes to control group: {}",
                            std::io::Error::from_raw_os_error(e)
                                .to_string()
                                .split(" (os error")
                                .next()
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The checks of `bus_unit_method_attach_processes` and `unit_pid_attachable`, in its
    /// order. Returns the directories to write and the pids.
    fn attachable(
        &self,
        name: &str,
        subcgroup: &str,
        pids: &[u32],
        sender: Option<u32>,
    ) -> Result<(Vec<String>, Vec<u32>), BusError> {
        if self.version < ATTACH_SINCE {
            return Err(BusError::new(
                UNKNOWN_METHOD,
                "Unknown method AttachProcessesToUnit or interface org.freedesktop.systemd1.Manager.",
            ));
        }
        let Some(unit) = self.units.get(name) else {
            return Err(BusError::new(
                NO_SUCH_UNIT,
                format!("Unit {name} not loaded."),
            ));
        };
        if !subcgroup.is_empty() {
            if !subcgroup.starts_with('/') {
                return Err(BusError::new(
                    INVALID_ARGS,
                    format!("Control group path is not absolute: {subcgroup}"),
                ));
            }
            if subcgroup.split('/').any(|p| p == "." || p == "..") || subcgroup.contains("//") {
                return Err(BusError::new(
                    INVALID_ARGS,
                    format!("Control group path is not normalized: {subcgroup}"),
                ));
            }
        }
        if !unit.delegate {
            return Err(BusError::new(
                INVALID_ARGS,
                "Process migration not available on non-delegated units.",
            ));
        }
        if unit.state != State::Active {
            return Err(BusError::new(INVALID_ARGS, "Unit is not active, refusing."));
        }
        let mut out: Vec<u32> = Vec::new();
        for &p in pids {
            let pid = if p == 0 { sender.unwrap_or(0) } else { p };
            if out.contains(&pid) {
                continue;
            }
            if pid == 1 {
                return Err(BusError::new(
                    INVALID_ARGS,
                    format!("Process {pid} is a manager process, refusing."),
                ));
            }
            if pid == 0 || !self.sink.pid_exists(pid) {
                return Err(BusError::new(
                    PID_UNKNOWN,
                    format!("Process with ID {pid} does not exist."),
                ));
            }
            out.push(pid);
        }
        let sub = subcgroup.trim_start_matches('/');
        let dirs = unit
            .realized
            .iter()
            .map(|d| join(d, sub))
            .collect::<Vec<_>>();
        Ok((dirs, out))
    }

    /// `ResetFailedUnit(name)`: a failed unit is forgotten.
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<(), BusError> {
        let call = format!("ResetFailedUnit {name}");
        let r = self
            .fault("ResetFailedUnit", name)
            .and_then(|()| match self.units.get(name) {
                None => Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                )),
                Some(u) if u.state == State::Failed => Ok(()),
                Some(_) => Ok(()),
            });
        self.answer(call, r, |_| String::new())?;
        if self
            .units
            .get(name)
            .is_some_and(|u| u.state == State::Failed)
        {
            self.collect(name);
        }
        Ok(())
    }

    /// `GetUnit(name)`: the unit's object path.
    pub fn get_unit(&mut self, name: &str) -> Result<String, BusError> {
        let call = format!("GetUnit {name}");
        let r = self.fault("GetUnit", name).and_then(|()| {
            if self.units.contains_key(name) {
                Ok(units::object_path(name))
            } else {
                Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                ))
            }
        });
        self.answer(call, r, |p| p.clone())
    }

    /// `SetUnitProperties(name, runtime, properties)`: checked like StartTransientUnit's,
    /// limits written to the unit's cgroups.
    pub fn set_unit_properties(
        &mut self,
        name: &str,
        runtime: bool,
        props: &[(String, OwnedValue)],
    ) -> Result<(), BusError> {
        let call = Self::describe(
            "SetUnitProperties",
            &[name, if runtime { "runtime" } else { "persistent" }],
            props,
        );
        let r = self.fault("SetUnitProperties", name).and_then(|()| {
            if !self.units.contains_key(name) {
                return Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                ));
            }
            self.checked(props).map(|_| ())
        });
        self.answer(call, r, |_| String::new())?;
        if let Some(u) = self.units.get_mut(name) {
            let mut kept = clone_values(&u.props);
            for (n, v) in props {
                if let Ok(c) = v.try_clone() {
                    kept.insert(n.clone(), c);
                }
            }
            u.props = std::sync::Arc::new(kept);
        }
        let unit = self.units[name].clone();
        let sets = self.checked(props).unwrap_or_default();
        let limits: Vec<(&Property, &Value)> = sets
            .iter()
            .filter(|s| s.row.format.is_some())
            .map(|s| (s.row, s.value))
            .collect();
        let v2 = self.layout.mode == CgroupMode::V2;
        for dir in &unit.realized {
            let ctrls = if v2 {
                None
            } else {
                self.layout
                    .v1
                    .iter()
                    .find(|(d, _)| dir.starts_with(&format!("{d}/")))
                    .map(|(_, c)| c.clone())
            };
            match (v2, ctrls) {
                (true, _) => self.write_limits(dir, None, &limits, true),
                (false, Some(c)) => self.write_limits(dir, Some(&c), &limits, false),
                (false, None) => {}
            }
        }
        Ok(())
    }

    /// `Subscribe()` / `Unsubscribe()`: logged (signals go to every client anyway).
    pub fn subscribe(&mut self, method: &str) -> Result<(), BusError> {
        let r = self.fault(method, "");
        self.answer(method.to_owned(), r, |_| String::new())
    }

    /// A unit object's properties on `iface` (`org.freedesktop.systemd1.Unit`, `.Scope`,
    /// `.Slice`), as Get/GetAll serve them: the unit's state, its cgroup, and the
    /// properties it was given that this systemd knows; None if there is no such unit
    /// (or it has no such interface).
    pub fn unit_properties(&self, name: &str, iface: &str) -> Option<Vec<(String, OwnedValue)>> {
        let s = |x: &str| OwnedValue::from(zvariant::Str::from(x.to_owned()));
        let Some(unit) = self.units.get(name) else {
            // A collected unit, loaded again by its object path: not found, inactive.
            if !self.gone.contains(name) {
                return None;
            }
            let ty = units::unit_type(name)?;
            return match (iface, ty) {
                ("org.freedesktop.systemd1.Unit", _) => Some(vec![
                    ("Id".into(), s(name)),
                    ("Description".into(), s(name)),
                    ("LoadState".into(), s("not-found")),
                    ("ActiveState".into(), s("inactive")),
                    ("SubState".into(), s("dead")),
                ]),
                ("org.freedesktop.systemd1.Scope", UnitType::Scope)
                | ("org.freedesktop.systemd1.Slice", UnitType::Slice) => Some(vec![
                    ("Slice".into(), s("")),
                    ("ControlGroup".into(), s("")),
                ]),
                _ => None,
            };
        };
        let (active, sub) = match (&unit.state, unit.ty) {
            (State::Active, UnitType::Scope) => ("active", "running"),
            (State::Active, UnitType::Slice) => ("active", "active"),
            (State::Stopping { sigkill: false, .. }, _) => ("deactivating", "stop-sigterm"),
            (State::Stopping { sigkill: true, .. }, _) => ("deactivating", "stop-sigkill"),
            (State::Failed, _) => ("failed", "failed"),
        };
        let mut out: Vec<(String, OwnedValue)> = Vec::new();
        let given = |keys: &[&str], out: &mut Vec<(String, OwnedValue)>| {
            for k in keys {
                if let Some(v) = unit.props.get(*k).and_then(|v| v.try_clone().ok()) {
                    out.push(((*k).to_owned(), v));
                }
            }
        };
        let type_iface = match unit.ty {
            UnitType::Scope => "org.freedesktop.systemd1.Scope",
            UnitType::Slice => "org.freedesktop.systemd1.Slice",
        };
        if iface == "org.freedesktop.systemd1.Unit" {
            out.push(("Id".into(), s(name)));
            out.push((
                "Names".into(),
                OwnedValue::try_from(Value::from(vec![name.to_owned()])).ok()?,
            ));
            let description = unit
                .props
                .get("Description")
                .and_then(|v| as_str(v).map(str::to_owned))
                .unwrap_or_else(|| name.to_owned());
            out.push(("Description".into(), s(&description)));
            out.push(("LoadState".into(), s("loaded")));
            out.push(("ActiveState".into(), s(active)));
            out.push(("SubState".into(), s(sub)));
            out.push(("Transient".into(), OwnedValue::from(true)));
            given(&["DefaultDependencies"], &mut out);
        } else if iface == type_iface {
            let slice = match unit.ty {
                UnitType::Scope => unit
                    .props
                    .get("Slice")
                    .and_then(|v| as_str(v).map(str::to_owned))
                    .unwrap_or_else(|| "system.slice".into()),
                UnitType::Slice => match name.rsplit_once('-') {
                    Some((parent, _)) => format!("{parent}.slice"),
                    None => "-.slice".into(),
                },
            };
            out.push(("Slice".into(), s(&slice)));
            out.push(("ControlGroup".into(), s(&format!("/{}", unit.cgroup))));
            // What it was given, by the names this version knows (PIDs is no property).
            let known: Vec<&str> = self
                .table
                .property
                .iter()
                .filter(|p| p.since <= self.version)
                .map(|p| p.name.as_str())
                .filter(|n| {
                    !matches!(
                        *n,
                        "PIDs"
                            | "Slice"
                            | "Description"
                            | "DefaultDependencies"
                            | "Wants"
                            | "After"
                            | "Before"
                            | "Requires"
                    )
                })
                .collect();
            given(&known, &mut out);
        } else {
            return None;
        }
        Some(out)
    }

    /// The names of the units loaded.
    pub fn unit_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.units.keys().cloned().collect();
        names.extend(self.gone.iter().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// The unit's cgroup below the hierarchy root (`ControlGroup` without the leading /).
    pub fn control_group(&self, name: &str) -> Option<String> {
        self.units.get(name).map(|u| u.cgroup.clone())
    }
}

fn job_path(id: u32) -> String {
    format!("/org/freedesktop/systemd1/job/{id}")
}

/// `SIGTERM`, `SIGKILL`, ... (the number for others).
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        _ => return sig.to_string(),
    };
    name.to_owned()
}

/// The D-Bus error name sd-bus gives an errno (`sd_bus_error_set_errnof`,
/// bus-error.c's map), for the ones a cgroup write returns.
fn errno_error_name(e: i32) -> String {
    let n = match e {
        libc::ENOMEM => "org.freedesktop.DBus.Error.NoMemory",
        libc::EPERM | libc::EACCES => "org.freedesktop.DBus.Error.AccessDenied",
        libc::EINVAL => "org.freedesktop.DBus.Error.InvalidArgs",
        libc::ESRCH => PID_UNKNOWN,
        libc::ENOENT => "org.freedesktop.DBus.Error.FileNotFound",
        libc::EEXIST => "org.freedesktop.DBus.Error.FileExists",
        libc::ETIMEDOUT => "org.freedesktop.DBus.Error.Timeout",
        libc::EIO => "org.freedesktop.DBus.Error.IOError",
        libc::ENOSPC => "org.freedesktop.DBus.Error.LimitsExceeded",
        _ => {
            let name = crate::sandbox::cgroupfs::errno_name(e);
            return format!("System.Error.{name}");
        }
    };
    n.to_owned()
}

/// A copy of a property map (OwnedValue clones can fail only for file descriptors, which
/// no unit property carries).
fn clone_values(map: &BTreeMap<String, OwnedValue>) -> BTreeMap<String, OwnedValue> {
    map.iter()
        .filter_map(|(k, v)| v.try_clone().ok().map(|v| (k.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests;
