//! The point sets as the search uses them: every point a contiguous column in double
//! precision (the exact distances), its screening coordinates in single precision, and on a
//! principal basis its further coordinates and the distances off the basis's leading parts.

use super::frame::{gamma, power_scale, unit_scale, Basis, Frame};
use super::refine;
use super::screen::Refs;
use faer::prelude::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::ops::Range;

/// Points as the contiguous columns of a `d × n` matrix.
pub(super) struct Columns<T> {
    pub(super) data: Vec<T>,
    pub(super) d: usize,
}

impl<T> Columns<T> {
    pub(super) fn mat(&self) -> MatRef<'_, T> {
        MatRef::from_column_major_slice(&self.data, self.d, self.data.len() / self.d)
    }

    /// Point `j`'s coordinates.
    pub(super) fn col(&self, j: usize) -> &[T] {
        &self.data[j * self.d..(j + 1) * self.d]
    }
}

/// One point set as the search uses it.
pub(super) struct Points {
    /// `d × n`, unscaled: the exact distances.
    pub(super) exact: Columns<f64>,
    /// `m × n`, the screening coordinates of [`Frame`] rounded to `f32`: the products.
    pub(super) screen: Columns<f32>,
    /// Squared norms of the centred, scaled points (the screen's units).
    pub(super) norms: Vec<f64>,
    /// Half of each norm in `f32`, and the largest norm: what the screens compare with.
    pub(super) halves: Vec<f32>,
    pub(super) max_norm: f64,
    /// Each point's distance off the screen's basis (zeros without one).
    pub(super) rho: Vec<f64>,
    /// On a principal basis, the coordinates past the screen's.
    pub(super) deep: Option<Deep>,
}

/// The coordinates of a principal basis past the screen's, read candidate by candidate in
/// blocks of [`DEEP_BLOCK`].
pub(super) struct Deep {
    /// `(deep - screen) × n`, rounded to `f32`.
    pub(super) coords: Columns<f32>,
    /// `levels × n`: each point's distance off the first `screen + ends[t]` directions.
    pub(super) rho: Columns<f64>,
}

/// Coordinates read per step of the pairwise refinement.
pub(super) const DEEP_BLOCK: usize = 64;

impl Points {
    pub(super) fn refs(&self, r: Range<usize>) -> Refs<'_> {
        Refs { norms: &self.norms[r.clone()], halves: &self.halves[r.clone()], start: r.start }
    }
}

/// Both point sets, prepared, with what the bounds need.
pub(super) struct Prepared {
    pub(super) q: Points,
    /// `None` on one data set: the reference is `q`.
    pub(super) r: Option<Points>,
    /// Bound on the error of one screened value, per query: `ľ - err` is a lower bound on
    /// the squared distance (screen units).
    pub(super) err: Vec<f64>,
    /// Candidates kept per query.
    pub(super) keep: usize,
    /// The power of two the exact distances are computed at (no overflow, no underflow).
    pub(super) scale: f64,
    /// Screen units per exact unit, squared (a power of two): an exact squared distance
    /// times `unit2` is in the screen's units.
    pub(super) unit2: f64,
    /// On a principal basis: the ends of the blocks of deep coordinates, and the relative
    /// error of the double-precision projections (`ε`, [`eps_projection`]).
    pub(super) deep: Option<(Vec<usize>, f64)>,
}

impl Prepared {
    pub(super) fn reference(&self) -> &Points {
        self.r.as_ref().unwrap_or(&self.q)
    }
}

/// Points per parallel task of the conversions.
const CONVERT: usize = 64;

/// A generous bound `ε` on the relative error of projections in double precision: on a basis
/// of `m` directions orthonormal to rounding, `|P c|²` and `|c|² - |P c|²` are within
/// `ε |c|²` of their exact values, and each distance off the basis within `√ε |c|`.
pub(super) fn eps_projection(d: usize, m: usize) -> f64 {
    64.0 * (d + m + 8) as f64 * f64::EPSILON / 2.0
}

/// Per block of points (`ex`, `d × cnt`, contiguous columns): the centred, scaled points and
/// their squared norms.
fn centred(ex: MatRef<'_, f64>, frame: &Frame) -> (Mat<f64>, Vec<f64>) {
    let (pre, sc) = (frame.pre, frame.scale);
    let mut c = Mat::<f64>::zeros(ex.nrows(), ex.ncols());
    for (mut dst, src) in c.col_iter_mut().zip(ex.col_iter()) {
        let src = src.try_as_col_major().expect("owned column").as_slice();
        let dst = dst.rb_mut().try_as_col_major_mut().expect("owned column").as_slice_mut();
        dst.iter_mut().zip(src).zip(&frame.mean).for_each(|((o, &v), &mu)| *o = (v * pre - mu) * sc);
    }
    let sq = c.col_iter().map(|v| v.iter().map(|x| x * x).sum()).collect();
    (c, sq)
}

