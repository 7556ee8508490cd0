//! What a sweep injects: the fault sites of a baseline run (each distinct op × path of the
//! cgroupfs model's op log, and each method of the host's systemd the target called) and,
//! for each, the faults the real kernel can produce there (the errno table in
//! `fixtures/sweep/errnos.toml`, short writes, delays past the caller's deadline) or the
//! errors systemd answers to that method (`fixtures/sweep/dbus-errors.toml`). Pure: the
//! op log in, a sorted list of [`Injection`]s out.

use std::path::Path;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::fault::{parse_errno, Effect, Fault as OpFault, Op, When};
use crate::scenario::Case;

/// An operation of the op log the sweep can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SiteOp {
    Mkdir,
    Rmdir,
    Write,
    Read,
    /// A call to the host's systemd; the site's path is the method's name.
    Dbus,
}

impl SiteOp {
    pub fn name(self) -> &'static str {
        match self {
            SiteOp::Mkdir => "mkdir",
            SiteOp::Rmdir => "rmdir",
            SiteOp::Write => "write",
            SiteOp::Read => "read",
            SiteOp::Dbus => "dbus",
        }
    }
}

/// One operation on one path (relative to /sys/fs/cgroup), as the baseline made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Site {
    pub op: SiteOp,
    pub path: String,
    /// The first value written there (writes), for short writes.
    pub value: Option<String>,
}

impl Site {
    /// The last path component: the file, or the group for mkdir/rmdir.
    pub fn file(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// One op-log line, parsed: `write cpuset/x/cpuset.cpus "0-1" -> ok`.
pub fn parse_log_line(line: &str) -> Option<(String, String, Option<String>, String)> {
    let (op, rest) = line.split_once(' ')?;
    let (body, result) = rest.rsplit_once(" -> ")?;
    let (path, value) = match body.split_once(' ') {
        Some((p, v)) => (
            p,
            Some(serde_json::from_str::<String>(v).unwrap_or_else(|_| v.trim_matches('"').into())),
        ),
        None => (body, None),
    };
    Some((op.to_owned(), path.to_owned(), value, result.to_owned()))
}

/// Methods of the minimal bus in front of the simulated systemd (harness/src/systemd/bus.rs).
const BUS_METHODS: &[&str] = &[
    "Hello",
    "AddMatch",
    "RemoveMatch",
    "GetNameOwner",
    "NameHasOwner",
    "ListNames",
    "GetId",
    "RequestName",
    "ReleaseName",
    "GetConnectionUnixUser",
];

/// The distinct op × path sites of an op log that succeeded in the baseline, in first-use
/// order, at most `cap` of them (the rest are counted in the second value).
pub fn sites(op_log: &[String], cap: usize) -> (Vec<Site>, usize) {
    let mut out: Vec<Site> = Vec::new();
    let mut dropped = 0;
    for line in op_log {
        // `dbus StartTransientUnit x.scope replace ... -> ok job 1`: the method called.
        if let Some(rest) = line.strip_prefix("dbus ") {
            let method = rest.split(' ').next().unwrap_or_default();
            // The bus's own methods (Hello, AddMatch, ...) are not systemd's.
            if BUS_METHODS.contains(&method) {
                continue;
            }
            let ok = rest
                .rsplit_once(" -> ")
                .is_some_and(|(_, r)| r == "ok" || r.starts_with("ok "));
            if !ok || out.iter().any(|s| s.op == SiteOp::Dbus && s.path == method) {
                continue;
            }
            if out.len() >= cap {
                dropped += 1;
                continue;
            }
            out.push(Site {
                op: SiteOp::Dbus,
                path: method.to_owned(),
                value: None,
            });
            continue;
        }
        let Some((op, path, value, result)) = parse_log_line(line) else {
            continue;
        };
        if result != "ok" {
            continue;
        }
        let op = match op.as_str() {
            "mkdir" => SiteOp::Mkdir,
            "rmdir" => SiteOp::Rmdir,
            "write" => SiteOp::Write,
            "read" => SiteOp::Read,
            _ => continue,
        };
        if out.iter().any(|s| s.op == op && s.path == path) {
            continue;
        }
        if out.len() >= cap {
            dropped += 1;
            continue;
        }
        out.push(Site { op, path, value });
    }
    (out, dropped)
}

/// What an injection does at its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with this errno (by name), every time.
    Errno(String),
    /// Opening the file fails with this errno (the file is not there for the caller).
    OpenErrno(String),
    /// A write accepts only this many bytes.
    Short(usize),
    /// The operation is held this long (past the caller's deadline), then proceeds.
    Delay(Duration),
    /// systemd answers the method with this D-Bus error.
    Dbus { error: String, message: String },
}

impl Fault {
    /// `EINVAL`, `open ENOENT`, `short 4`, `delay 3s`.
    pub fn label(&self) -> String {
        match self {
            Fault::Errno(e) => e.clone(),
            Fault::OpenErrno(e) => format!("open {e}"),
            Fault::Short(n) => format!("short {n}"),
            Fault::Delay(d) => format!("delay {}", humantime::format_duration(*d)),
            Fault::Dbus { error, .. } => error.clone(),
        }
    }
}

/// One fault at one site: one run of the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub site: Site,
    pub fault: Fault,
}

