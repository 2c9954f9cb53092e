//! The point sets as the search uses them: every point contiguous in double precision (the
//! exact distances: the caller's rows themselves where they are contiguous, a transposed
//! copy otherwise), its screening coordinates in single precision (or bfloat16 on AMX), and
//! on a principal basis its further coordinates and the distances off the basis's leading
//! parts.

use super::amx::{self, Bf16};
use super::frame::{extremes, gamma, power_scale, Basis, Frame};
use super::lattice::{self, Int8, Lattice};
use super::refine;
use super::screen::Refs;
use super::Screens;
use faer::prelude::{IntoConst, Reborrow, ReborrowMut};
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

/// The points in double precision, unscaled, each contiguous: what the exact distances
/// read.
pub(super) enum Exact<'a> {
    /// The caller's rows themselves, where each is contiguous (a row-major matrix): no copy.
    Rows(MatRef<'a, f64>),
    /// A transposed copy (`d × n`, contiguous columns), where the rows are not contiguous.
    Copy(Columns<f64>),
}

impl Exact<'_> {
    /// Point `j`'s coordinates.
    #[inline]
    pub(super) fn col(&self, j: usize) -> &[f64] {
        match self {
            Self::Rows(x) => x.row(j).try_as_row_major().expect("contiguous rows").as_slice(),
            Self::Copy(c) => c.col(j),
        }
    }

    /// The points' dimension.
    pub(super) fn d(&self) -> usize {
        match self {
            Self::Rows(x) => x.ncols(),
            Self::Copy(c) => c.d,
        }
    }
}

/// One point set as the search uses it.
pub(super) struct Points<'a> {
    /// Unscaled: the exact distances.
    pub(super) exact: Exact<'a>,
    /// The screening coordinates of [`Frame`], as the products read them.
    pub(super) screen: Screen,
    /// Squared norms of the centred, scaled points (the screen's units).
    pub(super) norms: Vec<f64>,
    /// Half of each norm in `f32`, and the largest norm: what the screens compare with.
    pub(super) halves: Vec<f32>,
    pub(super) max_norm: f64,
    /// The norms themselves, in double and single precision (the keys' error terms).
    pub(super) lens: Vec<f64>,
    pub(super) lens32: Vec<f32>,
    /// Each point's distance off the screen's basis (zeros without one); on a lattice, a
    /// bound on its distance from its lattice point (screen units).
    pub(super) rho: Vec<f64>,
    /// On a principal basis, the coordinates past the screen's.
    pub(super) deep: Option<Deep>,
    /// The caller's index of each point of the search (`None`: the caller's order), where
    /// the points were put in an order that keeps near ones together ([`ordered`]).
    pub(super) order: Option<Vec<usize>>,
}

/// The screening coordinates of a point set.
pub(super) enum Screen {
    /// `m × n`, rounded to `f32`.
    F32(Columns<f32>),
    /// All `d` centred coordinates rounded to bfloat16, for AMX tiles.
    Bf16(Bf16),
    /// All `d` coordinates as their lattice levels, signed bytes.
    I8(Int8),
}

impl Screen {
    /// The screen's dimension (AMX: the dimension rounded up to 32).
    pub(super) fn dim(&self) -> usize {
        match self {
            Self::F32(c) => c.d,
            Self::Bf16(b) => b.kp,
            Self::I8(b) => b.kp,
        }
    }
}

/// What the pairwise refinement reads of a point on a principal basis, one contiguous
/// record per point in single precision (one read from memory): [`HEAD`] entries (its norm
/// `|c|`, its distance off the screen's directions, its distance off the first
/// `screen + ends[t]` directions for each block end, zeros), then its coordinates past the
/// screen's, read in blocks of [`DEEP_BLOCK`].
pub(super) type Deep = Columns<f32>;

/// Coordinates read per step of the pairwise refinement.
pub(super) const DEEP_BLOCK: usize = 64;
/// Entries of a [`Deep`] record before the coordinates (one cache line).
pub(super) const HEAD: usize = 16;

