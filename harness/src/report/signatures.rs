//! Failing cells grouped by signature, so a 500-cell run reads as a handful of distinct
//! bugs: `3 cells: SIGSEGV in resourcecontrol.NewSandboxResourceController`.

use super::Report;
use crate::outcome::Class;

/// One distinct failure: its signature and the cases that showed it (in run order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub signature: String,
    pub cases: Vec<String>,
}

/// Cells whose target failed (any class but `ok`; harness errors are the harness's, not the
/// target's, and are left out), grouped by signature: most cells first, then first seen.
pub fn failing<'a>(reports: impl IntoIterator<Item = &'a Report>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for r in reports {
        if matches!(r.outcome.class(), Class::Ok | Class::HarnessError) {
            continue;
        }
        let sig = r.signature();
        match groups.iter_mut().find(|g| g.signature == sig) {
            Some(g) => g.cases.push(r.case.clone()),
            None => groups.push(Group {
                signature: sig,
                cases: vec![r.case.clone()],
            }),
        }
    }
    // Stable: equal counts keep first-seen order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.cases.len()));
    groups
}

/// The block printed after a run: a header and one line per distinct failure.
pub fn render(groups: &[Group]) -> Option<String> {
    if groups.is_empty() {
        return None;
    }
    let cells: usize = groups.iter().map(|g| g.cases.len()).sum();
    let mut s = format!(
        "{cells} failing cell(s), {} distinct signature(s):\n",
        groups.len()
    );
    for g in groups {
        let n = g.cases.len();
        let unit = if n == 1 { "cell " } else { "cells" };
        s.push_str(&format!("  {n:>3} {unit}: {}\n", g.signature));
    }
    Some(s.trim_end().to_owned())
}