impl Injection {
    /// Stable key (state file, ordering): `write memory/x/memory.max EINVAL`.
    pub fn key(&self) -> String {
        format!(
            "{} {} {}",
            self.site.op.name(),
            self.site.path,
            self.fault.label()
        )
    }

    /// The absolute glob that matches exactly this site's path.
    pub fn glob(&self) -> String {
        format!("/sys/fs/cgroup/{}", globset::escape(&self.site.path))
    }

    /// The case with this fault added (expectations dropped: the sweep judges the outcome).
    pub fn apply(&self, base: &Case) -> Case {
        let mut c = base.clone();
        c.expect.clear();
        c.name = format!("{} [{}]", base.name, self.key());
        let glob = self.glob();
        let op = match self.site.op {
            SiteOp::Mkdir => Op::Mkdir,
            SiteOp::Rmdir => Op::Rmdir,
            SiteOp::Write => Op::Write,
            SiteOp::Read => Op::Read,
            SiteOp::Dbus => Op::Write,
        };
        // The injected fault comes after the scenario's own.
        let id = c.op_faults.len() as u32 + 1;
        let (op, effect, delay) = match &self.fault {
            Fault::Dbus { error, message } => {
                c.dbus_faults.push(crate::systemd::DbusFault {
                    method: self.site.path.clone(),
                    error: error.clone(),
                    message: message.clone(),
                    when: When::Always,
                });
                return c;
            }
            Fault::Errno(e) => (op, parse_errno(e).ok().map(Effect::Errno), None),
            Fault::OpenErrno(e) => (Op::Open, parse_errno(e).ok().map(Effect::Errno), None),
            Fault::Delay(d) => (op, None, Some(*d)),
            Fault::Short(n) => (Op::Write, Some(Effect::Short(*n)), None),
        };
        c.op_faults.push(OpFault {
            id,
            op,
            path: glob,
            effect,
            delay,
            when: When::Always,
        });
        c
    }
}

/// cgroup v1 hierarchy or cgroup2, for the errno table's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    V1,
    V2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    op: String,
    file: String,
    mode: String,
    errnos: Vec<String>,
    #[allow(dead_code)]
    source: String,
}

struct Rule {
    op: String,
    file: GlobMatcher,
    mode: Option<Mode>,
    errnos: Vec<String>,
}

/// `fixtures/sweep/errnos.toml`: which errnos the kernel can answer to an op on a file.
pub struct ErrnoTable {
    rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Parse {
        path: String,
        #[source]
        err: RuleError,
    },
}

/// A broken rule of `fixtures/sweep/errnos.toml` or `dbus-errors.toml` (or the file not
/// being TOML).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error("rule #{n}: unknown op `{op}` (mkdir, rmdir, write, read, open)")]
    UnknownOp { n: usize, op: String },
    #[error("rule #{n}: mode `{mode}`: expected v1, v2 or any")]
    Mode { n: usize, mode: String },
    #[error("rule #{n}: unknown errno `{errno}`")]
    Errno { n: usize, errno: String },
    #[error(
        "method {method}: `{name}` is not a D-Bus error name (org.freedesktop.systemd1.NoSuchUnit)"
    )]
    DbusName { method: String, name: String },
    #[error("rule #{n}: file glob: {source}")]
    Glob {
        n: usize,
        #[source]
        source: globset::Error,
    },
}