impl<'a> Points<'a> {
    /// The point set from its parts, with the forms of the squared norms `norms` that the
    /// screens and the keys read.
    fn assemble(
        exact: Exact<'a>,
        screen: Screen,
        norms: Vec<f64>,
        rho: Vec<f64>,
        deep: Option<Deep>,
        order: Option<Vec<usize>>,
    ) -> Self {
        let halves = norms.iter().map(|&r| (0.5 * r) as f32).collect();
        let max_norm = norms.iter().copied().fold(0.0, f64::max);
        let lens: Vec<f64> = norms.iter().map(|r| r.sqrt()).collect();
        let lens32 = lens.iter().map(|&l| l as f32).collect();
        Self { exact, screen, norms, halves, max_norm, lens, lens32, rho, deep, order }
    }

    /// Point `j` of the search in double precision, unscaled.
    #[inline]
    pub(super) fn point(&self, j: usize) -> &[f64] {
        self.exact.col(self.original(j))
    }

    /// The caller's index of point `j` of the search.
    #[inline]
    pub(super) fn original(&self, j: usize) -> usize {
        self.order.as_ref().map_or(j, |o| o[j])
    }

    pub(super) fn refs(&self, r: Range<usize>) -> Refs<'_> {
        Refs {
            norms: &self.norms[r.clone()],
            halves: &self.halves[r.clone()],
            lens: &self.lens[r.clone()],
            lens32: &self.lens32[r.clone()],
            start: r.start,
        }
    }
}

/// Both point sets, prepared, with what the bounds need.
pub(super) struct Prepared<'a> {
    pub(super) q: Points<'a>,
    /// `None` on one data set: the reference is `q`.
    pub(super) r: Option<Points<'a>>,
    /// Per query, what the keys leave out of their error (the double-precision roundings):
    /// `key - err` is a lower bound on the squared distance (screen units).
    pub(super) err: Vec<f64>,
    /// Relative error bound of the screen's products (`u` of [`super::screen::key`]).
    pub(super) pair: f64,
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

impl<'a> Prepared<'a> {
    pub(super) fn reference(&self) -> &Points<'a> {
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

/// One block's share of every output: its points' exact columns, screening coordinates,
/// squared norms, distances off the screen's basis, deep coordinates and distances.
struct Out<'a> {
    exact: &'a mut [f64],
    screen: &'a mut [f32],
    sq: &'a mut [f64],
    rho: &'a mut [f64],
    deep: &'a mut [f32],
    /// On AMX, the block's bfloat16 rows; on a lattice, its rows of signed bytes (two to a
    /// `u16`).
    rows: &'a mut [u16],
    /// On a lattice, the sums of the block's signed bytes, and its groups.
    sums: &'a mut [i32],
    groups: &'a mut [u16],
}

/// `count` consecutive chunks of `per` entries of `v` (empty ones when `per` is 0; the last
/// one shorter when `v` ends first).
fn chunks<T>(v: &mut [T], per: usize, count: usize) -> Vec<&mut [T]> {
    if per == 0 {
        return (0..count).map(|_| &mut [][..]).collect();
    }
    v.chunks_mut(per).collect()
}

/// Scratch matrices of one task of the conversion, reused from block to block.
struct Scratch {
    c: Mat<f64>,
    coords: Mat<f64>,
}

/// The centred, scaled points of one block (`ex`, `d × cnt`, contiguous columns) into `c`,
/// and their squared norms into `sq`.
fn centre(ex: MatRef<'_, f64>, frame: &Frame, mut c: MatMut<'_, f64>, sq: &mut [f64]) {
    let (pre, sc) = (frame.pre, frame.scale);
    for ((mut dst, src), s) in c.rb_mut().col_iter_mut().zip(ex.col_iter()).zip(sq.iter_mut()) {
        let src = src.try_as_col_major().expect("owned column").as_slice();
        let dst = dst.rb_mut().try_as_col_major_mut().expect("owned column").as_slice_mut();
        dst.iter_mut().zip(src).zip(&frame.mean).for_each(|((o, &v), &mu)| *o = (v * pre - mu) * sc);
        *s = dst.iter().map(|x| x * x).sum();
    }
}

/// The full single-precision screen of one block (points of dimension `d`): the centred,
/// scaled points rounded to `f32`, and their squared norms (from the double-precision
/// values).
fn centre_f32(ex: MatRef<'_, f64>, frame: &Frame, out: &mut Out<'_>) {
    let (pre, sc, d) = (frame.pre, frame.scale, ex.nrows());
    for (p, src) in ex.col_iter().enumerate() {
        let src = src.try_as_col_major().expect("contiguous column").as_slice();
        let dst = &mut out.screen[p * d..(p + 1) * d];
        let mut sq = 0.0;
        for ((o, &v), &mu) in dst.iter_mut().zip(src).zip(&frame.mean) {
            let c = (v * pre - mu) * sc;
            sq += c * c;
            *o = c as f32;
        }
        out.sq[p] = sq;
    }
}

