//! Bounds and shapes of scenario values that serde's types do not check: every path,
//! device, glob, count and duration is checked when the file is parsed, and a mistake is
//! reported at its line and column with a fix — never found at run time, never a panic.
//!
//! The documented limits (README, "Host safety and bad input"):
//!
//! | what                         | limit                                                   |
//! |------------------------------|---------------------------------------------------------|
//! | a scenario file              | [`MAX_FILE_BYTES`] (1 MiB)                              |
//! | any string value             | [`MAX_STRING_BYTES`] (64 KiB); no control characters but tab and newline (fault `content`/`corrupt` excepted: file content) |
//! | `[scenario] title`           | [`MAX_TITLE_CHARS`] (200) characters, one line          |
//! | durations                    | more than 0, at most [`MAX_DURATION`] (1 hour)          |
//! | matrix cells                 | [`MAX_CELLS`] (256), or up to [`MAX_CELLS_OVERRIDE`] (10,000) with `[scenario] max_cells` |
//! | `[host] devices`             | names of `fixtures/hosts/devices.txt`                   |
//! | `[host] writable`            | absolute, normalized, not /, /proc, /sys or /dev        |
//! | content-fault `file`         | below /sys/fs/cgroup/ or /proc/ (the simulated paths)   |
//! | fault `path`                 | a valid glob                                            |
//! | `when = "nth:N"`             | N ≥ 1                                                   |
//! | `pod.pids_limit`, `cpu_quota`| ≥ -1 (-1: no limit)                                     |
//! | `pod.cpu_period`             | 1000–1000000 µs; `cpu_shares` 2–262144                  |
//! | `pod.id`                     | 1–64 of `A-Z a-z 0-9 _ . -`, not `.` or `..`            |

use std::path::{Component, Path};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::error::ScenarioError;
use super::parse::Locator;

pub const MAX_FILE_BYTES: usize = 1 << 20;
pub const MAX_STRING_BYTES: usize = 64 * 1024;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_CELLS: usize = 256;
pub const MAX_CELLS_OVERRIDE: usize = 10_000;

