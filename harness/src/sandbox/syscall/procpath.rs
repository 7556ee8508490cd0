//! Path arithmetic for the supervisor: lexical normalisation and matching /proc paths
//! against the simulated files' templates. Pure functions, no syscalls.

use std::collections::HashSet;
use std::path::PathBuf;

use super::SyscallError;

/// Fold `.`, `..` and repeated slashes of an absolute path, lexically (symlinks are not
/// followed; `..` at the root stays at the root).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// `base` joined with `rel` (or `rel` alone if absolute), normalized.
pub fn join(base: &[u8], rel: &[u8]) -> Vec<u8> {
    if rel.first() == Some(&b'/') {
        return normalize(rel);
    }
    let mut v = Vec::with_capacity(base.len() + rel.len() + 1);
    v.extend_from_slice(base);
    v.push(b'/');
    v.extend_from_slice(rel);
    normalize(&v)
}

/// If `path` is `prefix` or below it (component-wise), the remainder without a leading
/// slash ("" for `prefix` itself).
pub fn strip_prefix<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if prefix == b"/" {
        return Some(path.strip_prefix(b"/").unwrap_or(path));
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix(b"/")
    }
}

/// The last component of a path.
pub fn last_component(path: &[u8]) -> &[u8] {
    let p = path.strip_suffix(b"/").unwrap_or(path);
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// The process part of a per-process /proc path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidSpec {
    /// `self`, `thread-self`, or `self/task/<tid>`: always the caller.
    Caller,
    /// `<pid>` or `<pid>/task/<tid>` (the pid as the procfs numbers it).
    Pid(u32),
}

/// Whose view a per-process /proc path (relative to the procfs root) names: the process's
/// (`self/x`, `<pid>/x`: the thread-group leader's, as procfs answers), the calling
/// thread's (`thread-self/x`), or a thread's by its id (`<self|pid>/task/<tid>/x`, the tid
/// numbered as the procfs numbers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewTask {
    Process,
    CallerThread,
    Thread(u32),
}

/// See [`ViewTask`]; `rel` as [`ProcTemplates::lookup`] takes it.
pub fn view_task(rel: &[u8]) -> ViewTask {
    let Some((first, rest)) = split_first(rel) else {
        return ViewTask::Process;
    };
    if first == b"thread-self" {
        return ViewTask::CallerThread;
    }
    match split_first(rest) {
        Some((b"task", r)) => split_first(r)
            .and_then(|(tid, _)| std::str::from_utf8(tid).ok()?.parse().ok())
            .map_or(ViewTask::Process, ViewTask::Thread),
        _ => ViewTask::Process,
    }
}

/// The simulated /proc files, indexed for matching.
#[derive(Debug, Clone, Default)]
pub struct ProcTemplates {
    /// (path below /proc, file) for global files like `cgroups`, `sys/kernel/osrelease`.
    global: Vec<(Vec<u8>, PathBuf)>,
    /// (path below /proc/<pid>, file) for per-process files like `mountinfo`.
    per_process: Vec<(Vec<u8>, PathBuf)>,
    /// Last components of every template: a cheap first filter on every open.
    last: HashSet<Vec<u8>>,
}

impl ProcTemplates {
    pub fn new(files: &[(String, PathBuf)]) -> Result<ProcTemplates, SyscallError> {
        let mut t = ProcTemplates::default();
        for (template, file) in files {
            let bad = |why: &str| SyscallError::BadProcTemplate {
                template: template.clone(),
                why: why.to_string(),
            };
            let norm = normalize(template.as_bytes());
            if norm != template.as_bytes() {
                return Err(bad("must be an absolute, normalized path"));
            }
            let rel = strip_prefix(&norm, b"/proc")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| bad("must be below /proc"))?;
            let per = rel
                .strip_prefix(b"self/")
                .or_else(|| rel.strip_prefix(b"thread-self/"));
            match per {
                Some(tail) => t.per_process.push((tail.to_vec(), file.clone())),
                None => {
                    if rel.first().is_some_and(|b| b.is_ascii_digit()) {
                        return Err(bad("use /proc/self/... for per-process files"));
                    }
                    t.global.push((rel.to_vec(), file.clone()))
                }
            }
            t.last.insert(last_component(rel).to_vec());
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.per_process.is_empty()
    }

    /// Whether an opened path could name a simulated file at all (by its last component).
    pub fn candidate(&self, path: &[u8]) -> bool {
        !self.is_empty() && self.last.contains(last_component(path))
    }

    /// Match a path relative to a procfs root (no leading slash, normalized).
    pub fn lookup(&self, rel: &[u8]) -> Option<(&PathBuf, Option<PidSpec>)> {
        if let Some((_, f)) = self.global.iter().find(|(g, _)| g == rel) {
            return Some((f, None));
        }
        // /proc/mounts is a symlink to self/mounts.
        if rel == b"mounts" {
            if let Some((_, f)) = self.per_process.iter().find(|(p, _)| p == b"mounts") {
                return Some((f, Some(PidSpec::Caller)));
            }
        }
        let (first, rest) = split_first(rel)?;
        let spec = match first {
            b"self" | b"thread-self" => PidSpec::Caller,
            n if !n.is_empty() && n.iter().all(u8::is_ascii_digit) => {
                PidSpec::Pid(std::str::from_utf8(n).ok()?.parse().ok()?)
            }
            _ => return None,
        };
        let mut tail = rest;
        if first != b"thread-self" {
            if let Some((b"task", r)) = split_first(rest) {
                let (tid, r2) = split_first(r)?;
                if tid.is_empty() || !tid.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                tail = r2;
            }
        }
        self.per_process
            .iter()
            .find(|(p, _)| p == tail)
            .map(|(_, f)| (f, Some(spec)))
    }
}

