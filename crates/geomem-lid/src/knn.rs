//! Exact k nearest neighbours by batched GEMM.
//!
//! Squared distances `|q|² + |r|² - 2 q·r` of a panel of queries against every reference
//! point come from one single-precision matrix product (twice the speed of double); each
//! query keeps its `k + max(k, 8)` best candidates, and their distances are then recomputed
//! exactly in double precision as `√Σ(q - r)²`. The single-precision pass only has to be
//! right about *which* points are candidates: the error of an `f32` dot product of length `d`
//! is at most `γ·|q|·|r|` with `γ ≈ (d + 2)·2⁻²⁴` whatever the summation order, so a query
//! whose excluded points all lie more than `2γ|q|·max|r|` beyond its `k`-th candidate is
//! certified; any other query (many near-equal distances, duplicates) is recomputed exactly
//! against the whole reference. The result equals a brute-force double-precision search
//! (`tests/knn.rs`), with ties broken by the smaller index.
//!
//! On one data set (`knn_self`) each panel is multiplied only by the points up to its end,
//! and the transposed block updates the earlier points: half the products of a full search.

use crate::error::{check_points, check_width, param, Result};
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Queries per matrix product.
const PANEL: usize = 512;
/// Rows of earlier panels updated together from one transposed block.
const CHUNK: usize = 64;

/// The `k` nearest reference points of every query, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    k: usize,
    distances: Vec<f64>,
    indices: Vec<usize>,
}

impl Neighbours {
    /// The number of neighbours per query.
    pub fn k(&self) -> usize {
        self.k
    }
    /// The number of queries.
    pub fn len(&self) -> usize {
        self.indices.len() / self.k
    }
    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
    /// Euclidean distances of query `i` to its neighbours, ascending.
    pub fn distances(&self, i: usize) -> &[f64] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
    /// Reference indices of the neighbours of query `i`, nearest first.
    pub fn indices(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
}

/// The `k` nearest points of `reference` to every row of `queries`.
///
/// # Errors
/// [`crate::LidError::Data`] for empty or non-finite inputs or different widths;
/// [`crate::LidError::InvalidParameter`] unless `1 <= k <= reference.nrows()`.
pub fn knn(queries: MatRef<'_, f64>, reference: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_points("reference points", reference, 1)?;
    check_points("query points", queries, 1)?;
    check_width("query points", queries.ncols(), reference.ncols())?;
    param("k", k, k >= 1 && k <= reference.nrows(), "must lie in 1 ..= number of reference points")?;
    Ok(search(queries, reference, k, false))
}

/// The `k` nearest other points of every row of `data`: point `i` is not its own neighbour
/// (a duplicate of it at another index is, at distance 0).
///
/// # Errors
/// [`crate::LidError::Data`] for empty or non-finite data;
/// [`crate::LidError::InvalidParameter`] unless `1 <= k < data.nrows()`.
pub fn knn_self(data: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_points("data points", data, 2)?;
    param("k", k, k >= 1 && k < data.nrows(), "must lie in 1 .. number of points")?;
    Ok(search(data, data, k, true))
}

/// The `keep` smallest approximate squared distances seen so far, with a bound below which
/// every dropped or rejected candidate lies.
struct Top {
    keep: usize,
    items: Vec<(f64, usize)>,
    floor: f64,
}

impl Top {
    fn new(keep: usize) -> Self {
        Self { keep, items: Vec::with_capacity(2 * keep), floor: f64::INFINITY }
    }

