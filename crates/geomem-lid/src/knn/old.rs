//! Exact k nearest neighbours by batched GEMM.
//!
//! Squared distances `|q|² + |r|² - 2 q·r` come from single-precision matrix products (twice
//! the speed of double) in tiles of at most 256 × 256 points, each tile screened while it is
//! still in the core's cache: each query keeps its `k + k/8 + 4` best candidates (more on a
//! principal basis, below), and their distances are then recomputed exactly in double
//! precision as `√Σ(q - r)²`. The
//! single-precision pass only has to be right about *which* points are candidates: with
//! `err` a bound on the error of one approximate squared distance, every one of a query's
//! `k` nearest has an approximate squared distance within `a_k + 2 err` of its `k`-th
//! candidate's `a_k`. A query whose left-out points all lie beyond that reach measures its
//! candidates within reach; any other (near-equal distances, duplicates) gets a second
//! product against the whole reference that collects every point within reach. The result
//! equals a brute-force double-precision search (`tests/knn.rs`), ties broken by the smaller
//! index.
//!
//! The screen works in centred coordinates (the reference's mean subtracted, so that single
//! precision resolves the data's spread however far they lie from the origin), and on a
//! basis of `m` orthonormal directions where one pays: the `m` coordinates on it and, as
//! coordinate `m + 1`, each point's distance `ρ` off it. The screened value is then
//! `|P q - P r|² + (ρ_q - ρ_r)²`, a lower bound on the squared distance, loose by at most
//! `4 ρ_q ρ_r`, and the reach above widens by that term, candidate by candidate. The basis
//! is the subspace the reference spans where it spans a low-dimensional one (to what single
//! precision resolves; a linear manifold of `geomem-data`, say: `ρ ≈ 0`), else, with enough
//! points and coordinates, its leading principal directions (a randomised range finder on a
//! sample), kept where a sample of queries shows that the wider reach costs fewer exact
//! distances than the shorter product saves (a curved manifold, say), with as many more
//! candidates kept as that sample needed. The error bound of an `f32` dot product of length
//! `m`, `γ_m |q||r|` with `γ_m ≈ (m + 2)·2⁻²⁴`, holds whatever the summation order.
//!
//! On one data set (`knn_self`) only the tiles of the lower block triangle are multiplied,
//! each updating the points of both its blocks: half the products of a full search. A pair
//! that both points list is measured exactly once.

use crate::error::{check_points, check_width, param, Result};
use faer::prelude::{IntoConst, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

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
/// no dropped or rejected candidate lies. Candidates below the floor are appended; when
/// `keep + keep / 2 + 4` are held, the `keep` smallest are selected and the floor falls to
/// the smallest dropped one.
struct Top {
    keep: usize,
    cap: usize,
    items: Vec<(f64, usize)>,
    floor: f64,
}

impl Top {
    fn new(keep: usize) -> Self {
        let cap = keep + keep / 2 + 4;
        Self { keep, cap, items: Vec::with_capacity(cap), floor: f64::INFINITY }
    }

    #[inline]
    fn push(&mut self, a: f64, j: usize) {
        if a < self.floor {
            self.items.push((a, j));
            if self.items.len() == self.cap {
                self.shrink();
            }
        }
    }

    /// Whether nothing was offered yet.
    fn fresh(&self) -> bool {
        self.items.is_empty() && self.floor == f64::INFINITY
    }

    /// Offers every candidate of `all` at once (a fresh top): one selection instead of a
    /// push and, every `cap - keep` pushes, a selection each. `scratch` holds them meanwhile.
    fn fill(&mut self, all: impl Iterator<Item = (f64, usize)>, scratch: &mut Vec<(f64, usize)>) {
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
    fn finish(mut self) -> (Vec<(f64, usize)>, f64) {
        self.items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if self.items.len() > self.keep {
            self.floor = self.floor.min(self.items[self.keep].0);
            self.items.truncate(self.keep);
        }
        (self.items, self.floor)
    }
}

/// Points as the contiguous columns of a `d × n` matrix.
struct Columns<T> {
    data: Vec<T>,
    d: usize,
}

impl<T> Columns<T> {
    fn mat(&self) -> MatRef<'_, T> {
        MatRef::from_column_major_slice(&self.data, self.d, self.data.len() / self.d)
    }
}

/// One point set as the search uses it: every point a contiguous column.
struct Points {
    /// `d × n`, unscaled: the exact distances.
    exact: Columns<f64>,
    /// `m × n`, the screening coordinates of [`Frame`] rounded to `f32`: the products.
    screen: Columns<f32>,
    /// Squared norms of the centred, scaled points (the screen's units).
    norms: Vec<f64>,
    /// Half of each norm in `f32`, and the largest norm: what the screens compare with.
    halves: Vec<f32>,
    max_norm: f64,
}

struct Prepared {
    q: Points,
    /// `None` on one data set: the reference is `q`.
    r: Option<Points>,
    /// Bound on the error of one screened value, per query.
    err: Vec<f64>,
    /// What the basis leaves out of each query and reference point (zeros without one).
    q_rho: Vec<f64>,
    r_rho: Option<Vec<f64>>,
    /// Candidates kept per query.
    keep: usize,
    /// The power of two the exact distances are computed at (no overflow, no underflow).
    scale: f64,
}

/// Reference points `start ..` of a tile, as the screens see them.
#[derive(Clone, Copy)]
struct Refs<'a> {
    norms: &'a [f64],
    halves: &'a [f32],
    start: usize,
}

impl Points {
    fn refs(&self, r: Range<usize>) -> Refs<'_> {
        Refs { norms: &self.norms[r.clone()], halves: &self.halves[r.clone()], start: r.start }
    }
}

impl Prepared {
    fn reference(&self) -> &Points {
        self.r.as_ref().unwrap_or(&self.q)
    }

    fn reference_rho(&self) -> &[f64] {
        self.r_rho.as_ref().unwrap_or(&self.q_rho)
    }
}

/// Points per parallel task of the conversions.
const CONVERT: usize = 64;

/// The largest absolute entry of `x`, in parallel over its columns.
fn max_abs(x: MatRef<'_, f64>) -> f64 {
    (0..x.ncols())
        .into_par_iter()
        .map(|j| x.col(j).iter().fold(0.0, |m: f64, v| m.max(v.abs())))
        .reduce(|| 0.0, f64::max)
}

/// The power of two that brings `max_abs` to at most 1 (exact), its exponent kept within
/// ±1000 so that the factor itself is finite (subnormal data are brought to at most 2⁻⁵⁰).
fn power_scale(max_abs: f64) -> f64 {
    if max_abs > 0.0 {
        2f64.powi((-max_abs.log2().ceil()).clamp(-1000.0, 1000.0) as i32)
    } else {
        1.0
    }
}