impl ErrnoTable {
    pub fn load(path: &Path) -> Result<ErrnoTable, TableError> {
        let src = std::fs::read_to_string(path).map_err(|err| TableError::Read {
            path: path.display().to_string(),
            err,
        })?;
        ErrnoTable::parse(&src).map_err(|err| TableError::Parse {
            path: path.display().to_string(),
            err,
        })
    }

    pub fn parse(src: &str) -> Result<ErrnoTable, RuleError> {
        let raw: RawTable = toml::from_str(src)?;
        let mut rules = Vec::new();
        for (i, r) in raw.rule.into_iter().enumerate() {
            let n = i + 1;
            if !["mkdir", "rmdir", "write", "read", "open"].contains(&r.op.as_str()) {
                return Err(RuleError::UnknownOp { n, op: r.op });
            }
            let mode = match r.mode.as_str() {
                "any" => None,
                "v1" => Some(Mode::V1),
                "v2" => Some(Mode::V2),
                m => {
                    return Err(RuleError::Mode {
                        n,
                        mode: m.to_owned(),
                    })
                }
            };
            for e in &r.errnos {
                parse_errno(e).map_err(|_| RuleError::Errno {
                    n,
                    errno: e.clone(),
                })?;
            }
            let file = GlobBuilder::new(&r.file)
                .literal_separator(true)
                .build()
                .map_err(|source| RuleError::Glob { n, source })?
                .compile_matcher();
            rules.push(Rule {
                op: r.op,
                file,
                mode,
                errnos: r.errnos,
            });
        }
        Ok(ErrnoTable { rules })
    }

