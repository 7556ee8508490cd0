//! `cgrepro bisect`: on an ordered matrix axis (Kata releases, library versions, kernel
//! releases), the first value whose outcome differs from the first value's, found in
//! log2 runs: run the first and the last value; if they differ, halve the interval
//! between the last value known to behave like the first and the first known to differ.
//!
//! The search is pure ([`search`], over a closure that runs one value) so it is tested
//! without running anything; the CLI (`cli/bisect.rs`) feeds it real cases.

use crate::scenario::{Case, Scenario};

/// What identifies an outcome for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// The signature without its source location: `SIGSEGV in
    /// resourcecontrol.NewSandboxResourceController` at cgroups.go:203 in 3.13.0 and :204 in
    /// 3.20.0 is the same bug moved by a line.
    Frame,
    /// The whole one-line signature, source location included.
    Signature,
    /// Only the class (`crash`, `panic`, `error`, `ok`, ...): a boundary where a bug stops
    /// crashing, however its message changed.
    Class,
}

/// Why a bisection could not run.
#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error("the scenario has no axis `{axis}` (axes: {known}); add it to [matrix] with its values in order")]
    NoAxis { axis: String, known: String },
    #[error("axis `{0}` has fewer than two values: nothing to bisect")]
    TooFew(String),
    #[error("--cell `{0}`: expected AXIS=VALUE")]
    BadCell(String),
    #[error("no cell has {0}")]
    NoCell(String),
}

/// One value of the axis that was run, and what came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub index: usize,
    pub value: String,
    pub key: String,
}

/// The result: every probe in run order, and the boundary if the ends differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bisection {
    pub probes: Vec<Probe>,
    /// (last value like the first, first value that differs).
    pub boundary: Option<(Probe, Probe)>,
}

/// Bisect `values` with `run(index) -> key`. Assumes one change along the axis (as `git
/// bisect` does); with several, it finds one of them. Runs at most 2 + ceil(log2(n-1)).
pub fn search(values: &[String], mut run: impl FnMut(usize) -> String) -> Bisection {
    let mut probes = Vec::new();
    let mut probe = |i: usize, probes: &mut Vec<Probe>| -> Probe {
        let p = Probe {
            index: i,
            value: values[i].clone(),
            key: run(i),
        };
        probes.push(p.clone());
        p
    };
    let n = values.len();
    let first = probe(0, &mut probes);
    if n < 2 {
        return Bisection {
            probes,
            boundary: None,
        };
    }
    let last = probe(n - 1, &mut probes);
    if last.key == first.key {
        return Bisection {
            probes,
            boundary: None,
        };
    }
    let (mut lo, mut hi) = (first, last);
    while hi.index - lo.index > 1 {
        let mid = probe((lo.index + hi.index) / 2, &mut probes);
        if mid.key == lo.key {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Bisection {
        probes,
        boundary: Some((lo, hi)),
    }
}

/// The cases of `scenario` along `axis`, in axis order, the other axes fixed by `cells`
/// (AXIS=VALUE) or else at their first value. Values are in file order: the scenario's
/// author orders them (oldest first).
pub fn cases_along<'a>(
    scenario: &'a Scenario,
    axis: &str,
    cells: &[String],
) -> Result<Vec<(String, &'a Case)>, BisectError> {
    let Some((_, values)) = scenario.axes.iter().find(|(a, _)| a == axis) else {
        return Err(BisectError::NoAxis {
            axis: axis.to_owned(),
            known: scenario
                .axes
                .iter()
                .map(|(a, _)| a.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if values.len() < 2 {
        return Err(BisectError::TooFew(axis.to_owned()));
    }
    let mut fixed: Vec<(String, String)> = Vec::new();
    for c in cells {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| BisectError::BadCell(c.clone()))?;
        fixed.push((k.to_owned(), v.to_owned()));
    }
    for (a, vs) in &scenario.axes {
        if a != axis && !fixed.iter().any(|(k, _)| k == a) {
            fixed.push((a.clone(), vs[0].clone()));
        }
    }
    let mut out = Vec::new();
    for v in values {
        let case = scenario
            .cases
            .iter()
            .find(|c| {
                c.cell.iter().any(|(a, x)| a == axis && x == v)
                    && fixed
                        .iter()
                        .all(|(k, fv)| c.cell.iter().any(|(a, x)| a == k && x == fv))
            })
            .ok_or_else(|| {
                let mut d: Vec<String> = fixed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                d.push(format!("{axis}={v}"));
                BisectError::NoCell(d.join(", "))
            })?;
        out.push((v.clone(), case));
    }
    Ok(out)
}

/// A signature without a trailing source location ` (path/file.go:203)` (or `:300:33`).
pub fn without_location(signature: &str) -> String {
    static LOC: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = LOC
        .get_or_init(|| regex::Regex::new(r" \([^()]*:\d+(?::\d+)?\)").expect("a valid pattern"));
    re.replace_all(signature, "").into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_are_not_part_of_a_frame_key() {
        assert_eq!(
            super::without_location(
                "SIGSEGV in resourcecontrol.NewSandboxResourceController (src/runtime/pkg/resourcecontrol/cgroups.go:204)"
            ),
            "SIGSEGV in resourcecontrol.NewSandboxResourceController"
        );
        assert_eq!(
            super::without_location("error in apply: x"),
            "error in apply: x"
        );
    }

    use super::*;

    fn vals(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("v{i}")).collect()
    }

    #[test]
    fn finds_the_first_value_that_differs_in_log2_runs() {
        for n in 2..40 {
            for change in 1..n {
                let mut runs = 0;
                let b = search(&vals(n), |i| {
                    runs += 1;
                    if i < change { "a" } else { "b" }.to_owned()
                });
                let (lo, hi) = b.boundary.expect("the ends differ");
                assert_eq!((lo.index, hi.index), (change - 1, change), "n={n}");
                assert_eq!((lo.key.as_str(), hi.key.as_str()), ("a", "b"));
                let bound = 2 + (usize::BITS - (n - 1).saturating_sub(1).leading_zeros()) as usize;
                assert!(
                    runs <= bound,
                    "n={n} change={change}: {runs} runs > {bound}"
                );
            }
        }
    }

    #[test]
    fn no_boundary_when_the_ends_agree() {
        let b = search(&vals(5), |_| "same".into());
        assert!(b.boundary.is_none());
        assert_eq!(b.probes.len(), 2, "only the two ends are run");
    }
}
