//! From each query's candidates to its exact `k` nearest: candidates in ascending order of
//! their screened value, each first bounded on the deep coordinates (on a principal basis)
//! and measured exactly only where the bound does not already put it beyond the `k`-th
//! exact distance found so far; the walk stops at the first candidate whose screened value
//! does. A query whose candidates run out first is certified by its floor, or rescanned
//! against the whole reference, or, where many are open, takes the second screen
//! ([`Stream`]).

use super::amx;
use super::exact::{exact_sq, prefetch};
use super::lattice;
use super::points::{Points, Prepared, Screen, DEEP_BLOCK, HEAD};
use super::scan::TILE;
use super::screen::key;
use super::top::{Sink, Top};
use faer::{Accum, Mat, Par};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Candidates kept per query for the `k` nearest of `available` points: a few more than `k`,
/// so that the `k`-th is usually certified.
pub(super) fn kept(k: usize, available: usize) -> usize {
    (k + k / 8 + 4).min(available)
}

/// Relative room between a bound in the screen's units and the exact squared distances
/// (each a sum of `d` double-precision terms, relative error below `d · 2⁻⁵³`).
const REL: f64 = 1e-9;

/// Whether a point whose squared distance (screen units) is at least `lower` lies beyond
/// `tau`, an exact squared distance in the same units: then it is strictly farther than the
/// point `tau` belongs to, ties included.
fn beyond(lower: f64, tau: f64) -> bool {
    lower * (1.0 - REL) > tau
}

/// The `k` smallest exact squared distances met so far, ascending by distance and then
/// index (the order of the search's result).
#[derive(Clone)]
struct Best {
    k: usize,
    items: Vec<(f64, usize)>,
}

impl Best {
    fn new(k: usize) -> Self {
        Self { k, items: Vec::with_capacity(k + 1) }
    }

    /// The `k`-th smallest exact squared distance, infinite until `k` are known.
    fn tau(&self) -> f64 {
        if self.items.len() == self.k {
            self.items[self.k - 1].0
        } else {
            f64::INFINITY
        }
    }

    fn offer(&mut self, d2: f64, j: usize) {
        let before = |&(a, b): &(f64, usize)| a < d2 || (a == d2 && b < j);
        if self.items.len() == self.k && self.items.last().is_some_and(before) {
            return;
        }
        let at = self.items.partition_point(before);
        self.items.insert(at, (d2, j));
        self.items.truncate(self.k);
    }

    /// Distances in the data's units (exact units divided by `scale`) and indices.
    fn finish(self, scale: f64) -> (Vec<f64>, Vec<usize>) {
        self.items.into_iter().map(|(d2, j)| (d2.sqrt() / scale, j)).unzip()
    }
}

/// What walking a candidate list did.
#[derive(Default, Clone, Copy)]
struct Walk {
    /// Whether it stopped at a candidate beyond the `k`-th (else it ran out).
    stopped: bool,
    /// Candidates passed before it stopped.
    seen: usize,
    /// Exact distances computed.
    exact: usize,
    /// Blocks of deep coordinates read.
    blocks: usize,
}

/// Candidates ahead whose records are requested from memory while one is bounded.
const AHEAD: usize = 4;

