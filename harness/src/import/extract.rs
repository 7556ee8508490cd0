//! What a report's text says, field by field, each with the line it came from. Pure text
//! rules: nothing here guesses a value the text does not contain.

use std::collections::BTreeMap;

use regex::Regex;

/// A value read from the report, with the report's line that says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub value: String,
    pub line: String,
}

/// Everything found, by field (`host.preset`, `target.version`, `expect.signal`, ...).
pub type Facts = BTreeMap<&'static str, Fact>;

/// One `[[rule]]` of fixtures/import/hosts.toml.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRule {
    pub regex: String,
    pub preset: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRules {
    pub rule: Vec<HostRule>,
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("a valid built-in pattern")
}

/// The line (trimmed, at most 200 chars) holding byte offset `at`.
fn line_at(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let l = text[start..end].trim();
    let mut n = l.len().min(200);
    while !l.is_char_boundary(n) {
        n -= 1;
    }
    l[..n].to_owned()
}

/// Every match of `pattern`; when they disagree, the first one whose paragraph or list
/// item (from the match on) speaks of a panic or crash.
fn near_the_crash(text: &str, pattern: &str) -> Option<Fact> {
    let all: Vec<(usize, String)> = re(pattern)
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| (m.start(), m.as_str().to_owned()))
        .collect();
    let (first_at, first) = all.first()?.clone();
    let pick = if all.iter().all(|(_, v)| *v == first) {
        (first_at, first)
    } else {
        let crash = re(r"(?i)panic|crash|segfault|SIGSEGV|nil pointer");
        all.iter()
            .find(|(at, _)| {
                // From the match to the end of its paragraph or list item.
                let end = re(r"\n\s*\n|\n\s*(?:\d+\.|[-*]) ")
                    .find(&text[*at..])
                    .map_or(text.len(), |m| at + m.start());
                crash.is_match(&text[*at..end])
            })
            .cloned()
            .unwrap_or((first_at, first))
    };
    Some(Fact {
        value: pick.1,
        line: line_at(text, pick.0),
    })
}

/// First capture group (or whole match) of `pattern`, with its line.
fn find(text: &str, pattern: &str) -> Option<Fact> {
    let c = re(pattern).captures(text)?;
    let m = c.get(1).or_else(|| c.get(0))?;
    Some(Fact {
        value: m.as_str().trim().to_owned(),
        line: line_at(text, m.start()),
    })
}

fn put(f: &mut Facts, key: &'static str, fact: Option<Fact>) {
    if let Some(fact) = fact {
        f.entry(key).or_insert(fact);
    }
}

/// Long hex ids (container / sandbox ids) in a path become `{id}`.
pub fn templatize_id(s: &str) -> String {
    re(r"[0-9a-f]{16,64}").replace_all(s, "{id}").into_owned()
}

