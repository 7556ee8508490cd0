//! The cgroupfs model's fault engine: compiled globs and counters over the scenario's
//! [`ModelFault`]s (the vocabulary lives in `crate::fault`).

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

pub use crate::fault::{FaultAction, FaultOp, FaultWhen, ModelFault};

pub(crate) struct FaultSet {
    rules: Vec<(ModelFault, Option<GlobMatcher>, u64)>,
    /// Delays fired by the current call, for the server to hold its answer.
    held: Duration,
}

impl FaultSet {
    pub fn new(faults: Vec<ModelFault>) -> FaultSet {
        FaultSet {
            rules: faults
                .into_iter()
                .map(|f| {
                    let g = f
                        .glob
                        .trim_start_matches("/sys/fs/cgroup")
                        .trim_start_matches('/');
                    let m = GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .ok()
                        .map(|g| g.compile_matcher());
                    (f, m, 0)
                })
                .collect(),
            held: Duration::ZERO,
        }
    }

    /// The delay the last call's faults asked for (then zero again).
    pub fn take_delay(&mut self) -> Duration {
        std::mem::take(&mut self.held)
    }

    /// The first fault that fires for this call. Delays add up in [`FaultSet::take_delay`]
    /// (nothing sleeps here, under the model's lock) and the search goes on, so a delay
    /// and an errno can combine.
    pub fn fire(&mut self, op: FaultOp, path: &str) -> Option<FaultAction> {
        for (f, m, n) in &mut self.rules {
            if f.op != op || !m.as_ref().is_some_and(|m| m.is_match(path)) {
                continue;
            }
            *n += 1;
            let hit = match f.when {
                FaultWhen::Always => true,
                FaultWhen::Nth(k) => *n == k,
                FaultWhen::After(k) => *n > k,
            };
            if !hit {
                continue;
            }
            match &f.action {
                FaultAction::Delay(d) => self.held += *d,
                a => return Some(a.clone()),
            }
        }
        None
    }
}
