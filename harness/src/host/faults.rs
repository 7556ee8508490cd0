//! Content faults: a file of the simulated host missing, empty, replaced, or losing lines.
//! Applied to the in-memory [`Plan`]; a fault on a path the host does not have is an error
//! that says why (wrong layout, kernel too old, knob off) and suggests a near path.

use super::tree::{why_absent, Layer, Node, Plan};
use super::{CgroupMode, ContentAction, ContentFault, Host, HostData, HostError};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub fn apply(
    plan: &mut Plan,
    host: &Host,
    data: &HostData,
    faults: &[ContentFault],
) -> Result<(), HostError> {
    for f in faults {
        apply_one(plan, host, data, f)?;
    }
    Ok(())
}

fn bad(file: &str, why: impl Into<String>) -> HostError {
    HostError::BadFault {
        file: file.to_owned(),
        why: why.into(),
    }
}

fn edit(content: &mut String, action: &ContentAction) {
    match action {
        ContentAction::Missing => unreachable!("handled by the caller"),
        ContentAction::Empty => content.clear(),
        ContentAction::Replace(s) => *content = s.clone(),
        ContentAction::DropLines(sub) => {
            *content = content
                .split_inclusive('\n')
                .filter(|l| !l.contains(sub.as_str()))
                .collect();
        }
    }
}

fn apply_one(
    plan: &mut Plan,
    host: &Host,
    data: &HostData,
    f: &ContentFault,
) -> Result<(), HostError> {
    let file = f.file.as_str();
    let path = if file.len() > 1 {
        file.trim_end_matches('/')
    } else {
        file
    };
    if let Some(content) = plan.proc.get_mut(path) {
        if f.action == ContentAction::Missing {
            return Err(bad(
                file,
                "a /proc view cannot be missing (the sandbox binds a file over the real one); use `empty` or `drop-lines`",
            ));
        }
        edit(content, &f.action);
        return Ok(());
    }
    if path == CGROUP_ROOT {
        return Err(bad(
            file,
            "this is the cgroup mount point itself; fault a file or directory below it",
        ));
    }
    let Some(rel) = path.strip_prefix("/sys/fs/cgroup/") else {
        let views: Vec<&str> = plan.proc.keys().map(String::as_str).collect();
        return Err(bad(
            file,
            format!(
                "not a file of the simulated host: faults apply below {CGROUP_ROOT} and to {}",
                views.join(", ")
            ),
        ));
    };
    let rel = resolve_links(plan, rel, &f.action);
    match plan.tree.get_mut(&rel) {
        None => Err(bad(file, no_such(plan, host, data, path, &rel))),
        Some(Node::File { content, .. }) => {
            if f.action == ContentAction::Missing {
                plan.tree.remove(&rel);
            } else {
                edit(content, &f.action);
            }
            Ok(())
        }
        Some(Node::Dir { .. } | Node::Symlink { .. }) if f.action == ContentAction::Missing => {
            let prefix = format!("{rel}/");
            plan.tree
                .retain(|k, _| *k != rel && !k.starts_with(&prefix));
            Ok(())
        }
        Some(_) => Err(bad(
            file,
            "is a directory; only `missing` applies to directories",
        )),
    }
}

/// Follow top-level symlinks (`cpu` -> `cpu,cpuacct`), except a link that is itself the
/// target of `missing`.
fn resolve_links(plan: &Plan, rel: &str, action: &ContentAction) -> String {
    let (first, rest) = rel.split_once('/').unwrap_or((rel, ""));
    match plan.tree.get(first) {
        Some(Node::Symlink { target })
            if !(rest.is_empty() && *action == ContentAction::Missing) =>
        {
            if rest.is_empty() {
                target.clone()
            } else {
                format!("{target}/{rest}")
            }
        }
        _ => rel.to_owned(),
    }
}

fn no_such(plan: &Plan, host: &Host, data: &HostData, path: &str, rel: &str) -> String {
    let tables = &data.kernels;
    let (first, _) = rel.split_once('/').unwrap_or((rel, ""));
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let is_v1_dir = tables
        .hierarchies
        .iter()
        .any(|h| h.dir == first || h.symlinks.iter().any(|l| l == first));
    let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
    let parent_exists =
        parent.is_empty() || matches!(plan.tree.get(parent), Some(Node::Dir { .. }));
    let mut why = match host.cgroup {
        CgroupMode::V2 if rel.contains('/') && (is_v1_dir || first == "unified") => format!(
            "no such file on a v2 host: cgroup2 is mounted at {CGROUP_ROOT} itself, there is no `{first}/` hierarchy directory"
        ),
        CgroupMode::V1 | CgroupMode::Hybrid if parent.is_empty() => format!(
            "no such file on a {} host: {CGROUP_ROOT} is a tmpfs holding one directory per hierarchy",
            if host.cgroup == CgroupMode::V1 { "v1" } else { "hybrid" }
        ),
        CgroupMode::V1 if first == "unified" => "no such file on a v1 host: there is no cgroup2 mount".to_owned(),
        _ if parent_exists => {
            let layer = if host.cgroup == CgroupMode::V2 || first == "unified" { Layer::V2 } else { Layer::V1 };
            match why_absent(tables, host, layer, name) {
                Some(reason) => format!("no such file on this host: {reason}"),
                None => "no such file on this host".to_owned(),
            }
        }
        _ => format!("no such file on this host: no directory `{CGROUP_ROOT}/{parent}`"),
    };
    if let Some(s) = suggest(plan, path) {
        why += &format!("; did you mean `{s}`?");
    }
    why
}

/// The existing path nearest to `path`: same file name first, else the most similar path.
fn suggest(plan: &Plan, path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let candidates = plan
        .tree
        .iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(k, _)| format!("{CGROUP_ROOT}/{k}"))
        .chain(plan.proc.keys().cloned());
    let mut best: Option<(bool, f64, String)> = None;
    for c in candidates {
        let same_name = c.rsplit('/').next() == Some(name);
        let score = strsim::normalized_levenshtein(path, &c);
        let better = match &best {
            None => true,
            Some((bs, bsc, _)) => (same_name, score) > (*bs, *bsc),
        };
        if better {
            best = Some((same_name, score, c));
        }
    }
    best.filter(|(same, score, _)| *same || *score >= 0.75)
        .map(|(_, _, c)| c)
}
