//! The /proc views of a host: /proc/self/mountinfo, /proc/self/cgroup, /proc/cgroups,
//! /proc/sys/kernel/osrelease and /proc/version, consistent with the [`Topology`] (the same
//! hierarchy ids everywhere).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::tree::{Group, Topology};
use super::{CgroupMode, Host, HostData};

/// (path the target sees, file name under `<dir>/proc/`).
pub const VIEWS: [(&str, &str); 5] = [
    ("/proc/self/mountinfo", "mountinfo"),
    ("/proc/self/cgroup", "self_cgroup"),
    ("/proc/cgroups", "cgroups"),
    ("/proc/sys/kernel/osrelease", "osrelease"),
    ("/proc/version", "version"),
];

pub fn views(host: &Host, data: &HostData, topo: &Topology) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match &host.captured {
        Some(c) => {
            out.insert(VIEWS[0].0.to_owned(), super::captured::mountinfo(data, c));
            out.insert(VIEWS[2].0.to_owned(), c.proc_cgroups.clone());
        }
        None => {
            out.insert(VIEWS[0].0.to_owned(), mountinfo(host, data, topo));
            out.insert(VIEWS[2].0.to_owned(), cgroups(topo));
        }
    }
    out.insert(VIEWS[1].0.to_owned(), self_cgroup(topo));
    out.insert(VIEWS[3].0.to_owned(), format!("{}\n", host.kernel));
    out.insert(VIEWS[4].0.to_owned(), format!("{}\n", host.proc_version));
    out
}

/// cgroup2 super options: `rw` plus what systemd passes for this kernel.
fn cgroup2_super(host: &Host, data: &HostData) -> String {
    let mut s = "rw".to_owned();
    if let Some(sd) = host.systemd {
        let v = host.version();
        for o in &data.kernels.systemd.mount.cgroup2_option {
            if v >= o.kernel && sd >= o.systemd {
                s += ",";
                s += &o.name;
            }
        }
    }
    s
}

fn mountinfo(host: &Host, data: &HostData, topo: &Topology) -> String {
    let mi = &data.kernels.procfs.mountinfo;
    let sd = &data.kernels.systemd.mount;
    let mut text = String::new();
    for line in &mi.base {
        text += line;
        text.push('\n');
    }
    let (mut id, mut minor, mut shared) = (mi.next_mount_id, mi.next_minor, mi.next_shared);
    let mut line = |parent: u32, point: &str, opts: &str, fstype: &str, sup: &str| {
        let _ = writeln!(
            text,
            "{id} {parent} 0:{minor} / /sys/fs/cgroup{point} {opts} shared:{shared} - {fstype} {fstype} {sup}"
        );
        let this = id;
        id += 1;
        minor += 1;
        shared += 1;
        this
    };
    match host.cgroup {
        CgroupMode::V2 => {
            line(
                mi.sysfs_mount_id,
                "",
                &mi.mount_options,
                "cgroup2",
                &cgroup2_super(host, data),
            );
        }
        CgroupMode::V1 | CgroupMode::Hybrid => {
            let tmpfs = line(
                mi.sysfs_mount_id,
                "",
                &mi.tmpfs_options,
                "tmpfs",
                &mi.tmpfs_super,
            );
            if host.cgroup == CgroupMode::Hybrid {
                line(
                    tmpfs,
                    "/unified",
                    &mi.mount_options,
                    "cgroup2",
                    &cgroup2_super(host, data),
                );
            }
            for m in &topo.v1 {
                let sup = match (&m.name, host.systemd) {
                    (Some(n), Some(v)) if n == "systemd" => {
                        if v < sd.release_agent_before {
                            sd.name_systemd.replace(
                                "name=",
                                &format!("release_agent={},name=", sd.release_agent),
                            )
                        } else {
                            sd.name_systemd.clone()
                        }
                    }
                    (Some(n), _) => format!("name={n}"),
                    (None, _) => m.controllers.join(","),
                };
                line(
                    tmpfs,
                    &format!("/{}", m.dir),
                    &mi.mount_options,
                    "cgroup",
                    &format!("rw,{sup}"),
                );
            }
        }
    }
    text
}

/// `/proc/self/cgroup`: the target sits at the root of every hierarchy.
fn self_cgroup(topo: &Topology) -> String {
    let mut s = String::new();
    for m in topo.v1.iter().rev() {
        let _ = writeln!(s, "{}:{}:/", m.id, m.label());
    }
    if topo.v2_dir.is_some() {
        s += "0::/\n";
    }
    s
}

/// `/proc/cgroups`: every controller the kernel has, with its hierarchy id (0 = bound to
/// cgroup2 / unmounted) and the number of cgroups in that hierarchy.
fn cgroups(topo: &Topology) -> String {
    let count = |pred: &dyn Fn(&Group) -> bool| topo.groups.iter().filter(|g| pred(g)).count();
    let v2_count = match &topo.v2_dir {
        Some(dir) => count(&|g: &Group| g.layer == super::tree::Layer::V2 && &g.hierarchy == dir),
        None => 1,
    };
    let mut s = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n".to_owned();
    for c in &topo.available {
        let (id, n) = match topo.v1.iter().find(|m| m.controllers.contains(c)) {
            Some(m) => (
                m.id,
                count(&|g: &Group| g.layer == super::tree::Layer::V1 && g.hierarchy == m.dir),
            ),
            None => (0, v2_count),
        };
        let _ = writeln!(s, "{c}\t{id}\t{n}\t1");
    }
    s
}