/// The power of two that brings the largest entry of `q` and `r` to at most 1 (exact).
fn unit_scale(q: MatRef<'_, f64>, r: MatRef<'_, f64>) -> f64 {
    power_scale(max_abs(q).max(max_abs(r)))
}

/// The coordinates the screening products work in: centred on the reference's mean
/// (distances do not change, and single precision then resolves the data's spread rather
/// than their distance from the origin), scaled by a power of two that brings the largest
/// centred entry to at most 1, and, where the reference spans a low-dimensional subspace,
/// projected on an orthonormal basis of it.
struct Frame {
    /// The power of two applied before anything else (the exact search's), so that no sum
    /// or difference of coordinates overflows.
    pre: f64,
    /// The mean of the pre-scaled reference.
    mean: Vec<f64>,
    scale: f64,
    /// `d × m`, orthonormal columns: the screen is then the `m` coordinates on it and, as
    /// coordinate `m + 1`, what each point leaves off it (`ρ`).
    basis: Option<Mat<f64>>,
    /// Whether `basis` holds principal directions (the points lie off it) rather than the
    /// span of the sample (they lie on it, to what single precision resolves).
    principal: bool,
}

/// Points sampled for the subspace the reference spans.
const SAMPLE: usize = 64;

impl Frame {
    /// The reference's mean, the largest centred entry of `r` and of the queries `q` (`None`:
    /// the reference itself), and (`project`) the subspace the reference spans, in parallel
    /// over the coordinates.
    fn new(q: Option<MatRef<'_, f64>>, r: MatRef<'_, f64>, pre: f64, project: bool) -> Self {
        let n = r.nrows() as f64;
        let mean: Vec<f64> =
            (0..r.ncols()).into_par_iter().map(|j| r.col(j).iter().map(|v| v * pre).sum::<f64>() / n).collect();
        let spread = |x: MatRef<'_, f64>| {
            (0..x.ncols())
                .into_par_iter()
                .map(|j| x.col(j).iter().fold(0.0, |m: f64, v| m.max((v * pre - mean[j]).abs())))
                .reduce(|| 0.0, f64::max)
        };
        let scale = power_scale(q.map_or(0.0, spread).max(spread(r)));
        let mut frame = Self { pre, mean, scale, basis: None, principal: false };
        if project {
            frame.basis = span(r, pre, &frame.mean);
            if frame.basis.is_none() {
                frame.use_principal(r);
            }
        }
        frame
    }

    /// Principal directions of the reference as the basis, where it has enough points and
    /// coordinates for them to pay; else none.
    fn use_principal(&mut self, r: MatRef<'_, f64>) {
        let m = PRINCIPAL.min(r.ncols() / 4);
        let eligible = m >= PRINCIPAL_LEAST && r.nrows() >= PRINCIPAL_POINTS;
        self.basis = if eligible { principal(r, self.pre, &self.mean, m) } else { None };
        self.principal = self.basis.is_some();
    }

    /// The screen's dimension.
    fn dim(&self) -> usize {
        self.basis.as_ref().map_or(self.mean.len(), |b| b.ncols() + 1)
    }
}

/// Principal directions screened in (at most; a quarter of the coordinates when fewer).
const PRINCIPAL: usize = 128;
/// Fewest principal directions worth a basis, and fewest reference points: below either the
/// full product is cheap anyway.
const PRINCIPAL_LEAST: usize = 32;
const PRINCIPAL_POINTS: usize = 1024;
/// Reference points sampled for the principal directions.
const PRINCIPAL_SAMPLE: usize = 1024;
/// Largest share of the sample's spread the directions may leave out before they are not
/// even tried (measured on the benchmark data of `lid_speed`, 128 directions: 63 % for white
/// noise in 784 dimensions, 1.3 % for the curved points).
const PRINCIPAL_LEFT: f64 = 0.25;

/// `m` leading principal directions (`d × m`, orthonormal columns) of [`PRINCIPAL_SAMPLE`]
/// evenly spaced reference points around `mean`, by a randomised range finder (Halko,
/// Martinsson & Tropp 2011, Alg. 4.3 with one power iteration; `m/4` extra columns, a fixed
/// pseudo-random test matrix). Only their quality depends on the sample and the seed, and it changes only how
/// fast the search runs: each point's distance off the basis is measured, and the search's
/// bounds hold for any orthonormal basis. `None` if the small eigenproblem fails or the
/// directions leave out more than [`PRINCIPAL_LEFT`] of the sample's spread.
fn principal(r: MatRef<'_, f64>, pre: f64, mean: &[f64], m: usize) -> Option<Mat<f64>> {
    let (n, d) = (r.nrows(), r.ncols());
    let s = PRINCIPAL_SAMPLE.min(n);
    // Filled as its transpose: down each column of `r`.
    let at = Mat::from_fn(s, d, |t, j| r[(t * n / s, j)] * pre - mean[j]);
    let a = at.transpose();
    let p = (m + m / 4).min(s);
    // Test matrix: uniform entries in [-1, 1) from SplitMix64 (any full-rank random matrix
    // serves the range finder).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    };
    let omega = Mat::from_fn(s, p, |_, _| uniform());
    let y = a * (a.transpose() * (a * &omega));
    let q = y.qr().compute_thin_Q();
    let b = q.transpose() * a;
    let evd = (&b * b.transpose()).self_adjoint_eigen(faer::Side::Lower).ok()?;
    let values = evd.S().column_vector();
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| values[y].total_cmp(&values[x]));
    let m = m.min(p);
    // Hopeless where the directions leave out much of the sample's spread: not worth the pass
    // that measures every point against them.
    let spread = a.squared_norm_l2();
    let captured: f64 = order[..m].iter().map(|&l| values[l]).sum();
    if spread - captured > PRINCIPAL_LEFT * spread {
        return None;
    }
    let u = evd.U();
    Some(q * Mat::from_fn(p, m, |i, l| u[(i, order[l])]))
}