/// Read every fact the rules know from `text`.
pub fn facts(text: &str, host_rules: &[HostRule]) -> Facts {
    let mut f = Facts::new();
    // The report's own address, if quoted.
    put(
        &mut f,
        "scenario.report",
        find(
            text,
            r"(https://github\.com/[\w.-]+/[\w.-]+/(?:issues|pull)/\d+)",
        ),
    );

    // Host: the distro or kernel-release rule of the data file that matches first in the
    // text (reports name the failing host before the ones that work), then kernel, mode,
    // systemd.
    let mut best: Option<(usize, &HostRule)> = None;
    for rule in host_rules {
        let pat = format!("(?i){}", rule.regex);
        if let Some(m) = Regex::new(&pat).ok().and_then(|r| r.find(text)) {
            if best.is_none_or(|(at, _)| m.start() < at) {
                best = Some((m.start(), rule));
            }
        }
    }
    if let Some((at, rule)) = best {
        put(
            &mut f,
            "host.preset",
            Some(Fact {
                value: rule.preset.clone(),
                line: line_at(text, at),
            }),
        );
    }
    put(
        &mut f,
        "host.kernel",
        find(
            text,
            r"(?i)(?:uname -r|kernel(?: version| release)?)\s*[:=]?\s*`?(\d+\.\d+\.\d+[-.+~\w]*)",
        ),
    );
    if let Some(m) = find(
        text,
        r"(?i)\b(cgroup\s*v1|cgroupv1|cgroups\s*v1|legacy cgroup|cgroup\s*v2|cgroupv2|cgroups\s*v2|unified cgroup|hybrid)\b",
    ) {
        let v = m.value.to_ascii_lowercase();
        let mode = if v.contains("v1") || v.contains("legacy") {
            "v1"
        } else if v.contains("hybrid") {
            "hybrid"
        } else {
            "v2"
        };
        put(
            &mut f,
            "host.cgroup",
            Some(Fact {
                value: mode.into(),
                line: m.line,
            }),
        );
    }
    put(
        &mut f,
        "host.systemd",
        find(text, r"(?i)\bsystemd\s+v?(\d{3})\b"),
    );
    put(
        &mut f,
        "host.systemd_older",
        find(text, r"(?i)\b(old(?:er)? (?:version of )?systemd)\b"),
    );

    // Target: Kata shim and release, or a library and version.
    let kata = find(
        text,
        r"(?i)(containerd-shim-kata-v2|kata-runtime|kata containers|kata-containers|\bkata\b)",
    );
    let cgroups_rs = find(text, r"(?i)cgroups-rs[-_ /:v]*(\d+\.\d+(?:\.(?:\d+|x))?)");
    let youki = find(text, r"(?i)\b(libcgroups|youki)\b");
    let cgroups_rs_named = find(text, r"(?i)\b(cgroups-rs)\b");
    if let Some(v) = cgroups_rs {
        put(
            &mut f,
            "target.driver",
            Some(Fact {
                value: "cgroups-rs".into(),
                line: v.line.clone(),
            }),
        );
        put(&mut f, "target.version", Some(v));
    } else if let Some(n) = cgroups_rs_named {
        put(
            &mut f,
            "target.driver",
            Some(Fact {
                value: "cgroups-rs".into(),
                line: n.line,
            }),
        );
    } else if let Some(y) = youki {
        put(
            &mut f,
            "target.driver",
            Some(Fact {
                value: "youki".into(),
                line: y.line,
            }),
        );
    } else if let Some(k) = kata {
        put(
            &mut f,
            "target.shim",
            Some(Fact {
                value: "kata".into(),
                line: k.line,
            }),
        );
        let version = find(text, r"(?i)kata[^\n]*\bversion:\s*v?(\d+\.\d+\.\d+)\b").or_else(|| {
            find(
                text,
                r"(?i)\bkata(?:[- ]containers|[- ]runtime|[- ]shim)?\s+v?(\d+\.\d+\.\d+)\b",
            )
        });
        put(&mut f, "target.version", version);
    }

    // Runtime configuration. A report that tries both values names the crashing one in
    // the paragraph about the crash.
    put(
        &mut f,
        "runtime.sandbox_cgroup_only",
        near_the_crash(text, r"(?i)sandbox_cgroup_only\s*[=:]\s*(true|false)"),
    );
    if let Some(h) = find(
        text,
        r"(?i)\b(firecracker|cloud-hypervisor|qemu|dragonball|\bclh\b)\b",
    ) {
        let v = match h.value.to_ascii_lowercase().as_str() {
            "clh" | "cloud-hypervisor" => "clh".to_owned(),
            other => other.to_owned(),
        };
        put(
            &mut f,
            "runtime.hypervisor",
            Some(Fact {
                value: v,
                line: h.line,
            }),
        );
    }

    // The pod's cgroups path: systemd style slice:prefix:name, or a cgroupfs path.
    let path = find(text, r#"(?i)cgroups?[_-]?path"?\s*[:=]\s*"?([\w./:@-]+)"?"#)
        .or_else(|| find(text, r"\b([\w-]+\.slice:[\w-]+:[\w-]+)"))
        .or_else(|| find(text, r#"["' ](/kata_overhead/[\w-]+)"#));
    if let Some(mut p) = path {
        p.value = templatize_id(&p.value);
        put(&mut f, "pod.cgroups_path", Some(p));
    }
    put(
        &mut f,
        "runtime.cgroup_driver",
        find(
            text,
            r"(?i)(?:SystemdCgroup\s*=\s*true|cgroupDriver:\s*systemd|systemd cgroup driver|systemd\W+(?:\w+\W+){0,3}responsible for (?:the )?creat)",
        )
        .map(|mut x| {
            x.value = "systemd".into();
            x
        }),
    );

    put(
        &mut f,
        "target.ops.stats",
        find(text, r"(?i)\b(stats?|memory_stat|numa_stat)\b"),
    );
    crash(text, &mut f);
    f
}

/// The crash or error the report shows.
fn crash(text: &str, f: &mut Facts) {
    put(f, "expect.client", find(text, r"(ttrpc: closed)"));
    let signal = find(text, r"\[signal (SIG[A-Z]+)");
    let go_panic = find(text, r"(?m)^\s*panic: (.+)$");
    let rust_old = find(text, r"panicked at '([^']+)'");
    let rust_new = re(r"panicked at [^\n]*:\d+:\d+:\n([^\n]+)")
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| Fact {
            value: m.as_str().trim().to_owned(),
            line: line_at(text, m.start()),
        });
    if let Some(sig) = signal {
        put(
            f,
            "expect.class",
            Some(Fact {
                value: "crash".into(),
                line: sig.line.clone(),
            }),
        );
        put(f, "expect.signal", Some(sig));
        // Message: the first frame of the code (not the Go runtime) after the panic.
        if let Some(frame) = go_top_frame(text) {
            put(f, "expect.message", Some(frame));
        }
    } else if let Some(p) = rust_new.or(rust_old).or(go_panic) {
        put(
            f,
            "expect.class",
            Some(Fact {
                value: "panic".into(),
                line: p.line.clone(),
            }),
        );
        put(f, "expect.message", Some(stable_message(p)));
    } else if let Some(e) = error_line(text) {
        // An error the target logs while tearing down, or a warning, is survived: the
        // symptom is the log line, not how the call ended.
        let survived = re(r#"(?i)level=warn|msg="failed to (?:delete|clean ?up|remove|destroy)"#)
            .is_match(&e.line);
        if survived {
            put(f, "expect.log", Some(e));
        } else {
            put(
                f,
                "expect.class",
                Some(Fact {
                    value: "error".into(),
                    line: e.line.clone(),
                }),
            );
            put(f, "expect.message", Some(e));
        }
    }
}

/// `path should be valid: "/kata_overhead/3f2a..."` -> `path should be valid`: the part of
/// a message before the first double-quoted or id-like value, which a replay's ids change.
fn stable_message(mut p: Fact) -> Fact {
    let v = p.value.clone();
    if let Some(q) = v.find('"') {
        let s = v[..q].trim_end().trim_end_matches(':').trim_end();
        if !s.is_empty() {
            p.value = s.to_owned();
        }
        return p;
    }
    // Ids (container ids, pod uids) change in a replay: keep the longer id-free end.
    let ids: Vec<regex::Match> = re(r"[0-9a-f]{16,64}|pod[0-9a-f]{8}[_-][0-9a-f_-]{20,}")
        .find_iter(&v)
        .collect();
    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        let head = v[..first.start()].trim_end();
        let tail = &v[last.end()..];
        // The end usually carries the error itself (`: no such file or directory`).
        p.value = if tail.len() >= 12 || tail.len() >= head.len() {
            tail
        } else {
            head
        }
        .to_owned();
    }
    p
}

/// The first Go frame after `goroutine N [running]:` that is not the runtime's:
/// `.../resourcecontrol.NewSandboxResourceController(...)` -> `resourcecontrol.NewSandboxResourceController`.
fn go_top_frame(text: &str) -> Option<Fact> {
    let at = text.find("[running]:")?;
    let frame = re(r"(?m)^\s*([\w./*()-]+?)\(")
        .captures_iter(&text[at..])
        .filter_map(|c| c.get(1))
        .map(|m| (m.start(), m.as_str().to_owned()))
        .find(|(_, name)| {
            let last = name.rsplit('/').next().unwrap_or(name);
            !last.starts_with("runtime.") && !last.starts_with("panic")
        })?;
    let last = frame.1.rsplit('/').next().unwrap_or(&frame.1).to_owned();
    Some(Fact {
        value: last,
        line: line_at(text, at + frame.0),
    })
}

/// The most specific error message: known symptom shapes first, then the innermost part
/// of a `level=error msg="..."` or `Error: ...` line.
fn error_line(text: &str) -> Option<Fact> {
    for pat in [
        r"(using method in wrong cgroup mode\.?)",
        r"(Cannot set property \w+, or unknown property\.)",
        r"(cgroups?: cgroup mountpoint does not exist)",
        r"(cgroups?: cgroup deleted)",
        r"(malformed systemd path '[^']*': expected to be of form 'slice:prefix:name')",
        r"(failed to add any hypervisor device to devices cgroup)",
        r"(lstat /sys/fs/cgroup/\S+: no such file or directory)",
        r"(cannot statfs cgroup root)",
        r"(opening file `[\w.]+` for writing: Permission denied)",
        r"(\S*memory\.\w+(?:\.\w+)*: no such file or directory)",
        r"(Error \{ kind: \w+)",
    ] {
        // The same words may be in the title: prefer the log line that has them.
        let all: Vec<Fact> = re(pat)
            .captures_iter(text)
            .filter_map(|c| c.get(1))
            .map(|m| Fact {
                value: m.as_str().to_owned(),
                line: line_at(text, m.start()),
            })
            .collect();
        if let Some(f) = all
            .iter()
            .find(|f| f.line.contains("level=") || f.line.contains("msg="))
            .or(all.first())
        {
            return Some(stable_message(f.clone()));
        }
    }
    find(text, r#"level=error msg="([^"]+)""#).or_else(|| find(text, r"(?m)^Error: (.+)$"))
}
