//! The in-memory cgroupfs and its semantics. Pure: no FUSE, no syscalls (process lookups
//! go through [`Pids`]), so unit tests and the fidelity check drive it directly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use libc::{
    EACCES, EBUSY, EEXIST, EINVAL, ENOENT, ENOSPC, ENOTDIR, EOPNOTSUPP, EPERM, EROFS, ESRCH,
};

use super::faults::FaultSet;
use super::values::{self, Parse};
use super::{LogEntry, LogOp};
use crate::fault::{Effect, Fault, FaultHit, Op};
use crate::host::data::KernelTables;
use crate::host::tree::{self, files_for, Layer, Level, Node as PlanNode};
use crate::host::{CgroupMode, ContentFault, Host, HostData, HostError, KernelVersion};
use crate::sandbox::Effects;

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// Processes of the case, as the model needs them. Pids are those of the case's PID
/// namespace (what the target writes and reads).
pub trait Pids: Send {
    /// The process (or thread) exists.
    fn exists(&self, pid: u32) -> bool;
    /// The thread group of a task id (itself for a process).
    fn tgid(&self, tid: u32) -> Option<u32> {
        self.charged(tid).then_some(tid)
    }
    /// Send SIGKILL to the process (`cgroup.kill`). Without real processes: nothing to do.
    fn kill(&self, _pid: u32) {}
    /// The task is still charged to its pids controller: alive, or exited and not yet
    /// reaped (kernel/cgroup/pids.c uncharges in `pids_release`, when the zombie is reaped).
    fn charged(&self, pid: u32) -> bool {
        self.exists(pid)
    }
    /// The tasks (thread ids) of a process; a thread id answers itself.
    fn threads(&self, pid: u32) -> Vec<u32> {
        vec![pid]
    }
    /// The parent process of a task (0 for the case's init), if the task is there.
    fn ppid(&self, _pid: u32) -> Option<u32> {
        None
    }
    /// Every process of the case (thread-group ids).
    fn all(&self) -> Vec<u32> {
        Vec::new()
    }
    /// Send `sig` to the process (the host's systemd stopping or killing a unit).
    fn signal(&self, pid: u32, sig: i32) {
        if sig == libc::SIGKILL {
            self.kill(pid);
        }
    }
}

/// Every pid exists (tests, fidelity check without processes).
pub struct AnyPid;
impl Pids for AnyPid {
    fn exists(&self, _: u32) -> bool {
        true
    }
}

/// Controllers that v2 allows in a group with processes (threaded controllers,
/// `cgrp_dfl_threaded_ss_mask`): enabling only these never hits the no-internal-process rule.
const THREADED_CONTROLLERS: &[&str] = &["cpuset", "cpu", "perf_event", "pids"];

/// Core files whose content the model renders from state on every read.
const DYNAMIC: &[&str] = &[
    "cgroup.procs",
    "tasks",
    "cgroup.threads",
    "cgroup.controllers",
    "cgroup.subtree_control",
    "cgroup.events",
    "cgroup.type",
    "cgroup.stat",
    "pids.current",
    "pids.peak",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
}