/// An orthonormal basis (`d × m`) of the subspace that [`SAMPLE`] evenly spaced reference
/// points span around `mean`, by Gram–Schmidt applied twice, leaving out directions shorter
/// than `√γ_d / 10` of the longest sample (below what a single-precision screen resolves);
/// `None` unless `m` is small enough for the projection to pay (`2m < SAMPLE`, `4m <= d`).
/// The basis only has to be orthonormal: how far each point lies off it is measured point
/// by point ([`points`]) and enters the error bound.
fn span(r: MatRef<'_, f64>, pre: f64, mean: &[f64]) -> Option<Mat<f64>> {
    let (n, d) = (r.nrows(), r.ncols());
    let s = SAMPLE.min(n);
    let sample: Vec<Vec<f64>> = (0..s).map(|t| (0..d).map(|j| r[(t * n / s, j)] * pre - mean[j]).collect()).collect();
    let longest = sample.iter().map(|v| norm(v)).fold(0.0, f64::max);
    let tol = gamma(d).sqrt() / 10.0 * longest;
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for mut w in sample {
        for _ in 0..2 {
            for b in &basis {
                let c: f64 = b.iter().zip(&w).map(|(x, y)| x * y).sum();
                w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        let len = norm(&w);
        if len > tol {
            basis.push(w.into_iter().map(|x| x / len).collect());
        }
        if 2 * basis.len() >= SAMPLE || 4 * basis.len() > d {
            return None;
        }
    }
    (!basis.is_empty()).then(|| Mat::from_fn(d, basis.len(), |j, c| basis[c][j]))
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// γ for the rounding of both inputs to f32 and a length-`d` f32 dot product, with room.
fn gamma(d: usize) -> f64 {
    1.1 * (d as f64 + 4.0) * f64::from(f32::EPSILON) / 2.0
}

/// The points of `x` (its rows) as columns (`exact`, for the exact distances), their
/// screening coordinates in `frame` in single precision and the squared norms of their
/// centred, scaled coordinates, in one parallel pass over blocks of points (each block
/// converted while its transpose is still in cache; the projection as two products per
/// block); also the length of what the basis leaves out of each (scaled; 0 without a
/// basis), computed from the remainder itself (not as a difference of squared norms, which
/// would cancel).
fn points(x: MatRef<'_, f64>, frame: &Frame) -> (Points, Vec<f64>) {
    let (d, n, m) = (x.ncols(), x.nrows(), frame.dim());
    // Zeroed by the system: the pages are first touched by the tasks that fill them.
    let (mut exact, mut screen) = (vec![0.0f64; d * n], vec![0f32; m * n]);
    let (pre, sc) = (frame.pre, frame.scale);
    let col_norms = |c: MatRef<'_, f64>| -> Vec<f64> { c.col_iter().map(|v| v.iter().map(|x| x * x).sum()).collect() };
    let per_block: Vec<(Vec<f64>, Vec<f64>)> = exact
        .par_chunks_mut(d * CONVERT)
        .zip(screen.par_chunks_mut(m * CONVERT))
        .enumerate()
        .map(|(b, (e, s))| {
            let cnt = e.len() / d;
            MatMut::from_column_major_slice_mut(&mut *e, d, cnt).copy_from(x.subrows(b * CONVERT, cnt).transpose());
            let ex = MatRef::from_column_major_slice(&*e, d, cnt);
            let mut c = Mat::<f64>::zeros(d, cnt);
            for (mut dst, src) in c.col_iter_mut().zip(ex.col_iter()) {
                let src = src.try_as_col_major().expect("owned column").as_slice();
                let dst = dst.rb_mut().try_as_col_major_mut().expect("owned column").as_slice_mut();
                dst.iter_mut().zip(src).zip(&frame.mean).for_each(|((o, &x), &mu)| *o = (x * pre - mu) * sc);
            }
            let sq = col_norms(c.as_ref());
            let mut out = MatMut::from_column_major_slice_mut(s, m, cnt);
            let Some(basis) = &frame.basis else {
                out.copy_from(c.as_ref().map(|&v| v as f32));
                return (sq, vec![0.0; cnt]);
            };
            let mut coords = Mat::<f64>::zeros(m - 1, cnt);
            faer::linalg::matmul::matmul(coords.as_mut(), Accum::Replace, basis.transpose(), c.as_ref(), 1.0, Par::Seq);
            out.rb_mut().subrows_mut(0, m - 1).copy_from(coords.as_ref().map(|&v| v as f32));
            faer::linalg::matmul::matmul(c.as_mut(), Accum::Add, basis.as_ref(), coords.as_ref(), -1.0, Par::Seq);
            let rho: Vec<f64> = col_norms(c.as_ref()).into_iter().map(f64::sqrt).collect();
            out.row_mut(m - 1).iter_mut().zip(&rho).for_each(|(o, &r)| *o = r as f32);
            (sq, rho)
        })
        .collect();
    let (norms, rho): (Vec<Vec<f64>>, Vec<Vec<f64>>) = per_block.into_iter().unzip();
    let norms = norms.concat();
    let halves = norms.iter().map(|&r| (0.5 * r) as f32).collect();
    let max_norm = norms.iter().copied().fold(0.0, f64::max);
    let points =
        Points { exact: Columns { data: exact, d }, screen: Columns { data: screen, d: m }, norms, halves, max_norm };
    (points, rho.concat())
}

/// Points as columns, their screening coordinates (centred, scaled by one power of two so
/// that no data, however large or small its units, overflows `f32`, and projected when a
/// basis pays) and their norms, in parallel. On one data set (`same`) the reference is the
/// query set.
///
/// What the screen computes, `ľ_ij = |c_i|² + |c_j|² - 2 s_i·s_j` (`c` the centred scaled
/// points, `s` their screening coordinates), is the squared distance itself without a basis;
/// with one it is `|P c_i - P c_j|² + (ρ_i - ρ_j)²` (`P` the coordinates on the basis, `ρ`
/// the length left off it, the screen's last coordinate), a lower bound: the exact squared
/// distance lies in `[l_ij, l_ij + 4 ρ_i ρ_j]`. The bound on the error of `ľ` (`err`):
/// `2γ_m |c_i||c_j|` for the single-precision product of length `m` (`|s| = |c|`), and
/// `1e-12 (|c_i|² + max |c|²)` for the double-precision roundings of centring, projecting
/// and a basis orthonormal only to rounding.
///
/// A spanning basis that leaves out more than the screen resolves is replaced by principal
/// directions where they may pay; principal directions are kept only where a sample of
/// queries says they pay ([`principal_keep`]), which also sets the candidates kept.
fn prepare(q: MatRef<'_, f64>, r: MatRef<'_, f64>, same: bool, k: usize) -> Prepared {
    let scale = if same { power_scale(max_abs(q)) } else { unit_scale(q, r) };
    let mut frame = Frame::new((!same).then_some(q), r, scale, true);
    let available = r.nrows() - usize::from(same);
    loop {
        let (qp, q_rho) = points(q, &frame);
        let rp = (!same).then(|| points(r, &frame));
        let rmax = rp.as_ref().map_or(qp.max_norm, |(p, _)| p.max_norm);
        let rho_max = rp.iter().flat_map(|(_, rho)| rho).chain(&q_rho).copied().fold(0.0, f64::max);
        if frame.basis.is_some() && !frame.principal && rho_max * rho_max > gamma(q.ncols()) * rmax {
            frame.use_principal(r);
            continue;
        }
        let g = gamma(frame.dim());
        let err = qp.norms.iter().map(|&a| 2.0 * g * (a * rmax).sqrt() + 1e-12 * (a + rmax) + 1e-30).collect();
        let (r, r_rho) = rp.map_or((None, None), |(p, rho)| (Some(p), Some(rho)));
        let mut p = Prepared { q: qp, r, err, q_rho, r_rho, keep: kept(k, available), scale };
        if frame.principal {
            match principal_keep(&p, k, same, available) {
                Some(keep) => p.keep = keep,
                None => {
                    frame.basis = None;
                    frame.principal = false;
                    continue;
                }
            }
        }
        return p;
    }
}

/// Queries sampled to judge principal directions.
const ESTIMATE: usize = 128;

/// Floating-point operations of the product that cost as much as one byte of the exact
/// distances' reads (a point read from memory, at random): about 250 GFLOP/s per core in
/// the product against 13.5 GB/s per core (with prefetching) on the machine of
/// `docs/BENCHMARKS.md`.
const FLOPS_PER_BYTE: f64 = 20.0;

/// The candidates to keep per query where the projected screen pays, `None` where it does
/// not. A sample of [`ESTIMATE`] queries gives how many candidates the screen leaves each
/// (the points whose screened value lies within its reach, [`pool`]); it pays where the
/// product per query (`n (m + 1)` against `n d` multiply-adds) saves more than the exact
/// distances of the extra candidates cost (`8 d` bytes each); it keeps a quarter more than
/// the most any sampled query needed.
fn principal_keep(p: &Prepared, k: usize, same: bool, available: usize) -> Option<usize> {
    let nq = p.q.norms.len();
    let t = ESTIMATE.min(nq);
    let picks: Vec<usize> = (0..t).map(|c| c * nq / t).collect();
    let rho = p.reference_rho();
    let counts: Vec<usize> = against_all(p, &picks, same, Par::rayon(0))
        .into_par_iter()
        .zip(&picks)
        .map(|(low, &i)| {
            let reach = reach(&low, k, p.err[i], p.q_rho[i], rho);
            low.iter().filter(|l| l.0 <= reach).count()
        })
        .collect();
    let (n, m, d) = (p.reference().norms.len() as f64, p.q.screen.d as f64, p.q.exact.d as f64);
    let mean = counts.iter().sum::<usize>() as f64 / t.max(1) as f64;
    let most = counts.iter().copied().max().unwrap_or(0);
    let cost = |dim: f64, cands: f64| 2.0 * n * dim + FLOPS_PER_BYTE * 8.0 * d * cands;
    let pays = cost(m, mean) < cost(d, kept(k, available) as f64);
    pays.then(|| kept(k, available).max(most + most / 4 + 4).min(available))
}

/// Candidates kept per query for the `k` nearest of `available` points: a few more than `k`,
/// so that the `k`-th is usually certified.
fn kept(k: usize, available: usize) -> usize {
    (k + k / 8 + 4).min(available)
}

fn search(q: MatRef<'_, f64>, r: MatRef<'_, f64>, k: usize, same: bool) -> Neighbours {
    let p = prepare(q, r, same, k);
    let mut tops: Vec<Top> = (0..q.nrows()).map(|_| Top::new(p.keep)).collect();
    if same {
        scan_self(&mut tops, &p);
    } else {
        scan_cross(&mut tops, &p);
    }
    let rows = refine(&p, tops, k, same);
    let mut out = Neighbours { k, distances: Vec::with_capacity(q.nrows() * k), indices: Vec::new() };
    out.indices.reserve(q.nrows() * k);
    for (d, ix) in rows {
        out.distances.extend(d);
        out.indices.extend(ix);
    }
    out
}

/// The most points per side of a tile: one tile of products (256 KB) stays in a core's
/// cache while it is filtered.
const TILE: usize = 256;

/// `x_a · y_b` for the points `a` of `x` (rows of the tile) and `b` of `y` (columns), into
/// `buf`.
fn tile<'a>(
    buf: &'a mut [f32],
    x: MatRef<'_, f32>,
    a: Range<usize>,
    y: MatRef<'_, f32>,
    b: Range<usize>,
) -> MatRef<'a, f32> {
    let (ra, rb) = (a.len(), b.len());
    let mut g = MatMut::from_column_major_slice_mut(&mut buf[..ra * rb], ra, rb);
    let (lhs, rhs) = (x.subcols(a.start, ra).transpose(), y.subcols(b.start, rb));
    faer::linalg::matmul::matmul(g.rb_mut(), Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    g.into_const()
}

/// One tile buffer per thread of the current pool.
struct Buffers(Vec<Mutex<Vec<f32>>>);

impl Buffers {
    fn new() -> Self {
        Self((0..rayon::current_num_threads()).map(|_| Mutex::new(vec![0f32; TILE * TILE])).collect())
    }

    fn get(&self) -> MutexGuard<'_, Vec<f32>> {
        let slot = &self.0[rayon::current_thread_index().unwrap_or(0) % self.0.len()];
        // A buffer holds no invariant, so one left by a panicking task is still usable.
        slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Queries against a different reference: each task owns a block of queries and runs
/// through the reference one tile at a time.
fn scan_cross(tops: &mut [Top], p: &Prepared) {
    let r = p.reference();
    let (nq, nr) = (tops.len(), r.norms.len());
    let bufs = Buffers::new();
    tops.par_chunks_mut(TILE).enumerate().for_each(|(b, chunk)| {
        let mut buf = bufs.get();
        let bq = b * TILE..(b * TILE + TILE).min(nq);
        for a in (0..nr).step_by(TILE) {
            let ar = a..(a + TILE).min(nr);
            let g = tile(&mut buf, r.screen.mat(), ar.clone(), p.q.screen.mat(), bq.clone());
            update_cols(chunk, g, &p.q.norms[bq.clone()], r.refs(ar), r.max_norm, None);
        }
    });
}

/// Blocks of nearly equal size, at most [`TILE`], their number a multiple of 4 where the
/// points allow: the rounds of [`round_robin`] then hold an even number of equal tiles.
fn blocks(n: usize) -> Vec<Range<usize>> {
    let count = n.div_ceil(TILE).next_multiple_of(4).min(n);
    let size = n.div_ceil(count);
    (0..n).step_by(size).map(|a| a..(a + size).min(n)).collect()
}

/// One data set: only the tiles of the lower block triangle are multiplied, each updating
/// the points of both its blocks. Tiles run in the rounds of a round-robin tournament (every
/// pair of blocks meets once), so the tiles of a round touch disjoint points and run in
/// parallel; each point sees the tiles in the same order whatever the number of threads.
fn scan_self(tops: &mut [Top], p: &Prepared) {
    let (x, norms, rmax) = (p.q.screen.mat(), &p.q.norms, p.q.max_norm);
    let blocks = blocks(x.ncols());
    let bufs = Buffers::new();
    // The diagonal tiles first: each block against itself.
    split(tops, &blocks).into_par_iter().zip(&blocks).for_each(|(chunk, a)| {
        let mut buf = bufs.get();
        let g = tile(&mut buf, x, a.clone(), x, a.clone());
        let chunk = chunk.expect("every block");
        update_cols(chunk, g, &norms[a.clone()], p.q.refs(a.clone()), rmax, Some(0));
    });
    for pairs in round_robin(blocks.len()) {
        let mut slots = split(tops, &blocks);
        let work: Vec<_> = pairs
            .into_iter()
            .map(|(a, b)| {
                let taken = (slots[a].take(), slots[b].take());
                (a, b, taken.0.expect("a block once a round"), taken.1.expect("a block once a round"))
            })
            .collect();
        work.into_par_iter().for_each(|(a, b, ta, tb)| {
            let (a, b) = (blocks[a].clone(), blocks[b].clone());
            let mut buf = bufs.get();
            let g = tile(&mut buf, x, a.clone(), x, b.clone());
            update_cols(tb, g, &norms[b.clone()], p.q.refs(a.clone()), rmax, None);
            update_rows(ta, g, &norms[a], p.q.refs(b), 2.0 * rmax);
        });
    }
}

/// `tops` cut into the blocks.
fn split<'t>(tops: &'t mut [Top], blocks: &[Range<usize>]) -> Vec<Option<&'t mut [Top]>> {
    let mut rest = tops;
    blocks
        .iter()
        .map(|r| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len());
            rest = tail;
            Some(head)
        })
        .collect()
}