fn split_first(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = p.iter().position(|b| *b == b'/')?;
    Some((&p[..i], &p[i + 1..]))
}

/// One mount from a mountinfo file: (mount id, mount point, fstype).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    pub mount_point: Vec<u8>,
    pub fstype: Vec<u8>,
}

/// Parse `/proc/<pid>/mountinfo` (mount points unescaped: `\040` etc.).
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.split(|b| *b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.len() < 5 || sep + 1 >= fields.len() {
            continue;
        }
        let Some(id) = std::str::from_utf8(fields[0])
            .ok()
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        out.push(MountEntry {
            id,
            mount_point: unescape(fields[4]),
            fstype: fields[sep + 1].to_vec(),
        });
    }
    out
}

fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') * 64 + (s[i + 2] - b'0') * 8 + (s[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// The mount that contains `path` (longest mount point prefix; the last one mounted wins
/// among equal mount points).
pub fn containing_mount<'a>(mounts: &'a [MountEntry], path: &[u8]) -> Option<&'a MountEntry> {
    let mut best: Option<&MountEntry> = None;
    for m in mounts {
        if strip_prefix(path, &m.mount_point).is_some()
            && best.is_none_or(|b| m.mount_point.len() >= b.mount_point.len())
        {
            best = Some(m);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> ProcTemplates {
        ProcTemplates::new(&[
            ("/proc/self/mountinfo".into(), "/m".into()),
            ("/proc/self/cgroup".into(), "/c".into()),
            ("/proc/cgroups".into(), "/cs".into()),
            ("/proc/sys/kernel/osrelease".into(), "/o".into()),
        ])
        .unwrap()
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize(b"/a//b/./c/../d/"), b"/a/b/d");
        assert_eq!(normalize(b"/../.."), b"/");
        assert_eq!(join(b"/proc/12", b"../self/x"), b"/proc/self/x");
        assert_eq!(join(b"/x", b"/abs"), b"/abs");
        assert_eq!(strip_prefix(b"/proc/self", b"/proc"), Some(&b"self"[..]));
        assert_eq!(strip_prefix(b"/procx/self", b"/proc"), None);
        assert_eq!(strip_prefix(b"/proc", b"/proc"), Some(&b""[..]));
        assert_eq!(strip_prefix(b"/a", b"/"), Some(&b"a"[..]));
    }

    #[test]
    fn lookups() {
        let t = t();
        let f = |r: &[u8]| {
            t.lookup(r)
                .map(|(p, s)| (p.to_str().unwrap().to_string(), s))
        };
        assert_eq!(
            f(b"self/mountinfo"),
            Some(("/m".into(), Some(PidSpec::Caller)))
        );
        assert_eq!(
            f(b"thread-self/mountinfo"),
            Some(("/m".into(), Some(PidSpec::Caller)))
        );
        assert_eq!(
            f(b"self/task/77/cgroup"),
            Some(("/c".into(), Some(PidSpec::Caller)))
        );
        assert_eq!(
            f(b"42/mountinfo"),
            Some(("/m".into(), Some(PidSpec::Pid(42))))
        );
        assert_eq!(
            f(b"42/task/43/mountinfo"),
            Some(("/m".into(), Some(PidSpec::Pid(42))))
        );
        assert_eq!(f(b"cgroups"), Some(("/cs".into(), None)));
        assert_eq!(f(b"sys/kernel/osrelease"), Some(("/o".into(), None)));
        assert_eq!(f(b"self/mounts"), None);
        assert_eq!(f(b"self/fd/3"), None);
        assert_eq!(f(b"x/mountinfo"), None);
        assert_eq!(f(b"thread-self/task/1/mountinfo"), None);
        assert!(t.candidate(b"/proc/self/mountinfo"));
        assert!(!t.candidate(b"/etc/passwd"));
        assert!(ProcTemplates::new(&[("/etc/x".into(), "/x".into())]).is_err());
        assert!(ProcTemplates::new(&[("/proc/1/cgroup".into(), "/x".into())]).is_err());
    }

    #[test]
    fn whose_view() {
        assert_eq!(view_task(b"self/cgroup"), ViewTask::Process);
        assert_eq!(view_task(b"42/cgroup"), ViewTask::Process);
        assert_eq!(view_task(b"thread-self/cgroup"), ViewTask::CallerThread);
        assert_eq!(view_task(b"self/task/77/cgroup"), ViewTask::Thread(77));
        assert_eq!(view_task(b"42/task/43/cgroup"), ViewTask::Thread(43));
        assert_eq!(view_task(b"cgroups"), ViewTask::Process);
    }

    #[test]
    fn mountinfo() {
        let text = b"22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
            30 1 0:5 / /my\\040proc rw - proc proc rw\n\
            31 30 0:6 / /my\\040proc/sys rw - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, b"/my proc");
        let c = containing_mount(&m, b"/my proc/self/mountinfo").unwrap();
        assert_eq!(c.fstype, b"proc");
        let c = containing_mount(&m, b"/my proc/sys/x").unwrap();
        assert_eq!(c.fstype, b"tmpfs");
        assert!(containing_mount(&m, b"/etc").is_none());
    }
}