/// What one block of points gives besides its exact columns: squared norms, distances off
/// the screen's basis, and the deep coordinates and distances.
struct Block {
    sq: Vec<f64>,
    rho: Vec<f64>,
    deep: Option<(Vec<f32>, Vec<f64>)>,
}

/// The screen (and deep) coordinates of one block of centred points `c` on a spanning
/// basis: the coordinates, then the remainder and its length, computed from the remainder
/// itself (not as a difference of squared norms, which would cancel).
fn on_span(basis: &Mat<f64>, mut c: Mat<f64>, mut out: MatMut<'_, f32>) -> Vec<f64> {
    let (m, cnt) = (basis.ncols(), c.ncols());
    let mut coords = Mat::<f64>::zeros(m, cnt);
    faer::linalg::matmul::matmul(coords.as_mut(), Accum::Replace, basis.transpose(), c.as_ref(), 1.0, Par::Seq);
    out.rb_mut().subrows_mut(0, m).copy_from(coords.as_ref().map(|&v| v as f32));
    faer::linalg::matmul::matmul(c.as_mut(), Accum::Add, basis.as_ref(), coords.as_ref(), -1.0, Par::Seq);
    let rho: Vec<f64> = c.col_iter().map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt()).collect();
    out.row_mut(m).iter_mut().zip(&rho).for_each(|(o, &r)| *o = r as f32);
    rho
}

/// The coordinates of one block of centred points `c` (squared norms `sq`) on principal
/// directions: the first `screen` and the distance off them into `out`, the rest as the deep
/// coordinates, and the distance off the first `screen + e` directions for each block end
/// `e`, from the squared norms (the points lie well off these directions: the cancellation
/// is bounded by [`eps_projection`]).
fn on_principal(
    dirs: &Mat<f64>,
    screen: usize,
    ends: &[usize],
    c: &Mat<f64>,
    sq: &[f64],
    mut out: MatMut<'_, f32>,
) -> Block {
    let (m, cnt) = (dirs.ncols(), c.ncols());
    let mut coords = Mat::<f64>::zeros(m, cnt);
    faer::linalg::matmul::matmul(coords.as_mut(), Accum::Replace, dirs.transpose(), c.as_ref(), 1.0, Par::Seq);
    let (mut deep, mut deep_rho) = (Vec::with_capacity((m - screen) * cnt), Vec::with_capacity(ends.len() * cnt));
    let mut rho = Vec::with_capacity(cnt);
    let off = |total: f64, on: f64| (total - on).max(0.0).sqrt();
    for (p, col) in coords.col_iter().enumerate() {
        let col = col.try_as_col_major().expect("owned column").as_slice();
        let mut on: f64 = col[..screen].iter().map(|v| v * v).sum();
        rho.push(off(sq[p], on));
        out.rb_mut().col_mut(p).iter_mut().zip(&col[..screen]).for_each(|(o, &v)| *o = v as f32);
        out[(screen, p)] = rho[p] as f32;
        deep.extend(col[screen..].iter().map(|&v| v as f32));
        let mut at = screen;
        for &e in ends {
            on += col[at..screen + e].iter().map(|v| v * v).sum::<f64>();
            at = screen + e;
            deep_rho.push(off(sq[p], on));
        }
    }
    Block { sq: sq.to_vec(), rho, deep: Some((deep, deep_rho)) }
}

/// The ends of the blocks of deep coordinates (relative to the screen's last direction).
fn deep_ends(frame: &Frame) -> Vec<usize> {
    match &frame.basis {
        Basis::Principal { dirs, screen } => {
            let len = dirs.ncols() - screen;
            (1..=len.div_ceil(DEEP_BLOCK)).map(|b| (b * DEEP_BLOCK).min(len)).collect()
        }
        _ => Vec::new(),
    }
}

/// The points of `x` (its rows) as columns, their screening (and deep) coordinates in
/// `frame`, in one parallel pass over blocks of points (each block converted while its
/// transpose is still in cache; the projections as products per block).
pub(super) fn points(x: MatRef<'_, f64>, frame: &Frame) -> Points {
    let (d, n, m) = (x.ncols(), x.nrows(), frame.dim());
    let ends = deep_ends(frame);
    // Zeroed by the system: the pages are first touched by the tasks that fill them.
    let (mut exact, mut screen) = (vec![0.0f64; d * n], vec![0f32; m * n]);
    let blocks: Vec<Block> = exact
        .par_chunks_mut(d * CONVERT)
        .zip(screen.par_chunks_mut(m * CONVERT))
        .enumerate()
        .map(|(b, (e, s))| {
            let cnt = e.len() / d;
            MatMut::from_column_major_slice_mut(&mut *e, d, cnt).copy_from(x.subrows(b * CONVERT, cnt).transpose());
            let (c, sq) = centred(MatRef::from_column_major_slice(&*e, d, cnt), frame);
            let mut out = MatMut::from_column_major_slice_mut(s, m, cnt);
            match &frame.basis {
                Basis::Full => {
                    out.copy_from(c.as_ref().map(|&v| v as f32));
                    Block { rho: vec![0.0; cnt], sq, deep: None }
                }
                Basis::Span(basis) => Block { rho: on_span(basis, c, out), sq, deep: None },
                Basis::Principal { dirs, screen } => on_principal(dirs, *screen, &ends, &c, &sq, out),
            }
        })
        .collect();
    assemble(blocks, exact, screen, d, m, &ends)
}