/// The known device names (`fixtures/hosts/devices.txt`, compiled in).
pub fn known_devices() -> Vec<&'static str> {
    include_str!("../../../fixtures/hosts/devices.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// A user's string as an error message shows it: escaped (control characters, quotes)
/// and cut to 60 characters.
pub fn shown(s: &str) -> String {
    let escaped: String = s.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 60 {
        let cut: String = escaped.chars().take(57).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

/// The whole file: its size, and every string value in it.
pub(super) fn document(loc: &Locator) -> Result<(), ScenarioError> {
    if loc.src.len() > MAX_FILE_BYTES {
        return Err(loc
            .error(
                None,
                format!(
                    "the file is {} bytes; a scenario file is at most {MAX_FILE_BYTES}",
                    loc.src.len()
                ),
            )
            .hint("a scenario describes one bug report; put large content in fixtures/"));
    }
    let Some(tree) = loc.tree() else {
        return Ok(());
    };
    walk(tree, "", loc)
}

fn walk(t: &DeTable<'_>, prefix: &str, loc: &Locator) -> Result<(), ScenarioError> {
    for (k, v) in t.iter() {
        let name = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        check_key(k.get_ref(), k.span(), &name, loc)?;
        value(v, &name, loc)?;
    }
    Ok(())
}

fn check_key(
    k: &str,
    span: std::ops::Range<usize>,
    name: &str,
    loc: &Locator,
) -> Result<(), ScenarioError> {
    if k.len() > 256 || k.chars().any(char::is_control) {
        return Err(loc
            .error(Some(span), format!("invalid key `{}`", shown(k)))
            .field(name.to_string())
            .hint("keys are short names without control characters"));
    }
    Ok(())
}

fn value(v: &toml::Spanned<DeValue<'_>>, name: &str, loc: &Locator) -> Result<(), ScenarioError> {
    match v.get_ref() {
        DeValue::String(s) => string(s, v.span(), name, loc),
        DeValue::Table(t) => walk(t, name, loc),
        DeValue::Array(a) => a.iter().try_for_each(|x| value(x, name, loc)),
        _ => Ok(()),
    }
}

fn string(
    s: &str,
    span: std::ops::Range<usize>,
    name: &str,
    loc: &Locator,
) -> Result<(), ScenarioError> {
    let err = |msg: String, hint: &str| {
        Err(loc
            .error(Some(span.clone()), msg)
            .field(name.to_string())
            .hint(hint.to_string()))
    };
    if s.len() > MAX_STRING_BYTES {
        return err(
            format!(
                "a string of {} bytes; strings are at most {MAX_STRING_BYTES}",
                s.len()
            ),
            "shorten it, or put the content in a file under fixtures/",
        );
    }
    // File content a fault serves (a corrupted read, a replaced file) may be any bytes.
    let data = matches!(name, "fault.corrupt" | "fault.content");
    if let Some(c) = s
        .chars()
        .filter(|_| !data)
        .find(|&c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return err(
            format!(
                "the string contains the control character {:?} (in \"{}\")",
                c,
                shown(s)
            ),
            "remove it: no program argument, path or text here may carry one (NUL ends a C string; escapes garble terminals)",
        );
    }
    if name == "scenario.title" && (s.chars().count() > MAX_TITLE_CHARS || s.contains('\n')) {
        return err(
            format!(
                "the title is {} characters on {} line(s); a title is one line of at most {MAX_TITLE_CHARS}",
                s.chars().count(),
                s.lines().count()
            ),
            "say what goes wrong in one line; put the details in comments or `report`",
        );
    }
    Ok(())
}

/// A duration field: parsed, more than 0, at most [`MAX_DURATION`]. `Err` is the message
/// and the hint.
pub fn duration(s: &str) -> Result<Duration, (String, String)> {
    let hint = || "write it like \"10s\", \"500ms\" or \"1m 30s\"".to_string();
    let d = humantime::parse_duration(s)
        .map_err(|e| (format!("invalid duration `{}`: {e}", shown(s)), hint()))?;
    if d.is_zero() {
        return Err((
            format!("duration `{}` is zero", shown(s)),
            "a duration is more than 0 (e.g. \"1ms\")".into(),
        ));
    }
    if d > MAX_DURATION {
        return Err((
            format!(
                "duration `{}` is longer than the limit of {}",
                shown(s),
                humantime::format_duration(MAX_DURATION)
            ),
            "a case that needs more than an hour is not a reproducer; shorten it".into(),
        ));
    }
    Ok(d)
}

/// A `[host] devices` name. `Err`: message and hint.
pub fn device(name: &str) -> Result<(), (String, String)> {
    let known = known_devices();
    if known.contains(&name) {
        return Ok(());
    }
    let why = if name.contains('/') || name.contains("..") {
        "a device is a bare name under /dev, not a path"
    } else {
        "not a known device"
    };
    Err((
        format!("unknown device `{}`: {why}", shown(name)),
        super::error::suggest(name, "known devices", &known),
    ))
}

/// A `[host] writable` path. `Err`: message and hint.
pub fn writable(path: &str) -> Result<(), (String, String)> {
    let hint = "an absolute directory without `.`, `..` or `//`, e.g. \"/var/lib/foo\"";
    if !is_normal_absolute(path) || path == "/" {
        return Err((
            format!("`{}` is not a writable directory path", shown(path)),
            hint.into(),
        ));
    }
    for special in ["/proc", "/sys", "/dev"] {
        if std::path::Path::new(path).starts_with(special) {
            return Err((
                format!(
                    "`{}` is below {special}, which the sandbox provides itself",
                    shown(path)
                ),
                "choose a directory elsewhere (/tmp, /var/tmp, /dev/shm and /run are writable already)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// A content fault's `file`: a simulated path. `Err`: message and hint.
pub fn content_file(file: &str) -> Result<(), (String, String)> {
    let hint = "a content fault changes a simulated file: a path below /sys/fs/cgroup/ \
                or one of the /proc views (e.g. \"/proc/self/mountinfo\")";
    if !is_normal_absolute(file) {
        return Err((
            format!(
                "`{}` is not a normalized absolute path (no `.`, `..` or `//`)",
                shown(file)
            ),
            hint.into(),
        ));
    }
    if !(file.starts_with("/sys/fs/cgroup/") || file.starts_with("/proc/")) {
        return Err((
            format!("`{}` is outside the simulated paths", shown(file)),
            hint.into(),
        ));
    }
    Ok(())
}

/// A fault's path glob, with the syscall layer's and the model's rules.
pub fn glob(path: &str) -> Result<(), (String, String)> {
    globset::GlobBuilder::new(path)
        .literal_separator(true)
        .build()
        .map(|_| ())
        .map_err(|e| {
            (
                format!("invalid glob `{}`: {}", shown(path), e.kind()),
                "`*` matches within one path component, `**` across them, `[ab]` a class; \
                 escape a literal bracket as `[[]`"
                    .into(),
            )
        })
}

/// `pod.id`: it names directories (the bundle) and cgroups.
pub fn pod_id(id: &str) -> Result<(), (String, String)> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err((
            format!("invalid pod id `{}`", shown(id)),
            "1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` and `-` (not `.` or `..`)".into(),
        ))
    }
}

/// A signed limit where -1 means none (`pids_limit`, `cpu_quota`).
pub fn limit(v: i64) -> Result<(), (String, String)> {
    if v < -1 {
        return Err((
            format!("{v} is not a limit"),
            "a positive number, or -1 for no limit".into(),
        ));
    }
    Ok(())
}

/// A count within a kernel's range.
pub fn within(v: u64, lo: u64, hi: u64, unit: &str) -> Result<(), (String, String)> {
    if v < lo || v > hi {
        return Err((
            format!("{v} is out of range"),
            format!("the kernel accepts {lo} to {hi}{unit}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("a\0b\x1b[31m"), "a\\0b\\u{1b}[31m");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 58);
    }

    #[test]
    fn durations_are_positive_and_capped() {
        assert!(duration("10s").is_ok());
        assert!(duration("0s").unwrap_err().0.contains("zero"));
        assert!(duration("2h").unwrap_err().0.contains("limit"));
        assert!(duration("soon").is_err());
    }

    #[test]
    fn devices_are_known_bare_names() {
        assert!(device("kvm").is_ok());
        assert!(device("../../etc/passwd")
            .unwrap_err()
            .0
            .contains("not a path"));
        assert!(device("/dev/sda").is_err());
        assert!(device("kvn").unwrap_err().1.contains("did you mean `kvm`"));
    }

    #[test]
    fn content_files_stay_in_the_simulated_paths() {
        assert!(content_file("/sys/fs/cgroup/memory/memory.limit_in_bytes").is_ok());
        assert!(content_file("/proc/self/mountinfo").is_ok());
        assert!(content_file("/etc/passwd").is_err());
        assert!(content_file("/sys/fs/cgroup/../../../etc/passwd").is_err());
    }
}

/// Whether `path` is absolute and has no `.`, `..` or empty components.
pub fn is_normal_absolute(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.split('/').any(|c| c == "." || c == "..")
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn only_normal_absolute_paths_pass() {
        assert!(is_normal_absolute("/var/lib/foo"));
        for bad in [
            "var/lib",
            "/var/../etc",
            "/var/./lib",
            "/var//lib",
            "",
            "/a/..",
        ] {
            assert!(!is_normal_absolute(bad), "{bad}");
        }
    }
}
