//! The cgroupfs of a host, in memory: which v1 hierarchies are mounted (and with which ids),
//! where cgroup2 sits, which groups exist (roots plus systemd's top-level units), and the
//! interface files of each group, selected from files-v1.toml / files-v2.toml by kernel
//! version, host knobs and attached controllers. [`build`] turns that into a [`Plan`].

use std::collections::BTreeMap;

use super::data::{At, Controller, FileEntry, Hierarchy, KernelTables};
use super::version::KernelVersion;
use super::{procfs, CgroupMode, Host, HostData};

/// Which cgroup version a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    V1,
    V2,
}

/// Root of a hierarchy, or any group below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Root,
    Child,
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, content: String },
    Symlink { target: String },
}

/// A host as files, before anything touches the disk.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Mode of the tree's top directory (the /sys/fs/cgroup mount itself).
    pub root_mode: u32,
    /// Paths relative to /sys/fs/cgroup; parents sort before their children.
    pub tree: BTreeMap<String, Node>,
    /// /proc views by the path the target sees.
    pub proc: BTreeMap<String, String>,
}

/// A v1 hierarchy as mounted on this host.
#[derive(Debug, Clone)]
pub struct Mounted {
    /// Hierarchy id (/proc/self/cgroup, /proc/cgroups).
    pub id: u32,
    /// Directory under /sys/fs/cgroup.
    pub dir: String,
    /// Co-mounted controllers (kernel order), empty for a named hierarchy.
    pub controllers: Vec<String>,
    /// `name=` of a named hierarchy.
    pub name: Option<String>,
    /// Links under /sys/fs/cgroup pointing at `dir`.
    pub symlinks: Vec<String>,
}

impl Mounted {
    /// How /proc/self/cgroup names it: `cpu,cpuacct` or `name=systemd`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("name={n}"),
            None => self.controllers.join(","),
        }
    }
}

/// One cgroup of the simulated host.
#[derive(Debug, Clone)]
pub struct Group {
    pub layer: Layer,
    /// Directory of the hierarchy under /sys/fs/cgroup ("" = the tree root, v2).
    pub hierarchy: String,
    /// Path below the hierarchy root ("" = the root).
    pub path: String,
    /// Controllers whose files the group has (v2 names on v2, incl. implicit ones).
    pub attached: Vec<String>,
    /// v2 `cgroup.controllers`.
    pub listed: Vec<String>,
    /// v2 `cgroup.subtree_control`.
    pub subtree: Vec<String>,
    /// `cgroup.procs` / `tasks` / `cgroup.threads`.
    pub procs: String,
}

impl Group {
    pub fn level(&self) -> Level {
        if self.path.is_empty() {
            Level::Root
        } else {
            Level::Child
        }
    }
    /// Path relative to /sys/fs/cgroup.
    pub fn rel(&self) -> String {
        join(&self.hierarchy, &self.path)
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// Hierarchies and groups of a host.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Mounted v1 hierarchies in id order (empty on v2).
    pub v1: Vec<Mounted>,
    /// Where cgroup2 is mounted, relative to /sys/fs/cgroup: "" (v2), "unified" (hybrid).
    pub v2_dir: Option<String>,
    /// Controllers the kernel has, in kernel order (v1 names).
    pub available: Vec<String>,
    /// Controllers bound to the cgroup2 hierarchy (v1 names).
    pub v2_bound: Vec<String>,
    pub groups: Vec<Group>,
}

impl Host {
    /// Whether a knob of the data files holds on this host: `swap_accounting`, `systemd`, an
    /// option of options.toml, or a controller name (the kernel has it).
    pub fn knob(&self, tables: &KernelTables, name: &str) -> bool {
        match name {
            "swap_accounting" => self.swap_accounting,
            "systemd" => self.systemd.is_some(),
            _ => match tables.controller(name) {
                Some(c) => self.has_controller(c),
                None => self.options.get(name).copied().unwrap_or(false),
            },
        }
    }

