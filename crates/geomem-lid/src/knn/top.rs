//! What the screens offer their entries to ([`Sink`]), and a query's candidate list during
//! the first screen ([`Top`]): the smallest screened values seen so far and a floor below
//! which nothing dropped or rejected lies.

/// What a screen offers its entries to, one per query: a list of candidates ([`Top`]), or a
/// walk that measures them as they come ([`super::refine::Stream`]). The screens offer every
/// entry whose key may lie below the floor (their single-precision test passes a little
/// more than that), and a sink takes those whose key does.
pub(super) trait Sink {
    /// The key below which an entry is taken.
    fn floor(&self) -> f64;
    /// Offers an entry: key `a`, reference point `j`; taken only if `a` lies below the floor.
    fn push(&mut self, a: f64, j: usize);
    /// Whether nothing was offered yet (then [`Sink::fill`] takes a whole tile's column).
    fn fresh(&self) -> bool {
        false
    }
    /// Offers every entry of `all` at once (by default one at a time).
    fn fill(&mut self, all: impl Iterator<Item = (f64, usize)>, _scratch: &mut Vec<(f64, usize)>) {
        all.for_each(|(a, j)| self.push(a, j));
    }
}

impl Sink for Top {
    #[inline]
    fn floor(&self) -> f64 {
        self.floor
    }
    #[inline]
    fn push(&mut self, a: f64, j: usize) {
        Top::push(self, a, j);
    }
    fn fresh(&self) -> bool {
        Top::fresh(self)
    }
    fn fill(&mut self, all: impl Iterator<Item = (f64, usize)>, scratch: &mut Vec<(f64, usize)>) {
        Top::fill(self, all, scratch);
    }
}

/// The `keep` smallest approximate squared distances seen so far, with a bound below which
/// no dropped or rejected candidate lies. Candidates below the floor are appended; when
/// `keep + keep / 2 + 4` are held, the `keep` smallest are selected and the floor falls to
/// the smallest dropped one.
pub(super) struct Top {
    pub(super) keep: usize,
    cap: usize,
    pub(super) items: Vec<(f64, usize)>,
    pub(super) floor: f64,
}

impl Top {
    pub(super) fn new(keep: usize) -> Self {
        let cap = keep + keep / 2 + 4;
        Self { keep, cap, items: Vec::with_capacity(cap), floor: f64::INFINITY }
    }

    #[inline]
    pub(super) fn push(&mut self, a: f64, j: usize) {
        if a < self.floor {
            self.items.push((a, j));
            if self.items.len() == self.cap {
                self.shrink();
            }
        }
    }

    /// Whether nothing was offered yet.
    pub(super) fn fresh(&self) -> bool {
        self.items.is_empty() && self.floor == f64::INFINITY
    }

    /// Offers every candidate of `all` at once (a fresh top): one selection instead of a
    /// push and, every `cap - keep` pushes, a selection each. `scratch` holds them meanwhile.
    pub(super) fn fill(&mut self, all: impl Iterator<Item = (f64, usize)>, scratch: &mut Vec<(f64, usize)>) {
        scratch.clear();
        scratch.extend(all);
        if scratch.len() > self.keep {
            scratch.select_nth_unstable_by(self.keep, |a, b| a.0.total_cmp(&b.0));
            self.floor = scratch[self.keep].0;
            scratch.truncate(self.keep);
        }
        self.items.extend_from_slice(scratch);
    }

    fn shrink(&mut self) {
        self.items.select_nth_unstable_by(self.keep, |a, b| a.0.total_cmp(&b.0));
        // Everything from position `keep` on is >= the new floor and is dropped.
        self.floor = self.items[self.keep].0;
        self.items.truncate(self.keep);
    }

    /// The candidates sorted ascending, and the bound below which nothing was left out.
    pub(super) fn finish(mut self) -> (Vec<(f64, usize)>, f64) {
        self.items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if self.items.len() > self.keep {
            self.floor = self.floor.min(self.items[self.keep].0);
            self.items.truncate(self.keep);
        }
        (self.items, self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A top keeps the `keep` smallest, and its floor bounds everything left out.
    #[test]
    fn top_keeps_the_smallest_and_bounds_the_rest() {
        let mut rng = StdRng::seed_from_u64(9);
        for keep in [1, 2, 5, 26] {
            let values: Vec<f64> = (0..300).map(|_| rng.random_range(0.0..1.0)).collect();
            let mut sorted: Vec<(f64, usize)> = values.iter().copied().zip(0..).collect();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            // One at a time; the first `filled` at once and the rest one at a time.
            for filled in [0, 1, 40, 300] {
                let mut top = Top::new(keep);
                if filled > 0 {
                    assert!(top.fresh());
                    top.fill(values[..filled].iter().copied().zip(0..), &mut Vec::new());
                    assert!(!top.fresh());
                }
                values.iter().enumerate().skip(filled).for_each(|(j, &v)| top.push(v, j));
                let (kept, floor) = top.finish();
                assert_eq!(kept, sorted[..keep], "keep {keep}, filled {filled}");
                assert!(sorted[keep..].iter().all(|&(v, _)| v >= floor));
            }
            let mut few = Top::new(keep);
            few.push(0.5, 0);
            assert_eq!(few.finish().1, f64::INFINITY, "nothing left out: no bound");
        }
    }
}
