//! Comparing two hosts as files: a captured host's tree against the tree cgrepro generates
//! for a preset (`cgrepro capture --compare PRESET`). Every node present on one side only,
//! every mode that differs, and every value that differs after the documented
//! normalisation is a [`Difference`].
//!
//! Normalisation (why two trees of the same kernel legitimately differ): files whose value
//! is a counter, a usage, a pressure average, a pid list or a statistic of a live system
//! ([`volatile`]) are compared by *shape* — the first word of each line (`some`/`full`,
//! `nr_descendants`, the `memory.stat` keys) — not by value; everything else (controller
//! lists, limits, weights, types, modes) must be equal.

use std::collections::BTreeSet;

use super::tree::{Node, Plan};

/// One way two trees differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Path relative to /sys/fs/cgroup, or a /proc view.
    pub path: String,
    pub what: String,
}

/// A file whose value depends on the live system (compared by shape).
pub fn volatile(name: &str) -> bool {
    // Task counts are the staged processes', the same on both sides: compared exactly.
    if name == "pids.current" || name == "pids.peak" {
        return false;
    }
    const EXACT: [&str; 12] = [
        "cgroup.procs",
        "cgroup.threads",
        "tasks",
        "cgroup.stat",
        "memory.numa_stat",
        "memory.failcnt",
        "memory.oom_control",
        "cpu.stat",
        "cpu.stat.local",
        "io.stat",
        "memory.stat",
        "cgroup.events",
    ];
    const SUFFIX: [&str; 12] = [
        ".current",
        ".peak",
        ".stat",
        ".events",
        ".events.local",
        ".pressure",
        "usage_in_bytes",
        ".usage",
        ".usage_all",
        ".failcnt",
        ".numa_stat",
        "_in_bytes.usage",
    ];
    EXACT.contains(&name)
        || SUFFIX.iter().any(|s| name.ends_with(s))
        || name.starts_with("cpuacct.")
        || (name.starts_with("blkio.") && !name.contains("weight"))
        || (name.starts_with("memory.kmem.") && name.contains("usage"))
        || name == "memory.usage_in_bytes"
        || name == "memory.max_usage_in_bytes"
}

/// Each line's first word (its key, before any `=`), a number standing for any number.
fn shape(content: &str) -> Vec<&str> {
    content
        .lines()
        .map(|l| {
            let w = l.split_whitespace().next().unwrap_or("");
            let w = w.split('=').next().unwrap_or(w);
            if w.parse::<u64>().is_ok() {
                "<n>"
            } else {
                w
            }
        })
        .collect()
}

/// How `captured` differs from `model` (both trees; the /proc views are not compared:
/// the capture's mount lines are its own).
pub fn trees(captured: &Plan, model: &Plan) -> Vec<Difference> {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = captured.tree.keys().chain(model.tree.keys()).collect();
    for k in keys {
        let name = k.rsplit('/').next().unwrap_or(k);
        let d = |what: String| Difference {
            path: k.clone(),
            what,
        };
        match (captured.tree.get(k), model.tree.get(k)) {
            (Some(_), None) => out.push(d("only on the real kernel".into())),
            (None, Some(_)) => out.push(d("only in the model".into())),
            (Some(Node::Dir { mode: a }), Some(Node::Dir { mode: b })) if a != b => out.push(d(
                format!("directory mode {a:o} on the real kernel, {b:o} in the model"),
            )),
            (
                Some(Node::File {
                    mode: am,
                    content: ac,
                }),
                Some(Node::File {
                    mode: bm,
                    content: bc,
                }),
            ) => {
                if am != bm {
                    out.push(d(format!(
                        "mode {} on the real kernel, {} in the model",
                        super::captured_mode(*am),
                        super::captured_mode(*bm)
                    )));
                }
                let differs = if volatile(name) {
                    shape(ac) != shape(bc)
                } else {
                    ac != bc
                };
                if differs {
                    out.push(d(format!(
                        "value {ac:?} on the real kernel, {bc:?} in the model"
                    )));
                }
            }
            (Some(Node::Symlink { target: a }), Some(Node::Symlink { target: b })) if a != b => out
                .push(d(format!(
                    "link to {a} on the real kernel, {b} in the model"
                ))),
            (Some(a), Some(b)) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
                out.push(d("a different kind of node".into()))
            }
            _ => {}
        }
    }
    out
}
