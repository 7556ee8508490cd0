//! The verdict on one injected fault: from the outcome of the faulted run, its op log and
//! its final cgroupfs state, compared with the fault-free baseline's final state and with
//! the limits the pod asked for. Pure: no sandbox, unit-tested on synthetic outcomes.
//!
//! | outcome | state | verdict |
//! |---|---|---|
//! | crash / killed, panic, timeout | — | `crash`, `panic`, `timeout` (bugs) |
//! | fault never fired | — | `not-reached` |
//! | error naming the failing file and the errno | groups of the failed constructor removed | `correct` |
//! | error not naming the file | same | `unnamed` (correct, but says less than it could) |
//! | error without the injected errno | — | `masked` (bug: the failure was dropped and a later one reported) |
//! | error in the first op (the constructor) | groups it made are left | `leak` (bug) |
//! | ok | as the baseline's | `tolerated` |
//! | ok | a group, limit or write of the baseline missing or different | `swallowed` (bug) |

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plan::{mode_of, Fault, Injection, Mode, SiteOp};
use crate::evidence::Effects;
use crate::host::CgroupMode;
use crate::outcome::Outcome;
use crate::scenario::Pod;

/// What the sweep concludes about one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Crash,
    Panic,
    Timeout,
    Swallowed,
    Masked,
    Leak,
    Unnamed,
    Correct,
    Tolerated,
    NotReached,
    HarnessError,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Crash => "crash",
            Kind::Panic => "panic",
            Kind::Timeout => "timeout",
            Kind::Swallowed => "swallowed",
            Kind::Masked => "masked",
            Kind::Leak => "leak",
            Kind::Unnamed => "unnamed",
            Kind::Correct => "correct",
            Kind::Tolerated => "tolerated",
            Kind::NotReached => "not-reached",
            Kind::HarnessError => "harness-error",
        }
    }

    /// A defect of the code under test.
    pub fn is_bug(self) -> bool {
        matches!(
            self,
            Kind::Crash | Kind::Panic | Kind::Timeout | Kind::Swallowed | Kind::Masked | Kind::Leak
        )
    }
}

/// A verdict with its evidence: `signature` names the defect (faults with the same
/// signature are one defect), `detail` says what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: Kind,
    pub signature: String,
    pub detail: String,
}

/// `fixtures/sweep/limits.toml`: the files that carry each `[pod]` limit.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitFiles(BTreeMap<String, LimitEntry>);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitEntry {
    v1: Vec<String>,
    v2: Vec<String>,
}

impl LimitFiles {
    pub fn load(path: &Path) -> Result<LimitFiles, super::SweepError> {
        let src = std::fs::read_to_string(path).map_err(super::SweepError::read(path))?;
        toml::from_str(&src).map_err(super::SweepError::toml(path))
    }

    /// The pod's limits that are set, with their files on this cgroup version.
    pub fn requested(&self, pod: &Pod, mode: Mode) -> Vec<(String, Vec<String>)> {
        let set = [
            ("memory", pod.memory.is_some()),
            ("cpus", pod.cpus.is_some()),
            ("cpu_quota", pod.cpu_quota.is_some()),
            ("cpu_period", pod.cpu_period.is_some()),
            ("cpu_shares", pod.cpu_shares.is_some()),
            ("pids_limit", pod.pids_limit.is_some()),
        ];
        set.iter()
            .filter(|(_, on)| *on)
            .filter_map(|(f, _)| {
                let e = self.0.get(*f)?;
                let files = match mode {
                    Mode::V1 => e.v1.clone(),
                    Mode::V2 => e.v2.clone(),
                };
                Some((f.to_string(), files))
            })
            .collect()
    }

    /// Which requested limit a file carries (`memory` for `.../memory.max`).
    fn limit_of<'a>(requested: &'a [(String, Vec<String>)], path: &str) -> Option<&'a str> {
        let file = path.rsplit('/').next().unwrap_or(path);
        requested
            .iter()
            .find(|(_, files)| files.iter().any(|f| f == file))
            .map(|(l, _)| l.as_str())
    }
}