#[derive(Debug, Clone)]
enum Body {
    /// The tmpfs holding the v1 hierarchies (read-only, as systemd mounts it).
    Top,
    Group(Box<Group>),
    File {
        mode: u32,
        content: String,
        /// Set by a content fault: served as is, never rendered.
        pinned: bool,
    },
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Group {
    hier: usize,
    /// Path below the hierarchy root ("" = root).
    path: String,
    /// v2: controllers listed in cgroup.controllers.
    listed: Vec<String>,
    /// v2: cgroup.subtree_control.
    subtree: Vec<String>,
    /// v2: `cgrp->dom_cgrp != cgrp` (cgroup_is_threaded).
    threaded: bool,
    frozen: bool,
    /// v2: the `*.pressure` files hidden by `cgroup.pressure` 0 (kernfs_show off): out of
    /// `children`, kept here until shown again.
    psi_hidden: BTreeMap<String, Ino>,
    /// `pids.peak`: the highest charge the group's pids counter reached.
    pids_peak: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    parent: Ino,
    body: Body,
    children: BTreeMap<String, Ino>,
}

#[derive(Debug, Clone)]
struct Hier {
    layer: Layer,
    /// Directory under /sys/fs/cgroup ("" = the mount itself on v2).
    dir: String,
    /// v1 controllers of the hierarchy.
    controllers: Vec<String>,
    /// How /proc/<pid>/cgroup names it (`cpu,cpuacct`, `name=systemd`; "" on v2).
    label: String,
    root: Ino,
}

/// The simulated cgroupfs of one case.
pub struct Model {
    host: Host,
    /// Shared with the session's host data: one copy for every case.
    tables: std::sync::Arc<KernelTables>,
    version: KernelVersion,
    entries: Vec<Option<Entry>>,
    hiers: Vec<Hier>,
    /// v2 controllers bound to cgroup2, in kernel order (names on v2), implicit ones too.
    v2_all: Vec<String>,
    v2_implicit: Vec<String>,
    /// v2 names of every controller the kernel has.
    kernel_v2_names: Vec<String>,
    /// (hierarchy, pid) → group.
    member: HashMap<(usize, u32), Ino>,
    /// (hierarchy, pid) → when it arrived in its group: a v2 group lists its tasks in
    /// arrival order (one css_set per group on cgroup2 alone, tasks appended as they
    /// migrate in); v1 sorts its pidlists.
    arrival: HashMap<(usize, u32), u64>,
    arrivals: u64,
    /// (hierarchy, pid) moved by a write to cgroup.procs/tasks/cgroup.threads (not a
    /// seeded membership): whose /proc/<pid>/cgroup line follows the model.
    moved: HashSet<(usize, u32)>,
    /// (hierarchy, pid) → the group a process that was not moved itself was forked in
    /// (`None`: the static view's line), pinned when an ancestor it followed moved after
    /// the fork: its /proc/<pid>/cgroup keeps it, as the kernel's does.
    inherited: HashMap<(usize, u32), Option<Ino>>,
    pids: Box<dyn Pids>,
    faults: FaultSet,
    log: Vec<LogEntry>,
    initial: BTreeSet<String>,
    written: BTreeSet<String>,
    /// A group or file was added, removed, hidden or shown since the model was built.
    reshaped: bool,
    /// The model's tree as built (shared by the copies [`Model::for_case`] makes):
    /// [`Model::effects`] of a case that changed no structure reads it instead of walking
    /// every file.
    built: std::sync::Arc<Built>,
}

/// The paths of a model as built, and the effects a walk of it finds.
#[derive(Debug, Default)]
struct Built {
    paths: BTreeSet<String>,
    created: Vec<String>,
    removed: Vec<String>,
}

/// A devices cgroup rule (`a`, `c 1:3 rwm`), normalised; `None` if malformed.
fn device_rule(v: &str) -> Option<String> {
    let mut it = v.split_whitespace();
    let t = it.next()?;
    if t == "a" {
        return Some("a".into());
    }
    if !matches!(t, "b" | "c") {
        return None;
    }
    let (maj, min) = it.next()?.split_once(':')?;
    let num = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let acc = it.next().unwrap_or("rwm");
    if !num(maj) || !num(min) || acc.is_empty() || !acc.bytes().all(|b| b"rwm".contains(&b)) {
        return None;
    }
    Some(format!("{t} {maj}:{min} {acc}"))
}

/// `devices.list` after one write (security/device_cgroup.c, devcgroup_update_access).
/// `a` switches the default and drops every exception. With the default allow, the list
/// reads `a *:* rwm` whatever the exceptions (not modelled). With the default deny, the
/// list is the exceptions: an allow merges its access into the rule for the same device
/// (`dev_exception_add`), a deny takes its access away from it and drops a rule left with
/// none (`dev_exception_rm`, exact type/major/minor match).
fn devices_update(list: &str, rule: &str, allow: bool) -> String {
    const ALL: &str = "a *:* rwm";
    if rule == "a" {
        return if allow {
            format!("{ALL}\n")
        } else {
            String::new()
        };
    }
    if list.lines().any(|l| l == ALL) {
        return list.to_owned();
    }
    let split = |r: &str| {
        let (dev, acc) = r.rsplit_once(' ').unwrap_or((r, ""));
        (dev.to_owned(), acc.to_owned())
    };
    let (dev, acc) = split(rule);
    let mut rules: Vec<(String, String)> = list.lines().map(split).collect();
    let canon = |a: &str| -> String { "rwm".chars().filter(|c| a.contains(*c)).collect() };
    match rules.iter_mut().find(|(d, _)| *d == dev) {
        Some((_, have)) if allow => *have = canon(&format!("{have}{acc}")),
        Some((_, have)) => *have = have.chars().filter(|c| !acc.contains(*c)).collect(),
        None if allow => rules.push((dev, canon(&acc))),
        None => {}
    }
    rules
        .iter()
        .filter(|(_, a)| !a.is_empty())
        .map(|(d, a)| format!("{d} {a}\n"))
        .collect()
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

fn words(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!("{}\n", list.join(" "))
    }
}

impl Model {
    /// The host's cgroupfs (content faults applied), with `faults` applied to operations.
    pub fn new(
        host: &Host,
        data: &HostData,
        content_faults: &[ContentFault],
        faults: Vec<Fault>,
        pids: Box<dyn Pids>,
    ) -> Result<Model, HostError> {
        let plan = host.plan(data, content_faults)?;
        let topo = tree::topology(host, data);
        let v2_all: Vec<String> = topo
            .v2_bound
            .iter()
            .filter_map(|n| data.kernels.controller(n))
            .map(|c| c.v2_name().to_owned())
            .collect();
        let v2_implicit = topo
            .v2_bound
            .iter()
            .filter_map(|n| data.kernels.controller(n))
            .filter(|c| c.v2_implicit)
            .map(|c| c.v2_name().to_owned())
            .collect();
        let kernel_v2_names = topo
            .available
            .iter()
            .filter_map(|n| data.kernels.controller(n))
            .map(|c| c.v2_name().to_owned())
            .collect();
        let mut m = Model {
            kernel_v2_names,
            host: host.clone(),
            tables: data.kernels.clone(),
            version: host.version(),
            entries: vec![None],
            hiers: Vec::new(),
            v2_all,
            v2_implicit,
            member: HashMap::new(),
            arrival: HashMap::new(),
            arrivals: 0,
            moved: HashSet::new(),
            inherited: HashMap::new(),
            pids,
            faults: FaultSet::new(faults),
            log: Vec::new(),
            initial: BTreeSet::new(),
            written: BTreeSet::new(),
            reshaped: false,
            built: std::sync::Arc::default(),
        };
        // The mount's top directory: the read-only tmpfs (v1, hybrid), or replaced below
        // by the cgroup2 root group (v2).
        let top_body = Body::Top;
        m.entries.push(Some(Entry {
            name: String::new(),
            parent: ROOT,
            body: top_body,
            children: BTreeMap::new(),
        }));
        for mt in &topo.v1 {
            m.hiers.push(Hier {
                layer: Layer::V1,
                dir: mt.dir.clone(),
                controllers: mt.controllers.clone(),
                label: mt.label(),
                root: 0,
            });
        }
        if let Some(d) = &topo.v2_dir {
            m.hiers.push(Hier {
                layer: Layer::V2,
                dir: d.clone(),
                controllers: Vec::new(),
                label: String::new(),
                root: 0,
            });
        }
        let pinned: BTreeSet<String> = content_faults
            .iter()
            .filter_map(|f| f.file.strip_prefix("/sys/fs/cgroup/"))
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        // Groups by path relative to /sys/fs/cgroup.
        let groups: HashMap<String, &tree::Group> =
            topo.groups.iter().map(|g| (g.rel(), g)).collect();
        let mut by_path: HashMap<String, Ino> = HashMap::new();
        by_path.insert(String::new(), ROOT);
        if let Some(g) = groups.get("") {
            let hier = m.hier_of_dir("").expect("v2 hierarchy");
            m.entry_mut(ROOT).body = Body::Group(Box::new(Group {
                hier,
                path: String::new(),
                listed: g.listed.clone(),
                subtree: g.subtree.clone(),
                threaded: false,
                frozen: false,
                psi_hidden: BTreeMap::new(),
                pids_peak: 0,
            }));
            m.hiers[hier].root = ROOT;
        }
        for (rel, node) in &plan.tree {
            let (parent_rel, name) = match rel.rsplit_once('/') {
                Some((p, n)) => (p.to_owned(), n.to_owned()),
                None => (String::new(), rel.clone()),
            };
            let Some(&parent) = by_path.get(&parent_rel) else {
                continue;
            };
            let body = match node {
                PlanNode::Dir { .. } => match groups.get(rel.as_str()) {
                    Some(g) => {
                        let hier = m.hier_of_dir(&g.hierarchy).expect("known hierarchy");
                        Body::Group(Box::new(Group {
                            hier,
                            path: g.path.clone(),
                            listed: g.listed.clone(),
                            subtree: g.subtree.clone(),
                            threaded: false,
                            frozen: false,
                            psi_hidden: BTreeMap::new(),
                            pids_peak: 0,
                        }))
                    }
                    None => Body::Top,
                },
                PlanNode::File { mode, content } => Body::File {
                    mode: *mode,
                    content: content.clone(),
                    pinned: pinned.contains(rel),
                },
                PlanNode::Symlink { target } => Body::Symlink(target.clone()),
            };
            let ino = m.insert(parent, &name, body);
            if let Some(g) = groups.get(rel.as_str()) {
                if g.path.is_empty() {
                    let h = m.hier_of_dir(&g.hierarchy).expect("known hierarchy");
                    m.hiers[h].root = ino;
                }
            }
            by_path.insert(rel.clone(), ino);
            m.initial.insert(rel.clone());
        }
        // Seed memberships (systemd's units, pid 1 at the root without systemd).
        for g in &topo.groups {
            if let (Some(&ino), Some(h)) = (by_path.get(&g.rel()), m.hier_of_dir(&g.hierarchy)) {
                for pid in g.procs.split_whitespace().filter_map(|p| p.parse().ok()) {
                    m.member.insert((h, pid), ino);
                    m.arrivals += 1;
                    m.arrival.insert((h, pid), m.arrivals);
                }
            }
        }
        let (paths, created, removed) = m.walk();
        m.built = std::sync::Arc::new(Built {
            paths,
            created,
            removed,
        });
        m.reshaped = false;
        Ok(m)
    }

    /// A model for another case on the same host (and content faults): a copy of this
    /// one, which must not have served a case, with the case's own faults and processes.
    /// What [`Model::new`] would build, without working out the host's plan and topology
    /// again.
    pub fn for_case(&self, faults: Vec<Fault>, pids: Box<dyn Pids>) -> Model {
        debug_assert!(
            self.log.is_empty()
                && self.written.is_empty()
                && self.moved.is_empty()
                && self.inherited.is_empty(),
            "a model that served a case is no template"
        );
        Model {
            host: self.host.clone(),
            tables: std::sync::Arc::clone(&self.tables),
            version: self.version,
            entries: self.entries.clone(),
            hiers: self.hiers.clone(),
            v2_all: self.v2_all.clone(),
            v2_implicit: self.v2_implicit.clone(),
            kernel_v2_names: self.kernel_v2_names.clone(),
            member: self.member.clone(),
            arrival: self.arrival.clone(),
            arrivals: self.arrivals,
            pids,
            faults: FaultSet::new(faults),
            log: Vec::new(),
            initial: self.initial.clone(),
            written: BTreeSet::new(),
            // Nothing moved yet: the template served no case.
            moved: HashSet::new(),
            inherited: HashMap::new(),
            reshaped: false,
            built: std::sync::Arc::clone(&self.built),
        }
    }

    fn hier_of_dir(&self, dir: &str) -> Option<usize> {
        self.hiers.iter().position(|h| h.dir == dir)
    }

    fn insert(&mut self, parent: Ino, name: &str, body: Body) -> Ino {
        self.reshaped = true;
        let ino = self.entries.len() as Ino;
        self.entries.push(Some(Entry {
            name: name.to_owned(),
            parent,
            body,
            children: BTreeMap::new(),
        }));
        self.entry_mut(parent).children.insert(name.to_owned(), ino);
        ino
    }

    fn entry(&self, ino: Ino) -> Option<&Entry> {
        self.entries.get(ino as usize).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, ino: Ino) -> &mut Entry {
        self.entries[ino as usize].as_mut().expect("live inode")
    }

    fn group(&self, ino: Ino) -> Option<&Group> {
        match &self.entry(ino)?.body {
            Body::Group(g) => Some(g),
            _ => None,
        }
    }

    fn group_mut(&mut self, ino: Ino) -> &mut Group {
        match &mut self.entry_mut(ino).body {
            Body::Group(g) => g,
            _ => panic!("not a group"),
        }
    }

    /// Path relative to /sys/fs/cgroup.
    pub fn path(&self, ino: Ino) -> String {
        let mut parts = Vec::new();
        let mut i = ino;
        while i != ROOT {
            let Some(e) = self.entry(i) else { break };
            parts.push(e.name.clone());
            i = e.parent;
        }
        parts.reverse();
        parts.join("/")
    }

