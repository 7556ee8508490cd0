//! Normalisation: unstable values replaced by named placeholders, as cargo's test support
//! does (`[ROOT]`, `[HASH]`), so an outcome is the same on every run and every machine.
//!
//! | placeholder | replaces |
//! |---|---|
//! | `[TMP]` | the session's temp directory |
//! | `[ROOT]` | the repository root |
//! | `[REGISTRY]` | `~/.cargo/registry/src/<index>` |
//! | `[RUSTLIB]` | the toolchain's std sources (`/rustc/<hash>/library`) |
//! | `[ADDR]` | hex addresses (`0x7f…`, ≥ 4 hex digits), `+0x…` offsets |
//! | `[GOID]` | goroutine numbers |
//! | `[PID]` | `pid N`, `pid=N`, `PID N`, a syslog tag's `name[N]:` |
//! | `[DURATION]` | `1.5s`, `230ms`, `12µs` ... |
//! | `[TIME]` | wall-clock times: RFC 3339 (`2026-12-02T11:54:37.97Z`, Go's logrus) and syslog's `Dec  2 11:54:37` |
//! | `[BUILD]` | the build machine's directory in a Go trace (see [`super::parse::go_location`]) |

use std::path::Path;

use regex::Regex;

pub struct Normalizer {
    paths: Vec<(String, &'static str)>,
    rules: Vec<(Regex, &'static str)>,
}

impl Normalizer {
    /// `tmp`: the session directory; `root`: the repository root.
    pub fn new(tmp: Option<&Path>, root: Option<&Path>) -> Normalizer {
        let mut paths = Vec::new();
        if let Some(t) = tmp {
            paths.push((t.display().to_string(), "[TMP]"));
        }
        if let Some(r) = root {
            paths.push((r.display().to_string(), "[ROOT]"));
        }
        let rules = [
            (
                r"(?:/[^\s:'\x22]*)?/\.cargo/registry/src/[^/\s]+",
                "[REGISTRY]",
            ),
            (r"/rustc/[0-9a-f]{40}/library", "[RUSTLIB]"),
            (r"\+0x[0-9a-fA-F]+", "+[ADDR]"),
            (r"0x[0-9a-fA-F]{4,}", "[ADDR]"),
            (
                r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
                "[TIME]",
            ),
            (
                r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}\b",
                "[TIME]",
            ),
            (r"goroutine \d+", "goroutine [GOID]"),
            (r"\bpid[ =:]\d+", "pid [PID]"),
            // Go programs start threads at their own pace, and threads take pids.
            (r"\bPID \d+", "PID [PID]"),
            // A syslog tag: `kata[13]:`.
            (r"\b([A-Za-z][\w.-]*)\[\d+\]:", "$1[PID]:"),
            (r"\b\d+(?:\.\d+)?(?:ns|µs|us|ms|s)\b", "[DURATION]"),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).expect("static regex"), to))
        .collect();
        Normalizer { paths, rules }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut s = text.to_owned();
        for (p, to) in &self.paths {
            if !p.is_empty() {
                s = s.replace(p.as_str(), to);
            }
        }
        for (re, to) in &self.rules {
            s = re.replace_all(&s, *to).into_owned();
        }
        s
    }

    /// Frames, normalised; Rust symbol hashes (`::h0123abcd…`) removed; a run of the
    /// same frame (recursion) collapsed into one, marked `(×N)`.
    pub fn frames(&self, frames: &[String]) -> Vec<String> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for f in frames {
            let f = match f.rfind("::h") {
                Some(i)
                    if f[i + 3..].len() == 16
                        && f[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    &f[..i]
                }
                _ => f.as_str(),
            };
            let f = self.apply(f);
            match out.last_mut() {
                Some((last, n)) if *last == f => *n += 1,
                _ => out.push((f, 1)),
            }
        }
        let frames: Vec<String> = out
            .into_iter()
            .map(|(f, n)| if n > 1 { format!("{f} (×{n})") } else { f })
            .collect();
        match recursion_cycle(&frames) {
            Some(cycle) => {
                let mut v = cycle;
                v.push(format!(
                    "… (recursion: the {} frames above repeat)",
                    v.len()
                ));
                v
            }
            None => frames.into_iter().take(MAX_SHOWN).collect(),
        }
    }
}

/// Frames shown for a non-recursive stack.
const MAX_SHOWN: usize = 16;

/// A recursion (as in a stack overflow through several functions) as one period of its
/// cycle, rotated to start at its smallest frame, so it reads the same whichever frame the
/// stack happened to overflow in. `None` when the outer frames do not repeat.
fn recursion_cycle(frames: &[String]) -> Option<Vec<String>> {
    let n = frames.len();
    for k in 2..=n / 3 {
        // The outermost 2k frames (where the cycle is complete) must repeat with period k.
        let tail = &frames[n - 2 * k..];
        if (0..k).all(|i| tail[i] == tail[i + k]) {
            let cycle = &frames[n - k..];
            let start = (0..k).min_by_key(|&i| &cycle[i]).unwrap_or(0);
            return Some(
                cycle[start..]
                    .iter()
                    .chain(&cycle[..start])
                    .cloned()
                    .collect(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/tmp/cgrepro-abc/cases/3/upper", "[TMP]/cases/3/upper")]
    #[case(
        "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cgroups-rs-0.2.9/src/lib.rs:300:9",
        "[REGISTRY]/cgroups-rs-0.2.9/src/lib.rs:300:9"
    )]
    #[case(
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x55d1c0a3b2c1]",
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=[ADDR]]"
    )]
    #[case("goroutine 17 [running]:", "goroutine [GOID] [running]:")]
    #[case("\t/src/x.go:12 +0x1d", "\t/src/x.go:12 +[ADDR]")]
    #[case("took 12.5ms for pid 4242", "took [DURATION] for pid [PID]")]
    fn placeholders(#[case] input: &str, #[case] expected: &str) {
        let n = Normalizer::new(
            Some(Path::new("/tmp/cgrepro-abc")),
            Some(Path::new("/work/repo")),
        );
        assert_eq!(n.apply(input), expected);
    }

    #[test]
    fn frame_hashes_are_stripped() {
        let n = Normalizer::new(None, None);
        assert_eq!(
            n.frames(&["cgroups_rs::cgroup::Cgroup::create::h0123456789abcdef".into()]),
            vec!["cgroups_rs::cgroup::Cgroup::create".to_string()]
        );
    }

    #[test]
    fn a_recursion_cycle_reads_the_same_wherever_the_stack_overflowed() {
        let n = Normalizer::new(None, None);
        let cycle = ["a::exists", "b::open", "c::from", "d::path"];
        let make = |skip: usize| -> Vec<String> {
            let mut v: Vec<String> = cycle
                .iter()
                .cycle()
                .skip(skip)
                .take(14)
                .map(|s| s.to_string())
                .collect();
            v.push("main".into());
            v
        };
        // Main is outermost: no cycle at the very end, so strip it like the driver does not.
        let a = n.frames(&make(0)[..14]);
        let b = n.frames(&make(1)[..14]);
        assert_eq!(a, b);
        assert_eq!(a[0], "a::exists");
        assert!(a.last().unwrap().contains("recursion"));
    }

    #[test]
    fn recursion_is_collapsed() {
        let n = Normalizer::new(None, None);
        let frames: Vec<String> = ["recurse", "recurse", "recurse", "main"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            n.frames(&frames),
            vec!["recurse (×3)".to_string(), "main".to_string()]
        );
    }
}