    /// The kernel has this controller (by version, unless an option forces it).
    pub fn has_controller(&self, c: &Controller) -> bool {
        self.options
            .get(&c.name)
            .copied()
            .unwrap_or(self.version() >= c.since)
    }
}

/// Interface files of a group: `attached` are the controllers whose files it carries (v1: the
/// hierarchy's; v2: the v2 names listed in its cgroup.controllers, plus implicit ones).
pub fn files_for<'a>(
    tables: &'a KernelTables,
    host: &Host,
    layer: Layer,
    level: Level,
    attached: &[String],
) -> Vec<&'a FileEntry> {
    let v = host.version();
    let table = match layer {
        Layer::V1 => &tables.files_v1,
        Layer::V2 => &tables.files_v2,
    };
    let has = |c: &str| attached.iter().any(|a| a == c);
    table
        .iter()
        .filter(|e| {
            e.exists_in(v)
                && matches!(
                    (e.at, level),
                    (At::Both, _) | (At::Root, Level::Root) | (At::Child, Level::Child)
                )
                && (e.controller == "cgroup" || has(&e.controller))
                && e.requires.iter().all(|k| host.knob(tables, k))
                && !e.excludes.iter().any(|k| host.knob(tables, k))
                && e.with_controller.as_deref().is_none_or(has)
                && !e.without_controller.as_deref().is_some_and(has)
        })
        .collect()
}

/// Why a file named `name` is not in a group of this host, from the data (for fault errors):
/// e.g. "`cgroup.kill` exists from kernel 5.14".
pub fn why_absent(tables: &KernelTables, host: &Host, layer: Layer, name: &str) -> Option<String> {
    let table = match layer {
        Layer::V1 => &tables.files_v1,
        Layer::V2 => &tables.files_v2,
    };
    let v = host.version();
    let entries: Vec<&FileEntry> = table.iter().filter(|e| e.name == name).collect();
    let first = entries.first()?;
    if let Some(s) = entries
        .iter()
        .filter_map(|e| e.since)
        .min()
        .filter(|s| v < *s)
    {
        return Some(format!(
            "`{name}` exists from kernel {s} (this host: {})",
            host.kernel
        ));
    }
    if let Some(r) = entries
        .iter()
        .filter_map(|e| e.removed_in)
        .max()
        .filter(|r| v >= *r)
    {
        if entries.iter().all(|e| e.removed_in.is_some()) {
            return Some(format!(
                "`{name}` was removed in kernel {r} (this host: {})",
                host.kernel
            ));
        }
    }
    if let Some(k) = first.requires.iter().find(|k| !host.knob(tables, k)) {
        return Some(format!("`{name}` needs {k}, which is off on this host"));
    }
    if let Some(c) = &first.with_controller {
        return Some(format!("`{name}` needs the {c} controller attached"));
    }
    Some(match first.at {
        At::Root => format!("`{name}` exists only at the root of a hierarchy"),
        At::Child => format!("`{name}` exists only in non-root groups"),
        At::Both if first.controller != "cgroup" => {
            format!(
                "`{name}` needs the {} controller enabled in the group",
                first.controller
            )
        }
        At::Both => format!("`{name}` is not in this group"),
    })
}

fn available<'a>(tables: &'a KernelTables, host: &Host) -> Vec<&'a Controller> {
    tables
        .controllers
        .iter()
        .filter(|c| host.has_controller(c))
        .collect()
}

fn mount_v1(tables: &KernelTables, host: &Host) -> Vec<Mounted> {
    let mut out = Vec::new();
    for h in &tables.hierarchies {
        if !h.requires.iter().all(|k| host.knob(tables, k)) {
            continue;
        }
        let ctls = mountable(tables, host, h);
        if ctls.is_empty() && h.name.is_none() {
            continue;
        }
        let dir = if ctls.len() == h.controllers.len() {
            h.dir.clone()
        } else {
            ctls.join(",")
        };
        let symlinks = h
            .symlinks
            .iter()
            .filter(|l| ctls.contains(l) && **l != dir)
            .cloned()
            .collect();
        out.push(Mounted {
            id: out.len() as u32 + 1,
            dir,
            controllers: ctls,
            name: h.name.clone(),
            symlinks,
        });
    }
    out
}