    /// The errnos for `op` (`write`, `open`, ...) on `file` in a `mode` hierarchy.
    pub fn errnos(&self, op: &str, file: &str, mode: Mode) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            if r.op == op && r.mode.is_none_or(|m| m == mode) && r.file.is_match(file) {
                for e in &r.errnos {
                    if !out.contains(e) {
                        out.push(e.clone());
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDbusTable {
    method: Vec<RawMethod>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    name: String,
    error: Vec<RawDbusError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDbusError {
    name: String,
    message: String,
    #[allow(dead_code)]
    source: String,
}

/// `fixtures/sweep/dbus-errors.toml`: the errors systemd answers to each manager method.
pub struct DbusErrors {
    methods: Vec<(String, Vec<(String, String)>)>,
}

impl DbusErrors {
    pub fn load(path: &Path) -> Result<DbusErrors, TableError> {
        let src = std::fs::read_to_string(path).map_err(|err| TableError::Read {
            path: path.display().to_string(),
            err,
        })?;
        DbusErrors::parse(&src).map_err(|err| TableError::Parse {
            path: path.display().to_string(),
            err,
        })
    }

    pub fn parse(src: &str) -> Result<DbusErrors, RuleError> {
        let raw: RawDbusTable = toml::from_str(src)?;
        let mut methods = Vec::new();
        for m in raw.method {
            let mut errors = Vec::new();
            for e in m.error {
                zbus::names::ErrorName::try_from(e.name.as_str()).map_err(|_| {
                    RuleError::DbusName {
                        method: m.name.clone(),
                        name: e.name.clone(),
                    }
                })?;
                errors.push((e.name, e.message));
            }
            methods.push((m.name, errors));
        }
        Ok(DbusErrors { methods })
    }

    /// The errors for a method (none for a method the table does not list).
    pub fn errors(&self, method: &str) -> &[(String, String)] {
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map_or(&[], |(_, e)| e.as_slice())
    }
}

/// Whether a path (relative to /sys/fs/cgroup) lies on cgroup2, given the host's layout.
pub fn mode_of(path: &str, host: crate::host::CgroupMode) -> Mode {
    match host {
        crate::host::CgroupMode::V2 => Mode::V2,
        _ if path == "unified" || path.starts_with("unified/") => Mode::V2,
        _ => Mode::V1,
    }
}

/// Every injection for these sites: the table's errnos per op (and, for writes and reads,
/// the open errnos), a short write (half the value) for writes of two bytes or more, and a
/// delay past `deadline` where the caller has one.
pub fn injections(
    sites: &[Site],
    table: &ErrnoTable,
    dbus: &DbusErrors,
    host: crate::host::CgroupMode,
    deadline: Option<Duration>,
) -> Vec<Injection> {
    let mut out = Vec::new();
    for s in sites {
        if s.op == SiteOp::Dbus {
            for (error, message) in dbus.errors(&s.path) {
                out.push(Injection {
                    site: s.clone(),
                    fault: Fault::Dbus {
                        error: error.clone(),
                        message: message.clone(),
                    },
                });
            }
            continue;
        }
        let mode = mode_of(&s.path, host);
        let file = s.file();
        for e in table.errnos(s.op.name(), file, mode) {
            out.push(Injection {
                site: s.clone(),
                fault: Fault::Errno(e),
            });
        }
        if matches!(s.op, SiteOp::Write | SiteOp::Read) {
            for e in table.errnos("open", file, mode) {
                let i = Injection {
                    site: s.clone(),
                    fault: Fault::OpenErrno(e),
                };
                // One open fault per path (a file both read and written opens either way).
                if !out
                    .iter()
                    .any(|o: &Injection| o.site.path == s.path && o.fault == i.fault)
                {
                    out.push(i);
                }
            }
        }
        if s.op == SiteOp::Write {
            if let Some(v) = &s.value {
                if v.len() >= 2 {
                    out.push(Injection {
                        site: s.clone(),
                        fault: Fault::Short(v.len() / 2),
                    });
                }
            }
        }
        if let Some(d) = deadline {
            if matches!(s.op, SiteOp::Write | SiteOp::Mkdir) {
                out.push(Injection {
                    site: s.clone(),
                    fault: Fault::Delay(d + Duration::from_secs(1)),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[&str] = &[
        "lookup memory/k -> ENOENT",
        "mkdir memory/k -> ok",
        "write cpu,cpuacct/k/cgroup.procs \"2\" -> ok",
        "write cpu,cpuacct/k/cgroup.procs \"2\" -> ok",
        "write memory/k/memory.limit_in_bytes \"268435456\" -> ok",
        "write memory/k/memory.limit_in_bytes \"-1\" -> EINVAL",
        "read memory/k/memory.stat -> ok",
        "rmdir memory/k -> EBUSY",
    ];

    fn log() -> Vec<String> {
        LOG.iter().map(|s| s.to_string()).collect()
    }

    fn no_dbus() -> DbusErrors {
        DbusErrors::parse("method = []").unwrap()
    }

    #[test]
    fn each_systemd_method_the_target_called_is_failed_with_the_errors_systemd_answers() {
        let log: Vec<String> = [
            "dbus Hello -> ok :1.2",
            "dbus StartTransientUnit a.scope replace PIDs=[7] -> ok job 1",
            "mkdir a.scope -> ok",
            "dbus JobRemoved 1 a.scope done",
            "dbus GetUnit b.scope -> error org.freedesktop.systemd1.NoSuchUnit: Unit b.scope not loaded.",
            "dbus StartTransientUnit b.scope replace -> ok job 2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (s, _) = sites(&log, 100);
        let got: Vec<(SiteOp, &str)> = s.iter().map(|s| (s.op, s.path.as_str())).collect();
        assert_eq!(
            got,
            [
                (SiteOp::Dbus, "StartTransientUnit"),
                (SiteOp::Mkdir, "a.scope")
            ]
        );
        let table = DbusErrors::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sweep/dbus-errors.toml"),
        )
        .unwrap();
        let t = ErrnoTable::parse("rule = []").unwrap();
        let keys: Vec<String> = injections(&s[..1], &t, &table, crate::host::CgroupMode::V2, None)
            .iter()
            .map(Injection::key)
            .collect();
        // Hello is the bus's, not systemd's: not a site.
        assert_eq!(
            keys,
            [
                "dbus StartTransientUnit org.freedesktop.systemd1.UnitExists",
                "dbus StartTransientUnit org.freedesktop.systemd1.TransactionIsDestructive",
                "dbus StartTransientUnit org.freedesktop.DBus.Error.AccessDenied",
            ]
        );
        assert!(DbusErrors::parse(
            "[[method]]\nname='StopUnit'\n[[method.error]]\nname='no dots'\nmessage=''\nsource=''\n"
        )
        .is_err());
    }

    #[test]
    fn sites_are_the_distinct_successful_ops_in_first_use_order() {
        let (s, dropped) = sites(&log(), 100);
        let got: Vec<(SiteOp, &str)> = s.iter().map(|s| (s.op, s.path.as_str())).collect();
        assert_eq!(
            got,
            [
                (SiteOp::Mkdir, "memory/k"),
                (SiteOp::Write, "cpu,cpuacct/k/cgroup.procs"),
                (SiteOp::Write, "memory/k/memory.limit_in_bytes"),
                (SiteOp::Read, "memory/k/memory.stat"),
            ]
        );
        assert_eq!(dropped, 0);
        assert_eq!(s[2].value.as_deref(), Some("268435456"));
        let (s, dropped) = sites(&log(), 2);
        assert_eq!((s.len(), dropped), (2, 2));
    }

    #[test]
    fn the_repository_table_gives_captured_errnos_per_file_and_mode() {
        let t = ErrnoTable::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sweep/errnos.toml"),
        )
        .unwrap();
        assert_eq!(
            t.errnos("write", "memory.limit_in_bytes", Mode::V1),
            ["EINVAL", "EBUSY", "ENODEV"]
        );
        assert_eq!(
            t.errnos("write", "memory.max", Mode::V2),
            ["EINVAL", "ENODEV"]
        );
        assert_eq!(
            t.errnos("write", "cgroup.procs", Mode::V2),
            ["EBUSY", "EINVAL", "ESRCH", "ENODEV"]
        );
        assert_eq!(t.errnos("open", "memory.max", Mode::V2), ["ENOENT"]);
        assert!(t
            .errnos("open", "memory.limit_in_bytes", Mode::V1)
            .is_empty());
        assert!(!t
            .errnos("mkdir", "x", Mode::V1)
            .contains(&"EEXIST".to_string()));
    }

    #[test]
    fn a_bad_table_names_the_rule() {
        let e =
            ErrnoTable::parse("[[rule]]\nop='write'\nfile='*'\nmode='v3'\nerrnos=[]\nsource=''\n")
                .err()
                .unwrap();
        assert!(e.to_string().contains("rule #1: mode `v3`"), "{e}");
        let e = ErrnoTable::parse(
            "[[rule]]\nop='write'\nfile='*'\nmode='v1'\nerrnos=['EWAT']\nsource=''\n",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("unknown errno `EWAT`"), "{e}");
    }

    #[test]
    fn injections_cover_errnos_short_writes_and_deadlines() {
        let t = ErrnoTable::parse(
            "[[rule]]\nop='write'\nfile='memory.max'\nmode='v2'\nerrnos=['EINVAL']\nsource=''\n\
             [[rule]]\nop='open'\nfile='memory.*'\nmode='v2'\nerrnos=['ENOENT']\nsource=''\n",
        )
        .unwrap();
        let s = vec![Site {
            op: SiteOp::Write,
            path: "k/memory.max".into(),
            value: Some("268435456".into()),
        }];
        let keys: Vec<String> = injections(&s, &t, &no_dbus(), crate::host::CgroupMode::V2, None)
            .iter()
            .map(Injection::key)
            .collect();
        assert_eq!(
            keys,
            [
                "write k/memory.max EINVAL",
                "write k/memory.max open ENOENT",
                "write k/memory.max short 4"
            ]
        );
        let with_deadline = injections(
            &s,
            &t,
            &no_dbus(),
            crate::host::CgroupMode::V2,
            Some(Duration::from_secs(2)),
        );
        assert_eq!(
            with_deadline.last().unwrap().key(),
            "write k/memory.max delay 3s"
        );
        // On a v1 host the same file name has no v2 rule.
        assert_eq!(
            injections(&s, &t, &no_dbus(), crate::host::CgroupMode::V1, None).len(),
            1
        );
    }

    #[test]
    fn a_site_glob_matches_its_path_literally() {
        let i = Injection {
            site: Site {
                op: SiteOp::Write,
                path: "cpu,cpuacct/k[1]/cpu.shares".into(),
                value: None,
            },
            fault: Fault::Errno("EINVAL".into()),
        };
        let g = globset::Glob::new(&i.glob()).unwrap().compile_matcher();
        assert!(g.is_match("/sys/fs/cgroup/cpu,cpuacct/k[1]/cpu.shares"));
        assert!(!g.is_match("/sys/fs/cgroup/cpu,cpuacct/k1/cpu.shares"));
    }
}
