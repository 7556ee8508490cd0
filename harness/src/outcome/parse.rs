//! Reading evidence: driver channel events (see `fixtures/drivers/PROTOCOL.md`), Rust
//! panic messages and Go panic traces on stderr.

use serde::Serialize;

use super::normalize::Normalizer;

/// A line of the driver channel: the protocol's one event type (`cgrepro-driver`).
pub use cgrepro_driver::{Event as ChannelEvent, OpEvent, PanicEvent, SignalEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpStatus {
    Ok,
    Error,
    /// Started and never finished: the process died or hung in it.
    Running,
}

/// One op as the driver reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpResult {
    pub op: String,
    pub status: OpStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl OpResult {
    pub fn from_events(events: &[ChannelEvent], norm: &Normalizer) -> Vec<OpResult> {
        let mut ops: Vec<OpResult> = Vec::new();
        for e in events {
            match e {
                ChannelEvent::OpStart { op } => ops.push(OpResult {
                    op: op.clone(),
                    status: OpStatus::Running,
                    error: None,
                    value: None,
                }),
                ChannelEvent::Op(OpEvent {
                    op,
                    status,
                    error,
                    value,
                }) => {
                    let result = OpResult {
                        op: op.clone(),
                        status: match status {
                            cgrepro_driver::Status::Ok => OpStatus::Ok,
                            cgrepro_driver::Status::Error => OpStatus::Error,
                        },
                        error: error.as_deref().map(|e| norm.apply(e)),
                        value: value.clone().filter(|v| !v.is_null()),
                    };
                    match ops.last_mut() {
                        Some(last) if last.op == *op && last.status == OpStatus::Running => {
                            *last = result
                        }
                        _ => ops.push(result),
                    }
                }
                _ => {}
            }
        }
        ops
    }
}

/// A Rust panic as the default hook prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPanic {
    pub message: String,
    pub location: Option<String>,
}

/// `thread 'main' panicked at src/main.rs:2:5:\nmessage` (Rust ≥ 1.73) or
/// `thread 'main' panicked at 'message', src/main.rs:2:5` (older).
pub fn rust_panic(stderr: &str) -> Option<TextPanic> {
    // Rust ≥ 1.89 adds the thread id: `thread 'main' (2) panicked at ...`.
    // Compiled once: classification runs this on every case's stderr.
    static HEADER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^thread '[^']*'(?: \(\d+\))? panicked at (.*)$").expect("static regex")
    });
    let header = &*HEADER;
    let lines: Vec<&str> = stderr.lines().collect();
    let (i, caps) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| header.captures(l).map(|c| (i, c)))?;
    let rest = caps.get(1)?.as_str();
    if let Some(loc) = rest.strip_suffix(':') {
        let mut msg = Vec::new();
        for l in &lines[i + 1..] {
            if l.starts_with("note: ") || l.starts_with("stack backtrace:") {
                break;
            }
            msg.push(*l);
        }
        return Some(TextPanic {
            message: msg.join("\n").trim_end().to_owned(),
            location: Some(loc.to_owned()),
        });
    }
    // Old format: 'message', location
    let rest = rest.strip_prefix('\'')?;
    let end = rest.rfind("', ")?;
    Some(TextPanic {
        message: rest[..end].to_owned(),
        location: Some(rest[end + 3..].to_owned()),
    })
}

pub fn rust_stack_overflow(stderr: &str) -> bool {
    stderr.contains("has overflowed its stack")
}

/// A Go panic or fatal error with its goroutine trace.
#[derive(Debug, Clone, PartialEq)]
pub struct GoPanic {
    pub message: String,
    /// `SIGSEGV` when the runtime reports `[signal SIGSEGV: ...]`.
    pub signal: Option<String>,
    /// Functions of the panicking goroutine, innermost first, runtime frames dropped,
    /// argument lists removed, each with its source location when the trace has one:
    /// `github.com/…/resourcecontrol.NewSandboxResourceController (src/runtime/pkg/resourcecontrol/cgroups.go:230)`.
    pub frames: Vec<String>,
    /// The top frame's location, relative to the build tree
    /// (`src/runtime/pkg/resourcecontrol/cgroups.go:230`).
    pub location: Option<String>,
    /// The build machine's directory the relative locations were cut from
    /// (`/root/.cache/cgrepro/kata-src-3.13.0/`), for normalising the rest of the trace.
    pub build_prefix: Option<String>,
}

