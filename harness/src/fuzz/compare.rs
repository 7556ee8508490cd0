//! Running ops on the model the way the guest runs them on the kernel, and the
//! normalisations applied before results are compared. Each normalisation exists because
//! the kernel's value is not reproducible from the op sequence alone:
//!
//! * **usage and statistics counters** (`memory.usage_in_bytes`, `memory.current`,
//!   `memory.stat`, `cpu.stat`, `cpuacct.usage*`, `io.stat`, `*.pressure`, …, see
//!   [`VOLATILE`]): they count what the guest's processes happened to use, so every digit
//!   run becomes `N` (the keys and the layout are still compared);
//! * **`net_prio.prioidx`**: an index the kernel hands out from one bitmap per boot, so it
//!   depends on how many net_prio groups earlier sequences of the same boot made;
//! * **`cgroup.stat` `nr_dying_*` lines**: a removed group stays dying until an RCU grace
//!   period and its last reference go, at a time no op controls; their numbers become `N`;
//! * **pids**: lines that are a helper's pid become `{p0}` … on both sides (the guest's pids
//!   and the model's are different numbers), done where the op runs.
//!
//! Nothing else is normalised: errnos, limits, lists and every other content are compared
//! byte for byte.

use super::Op;
use crate::sandbox::cgroupfs::corpus::on_model;
use crate::sandbox::cgroupfs::{Model, Pids};

/// Files whose numbers are usage counters (compared with digits as `N`).
pub const VOLATILE: &[&str] = &[
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.memsw.usage_in_bytes",
    "memory.memsw.max_usage_in_bytes",
    "memory.kmem.usage_in_bytes",
    "memory.kmem.max_usage_in_bytes",
    "memory.kmem.tcp.usage_in_bytes",
    "memory.kmem.tcp.max_usage_in_bytes",
    "memory.kmem.slabinfo",
    "memory.stat",
    "memory.numa_stat",
    "memory.current",
    "memory.peak",
    "memory.swap.current",
    "memory.swap.peak",
    "memory.zswap.current",
    "cpu.stat",
    "cpu.stat.local",
    "cpuacct.usage",
    "cpuacct.usage_all",
    "cpuacct.usage_percpu",
    "cpuacct.usage_percpu_sys",
    "cpuacct.usage_percpu_user",
    "cpuacct.usage_sys",
    "cpuacct.usage_user",
    "cpuacct.stat",
    "io.stat",
    "cpu.pressure",
    "io.pressure",
    "memory.pressure",
    "irq.pressure",
    "net_prio.prioidx",
];

/// First pid the model gives helper `{p0}`.
pub const MODEL_PID_BASE: u32 = 4000;

/// The model's processes: the guest's /init (pid 1) and the helpers. A helper killed
/// through `cgroup.kill` is gone for the cgroup core but, as the guest's /init reaps its
/// helpers only at the end of a sequence, still a zombie charged to its pids group.
pub struct LanePids {
    helpers: usize,
    killed: std::sync::Mutex<std::collections::BTreeSet<u32>>,
}

impl LanePids {
    pub fn new(helpers: usize) -> LanePids {
        LanePids {
            helpers,
            killed: Default::default(),
        }
    }
}

impl Pids for LanePids {
    fn exists(&self, pid: u32) -> bool {
        self.charged(pid) && !self.killed.lock().is_ok_and(|k| k.contains(&pid))
    }
    fn charged(&self, pid: u32) -> bool {
        pid == 1 || (MODEL_PID_BASE..MODEL_PID_BASE + self.helpers as u32).contains(&pid)
    }
    fn kill(&self, pid: u32) {
        // The guest's /init is the writer; a kill never reaches it (it stays at the roots).
        if pid != 1 {
            if let Ok(mut k) = self.killed.lock() {
                k.insert(pid);
            }
        }
    }
}

fn digits_to_n(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_num = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                out.push('N');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

/// A result as compared (see the module doc).
pub fn normalise(op: &Op, result: &str) -> String {
    if op.op != "read" || !result.starts_with("ok ") {
        return result.to_owned();
    }
    let name = op.path.rsplit('/').next().unwrap_or("");
    if VOLATILE.contains(&name) {
        return digits_to_n(result);
    }
    if name == "cgroup.stat" {
        return result
            .split_inclusive('\n')
            .map(|l| {
                if l.starts_with("nr_dying_") {
                    digits_to_n(l)
                } else {
                    l.to_owned()
                }
            })
            .collect();
    }
    result.to_owned()
}

fn fill(s: &str, helpers: usize) -> String {
    let mut s = s.to_owned();
    for i in (0..helpers).rev() {
        s = s.replace(
            &format!("{{p{i}}}"),
            &(MODEL_PID_BASE + i as u32).to_string(),
        );
    }
    s
}

fn unfill(content: &str, helpers: usize) -> String {
    content
        .split_inclusive('\n')
        .map(|piece| {
            let line = piece.trim_end_matches('\n');
            let nl = &piece[line.len()..];
            match line.parse::<u32>() {
                Ok(p) if (MODEL_PID_BASE..MODEL_PID_BASE + helpers as u32).contains(&p) => {
                    format!("{{p{}}}{nl}", p - MODEL_PID_BASE)
                }
                _ => piece.to_owned(),
            }
        })
        .collect()
}

/// Run one op (`{g}` already filled) on the model as the guest's /init (pid 1) would.
pub fn run_on_model(m: &mut Model, op: &Op, helpers: usize) -> String {
    let path = fill(&op.path, helpers);
    let value = op.value.as_deref().map(|v| fill(v, helpers));
    let r = on_model(m, &op.op, path.trim_end_matches('/'), value.as_deref(), 1);
    match r.strip_prefix("ok ") {
        Some(content) if op.op == "read" => format!("ok {}", unfill(content, helpers)),
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counters_compare_by_shape_and_everything_else_exactly() {
        let read = |p: &str| Op::new("read", p, None);
        assert_eq!(
            normalise(&read("memory/{g}/memory.usage_in_bytes"), "ok 1234\n"),
            "ok N\n"
        );
        assert_eq!(
            normalise(
                &read("{g}/cgroup.stat"),
                "ok nr_descendants 2\nnr_dying_descendants 1\n"
            ),
            "ok nr_descendants 2\nnr_dying_descendants N\n"
        );
        assert_eq!(normalise(&read("{g}/memory.max"), "ok 4096\n"), "ok 4096\n");
        assert_eq!(
            normalise(
                &Op::new("write", "{g}/memory.current", Some("1".into())),
                "EINVAL"
            ),
            "EINVAL"
        );
    }

    #[test]
    fn helper_pids_read_back_as_their_tokens() {
        assert_eq!(unfill("4001\n17\n4000\n", 2), "{p1}\n17\n{p0}\n");
        assert_eq!(fill("{p1} {p0}", 2), "4001 4000");
    }
}
