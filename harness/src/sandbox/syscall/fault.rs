//! The syscall layer's fault engine: compiled globs and per-fault counters over the
//! scenario's [`SyscallFault`]s (the vocabulary lives in `crate::fault`).

use globset::{GlobBuilder, GlobMatcher};

pub use crate::fault::{errno_name, parse_errno, FaultHit, Op, SyscallFault, When};

use super::SyscallError;

#[derive(Debug)]
pub(crate) struct CompiledFault {
    pub fault: SyscallFault,
    pub glob: GlobMatcher,
}

impl CompiledFault {
    pub fn new(f: &SyscallFault) -> Result<CompiledFault, SyscallError> {
        let glob = GlobBuilder::new(&f.path)
            .literal_separator(true)
            .build()
            .map_err(|e| SyscallError::BadGlob {
                pattern: f.path.clone(),
                why: e.kind().to_string(),
            })?
            .compile_matcher();
        match f.when {
            When::Nth(0) => return Err(SyscallError::BadFault("nth call counts from 1".into())),
            When::Probability { p, .. } if !(0.0..=1.0).contains(&p) => {
                return Err(SyscallError::BadFault(format!(
                    "probability {p} is not between 0 and 1"
                )))
            }
            _ => {}
        }
        if f.errno.is_none() && f.delay.is_none() {
            return Err(SyscallError::BadFault(format!(
                "fault on {} `{}` has neither errno nor delay",
                f.op.name(),
                f.path
            )));
        }
        Ok(CompiledFault {
            fault: f.clone(),
            glob,
        })
    }
}

/// Per-fault counters and random streams, owned by the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct FaultState {
    pub count: u64,
    rng: SplitMix64,
}

impl FaultState {
    pub fn new(f: &SyscallFault) -> FaultState {
        let seed = match f.when {
            When::Probability { seed, .. } => seed,
            _ => 0,
        };
        FaultState {
            count: 0,
            rng: SplitMix64(seed),
        }
    }

    /// Count one matching call and say whether the fault fires on it.
    pub fn fires(&mut self, when: When) -> bool {
        self.count += 1;
        match when {
            When::Always => true,
            When::Nth(n) => self.count == n,
            When::After(n) => self.count > n,
            When::Probability { p, .. } => self.rng.next_f64() < p,
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, deterministic, good enough for fault dice.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_counts() {
        let f = |when| SyscallFault {
            op: Op::Write,
            path: "/x".into(),
            errno: Some(libc::EIO),
            when,
            delay: None,
        };
        let run = |when: When| {
            let mut s = FaultState::new(&f(when));
            (0..6).map(|_| s.fires(when)).collect::<Vec<_>>()
        };
        assert_eq!(run(When::Nth(3)), [false, false, true, false, false, false]);
        assert_eq!(
            run(When::After(4)),
            [false, false, false, false, true, true]
        );
        assert_eq!(run(When::Always), [true; 6]);
        let p = When::Probability { p: 0.5, seed: 42 };
        assert_eq!(run(p), run(p), "same seed, same hits");
        let p2 = When::Probability { p: 0.5, seed: 43 };
        let many = |when: When| {
            let mut s = FaultState::new(&f(when));
            (0..64).map(|_| s.fires(when)).collect::<Vec<_>>()
        };
        assert_ne!(many(p), many(p2));
        let hits = many(p).iter().filter(|b| **b).count();
        assert!((16..48).contains(&hits), "{hits}");
    }

    #[test]
    fn globs() {
        let c = CompiledFault::new(&SyscallFault {
            op: Op::Write,
            path: "/sys/fs/cgroup/**/memory.max".into(),
            errno: Some(libc::EINVAL),
            when: When::Always,
            delay: None,
        })
        .unwrap();
        assert!(c.glob.is_match("/sys/fs/cgroup/a/b/memory.max"));
        assert!(c.glob.is_match("/sys/fs/cgroup/memory.max"));
        assert!(!c.glob.is_match("/sys/fs/cgroup/a/memory.high"));
        let c = CompiledFault::new(&SyscallFault {
            op: Op::Write,
            path: "/tmp/*.txt".into(),
            errno: Some(libc::EINVAL),
            when: When::Always,
            delay: None,
        })
        .unwrap();
        assert!(!c.glob.is_match("/tmp/a/b.txt"));
        assert!(c.glob.is_match("/tmp/b.txt"));
    }
}
