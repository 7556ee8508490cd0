//! Delta debugging of a disagreement: the shortest sequence (ddmin over the ops before the
//! disagreeing one, which stays last) on which model and kernel still give the same two
//! different results. Batched: [`Ddmin::candidates`] yields every complement of the current
//! partition, the caller runs all of them (all cases together, in one boot), and
//! [`Ddmin::advance`] takes the verdicts.

use super::Op;

#[derive(Debug, Clone)]
pub struct Ddmin {
    /// The ops before the target, as currently reduced.
    pub prefix: Vec<Op>,
    pub target: Op,
    n: usize,
    pub done: bool,
}

fn chunks(len: usize, n: usize) -> Vec<(usize, usize)> {
    let n = n.min(len).max(1);
    (0..n).map(|i| (i * len / n, (i + 1) * len / n)).collect()
}

impl Ddmin {
    /// `ops` ends with the disagreeing op.
    pub fn new(mut ops: Vec<Op>) -> Ddmin {
        let target = ops.pop().expect("a sequence with its disagreeing op");
        let done = ops.is_empty();
        Ddmin {
            prefix: ops,
            target,
            n: 2,
            done,
        }
    }

    /// The current sequence.
    pub fn ops(&self) -> Vec<Op> {
        let mut v = self.prefix.clone();
        v.push(self.target.clone());
        v
    }

    /// This round's candidates (empty when done).
    pub fn candidates(&self) -> Vec<Vec<Op>> {
        if self.done {
            return Vec::new();
        }
        chunks(self.prefix.len(), self.n)
            .into_iter()
            .map(|(a, b)| {
                let mut v: Vec<Op> = self.prefix[..a].to_vec();
                v.extend_from_slice(&self.prefix[b..]);
                v.push(self.target.clone());
                v
            })
            .collect()
    }

    /// `still[i]`: candidate `i` still shows the disagreement.
    pub fn advance(&mut self, still: &[bool]) {
        if self.done {
            return;
        }
        let parts = chunks(self.prefix.len(), self.n);
        if let Some(i) = still.iter().position(|s| *s) {
            let (a, b) = parts[i];
            self.prefix.drain(a..b);
            self.n = (self.n.saturating_sub(1)).max(2);
        } else if self.n >= self.prefix.len() {
            self.done = true;
        } else {
            self.n = (self.n * 2).min(self.prefix.len());
        }
        if self.prefix.is_empty() {
            self.done = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: usize) -> Op {
        Op::new("read", format!("f{i}"), None)
    }

    /// A disagreement that needs ops 3 and 7 before the target reduces to exactly those.
    #[test]
    fn ddmin_keeps_only_the_ops_the_disagreement_needs() {
        let ops: Vec<Op> = (0..20).map(op).collect();
        let mut d = Ddmin::new(ops);
        let needs = |c: &[Op]| c.contains(&op(3)) && c.contains(&op(7));
        let mut rounds = 0;
        while !d.done {
            let verdicts: Vec<bool> = d.candidates().iter().map(|c| needs(c)).collect();
            d.advance(&verdicts);
            rounds += 1;
            assert!(rounds < 50);
        }
        assert_eq!(d.ops(), vec![op(3), op(7), op(19)]);
    }
}