/// Limits the pod asks for that the fault-free baseline never writes (a defect without any
/// fault, or a limit the library does not support on this host).
pub fn unapplied(requested: &[(String, Vec<String>)], baseline: &Effects) -> Vec<String> {
    requested
        .iter()
        .filter(|(_, files)| {
            !baseline.written.keys().any(|k| {
                files
                    .iter()
                    .any(|f| k.rsplit('/').next() == Some(f.as_str()))
            })
        })
        .map(|(l, files)| format!("{l} ({})", files.join(", ")))
        .collect()
}

/// Everything the verdict looks at.
pub struct Evidence<'a> {
    pub injection: &'a Injection,
    pub outcome: &'a Outcome,
    /// The faulted run's op log.
    pub op_log: &'a [String],
    /// The faulted run's final cgroupfs state.
    pub effects: &'a Effects,
    /// The baseline's final cgroupfs state.
    pub baseline: &'a Effects,
    /// The first op of the case (the constructor: on its error the caller has no handle
    /// to clean up with).
    pub first_op: &'a str,
    /// The fault-free run fails in the first op too (a Kata Create without a VM): groups
    /// left after its error are not the fault's doing.
    pub baseline_fails_first_op: bool,
    pub host: CgroupMode,
    /// The pod's limits and their files (see [`LimitFiles::requested`]), for both modes.
    pub requested_v1: &'a [(String, Vec<String>)],
    pub requested_v2: &'a [(String, Vec<String>)],
}

/// The fault-free run itself: a crash, panic or timeout there is a bug no fault is needed
/// for (reported as the sweep's first row).
pub fn baseline_verdict(outcome: &Outcome) -> Option<Verdict> {
    let kind = match outcome {
        Outcome::Crash { .. } | Outcome::Killed { .. } => Kind::Crash,
        Outcome::Panic { .. } => Kind::Panic,
        Outcome::Timeout { .. } => Kind::Timeout,
        _ => return None,
    };
    Some(Verdict {
        kind,
        signature: outcome.signature(),
        detail: "without any injected fault".into(),
    })
}

/// Did the injected fault fire? From the faulted run's op log.
pub fn fired(inj: &Injection, op_log: &[String]) -> bool {
    if let Fault::Dbus { error, .. } = &inj.fault {
        // `dbus StartTransientUnit ... -> error org.freedesktop.systemd1.UnitExists: ...`
        let head = format!("dbus {} ", inj.site.path);
        let answer = format!(" -> error {error}: ");
        return op_log
            .iter()
            .any(|l| l.starts_with(&head) && l.contains(&answer));
    }
    op_log.iter().any(|l| {
        let Some((op, path, _, result)) = super::plan::parse_log_line(l) else {
            return false;
        };
        if path != inj.site.path {
            return false;
        }
        match &inj.fault {
            Fault::Errno(e) => op == inj.site.op.name() && &result == e,
            Fault::OpenErrno(e) => (op == "open" || op == "open(w)") && &result == e,
            Fault::Short(_) | Fault::Delay(_) => op == inj.site.op.name(),
            Fault::Dbus { .. } => false,
        }
    })
}