/// The screen coordinates of one block of centred points `c` on a spanning basis: the
/// coordinates, then the remainder and its length, computed from the remainder itself (not
/// as a difference of squared norms, which would cancel).
fn on_span(basis: &Mat<f64>, mut c: MatMut<'_, f64>, mut coords: MatMut<'_, f64>, out: &mut Out<'_>) {
    let m = basis.ncols();
    let mut screen = MatMut::from_column_major_slice_mut(&mut *out.screen, m + 1, c.ncols());
    faer::linalg::matmul::matmul(coords.rb_mut(), Accum::Replace, basis.transpose(), c.rb(), 1.0, Par::Seq);
    screen.rb_mut().subrows_mut(0, m).copy_from(coords.rb().map(|&v| v as f32));
    faer::linalg::matmul::matmul(c.rb_mut(), Accum::Add, basis.as_ref(), coords.rb(), -1.0, Par::Seq);
    for (p, v) in c.rb().col_iter().enumerate() {
        out.rho[p] = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        screen[(m, p)] = out.rho[p] as f32;
    }
}

/// The coordinates of one block of centred points `c` on principal directions: the first
/// `screen` and the distance off them as the screen, the rest as the deep coordinates, and
/// the distance off the first `screen + e` directions for each block end `e`, from the
/// squared norms (the points lie well off these directions: the cancellation is bounded by
/// [`eps_projection`]).
fn on_principal(
    dirs: &Mat<f64>,
    screen: usize,
    ends: &[usize],
    c: MatRef<'_, f64>,
    mut coords: MatMut<'_, f64>,
    out: &mut Out<'_>,
) {
    let (m, cnt) = (dirs.ncols(), c.ncols());
    faer::linalg::matmul::matmul(coords.rb_mut(), Accum::Replace, dirs.transpose(), c, 1.0, Par::Seq);
    let off = |total: f64, on: f64| (total - on).max(0.0).sqrt();
    let stride = HEAD + m - screen;
    for (p, col) in coords.rb().col_iter().enumerate().take(cnt) {
        let col = col.try_as_col_major().expect("owned column").as_slice();
        let mut on: f64 = col[..screen].iter().map(|v| v * v).sum();
        out.rho[p] = off(out.sq[p], on);
        let s = &mut out.screen[p * (screen + 1)..(p + 1) * (screen + 1)];
        s.iter_mut().zip(&col[..screen]).for_each(|(o, &v)| *o = v as f32);
        s[screen] = out.rho[p] as f32;
        let rec = &mut out.deep[p * stride..(p + 1) * stride];
        rec[0] = out.sq[p].sqrt() as f32;
        rec[1] = out.rho[p] as f32;
        rec[HEAD..].iter_mut().zip(&col[screen..]).for_each(|(o, &v)| *o = v as f32);
        let mut at = screen;
        for (t, &e) in ends.iter().enumerate() {
            on += col[at..screen + e].iter().map(|v| v * v).sum::<f64>();
            at = screen + e;
            rec[2 + t] = off(out.sq[p], on) as f32;
        }
    }
}

/// One block of points (`ex`, `d × cnt`, contiguous columns) on the lattice: each point's
/// signed bytes and their sum, its lattice point's squared norm (screen units) and a bound on
/// its distance from it (`rho`, with the roundings of [`Lattice::rounding`]); then the
/// block's groups.
fn on_lattice(ex: MatRef<'_, f64>, l: &Lattice, frame: &Frame, out: &mut Out<'_>) {
    let kp = lattice::padded(ex.nrows());
    let rows = lattice::as_bytes_mut(out.rows);
    for (p, src) in ex.col_iter().enumerate() {
        let src = src.try_as_col_major().expect("contiguous column").as_slice();
        (out.sums[p], out.sq[p], out.rho[p]) = lattice_point(src, l, frame, &mut rows[p * kp..(p + 1) * kp]);
    }
    lattice::pack_groups(out.rows, kp, out.groups);
}