/// The per-block parts gathered into one [`Points`].
fn assemble(blocks: Vec<Block>, exact: Vec<f64>, screen: Vec<f32>, d: usize, m: usize, ends: &[usize]) -> Points {
    let norms: Vec<f64> = blocks.iter().flat_map(|b| b.sq.iter().copied()).collect();
    let rho = blocks.iter().flat_map(|b| b.rho.iter().copied()).collect();
    let deep = (!ends.is_empty()).then(|| {
        let (coords, rho): (Vec<Vec<f32>>, Vec<Vec<f64>>) =
            blocks.into_iter().map(|b| b.deep.expect("deep coordinates on a principal basis")).unzip();
        let width = *ends.last().expect("ends");
        Deep { coords: Columns { data: coords.concat(), d: width }, rho: Columns { data: rho.concat(), d: ends.len() } }
    });
    let halves = norms.iter().map(|&r| (0.5 * r) as f32).collect();
    let max_norm = norms.iter().copied().fold(0.0, f64::max);
    Points {
        exact: Columns { data: exact, d },
        screen: Columns { data: screen, d: m },
        norms,
        halves,
        max_norm,
        rho,
        deep,
    }
}

/// Points as columns, their screening coordinates (centred, scaled by one power of two so
/// that no data, however large or small its units, overflows `f32`, and projected when a
/// basis pays) and their norms, in parallel. On one data set (`same`) the reference is the
/// query set.
///
/// What the screen computes, `ľ_ij = |c_i|² + |c_j|² - 2 s_i·s_j` (`c` the centred scaled
/// points, `s` their screening coordinates), is the squared distance itself without a basis;
/// with one it is `|P c_i - P c_j|² + (ρ_i - ρ_j)²` (`P` the coordinates on the basis, `ρ`
/// the length left off it, the screen's last coordinate), a lower bound. The bound on the
/// error of `ľ` (`err`): `2γ_m |c_i||c_max|` for the single-precision product of length `m`
/// (`|s| = |c|`), and `1e-12 (|c_i|² + max |c|²)` for the double-precision roundings of
/// centring, projecting and a basis orthonormal only to rounding; on principal directions,
/// whose `ρ` come from squared norms, also `4√ε (|c_i| + |c_max|)²` ([`eps_projection`]).
///
/// A spanning basis that leaves out more than the screen resolves is replaced by principal
/// directions where they may pay; principal directions are kept only where a sample of
/// queries says they pay ([`refine::estimate`]), which also sets the candidates kept.
pub(super) fn prepare(q: MatRef<'_, f64>, r: MatRef<'_, f64>, same: bool, k: usize) -> Prepared {
    let scale = if same { power_scale(super::frame::max_abs(q)) } else { unit_scale(q, r) };
    let mut frame = Frame::new((!same).then_some(q), r, scale, true);
    let available = r.nrows() - usize::from(same);
    loop {
        let qp = points(q, &frame);
        let rp = (!same).then(|| points(r, &frame));
        let rmax = rp.as_ref().map_or(qp.max_norm, |p| p.max_norm);
        let rho_max = rp.iter().flat_map(|p| &p.rho).chain(&qp.rho).copied().fold(0.0, f64::max);
        if matches!(frame.basis, Basis::Span(_)) && rho_max * rho_max > gamma(q.ncols()) * rmax {
            frame.use_principal(r);
            continue;
        }
        let deep = match &frame.basis {
            Basis::Principal { dirs, .. } => Some((deep_ends(&frame), eps_projection(q.ncols(), dirs.ncols()))),
            _ => None,
        };
        let g = gamma(frame.dim());
        let slack = deep.as_ref().map_or(0.0, |(_, eps)| 4.0 * eps.sqrt());
        let err = qp
            .norms
            .iter()
            .map(|&a| {
                2.0 * g * (a * rmax).sqrt() + 1e-12 * (a + rmax) + slack * (a.sqrt() + rmax.sqrt()).powi(2) + 1e-30
            })
            .collect();
        let unit2 = frame.scale * frame.scale;
        let principal = deep.is_some();
        let mut p = Prepared { q: qp, r: rp, err, keep: refine::kept(k, available), scale, unit2, deep };
        if principal {
            match refine::estimate(&p, k, same, available) {
                Some(keep) => p.keep = keep,
                None => {
                    frame.basis = Basis::Full;
                    continue;
                }
            }
        }
        return p;
    }
}