/// Controllers of a hierarchy that this host can mount on v1.
fn mountable(tables: &KernelTables, host: &Host, h: &Hierarchy) -> Vec<String> {
    h.controllers
        .iter()
        .filter(|name| {
            tables.controller(name).is_some_and(|c| {
                host.has_controller(c) && c.v1_requires.iter().all(|k| host.knob(tables, k))
            })
        })
        .cloned()
        .collect()
}

fn systemd_groups<'a>(data: &'a HostData, host: &Host) -> Vec<&'a super::data::SystemdGroup> {
    match host.systemd {
        None => Vec::new(),
        Some(v) => data
            .kernels
            .systemd
            .group
            .iter()
            .filter(|g| g.since.is_none_or(|s| v >= s))
            .collect(),
    }
}

pub fn topology(host: &Host, data: &HostData) -> Topology {
    if let Some(c) = &host.captured {
        return super::captured::topology(host, data, c);
    }
    let tables = &data.kernels;
    let v = host.version();
    let avail = available(tables, host);
    let v1 = match host.cgroup {
        CgroupMode::V2 => Vec::new(),
        _ => mount_v1(tables, host),
    };
    let on_v1 = |c: &Controller| v1.iter().any(|m| m.controllers.contains(&c.name));
    let v2_bound: Vec<&Controller> = avail
        .iter()
        .copied()
        .filter(|c| c.v2_since.is_some_and(|s| v >= s) && !on_v1(c))
        .collect();
    let v2_dir = match host.cgroup {
        CgroupMode::V1 => None,
        CgroupMode::Hybrid => Some("unified".to_owned()),
        CgroupMode::V2 => Some(String::new()),
    };
    let units = systemd_groups(data, host);
    let has_init = units.iter().any(|g| !g.procs.is_empty());
    let root_procs = if has_init {
        String::new()
    } else {
        "1\n".to_owned()
    };

    let mut groups = Vec::new();
    for m in &v1 {
        let systemd_here = m.name.as_deref() == Some("systemd");
        groups.push(Group {
            layer: Layer::V1,
            hierarchy: m.dir.clone(),
            path: String::new(),
            attached: m.controllers.clone(),
            listed: Vec::new(),
            subtree: Vec::new(),
            procs: if systemd_here {
                root_procs.clone()
            } else {
                "1\n".to_owned()
            },
        });
        if systemd_here {
            for u in &units {
                groups.push(Group {
                    layer: Layer::V1,
                    hierarchy: m.dir.clone(),
                    path: u.path.clone(),
                    attached: Vec::new(),
                    listed: Vec::new(),
                    subtree: Vec::new(),
                    procs: u.procs.clone(),
                });
            }
        }
    }
    if let Some(dir) = &v2_dir {
        let listed: Vec<String> = v2_bound
            .iter()
            .filter(|c| !c.v2_implicit)
            .map(|c| c.v2_name().to_owned())
            .collect();
        let implicit: Vec<String> = v2_bound
            .iter()
            .filter(|c| c.v2_implicit)
            .map(|c| c.v2_name().to_owned())
            .collect();
        let subtree = match (host.cgroup, host.systemd) {
            (CgroupMode::V2, Some(sd)) => {
                let rule = &tables.systemd.root_subtree_control;
                listed
                    .iter()
                    .filter(|c| sd >= rule.all_since || rule.older.contains(c))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        let in_order = |set: &[String]| -> Vec<String> {
            v2_bound
                .iter()
                .map(|c| c.v2_name().to_owned())
                .filter(|n| set.contains(n) || implicit.contains(n))
                .collect()
        };
        groups.push(Group {
            layer: Layer::V2,
            hierarchy: dir.clone(),
            path: String::new(),
            attached: in_order(&listed),
            listed: listed.clone(),
            subtree: subtree.clone(),
            procs: root_procs.clone(),
        });
        for u in &units {
            groups.push(Group {
                layer: Layer::V2,
                hierarchy: dir.clone(),
                path: u.path.clone(),
                attached: in_order(&subtree),
                listed: subtree.clone(),
                subtree: Vec::new(),
                procs: u.procs.clone(),
            });
        }
    }
    Topology {
        v1,
        v2_dir,
        available: avail.iter().map(|c| c.name.clone()).collect(),
        v2_bound: v2_bound.iter().map(|c| c.name.clone()).collect(),
        groups,
    }
}

fn words(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!("{}\n", list.join(" "))
    }
}

/// Fill the placeholders of a content template for group `g`.
fn render(template: &str, g: &Group, topo: &Topology, v: KernelVersion) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    let _ = v;
    let below = |g2: &Group| {
        g2.hierarchy == g.hierarchy
            && g2.path != g.path
            && (g.path.is_empty() || g2.path.starts_with(&format!("{}/", g.path)))
    };
    let descendants: Vec<&Group> = topo.groups.iter().filter(|g2| below(g2)).collect();
    let stat = || {
        format!(
            "nr_descendants {}\nnr_dying_descendants 0\n",
            descendants.len()
        )
    };
    let stat_subsys = || {
        let mut s = format!("nr_descendants {}\n", descendants.len());
        for c in &g.attached {
            let n = 1 + descendants
                .iter()
                .filter(|d| d.attached.contains(c))
                .count();
            s += &format!("nr_subsys_{c} {n}\n");
        }
        s += "nr_dying_descendants 0\n";
        for c in &g.attached {
            s += &format!("nr_dying_subsys_{c} 0\n");
        }
        s
    };
    template
        .replace("{procs}", &g.procs)
        .replace("{controllers}", &words(&g.listed))
        .replace("{subtree_control}", &words(&g.subtree))
        .replace("{cgroup_stat_subsys}", &stat_subsys())
        .replace("{cgroup_stat}", &stat())
}