/// One point `src` on the lattice: its signed bytes into `row`, and the sum of its bytes, its
/// squared norm and a bound on its distance from its lattice point (screen units).
fn lattice_point(src: &[f64], l: &Lattice, frame: &Frame, row: &mut [u8]) -> (i32, f64, f64) {
    let sc = frame.scale;
    let rounding = (src.len() as f64).sqrt() * l.rounding();
    let (sum, sq, off) = lattice::quantize(src, frame.pre, l, row);
    (sum, (l.h * sc).powi(2) * sq as f64, (off.sqrt() + rounding) * sc * (1.0 + 4.0 * f64::EPSILON))
}

/// The points of `x` (its rows) on the lattice `l` as [`points`] makes them, but in `order`:
/// point `p` of the search is row `order[p]` ([`super::order::spatial`]). Their exact
/// columns stay in the caller's order (the rows themselves where contiguous, else a
/// transposed copy), read through [`Points::point`].
pub(super) fn ordered<'a>(x: MatRef<'a, f64>, frame: &Frame, l: &Lattice, order: Vec<usize>) -> Points<'a> {
    let (d, n) = (x.ncols(), x.nrows());
    let exact = if x.col_stride() == 1 { Exact::Rows(x) } else { Exact::Copy(transposed(x)) };
    let mut int8 = Int8::zeros(n, d, (l.h * frame.scale).powi(2) as f32, true);
    let (mut norms, mut rho) = (vec![0.0f64; n], vec![0.0f64; n]);
    let kp = int8.kp;
    let per = CONVERT * kp / 2;
    let rows = int8.rows.as_mut_slice().par_chunks_mut(per).zip(int8.groups.as_mut_slice().par_chunks_mut(per));
    let each =
        rows.zip(int8.sums.par_chunks_mut(CONVERT)).zip(norms.par_chunks_mut(CONVERT).zip(rho.par_chunks_mut(CONVERT)));
    each.enumerate().for_each(|(b, (((rows, groups), sums), (sq, rho)))| {
        let bytes = lattice::as_bytes_mut(rows);
        for t in 0..sq.len() {
            let src = exact.col(order[b * CONVERT + t]);
            (sums[t], sq[t], rho[t]) = lattice_point(src, l, frame, &mut bytes[t * kp..(t + 1) * kp]);
        }
        lattice::pack_groups(rows, kp, groups);
    });
    Points::assemble(exact, Screen::I8(int8), norms, rho, None, Some(order))
}

/// The points of `x` (its rows) as the columns of a copy, in parallel.
fn transposed(x: MatRef<'_, f64>) -> Columns<f64> {
    let d = x.ncols();
    let mut data = vec![0.0f64; x.nrows() * d];
    data.par_chunks_mut(d * CONVERT).enumerate().for_each(|(b, chunk)| {
        let cnt = chunk.len() / d;
        MatMut::from_column_major_slice_mut(chunk, d, cnt).copy_from(x.subrows(b * CONVERT, cnt).transpose());
    });
    Columns { data, d }
}

/// The ends of the blocks of deep coordinates (relative to the screen's last direction).
fn deep_ends(frame: &Frame) -> Vec<usize> {
    match &frame.basis {
        Basis::Principal { dirs, screen } => {
            let len = dirs.ncols() - screen;
            // At most HEAD - 2 blocks: their distances fit in a record's head.
            (1..=len.div_ceil(DEEP_BLOCK).min(HEAD - 2)).map(|b| (b * DEEP_BLOCK).min(len)).collect()
        }
        _ => Vec::new(),
    }
}

/// One block of points (`x`, `cnt` rows) converted into `out` (its transpose into
/// `out.exact` unless the rows are used in place, `copy` false).
fn convert(x: MatRef<'_, f64>, frame: &Frame, ends: &[usize], copy: bool, s: &mut Scratch, out: &mut Out<'_>) {
    let (d, cnt) = (x.ncols(), x.nrows());
    let exact = std::mem::take(&mut out.exact);
    let ex = if copy {
        let mut t = MatMut::from_column_major_slice_mut(exact, d, cnt);
        t.copy_from(x.transpose());
        t.into_const()
    } else {
        x.transpose()
    };
    if let Some(l) = &frame.lattice {
        return on_lattice(ex, l, frame, out);
    }
    if matches!(frame.basis, Basis::Full) && !frame.amx {
        return centre_f32(ex, frame, out);
    }
    let mut c = s.c.as_mut().subcols_mut(0, cnt);
    centre(ex, frame, c.rb_mut(), out.sq);
    match &frame.basis {
        Basis::Full if frame.amx => amx::pack(c.rb(), d.div_ceil(amx::STEP) * amx::STEP, out.rows),
        Basis::Full => {
            let mut screen = MatMut::from_column_major_slice_mut(&mut *out.screen, d, cnt);
            screen.copy_from(c.rb().map(|&v| v as f32));
        }
        Basis::Span(b) => on_span(b, c, s.coords.as_mut().subrows_mut(0, b.ncols()).subcols_mut(0, cnt), out),
        Basis::Principal { dirs, screen } => {
            on_principal(dirs, *screen, ends, c.rb(), s.coords.as_mut().subcols_mut(0, cnt), out)
        }
    }
}