/// Walks `list` (screened values and reference indices, ascending) for query `i`: each
/// candidate not beyond the current `k`-th is bounded on the deep coordinates, then measured
/// exactly into `best`. On a principal basis the records of the candidates [`AHEAD`] are
/// requested early, and a candidate that passes is measured after the next one is bounded
/// (its point requested meanwhile): bounds against an older, larger `k`-th still hold.
fn walk(p: &Prepared<'_>, i: usize, list: &[(f64, usize)], best: &mut Best) -> Walk {
    let r = p.reference();
    let qi = p.q.point(i);
    let mut w = Walk::default();
    let mut pending: Option<usize> = None;
    let measure = |j: usize, best: &mut Best, w: &mut Walk| {
        best.offer(exact_sq(qi, r.point(j), p.scale), r.original(j));
        w.exact += 1;
        best.tau() * p.unit2
    };
    let mut tau = best.tau() * p.unit2;
    for (at, &(l, j)) in list.iter().enumerate() {
        if beyond(l - p.err[i], tau) {
            w.stopped = true;
            w.seen = at;
            break;
        }
        let Some(deep) = &r.deep else {
            if let Some(&(_, next)) = list.get(at + 1) {
                prefetch(r.point(next));
            }
            tau = measure(j, best, &mut w);
            continue;
        };
        if let Some(&(_, ahead)) = list.get(at + AHEAD) {
            let rec = deep.col(ahead);
            prefetch(&rec[..rec.len().min(HEAD + DEEP_BLOCK)]);
        }
        if tau.is_finite() {
            let (pruned, blocks) = deep_pruned(p, r, i, j, l, tau);
            w.blocks += blocks;
            if pruned {
                continue;
            }
        }
        prefetch(r.point(j));
        if let Some(prev) = pending.replace(j) {
            tau = measure(prev, best, &mut w);
        }
    }
    if let Some(prev) = pending {
        measure(prev, best, &mut w);
    }
    if !w.stopped {
        w.seen = list.len();
    }
    w
}

/// `Σ (a_l - b_l)²` in single precision, sixteen partial sums.
fn sq_diff(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| (x - y) * (x - y)).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            let v = x[l] - y[l];
            acc[l] += v * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Whether the deep coordinates put reference point `j` (screened value `l`) beyond `tau`
/// for query `i`, and how many of their blocks it took.
///
/// # Bound
/// The squared distance splits over orthogonal parts: the screen's directions, the deep
/// coordinates read so far (`S`) and what lies off both (at least `(ρ_i - ρ_j)²`, the
/// distances off them). The first part is at least `ľ - err_i - (ρ'_i - ρ'_j)²` (`ρ'` off
/// the screen's directions, as the screen used them); `S` at least `(√(S̃ (1 - γ)) - σ)²`
/// with `S̃` its single-precision sum and `σ = 2⁻²³ (|c_i| + |c_j|)` for the coordinates'
/// rounding to `f32`; each `ρ` is within `(√ε + 2⁻²³) |c|` of its value (projection in
/// double precision, [`super::points::eps_projection`], then rounding to `f32`) and the
/// double-precision parts within `ε (|c_i| + |c_j|)²`.
fn deep_pruned(p: &Prepared<'_>, r: &Points<'_>, i: usize, j: usize, l: f64, tau: f64) -> (bool, usize) {
    let (Some((ends, eps)), Some(qd), Some(rd)) = (&p.deep, &p.q.deep, &r.deep) else {
        return (false, 0);
    };
    let (a, b) = (qd.col(i), rd.col(j));
    // The norms, rounded to f32, raised past their rounding.
    let cs = f64::from(a[0] + b[0]) * (1.0 + 2f64.powi(-21));
    let rounding = 2f64.powi(-23) * cs;
    let base = (l - p.err[i] - (f64::from((a[1] - b[1]).abs()) + rounding).powi(2)).max(0.0);
    let (slack, eta) = (eps.sqrt() * cs + rounding, 2.0 * eps * cs * cs);
    let gam = 1.1 * (DEEP_BLOCK + 8) as f64 * 2f64.powi(-24);
    let (mut acc, mut start) = (0.0f64, HEAD);
    for (t, &e) in ends.iter().enumerate() {
        acc += f64::from(sq_diff(&a[start..HEAD + e], &b[start..HEAD + e]));
        start = HEAD + e;
        let part = ((acc * (1.0 - gam)).sqrt() - rounding).max(0.0).powi(2);
        let tail = (f64::from((a[2 + t] - b[2 + t]).abs()) - slack).max(0.0).powi(2);
        if beyond(base + part + tail - eta, tau) {
            return (true, t + 1);
        }
    }
    (false, ends.len())
}

