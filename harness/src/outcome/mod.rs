//! What happened in a case, classified: the closed [`Outcome`] type.
//!
//! [`classify`] turns what the sandbox observed (exit status, output, the driver channel,
//! timeout) into exactly one outcome class — ok, error, panic, crash, timeout, killed,
//! harness-error — with its evidence (message, location, frames, the op that was running).
//! Rust panics and Go panics are recognised from the channel or from stderr
//! ([`parse`]), so any Rust or Go target is classified, not only drivers. Every report,
//! snapshot and matrix cell is rendered from an `Outcome`; [`Outcome::signature`] names it
//! in one line. Unstable values are normalised by [`normalize`].

pub mod normalize;
pub mod parse;

use serde::Serialize;

use crate::evidence::{Exit, Observed};
use parse::{ChannelEvent, OpResult};

/// Language runtime that produced a panic or crash report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Rust,
    Go,
}

/// The outcome class, without evidence (for expectations, tables and filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Ok,
    Error,
    Panic,
    Crash,
    Timeout,
    Killed,
    HarnessError,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Error => "error",
            Class::Panic => "panic",
            Class::Crash => "crash",
            Class::Timeout => "timeout",
            Class::Killed => "killed",
            Class::HarnessError => "harness-error",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened. One variant per class; every field is evidence, already normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "kebab-case")]
pub enum Outcome {
    /// The target finished and every op succeeded.
    Ok,
    /// The target returned a clean error.
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        message: String,
        exit_code: i32,
    },
    /// A Rust panic or a Go `panic:` without a fatal signal.
    Panic {
        runtime: Runtime,
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        frames: Vec<String>,
    },
    /// Death by a fatal signal, including a Go runtime panic that reports a signal.
    Crash {
        signal: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        runtime: Option<Runtime>,
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        frames: Vec<String>,
    },
    /// No result within the limit; every process of the case was killed.
    Timeout {
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<String>,
    },
    /// Killed from outside the harness (SIGKILL: the OOM killer, a kill -9 ...).
    Killed { signal: String },
    /// cgrepro could not set the case up. Never counted as a target outcome.
    HarnessError { message: String },
}

impl Outcome {
    pub fn class(&self) -> Class {
        match self {
            Outcome::Ok => Class::Ok,
            Outcome::Error { .. } => Class::Error,
            Outcome::Panic { .. } => Class::Panic,
            Outcome::Crash { .. } => Class::Crash,
            Outcome::Timeout { .. } => Class::Timeout,
            Outcome::Killed { .. } => Class::Killed,
            Outcome::HarnessError { .. } => Class::HarnessError,
        }
    }

    /// The signal name, for crashes and kills.
    pub fn signal(&self) -> Option<&str> {
        match self {
            Outcome::Crash { signal, .. } | Outcome::Killed { signal } => Some(signal),
            _ => None,
        }
    }

    /// The message expectations match against.
    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Error { message, .. }
            | Outcome::Panic { message, .. }
            | Outcome::HarnessError { message } => Some(message),
            Outcome::Crash { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// One line naming the failure, like a syzkaller crash title:
    /// `panic in cgroups_rs::Cgroup::create: path should be valid`,
    /// `SIGSEGV in resourcecontrol.NewSandboxResourceController`.
    pub fn signature(&self) -> String {
        let place = |frames: &[String], location: &Option<String>, op: &Option<String>| {
            // Go frames carry the import path: keep its last element
            // (`resourcecontrol.NewSandboxResourceController`).
            // Rust closures name their enclosing function.
            frames
                .first()
                .map(|f| {
                    // `name (location)`, `name (×N)`: the name.
                    let f = f.split(" (").next().unwrap_or(f);
                    let f = f.rsplit('/').next().unwrap_or(f);
                    f.trim_end_matches("::{{closure}}").to_owned()
                })
                .or_else(|| location.clone())
                .or_else(|| op.clone())
        };
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Error {
                op,
                message,
                exit_code,
            } => match op {
                Some(op) => format!("error in {op}: {}", short(message)),
                None => format!("exit {exit_code}: {}", short(message)),
            },
            Outcome::Panic {
                message,
                frames,
                location,
                op,
                runtime,
            } => match place(frames, location, op) {
                Some(p) => format!(
                    "panic in {p}{}: {}",
                    go_at(*runtime, location),
                    short(message)
                ),
                None => format!("panic: {}", short(message)),
            },
            Outcome::Crash {
                signal,
                frames,
                location,
                op,
                message,
                runtime,
            } => {
                let mut s = match place(frames, location, op) {
                    Some(p) => format!(
                        "{signal} in {p}{}",
                        go_at(runtime.unwrap_or(Runtime::Rust), location)
                    ),
                    None => signal.clone(),
                };
                if frames.is_empty() && location.is_none() {
                    if let Some(m) = message {
                        s.push_str(&format!(": {}", short(m)));
                    }
                }
                s
            }
            Outcome::Timeout { op: Some(op) } => format!("timeout in {op}"),
            Outcome::Timeout { op: None } => "timeout".into(),
            Outcome::Killed { signal } => format!("killed by {signal}"),
            Outcome::HarnessError { message } => format!("harness error: {}", short(message)),
        }
    }
}

