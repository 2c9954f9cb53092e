//! From each query's candidates to its exact `k` nearest: candidates in ascending order of
//! their screened value, each first bounded on the deep coordinates (on a principal basis)
//! and measured exactly only where the bound does not already put it beyond the `k`-th
//! exact distance found so far; the walk stops at the first candidate whose screened value
//! does. A query whose candidates run out first is certified by its floor, or rescanned
//! against the whole reference.

use super::exact::{exact_sq, prefetch};
use super::points::{Points, Prepared, DEEP_BLOCK};
use super::top::Top;
use faer::{Accum, Mat, Par};
use rayon::prelude::*;

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

/// Walks `list` (screened values and reference indices, ascending) for query `i`: each
/// candidate not beyond the current `k`-th is bounded on the deep coordinates, then measured
/// exactly into `best`.
fn walk(p: &Prepared, i: usize, list: &[(f64, usize)], best: &mut Best) -> Walk {
    let r = p.reference();
    let (qt, rt) = (p.q.exact.mat(), r.exact.mat());
    let mut w = Walk::default();
    let mut tau = best.tau() * p.unit2;
    for (at, &(l, j)) in list.iter().enumerate() {
        if beyond(l - p.err[i], tau) {
            w.stopped = true;
            w.seen = at;
            return w;
        }
        if tau.is_finite() && p.deep.is_some() {
            let (pruned, blocks) = deep_pruned(p, r, i, j, l, tau);
            w.blocks += blocks;
            if pruned {
                continue;
            }
        } else if let Some(&(_, next)) = list.get(at + 1) {
            prefetch(rt, next);
        }
        best.offer(exact_sq(qt, i, rt, j, p.scale), j);
        w.exact += 1;
        tau = best.tau() * p.unit2;
    }
    w.seen = list.len();
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
/// the screen's directions); `S` at least `(√(S̃ (1 - γ)) - σ)²` with `S̃` its
/// single-precision sum and `σ = 2⁻²³ (|c_i| + |c_j|)` for the coordinates' rounding to
/// `f32`; each `ρ` is within `√ε |c|` of its value and the double-precision parts within
/// `ε (|c_i| + |c_j|)²` ([`super::points::eps_projection`]).
fn deep_pruned(p: &Prepared, r: &Points, i: usize, j: usize, l: f64, tau: f64) -> (bool, usize) {
    let (Some((ends, eps)), Some(qd), Some(rd)) = (&p.deep, &p.q.deep, &r.deep) else {
        return (false, 0);
    };
    let cs = p.q.norms[i].sqrt() + r.norms[j].sqrt();
    let base = (l - p.err[i] - (p.q.rho[i] - r.rho[j]).powi(2)).max(0.0);
    let (sigma, slack, eta) = (cs * 2f64.powi(-23), eps.sqrt() * cs, 2.0 * eps * cs * cs);
    let gam = 1.1 * (DEEP_BLOCK + 8) as f64 * 2f64.powi(-24);
    let (a, b, ra, rb) = (qd.coords.col(i), rd.coords.col(j), qd.rho.col(i), rd.rho.col(j));
    let (mut acc, mut start) = (0.0f64, 0);
    for (t, &e) in ends.iter().enumerate() {
        acc += f64::from(sq_diff(&a[start..e], &b[start..e]));
        start = e;
        let part = ((acc * (1.0 - gam)).sqrt() - sigma).max(0.0).powi(2);
        let tail = ((ra[t] - rb[t]).abs() - slack).max(0.0).powi(2);
        if beyond(base + part + tail - eta, tau) {
            return (true, t + 1);
        }
    }
    (false, ends.len())
}

/// Queries per product of the rescans.
const RESCAN: usize = 64;

/// The screened values of the queries `picks` against every reference point (but the query
/// itself on one data set, `same`): one single-precision product against the whole
/// reference; per query, `(ľ_j, j)` in reference order. Any summation order obeys the
/// screen's error bound.
fn against_all(p: &Prepared, picks: &[usize], same: bool, par: Par) -> Vec<Vec<(f64, usize)>> {
    let (r, q) = (p.reference(), p.q.screen.mat());
    let rs = r.screen.mat();
    let qf = Mat::<f32>::from_fn(q.nrows(), picks.len(), |l, c| q[(l, picks[c])]);
    let mut g = Mat::<f32>::zeros(rs.ncols(), picks.len());
    faer::linalg::matmul::matmul(g.as_mut(), Accum::Replace, rs.transpose(), qf.as_ref(), 1.0f32, par);
    let row = |(c, &i): (usize, &usize)| -> Vec<(f64, usize)> {
        let others = (0..rs.ncols()).filter(|&j| !(same && j == i));
        others.map(|j| (p.q.norms[i] + r.norms[j] - 2.0 * f64::from(g[(j, c)]), j)).collect()
    };
    picks.iter().enumerate().map(row).collect()
}

fn ascending(list: &mut [(f64, usize)]) {
    list.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
}

/// Query `i` against the whole reference (`low`, from [`against_all`]): every point not
/// already walked (`walked`, sorted) and not beyond the current `k`-th, walked in order.
fn rescan_one(p: &Prepared, i: usize, mut low: Vec<(f64, usize)>, walked: &[usize], best: &mut Best) {
    let tau = best.tau() * p.unit2;
    // A value that is not a number is kept (`beyond` is false for it).
    low.retain(|&(l, j)| !beyond(l - p.err[i], tau) && walked.binary_search(&j).is_err());
    ascending(&mut low);
    walk(p, i, &low, best);
}

/// The exact `k` nearest of every query from its candidates: walked in parallel, and the
/// queries whose candidates cannot certify the result rescanned against the whole
/// reference, [`RESCAN`] per product.
pub(super) fn refine(p: &Prepared, tops: Vec<Top>, k: usize, same: bool) -> Vec<(Vec<f64>, Vec<usize>)> {
    let (mut bests, left): (Vec<Best>, Vec<Option<Vec<usize>>>) = tops
        .into_par_iter()
        .enumerate()
        .map(|(i, top)| {
            let (cands, floor) = top.finish();
            let mut best = Best::new(k);
            let w = walk(p, i, &cands, &mut best);
            let certified = w.stopped || floor.is_infinite() || beyond(floor - p.err[i], best.tau() * p.unit2);
            let left = (!certified).then(|| {
                let mut walked: Vec<usize> = cands.iter().map(|c| c.1).collect();
                walked.sort_unstable();
                walked
            });
            (best, left)
        })
        .unzip();
    let failing: Vec<(usize, Vec<usize>)> =
        left.into_iter().enumerate().filter_map(|(i, w)| w.map(|w| (i, w))).collect();
    let redone: Vec<(usize, Best)> = failing
        .par_chunks(RESCAN)
        .flat_map_iter(|chunk| {
            let picks: Vec<usize> = chunk.iter().map(|f| f.0).collect();
            let rows = against_all(p, &picks, same, Par::Seq);
            rows.into_iter()
                .zip(chunk)
                .map(|(low, (i, walked))| {
                    let mut best = bests[*i].clone();
                    rescan_one(p, *i, low, walked, &mut best);
                    (*i, best)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (i, best) in redone {
        bests[i] = best;
    }
    bests.into_par_iter().map(|b| b.finish(p.scale)).collect()
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
fn sample_walk(p: &Prepared, i: usize, mut low: Vec<(f64, usize)>, k: usize) -> Walk {
    let r = p.reference();
    let kk = k.min(low.len());
    let mut best = Best::new(k);
    if kk > 0 {
        low.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
        for &(_, j) in &low[..kk] {
            best.offer(exact_sq(p.q.exact.mat(), i, r.exact.mat(), j, p.scale), j);
        }
    }
    let tau = best.tau() * p.unit2;
    low.retain(|&(l, _)| !beyond(l - p.err[i], tau));
    ascending(&mut low);
    walk(p, i, &low, &mut Best::new(k))
}

/// The candidates to keep per query where the principal screen pays, `None` where it does
/// not. A sample of [`ESTIMATE`] queries is walked against the whole reference: a walk
/// passes the candidates a query must hold to be certified, and counts the exact distances
/// and deep blocks it reads. The screen pays where its product per query (`n (m + 1)`
/// against `n d` multiply-adds) and those reads cost less than the full product and
/// [`kept`] exact distances (reads at [`FLOPS_PER_BYTE`]); it keeps a quarter more than nine
/// sampled queries in ten needed.
pub(super) fn estimate(p: &Prepared, k: usize, same: bool, available: usize) -> Option<usize> {
    let nq = p.q.norms.len();
    let t = ESTIMATE.min(nq);
    let picks: Vec<usize> = (0..t).map(|c| c * nq / t).collect();
    let walks: Vec<Walk> = against_all(p, &picks, same, Par::rayon(0))
        .into_par_iter()
        .zip(&picks)
        .map(|(low, &i)| sample_walk(p, i, low, k))
        .collect();
    let (n, m, d) = (p.reference().norms.len() as f64, p.q.screen.d as f64, p.q.exact.d as f64);
    let mean = |f: fn(&Walk) -> usize| walks.iter().map(f).sum::<usize>() as f64 / t.max(1) as f64;
    let mut seen: Vec<usize> = walks.iter().map(|w| w.seen).collect();
    seen.sort_unstable();
    let most = seen.get(seen.len() * 9 / 10).copied().unwrap_or(0);
    let reads = mean(|w| w.exact) * 8.0 * d + mean(|w| w.blocks) * 4.0 * DEEP_BLOCK as f64;
    let cost_principal = 2.0 * n * m + FLOPS_PER_BYTE * reads;
    let cost_full = 2.0 * n * d + FLOPS_PER_BYTE * kept(k, available) as f64 * 8.0 * d;
    (cost_principal < cost_full).then(|| kept(k, available).max(most + most / 4 + 4).min(available))
}