/// The verdict on one fault.
pub fn judge(ev: &Evidence) -> Verdict {
    let inj = ev.injection;
    // Signatures name the file, or "a group" for mkdir/rmdir (which group is the case's).
    let object = match inj.site.op {
        SiteOp::Mkdir | SiteOp::Rmdir => "a group",
        SiteOp::Dbus => inj.site.path.as_str(),
        _ => inj.site.file(),
    };
    let what = match inj.site.op {
        SiteOp::Dbus => format!("D-Bus call {} ({})", inj.site.path, inj.fault.label()),
        _ => format!(
            "{} of {} ({})",
            inj.site.op.name(),
            inj.site.path,
            inj.fault.label()
        ),
    };
    // How signatures name the failed operation: `write of`, `dbus call`.
    let failed_kind = match inj.site.op {
        SiteOp::Dbus => "D-Bus call".to_string(),
        op => format!("{} of", op.name()),
    };
    let v = |kind: Kind, signature: String, detail: String| Verdict {
        kind,
        signature,
        detail,
    };
    match ev.outcome {
        Outcome::Crash { .. } | Outcome::Killed { .. } => {
            return v(
                Kind::Crash,
                ev.outcome.signature(),
                format!("after a failed {what}"),
            )
        }
        Outcome::Panic { .. } => {
            return v(
                Kind::Panic,
                ev.outcome.signature(),
                format!("after a failed {what}"),
            )
        }
        // A call held past its caller's deadline is expected to miss it: the delay's
        // verdict is about what follows (a crash, a leak), not the deadline itself.
        Outcome::Timeout { op } if matches!(inj.fault, Fault::Delay(_)) => {
            return v(
                Kind::Correct,
                format!(
                    "deadline exceeded in {} (the {} was held past it)",
                    op.as_deref().unwrap_or("?"),
                    inj.site.op.name()
                ),
                format!("after a delayed {what}"),
            )
        }
        Outcome::Timeout { .. } => {
            return v(
                Kind::Timeout,
                ev.outcome.signature(),
                format!("after a failed {what}"),
            )
        }
        Outcome::HarnessError { message } => {
            return v(Kind::HarnessError, "harness error".into(), message.clone())
        }
        Outcome::Ok | Outcome::Error { .. } => {}
    }
    if !fired(inj, ev.op_log) {
        return v(
            Kind::NotReached,
            "not reached".into(),
            format!("the {what} never happened with the fault in place"),
        );
    }
    let requested = match mode_of(&inj.site.path, ev.host) {
        Mode::V1 => ev.requested_v1,
        Mode::V2 => ev.requested_v2,
    };
    if let Outcome::Error { op, message, .. } = ev.outcome {
        let failed_op = op.as_deref().unwrap_or("?");
        if failed_op == ev.first_op && !ev.baseline_fails_first_op && !ev.effects.created.is_empty()
        {
            let left = &ev.effects.created;
            return v(
                Kind::Leak,
                format!("leak: `{failed_op}` fails and leaves the groups it created"),
                format!(
                    "{failed_op} returned an error after a failed {what} and left {} group(s): {}",
                    left.len(),
                    short_list(left)
                ),
            );
        }
        let injected = match &inj.fault {
            Fault::Errno(e) | Fault::OpenErrno(e) => Some(e.as_str()),
            Fault::Dbus { error, .. } => Some(error.as_str()),
            Fault::Short(_) | Fault::Delay(_) => None,
        };
        let carried = |e: &str| match &inj.fault {
            // godbus and zbus render an error as its message; some callers keep the name.
            Fault::Dbus {
                error,
                message: text,
            } => {
                // The text around the unit's name (`Unit ` … ` already exists.`).
                let parts: Vec<&str> = text
                    .split("{unit}")
                    .map(str::trim)
                    .filter(|p| p.len() > 3)
                    .collect();
                message.contains(error.as_str())
                    || (!parts.is_empty() && parts.iter().all(|p| message.contains(p)))
            }
            _ => mentions_errno(message, e),
        };
        // The op was the host's systemd's (its job failed): the caller never sees the
        // errno, only the job's result — that is what it should pass on.
        let failed_unit =
            systemd_failed_unit(ev.op_log).filter(|_| !matches!(inj.fault, Fault::Dbus { .. }));
        if let Some(unit) = failed_unit {
            // Passing it on names the unit and its result (runc: "error creating systemd
            // unit `x.scope`: got `failed`").
            if !(message.contains(unit.as_str()) && message.contains("failed")) {
                return v(
                    Kind::Masked,
                    format!(
                        "masked: systemd's job failed (a failed {failed_kind} {object}) and is reported as another error"
                    ),
                    format!(
                        "{failed_op} fails without the job's result after a failed {what} made systemd's job fail: {message}"
                    ),
                );
            }
            return v(
                Kind::Correct,
                format!("error in {failed_op} passing on systemd's failed job"),
                message.clone(),
            );
        }
        if let Some(e) = injected.filter(|e| !carried(e)) {
            return v(
                Kind::Masked,
                format!("masked: a failed {failed_kind} {object} is reported as another error"),
                format!("{failed_op} fails without {e} after a failed {what}: {message}"),
            );
        }
        let named = message.contains(inj.site.file())
            || message.contains(&inj.site.path)
            || matches!(inj.fault, Fault::Dbus { .. });
        return if named {
            v(
                Kind::Correct,
                format!("error in {failed_op} naming {object}"),
                message.clone(),
            )
        } else {
            v(
                Kind::Unnamed,
                format!("error in {failed_op} not naming {object}"),
                message.clone(),
            )
        };
    }
    // Ok: the state must be the baseline's.
    let diffs = state_diff(ev.baseline, ev.effects, requested);
    if diffs.is_empty() {
        return v(
            Kind::Tolerated,
            format!("tolerated {failed_kind} {object}"),
            "ok, final state as without the fault".into(),
        );
    }
    v(
        Kind::Swallowed,
        format!("swallowed: a failed {failed_kind} {object} is reported ok"),
        format!("ok after a failed {what}, but {}", diffs.join("; ")),
    )
}