/// The whole host in memory: tree and /proc views, before faults.
pub fn build(host: &Host, data: &HostData) -> Plan {
    let tables = &data.kernels;
    let v = host.version();
    let topo = topology(host, data);
    if let Some(c) = &host.captured {
        return Plan {
            root_mode: c
                .find("", "/")
                .filter(|_| host.cgroup == CgroupMode::V2)
                .and_then(|g| super::data::parse_mode(&g.mode))
                .unwrap_or(0o755),
            tree: super::captured::tree(c),
            proc: procfs::views(host, data, &topo),
        };
    }
    let mut tree = BTreeMap::new();
    for m in &topo.v1 {
        for l in &m.symlinks {
            tree.insert(
                l.clone(),
                Node::Symlink {
                    target: m.dir.clone(),
                },
            );
        }
    }
    for g in &topo.groups {
        let rel = g.rel();
        if !rel.is_empty() {
            let mode = if g.level() == Level::Root {
                0o555
            } else {
                0o755
            };
            tree.insert(rel.clone(), Node::Dir { mode });
        }
        for e in files_for(tables, host, g.layer, g.level(), &g.attached) {
            let template = match g.level() {
                Level::Root => e.root_content.as_deref().unwrap_or(&e.content),
                Level::Child => &e.content,
            };
            let mut content = render(template, g, &topo, v);
            // A group the host starts with tasks in (init.scope holds pid 1) counts them,
            // as the real kernel does (seen in the lane's 6.1 boot). Not a placeholder in
            // files-v2.toml: the cgroupfs model copies those contents into the groups the
            // target creates, which start empty.
            if matches!(e.name.as_str(), "pids.current" | "pids.peak") && !g.procs.is_empty() {
                content = format!("{}\n", g.procs.split_whitespace().count());
            }
            tree.insert(
                join(&rel, &e.name),
                Node::File {
                    mode: e.mode,
                    content,
                },
            );
        }
    }
    Plan {
        root_mode: if host.cgroup == CgroupMode::V2 {
            0o555
        } else {
            0o755
        },
        tree,
        proc: procfs::views(host, data, &topo),
    }
}