/// Queries per product of the rescans.
const RESCAN: usize = 32;

/// `f(i, row)` for each query `i` of `picks`, in parallel, `row` its screened values against
/// every reference point (but the query itself on one data set, `same`): one
/// single-precision product against the whole reference; per query, `(ľ_j, j)` in reference
/// order, built only while `f` runs (a row of 16 bytes per reference point: the rows of all
/// picks at once would take more memory than the screen). Any summation order obeys the
/// screen's error bound.
fn against_all<T: Send>(
    p: &Prepared<'_>,
    picks: &[usize],
    same: bool,
    par: Par,
    f: impl Fn(usize, Vec<(f64, usize)>) -> T + Sync,
) -> Vec<T> {
    let r = p.reference();
    let nr = r.norms.len();
    let (g, ld) = products(&p.q.screen, &r.screen, picks, nr, par);
    let row = |(c, &i): (usize, &usize)| -> T {
        let others = (0..nr).filter(|&j| !(same && j == i));
        let g = &g[c * ld..];
        f(i, others.map(|j| (key(p.q.norms[i], r.norms[j], g[j], p.q.lens[i], r.lens[j], p.pair), j)).collect())
    };
    picks.par_iter().enumerate().map(row).collect()
}

/// The products of the queries `picks` with all `nr` reference points: column `c` of the
/// result (leading dimension returned) holds query `picks[c]`'s.
fn products(q: &Screen, r: &Screen, picks: &[usize], nr: usize, par: Par) -> (Vec<f32>, usize) {
    match (q, r) {
        (Screen::F32(q), Screen::F32(r)) => {
            let (q, rs) = (q.mat(), r.mat());
            let qf = Mat::<f32>::from_fn(q.nrows(), picks.len(), |l, c| q[(l, picks[c])]);
            let mut g = vec![0f32; nr * picks.len()];
            let gm = faer::MatMut::from_column_major_slice_mut(&mut g, nr, picks.len());
            faer::linalg::matmul::matmul(gm, Accum::Replace, rs.transpose(), qf.as_ref(), 1.0f32, par);
            (g, nr)
        }
        (Screen::Bf16(q), Screen::Bf16(r)) => {
            let rows = q.gather(picks);
            let ld = nr.div_ceil(amx::STEP) * amx::STEP;
            let mut g = vec![0f32; picks.len().div_ceil(amx::STEP) * amx::STEP * ld];
            let mut groups = amx::Groups::new();
            for a in (0..nr).step_by(TILE) {
                let ar = a..(a + TILE).min(nr);
                r.groups_into(ar.clone(), &mut groups);
                amx::tile(&mut g[a..], ld, &groups, ar, &rows, 0..picks.len());
            }
            (g, ld)
        }
        (Screen::I8(q), Screen::I8(r)) => {
            let rows = q.gather(picks);
            let ld = nr.div_ceil(lattice::STEP) * lattice::STEP;
            let mut g = vec![0f32; picks.len().div_ceil(lattice::STEP) * lattice::STEP * ld];
            for a in (0..nr).step_by(TILE) {
                let ar = a..(a + TILE).min(nr);
                lattice::tile(&mut g[a..], ld, r, ar, &rows, 0..picks.len());
            }
            (g, ld)
        }
        _ => unreachable!("both point sets share one frame"),
    }
}

fn ascending(list: &mut [(f64, usize)]) {
    list.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
}

/// Query `i`'s further candidates (`low`): every one not already walked (`walked`, sorted)
/// and not beyond the current `k`-th, walked in ascending order.
fn walk_more(p: &Prepared<'_>, i: usize, mut low: Vec<(f64, usize)>, walked: &[usize], best: &mut Best) -> Walk {
    let tau = best.tau() * p.unit2;
    // A value that is not a number is kept (`beyond` is false for it).
    low.retain(|&(l, j)| !beyond(l - p.err[i], tau) && walked.binary_search(&j).is_err());
    ascending(&mut low);
    walk(p, i, &low, best)
}