    fn child_path(&self, parent: Ino, name: &str) -> String {
        join(&self.path(parent), name)
    }

    // ---- the op log and faults ----

    fn record(&mut self, op: LogOp, path: String, value: Option<String>, result: Result<(), i32>) {
        let e = LogEntry {
            op,
            path,
            value,
            result,
        };
        if op == LogOp::Lookup && self.log.last() == Some(&e) {
            return;
        }
        self.log.push(e);
    }

    /// A line of the simulated systemd in the op log (`dbus StartTransientUnit ...`), between
    /// the operations it caused and those of the target.
    pub fn note_dbus(&mut self, line: String) {
        self.record(LogOp::Dbus, line, None, Ok(()));
    }

    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// A fault for this operation, if one fires (counts the call).
    pub fn fault(&mut self, op: Op, path: &str) -> Option<Effect> {
        self.faults.fire(op, path)
    }

    /// Every fault that fired in this model, in order (the report prints them).
    pub fn fault_hits(&self) -> &[FaultHit] {
        self.faults.hits()
    }

    /// How long the answer to the last operation is to be held (its delay faults).
    pub fn take_delay(&mut self) -> std::time::Duration {
        self.faults.take_delay()
    }

    // ---- reading the tree ----

    pub fn attr(&self, ino: Ino) -> Option<Attr> {
        let e = self.entry(ino)?;
        Some(match &e.body {
            Body::Top => Attr {
                kind: Kind::Dir,
                mode: if self.host.cgroup == CgroupMode::V2 {
                    0o555
                } else {
                    0o755
                },
                size: 0,
            },
            Body::Group(g) => Attr {
                kind: Kind::Dir,
                mode: if g.path.is_empty() { 0o555 } else { 0o755 },
                size: 0,
            },
            Body::File { mode, .. } => Attr {
                kind: Kind::File,
                mode: *mode,
                size: 0,
            },
            Body::Symlink(t) => Attr {
                kind: Kind::Symlink,
                mode: 0o777,
                size: t.len() as u64,
            },
        })
    }

    /// Look up a name; a miss is logged (`lookup PATH -> ENOENT`).
    pub fn lookup(&mut self, parent: Ino, name: &str) -> Result<Ino, i32> {
        let Some(e) = self.entry(parent) else {
            return Err(ENOENT);
        };
        if let Some(&ino) = e.children.get(name) {
            return Ok(ino);
        }
        if matches!(e.body, Body::File { .. } | Body::Symlink(_)) {
            return Err(ENOTDIR);
        }
        let path = self.child_path(parent, name);
        self.record(LogOp::Lookup, path, None, Err(ENOENT));
        Err(ENOENT)
    }

    pub fn readdir(&self, ino: Ino) -> Result<Vec<(String, Ino, Kind)>, i32> {
        let e = self.entry(ino).ok_or(ENOENT)?;
        if !matches!(e.body, Body::Top | Body::Group(_)) {
            return Err(ENOTDIR);
        }
        Ok(e.children
            .iter()
            .filter_map(|(n, &i)| Some((n.clone(), i, self.attr(i)?.kind)))
            .collect())
    }

    pub fn readlink(&self, ino: Ino) -> Result<String, i32> {
        match &self.entry(ino).ok_or(ENOENT)?.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(EINVAL),
        }
    }

    pub fn parent(&self, ino: Ino) -> Ino {
        self.entry(ino).map_or(ROOT, |e| e.parent)
    }

    // ---- membership ----

    fn alive_members(&self, g: Ino) -> Vec<u32> {
        self.members(g, true)
    }

    /// Pids in group `g` (only the living ones, or every pid ever moved there and not
    /// moved away since).
    fn members(&self, g: Ino, alive: bool) -> Vec<u32> {
        let Some(grp) = self.group(g) else {
            return Vec::new();
        };
        let h = grp.hier;
        let mut v: Vec<u32> = self
            .member
            .iter()
            .filter(|((hh, pid), &gi)| *hh == h && gi == g && (!alive || self.pids.exists(*pid)))
            .map(|((_, pid), _)| *pid)
            .collect();
        if self.hiers[h].layer == Layer::V2 {
            v.sort_unstable_by_key(|p| (self.arrival.get(&(h, *p)).copied().unwrap_or(0), *p));
        } else {
            v.sort_unstable();
        }
        v
    }

    fn populated(&self, g: Ino) -> bool {
        if !self.alive_members(g).is_empty() {
            return true;
        }
        let Some(e) = self.entry(g) else { return false };
        e.children
            .values()
            .any(|&c| self.group(c).is_some() && self.populated(c))
    }

    fn child_groups(&self, g: Ino) -> Vec<Ino> {
        self.entry(g).map_or(Vec::new(), |e| {
            e.children
                .values()
                .copied()
                .filter(|&c| self.group(c).is_some())
                .collect()
        })
    }

    // ---- rendering ----

    fn render(&self, file: Ino) -> Result<String, i32> {
        let e = self.entry(file).ok_or(ENOENT)?;
        let Body::File {
            mode,
            content,
            pinned,
        } = &e.body
        else {
            return Err(EINVAL);
        };
        if *mode & 0o444 == 0 || (e.name == "memory.pressure_level" && *mode == 0) {
            // Write-only files: cgroup_seqfile_show has no show method.
            return Err(EINVAL);
        }
        if *pinned || !DYNAMIC.contains(&e.name.as_str()) {
            return Ok(content.clone());
        }
        let g = e.parent;
        let grp = self.group(g).ok_or(EINVAL)?;
        let v2 = self.hiers[grp.hier].layer == Layer::V2;
        Ok(match e.name.as_str() {
            "cgroup.procs" | "tasks" | "cgroup.threads" => {
                if v2 && grp.threaded && e.name == "cgroup.procs" {
                    return Err(EOPNOTSUPP);
                }
                self.alive_members(g)
                    .iter()
                    .map(|p| format!("{p}\n"))
                    .collect()
            }
            // kernel/cgroup/pids.c: the counter charges every task of the subtree (zombies
            // until reaped); the peak is its watermark.
            "pids.current" => format!("{}\n", self.tasks_below(g)),
            "pids.peak" => format!("{}\n", grp.pids_peak.max(self.tasks_below(g))),
            "cgroup.controllers" => words(&grp.listed),
            "cgroup.subtree_control" => words(&grp.subtree),
            "cgroup.events" => {
                let pop = u8::from(self.populated(g));
                if self.version >= KernelVersion::new(5, 2, 0) {
                    // A group is frozen when it or an ancestor is (the freeze is inherited).
                    let mut frozen = grp.frozen;
                    let mut a = g;
                    while !frozen && self.group(a).is_some_and(|x| !x.path.is_empty()) {
                        a = self.parent(a);
                        frozen = self.group(a).is_some_and(|x| x.frozen);
                    }
                    format!("populated {pop}\nfrozen {}\n", u8::from(frozen))
                } else {
                    format!("populated {pop}\n")
                }
            }
            "cgroup.type" => {
                // kernel/cgroup/cgroup.c, cgroup_type_show.
                let ty = if grp.threaded {
                    "threaded"
                } else if !self.is_valid_domain(g) {
                    "domain invalid"
                } else if self.is_thread_root(g) {
                    "domain threaded"
                } else {
                    "domain"
                };
                format!("{ty}\n")
            }
            // The live descendant count (rmdir takes a group out at once); the other lines
            // as created.
            // Live counts: descendants (rmdir takes a group out at once) and, per
            // controller, the groups of the subtree (itself included) that have it.
            "cgroup.stat" => {
                let mut subtree = vec![g];
                let mut stack = self.child_groups(g);
                while let Some(c) = stack.pop() {
                    subtree.push(c);
                    stack.extend(self.child_groups(c));
                }
                let has = |h: Ino, c: &str| {
                    self.group(h).is_some_and(|x| {
                        x.listed.iter().any(|l| l == c) || self.v2_implicit.iter().any(|l| l == c)
                    })
                };
                let nr = format!("nr_descendants {}\n", subtree.len() - 1);
                if !content.contains("nr_subsys_") {
                    return Ok(content
                        .split_inclusive('\n')
                        .map(|l| {
                            if l.starts_with("nr_descendants ") {
                                nr.clone()
                            } else {
                                l.to_owned()
                            }
                        })
                        .collect());
                }
                // 6.12 and later: a line per controller bound to cgroup2 (seen in the lane).
                let mut out = nr;
                for c in &self.v2_all {
                    let n = subtree.iter().filter(|&&h| has(h, c)).count();
                    out += &format!("nr_subsys_{c} {n}\n");
                }
                out += "nr_dying_descendants 0\n";
                for c in &self.v2_all {
                    out += &format!("nr_dying_subsys_{c} 0\n");
                }
                out
            }
            _ => content.clone(),
        })
    }

