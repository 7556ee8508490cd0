//! The seeded op generator. It walks the model's own tree (which groups exist, which
//! interface files a group has) to pick ops that are likely to matter, so the kernel is
//! asked about every file the model claims; a file the kernel lacks shows up as a
//! disagreement like any other.
//!
//! Each sequence starts by creating its own group `{g}` in every hierarchy, then draws ops:
//! reads of any file, writes of valid, boundary and invalid values (per file, see
//! [`values_for`]), mkdir/rmdir (nested, up to depth 4), moves of the helpers `{p0}` `{p1}`
//! through `cgroup.procs` / `tasks` / `cgroup.threads`, and the v2 specials (subtree
//! control, thread mode, freeze, kill, depth and descendant limits) through the same writes.

use super::compare::run_on_model;
use super::{Op, HELPERS};
use crate::sandbox::cgroupfs::model::Kind;
use crate::sandbox::cgroupfs::Model;

/// Values written to a file, by its name: valid, boundary and invalid ones.
pub fn values_for(name: &str, controllers: &[String]) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let bytes = s(&[
        "0",
        "1",
        "4096",
        "4097",
        "1048576",
        "100k",
        "64M",
        "1G",
        "max",
        "-1",
        "-2",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "abc",
        "",
        " 8192\n",
        "12 34",
    ]);
    // Not `0` (the writer itself): the guest's /init writes, and once moved into a group
    // that a later op freezes, it would stop the run.
    let procs = s(&[
        "{p0}",
        "{p1}",
        "{p0}\n",
        "-1",
        "999999",
        "abc",
        "",
        "{p0} {p1}",
    ]);
    let weight = s(&[
        "1",
        "100",
        "10000",
        "0",
        "10001",
        "default 50",
        "abc",
        "-1",
        "max",
    ]);
    let mut v = match name {
        "cgroup.procs" | "tasks" | "cgroup.threads" => procs,
        "cgroup.subtree_control" => {
            let mut v = s(&["", "+foo", "cpu", "+cpu -cpu", "-memory"]);
            for c in controllers {
                v.push(format!("+{c}"));
                v.push(format!("-{c}"));
            }
            v.push(
                controllers
                    .iter()
                    .map(|c| format!("+{c}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            v
        }
        "cgroup.type" => s(&["threaded", "domain", "domain threaded", "invalid", ""]),
        "cgroup.max.depth" | "cgroup.max.descendants" => s(&[
            "0",
            "1",
            "2",
            "max",
            "-1",
            "abc",
            "2147483647",
            "2147483648",
        ]),
        "cgroup.freeze" => s(&["0", "1", "2", "-1", "abc"]),
        "cgroup.kill" => s(&["1", "0", "2"]),
        "cgroup.pressure" => s(&["0", "1", "2"]),
        "freezer.state" => s(&["FROZEN", "THAWED", "FREEZING", "frozen", ""]),
        "cpuset.cpus" | "cpuset.cpus.exclusive" | "cpuset.mems" => {
            s(&["0", "1", "0-1", "0,1", "", "2", "0-3", "1-0", "a", " 0\n"])
        }
        "cpuset.cpus.partition" => s(&["root", "member", "isolated", "bad"]),
        "cpu.max" => s(&[
            "max",
            "max 100000",
            "50000 100000",
            "1000 1000",
            "999 100000",
            "0 100000",
            "50000 999",
            "50000 1000001",
            "abc",
            "50000",
        ]),
        "cpu.max.burst" => s(&["0", "1000", "100001", "-1", "abc"]),
        "cpu.weight" | "io.weight" | "io.bfq.weight" => weight,
        "cpu.weight.nice" => s(&["0", "-20", "19", "20", "-21", "abc"]),
        "cpu.idle" => s(&["0", "1", "2", "-1"]),
        "cpu.shares" => s(&["1", "2", "1024", "262144", "262145", "0", "abc"]),
        "cpu.cfs_quota_us" | "cpu.cfs_period_us" | "cpu.cfs_burst_us" => s(&[
            "-1", "0", "999", "1000", "100000", "1000000", "1000001", "abc", "-2",
        ]),
        "memory.swappiness" => s(&["0", "60", "100", "200", "201", "-1", "abc"]),
        "memory.oom_control" | "memory.oom.group" | "memory.use_hierarchy" => {
            s(&["0", "1", "2", "-1"])
        }
        "memory.move_charge_at_immigrate" => s(&["0", "1", "3", "4", "abc"]),
        "memory.force_empty" | "memory.reclaim" => s(&["0", "1", "1M", "abc"]),
        "pids.max" => s(&["max", "0", "1", "10", "-1", "abc", "9223372036854775807"]),
        "devices.allow" | "devices.deny" => s(&[
            "a",
            "c 1:3 rwm",
            "b 8:* r",
            "c *:* m",
            "x 1:3 r",
            "c 1:3 z",
            "c 1 r",
            "",
        ]),
        "net_cls.classid" => s(&["0", "1048577", "0x100001", "-1", "abc", "4294967296"]),
        "net_prio.ifpriomap" => s(&["lo 5", "eth0 1", "lo", "lo abc"]),
        "io.max" | "blkio.throttle.read_bps_device" | "io.latency" => {
            s(&["8:0 rbps=1048576", "8:0 1048576", "1:3 rbps=max", "bad", ""])
        }
        "blkio.weight" => s(&["10", "100", "1000", "9", "1001", "abc"]),
        "misc.max" => s(&["sev 1", "bogus 1", ""]),
        "rdma.max" => s(&["mlx4_0 hca_handle=2", "bad"]),
        "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max"
        | "memory.swap.high" | "memory.zswap.max" => bytes,
        "cgroup.clone_children"
        | "notify_on_release"
        | "cpuset.cpu_exclusive"
        | "cpuset.mem_exclusive"
        | "cpuset.mem_hardwall"
        | "cpuset.memory_migrate"
        | "cpuset.sched_load_balance"
        | "cpuset.memory_spread_page"
        | "cpuset.memory_spread_slab"
        | "memory.zswap.writeback" => s(&["0", "1", "2", "-1"]),
        "release_agent" => s(&["/bin/true"]),
        _ if name.ends_with("limit_in_bytes") || name.ends_with(".max") => bytes,
        _ => s(&["0", "1", "-1", "max", "abc", ""]),
    };
    v.dedup();
    v
}

/// One generated sequence: the ops (with `{g}`) and what the model answered to each.
pub struct Generated {
    pub ops: Vec<Op>,
    pub model: Vec<String>,
}

/// A sequence of `len` ops after the opening mkdirs, drawn from `rng`, run on `model` (a
/// fresh model of the lane host, prologue applied) as it is drawn. `hiers`: directory of
/// every hierarchy under /sys/fs/cgroup ("" = cgroup2 at the top).
pub fn sequence(
    model: &mut Model,
    rng: &mut fastrand::Rng,
    hiers: &[String],
    g: &str,
    len: usize,
) -> Generated {
    let mut out = Generated {
        ops: Vec::new(),
        model: Vec::new(),
    };
    let mut groups: Vec<String> = Vec::new();
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_owned()
        } else {
            format!("{a}/{b}")
        }
    };
    let push = |m: &mut Model, op: Op, out: &mut Generated| -> String {
        let r = run_on_model(m, &op.in_group(g), HELPERS);
        out.ops.push(op);
        out.model.push(r.clone());
        r
    };
    for h in hiers {
        let p = join(h, "{g}");
        if push(model, Op::new("mkdir", p.clone(), None), &mut out) == "ok" {
            groups.push(p);
        }
    }
    if groups.is_empty() {
        return out;
    }
    let names = ["a", "b", "c"];
    while out.ops.len() < len + hiers.len() {
        let group = groups[rng.usize(..groups.len())].clone();
        let filled = group.replace("{g}", g);
        let Some(ino) = model.resolve(&filled) else {
            groups.retain(|x| *x != group);
            if groups.is_empty() {
                break;
            }
            continue;
        };
        let files: Vec<String> = model
            .readdir(ino)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, _, k)| *k == Kind::File)
            .map(|(n, _, _)| n)
            .collect();
        let controllers: Vec<String> = model
            .resolve(&format!("{filled}/cgroup.controllers"))
            .and_then(|i| model.read(i).ok())
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let roll = rng.u32(..100);
        let op = if roll < 10 {
            let depth = group.matches('/').count();
            let parent = if depth >= 5 {
                groups[0].clone()
            } else {
                group.clone()
            };
            Op::new(
                "mkdir",
                join(&parent, names[rng.usize(..names.len())]),
                None,
            )
        } else if roll < 16 {
            Op::new("rmdir", group.clone(), None)
        } else if roll < 26 {
            let file = ["cgroup.procs", "tasks", "cgroup.threads"][rng.usize(..3)];
            let who = format!("{{p{}}}", rng.usize(..HELPERS));
            Op::new("write", join(&group, file), Some(who))
        } else if roll < 30 && !files.contains(&"cgroup.subtree_control".to_owned()) {
            Op::new("read", join(&group, "tasks"), None)
        } else if roll < 30 {
            let file = [
                "cgroup.subtree_control",
                "cgroup.type",
                "cgroup.max.depth",
                "cgroup.max.descendants",
                "cgroup.freeze",
            ][rng.usize(..5)];
            let vals = values_for(file, &controllers);
            let v = vals[rng.usize(..vals.len())].clone();
            Op::new("write", join(&group, file), Some(v))
        } else if roll < 62 || files.is_empty() {
            let f = if files.is_empty() || rng.u32(..50) == 0 {
                "nonexistent".to_owned()
            } else {
                files[rng.usize(..files.len())].clone()
            };
            Op::new("read", join(&group, &f), None)
        } else {
            let f = files[rng.usize(..files.len())].clone();
            // cgroup.kill ends the helpers: rare, so that most sequences keep them.
            if f == "cgroup.kill" && rng.u32(..4) != 0 {
                continue;
            }
            let vals = values_for(&f, &controllers);
            let v = vals[rng.usize(..vals.len())].clone();
            Op::new("write", join(&group, &f), Some(v))
        };
        let r = push(model, op.clone(), &mut out);
        if r == "ok" {
            match op.op.as_str() {
                "mkdir" => groups.push(op.path.clone()),
                "rmdir" => {
                    groups.retain(|x| !(x == &op.path || x.starts_with(&format!("{}/", op.path))))
                }
                _ => {}
            }
        }
        if groups.is_empty() {
            break;
        }
    }
    out
}