/// The unit of a job the host's systemd reported failed (`dbus JobRemoved 1 x.scope failed`).
fn systemd_failed_unit(op_log: &[String]) -> Option<String> {
    op_log.iter().find_map(|l| {
        let rest = l
            .strip_prefix("dbus JobRemoved ")?
            .strip_suffix(" failed")?;
        rest.split(' ').nth(1).map(str::to_owned)
    })
}

/// Does an error message carry this errno: its name, its text (`Invalid argument`, any
/// case: Rust and Go spell it differently) or its number (`os error 22`, `code: 22`)?
pub fn mentions_errno(message: &str, name: &str) -> bool {
    let Ok(n) = crate::fault::parse_errno(name) else {
        return message.contains(name);
    };
    let text = std::io::Error::from_raw_os_error(n).to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or(&text)
        .to_lowercase();
    let m = message.to_lowercase();
    message.contains(name)
        || m.contains(&text)
        || m.contains(&format!("os error {n})"))
        || m.contains(&format!("code: {n},"))
}

/// How the final state differs from the baseline's: groups missing, files written there
/// missing or different, removals not done. Requested limits are named.
pub fn state_diff(
    baseline: &Effects,
    now: &Effects,
    requested: &[(String, Vec<String>)],
) -> Vec<String> {
    let mut out = Vec::new();
    let missing: Vec<String> = baseline
        .created
        .iter()
        .filter(|g| !now.created.contains(g))
        .cloned()
        .collect();
    if !missing.is_empty() {
        out.push(format!("group(s) not created: {}", short_list(&missing)));
    }
    for (path, want) in &baseline.written {
        let got = now.written.get(path);
        if got == Some(want) {
            continue;
        }
        // A file of a group that existed before the case, not written this time, still has
        // the host's content — which the baseline may only have rewritten (enabling
        // controllers already enabled at the root): not a difference one can tell.
        let group = path.rsplit_once('/').map_or("", |(g, _)| g);
        if got.is_none() && !baseline.created.iter().any(|c| c == group) {
            continue;
        }
        let limit = LimitFiles::limit_of(requested, path)
            .map(|l| format!("requested limit `{l}`: "))
            .unwrap_or_default();
        match got {
            None => out.push(format!("{limit}{path} not written (want {want:?})")),
            Some(g) => out.push(format!("{limit}{path} is {g:?}, want {want:?}")),
        }
    }
    let not_removed: Vec<String> = baseline
        .removed
        .iter()
        .filter(|r| !now.removed.contains(r))
        .cloned()
        .collect();
    if !not_removed.is_empty() {
        out.push(format!("not removed: {}", short_list(&not_removed)));
    }
    out
}