/// A Go source location made independent of the build machine: the package directory's
/// part shared with the function's import path (without the `host/org/repo` of a
/// `github.com/...` path), and the file: `/b/kata/src/runtime/pkg/x/y.go:230` for
/// `github.com/kata-containers/kata-containers/src/runtime/pkg/x.F` →
/// (`src/runtime/pkg/x/y.go:230`, `/b/kata/`). Vendored packages keep `vendor/...`.
pub fn go_location(func: &str, file_line: &str) -> (String, Option<String>) {
    // `/path/file.go:230 +0x2f4` → `/path/file.go:230`.
    let loc = file_line.trim().split(" +").next().unwrap_or("").trim();
    let (path, line) = match loc.rsplit_once(':') {
        Some((p, l)) if l.chars().all(|c| c.is_ascii_digit()) => (p, Some(l)),
        _ => (loc, None),
    };
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    // The import path: everything before the first `.` after the last `/`.
    let last_slash = func.rfind('/').map_or(0, |i| i + 1);
    let pkg = match func[last_slash..].find('.') {
        Some(i) => &func[..last_slash + i],
        None => func,
    };
    let pkg_parts: Vec<&str> = pkg.split('/').collect();
    let dir_parts: Vec<&str> = dir.split('/').collect();
    let mut common = 0;
    while common < pkg_parts.len()
        && common < dir_parts.len()
        && pkg_parts[pkg_parts.len() - 1 - common] == dir_parts[dir_parts.len() - 1 - common]
    {
        common += 1;
    }
    // Never keep the `host/org/repo` of a hosted import path: it is where the build tree
    // sat (GOPATH layouts put it there), not a part of the source tree.
    let hosted = if pkg_parts.first().is_some_and(|h| h.contains('.')) {
        3
    } else {
        0
    };
    let keep = common.min(pkg_parts.len().saturating_sub(hosted));
    let mut kept = dir_parts[dir_parts.len() - keep..].to_vec();
    // Vendored code: from `vendor/` on.
    if let Some(v) = dir_parts.iter().rposition(|p| *p == "vendor") {
        if v < dir_parts.len() - keep {
            kept = dir_parts[v..].to_vec();
        }
    }
    let prefix = dir_parts[..dir_parts.len() - kept.len()].join("/");
    kept.push(file);
    let mut rel = kept.join("/");
    if let Some(l) = line {
        rel.push(':');
        rel.push_str(l);
    }
    let prefix = (!prefix.is_empty() && path.starts_with('/')).then(|| format!("{prefix}/"));
    (rel, prefix)
}

pub fn go_panic(stderr: &str) -> Option<GoPanic> {
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "))?;
    let first = lines[start];
    let message = first
        .strip_prefix("panic: ")
        .or_else(|| first.strip_prefix("fatal error: "))
        .unwrap_or(first)
        .trim()
        .to_owned();
    let mut signal = None;
    for l in &lines[start + 1..] {
        if let Some(r) = l.strip_prefix("[signal ") {
            signal = r.split(':').next().map(str::to_owned);
            break;
        }
        if l.starts_with("goroutine ") {
            break;
        }
    }
    let mut frames = Vec::new();
    let mut location = None;
    let mut build_prefix = None;
    if let Some(g) = lines[start..]
        .iter()
        .position(|l| l.starts_with("goroutine "))
    {
        let trace = &lines[start + g + 1..];
        for (i, l) in trace.iter().enumerate() {
            if l.trim().is_empty() {
                break;
            }
            if l.starts_with('\t') || l.starts_with("created by ") {
                continue;
            }
            let func = match l.rfind('(') {
                Some(i) if l.ends_with(')') => &l[..i],
                _ => l,
            };
            if func.starts_with("runtime.") || func.starts_with("panic") {
                continue;
            }
            match trace.get(i + 1).filter(|n| n.starts_with('\t')) {
                Some(file_line) => {
                    let (rel, prefix) = go_location(func, file_line);
                    if frames.is_empty() {
                        location = Some(rel.clone());
                        build_prefix = prefix;
                    }
                    frames.push(format!("{func} ({rel})"));
                }
                None => frames.push(func.to_owned()),
            }
            if frames.len() == 16 {
                break;
            }
        }
    }
    Some(GoPanic {
        message,
        signal,
        frames,
        location,
        build_prefix,
    })
}

/// The last non-empty line of a text.
pub fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A Go nil dereference in Kata's resource controller, as a shim's stderr shows it
    /// (also the Go trace of the classification table tests).
    pub(crate) const GO_NIL_DEREF: &str = "time=\"2024-12-02T10:00:00Z\" level=info msg=\"loaded configuration\"
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1a2b3c4]