/// The points of `x` (its rows) as columns, their screening (and deep) coordinates in
/// `frame`, in one parallel pass over blocks of points (each block converted while its
/// transpose is still in cache; the projections as products per block).
pub(super) fn points<'a>(x: MatRef<'a, f64>, frame: &Frame) -> Points<'a> {
    let (d, n) = (x.ncols(), x.nrows());
    // Rows that are contiguous are read in place (the caller's memory, no copy).
    let copy = x.col_stride() != 1;
    let m = if frame.amx || frame.lattice.is_some() { 0 } else { frame.dim() };
    let ends = deep_ends(frame);
    let stride = ends.last().map_or(0, |w| HEAD + w);
    let basis_dim = match &frame.basis {
        Basis::Full => 0,
        Basis::Span(b) => b.ncols(),
        Basis::Principal { dirs, .. } => dirs.ncols(),
    };
    // Zeroed by the system: the pages are first touched by the tasks that fill them.
    let (mut exact, mut screen) = (vec![0.0f64; if copy { d * n } else { 0 }], vec![0f32; m * n]);
    let (mut norms, mut rho) = (vec![0.0f64; n], vec![0.0f64; n]);
    let mut deep = vec![0f32; stride * n];
    let mut bf = Bf16::zeros(if frame.amx { n } else { 0 }, d);
    let h2 = frame.lattice.map_or(0.0, |l| (l.h * frame.scale).powi(2) as f32);
    let mut int8 = Int8::zeros(if frame.lattice.is_some() { n } else { 0 }, d, h2, true);
    let per = match (frame.amx, frame.lattice) {
        (true, _) => CONVERT * bf.kp,
        (_, Some(_)) => CONVERT * int8.kp / 2,
        _ => 0,
    };
    let tiles = if frame.amx { bf.rows.as_mut_slice() } else { int8.rows.as_mut_slice() };
    let sums_per = if frame.lattice.is_some() { CONVERT } else { 0 };
    let groups_per = if frame.lattice.is_some() { per } else { 0 };
    let count = n.div_ceil(CONVERT);
    let outs: Vec<Out<'_>> = chunks(&mut exact, if copy { d * CONVERT } else { 0 }, count)
        .into_iter()
        .zip(chunks(&mut screen, m * CONVERT, count))
        .zip(chunks(&mut norms, CONVERT, count).into_iter().zip(chunks(&mut rho, CONVERT, count)))
        .zip(chunks(&mut deep, stride * CONVERT, count))
        .zip(chunks(tiles, per, count).into_iter().zip(chunks(&mut int8.sums, sums_per, count)))
        .zip(chunks(int8.groups.as_mut_slice(), groups_per, count))
        .map(|(((((exact, screen), (sq, rho)), deep), (rows, sums)), groups)| Out {
            exact,
            screen,
            sq,
            rho,
            deep,
            rows,
            sums,
            groups,
        })
        .collect();
    // No scratch for the full single-precision screen, which centres in place, nor for the
    // lattice.
    let rows = if matches!(frame.basis, Basis::Full) && !frame.amx { 0 } else { d };
    let scratch = || Scratch { c: Mat::zeros(rows, CONVERT), coords: Mat::zeros(basis_dim, CONVERT) };
    outs.into_par_iter().enumerate().for_each_init(scratch, |s, (b, mut out)| {
        let cnt = out.sq.len();
        convert(x.subrows(b * CONVERT, cnt), frame, &ends, copy, s, &mut out);
    });
    let deep = (stride > 0).then_some(Columns { data: deep, d: stride });
    let exact = if copy { Exact::Copy(Columns { data: exact, d }) } else { Exact::Rows(x) };
    let screen = match (frame.amx, frame.lattice) {
        (true, _) => Screen::Bf16(bf),
        (_, Some(_)) => Screen::I8(int8),
        _ => Screen::F32(Columns { data: screen, d: m }),
    };
    Points::assemble(exact, screen, norms, rho, deep, None)
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
pub(super) fn prepare<'a>(
    q: MatRef<'a, f64>,
    r: MatRef<'a, f64>,
    same: bool,
    k: usize,
    screens: Screens,
) -> Prepared<'a> {
    // One pass for the largest magnitude (the power of two) and a lattice's ends.
    let (lo, hi) = extremes(q, (!same).then_some(r));
    let scale = power_scale(lo.abs().max(hi.abs()));
    let mut frame = Frame::new((!same).then_some(q), r, scale, (lo, hi), screens);
    let available = r.nrows() - usize::from(same);
    loop {
        let qp = match &frame.lattice {
            Some(l) if same => ordered(q, &frame, l, super::order::spatial(q, &frame)),
            _ => points(q, &frame),
        };
        let rp = (!same).then(|| points(r, &frame));
        let rmax = rp.as_ref().map_or(qp.max_norm, |p| p.max_norm);
        let rho_max = rp.iter().flat_map(|p| &p.rho).chain(&qp.rho).copied().fold(0.0, f64::max);
        if matches!(frame.basis, Basis::Span(_)) && rho_max * rho_max > gamma(q.ncols()) * rmax {
            frame.use_full_or_principal((!same).then_some(q), r);
            continue;
        }
        if let Some(l) = frame.lattice {
            // The sample was on the lattice; a point that is not leaves it for the next screen.
            let off = (q.ncols() as f64).sqrt() * (l.tolerance() + l.rounding()) * frame.scale * (1.0 + 1e-9);
            if rho_max > off {
                frame.use_principal((!same).then_some(q), r);
                continue;
            }
        }
        let mut p = prepared(qp, rp, &frame, rmax, scale, refine::kept(k, available));
        if !(frame.amx || matches!(frame.basis, Basis::Principal { .. })) {
            return p;
        }
        match refine::estimate(&p, k, same, available) {
            Some(keep) => {
                p.keep = keep;
                return p;
            }
            None if frame.amx => frame.use_principal((!same).then_some(q), r),
            None => frame.basis = Basis::Full,
        }
    }
}