    /// Read a whole file (the FUSE layer serves offsets from it).
    pub fn read(&mut self, ino: Ino) -> Result<Vec<u8>, i32> {
        let path = self.path(ino);
        let r = match self.fault(Op::Read, &path) {
            Some(Effect::Errno(e)) => Err(e),
            Some(Effect::Corrupt(s)) => Ok(s),
            _ => self.render(ino),
        };
        self.record(
            LogOp::Read,
            path,
            None,
            r.as_ref().map(|_| ()).map_err(|e| *e),
        );
        r.map(String::into_bytes)
    }

    /// Open an existing file. Every cgroup file opens for writing as root (cgroupfs
    /// files all have a write method; writing to a read-only one then fails with EINVAL).
    pub fn open(&mut self, ino: Ino, write: bool) -> Result<(), i32> {
        let path = self.path(ino);
        let r = match self.fault(Op::Open, &path) {
            Some(Effect::Errno(e)) => Err(e),
            _ => match self.entry(ino).map(|e| &e.body) {
                None => Err(ENOENT),
                Some(Body::File { .. }) => Ok(()),
                Some(_) if write => Err(libc::EISDIR),
                Some(_) => Ok(()),
            },
        };
        if r.is_err() {
            let op = if write { LogOp::OpenWrite } else { LogOp::Open };
            self.record(op, path, None, r);
        }
        r
    }

    /// `open(O_CREAT)` of a name that does not exist: cgroupfs refuses (EACCES); the
    /// read-only tmpfs above the v1 hierarchies says EROFS.
    pub fn create(&mut self, parent: Ino, name: &str) -> Result<Ino, i32> {
        let path = self.child_path(parent, name);
        let r = match self.fault(Op::Open, &path) {
            Some(Effect::Errno(e)) => Err(e),
            _ => match self.entry(parent).map(|e| &e.body) {
                Some(Body::Top) => Err(EROFS),
                Some(Body::Group(_)) => Err(EACCES),
                Some(_) => Err(ENOTDIR),
                None => Err(ENOENT),
            },
        };
        self.record(LogOp::Create, path, None, r.map(|_| ()));
        r
    }

    pub fn unlink(&mut self, parent: Ino, name: &str) -> Result<(), i32> {
        let path = self.child_path(parent, name);
        let r = match self.entry(parent) {
            None => Err(ENOENT),
            Some(e) if matches!(e.body, Body::Top) => Err(EROFS),
            Some(e) if !e.children.contains_key(name) => Err(ENOENT),
            Some(_) => Err(EPERM),
        };
        self.record(LogOp::Unlink, path, None, r);
        r
    }

    // ---- mkdir / rmdir ----

    pub fn mkdir(&mut self, parent: Ino, name: &str) -> Result<Ino, i32> {
        let path = self.child_path(parent, name);
        let r = match self.fault(Op::Mkdir, &path) {
            Some(Effect::Errno(e)) => Err(e),
            _ => self.do_mkdir(parent, name),
        };
        self.record(LogOp::Mkdir, path, None, r.map(|_| ()));
        r
    }