/// The rounds of a round-robin tournament on `n` players (circle method): every pair
/// `(a, b)`, `a < b`, exactly once, and no player twice in a round.
fn round_robin(n: usize) -> Vec<Vec<(usize, usize)>> {
    let m = n + n % 2; // a bye when n is odd
    let ring = |r: usize, i: usize| if i == 0 { m - 1 } else { (r + i - 1) % (m - 1) };
    (0..m.saturating_sub(1))
        .map(|r| {
            (0..m / 2)
                .map(|i| (ring(r, i), ring(r, m - 1 - i)))
                .filter(|&(a, b)| a < n && b < n)
                .map(|(a, b)| (a.min(b), a.max(b)))
                .collect()
        })
        .collect()
}

/// Entries screened together before any is pushed: most runs hold nothing below the floor.
const RUN: usize = 16;

/// Room for the roundings of the single-precision screen, relative to `|q|² + max |r|²`:
/// the screen passes everything the double-precision test `|q|² + |r|² - 2g < floor`
/// accepts, and a little more (2⁻¹⁸ is far above the few roundings of 2⁻²⁴ it covers).
const SCREEN_ROOM: f64 = 1.0 / (1u64 << 18) as f64;

/// `x` minus `room`, in single precision: at most `x - room + ulp`, so a screen compared
/// with it errs only towards passing.
fn lowered(x: f64, room: f64) -> f32 {
    (x - room) as f32
}