fn short_list(items: &[String]) -> String {
    let mut s = items.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 3 {
        s.push_str(&format!(", … ({} in all)", items.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Runtime;
    use crate::sweep::plan::{Site, SiteOp};

    fn inj(op: SiteOp, path: &str, fault: Fault) -> Injection {
        Injection {
            site: Site {
                op,
                path: path.into(),
                value: None,
            },
            fault,
        }
    }

    fn effects(created: &[&str], written: &[(&str, &str)]) -> Effects {
        Effects {
            created: created.iter().map(|s| s.to_string()).collect(),
            written: written
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            removed: vec![],
        }
    }

    const LIMIT: &str = "memory/k/memory.limit_in_bytes";

    fn baseline() -> Effects {
        effects(
            &["memory/k", "pids/k"],
            &[(LIMIT, "268435456"), ("pids/k/pids.max", "100")],
        )
    }

    fn requested() -> Vec<(String, Vec<String>)> {
        vec![
            ("memory".into(), vec!["memory.limit_in_bytes".into()]),
            ("pids_limit".into(), vec!["pids.max".into()]),
        ]
    }

    fn judge_with(i: &Injection, outcome: Outcome, log: &[&str], now: &Effects) -> Verdict {
        let log: Vec<String> = log.iter().map(|s| s.to_string()).collect();
        let b = baseline();
        let r = requested();
        judge(&Evidence {
            injection: i,
            outcome: &outcome,
            op_log: &log,
            effects: now,
            baseline: &b,
            first_op: "create",
            baseline_fails_first_op: false,
            host: CgroupMode::V1,
            requested_v1: &r,
            requested_v2: &[],
        })
    }

    fn einval_on_limit() -> Injection {
        inj(SiteOp::Write, LIMIT, Fault::Errno("EINVAL".into()))
    }

    const LIMIT_FAILED: &str = "write memory/k/memory.limit_in_bytes \"268435456\" -> EINVAL";

    #[test]
    fn ok_with_the_limit_missing_is_a_swallowed_error_naming_the_requested_limit() {
        let now = effects(&["memory/k", "pids/k"], &[("pids/k/pids.max", "100")]);
        let v = judge_with(&einval_on_limit(), Outcome::Ok, &[LIMIT_FAILED], &now);
        assert_eq!(v.kind, Kind::Swallowed);
        assert!(v.kind.is_bug());
        assert_eq!(
            v.signature,
            "swallowed: a failed write of memory.limit_in_bytes is reported ok"
        );
        assert!(
            v.detail
                .contains("requested limit `memory`: memory/k/memory.limit_in_bytes not written"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn ok_with_a_wrong_value_is_swallowed_too() {
        let i = inj(SiteOp::Write, LIMIT, Fault::Short(4));
        let now = effects(
            &["memory/k", "pids/k"],
            &[(LIMIT, "2684"), ("pids/k/pids.max", "100")],
        );
        let v = judge_with(
            &i,
            Outcome::Ok,
            &["write memory/k/memory.limit_in_bytes \"2684\" -> ok"],
            &now,
        );
        assert_eq!(v.kind, Kind::Swallowed);
        assert!(
            v.detail.contains("is \"2684\", want \"268435456\""),
            "{}",
            v.detail
        );
    }

    #[test]
    fn an_unwritten_file_of_a_group_that_existed_before_is_not_a_difference() {
        // The baseline rewrote the root's subtree_control (maybe to what it already was).
        let mut b = baseline();
        b.written
            .insert("cgroup.subtree_control".into(), "cpu memory pids".into());
        let now = baseline();
        assert!(state_diff(&b, &now, &requested()).is_empty());
        // A file of a group the case created is another matter.
        let mut now = baseline();
        now.written.remove("pids/k/pids.max");
        assert_eq!(
            state_diff(&b, &now, &requested()),
            ["requested limit `pids_limit`: pids/k/pids.max not written (want \"100\")"]
        );
    }

    #[test]
    fn ok_with_the_baseline_state_is_tolerated() {
        let i = inj(
            SiteOp::Read,
            "memory/k/memory.stat",
            Fault::Errno("ENODEV".into()),
        );
        let v = judge_with(
            &i,
            Outcome::Ok,
            &["read memory/k/memory.stat -> ENODEV"],
            &baseline(),
        );
        assert_eq!(v.kind, Kind::Tolerated);
        assert!(!v.kind.is_bug());
    }

    #[test]
    fn an_error_naming_the_failing_file_is_correct() {
        let v = judge_with(
            &einval_on_limit(),
            Outcome::Error {
                op: Some("apply".into()),
                message: "unable to write to /k/memory.limit_in_bytes: Invalid argument".into(),
                exit_code: 1,
            },
            &[LIMIT_FAILED],
            &baseline(),
        );
        assert_eq!(v.kind, Kind::Correct);
    }

    #[test]
    fn an_error_that_does_not_name_the_file_is_unnamed_but_not_a_bug() {
        let v = judge_with(
            &einval_on_limit(),
            Outcome::Error {
                op: Some("apply".into()),
                message: "Invalid argument (os error 22)".into(),
                exit_code: 1,
            },
            &[LIMIT_FAILED],
            &baseline(),
        );
        assert_eq!(v.kind, Kind::Unnamed);
        assert!(!v.kind.is_bug());
    }

    #[test]
    fn an_error_that_lost_the_injected_errno_is_masked() {
        // cgroups-rs 0.3.4: create ignores the failed mkdir, apply then cannot find the
        // group's files and reports ENOENT.
        let i = inj(SiteOp::Mkdir, "pids/k", Fault::Errno("EAGAIN".into()));
        let v = judge_with(
            &i,
            Outcome::Error {
                op: Some("apply".into()),
                message: "unable to write to a control group file /sys/fs/cgroup/pids/k/pids.max caused by: Os { code: 2, kind: NotFound, message: \"No such file or directory\" }".into(),
                exit_code: 1,
            },
            &["mkdir pids/k -> EAGAIN"],
            &effects(&[], &[]),
        );
        assert_eq!(v.kind, Kind::Masked);
        assert!(v.kind.is_bug());
        assert_eq!(
            v.signature,
            "masked: a failed mkdir of a group is reported as another error"
        );
    }

    #[test]
    fn errnos_are_recognised_in_rust_and_go_spellings() {
        assert!(mentions_errno("Invalid argument (os error 22)", "EINVAL"));
        assert!(mentions_errno("write /x: invalid argument", "EINVAL"));
        assert!(mentions_errno(
            "Os { code: 16, kind: ResourceBusy, message: \"x\" }",
            "EBUSY"
        ));
        assert!(mentions_errno("EBUSY", "EBUSY"));
        assert!(!mentions_errno(
            "No such file or directory (os error 2)",
            "EAGAIN"
        ));
    }

    #[test]
    fn a_failed_constructor_that_leaves_groups_behind_leaks() {
        let i = inj(SiteOp::Mkdir, "pids/k", Fault::Errno("EAGAIN".into()));
        let v = judge_with(
            &i,
            Outcome::Error {
                op: Some("create".into()),
                message: "mkdir pids/k: Resource temporarily unavailable".into(),
                exit_code: 1,
            },
            &["mkdir memory/k -> ok", "mkdir pids/k -> EAGAIN"],
            &effects(&["memory/k"], &[]),
        );
        assert_eq!(v.kind, Kind::Leak);
        assert_eq!(
            v.signature,
            "leak: `create` fails and leaves the groups it created"
        );
        assert!(v.detail.contains("1 group(s): memory/k"), "{}", v.detail);
        // The same error after the constructor returned: the caller holds the handle.
        let v = judge_with(
            &i,
            Outcome::Error {
                op: Some("apply".into()),
                message: "mkdir pids/k: Resource temporarily unavailable".into(),
                exit_code: 1,
            },
            &["mkdir pids/k -> EAGAIN"],
            &effects(&["memory/k"], &[]),
        );
        assert_eq!(v.kind, Kind::Correct);
    }

    #[test]
    fn missing_a_deadline_the_fault_held_the_call_past_is_expected() {
        let i = inj(
            SiteOp::Mkdir,
            "pids/k",
            Fault::Delay(std::time::Duration::from_secs(6)),
        );
        let timeout = Outcome::Timeout {
            op: Some("create".into()),
        };
        let v = judge_with(&i, timeout, &["mkdir pids/k -> ok"], &baseline());
        assert_eq!(v.kind, Kind::Correct);
        assert!(v.signature.starts_with("deadline exceeded in create"));
    }

    #[test]
    fn groups_left_when_the_baseline_fails_the_same_way_are_not_a_leak() {
        let i = inj(SiteOp::Mkdir, "pids/k", Fault::Errno("EAGAIN".into()));
        let log: Vec<String> = vec!["mkdir pids/k -> EAGAIN".into()];
        let b = baseline();
        let r = requested();
        let outcome = Outcome::Error {
            op: Some("create".into()),
            message: "mkdir pids/k: resource temporarily unavailable".into(),
            exit_code: 1,
        };
        let now = effects(&["memory/k"], &[]);
        let v = judge(&Evidence {
            injection: &i,
            outcome: &outcome,
            op_log: &log,
            effects: &now,
            baseline: &b,
            first_op: "create",
            baseline_fails_first_op: true,
            host: CgroupMode::V1,
            requested_v1: &r,
            requested_v2: &[],
        });
        assert_eq!(v.kind, Kind::Correct);
    }

    #[test]
    fn crashes_panics_and_timeouts_are_bugs_with_the_outcome_signature() {
        let panic = Outcome::Panic {
            runtime: Runtime::Rust,
            op: Some("create".into()),
            message: "path should be valid".into(),
            location: None,
            frames: vec!["<T as cgroups_rs::Controller>::create".into()],
        };
        let v = judge_with(&einval_on_limit(), panic.clone(), &[], &baseline());
        assert_eq!(v.kind, Kind::Panic);
        assert_eq!(v.signature, panic.signature());
        let crash = Outcome::Crash {
            signal: "SIGSEGV".into(),
            runtime: None,
            op: None,
            message: None,
            location: None,
            frames: vec![],
        };
        assert_eq!(
            judge_with(&einval_on_limit(), crash, &[], &baseline()).kind,
            Kind::Crash
        );
        let timeout = Outcome::Timeout {
            op: Some("apply".into()),
        };
        assert_eq!(
            judge_with(&einval_on_limit(), timeout, &[], &baseline()).kind,
            Kind::Timeout
        );
    }

    #[test]
    fn a_crashing_baseline_is_a_bug_without_a_fault_and_a_clean_one_is_none() {
        let crash = Outcome::Crash {
            signal: "SIGSEGV".into(),
            runtime: Some(Runtime::Go),
            op: Some("create".into()),
            message: None,
            location: None,
            frames: vec!["resourcecontrol.NewSandboxResourceController".into()],
        };
        let v = baseline_verdict(&crash).unwrap();
        assert_eq!(v.kind, Kind::Crash);
        assert_eq!(v.signature, crash.signature());
        let error = Outcome::Error {
            op: Some("create".into()),
            message: "Running checking FC version command failed".into(),
            exit_code: 1,
        };
        assert_eq!(baseline_verdict(&error), None);
        assert_eq!(baseline_verdict(&Outcome::Ok), None);
    }

    #[test]
    fn a_fault_that_never_fired_is_not_reached() {
        let v = judge_with(
            &einval_on_limit(),
            Outcome::Ok,
            &["write memory/k/memory.limit_in_bytes \"1\" -> ok"],
            &baseline(),
        );
        assert_eq!(v.kind, Kind::NotReached);
    }

    #[test]
    fn open_faults_fire_on_failed_opens() {
        let i = inj(
            SiteOp::Write,
            "k/memory.max",
            Fault::OpenErrno("ENOENT".into()),
        );
        assert!(fired(&i, &["open(w) k/memory.max -> ENOENT".into()]));
        assert!(!fired(&i, &["write k/memory.max \"1\" -> ENOENT".into()]));
    }

    #[test]
    fn the_baseline_is_checked_against_the_pod() {
        let b = effects(&["memory/k"], &[(LIMIT, "268435456")]);
        assert_eq!(unapplied(&requested(), &b), ["pids_limit (pids.max)"]);
        let l = LimitFiles::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sweep/limits.toml"),
        )
        .unwrap();
        let pod = Pod {
            id: "x".into(),
            cgroups_path: "x".into(),
            memory: Some(1),
            cpus: None,
            cpu_quota: None,
            cpu_period: None,
            cpu_shares: Some(2),
            pids_limit: None,
        };
        assert_eq!(
            l.requested(&pod, Mode::V2),
            [
                ("memory".to_string(), vec!["memory.max".to_string()]),
                ("cpu_shares".to_string(), vec!["cpu.weight".to_string()])
            ]
        );
    }

    fn unit_exists() -> Injection {
        inj(
            SiteOp::Dbus,
            "StartTransientUnit",
            Fault::Dbus {
                error: "org.freedesktop.systemd1.UnitExists".into(),
                message: "Unit {unit} already exists.".into(),
            },
        )
    }

    const START_REFUSED: &str = "dbus StartTransientUnit k.scope replace PIDs=[7] -> error org.freedesktop.systemd1.UnitExists: Unit k.scope already exists.";

    #[test]
    fn a_refused_systemd_call_reported_ok_with_its_groups_missing_is_swallowed() {
        // Kata's Go shim with the systemd driver: StartTransientUnit's error thrown away.
        let v = judge_with(
            &unit_exists(),
            Outcome::Ok,
            &[START_REFUSED],
            &effects(&[], &[]),
        );
        assert_eq!(v.kind, Kind::Swallowed);
        assert_eq!(
            v.signature,
            "swallowed: a failed D-Bus call StartTransientUnit is reported ok"
        );
        assert!(v.detail.starts_with("ok after a failed D-Bus call StartTransientUnit (org.freedesktop.systemd1.UnitExists), but group(s) not created"), "{}", v.detail);
    }

    #[test]
    fn a_systemd_error_passed_on_is_correct_and_one_replaced_by_another_is_masked() {
        let err = |message: &str| Outcome::Error {
            op: Some("apply".into()),
            message: message.into(),
            exit_code: 1,
        };
        let v = judge_with(
            &unit_exists(),
            err("starting scope: Unit k.scope already exists."),
            &[START_REFUSED],
            &effects(&[], &[]),
        );
        assert_eq!(v.kind, Kind::Correct);
        let v = judge_with(
            &unit_exists(),
            err("open /sys/fs/cgroup/memory/k/memory.limit_in_bytes: no such file or directory"),
            &[START_REFUSED],
            &effects(&[], &[]),
        );
        assert_eq!(v.kind, Kind::Masked);
        assert_eq!(
            v.signature,
            "masked: a failed D-Bus call StartTransientUnit is reported as another error"
        );
    }

    #[test]
    fn a_systemd_fault_that_never_answered_a_call_was_not_reached() {
        let v = judge_with(
            &unit_exists(),
            Outcome::Ok,
            &["dbus StartTransientUnit k.scope replace -> ok job 1"],
            &baseline(),
        );
        assert_eq!(v.kind, Kind::NotReached);
    }

    #[test]
    fn a_kernel_refusal_of_systemds_own_mkdir_must_come_back_as_the_failed_job() {
        let i = inj(
            SiteOp::Mkdir,
            "kubepods.slice",
            Fault::Errno("EAGAIN".into()),
        );
        let log = [
            "dbus StartTransientUnit k.scope replace PIDs=[7] -> ok job 1",
            "mkdir kubepods.slice -> EAGAIN",
            "dbus JobRemoved 1 k.scope failed",
        ];
        let err = |message: &str| Outcome::Error {
            op: Some("add_task".into()),
            message: message.into(),
            exit_code: 1,
        };
        let v = judge_with(
            &i,
            err("Timeout waiting for pid 7 to be added to cgroup: start failed"),
            &log,
            &effects(&[], &[]),
        );
        assert_eq!(v.kind, Kind::Masked);
        assert_eq!(
            v.signature,
            "masked: systemd's job failed (a failed mkdir of a group) and is reported as another error"
        );
        let v = judge_with(
            &i,
            err("error creating systemd unit `k.scope`: got `failed`"),
            &log,
            &effects(&[], &[]),
        );
        assert_eq!(v.kind, Kind::Correct);
    }
}