/// The prepared point sets with the error terms of their screen (`rmax` the reference's
/// largest squared norm).
fn prepared<'a>(
    qp: Points<'a>,
    rp: Option<Points<'a>>,
    frame: &Frame,
    rmax: f64,
    scale: f64,
    keep: usize,
) -> Prepared<'a> {
    let deep = match &frame.basis {
        Basis::Principal { dirs, .. } => Some((deep_ends(frame), eps_projection(qp.exact.d(), dirs.ncols()))),
        _ => None,
    };
    let (pair, flush) = match &qp.screen {
        Screen::Bf16(b) => (amx::pair_error(b.kp), 2.0 * amx::flush_error(b.kp)),
        Screen::I8(_) => (lattice::pair_error(), 0.0),
        Screen::F32(c) => (gamma(c.d), 0.0),
    };
    let slack = deep.as_ref().map_or(0.0, |(_, eps)| 4.0 * eps.sqrt());
    // On a lattice, `|x_i - x_j|² >= |L_i - L_j|² - 2 |L_i - L_j| (ε_i + ε_j)`, and
    // `|L_i - L_j| <= |L_i| + max |L|` (`rho` holds the `ε`).
    let off = |p: &Points<'_>| p.rho.iter().copied().fold(0.0, f64::max);
    let lat_max = if frame.lattice.is_some() { off(rp.as_ref().unwrap_or(&qp)) } else { 0.0 };
    let lat = |i: usize| {
        let e = if frame.lattice.is_some() { qp.rho[i] + lat_max } else { 0.0 };
        2.0 * (qp.lens[i] + rmax.sqrt()) * e * (1.0 + 1e-9)
    };
    let err = (0..qp.norms.len())
        .map(|i| {
            let a = qp.norms[i];
            1e-12 * (a + rmax) + slack * (a.sqrt() + rmax.sqrt()).powi(2) + flush + lat(i) + 1e-30
        })
        .collect();
    let unit2 = frame.scale * frame.scale;
    Prepared { q: qp, r: rp, err, pair, keep, scale, unit2, deep }
}