/// Query `c` of `tops` (column `c` of the tile, squared norm `qn[c]`) against the tile's
/// rows: reference points `refs.start + o` with squared norms `refs.norms[o]` (the largest
/// of all at most `rmax`). `skip` (a diagonal tile, offset 0) leaves out the query itself.
///
/// Runs of entries are screened in single precision as `g - rn/2 > (qn - floor)/2` (eight
/// or sixteen at a time: `pulp` compiles the loop for the machine's SIMD width); a run
/// that passes pushes its entries' double-precision `qn + rn - 2g`, which [`Top`] keeps
/// only below its floor.
fn update_cols(tops: &mut [Top], g: MatRef<'_, f32>, qn: &[f64], refs: Refs<'_>, rmax: f64, skip: Option<usize>) {
    let n = g.nrows();
    let (rn, half) = (&refs.norms[..n], &refs.halves[..n]);
    pulp::Arch::new().dispatch(Cols { tops, g, qn, rn, half, rmax, row0: refs.start, skip });
}

struct Cols<'a> {
    tops: &'a mut [Top],
    g: MatRef<'a, f32>,
    qn: &'a [f64],
    rn: &'a [f64],
    half: &'a [f32],
    rmax: f64,
    row0: usize,
    skip: Option<usize>,
}

impl pulp::WithSimd for Cols<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Cols { tops, g, qn, rn, half, rmax, row0, skip } = self;
        let mut scratch = Vec::new();
        for (c, top) in tops.iter_mut().enumerate() {
            let col = g.col(c).try_as_col_major().expect("a tile has contiguous columns").as_slice();
            let base = qn[c];
            if top.fresh() {
                let all = col.iter().enumerate().filter(|&(j, _)| skip.is_none_or(|s| j + s != c));
                top.fill(all.map(|(j, &g)| (base + rn[j] - 2.0 * f64::from(g), row0 + j)), &mut scratch);
                continue;
            }
            let room = SCREEN_ROOM * (base + rmax);
            let mut t = lowered(0.5 * (base - top.floor), room);
            for (b, (gc, hc)) in col.chunks(RUN).zip(half.chunks(RUN)).enumerate() {
                let mut mask =
                    gc.iter().zip(hc).enumerate().fold(0u32, |m, (o, (&g, &h))| m | (u32::from(g - h > t) << o));
                if mask != 0 {
                    while mask != 0 {
                        let o = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let j = b * RUN + o;
                        if skip.is_none_or(|s| j + s != c) {
                            top.push(base + rn[j] - 2.0 * f64::from(gc[o]), row0 + j);
                        }
                    }
                    t = lowered(0.5 * (base - top.floor), room);
                }
            }
        }
    }
}

/// The tile's rows as queries (`tops`, squared norms `qn`) against its columns: reference
/// points `refs.start + c` with squared norms `rn[c]`; `norm_sum` bounds `|q|² + |r|²`.
/// Screened like [`update_cols`], as `g - (qn - floor)/2 > rn[c]/2` down each column in
/// runs of rows.
fn update_rows(tops: &mut [Top], g: MatRef<'_, f32>, qn: &[f64], refs: Refs<'_>, norm_sum: f64) {
    let qn = &qn[..g.nrows()];
    let room = SCREEN_ROOM * norm_sum;
    pulp::Arch::new().dispatch(Rows { tops, g, qn, rn: refs.norms, room, col0: refs.start });
}

struct Rows<'a> {
    tops: &'a mut [Top],
    g: MatRef<'a, f32>,
    qn: &'a [f64],
    rn: &'a [f64],
    room: f64,
    col0: usize,
}