goroutine 47 [running]:
github.com/kata-containers/kata-containers/src/runtime/pkg/resourcecontrol.NewSandboxResourceController({0xc000512000, 0x4c}, 0xc0004e6000, 0x1)
\t/go/src/github.com/kata-containers/kata-containers/src/runtime/pkg/resourcecontrol/cgroups.go:189 +0x2f4
github.com/kata-containers/kata-containers/src/runtime/virtcontainers.(*Sandbox).createResourceController(0xc0001e2000)
\t/go/src/github.com/kata-containers/kata-containers/src/runtime/virtcontainers/sandbox_linux.go:46 +0x1b9
created by github.com/kata-containers/kata-containers/src/runtime/pkg/containerd-shim-v2.(*service).Create in goroutine 33
\t/go/src/.../service.go:380 +0x1c5
";

    #[test]
    fn go_nil_pointer_panic_is_a_sigsegv_with_its_top_frame() {
        let g = go_panic(GO_NIL_DEREF).unwrap();
        assert_eq!(
            g.message,
            "runtime error: invalid memory address or nil pointer dereference"
        );
        assert_eq!(g.signal.as_deref(), Some("SIGSEGV"));
        assert_eq!(
            g.frames[0],
            "github.com/kata-containers/kata-containers/src/runtime/pkg/resourcecontrol.NewSandboxResourceController (src/runtime/pkg/resourcecontrol/cgroups.go:189)"
        );
        assert_eq!(
            g.location.as_deref(),
            Some("src/runtime/pkg/resourcecontrol/cgroups.go:189")
        );
        assert_eq!(
            g.build_prefix.as_deref(),
            Some("/go/src/github.com/kata-containers/kata-containers/")
        );
        assert_eq!(
            g.frames.len(),
            2,
            "`created by` lines are not frames: {:?}",
            g.frames
        );
    }

    #[test]
    fn go_explicit_panic_has_no_signal_and_skips_runtime_frames() {
        let text = "panic: cgroups: cgroup mountpoint does not exist\n\ngoroutine 1 [running]:\nruntime.gopanic(...)\n\t/usr/lib/go/src/runtime/panic.go:1 +0x1\nmain.load(...)\n\t/src/main.go:12 +0x1d\nmain.main()\n\t/src/main.go:5 +0x1\n";
        let g = go_panic(text).unwrap();
        assert_eq!(g.signal, None);
        assert_eq!(
            g.frames,
            vec!["main.load (main.go:12)", "main.main (main.go:5)"]
        );
        assert_eq!(g.location.as_deref(), Some("main.go:12"));
    }

    #[test]
    fn go_locations_lose_the_build_machine_but_keep_the_source_tree() {
        let f = "github.com/kata-containers/kata-containers/src/runtime/pkg/resourcecontrol.NewSandboxResourceController";
        for (file, prefix) in [
            ("\t/root/.cache/cgrepro/kata-src-3.13.0/src/runtime/pkg/resourcecontrol/cgroups.go:230 +0x2f4", "/root/.cache/cgrepro/kata-src-3.13.0/"),
            ("\t/go/src/github.com/kata-containers/kata-containers/src/runtime/pkg/resourcecontrol/cgroups.go:230 +0x2f4", "/go/src/github.com/kata-containers/kata-containers/"),
        ] {
            assert_eq!(
                go_location(f, file),
                ("src/runtime/pkg/resourcecontrol/cgroups.go:230".into(), Some(prefix.into()))
            );
        }
        // Vendored, and a method on a pointer receiver.
        let (rel, _) = go_location(
            "github.com/containerd/cgroups/v3/cgroup1.(*cgroup).Add",
            "\t/b/kata/src/runtime/vendor/github.com/containerd/cgroups/v3/cgroup1/cgroup.go:77 +0x1",
        );
        assert_eq!(
            rel,
            "vendor/github.com/containerd/cgroups/v3/cgroup1/cgroup.go:77"
        );
        // -trimpath builds print the import path itself.
        let (rel, prefix) = go_location(
            "github.com/kata-containers/kata-containers/src/runtime/pkg/x.F",
            "\tgithub.com/kata-containers/kata-containers/src/runtime/pkg/x/y.go:9 +0x1",
        );
        assert_eq!((rel.as_str(), prefix), ("src/runtime/pkg/x/y.go:9", None));
    }

    #[test]
    fn rust_panics_in_both_formats() {
        let new = "thread 'main' (2) panicked at src/lib.rs:300:33:\npath should be valid: \"/x\"\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            rust_panic(new),
            Some(TextPanic {
                message: "path should be valid: \"/x\"".into(),
                location: Some("src/lib.rs:300:33".into())
            })
        );
        let old = "thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/hierarchies.rs:185:14\n";
        let p = rust_panic(old).unwrap();
        assert_eq!(p.message, "called `Option::unwrap()` on a `None` value");
        assert_eq!(p.location.as_deref(), Some("src/hierarchies.rs:185:14"));
    }

    #[test]
    fn not_a_panic() {
        assert_eq!(rust_panic("error: create: EPERM\n"), None);
        assert_eq!(go_panic("level=error msg=\"panic handler\"\n"), None);
    }
}
