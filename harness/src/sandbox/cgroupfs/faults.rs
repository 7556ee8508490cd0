//! The cgroupfs model's side of the fault engine: the faults routed to the model
//! (`crate::fault::route`), matched on paths relative to /sys/fs/cgroup, with the hits
//! recorded for the report.

use std::time::Duration;

use crate::fault::engine::Rules;
use crate::fault::{Effect, Fault, FaultHit, Layer, Op};

pub(crate) struct FaultSet {
    rules: Rules,
    /// Delays fired by the current call, for the server to hold its answer.
    held: Duration,
    hits: Vec<FaultHit>,
}

impl FaultSet {
    pub fn new(faults: Vec<Fault>) -> FaultSet {
        FaultSet {
            // The scenario parser checked the globs.
            rules: Rules::lenient(&faults, Some("/sys/fs/cgroup")),
            held: Duration::ZERO,
            hits: Vec::new(),
        }
    }

    /// The delay the last call's faults asked for (then zero again).
    pub fn take_delay(&mut self) -> Duration {
        std::mem::take(&mut self.held)
    }

    /// Every fault that fired, in order.
    pub fn hits(&self) -> &[FaultHit] {
        &self.hits
    }

    /// The effect of the first fault that fires for this call. Delays add up in
    /// [`FaultSet::take_delay`] (nothing sleeps here, under the model's lock) and the
    /// search goes on, so a delay and an errno can combine.
    pub fn fire(&mut self, op: Op, path: &str) -> Option<Effect> {
        let mut from = 0;
        while let Some(fired) = self.rules.next_hit(op, &[path], from) {
            let f = fired.fault;
            self.hits.push(FaultHit {
                fault: f.id,
                layer: Layer::Model,
                op,
                syscall: op.name(),
                // Absolute, as the scenario and the syscall layer name paths.
                path: format!("/sys/fs/cgroup/{path}")
                    .trim_end_matches('/')
                    .to_owned(),
                effect: f.effect.clone(),
                call: fired.call,
                pid: 0,
            });
            if let Some(d) = f.delay {
                self.held += d;
            }
            match &f.effect {
                Some(e) => return Some(e.clone()),
                None => from = fired.index + 1,
            }
        }
        None
    }
}