/// A query after its first walk: its `k` nearest so far and, unless they are certified, the
/// points it walked (sorted) and the screened value below which the rest must be looked at.
pub(super) struct Query {
    best: Best,
    open: Option<(Vec<usize>, f64)>,
}

impl Query {
    pub(super) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The `k` nearest: distances in the data's units and indices.
    pub(super) fn finish(self, scale: f64) -> (Vec<f64>, Vec<usize>) {
        self.best.finish(scale)
    }
}

/// An order of the queries of one data set in which consecutive ones lie near each other:
/// breadth first over their candidate lists (a query's candidates are its likely
/// neighbours). Walks in this order read mostly points that the walks just before them read,
/// still in the core's cache.
fn nearby_order(lists: &[(Vec<(f64, usize)>, f64)]) -> Vec<usize> {
    let n = lists.len();
    let (mut seen, mut order) = (vec![false; n], Vec::with_capacity(n));
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut head = order.len();
        order.push(start);
        while head < order.len() {
            let i = order[head];
            head += 1;
            for &(_, j) in &lists[i].0 {
                if !std::mem::replace(&mut seen[j], true) {
                    order.push(j);
                }
            }
        }
    }
    order
}

/// `f` of every query, in parallel in `order`, returned in index order.
fn in_order<T: Send>(order: &[usize], f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut done: Vec<(usize, T)> = order.par_iter().map(|&i| (i, f(i))).collect();
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// Every query's walk over its candidates (`tops`), in parallel. A query is certified when
/// its walk stopped at a candidate beyond its `k`-th, or when its floor lies beyond it;
/// else its reach is the largest screened value not beyond the `k`-th. Also the order the
/// queries were walked in (near ones together on one data set, `same`: by their candidates,
/// or in the points' own order where [`super::order`] gave them one).
pub(super) fn first(p: &Prepared<'_>, tops: Vec<Top>, k: usize, same: bool) -> (Vec<Query>, Vec<usize>) {
    let lists: Vec<(Vec<(f64, usize)>, f64)> = tops.into_par_iter().map(Top::finish).collect();
    // Points already in an order that keeps near ones together are walked in it.
    let order = if same && p.q.order.is_none() { nearby_order(&lists) } else { (0..lists.len()).collect() };
    let queries = in_order(&order, |i| {
        let (cands, floor) = &lists[i];
        let mut best = Best::new(k);
        let w = walk(p, i, cands, &mut best);
        let tau = best.tau() * p.unit2;
        let certified = w.stopped || floor.is_infinite() || beyond(floor - p.err[i], tau);
        let open = (!certified).then(|| {
            let mut walked: Vec<usize> = cands.iter().map(|c| c.1).collect();
            walked.sort_unstable();
            (walked, reach_of(p, i, tau))
        });
        Query { best, open }
    });
    (queries, order)
}

/// The screened value beyond which a point lies past the `k`-th exact squared distance
/// `tau` (screen units) of query `i`: beyond it exactly when `ľ > τ / (1 - REL) + err`.
fn reach_of(p: &Prepared<'_>, i: usize, tau: f64) -> f64 {
    (tau / (1.0 - REL) + p.err[i]) * (1.0 + 4.0 * f64::EPSILON) + f64::MIN_POSITIVE
}

/// Bytes that the queries of one second screen may hold in collected candidates, all
/// together: past it a query walks what it holds and measures the rest as they come.
/// Fashion-MNIST's 10 000 images hold about 1.6 million entries (13 MB, more with the lists'
/// room to grow); its 60 000 would hold 28 million.
pub(super) const HOLD_BUDGET: usize = 24 << 20;

/// A held entry: its key rounded down to single precision (still a lower bound on the
/// squared distance) and its reference index.
type Held = (f32, u32);

/// `a` rounded down to single precision.
fn f32_below(a: f64) -> f32 {
    let f = a as f32;
    if f64::from(f) > a {
        f.next_down()
    } else {
        f
    }
}

/// A query during the second screen. Its entries below its reach are held while the
/// search's shared budget ([`HOLD_BUDGET`]) has room, and walked in ascending order at the
/// end, leaving out the points its first walk passed (the `k`-th falls fastest that way). Once the
/// budget is spent, the query walks what it holds and then bounds each further entry on the
/// deep coordinates and, unless that puts it beyond the `k`-th, measures it at once, its
/// reach falling with the `k`-th: memory stays bounded however loose the screen. A point
/// among the `k` nearest lies below every reach on the way and passes every bound, so the
/// result does not depend on which entries were held.
pub(super) struct Stream<'p, 'a> {
    p: &'p Prepared<'a>,
    budget: &'p AtomicUsize,
    i: usize,
    best: Best,
    walked: Vec<usize>,
    tau: f64,
    reach: f64,
    /// The entries held (`None` once measuring as they come) and the bytes taken for them.
    held: Option<Vec<Held>>,
    taken: usize,
}

impl<'p, 'a> Stream<'p, 'a> {
    fn new(p: &'p Prepared<'a>, budget: &'p AtomicUsize, i: usize, q: Query) -> Self {
        let tau = q.best.tau() * p.unit2;
        let (walked, reach) = q.open.unwrap_or((Vec::new(), f64::NEG_INFINITY));
        // Indices past `u32` are never held.
        let held = (p.reference().norms.len() <= u32::MAX as usize).then(Vec::new);
        Self { p, budget, i, best: q.best, walked, tau, reach, held, taken: 0 }
    }

    /// Room for as many more held entries as it holds (at least 8), taken from the budget:
    /// false once the budget cannot give it.
    fn grow(&mut self) -> bool {
        let Some(held) = self.held.as_mut() else { return false };
        let more = held.capacity().max(8);
        let bytes = more * std::mem::size_of::<Held>();
        let granted = self.budget.fetch_update(Relaxed, Relaxed, |left| left.checked_sub(bytes)).is_ok();
        if granted {
            held.reserve_exact(more);
            self.taken += bytes;
        }
        granted
    }

    /// Walks the held entries in ascending order and gives their bytes back (the walk reads a
    /// copy of this query's list at 16 bytes an entry, one query per thread at a time).
    fn walk_held(&mut self) {
        if let Some(held) = self.held.take() {
            let low = held.iter().map(|&(a, j)| (f64::from(a), j as usize)).collect();
            drop(held);
            walk_more(self.p, self.i, low, &self.walked, &mut self.best);
            self.budget.fetch_add(std::mem::take(&mut self.taken), Relaxed);
            self.tau = self.best.tau() * self.p.unit2;
            self.reach = self.reach.min(reach_of(self.p, self.i, self.tau));
        }
    }

    /// Entry `(a, j)` bounded on the deep coordinates and, unless that puts it beyond the
    /// `k`-th, measured.
    fn measure(&mut self, a: f64, j: usize) {
        let (p, r, i) = (self.p, self.p.reference(), self.i);
        if self.tau.is_finite() && deep_pruned(p, r, i, j, a, self.tau).0 {
            return;
        }
        self.best.offer(exact_sq(p.q.point(i), r.point(j), p.scale), r.original(j));
        self.tau = self.best.tau() * p.unit2;
        self.reach = self.reach.min(reach_of(p, i, self.tau));
    }

    fn finish(mut self) -> Query {
        self.walk_held();
        Query { best: self.best, open: None }
    }
}

impl Sink for Stream<'_, '_> {
    #[inline]
    fn floor(&self) -> f64 {
        self.reach
    }

    /// An entry below the reach: held while there is room (the walk at the end leaves out
    /// the points walked first); else [`Stream::take`].
    #[inline]
    fn push(&mut self, a: f64, j: usize) {
        if a.partial_cmp(&self.reach) != Some(std::cmp::Ordering::Less) {
            return;
        }
        if let Some(held) = self.held.as_mut() {
            if held.len() < held.capacity() {
                return held.push((f32_below(a), j as u32));
            }
        }
        self.take(a, j);
    }
}

impl Stream<'_, '_> {
    /// An entry with no room left for it: held if the budget gives more room, else measured
    /// (after walking what is held), unless the first walk measured it.
    #[inline(never)]
    fn take(&mut self, a: f64, j: usize) {
        if self.held.is_some() {
            if self.grow() {
                return self.held.as_mut().expect("held").push((f32_below(a), j as u32));
            }
            self.walk_held();
            if a >= self.reach {
                return;
            }
        }
        if self.walked.binary_search(&j).is_err() {
            self.measure(a, j);
        }
    }
}

/// The open queries' second screen ([`Stream`]): the whole screen again, each query
/// taking the entries below its reach (`same`: one data set); then the walks over what they
/// hold, in `order`; `hold` bytes for the held entries ([`HOLD_BUDGET`]).
pub(super) fn second(p: &Prepared<'_>, queries: Vec<Query>, same: bool, order: &[usize], hold: usize) -> Vec<Query> {
    let budget = AtomicUsize::new(hold);
    let mut streams: Vec<Stream<'_, '_>> =
        queries.into_iter().enumerate().map(|(i, q)| Stream::new(p, &budget, i, q)).collect();
    super::scan::scan(&mut streams, p, same);
    let slots: Vec<std::sync::Mutex<Option<Stream<'_, '_>>>> =
        streams.into_iter().map(|s| std::sync::Mutex::new(Some(s))).collect();
    in_order(order, |i| {
        let slot = slots[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        slot.expect("each query once").finish()
    })
}

/// The open queries against the whole reference, [`RESCAN`] per product: cheaper than a
/// second screen when few are open.
pub(super) fn rescan(p: &Prepared<'_>, queries: &mut [Query], same: bool) {
    let open: Vec<usize> = (0..queries.len()).filter(|&i| queries[i].is_open()).collect();
    let done: Vec<(usize, Best)> = open
        .par_chunks(RESCAN)
        .flat_map_iter(|chunk| {
            against_all(p, chunk, same, Par::Seq, |i, low| {
                let q = &queries[i];
                let mut best = q.best.clone();
                walk_more(p, i, low, &q.open.as_ref().expect("open").0, &mut best);
                (i, best)
            })
        })
        .collect();
    for (i, best) in done {
        queries[i] = Query { best, open: None };
    }
}

/// Queries sampled to judge principal directions.
const ESTIMATE: usize = 128;

/// Floating-point operations of the product that cost as much as one byte of the exact
/// distances' reads (a point read from memory, at random): about 250 GFLOP/s per core in
/// the product against 13.5 GB/s per core (with prefetching) on the machine of
/// `docs/BENCHMARKS.md`.
const FLOPS_PER_BYTE: f64 = 20.0;

/// One sampled query's walk over every reference point: the exact distances of its `k`
/// smallest screened values bound its `k`-th from above, and the walk takes the points not
/// beyond that bound.
fn sample_walk(p: &Prepared<'_>, i: usize, mut low: Vec<(f64, usize)>, k: usize) -> Walk {
    let r = p.reference();
    let kk = k.min(low.len());
    let mut best = Best::new(k);
    if kk > 0 {
        low.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
        for &(_, j) in &low[..kk] {
            best.offer(exact_sq(p.q.point(i), r.point(j), p.scale), r.original(j));
        }
    }
    let tau = best.tau() * p.unit2;
    low.retain(|&(l, _)| !beyond(l - p.err[i], tau));
    ascending(&mut low);
    walk(p, i, &low, &mut Best::new(k))
}

/// How many times faster AMX tiles multiply than AVX-512 in single precision (726 against
/// about 250 GFLOP/s per core, measured on the machine of `docs/BENCHMARKS.md`).
const AMX_GAIN: f64 = 3.0;

/// The candidates to keep per query where this screen (principal directions, or the full
/// coordinates on AMX) pays, `None` where the full single-precision screen would be cheaper.
/// A sample of [`ESTIMATE`] queries is walked against the whole reference: a walk passes the
/// candidates a query must hold to be certified, and counts the exact distances and deep
/// blocks it reads. The screen's cost per query is its products (`n (m + 1)` multiply-adds,
/// twice for the two passes of principal directions; `n d /` [`AMX_GAIN`] on AMX) and those
/// reads (at [`FLOPS_PER_BYTE`]); the full screen's, `n d` and [`kept`] exact distances. On
/// AMX a query keeps a quarter more than nine sampled queries in ten needed; on principal
/// directions [`kept`] (the second screen takes the rest).
pub(super) fn estimate(p: &Prepared<'_>, k: usize, same: bool, available: usize) -> Option<usize> {
    let nq = p.q.norms.len();
    let t = ESTIMATE.min(nq);
    let picks: Vec<usize> = (0..t).map(|c| c * nq / t).collect();
    let walks: Vec<Walk> = against_all(p, &picks, same, Par::rayon(0), |i, low| sample_walk(p, i, low, k));
    let (n, m, d) = (p.reference().norms.len() as f64, p.q.screen.dim() as f64, p.q.exact.d() as f64);
    let mean = |f: fn(&Walk) -> usize| walks.iter().map(f).sum::<usize>() as f64 / t.max(1) as f64;
    let mut seen: Vec<usize> = walks.iter().map(|w| w.seen).collect();
    seen.sort_unstable();
    let most = seen.get(seen.len() * 9 / 10).copied().unwrap_or(0);
    let amx = matches!(p.q.screen, Screen::Bf16(_));
    let product = if amx { 2.0 * n * d / AMX_GAIN } else { 2.0 * 2.0 * n * m };
    let reads = mean(|w| w.exact) * 8.0 * d + mean(|w| w.blocks) * 4.0 * DEEP_BLOCK as f64;
    let cost = product + FLOPS_PER_BYTE * reads;
    let cost_full = 2.0 * n * d + FLOPS_PER_BYTE * kept(k, available) as f64 * 8.0 * d;
    let keep = if amx { kept(k, available).max(most + most / 4 + 4).min(available) } else { kept(k, available) };
    (cost < cost_full).then_some(keep)
}

#[cfg(test)]
mod tests {
    use super::super::points::prepare;
    use super::*;
    use faer::Mat;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    proptest::proptest! {
        /// A held key is a lower bound on the key, and the largest `f32` that is one: the
        /// next `f32` up lies above it (keys of any sign and size, past `f32`'s range too).
        #[test]
        fn held_keys_are_the_largest_f32_below(m in -1.0f64..1.0, e in -160i32..160) {
            let a = m * 2f64.powi(e);
            let h = f32_below(a);
            proptest::prop_assert!(f64::from(h) <= a, "{a}: {h} above it");
            proptest::prop_assert!(h == f32::MAX || f64::from(h.next_up()) > a, "{a}: {h} not the largest");
        }
    }

    /// Values that are floats already are their own rounding (zeros of both signs, a
    /// subnormal, the largest float).
    #[test]
    fn floats_are_held_as_they_are() {
        for exact in [1.0f32, 0.0, -0.0, f32::MAX, -f32::MAX, f32::MIN_POSITIVE / 8.0, 0.1] {
            assert_eq!(f32_below(f64::from(exact)).to_bits(), exact.to_bits(), "{exact}");
        }
    }

    /// `n` points `tanh(F z)` around a 6-dimensional latent, in `d` dimensions, plus noise.
    fn curved(n: usize, d: usize, noise: f64, rng: &mut StdRng) -> Mat<f64> {
        let mut normal = || rng.sample::<f64, _>(rand_distr::StandardNormal);
        let f = Mat::from_fn(6, d, |_, _| normal() / 6f64.sqrt());
        let z = Mat::from_fn(n, 6, |_, _| normal());
        let e = Mat::from_fn(n, d, |_, _| noise * normal());
        Mat::from_fn(n, d, |i, j| (0..6).map(|l| z[(i, l)] * f[(l, j)]).sum::<f64>().tanh() + e[(i, j)])
    }

    /// Every pair's key (less the query's `err`) and, on principal directions, every deep
    /// bound lie below the exact squared distance; and not far below for some pairs (the
    /// bounds are not vacuous). For the full single-precision screen, principal directions,
    /// AMX tiles and the lattice screen (on points on a lattice and points a little off it).
    #[test]
    fn keys_and_deep_bounds_lie_below_the_exact_distances() {
        let mut rng = StdRng::seed_from_u64(31);
        let x = curved(1500, 160, 0.02, &mut rng);
        let mut screens = vec![(prepare(x.as_ref(), x.as_ref(), true, 5, crate::knn::Screens::Portable), "principal")];
        let white = Mat::from_fn(300, 96, |_, _| rng.random_range(-1.0..1.0));
        screens.push((prepare(white.as_ref(), white.as_ref(), true, 5, crate::knn::Screens::Portable), "full"));
        if amx::available() {
            screens.push((prepare(x.as_ref(), x.as_ref(), true, 5, crate::knn::Screens::Fastest), "amx"));
        }
        // The curved points on a lattice of 256 levels, exactly and off it by up to h / 3000.
        let (lo, hi) = x
            .as_ref()
            .col_iter()
            .flat_map(|c| c.iter().copied())
            .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let h = (hi - lo) / 255.0;
        let on = x.as_ref().map(|&v| lo + h * ((v - lo) / h).round());
        let off = Mat::from_fn(on.nrows(), on.ncols(), |i, j| on[(i, j)] + h / 3000.0 * rng.random_range(-1.0..1.0));
        // Shrunk towards the lattice's centre by 1 / 140 000 (at most h / 1094 off it; two
        // points keep the ends): every difference shorter than its lattice points' by the same
        // factor, the error the keys' lattice term must cover.
        let mid = lo + 128.0 * h;
        let mut shrunk = on.as_ref().map(|&v| mid + (1.0 - 1.0 / 140_000.0) * (v - mid));
        (0..on.ncols()).for_each(|j| (shrunk[(0, j)], shrunk[(1, j)]) = (lo, hi));
        for (y, name) in [(&on, "lattice"), (&off, "lattice, off by h / 3000"), (&shrunk, "lattice, shrunk")] {
            let p = prepare(y.as_ref(), y.as_ref(), true, 5, crate::knn::Screens::Lattice);
            assert!(matches!(p.q.screen, Screen::I8(_)), "{name}: the lattice screen");
            assert!(p.err.iter().all(|&e| e > 0.0));
            screens.push((p, name));
        }
        assert!(screens[0].0.deep.is_some(), "the curved points take principal directions");
        for (p, name) in &screens {
            let picks: Vec<usize> = (0..p.q.norms.len()).step_by(37).collect();
            let (mut tight, mut pruned) = (0usize, 0usize);
            for (i, low) in against_all(p, &picks, true, Par::Seq, |i, low| (i, low)) {
                for (l, j) in low {
                    let exact = exact_sq(p.q.point(i), p.q.point(j), p.scale) * p.unit2;
                    assert!(l - p.err[i] <= exact, "{name}: key of ({i}, {j}) {l} above {exact}");
                    tight += usize::from(l - p.err[i] > 0.98 * exact);
                    if p.deep.is_some() {
                        assert!(!deep_pruned(p, &p.q, i, j, l, exact).0, "{name}: ({i}, {j}) pruned at its distance");
                        pruned += usize::from(deep_pruned(p, &p.q, i, j, l, 0.9 * exact).0);
                    }
                }
            }
            assert!(tight > 0, "{name}: every key more than 2 % below its distance");
            assert!(p.deep.is_none() || pruned > 0, "{name}: the deep bounds never prune at 90 % of the distance");
        }
    }
}