impl pulp::WithSimd for Rows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Rows { tops, g, qn, rn, room, col0 } = self;
        // Half the room on each side of the comparison.
        let w_of = |q: f64, t: &Top| lowered(0.5 * (q - t.floor), 0.5 * room);
        let mut w: Vec<f32> = tops.iter().zip(qn).map(|(t, &q)| w_of(q, t)).collect();
        for (c, &rc) in rn[..g.ncols()].iter().enumerate() {
            let col = g.col(c).try_as_col_major().expect("a tile has contiguous columns").as_slice();
            let t = lowered(0.5 * rc, 0.5 * room);
            for (b, (gc, wc)) in col.chunks(RUN).zip(w.chunks_mut(RUN)).enumerate() {
                let mut mask =
                    gc.iter().zip(wc.iter()).enumerate().fold(0u32, |m, (o, (&g, &w))| m | (u32::from(g - w > t) << o));
                while mask != 0 {
                    let o = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let i = b * RUN + o;
                    tops[i].push(qn[i] + rc - 2.0 * f64::from(gc[o]), col0 + c);
                    wc[o] = w_of(qn[i], &tops[i]);
                }
            }
        }
    }
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

/// Asks the cache for point `j` (column `j` of `rt`) while another is measured: the exact
/// distances read points in no order, each from memory, and a point requested one distance
/// ahead arrives about 1.4 times sooner (random 6 KB reads on this machine: 19 GB/s without,
/// 27 GB/s with). A hint only: nothing changes what is computed.
#[inline]
fn prefetch(rt: MatRef<'_, f64>, j: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let col = rt.col(j).try_as_col_major().expect("owned column").as_slice();
        let last = col.len().saturating_sub(1);
        for o in (0..col.len()).step_by(8).chain([last]) {
            // SAFETY: a prefetch reads nothing the program sees and cannot fault; the address
            // is an element of a live slice.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(col[o..].as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (rt, j);
}

/// How far a query's `k` nearest can lie, in screened units: with `low` its candidates'
/// screened values `ľ_j` (points `j`), `err` the bound on their error and `rho_i`, `rho`
/// what the basis leaves out, each candidate's exact squared distance is at most
/// `ľ_j + err + 4 ρ_i ρ_j`, so the `k`-th exact one is at most the `k`-th smallest of these,
/// and every one of the `k` nearest has `ľ <= reach`, two `err` above it (without a basis,
/// `ρ = 0`: `ľ_k + 2 err`). Infinite with fewer than `k` candidates.
fn reach(low: &[(f64, usize)], k: usize, err: f64, rho_i: f64, rho: &[f64]) -> f64 {
    if low.len() < k {
        return f64::INFINITY;
    }
    let mut upper: Vec<f64> = low.iter().map(|&(l, j)| l + 4.0 * rho_i * rho[j]).collect();
    *upper.select_nth_unstable_by(k - 1, f64::total_cmp).1 + 2.0 * err
}

/// The points query `i` must measure exactly: its candidates within [`reach`]. `Err(reach)`
/// when a point left out of the candidates may lie within reach (near ties, duplicates, a
/// loose projected screen): [`rescan`] then finds them.
fn pool(top: Top, k: usize, err: f64, rho_i: f64, rho: &[f64]) -> std::result::Result<Vec<usize>, f64> {
    let (cands, floor) = top.finish();
    let reach = reach(&cands, k, err, rho_i, rho);
    if floor > reach {
        Ok(cands.iter().filter(|c| c.0 <= reach).map(|c| c.1).collect())
    } else {
        Err(reach)
    }
}

/// Queries per product of [`rescan`].
const RESCAN: usize = 64;

/// The screened values of the queries `picks` against every reference point (but the query
/// itself on one data set, `same`): one single-precision product against the whole
/// reference; per query, `(ľ_j, j)` in reference order.
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

/// The pools of uncertified queries `(i, reach)`: every reference point (but `i` itself on
/// one data set) whose screened value for `i` is within `reach`, from a fresh
/// single-precision product against the whole reference (any summation order obeys the
/// same error bound).
fn rescan(p: &Prepared, failing: &[(usize, f64)], same: bool) -> Vec<Vec<usize>> {
    failing
        .par_chunks(RESCAN)
        .flat_map_iter(|chunk| {
            let picks: Vec<usize> = chunk.iter().map(|f| f.0).collect();
            let rows = against_all(p, &picks, same, Par::Seq);
            rows.into_iter().zip(chunk).map(|(low, &(_, reach))| {
                // A value that is not a number counts as within reach.
                let within = |l: f64| l.partial_cmp(&reach) != Some(std::cmp::Ordering::Greater);
                low.into_iter().filter(|&(l, _)| within(l)).map(|(_, j)| j).collect::<Vec<usize>>()
            })
        })
        .collect()
}

/// Exact distances of every query's pool, its `k` nearest sorted (ties by index). On one
/// data set a pair that both points list is measured once: `(a - b)²` and `(b - a)²` are
/// the same floating-point number, so the result does not depend on which point measures.
fn refine(p: &Prepared, tops: Vec<Top>, k: usize, same: bool) -> Vec<(Vec<f64>, Vec<usize>)> {
    let (qt, rt) = (p.q.exact.mat(), p.reference().exact.mat());
    let rho = p.reference_rho();
    let pools: Vec<_> =
        tops.into_par_iter().enumerate().map(|(i, top)| pool(top, k, p.err[i], p.q_rho[i], rho)).collect();
    let failing: Vec<(usize, f64)> =
        pools.iter().enumerate().filter_map(|(i, pool)| pool.as_ref().err().map(|&reach| (i, reach))).collect();
    let mut found = rescan(p, &failing, same).into_iter();
    let pools: Vec<Vec<usize>> = pools
        .into_iter()
        .map(|pool| pool.unwrap_or_else(|_| found.next().expect("one rescan per failing query")))
        .collect();
    // Where point `j < i` lists `i` too, `i` reads the distance `j` measured.
    let mirror: Vec<Vec<Option<usize>>> = pools
        .par_iter()
        .enumerate()
        .map(|(i, pool)| {
            pool.iter().map(|&j| if same && j < i { pools[j].iter().position(|&m| m == i) } else { None }).collect()
        })
        .collect();
    let measured: Vec<Vec<f64>> = pools
        .par_iter()
        .zip(&mirror)
        .enumerate()
        .map(|(i, (pool, mirror))| {
            let mut ahead = pool.iter().zip(mirror).filter(|(_, at)| at.is_none()).map(|(&j, _)| j).skip(1);
            // NaN marks a distance read from the mirrored pair below.
            pool.iter()
                .zip(mirror)
                .map(|(&j, at)| {
                    if at.is_some() {
                        return f64::NAN;
                    }
                    if let Some(next) = ahead.next() {
                        prefetch(rt, next);
                    }
                    exact_sq(qt, i, rt, j, p.scale)
                })
                .collect()
        })
        .collect();
    pools
        .par_iter()
        .zip(&mirror)
        .enumerate()
        .map(|(i, (pool, mirror))| {
            let mut exact: Vec<(f64, usize)> = pool
                .iter()
                .zip(mirror)
                .zip(&measured[i])
                .map(|((&j, at), &d2)| (at.map_or(d2, |at| measured[j][at]), j))
                .collect();
            nearest(&mut exact, k, p.scale)
        })
        .collect()
}

/// The `k` smallest of exact squared distances (scaled units), sorted, ties by index, as
/// distances in the data's units.
fn nearest(exact: &mut Vec<(f64, usize)>, k: usize, scale: f64) -> (Vec<f64>, Vec<usize>) {
    exact.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    exact.truncate(k);
    exact.iter().map(|&(d2, j)| (d2.sqrt() / scale, j)).unzip()
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
    nearest(&mut exact, k, scale)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn round_robin_meets_every_pair_once_and_no_block_twice_a_round() {
        for n in 1..=13 {
            let mut met = std::collections::BTreeSet::new();
            for round in round_robin(n) {
                let mut seen = vec![false; n];
                for (a, b) in round {
                    assert!(a < b && b < n);
                    assert!(!seen[a] && !seen[b], "n = {n}: a block twice in one round");
                    seen[a] = true;
                    seen[b] = true;
                    assert!(met.insert((a, b)), "n = {n}: ({a}, {b}) twice");
                }
            }
            assert_eq!(met.len(), n * (n - 1) / 2, "n = {n}");
        }
    }

    #[test]
    fn blocks_cover_the_points_in_equal_parts() {
        for n in [1, 2, 3, 5, 255, 256, 257, 1000, 10_000, 10_001] {
            let b = blocks(n);
            assert_eq!(b[0].start, 0);
            assert_eq!(b.last().unwrap().end, n);
            assert!(b.windows(2).all(|w| w[0].end == w[1].start));
            assert!(b.iter().all(|r| !r.is_empty() && r.len() <= TILE));
            let (lo, hi) = (b.iter().map(|r| r.len()).min().unwrap(), b.iter().map(|r| r.len()).max().unwrap());
            if n >= 4 {
                assert!(b.len().is_multiple_of(4) || hi - lo <= 1, "n = {n}: {} blocks, sizes {lo}..{hi}", b.len());
            }
        }
        assert_eq!(blocks(10_000).len(), 40);
        assert!(blocks(10_000).iter().all(|r| r.len() == 250));
    }

    /// A top holding `keep` values below `floor`, cut back once so that its floor is `floor`.
    fn full_top(keep: usize, floor: f64, rng: &mut StdRng) -> Top {
        let mut t = Top::new(keep);
        for j in 0..keep {
            t.push(floor * rng.random_range(0.5..1.0), usize::MAX - j);
        }
        while t.floor.is_infinite() {
            t.push(floor, 0);
        }
        assert_eq!(t.floor, floor);
        t
    }

    /// A tile whose entries put `qn + rn - 2g` within a few single-precision roundings of
    /// each top's floor, on both sides.
    fn tile_near_floors(qn: &[f64], rn: &[f64], floors: impl Fn(usize, usize) -> f64, rng: &mut StdRng) -> Vec<f32> {
        let mut g = vec![0f32; rn.len() * qn.len()];
        for c in 0..qn.len() {
            for o in 0..rn.len() {
                let rel = [-1e-6, -1e-7, -3e-8, 0.0, 3e-8, 1e-7, 1e-6, 0.3][rng.random_range(0..8)];
                let v = floors(o, c) * (1.0 + rel);
                g[c * rn.len() + o] = (0.5 * (qn[c] + rn[o] - v)) as f32;
            }
        }
        g
    }

    fn same_state(a: &Top, b: &Top) {
        assert_eq!(a.items, b.items);
        assert_eq!(a.floor.to_bits(), b.floor.to_bits());
    }

    /// The single-precision screens never reject an entry that the double-precision test
    /// of [`Top::push`] would take: the tops end exactly as when every entry is pushed.
    #[test]
    fn screens_reject_nothing_the_exact_test_takes() {
        let mut rng = StdRng::seed_from_u64(5);
        let (nr, nc, keep) = (37, 29, 6);
        let qn: Vec<f64> = (0..nc).map(|_| rng.random_range(0.2..1.0)).collect();
        let rn: Vec<f64> = (0..nr).map(|_| rng.random_range(0.2..1.0)).collect();
        let floor_c: Vec<f64> = (0..nc).map(|_| rng.random_range(0.1..0.8)).collect();
        let floor_r: Vec<f64> = (0..nr).map(|_| rng.random_range(0.1..0.8)).collect();
        // Columns as queries.
        let g = tile_near_floors(&qn, &rn, |_, c| floor_c[c], &mut rng);
        let gm = MatRef::from_column_major_slice(&g, nr, nc);
        let mut screened: Vec<Top> =
            floor_c.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(1))).collect();
        let mut all: Vec<Top> = floor_c.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(1))).collect();
        let halves = |v: &[f64]| v.iter().map(|&r| (0.5 * r) as f32).collect::<Vec<f32>>();
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let rh = halves(&rn);
        update_cols(&mut screened, gm, &qn, Refs { norms: &rn, halves: &rh, start: 100 }, max(&rn), None);
        for (c, top) in all.iter_mut().enumerate() {
            for o in 0..nr {
                top.push(qn[c] + rn[o] - 2.0 * f64::from(gm[(o, c)]), 100 + o);
            }
        }
        screened.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
        assert!(all.iter().any(|t| t.items.iter().any(|&(_, j)| j >= 100)), "some entries were taken");
        // Rows as queries (the tile's rows are the queries, its columns the reference).
        let g = tile_near_floors(&qn, &rn, |o, _| floor_r[o], &mut rng);
        let gm = MatRef::from_column_major_slice(&g, nr, nc);
        let mut screened: Vec<Top> =
            floor_r.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(2))).collect();
        let mut all: Vec<Top> = floor_r.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(2))).collect();
        let qh = halves(&qn);
        update_rows(&mut screened, gm, &rn, Refs { norms: &qn, halves: &qh, start: 200 }, max(&rn) + max(&qn));
        for c in 0..nc {
            for (o, top) in all.iter_mut().enumerate() {
                top.push(rn[o] + qn[c] - 2.0 * f64::from(gm[(o, c)]), 200 + c);
            }
        }
        screened.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
        assert!(all.iter().any(|t| t.items.iter().any(|&(_, j)| j >= 200)), "some entries were taken");
    }

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

    /// Copies of one point tie at distance 0 beyond any candidate list: their queries are
    /// not certified, and the second product finds every copy.
    #[test]
    fn uncertified_queries_are_rescanned_to_everything_within_reach() {
        let x =
            Mat::from_fn(300, 5, |i, j| if i < 30 { 1.0 + j as f64 } else { ((i * 7 + j * 13) % 17) as f64 * 0.37 });
        let (k, keep) = (3, kept(3, 299));
        let p = prepare(x.as_ref(), x.as_ref(), true, k);
        let mut tops: Vec<Top> = (0..300).map(|_| Top::new(keep)).collect();
        scan_self(&mut tops, &p);
        let rho = p.reference_rho();
        let failing: Vec<(usize, f64)> = tops
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| pool(t, k, p.err[i], p.q_rho[i], rho).err().map(|r| (i, r)))
            .collect();
        assert!((0..30).all(|i| failing.iter().any(|f| f.0 == i)), "every copy is uncertified");
        for ((i, _), found) in failing.iter().zip(rescan(&p, &failing, true)) {
            if *i < 30 {
                let copies: Vec<usize> = (0..30).filter(|j| j != i).collect();
                assert_eq!(found[..29], copies[..], "query {i}");
            }
        }
    }

    /// `n` points of a random `r`-dimensional subspace of `R^d` around `offset`, plus noise.
    fn subspace(n: usize, r: usize, d: usize, offset: f64, noise: f64, rng: &mut StdRng) -> Mat<f64> {
        let mut normal = || rng.sample::<f64, _>(rand_distr::StandardNormal);
        let f = Mat::from_fn(r, d, |_, _| normal());
        let z = Mat::from_fn(n, r, |_, _| normal());
        let e = Mat::from_fn(n, d, |_, _| noise * normal());
        Mat::from_fn(n, d, |i, j| offset + (0..r).map(|l| z[(i, l)] * f[(l, j)]).sum::<f64>() + e[(i, j)])
    }

    /// Which screen the integration tests' data get: projected where the points span a
    /// low-dimensional subspace to what single precision resolves, full otherwise.
    #[test]
    fn the_screen_is_projected_only_where_the_points_span_few_dimensions() {
        let mut rng = StdRng::seed_from_u64(21);
        // A basis of m vectors: m coordinates on it and the distance off it.
        let dim = |x: &Mat<f64>| prepare(x.as_ref(), x.as_ref(), true, 5).q.screen.d;
        assert_eq!(dim(&subspace(700, 3, 60, 1e3, 0.0, &mut rng)), 3 + 1);
        let slightly = subspace(700, 3, 60, 1e3, 1e-6, &mut rng);
        let p = prepare(slightly.as_ref(), slightly.as_ref(), true, 5);
        assert_eq!(p.q.screen.d, 3 + 1, "noise below the screen's resolution is left out");
        assert!(p.err.iter().all(|&e| e > 0.0));
        assert_eq!(dim(&subspace(700, 3, 60, 1e3, 1e-2, &mut rng)), 60, "resolved noise: all coordinates");
        // Point 5 is not sampled; it shifts the mean by 0.3 / 4000 only, below what the
        // sample resolves, so the basis holds the plane alone and point 5 lies off it.
        let mut outlier = subspace(4000, 2, 30, 0.0, 0.0, &mut rng);
        assert_eq!(dim(&outlier), 2 + 1);
        outlier[(5, 0)] += 0.3;
        assert_eq!(dim(&outlier), 30, "a point off the sampled plane: the projection is dropped");
        // Enough coordinates and points for principal directions: kept where most of the
        // spread lies in a few (noise of 1 % around a 3-dimensional subspace), not for white
        // noise, where they would leave nearly every point within reach.
        let (close, noise) =
            (subspace(2000, 3, 256, 0.0, 0.01, &mut rng), subspace(2000, 256, 256, 0.0, 0.0, &mut rng));
        assert_eq!(dim(&close), 64 + 1, "principal directions");
        assert_eq!(dim(&noise), 256, "white noise: all coordinates");
        // 15 % of the spread off a 40-dimensional subspace: the directions are tried (they
        // leave out less than PRINCIPAL_LEFT) and refused by the sample of queries, whose
        // nearest neighbours lie closer than what the directions leave out.
        let wide = subspace(2000, 40, 256, 0.0, 2.6, &mut rng);
        let f = Frame::new(None, wide.as_ref(), power_scale(max_abs(wide.as_ref())), false);
        assert!(principal(wide.as_ref(), f.pre, &f.mean, 64).is_some(), "tried");
        assert_eq!(dim(&wide), 256, "refused by the sample");
        assert_eq!(dim(&subspace(300, 20, 40, 0.0, 0.0, &mut rng)), 40, "too many dimensions to pay");
        // Queries off the reference's subspace: the projection is dropped.
        let (x, q) = (subspace(400, 2, 30, 0.0, 0.0, &mut rng), subspace(50, 30, 30, 0.0, 0.0, &mut rng));
        assert_eq!(prepare(q.as_ref(), x.as_ref(), false, 5).q.screen.d, 30);
    }

    /// With a basis the screen is a lower bound on the squared distance, loose by up to
    /// `4 ρ_i ρ_j`: every pair lies in `[ľ - err, ľ + err + 4 ρ_i ρ_j]` (the upper end read off
    /// [`reach`] with one candidate). Both ends are needed: some pairs lie above `ľ + err`,
    /// and the screen without its last coordinate (`ρ`) would lie above some pairs.
    #[test]
    fn the_screen_bounds_the_distance_from_both_sides() {
        let mut rng = StdRng::seed_from_u64(22);
        let x = subspace(1200, 3, 128, 0.0, 0.05, &mut rng);
        let p = prepare(x.as_ref(), x.as_ref(), true, 5);
        assert_eq!(p.q.screen.d, 32 + 1, "principal directions");
        let pre = power_scale(max_abs(x.as_ref()));
        let unit = pre * Frame::new(None, x.as_ref(), pre, true).scale;
        let (s, rho) = (p.q.screen.mat(), &p.q_rho);
        let (mut loose, mut lifted) = (0, 0);
        for i in 0..120 {
            for j in (0..120).filter(|&j| j != i) {
                let g: f64 = (0..33).map(|l| f64::from(s[(l, i)]) * f64::from(s[(l, j)])).sum();
                let low = p.q.norms[i] + p.q.norms[j] - 2.0 * g;
                let exact: f64 = (0..128).map(|l| ((x[(i, l)] - x[(j, l)]) * unit).powi(2)).sum();
                assert!(low - p.err[i] <= exact, "lower end, pair ({i}, {j}): {low} vs {exact}");
                let upper = reach(&[(low, j)], 1, p.err[i], rho[i], rho) - p.err[i];
                assert!(exact <= upper, "upper end, pair ({i}, {j}): {exact} vs {upper}");
                loose += usize::from(exact > low + p.err[i]);
                lifted += usize::from(low + 2.0 * rho[i] * rho[j] - p.err[i] > exact);
            }
        }
        assert!(loose > 0 && lifted > 0, "{loose} pairs above the screen, {lifted} below it without ρ");
    }
}
