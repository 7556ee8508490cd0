//! The one fault engine: which faults fire on a call, counted per fault.
//!
//! Both layers that apply faults use it — the syscall layer's supervisor on every trapped
//! call, the cgroupfs model on every operation — so a fault means the same thing wherever
//! it is applied: its glob matches the same paths (`*` does not cross `/`, `**` does), its
//! calls are counted the same way (per fault, from 1, over the calls whose op and path
//! match) and its `p=` dice come from the same seeded stream.

use globset::{GlobBuilder, GlobMatcher};

use super::{Fault, FaultError, Op, When};

/// Compiled faults with their counters.
#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    /// `None`: a glob that does not compile (never matches; see [`Rules::lenient`]).
    glob: Option<GlobMatcher>,
    count: u64,
    rng: SplitMix64,
}

/// A fault that fires on a call.
#[derive(Debug, Clone, Copy)]
pub struct Fired<'a, 'p> {
    /// Its index in the rules (search on from the next one).
    pub index: usize,
    pub fault: &'a Fault,
    /// The path it matched.
    pub path: &'p str,
    /// Which of its matching calls this is (from 1).
    pub call: u64,
}

fn compile(pattern: &str, root: Option<&str>) -> Result<GlobMatcher, FaultError> {
    let g = match root {
        // Paths relative to `root`: so are the globs (an absolute one is accepted too).
        Some(r) => pattern.trim_start_matches(r).trim_start_matches('/'),
        None => pattern,
    };
    GlobBuilder::new(g)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| FaultError::BadGlob {
            pattern: pattern.to_owned(),
            why: e.kind().to_string(),
        })
}

impl Rules {
    /// Faults whose paths are absolute (`root: None`) or relative to `root` (the cgroupfs
    /// model's paths are relative to /sys/fs/cgroup). A bad glob, a `when` that cannot be
    /// met, or a fault that does nothing is an error.
    pub fn new(faults: &[Fault], root: Option<&str>) -> Result<Rules, FaultError> {
        let mut rules = Vec::with_capacity(faults.len());
        for f in faults {
            f.when.check()?;
            if f.effect.is_none() && f.delay.is_none() {
                return Err(FaultError::Bad(format!(
                    "fault on {} `{}` has neither errno nor delay",
                    f.op.name(),
                    f.path
                )));
            }
            rules.push(Rule::new(f, Some(compile(&f.path, root)?)));
        }
        Ok(Rules { rules })
    }

    /// As [`Rules::new`], but a fault whose glob does not compile never fires (for faults
    /// the scenario parser has already checked).
    pub fn lenient(faults: &[Fault], root: Option<&str>) -> Rules {
        Rules {
            rules: faults
                .iter()
                .map(|f| Rule::new(f, compile(&f.path, root).ok()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.rules.iter().map(|r| &r.fault)
    }

    /// The first fault, from index `from` on, that fires on a call of `op` on one of
    /// `paths`. Every fault passed over whose op and a path match counts the call.
    pub fn next_hit<'a, 'p, S: AsRef<str>>(
        &'a mut self,
        op: Op,
        paths: &'p [S],
        from: usize,
    ) -> Option<Fired<'a, 'p>> {
        let mut found = None;
        for (index, r) in self.rules.iter_mut().enumerate().skip(from) {
            if r.fault.op != op {
                continue;
            }
            let Some(glob) = &r.glob else { continue };
            let Some(path) = paths.iter().map(AsRef::as_ref).find(|p| glob.is_match(p)) else {
                continue;
            };
            if r.fires() {
                found = Some((index, path, r.count));
                break;
            }
        }
        let (index, path, call) = found?;
        Some(Fired {
            index,
            fault: &self.rules[index].fault,
            path,
            call,
        })
    }
}

impl Rule {
    fn new(f: &Fault, glob: Option<GlobMatcher>) -> Rule {
        let seed = match f.when {
            When::Probability { seed, .. } => seed,
            _ => 0,
        };
        Rule {
            fault: f.clone(),
            glob,
            count: 0,
            rng: SplitMix64(seed),
        }
    }

    /// Count one matching call and say whether the fault fires on it.
    fn fires(&mut self) -> bool {
        self.count += 1;
        match self.fault.when {
            When::Always => true,
            When::Nth(n) => self.count == n,
            When::After(n) => self.count > n,
            When::Probability { p, .. } => self.rng.next_f64() < p,
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, deterministic, good enough for fault dice.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