/// ` (file.go:230)` after a Go function in a signature: Go traces name the line, and the
/// line tells releases apart. (Rust signatures stay without: their panic location is in
/// the library, shown with the outcome.)
fn go_at(runtime: Runtime, location: &Option<String>) -> String {
    match (runtime, location) {
        (Runtime::Go, Some(l)) => format!(" ({l})"),
        _ => String::new(),
    }
}

/// The first line of a message, without trailing data after `: "` (ids, paths, values);
/// a long line keeps its head and its tail (Go's `%v` of a struct in the middle of an
/// error makes the middle unreadable, and the tail is usually the cause).
fn short(message: &str) -> String {
    let line = message.lines().next().unwrap_or("").trim();
    let line = match line.find(": \"").or_else(|| line.find(": '")) {
        Some(i) if i > 0 => &line[..i],
        _ => line,
    };
    let line = collapse_go_structs(line);
    let n = line.chars().count();
    if n > 120 {
        let head: String = line.chars().take(80).collect();
        let tail: String = line.chars().skip(n - 36).collect();
        format!("{} … {}", head.trim_end(), tail.trim_start())
    } else {
        line
    }
}

/// Go's `%v` of a pointer to a struct (`&{...}`, nested braces and all) as `&{…}`: the
/// dump is in the full message; in a one-line name it hides the words around it.
fn collapse_go_structs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("&{") {
        out.push_str(&rest[..i]);
        let mut depth = 0usize;
        let mut end = None;
        for (j, c) in rest[i + 1..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 1 + j + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(e) => {
                out.push_str("&{…}");
                rest = &rest[e..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Name of a signal number (`SIGSEGV`), or `signal N`.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Signals that mean the process crashed (as opposed to being terminated).
fn is_fatal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGABRT
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
            | libc::SIGSYS
    )
}

/// Human wording of an exit, as nextest words it: `exited with status 3`,
/// `aborted with signal 11 (SIGSEGV)`.
pub fn describe_exit(exit: Option<Exit>) -> String {
    match exit {
        None => "did not exit (killed with the case)".into(),
        Some(Exit::Code(c)) => format!("exited with status {c}"),
        Some(Exit::Signal {
            signal,
            core_dumped,
        }) => format!(
            "aborted with signal {signal} ({}){}",
            signal_name(signal),
            if core_dumped { ", core dumped" } else { "" }
        ),
    }
}

/// Everything classification produces for a case.
#[derive(Debug, Clone)]
pub struct Classified {
    pub outcome: Outcome,
    pub ops: Vec<OpResult>,
}

/// Classify what the sandbox observed. `norm` is applied to every piece of evidence.
pub fn classify(obs: &Observed, norm: &normalize::Normalizer) -> Classified {
    let events: Vec<ChannelEvent> = obs
        .channel
        .iter()
        .filter_map(|l| ChannelEvent::parse(l))
        .collect();
    let ops = OpResult::from_events(&events, norm);
    let running_op = ops
        .iter()
        .rev()
        .find(|o| o.status == parse::OpStatus::Running)
        .map(|o| o.op.clone());
    let failed_op = ops
        .iter()
        .rev()
        .find(|o| o.status == parse::OpStatus::Error);
    let stderr = obs.stderr.text();
    let outcome = (|| {
        if let Some(e) = &obs.setup_error {
            return Outcome::HarnessError {
                message: norm.apply(e),
            };
        }
        if obs.interrupted {
            return Outcome::HarnessError {
                message: "interrupted (the harness received SIGINT or SIGTERM)".into(),
            };
        }
        if obs.timed_out {
            return Outcome::Timeout {
                op: running_op.clone(),
            };
        }
        let Some(exit) = obs.exit else {
            return Outcome::HarnessError {
                message: "the sandbox ended without reporting the target's exit".into(),
            };
        };
        let driver_panic = events.iter().rev().find_map(|e| match e {
            ChannelEvent::Panic(p) => Some(p),
            _ => None,
        });
        let driver_signal = events.iter().rev().find_map(|e| match e {
            ChannelEvent::Signal(s) => Some(s),
            _ => None,
        });
        let text_panic = parse::rust_panic(&stderr);
        let go = parse::go_panic(&stderr);
        match exit {
            Exit::Signal { signal, .. } if is_fatal(signal) => {
                let (runtime, message, location, frames) = if let Some(g) = &go {
                    (
                        Some(Runtime::Go),
                        Some(g.message.clone()),
                        g.location.clone(),
                        g.frames.clone(),
                    )
                } else if let Some(p) = driver_panic {
                    // panic=abort, or a panic while panicking.
                    (
                        Some(Runtime::Rust),
                        Some(p.message.clone()),
                        p.location.clone(),
                        p.frames.clone(),
                    )
                } else if let Some(s) = driver_signal {
                    let msg = s.stack_overflow.then(|| "stack overflow".to_string());
                    (Some(Runtime::Rust), msg, None, s.frames.clone())
                } else if let Some(p) = &text_panic {
                    (
                        Some(Runtime::Rust),
                        Some(p.message.clone()),
                        p.location.clone(),
                        vec![],
                    )
                } else if parse::rust_stack_overflow(&stderr) {
                    (
                        Some(Runtime::Rust),
                        Some("stack overflow".into()),
                        None,
                        vec![],
                    )
                } else {
                    (None, None, None, vec![])
                };
                Outcome::Crash {
                    signal: signal_name(signal),
                    runtime,
                    op: running_op.clone(),
                    message: message.map(|m| norm.apply(&m)),
                    location: location.map(|l| norm.apply(&l)),
                    frames: norm.frames(&frames),
                }
            }
            Exit::Signal { signal, .. } if signal == libc::SIGKILL => Outcome::Killed {
                signal: signal_name(signal),
            },
            Exit::Signal { signal, .. } => Outcome::Killed {
                signal: signal_name(signal),
            },
            Exit::Code(code) => {
                if let Some(g) = go.filter(|_| code == 2) {
                    if let Some(sig) = &g.signal {
                        return Outcome::Crash {
                            signal: sig.clone(),
                            runtime: Some(Runtime::Go),
                            op: running_op.clone(),
                            message: Some(norm.apply(&g.message)),
                            location: g.location.clone(),
                            frames: norm.frames(&g.frames),
                        };
                    }
                    return Outcome::Panic {
                        runtime: Runtime::Go,
                        op: running_op.clone(),
                        message: norm.apply(&g.message),
                        location: g.location.clone(),
                        frames: norm.frames(&g.frames),
                    };
                }
                if let Some(p) = driver_panic {
                    return Outcome::Panic {
                        runtime: Runtime::Rust,
                        op: running_op.clone(),
                        message: norm.apply(&p.message),
                        location: p.location.as_deref().map(|l| norm.apply(l)),
                        frames: norm.frames(&p.frames),
                    };
                }
                if let Some(p) = text_panic.filter(|_| code == 101) {
                    return Outcome::Panic {
                        runtime: Runtime::Rust,
                        op: running_op.clone(),
                        message: norm.apply(&p.message),
                        location: p.location.as_deref().map(|l| norm.apply(l)),
                        frames: vec![],
                    };
                }
                if code == 0 {
                    return Outcome::Ok;
                }
                let (op, message) = match failed_op {
                    Some(o) => (Some(o.op.clone()), o.error.clone().unwrap_or_default()),
                    None => (None, parse::last_line(&stderr).unwrap_or_default()),
                };
                Outcome::Error {
                    op,
                    message: norm.apply(&message),
                    exit_code: code,
                }
            }
        }
    })();
    Classified { outcome, ops }
}

#[cfg(test)]
mod short_tests {
    use super::*;

    #[test]
    fn a_go_struct_dump_is_collapsed_in_the_one_line_name() {
        let m = "Could not add runtime PID [PID] to the sandbox &{%!s(*v2.Manager=&{ /sys/fs/cgroup/x}) a:b:c %!s(*specs.LinuxCPU=&{<nil> 0-1  <nil>}) [{%!s(bool=true) c}]}: write /x/cgroup.procs: no such file or directory";
        assert_eq!(
            short(m),
            "Could not add runtime PID [PID] to the sandbox &{…}: write /x/cgroup.procs: no such file or directory"
        );
    }

    #[test]
    fn a_long_line_keeps_its_head_and_its_tail() {
        let m = format!("head {} tail: the cause", "x".repeat(200));
        let s = short(&m);
        assert!(s.starts_with("head xxx"), "{s}");
        assert!(s.ends_with("tail: the cause"), "{s}");
        assert!(s.chars().count() <= 120, "{s}");
    }

    #[test]
    fn quoted_data_is_cut_and_an_unclosed_brace_is_kept() {
        assert_eq!(
            short("path should be valid: \"/x/y\""),
            "path should be valid"
        );
        assert_eq!(short("odd &{ never closed"), "odd &{ never closed");
    }
}

#[cfg(test)]
mod tests;
