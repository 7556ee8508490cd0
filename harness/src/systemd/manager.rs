//! The manager's methods that container runtimes call, on a [`Cgroups`] sink: property
//! checks against the host's systemd version ([`Table`]), units and jobs, and the cgroups
//! systemd makes for a unit on each layout (slices created on demand; v1: `name=systemd`
//! plus the hierarchies of the controllers the unit's properties enable; hybrid: also
//! `unified/`; v2: the controllers enabled in every parent's `cgroup.subtree_control`,
//! one `+controller` write each, as systemd writes them), limits written, PIDs moved.
//!
//! Pure: no D-Bus here ([`super::bus`] is the wire side), so unit tests drive it directly.

use std::collections::{BTreeMap, HashMap};

use zvariant::{OwnedValue, Value};

use super::properties::{self, Format, Property, Table};
use super::units::{self, join, Layout, UnitType};
use super::{BusError, Cgroups, DbusFault};
use crate::fault::When;
use crate::host::CgroupMode;

const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";

/// A finished job, as the JobRemoved signal reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u32,
    pub path: String,
    pub unit: String,
    /// `done` or `failed`.
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Active,
    Failed,
}

#[derive(Debug, Clone)]
struct Unit {
    /// Below each hierarchy's root.
    cgroup: String,
    /// Directories made for it, relative to /sys/fs/cgroup.
    realized: Vec<String>,
    state: State,
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
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// A line in the op log.
    pub fn note(&mut self, line: String) {
        self.sink.note(line);
    }

    /// The scenario's fault on this call of `method`, if one fires (counts the call).
    fn fault(&mut self, method: &str) -> Result<(), BusError> {
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
                return Err(BusError::new(&f.error, f.message.clone()));
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

    /// `StartTransientUnit(name, mode, properties, aux)`: the job once it has run (the
    /// caller sends JobRemoved), or systemd's error (nothing created).
    pub fn start_transient_unit(
        &mut self,
        name: &str,
        mode: &str,
        props: &[(String, OwnedValue)],
    ) -> Result<Job, BusError> {
        let call = Self::describe("StartTransientUnit", &[name, mode], props);
        let r = self
            .fault("StartTransientUnit")
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
        self.units.insert(
            name.to_owned(),
            Unit {
                cgroup,
                realized,
                state: if ok { State::Active } else { State::Failed },
            },
        );
        Ok(self.finish_job(id, name, result))
    }

    fn finish_job(&mut self, id: u32, unit: &str, result: &'static str) -> Job {
        self.sink.note(format!("JobRemoved {id} {unit} {result}"));
        Job {
            id,
            path: format!("/org/freedesktop/systemd1/job/{id}"),
            unit: unit.to_owned(),
            result,
        }
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

    /// `StopUnit(name, mode)`: the unit's cgroups removed (deepest first), the unit gone.
    /// Processes still in them are not killed (the simulated systemd sends no signals):
    /// the rmdir then fails with EBUSY in the op log.
    pub fn stop_unit(&mut self, name: &str, mode: &str) -> Result<Job, BusError> {
        let call = format!("StopUnit {name} {mode}");
        let r = self.fault("StopUnit").and_then(|()| {
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
        let unit = self.units.remove(name).expect("checked above");
        let mut ok = true;
        for dir in unit.realized.iter().rev() {
            if self.sink.exists(dir) {
                ok &= self.sink.rmdir(dir).is_ok();
            }
        }
        Ok(self.finish_job(id, name, if ok { "done" } else { "failed" }))
    }

    /// `ResetFailedUnit(name)`: a failed unit is forgotten.
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<(), BusError> {
        let call = format!("ResetFailedUnit {name}");
        let r = self
            .fault("ResetFailedUnit")
            .and_then(|()| match self.units.get(name) {
                None => Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                )),
                Some(u) if u.state == State::Failed => {
                    self.units.remove(name);
                    Ok(())
                }
                Some(_) => Ok(()),
            });
        self.answer(call, r, |_| String::new())
    }

    /// `GetUnit(name)`: the unit's object path.
    pub fn get_unit(&mut self, name: &str) -> Result<String, BusError> {
        let call = format!("GetUnit {name}");
        let r = self.fault("GetUnit").and_then(|()| {
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
        let r = self.fault("SetUnitProperties").and_then(|()| {
            if !self.units.contains_key(name) {
                return Err(BusError::new(
                    NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                ));
            }
            self.checked(props).map(|_| ())
        });
        self.answer(call, r, |_| String::new())?;
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
        let r = self.fault(method);
        self.answer(method.to_owned(), r, |_| String::new())
    }

    /// The unit's cgroup below the hierarchy root (`ControlGroup` without the leading /).
    pub fn control_group(&self, name: &str) -> Option<String> {
        self.units.get(name).map(|u| u.cgroup.clone())
    }
}

#[cfg(test)]
mod tests;