    #[inline]
    fn push(&mut self, a: f64, j: usize) {
        if a < self.floor {
            self.items.push((a, j));
            if self.items.len() == 2 * self.keep {
                self.shrink();
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
    fn finish(mut self) -> (Vec<(f64, usize)>, f64) {
        self.items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if self.items.len() > self.keep {
            self.floor = self.floor.min(self.items[self.keep].0);
            self.items.truncate(self.keep);
        }
        (self.items, self.floor)
    }
}

struct Prepared {
    q32: Mat<f32>,
    /// `None` on one data set: the reference is `q32`.
    r32: Option<Mat<f32>>,
    qn: Vec<f64>,
    rn: Vec<f64>,
    /// Bound on the error of one approximate squared distance, per query.
    err: Vec<f64>,
    /// The power of two the data were multiplied by.
    scale: f64,
}

fn squared_norms(x: MatRef<'_, f64>, scale: f64) -> Vec<f64> {
    (0..x.nrows()).map(|i| x.row(i).iter().map(|v| (v * scale) * (v * scale)).sum()).collect()
}

fn max_abs(x: MatRef<'_, f64>) -> f64 {
    (0..x.ncols()).map(|j| x.col(j).iter().fold(0.0, |m: f64, v| m.max(v.abs()))).fold(0.0, f64::max)
}

/// The power of two that brings the largest entry of `q` and `r` to at most 1 (exact).
fn unit_scale(q: MatRef<'_, f64>, r: MatRef<'_, f64>) -> f64 {
    let m = max_abs(q).max(max_abs(r));
    if m > 0.0 {
        2f64.powi(-(m.log2().ceil() as i32))
    } else {
        1.0
    }
}

/// Single-precision copies scaled by [`unit_scale`], so that no data, however large or small
/// its units, overflows `f32`. On one data set (`same`) the reference is the query copy.
fn prepare(q: MatRef<'_, f64>, r: MatRef<'_, f64>, same: bool) -> Prepared {
    let scale = unit_scale(q, r);
    let to32 = |x: MatRef<'_, f64>| Mat::<f32>::from_fn(x.nrows(), x.ncols(), |i, j| (x[(i, j)] * scale) as f32);
    let q32 = to32(q);
    let r32 = (!same).then(|| to32(r));
    let qn = squared_norms(q, scale);
    let rn = if same { qn.clone() } else { squared_norms(r, scale) };
    let d = q.ncols() as f64;
    // γ for the rounding of both inputs to f32 and a length-d f32 dot product, with room.
    let gamma = 1.1 * (d + 4.0) * f64::from(f32::EPSILON) / 2.0;
    let rmax = rn.iter().copied().fold(0.0, f64::max);
    let err = qn.iter().map(|&a| 2.0 * gamma * (a * rmax).sqrt() + 1e-12 * (a + rmax) + 1e-30).collect();
    Prepared { q32, r32, qn, rn, err, scale }
}

fn search(q: MatRef<'_, f64>, r: MatRef<'_, f64>, k: usize, same: bool) -> Neighbours {
    let p = prepare(q, r, same);
    let r32 = p.r32.as_ref().unwrap_or(&p.q32);
    let keep = (k + k.max(8)).min(r.nrows() - usize::from(same));
    let mut tops: Vec<Top> = (0..q.nrows()).map(|_| Top::new(keep)).collect();
    for i0 in (0..q.nrows()).step_by(PANEL) {
        let b = PANEL.min(q.nrows() - i0);
        // Against every reference point, or (one data set) the points up to the panel's end.
        let end = if same { i0 + b } else { r.nrows() };
        let mut gt = Mat::<f32>::zeros(end, b);
        let (lhs, rhs) = (r32.subrows(0, end), p.q32.subrows(i0, b).transpose());
        faer::linalg::matmul::matmul(gt.as_mut(), Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(0));
        update_panel(&mut tops[i0..i0 + b], &gt, &p, i0, same);
        if same && i0 > 0 {
            update_earlier(&mut tops[..i0], &gt, &p, i0);
        }
    }
    let qt = q.transpose().to_owned();
    let rt_own = (!same).then(|| r.transpose().to_owned());
    let rt = rt_own.as_ref().map_or(qt.as_ref(), |m| m.as_ref());
    let rows: Vec<(Vec<f64>, Vec<usize>)> = tops
        .into_par_iter()
        .enumerate()
        .map(|(i, top)| refine(qt.as_ref(), rt, i, top, k, (p.err[i], p.scale), same))
        .collect();
    let mut out = Neighbours { k, distances: Vec::with_capacity(q.nrows() * k), indices: Vec::new() };
    out.indices.reserve(q.nrows() * k);
    for (d, ix) in rows {
        out.distances.extend(d);
        out.indices.extend(ix);
    }
    out
}

/// Entries checked together before any is pushed: most blocks hold nothing below the floor.
const RUN: usize = 16;

fn col_slice(gt: &Mat<f32>, c: usize) -> &[f32] {
    gt.col(c).try_as_col_major().expect("an owned matrix has contiguous columns").as_slice()
}

/// Rows of the panel: query `i0 + c` against reference points `0 .. gt.nrows()`.
fn update_panel(tops: &mut [Top], gt: &Mat<f32>, p: &Prepared, i0: usize, same: bool) {
    tops.par_iter_mut().enumerate().for_each(|(c, top)| {
        let (i, col) = (i0 + c, col_slice(gt, c));
        let base = p.qn[i];
        for (b, (gc, rc)) in col.chunks(RUN).zip(p.rn[..col.len()].chunks(RUN)).enumerate() {
            let below = gc.iter().zip(rc).fold(false, |h, (&g, &r)| h | (base + r - 2.0 * f64::from(g) < top.floor));
            if below {
                for (o, (&g, &r)) in gc.iter().zip(rc).enumerate() {
                    let j = b * RUN + o;
                    if !(same && j == i) {
                        top.push(base + r - 2.0 * f64::from(g), j);
                    }
                }
            }
        }
    });
}

/// Earlier points `j < i0` against the panel's points, from the same block transposed.
fn update_earlier(tops: &mut [Top], gt: &Mat<f32>, p: &Prepared, i0: usize) {
    tops.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, chunk)| {
        let j0 = ci * CHUNK;
        let qn = &p.qn[j0..j0 + chunk.len()];
        let mut floors: Vec<f64> = chunk.iter().map(|t| t.floor).collect();
        for c in 0..gt.ncols() {
            let col = &col_slice(gt, c)[j0..j0 + chunk.len()];
            let rc = p.rn[i0 + c];
            let below =
                col.iter().zip(qn).zip(&floors).fold(false, |h, ((&g, &q), &f)| h | (q + rc - 2.0 * f64::from(g) < f));
            if below {
                for (o, top) in chunk.iter_mut().enumerate() {
                    top.push(qn[o] + rc - 2.0 * f64::from(col[o]), i0 + c);
                    floors[o] = top.floor;
                }
            }
        }
    });
}

/// `|q_i - r_j|²` in units scaled by `scale` (a power of two: exact, and no overflow), from
/// the transposed copies (a point is a contiguous column).
fn exact_sq(qt: MatRef<'_, f64>, i: usize, rt: MatRef<'_, f64>, j: usize, scale: f64) -> f64 {
    let (a, b) =
        (qt.col(i).try_as_col_major().expect("owned column"), rt.col(j).try_as_col_major().expect("owned column"));
    // Eight independent partial sums, so the loop vectorises.
    let (a, b) = (a.as_slice(), b.as_slice());
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| ((x - y) * scale).powi(2)).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let v = (x[l] - y[l]) * scale;
            acc[l] += v * v;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Exact distances of query `i`'s candidates; the whole reference when the candidates are
/// not certified to contain the `k` nearest.
fn refine(
    qt: MatRef<'_, f64>,
    rt: MatRef<'_, f64>,
    i: usize,
    top: Top,
    k: usize,
    (err, scale): (f64, f64),
    same: bool,
) -> (Vec<f64>, Vec<usize>) {
    let (cands, floor) = top.finish();
    let certified = cands.len() >= k && floor > cands[k - 1].0 + 2.0 * err;
    let pool: Vec<usize> = if certified {
        // Only candidates that may still be among the k nearest need an exact distance.
        let reach = cands[k - 1].0 + 2.0 * err;
        cands.iter().take_while(|c| c.0 <= reach).map(|c| c.1).collect()
    } else {
        (0..rt.ncols()).filter(|&j| !(same && j == i)).collect()
    };
    sorted_exact(qt, i, rt, pool, k, scale)
}

/// The `k` nearest of `pool` to query `i` by exact distances, ties by index (points are
/// the columns of `qt` and `rt`).
fn sorted_exact(
    qt: MatRef<'_, f64>,
    i: usize,
    rt: MatRef<'_, f64>,
    pool: Vec<usize>,
    k: usize,
    scale: f64,
) -> (Vec<f64>, Vec<usize>) {
    let mut exact: Vec<(f64, usize)> = pool.into_iter().map(|j| (exact_sq(qt, i, rt, j, scale), j)).collect();
    exact.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    exact.truncate(k);
    exact.into_iter().map(|(d2, j)| (d2.sqrt() / scale, j)).unzip()
}

/// Brute force in double precision (distances as in [`knn`], in units scaled by a power of
/// two): the reference the tests compare [`knn`] with.
#[doc(hidden)]
pub fn knn_brute_force(queries: MatRef<'_, f64>, reference: MatRef<'_, f64>, k: usize, same: bool) -> Neighbours {
    let scale = unit_scale(queries, reference);
    let (qt, rt) = (queries.transpose().to_owned(), reference.transpose().to_owned());
    let mut out = Neighbours { k, distances: Vec::new(), indices: Vec::new() };
    for i in 0..queries.nrows() {
        let pool = (0..reference.nrows()).filter(|&j| !(same && j == i)).collect();
        let (d, ix) = sorted_exact(qt.as_ref(), i, rt.as_ref(), pool, k, scale);
        out.distances.extend(d);
        out.indices.extend(ix);
    }
    out
}