    fn do_mkdir(&mut self, parent: Ino, name: &str) -> Result<Ino, i32> {
        let e = self.entry(parent).ok_or(ENOENT)?;
        if e.children.contains_key(name) {
            return Err(EEXIST);
        }
        let pg = match &e.body {
            Body::Top => return Err(EROFS),
            Body::Group(g) => g.as_ref().clone(),
            _ => return Err(ENOTDIR),
        };
        if name.contains('\n') {
            return Err(EINVAL);
        }
        let hier = &self.hiers[pg.hier];
        let layer = hier.layer;
        let (listed, attached) = match layer {
            Layer::V1 => (Vec::new(), hier.controllers.clone()),
            Layer::V2 => {
                let mut att: Vec<String> = self
                    .v2_all
                    .iter()
                    .filter(|c| pg.subtree.contains(c) || self.v2_implicit.contains(c))
                    .cloned()
                    .collect();
                att.dedup();
                (pg.subtree.clone(), att)
            }
        };
        if layer == Layer::V2 && !self.within_hierarchy_limits(parent) {
            return Err(libc::EAGAIN);
        }
        let path = join(&pg.path, name);
        let ino = self.insert(
            parent,
            name,
            Body::Group(Box::new(Group {
                hier: pg.hier,
                path,
                listed,
                subtree: Vec::new(),
                // A group is always created as a domain (init_cgroup_housekeeping sets
                // dom_cgrp to itself); below a threaded parent it reads `domain invalid`.
                threaded: false,
                frozen: false,
                psi_hidden: BTreeMap::new(),
                pids_peak: 0,
            })),
        );
        self.add_files(ino, &attached, None);
        if layer == Layer::V1 {
            // cpuset: a new group starts with empty cpus/mems unless the parent has
            // cgroup.clone_children set (Linux; gVisor copies them).
            let clone = self
                .file_content(parent, "cgroup.clone_children")
                .is_some_and(|c| c.trim() == "1");
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = if clone {
                    self.file_content(parent, f).unwrap_or_default()
                } else {
                    "\n".to_owned()
                };
                self.set_content(ino, f, v);
            }
        }
        Ok(ino)
    }

    /// Add the interface files of `attached` controllers that `g` does not have yet
    /// (`only`: restrict to one controller's files).
    /// cgroup_check_hierarchy_limits: a new child of `parent` must keep every ancestor
    /// within its `cgroup.max.descendants` (live descendants) and `cgroup.max.depth`.
    fn within_hierarchy_limits(&self, parent: Ino) -> bool {
        let limit = |g: Ino, f: &str| -> usize {
            self.file_content(g, f)
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(usize::MAX)
        };
        let mut level = 1;
        let mut g = parent;
        loop {
            let Some(grp) = self.group(g) else {
                return true;
            };
            let mut descendants = 0;
            let mut stack = self.child_groups(g);
            while let Some(c) = stack.pop() {
                descendants += 1;
                stack.extend(self.child_groups(c));
            }
            if descendants >= limit(g, "cgroup.max.descendants")
                || level > limit(g, "cgroup.max.depth")
            {
                return false;
            }
            if grp.path.is_empty() {
                return true;
            }
            level += 1;
            g = self.parent(g);
        }
    }

    fn add_files(&mut self, g: Ino, attached: &[String], only: Option<&str>) {
        let grp = self.group(g).expect("group").clone();
        let layer = self.hiers[grp.hier].layer;
        let level = if grp.path.is_empty() {
            Level::Root
        } else {
            Level::Child
        };
        let entries: Vec<(String, u32, String)> =
            files_for(&self.tables, &self.host, layer, level, attached)
                .into_iter()
                .filter(|e| {
                    only.is_none_or(|c| {
                        e.controller == c || e.with_controller.as_deref() == Some(c)
                    })
                })
                .map(|e| {
                    let content = match level {
                        Level::Root => e.root_content.as_deref().unwrap_or(&e.content),
                        Level::Child => &e.content,
                    };
                    (e.name.clone(), e.mode, self.fill(content, attached))
                })
                .collect();
        for (name, mode, content) in entries {
            if grp.psi_hidden.contains_key(&name) {
                continue;
            }
            let existing = self.entry(g).and_then(|e| e.children.get(&name)).copied();
            match existing {
                // Content variants of core files (cpu.stat with/without cpu) replace.
                Some(i) if only.is_some() => {
                    if let Body::File { content: c, .. } = &mut self.entry_mut(i).body {
                        *c = content;
                    }
                }
                Some(_) => {}
                None => {
                    self.insert(
                        g,
                        &name,
                        Body::File {
                            mode,
                            content,
                            pinned: false,
                        },
                    );
                }
            }
        }
    }

    /// Placeholders of a new group's templates (dynamic files are rendered on read).
    fn fill(&self, template: &str, attached: &[String]) -> String {
        if !template.contains('{') {
            return template.to_owned();
        }
        let mut subsys = "nr_descendants 0\n".to_owned();
        for c in attached {
            subsys += &format!("nr_subsys_{c} 1\n");
        }
        subsys += "nr_dying_descendants 0\n";
        for c in attached {
            subsys += &format!("nr_dying_subsys_{c} 0\n");
        }
        template
            .replace("{procs}", "")
            .replace("{controllers}", "")
            .replace("{subtree_control}", "")
            .replace("{cgroup_stat_subsys}", &subsys)
            .replace(
                "{cgroup_stat}",
                "nr_descendants 0\nnr_dying_descendants 0\n",
            )
    }

    fn file_ino(&self, g: Ino, name: &str) -> Option<Ino> {
        self.entry(g)?.children.get(name).copied()
    }

    fn file_content(&self, g: Ino, name: &str) -> Option<String> {
        match &self.entry(self.file_ino(g, name)?)?.body {
            Body::File { content, .. } => Some(content.clone()),
            _ => None,
        }
    }

    fn set_content(&mut self, g: Ino, name: &str, v: String) {
        if let Some(i) = self.file_ino(g, name) {
            if let Body::File { content, .. } = &mut self.entry_mut(i).body {
                *content = v;
            }
        }
    }

    fn remove_files_of(&mut self, g: Ino, controller: &str) {
        self.reshaped = true;
        let names: Vec<String> = self
            .entry(g)
            .map(|e| {
                e.children
                    .keys()
                    .filter(|n| n.starts_with(&format!("{controller}.")))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for n in names {
            if let Some(i) = self.entry_mut(g).children.remove(&n) {
                self.entries[i as usize] = None;
            }
        }
    }

    pub fn rmdir(&mut self, parent: Ino, name: &str) -> Result<(), i32> {
        let path = self.child_path(parent, name);
        let r = match self.fault(Op::Rmdir, &path) {
            Some(Effect::Errno(e)) => Err(e),
            _ => self.do_rmdir(parent, name),
        };
        self.record(LogOp::Rmdir, path, None, r);
        r
    }

    fn do_rmdir(&mut self, parent: Ino, name: &str) -> Result<(), i32> {
        self.reshaped = true;
        let e = self.entry(parent).ok_or(ENOENT)?;
        let &ino = e.children.get(name).ok_or(ENOENT)?;
        if matches!(e.body, Body::Top) {
            return Err(EBUSY); // a mount point
        }
        let grp = match &self.entry(ino).ok_or(ENOENT)?.body {
            Body::Group(g) => g.clone(),
            _ => return Err(ENOTDIR),
        };
        if grp.path.is_empty() || !self.child_groups(ino).is_empty() {
            return Err(EBUSY);
        }
        if !self.alive_members(ino).is_empty() {
            return Err(EBUSY);
        }
        let mut kids: Vec<Ino> = self
            .entry(ino)
            .map_or(Vec::new(), |e| e.children.values().copied().collect());
        kids.extend(grp.psi_hidden.values().copied());
        for k in kids {
            self.entries[k as usize] = None;
        }
        self.entries[ino as usize] = None;
        self.entry_mut(parent).children.remove(name);
        self.member.retain(|_, g| *g != ino);
        Ok(())
    }

    // ---- writes ----

    /// One `write(2)` of `data` to file `ino` by task `caller` (a pid of the case).
    /// Returns the bytes accepted.
    pub fn write(&mut self, ino: Ino, data: &[u8], caller: u32) -> Result<usize, i32> {
        let path = self.path(ino);
        let text = String::from_utf8_lossy(data).into_owned();
        let fault = self.fault(Op::Write, &path);
        let r = match fault {
            Some(Effect::Errno(e)) => Err(e),
            Some(Effect::Short(n)) => self
                .do_write(ino, &data[..n.min(data.len())], caller)
                .map(|_| n.min(data.len())),
            // A write of nothing returns 0 before any handler runs (seen on 6.1 and 6.12,
            // read-only files included).
            _ if data.is_empty() && self.attr(ino).is_some_and(|a| a.kind == Kind::File) => Ok(0),
            _ => self.do_write(ino, data, caller).map(|_| data.len()),
        };
        if r.is_ok() {
            self.written.insert(path.clone());
        }
        self.record(LogOp::Write, path, Some(text), r.map(|_| ()));
        r
    }

    fn do_write(&mut self, ino: Ino, data: &[u8], caller: u32) -> Result<(), i32> {
        let e = self.entry(ino).ok_or(ENOENT)?;
        let Body::File { mode, .. } = &e.body else {
            return Err(libc::EISDIR);
        };
        if mode & 0o222 == 0 {
            return Err(EINVAL);
        }
        let name = e.name.clone();
        let g = e.parent;
        let grp = self.group(g).ok_or(EINVAL)?.clone();
        let v2 = self.hiers[grp.hier].layer == Layer::V2;
        let v = String::from_utf8_lossy(data);
        let v = v.trim();
        match name.as_str() {
            "cgroup.procs" | "tasks" | "cgroup.threads" => self.attach(g, &name, v, caller),
            "cgroup.subtree_control" => self.subtree_control(g, v),
            "cgroup.type" => self.set_type(g, v),
            "cgroup.freeze" => {
                let n: i64 = v.parse().map_err(|_| EINVAL)?;
                if !(0..=1).contains(&n) {
                    return Err(libc::ERANGE);
                }
                self.group_mut(g).frozen = n == 1;
                self.set_content(g, &name, format!("{n}\n"));
                Ok(())
            }
            "cgroup.kill" => {
                // cgroup_kill_write: kstrtoint, ERANGE for anything but 1; a threaded group
                // cannot be killed on its own.
                if values::kstrtoint(v)? != 1 {
                    return Err(libc::ERANGE);
                }
                if grp.threaded {
                    return Err(EOPNOTSUPP);
                }
                // cgroup_kill: SIGKILL to every task of the group and its descendants.
                let mut stack = vec![g];
                while let Some(c) = stack.pop() {
                    for pid in self.alive_members(c) {
                        self.pids.kill(pid);
                    }
                    stack.extend(self.child_groups(c));
                }
                Ok(())
            }
            // One kernel value behind cpu.weight, cpu.weight.nice, cpu.shares and cpu.idle:
            // the task group's shares (kernel/sched/core.c, fair.c).
            "cpu.weight" | "cpu.weight.nice" | "cpu.shares" | "cpu.idle" => {
                let parsed = values::parse(values::rule(&name), v)?.unwrap_or_default();
                let n: i64 = parsed.trim().parse().map_err(|_| EINVAL)?;
                let idle = self
                    .file_content(g, "cpu.idle")
                    .is_some_and(|c| c.trim() == "1");
                let shares = match name.as_str() {
                    "cpu.idle" => {
                        self.set_content(g, &name, parsed);
                        // sched_group_set_idle: idle groups get the minimum weight.
                        if n == 1 {
                            values::WEIGHT_IDLEPRIO
                        } else {
                            1024
                        }
                    }
                    // sched_group_set_shares refuses while the group is idle.
                    _ if idle => return Err(EINVAL),
                    "cpu.weight" => values::shares_from_cgroup_weight(n as u64),
                    "cpu.weight.nice" => values::shares_from_nice(n),
                    _ => n as u64,
                };
                self.set_cpu_shares(g, shares);
                Ok(())
            }
            // 6.12+: a write resets the peak seen through that open file; nothing to store.
            "memory.peak" | "memory.swap.peak" => Ok(()),
            "cgroup.pressure" => {
                let c = values::parse(values::rule(&name), v)?.unwrap_or_default();
                self.show_psi_files(g, c.trim() == "1");
                self.set_content(g, &name, c);
                Ok(())
            }
            "memory.use_hierarchy" if self.version >= KernelVersion::new(5, 11, 0) => {
                if v == "1" {
                    Ok(())
                } else {
                    Err(EINVAL)
                }
            }
            "memory.kmem.limit_in_bytes" if self.version >= KernelVersion::new(6, 1, 0) => {
                values::memparse(v)
                    .or((v == "-1").then_some(0))
                    .ok_or(EINVAL)?;
                Ok(())
            }
            "memory.oom_control" => {
                let n: i64 = v.parse().map_err(|_| EINVAL)?;
                if !(0..=1).contains(&n) {
                    return Err(EINVAL);
                }
                let old = self.file_content(g, &name).unwrap_or_default();
                let rest: String = old.split_inclusive('\n').skip(1).collect();
                self.set_content(g, &name, format!("oom_kill_disable {n}\n{rest}"));
                Ok(())
            }
            "devices.allow" | "devices.deny" => {
                let rule = device_rule(v).ok_or(EINVAL)?;
                let list = self.file_content(g, "devices.list").unwrap_or_default();
                let text = devices_update(&list, &rule, name == "devices.allow");
                self.set_content(g, "devices.list", text);
                Ok(())
            }
            "freezer.state" => {
                let new = values::parse(Parse::Word(&["FROZEN", "THAWED"]), v)?;
                if let Some(c) = new {
                    self.set_content(g, &name, c);
                }
                Ok(())
            }
            "cpuset.cpus" | "cpuset.mems" if !v2 => {
                let parsed = values::parse(values::rule(&name), v)?.unwrap_or_default();
                let list = parsed.trim();
                let parent_list = self.file_content(self.parent(g), &name).unwrap_or_default();
                let nb = if name == "cpuset.cpus" {
                    values::NR_CPUS
                } else {
                    64
                };
                let mine = values::parse_list(list, nb).unwrap_or_default();
                let theirs = values::parse_list(parent_list.trim(), nb).unwrap_or_default();
                if !grp.path.is_empty() && !mine.iter().all(|c| theirs.contains(c)) {
                    return Err(EINVAL);
                }
                if mine.is_empty() && !self.alive_members(g).is_empty() {
                    return Err(ENOSPC);
                }
                self.set_content(g, &name, parsed);
                Ok(())
            }
            // mem_cgroup_write: no limits on the root memcg.
            "memory.limit_in_bytes"
            | "memory.memsw.limit_in_bytes"
            | "memory.kmem.limit_in_bytes"
            | "memory.kmem.tcp.limit_in_bytes"
                if !v2 && grp.path.is_empty() =>
            {
                Err(EINVAL)
            }
            "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes" if !v2 => {
                let new = values::parse(Parse::V1Bytes, v)?.unwrap_or_default();
                let n: u64 = new.trim().parse().unwrap_or(0);
                let other = if name == "memory.limit_in_bytes" {
                    "memory.memsw.limit_in_bytes"
                } else {
                    "memory.limit_in_bytes"
                };
                if let Some(o) = self.file_content(g, other) {
                    let o: u64 = o.trim().parse().unwrap_or(values::V1_UNLIMITED);
                    let bad = if name == "memory.limit_in_bytes" {
                        n > o
                    } else {
                        n < o
                    };
                    if bad {
                        return Err(EINVAL);
                    }
                }
                self.set_content(g, &name, new);
                Ok(())
            }
            _ => {
                if let Some(c) = values::parse(values::rule(&name), v)? {
                    self.set_content(g, &name, c);
                }
                Ok(())
            }
        }
    }

    /// cgroup_type_write + cgroup_enable_threaded (kernel/cgroup/cgroup.c): only
    /// `threaded` is accepted; a populated group or one with domain controllers enabled
    /// cannot switch, and the parent's domain must be valid and able to be a thread root.
    fn set_type(&mut self, g: Ino, v: &str) -> Result<(), i32> {
        if v != "threaded" {
            return Err(EINVAL);
        }
        let grp = self.group(g).ok_or(EINVAL)?.clone();
        if grp.path.is_empty() {
            return Err(EOPNOTSUPP);
        }
        if grp.threaded {
            return Ok(());
        }
        if self.populated(g) || Self::has_domain_controller(&grp.subtree) {
            return Err(EOPNOTSUPP);
        }
        let dom = self.domain_of(self.parent(g));
        if !self.is_valid_domain(dom) || !self.can_be_thread_root(dom) {
            return Err(EOPNOTSUPP);
        }
        // cgroup_control: a threaded group gets only the threaded controllers; the domain
        // ones' interface files go (cgroup_apply_control).
        let (domain, kept): (Vec<String>, Vec<String>) = grp
            .listed
            .iter()
            .cloned()
            .partition(|c| !THREADED_CONTROLLERS.contains(&c.as_str()));
        {
            let gm = self.group_mut(g);
            gm.threaded = true;
            gm.listed = kept.clone();
        }
        if !domain.is_empty() {
            for c in &domain {
                self.remove_files_of(g, c);
            }
            let mut attached = kept;
            attached.extend(self.v2_implicit.iter().cloned());
            self.add_files(g, &attached, None);
        }
        Ok(())
    }

    /// cgroup_pressure_write: the group's `{cpu,memory,io,irq}.pressure` files are shown or
    /// hidden (cgroup_file_show): hidden, they are gone from lookups and listings.
    fn show_psi_files(&mut self, g: Ino, show: bool) {
        self.reshaped = true;
        const PSI: [&str; 4] = [
            "cpu.pressure",
            "memory.pressure",
            "io.pressure",
            "irq.pressure",
        ];
        if show {
            let hidden = std::mem::take(&mut self.group_mut(g).psi_hidden);
            for (n, i) in hidden {
                self.entry_mut(g).children.insert(n, i);
            }
        } else {
            for n in PSI {
                if let Some(i) = self.entry_mut(g).children.remove(n) {
                    self.group_mut(g).psi_hidden.insert(n.to_owned(), i);
                }
            }
        }
    }

    /// The files that show a task group's shares, from its value.
    fn set_cpu_shares(&mut self, g: Ino, shares: u64) {
        let shares = shares.clamp(2, 262_144);
        if self.file_ino(g, "cpu.shares").is_some() {
            self.set_content(g, "cpu.shares", format!("{shares}\n"));
        }
        if self.file_ino(g, "cpu.weight").is_some() {
            let w = values::cgroup_weight_from_shares(shares);
            self.set_content(g, "cpu.weight", format!("{w}\n"));
        }
        if self.file_ino(g, "cpu.weight.nice").is_some() {
            let nice = values::nice_from_shares(shares);
            self.set_content(g, "cpu.weight.nice", format!("{nice}\n"));
        }
    }

    fn has_domain_controller(list: &[String]) -> bool {
        list.iter()
            .any(|c| !THREADED_CONTROLLERS.contains(&c.as_str()))
    }

    /// cgroup_can_be_thread_root: the root (mixable) always; otherwise a domain with no
    /// populated domain child and no domain controller enabled.
    fn can_be_thread_root(&self, g: Ino) -> bool {
        let Some(grp) = self.group(g) else {
            return false;
        };
        if grp.path.is_empty() {
            return true;
        }
        if grp.threaded {
            return false;
        }
        let populated_domain_child = self
            .child_groups(g)
            .into_iter()
            .any(|c| self.group(c).is_some_and(|cg| !cg.threaded) && self.populated(c));
        !populated_domain_child && !Self::has_domain_controller(&grp.subtree)
    }

    fn subtree_control(&mut self, g: Ino, v: &str) -> Result<(), i32> {
        let grp = self.group(g).ok_or(EINVAL)?.clone();
        if self.hiers[grp.hier].layer != Layer::V2 {
            return Err(EINVAL);
        }
        let mut enable = Vec::new();
        let mut disable = Vec::new();
        for tok in v.split_whitespace() {
            let (sign, name) = tok.split_at(1);
            // Any controller of the kernel parses (one bound to v1 then fails with ENOENT
            // below); implicit ones (perf_event) and unknown names are EINVAL.
            let known = self.kernel_v2_names.iter().any(|c| c == name)
                && !self.v2_implicit.iter().any(|c| c == name);
            if !known {
                return Err(EINVAL);
            }
            match sign {
                "+" => {
                    disable.retain(|c: &String| c != name);
                    enable.push(name.to_owned());
                }
                "-" => {
                    enable.retain(|c: &String| c != name);
                    disable.push(name.to_owned());
                }
                _ => return Err(EINVAL),
            }
        }
        // Per controller in kernel order: enabling one this group's parent does not
        // delegate is ENOENT, disabling one a child still delegates further is EBUSY;
        // already enabled (disabled) ones are dropped.
        let kids = self.child_groups(g);
        let mut en = Vec::new();
        let mut dis = Vec::new();
        for c in self.kernel_v2_names.clone() {
            if enable.contains(&c) {
                if grp.subtree.contains(&c) {
                    continue;
                }
                if !grp.listed.contains(&c) {
                    return Err(ENOENT);
                }
                en.push(c);
            } else if disable.contains(&c) {
                if !grp.subtree.contains(&c) {
                    continue;
                }
                if kids
                    .iter()
                    .any(|&k| self.group(k).is_some_and(|kg| kg.subtree.contains(&c)))
                {
                    return Err(EBUSY);
                }
                dis.push(c);
            }
        }
        let (enable, disable) = (en, dis);
        if !enable.is_empty() {
            self.vet_subtree_control_enable(g, &enable)?;
        }
        let order = self.v2_all.clone();
        {
            let gm = self.group_mut(g);
            gm.subtree.extend(enable.iter().cloned());
            gm.subtree.retain(|c| !disable.contains(c));
            gm.subtree
                .sort_by_key(|c| order.iter().position(|o| o == c));
        }
        for k in kids {
            {
                let kg = self.group_mut(k);
                kg.listed.extend(enable.iter().cloned());
                kg.listed.retain(|c| !disable.contains(c));
                kg.listed.sort_by_key(|c| order.iter().position(|o| o == c));
            }
            let mut attached: Vec<String> = self.group(k).expect("group").listed.clone();
            attached.extend(self.v2_implicit.iter().cloned());
            for c in &enable {
                self.add_files(k, &attached, Some(c));
            }
            for c in &disable {
                self.remove_files_of(k, c);
            }
            if !disable.is_empty() {
                // Core files with a content variant per controller (cpu.stat) come back.
                self.add_files(k, &attached, None);
            }
        }
        Ok(())
    }

    fn attach(&mut self, g: Ino, file: &str, v: &str, caller: u32) -> Result<(), i32> {
        let grp = self.group(g).ok_or(EINVAL)?.clone();
        let v2 = self.hiers[grp.hier].layer == Layer::V2;
        let pid: u32 = v.parse().map_err(|_| EINVAL)?;
        let pid = if pid == 0 { caller } else { pid };
        if !self.pids.charged(pid) {
            return Err(ESRCH);
        }
        let pid = if file == "cgroup.threads" {
            pid
        } else {
            self.pids.tgid(pid).ok_or(ESRCH)?
        };
        let h = grp.hier;
        // Where the task is: a thread not moved alone is where its process is.
        let src = self
            .member
            .get(&(h, pid))
            .or_else(|| {
                let tgid = self.pids.tgid(pid)?;
                self.member.get(&(h, tgid))
            })
            .copied()
            .unwrap_or(self.hiers[h].root);
        if v2 && !grp.path.is_empty() {
            // cgroup_attach_permissions → cgroup_migrate_vet_dst: the destination's domain
            // must be valid; a group that is or can become a thread root, or is threaded,
            // takes anything; otherwise no internal processes (any controller enabled).
            if !self.is_valid_domain(self.domain_of(g)) {
                return Err(EOPNOTSUPP);
            }
            let takes_any = self.can_be_thread_root(g) || grp.threaded;
            if !takes_any && !grp.subtree.is_empty() {
                return Err(EBUSY);
            }
            // A thread cannot leave its threaded domain.
            if file == "cgroup.threads" && self.domain_of(src) != self.domain_of(g) {
                return Err(EOPNOTSUPP);
            }
        } else if v2 {
            if file == "cgroup.threads" && self.domain_of(src) != self.domain_of(g) {
                return Err(EOPNOTSUPP);
            }
        } else if self.hiers[h].controllers.iter().any(|c| c == "cpuset") {
            let empty = |n: &str| self.file_content(g, n).is_none_or(|c| c.trim().is_empty());
            if empty("cpuset.cpus") || empty("cpuset.mems") {
                return Err(ENOSPC);
            }
        }
        // An exited task not yet reaped is still found by its pid, passes the checks
        // and is skipped by the migration (cgroup_migrate_add_task: PF_EXITING).
        if !self.pids.exists(pid) {
            return Ok(());
        }
        // A move to the group the task is in (its root, when the model has not seen it
        // yet) charges nothing and keeps its place in the list.
        if src != g {
            self.charge_pids_peak(g, 1);
            self.arrivals += 1;
            self.arrival.insert((h, pid), self.arrivals);
        }
        self.pin_children(h, pid);
        self.member.insert((h, pid), g);
        self.moved.insert((h, pid));
        Ok(())
    }

    /// Before `pid` moves in hierarchy `h`: each process below it that follows it (no move
    /// of its own or of an ancestor in between) stays where it was forked.
    fn pin_children(&mut self, h: usize, pid: u32) {
        let here = self.task_group(h, pid).flatten();
        for q in self.pids.all() {
            if q == pid || self.moved.contains(&(h, q)) || self.inherited.contains_key(&(h, q)) {
                continue;
            }
            let mut a = q;
            for _ in 0..256 {
                let Some(up) = self.pids.ppid(a).filter(|&u| u != 0 && u != a) else {
                    break;
                };
                if up == pid {
                    self.inherited.insert((h, q), here);
                    break;
                }
                if self.moved.contains(&(h, up)) || self.inherited.contains_key(&(h, up)) {
                    break;
                }
                a = up;
            }
        }
    }

    /// `cgroup_is_thread_root`: a domain with threaded children, or with tasks and a
    /// threaded controller enabled for its children.
    fn is_thread_root(&self, g: Ino) -> bool {
        let Some(grp) = self.group(g) else {
            return false;
        };
        if grp.threaded {
            return false;
        }
        self.child_groups(g)
            .iter()
            .any(|&c| self.group(c).is_some_and(|cg| cg.threaded))
            || (!self.alive_members(g).is_empty()
                && grp
                    .subtree
                    .iter()
                    .any(|c| THREADED_CONTROLLERS.contains(&c.as_str())))
    }

    /// `cgroup_is_valid_domain`: not threaded, and no ancestor threaded or (unless it is
    /// the root) a thread root: a plain sibling of a threaded group is `domain invalid`.
    fn is_valid_domain(&self, g: Ino) -> bool {
        if self.group(g).is_none_or(|x| x.threaded) {
            return false;
        }
        let mut c = g;
        while self.group(c).is_some_and(|x| !x.path.is_empty()) {
            let p = self.parent(c);
            let Some(pg) = self.group(p) else {
                return true;
            };
            if (!pg.path.is_empty() && self.is_thread_root(p)) || pg.threaded {
                return false;
            }
            c = p;
        }
        true
    }

    /// cgroup_vet_subtree_control_enable.
    fn vet_subtree_control_enable(&self, g: Ino, enable: &[String]) -> Result<(), i32> {
        let grp = self.group(g).ok_or(EINVAL)?;
        if !self.is_valid_domain(self.domain_of(g)) {
            return Err(EOPNOTSUPP);
        }
        if grp.path.is_empty() {
            return Ok(());
        }
        if Self::has_domain_controller(enable) {
            if self.is_thread_root(g) || grp.threaded {
                return Err(EOPNOTSUPP);
            }
        } else if self.can_be_thread_root(g) || grp.threaded {
            return Ok(());
        }
        if !self.alive_members(g).is_empty() {
            return Err(EBUSY);
        }
        Ok(())
    }

    /// Task `tid` of the case forks or clones (kernel/cgroup/pids.c, pids_can_fork):
    /// `EAGAIN` when, from its group up, a `pids.max` would be exceeded by one more task.
    /// The refusal counts in `max` of `pids.events` of the task's pids group and shows in
    /// the op log as `fork <group> -> EAGAIN`. Tasks are those the model knows: attached
    /// through cgroup.procs/tasks/cgroup.threads (children forked inside a group are not
    /// followed).
    pub fn fork(&mut self, tid: u32) -> Result<(), i32> {
        let tgid = self.pids.tgid(tid).unwrap_or(tid);
        for h in 0..self.hiers.len() {
            let Some(&g) = self
                .member
                .get(&(h, tid))
                .or_else(|| self.member.get(&(h, tgid)))
            else {
                continue;
            };
            // The task's pids group: the nearest group up with the pids files.
            let mut own = g;
            while self.file_ino(own, "pids.max").is_none() && own != self.hiers[h].root {
                own = self.parent(own);
            }
            if self.file_ino(own, "pids.max").is_none() {
                continue;
            }
            let mut c = own;
            let over = loop {
                let max = self.file_content(c, "pids.max").unwrap_or_default();
                if let Ok(max) = max.trim().parse::<usize>() {
                    if self.tasks_below(c) + 1 > max {
                        break true;
                    }
                }
                if c == self.hiers[h].root {
                    break false;
                }
                c = self.parent(c);
            };
            if over {
                let events = self.file_content(own, "pids.events").unwrap_or_default();
                let n: u64 = events
                    .lines()
                    .find_map(|l| l.strip_prefix("max "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let rest: String = events
                    .lines()
                    .filter(|l| !l.starts_with("max "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                self.set_content(own, "pids.events", format!("max {}\n{rest}", n + 1));
                let path = self.path(own);
                self.record(LogOp::Fork, path, None, Err(libc::EAGAIN));
                return Err(libc::EAGAIN);
            }
        }
        Ok(())
    }

    /// Tasks the model knows charged in `g` and every group below it (the pids counter):
    /// each member process with its threads (those not placed elsewhere on their own),
    /// zombies included until reaped.
    fn tasks_below(&self, g: Ino) -> usize {
        let Some(h) = self.group(g).map(|x| x.hier) else {
            return 0;
        };
        let mut n = 0;
        let mut stack = vec![g];
        while let Some(c) = stack.pop() {
            for pid in self.members(c, false) {
                if !self.pids.charged(pid) {
                    continue;
                }
                n += self
                    .pids
                    .threads(pid)
                    .into_iter()
                    .filter(|&t| t == pid || !self.member.contains_key(&(h, t)))
                    .count()
                    .max(1);
            }
            stack.extend(self.child_groups(c));
        }
        n
    }

    /// pids_can_attach: a task moving to `dst` is charged to `dst`'s pids group and every
    /// ancestor below the root before it is uncharged from its old one, so each of those
    /// counters passes its count plus one (the common ancestors' too): the watermark
    /// (`pids.peak`) keeps it.
    fn charge_pids_peak(&mut self, dst: Ino, tasks: usize) {
        let mut c = dst;
        while self.group(c).is_some_and(|x| !x.path.is_empty()) {
            if self.file_ino(c, "pids.current").is_some() {
                let new = self.tasks_below(c) + tasks;
                let gm = self.group_mut(c);
                gm.pids_peak = gm.pids_peak.max(new);
            }
            c = self.parent(c);
        }
    }

    fn domain_of(&self, mut g: Ino) -> Ino {
        while self.group(g).is_some_and(|x| x.threaded) {
            g = self.parent(g);
        }
        g
    }

    // ---- results ----

    /// What the case did to the cgroupfs, from the final state.
    pub fn effects(&self) -> Effects {
        let walked;
        let (now, created, removed) = if self.reshaped {
            walked = self.walk();
            (&walked.0, walked.1.clone(), walked.2.clone())
        } else {
            // Debug builds (the tests) check the shortcut against the walk.
            #[cfg(debug_assertions)]
            {
                let (paths, created, removed) = self.walk();
                assert!(
                    paths == self.built.paths
                        && created == self.built.created
                        && removed == self.built.removed,
                    "the model's structure changed without `reshaped`"
                );
            }
            (
                &self.built.paths,
                self.built.created.clone(),
                self.built.removed.clone(),
            )
        };
        let mut written = BTreeMap::new();
        for p in &self.written {
            if !now.contains(p) {
                continue;
            }
            let Some(ino) = self.resolve(p) else { continue };
            let name = p.rsplit('/').next().unwrap_or_default();
            // Membership files: who was moved there (the case's processes have exited by now).
            let mut text = if ["cgroup.procs", "tasks", "cgroup.threads"].contains(&name) {
                let g = self.parent(ino);
                self.members(g, false)
                    .iter()
                    .map(|p| format!("{p}\n"))
                    .collect()
            } else {
                self.render(ino).unwrap_or_default()
            };
            if text.ends_with('\n') {
                text.pop();
            }
            written.insert(p.clone(), text);
        }
        Effects {
            created,
            written,
            removed,
        }
    }

    /// `/proc/<pid>/cgroup` of case task `tid` (kernel/cgroup/cgroup.c, proc_cgroup_show),
    /// rendered from the host's static view `static_view`: the same lines (hierarchy ids,
    /// order, controller names), each path replaced by the task's group in that hierarchy
    /// if the task, its process or (inheritance at fork) its nearest ancestor was moved by
    /// a write to cgroup.procs/tasks/cgroup.threads. A line of a hierarchy no one moved it
    /// in, or that names no hierarchy of the model, stays as it is.
    ///
    /// `tid` is the task whose view it is: the thread-group leader for `/proc/<pid>/cgroup`,
    /// the thread for `thread-self` and `task/<tid>` (a thread moved alone through
    /// `cgroup.threads` shows its own group there, its process's elsewhere).
    ///
    /// A process forked before its parent moved stays where it was forked (pinned at the
    /// move). Limit, as the model records moves: a process moved by `tasks` moves with all
    /// its threads (the kernel moves only the thread written).
    pub fn proc_cgroup(&self, tid: u32, static_view: &str) -> String {
        let mut out = String::with_capacity(static_view.len() + 16);
        for line in static_view.split_inclusive('\n') {
            let body = line.strip_suffix('\n').unwrap_or(line);
            let mut parts = body.splitn(3, ':');
            let (Some(id), Some(label), Some(_)) = (parts.next(), parts.next(), parts.next())
            else {
                out.push_str(line);
                continue;
            };
            let h = self.hiers.iter().position(|h| match h.layer {
                Layer::V2 => id == "0" && label.is_empty(),
                Layer::V1 => id != "0" && h.label == label,
            });
            match h.and_then(|h| self.moved_group(h, tid)) {
                Some(path) => {
                    out.push_str(&format!("{id}:{label}:/{path}"));
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
                None => out.push_str(line),
            }
        }
        out
    }

    /// The group (path inside hierarchy `h`) of case task `tid` if it, its process or its
    /// nearest ancestor process was moved there (or it was pinned there, see `inherited`).
    fn moved_group(&self, h: usize, tid: u32) -> Option<String> {
        let g = self.task_group(h, tid).flatten()?;
        self.group(g).map(|g| g.path.clone())
    }

    /// Where task `tid` is in hierarchy `h` as far as moves tell: `Some(Some(group))`,
    /// `Some(None)` pinned to the static view's line, `None` nothing known (the static
    /// view's line too).
    fn task_group(&self, h: usize, tid: u32) -> Option<Option<Ino>> {
        let here = |p: u32| {
            if self.moved.contains(&(h, p)) {
                self.member.get(&(h, p)).map(|&g| Some(g))
            } else {
                self.inherited.get(&(h, p)).copied()
            }
        };
        if let Some(g) = here(tid) {
            return Some(g);
        }
        let mut p = self.pids.tgid(tid).unwrap_or(tid);
        // A bound on the walk, in case a racing exit makes a loop of stale links.
        for _ in 0..256 {
            if let Some(g) = here(p) {
                return Some(g);
            }
            p = self.pids.ppid(p).filter(|&pp| pp != 0 && pp != p)?;
        }
        None
    }

    /// Every path of the tree now, and the groups created and paths removed since it was
    /// built (the top-most of a removed subtree).
    fn walk(&self) -> (BTreeSet<String>, Vec<String>, Vec<String>) {
        let mut now = BTreeSet::new();
        let mut created = Vec::new();
        let mut stack = vec![ROOT];
        while let Some(i) = stack.pop() {
            let Some(e) = self.entry(i) else { continue };
            for &c in e.children.values() {
                let p = self.path(c);
                if self.group(c).is_some() {
                    stack.push(c);
                    if !self.initial.contains(&p) {
                        created.push(p.clone());
                    }
                }
                now.insert(p);
            }
        }
        created.sort();
        let mut removed: Vec<String> = Vec::new();
        for p in &self.initial {
            if !now.contains(p) && !removed.iter().any(|r| p.starts_with(&format!("{r}/"))) {
                removed.push(p.clone());
            }
        }
        (now, created, removed)
    }

    /// The inode at a path relative to /sys/fs/cgroup (no symlinks followed but the first).
    pub fn resolve(&self, path: &str) -> Option<Ino> {
        let mut i = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            i = *self.entry(i)?.children.get(part)?;
            if let Body::Symlink(t) = &self.entry(i)?.body {
                i = self.resolve(t)?;
            }
        }
        Some(i)
    }

    /// The living pids of the group at `path` and of its descendants, as the host's systemd
    /// finds them to signal a unit (not in the op log: systemd's own reads are not the
    /// target's).
    pub fn procs_below(&self, path: &str) -> Vec<u32> {
        let Some(g) = self.resolve(path).filter(|&g| self.group(g).is_some()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![g];
        while let Some(c) = stack.pop() {
            out.extend(self.alive_members(c));
            stack.extend(self.child_groups(c));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Send `sig` to a process of the case (the host's systemd).
    pub fn signal(&self, pid: u32, sig: i32) {
        self.pids.signal(pid, sig);
    }

    /// The process exists in the case.
    pub fn pid_exists(&self, pid: u32) -> bool {
        self.pids.exists(pid)
    }

    /// Where process lookups go (the case's procfs, once its init runs).
    pub fn set_pids(&mut self, pids: Box<dyn Pids>) {
        self.pids = pids;
    }

    pub fn host(&self) -> &Host {
        &self.host
    }
}

#[cfg(test)]
mod tests {
    use super::devices_update;

    #[test]
    fn a_deny_takes_access_away_from_the_rule_of_the_same_device() {
        // cgroups-rs 0.3.4 devices::test_devices_parsing, as the kernel answers it.
        let list = devices_update("a *:* rwm\n", "a", false);
        assert_eq!(list, "");
        let list = devices_update(&list, "c 1:3 m", true);
        assert_eq!(list, "c 1:3 m\n");
        assert_eq!(devices_update(&list, "c 1:3 rwm", false), "");
        assert_eq!(devices_update(&list, "c 1:3 rw", true), "c 1:3 rwm\n");
        assert_eq!(
            devices_update("c 1:3 rwm\n", "c 1:3 w", false),
            "c 1:3 rm\n"
        );
        // No exact match (c 1:* is another rule): nothing changes.
        assert_eq!(
            devices_update("c 1:3 rwm\n", "c 1:* rwm", false),
            "c 1:3 rwm\n"
        );
        // Default allow: the list does not show exceptions.
        assert_eq!(
            devices_update("a *:* rwm\n", "c 1:3 rwm", false),
            "a *:* rwm\n"
        );
    }
}
