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
    /// Offers every entry of a tile's column at once: keys `keys`, entry `o` of reference
    /// point `first + o`, all but entry `skip` (by default one at a time).
    fn fill(&mut self, keys: &[f64], first: usize, skip: Option<usize>, _scratch: &mut Vec<f64>) {
        for (o, &a) in keys.iter().enumerate() {
            if skip != Some(o) {
                self.push(a, first + o);
            }
        }
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
    fn fill(&mut self, keys: &[f64], first: usize, skip: Option<usize>, scratch: &mut Vec<f64>) {
        Top::fill(self, keys, first, skip, scratch);
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

    /// Offers the entries of [`Sink::fill`] at once (a fresh top): one selection of the keys
    /// alone instead of a push and, every `cap - keep` pushes, a selection each. The top
    /// keeps the entries below the `keep + 1`-th smallest key (its floor) and, up to `keep`,
    /// entries at it in index order. `scratch` holds the keys meanwhile.
    pub(super) fn fill(&mut self, keys: &[f64], first: usize, skip: Option<usize>, scratch: &mut Vec<f64>) {
        scratch.clear();
        scratch.extend_from_slice(keys);
        if let Some(s) = skip.filter(|&s| s < keys.len()) {
            scratch.swap_remove(s);
        }
        if scratch.len() > self.keep {
            self.floor = *scratch.select_nth_unstable_by(self.keep, f64::total_cmp).1;
        }
        let floor = self.floor;
        for (o, &a) in keys.iter().enumerate() {
            if a < floor && skip != Some(o) {
                self.items.push((a, first + o));
            }
        }
        for (o, &a) in keys.iter().enumerate() {
            if self.items.len() >= self.keep {
                break;
            }
            if a.total_cmp(&floor).is_eq() && skip != Some(o) {
                self.items.push((a, first + o));
            }
        }
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
                    top.fill(&values[..filled], 0, None, &mut Vec::new());
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

    /// A fill of a column with many tied keys and one entry left out (a diagonal tile's
    /// query itself) keeps `keep` entries, none of them the one left out, all at most its
    /// floor and every dropped one at least the floor; the values kept are the smallest.
    #[test]
    fn a_fill_with_ties_keeps_the_smallest_and_leaves_out_the_query() {
        let mut rng = StdRng::seed_from_u64(4);
        for keep in [1, 5, 26] {
            for skip in [None, Some(0), Some(7), Some(99)] {
                let keys: Vec<f64> = (0..100).map(|_| f64::from(rng.random_range(0..12u8))).collect();
                let mut top = Top::new(keep);
                top.fill(&keys, 1000, skip, &mut Vec::new());
                let floor = top.floor;
                assert_eq!(top.items.len(), keep);
                let kept: Vec<usize> = top.items.iter().map(|&(_, j)| j - 1000).collect();
                assert!(skip.is_none_or(|s| !kept.contains(&s)), "the query itself kept");
                assert!(top.items.iter().all(|&(a, j)| a <= floor && keys[j - 1000] == a));
                let dropped = (0..100).filter(|o| !kept.contains(o) && Some(*o) != skip);
                assert!(dropped.clone().all(|o| keys[o] >= floor));
                let mut others: Vec<f64> = (0..100).filter(|&o| Some(o) != skip).map(|o| keys[o]).collect();
                others.sort_by(f64::total_cmp);
                let mut values: Vec<f64> = top.items.iter().map(|&(a, _)| a).collect();
                values.sort_by(f64::total_cmp);
                assert_eq!(values, others[..keep], "keep {keep}, skip {skip:?}");
                assert_eq!(floor, others[keep]);
            }
        }
    }
}
