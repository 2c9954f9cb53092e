//! The coordinates the screens work in: centred on the reference's mean, scaled by powers of
//! two, and projected on a basis where one pays (the subspace the reference spans, or its
//! leading principal directions).

use super::lattice::{self, Lattice};
use super::Screens;
use faer::{Mat, MatRef};
use rayon::prelude::*;

/// The largest absolute entry of `x`, in parallel, in memory order.
pub(super) fn max_abs(x: MatRef<'_, f64>) -> f64 {
    spread(x, 1.0, None)
}

/// The largest `|x_ij pre - mean_j|` (`mean` zero when `None`), in parallel, in memory order
/// (down the columns of a column-major matrix, along the rows otherwise).
fn spread(x: MatRef<'_, f64>, pre: f64, mean: Option<&[f64]>) -> f64 {
    let zeros = vec![0.0; x.ncols()];
    let mean = mean.unwrap_or(&zeros);
    let slow = |v: &mut dyn Iterator<Item = (f64, f64)>| v.fold(0.0, |m: f64, (v, mu)| m.max((v * pre - mu).abs()));
    if x.row_stride() == 1 {
        let col = |j: usize| match x.col(j).try_as_col_major() {
            Some(c) => deviation(c.as_slice(), pre, |_| mean[j]),
            None => slow(&mut x.col(j).iter().map(|&v| (v, mean[j]))),
        };
        (0..x.ncols()).into_par_iter().map(col).reduce(|| 0.0, f64::max)
    } else {
        let row = |i: usize| match x.row(i).try_as_row_major() {
            Some(r) => deviation_rows(r.as_slice(), pre, mean),
            None => slow(&mut x.row(i).iter().copied().zip(mean.iter().copied())),
        };
        (0..x.nrows()).into_par_iter().map(row).reduce(|| 0.0, f64::max)
    }
}

/// The largest `|v_l pre - mu(l)|`, eight running maxima (a loop the compiler vectorises).
#[inline(always)]
fn deviation(v: &[f64], pre: f64, mu: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail_at = v.len() - chunks.remainder().len();
    for (c, chunk) in chunks.enumerate() {
        for (t, a) in acc.iter_mut().enumerate() {
            let d = (chunk[t] * pre - mu(c * 8 + t)).abs();
            *a = if d > *a { d } else { *a };
        }
    }
    let tail = (tail_at..v.len()).map(|l| (v[l] * pre - mu(l)).abs()).fold(0.0, f64::max);
    acc.iter().copied().fold(tail, f64::max)
}

/// The largest `|v_l pre - mean_l|` along one row, eight running maxima over chunks of `v`
/// and `mean` together (a loop the compiler vectorises; indexing `mean` by position would
/// not).
#[inline(always)]
fn deviation_rows(v: &[f64], pre: f64, mean: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (cv, cm) = (v.chunks_exact(8), mean.chunks_exact(8));
    let tail = cv.remainder().iter().zip(cm.remainder()).map(|(&v, &mu)| (v * pre - mu).abs()).fold(0.0, f64::max);
    for (x, m) in cv.zip(cm) {
        for t in 0..8 {
            let d = (x[t] * pre - m[t]).abs();
            acc[t] = if d > acc[t] { d } else { acc[t] };
        }
    }
    acc.iter().copied().fold(tail, f64::max)
}

/// The smallest and the largest entry of `x` times `pre`, in parallel, in memory order.
pub(super) fn min_max(x: MatRef<'_, f64>, pre: f64) -> (f64, f64) {
    let none = (f64::INFINITY, f64::NEG_INFINITY);
    let both = |(a, b): (f64, f64), (c, d): (f64, f64)| (a.min(c), b.max(d));
    let (lo, hi) = if x.row_stride() == 1 {
        let col = |j: usize| match x.col(j).try_as_col_major() {
            Some(c) => slice_extremes(c.as_slice()),
            None => x.col(j).iter().fold(none, |m, &v| both(m, (v, v))),
        };
        (0..x.ncols()).into_par_iter().map(col).reduce(|| none, both)
    } else {
        let row = |i: usize| match x.row(i).try_as_row_major() {
            Some(r) => slice_extremes(r.as_slice()),
            None => x.row(i).iter().fold(none, |m, &v| both(m, (v, v))),
        };
        (0..x.nrows()).into_par_iter().map(row).reduce(|| none, both)
    };
    (lo * pre, hi * pre)
}

/// The smallest and the largest entry of `v`, eight running extremes each (a loop the
/// compiler vectorises).
fn slice_extremes(v: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = ([f64::INFINITY; 8], [f64::NEG_INFINITY; 8]);
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for t in 0..8 {
            lo[t] = if c[t] < lo[t] { c[t] } else { lo[t] };
            hi[t] = if c[t] > hi[t] { c[t] } else { hi[t] };
        }
    }
    let lo = tail.iter().chain(&lo).copied().fold(f64::INFINITY, f64::min);
    let hi = tail.iter().chain(&hi).copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// The mean of the rows of `x` times `pre`, in memory order.
fn mean(x: MatRef<'_, f64>, pre: f64) -> Vec<f64> {
    let n = x.nrows() as f64;
    if x.row_stride() == 1 {
        (0..x.ncols()).into_par_iter().map(|j| x.col(j).iter().map(|v| v * pre).sum::<f64>() / n).collect()
    } else {
        let add = |mut acc: Vec<f64>, i: usize| {
            match x.row(i).try_as_row_major() {
                Some(r) => acc.iter_mut().zip(r.as_slice()).for_each(|(a, v)| *a += v * pre),
                None => acc.iter_mut().zip(x.row(i).iter()).for_each(|(a, v)| *a += v * pre),
            }
            acc
        };
        let zeros = || vec![0.0; x.ncols()];
        let sums = (0..x.nrows()).into_par_iter().fold(zeros, add).reduce(zeros, |mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            a
        });
        sums.into_iter().map(|s| s / n).collect()
    }
}

/// The smallest and the largest entry of `q` and (where given) `r`, in one pass over each.
pub(super) fn extremes(q: MatRef<'_, f64>, r: Option<MatRef<'_, f64>>) -> (f64, f64) {
    let (a, b) = min_max(q, 1.0);
    r.map_or((a, b), |r| {
        let (c, d) = min_max(r, 1.0);
        (a.min(c), b.max(d))
    })
}

/// The power of two that brings `max_abs` to at most 1 (exact), its exponent kept within
/// ±1000 so that the factor itself is finite (subnormal data are brought to at most 2⁻⁵⁰).
pub(super) fn power_scale(max_abs: f64) -> f64 {
    if max_abs > 0.0 {
        2f64.powi((-max_abs.log2().ceil()).clamp(-1000.0, 1000.0) as i32)
    } else {
        1.0
    }
}

/// The power of two that brings the largest entry of `q` and `r` to at most 1 (exact).
pub(super) fn unit_scale(q: MatRef<'_, f64>, r: MatRef<'_, f64>) -> f64 {
    power_scale(max_abs(q).max(max_abs(r)))
}

/// The basis the screen's coordinates are taken on.
pub(super) enum Basis {
    /// None: all `d` centred coordinates.
    Full,
    /// An orthonormal basis (`d × m`) of the subspace the reference spans: the screen is the
    /// `m` coordinates on it and, as coordinate `m + 1`, each point's distance off it.
    Span(Mat<f64>),
    /// Principal directions of the reference (`d × deep`, orthonormal columns by decreasing
    /// variance): the screen is the first `screen` coordinates and the distance off them;
    /// the others are read pair by pair, for the candidates alone.
    Principal { dirs: Mat<f64>, screen: usize },
}

/// The coordinates the screening products work in: centred on the reference's mean
/// (distances do not change, and single precision then resolves the data's spread rather
/// than their distance from the origin), scaled by a power of two that brings the largest
/// centred entry to at most 1, and projected on [`Basis`].
pub(super) struct Frame {
    /// The power of two applied before anything else (the exact search's), so that no sum
    /// or difference of coordinates overflows.
    pub(super) pre: f64,
    /// The mean of the pre-scaled reference.
    pub(super) mean: Vec<f64>,
    pub(super) scale: f64,
    pub(super) basis: Basis,
    /// Whether the full screen runs on AMX tiles in bfloat16.
    pub(super) amx: bool,
    /// The lattice the full screen runs on, in integers, if it does.
    pub(super) lattice: Option<Lattice>,
    /// The smallest and the largest entry of the points (queries and reference), pre-scaled:
    /// the ends of any lattice they lie on.
    extremes: (f64, f64),
    /// The scale of the centred coordinates (the lattice's may differ), once measured: the
    /// lattice needs no pass over the points for it.
    centred_scale: Option<f64>,
    screens: Screens,
}

/// Fewest coordinates worth an AMX tile product (its tiles take 32 at a time).
const AMX_LEAST: usize = 64;
/// Fewest reference points worth looking for a basis or a faster product: below, the full
/// single-precision product is cheap, and the search of many small sets (pointwise TwoNN's
/// neighbourhoods) pays no fixed costs.
const PROJECT_POINTS: usize = 256;

/// Points sampled for the subspace the reference spans.
const SAMPLE: usize = 64;

/// Principal directions screened in (at most; a quarter of the coordinates when fewer).
const PRINCIPAL: usize = 128;
/// Principal directions in all (at most; half the coordinates when fewer): the ones past
/// the screen's are read candidate by candidate.
const DEEP: usize = 384;
/// Fewest principal directions worth a basis, and fewest reference points: below either the
/// full product is cheap anyway.
const PRINCIPAL_LEAST: usize = 32;
const PRINCIPAL_POINTS: usize = 1024;
/// Reference points sampled for the principal directions.
const PRINCIPAL_SAMPLE: usize = 1024;
/// Largest share of the sample's spread the screen's directions may leave out before they
/// are not even tried (measured on the benchmark data of `lid_speed`, 128 directions: 63 %
/// for white noise in 784 dimensions, 1.3 % for the curved points, 7 % for Fashion-MNIST).
const PRINCIPAL_LEFT: f64 = 0.25;

impl Frame {
    /// The reference's mean, in parallel over the coordinates, and with enough reference
    /// points ([`PROJECT_POINTS`]) the subspace they span, else AMX tiles, the lattice the
    /// points lie on or principal directions where they pay, as `screens` allows; but on the
    /// lattice, the scale from the largest centred entry of `r` and of the queries `q`
    /// (`None`: the reference itself). `extremes`: the smallest and the largest entry of `q`
    /// and `r` before `pre` ([`extremes`]).
    pub(super) fn new(
        q: Option<MatRef<'_, f64>>,
        r: MatRef<'_, f64>,
        pre: f64,
        extremes: (f64, f64),
        screens: Screens,
    ) -> Self {
        let mut frame = Self {
            pre,
            mean: mean(r, pre),
            scale: f64::NAN,
            basis: Basis::Full,
            amx: false,
            lattice: None,
            extremes: (extremes.0 * pre, extremes.1 * pre),
            centred_scale: None,
            screens,
        };
        match (r.nrows() >= PROJECT_POINTS).then(|| span(r, pre, &frame.mean)) {
            Some(Some(b)) => {
                frame.basis = Basis::Span(b);
                frame.scale = frame.centred(q, r);
            }
            Some(None) => frame.use_full_or_principal(q, r),
            None => frame.scale = frame.centred(q, r),
        }
        frame
    }

    /// The power of two that brings the largest centred entry of `q` and `r` to at most 1
    /// (one pass over the points, the first time it is asked for).
    fn centred(&mut self, q: Option<MatRef<'_, f64>>, r: MatRef<'_, f64>) -> f64 {
        if let Some(s) = self.centred_scale {
            return s;
        }
        let spread = |x: MatRef<'_, f64>| spread(x, self.pre, Some(&self.mean));
        let s = power_scale(q.map_or(0.0, spread).max(spread(r)));
        self.centred_scale = Some(s);
        s
    }

    /// The full coordinates on AMX tiles where this machine has them and they may pay (enough
    /// coordinates and points), else on the lattice the points `r` and `q` (`None`: the same
    /// points) lie on, where a sample says they do, else principal directions
    /// ([`Frame::use_principal`]).
    pub(super) fn use_full_or_principal(&mut self, q: Option<MatRef<'_, f64>>, r: MatRef<'_, f64>) {
        let worth = r.ncols() >= AMX_LEAST && r.nrows() >= PRINCIPAL_POINTS;
        let lattices = match self.screens {
            Screens::Fastest => lattice::fast(),
            Screens::Lattice => true,
            Screens::Portable => false,
        };
        let on_lattice = || (lattices && worth).then(|| lattice::find(q, r, self.pre, self.extremes)).flatten();
        if self.screens == Screens::Fastest && worth && super::amx::available() {
            self.basis = Basis::Full;
            self.amx = true;
            self.scale = self.centred(q, r);
        } else if let Some(l) = on_lattice() {
            self.basis = Basis::Full;
            self.lattice = Some(l);
            // Lattice points `h s`, |s| <= 128: each coordinate at most 1.
            self.scale = power_scale(128.0 * l.h);
        } else {
            self.use_principal(q, r);
        }
    }

    /// Principal directions of the reference `r` as the basis, where it has enough points and
    /// coordinates for them to pay; else the full coordinates (`q`: the queries, `None` for
    /// the reference itself).
    pub(super) fn use_principal(&mut self, q: Option<MatRef<'_, f64>>, r: MatRef<'_, f64>) {
        self.amx = false;
        self.lattice = None;
        self.scale = self.centred(q, r);
        let d = r.ncols();
        let screen = PRINCIPAL.min(d / 4);
        let eligible = screen >= PRINCIPAL_LEAST && r.nrows() >= PRINCIPAL_POINTS;
        let deep = DEEP.min(d / 2).max(screen);
        let found = eligible.then(|| principal(r, self.pre, &self.mean, screen, deep)).flatten();
        self.basis = match found {
            Some(dirs) => Basis::Principal { dirs, screen },
            None => Basis::Full,
        };
    }

    /// The screen's dimension.
    pub(super) fn dim(&self) -> usize {
        match &self.basis {
            Basis::Full => self.mean.len(),
            Basis::Span(b) => b.ncols() + 1,
            Basis::Principal { screen, .. } => screen + 1,
        }
    }
}

/// `deep` leading principal directions (`d × deep`, orthonormal columns) of
/// [`PRINCIPAL_SAMPLE`] evenly spaced reference points around `mean` ([`leading`]). Only
/// their quality depends on the sample and the seed, and it changes only how fast the search
/// runs: the search's bounds hold for any orthonormal basis. `None` if the small
/// eigenproblem fails or the first `screen` directions leave out more than
/// [`PRINCIPAL_LEFT`] of the sample's spread.
pub(super) fn principal(r: MatRef<'_, f64>, pre: f64, mean: &[f64], screen: usize, deep: usize) -> Option<Mat<f64>> {
    let at = sampled(r, pre, mean, PRINCIPAL_SAMPLE);
    let a = at.transpose();
    let p = (deep + deep / 4).min(at.nrows()).min(at.ncols());
    let (q, values, u) = leading(a, p)?;
    let (screen, deep) = (screen.min(p), deep.min(p));
    // Hopeless where the screen's directions leave out much of the sample's spread: not
    // worth the pass that measures every point against them.
    let spread = a.squared_norm_l2();
    let captured: f64 = values[..screen].iter().sum();
    if spread - captured > PRINCIPAL_LEFT * spread {
        return None;
    }
    Some(q * u.subcols(0, deep))
}

/// `s` evenly spaced points of `r` (at most all), pre-scaled, around `mean`, as rows (`s × d`;
/// filled down each column of `r`).
pub(super) fn sampled(r: MatRef<'_, f64>, pre: f64, mean: &[f64], s: usize) -> Mat<f64> {
    let (n, d) = (r.nrows(), r.ncols());
    let s = s.min(n);
    Mat::from_fn(s, d, |t, j| r[(t * n / s, j)] * pre - mean[j])
}

/// The leading left singular directions of `a` (`d × s`) within `p` directions, by a
/// randomised range finder (Halko, Martinsson & Tropp 2011, Alg. 4.3 with one power
/// iteration; a fixed pseudo-random test matrix): the basis `Q` (`d × p`), the squared
/// singular values in decreasing order, and the small eigenvectors (`p × p`) in that order,
/// so that the columns of `Q U` are the directions. `None` if the small eigenproblem fails.
pub(super) fn leading(a: MatRef<'_, f64>, p: usize) -> Option<(Mat<f64>, Vec<f64>, Mat<f64>)> {
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
    let omega = Mat::from_fn(a.ncols(), p, |_, _| uniform());
    let y = a * (a.transpose() * (a * &omega));
    let q = y.qr().compute_thin_Q();
    let b = q.transpose() * a;
    let evd = (&b * b.transpose()).self_adjoint_eigen(faer::Side::Lower).ok()?;
    let values = evd.S().column_vector();
    let mut order: Vec<usize> = (0..q.ncols()).collect();
    order.sort_by(|&x, &y| values[y].total_cmp(&values[x]));
    let u = evd.U();
    let sorted = Mat::from_fn(u.nrows(), order.len(), |i, l| u[(i, order[l])]);
    Some((q, order.iter().map(|&l| values[l]).collect(), sorted))
}

/// An orthonormal basis (`d × m`) of the subspace that [`SAMPLE`] evenly spaced reference
/// points span around `mean`, by Gram–Schmidt applied twice, leaving out directions shorter
/// than `√γ_d / 10` of the longest sample (below what a single-precision screen resolves);
/// `None` unless `m` is small enough for the projection to pay (`2m < SAMPLE`, `4m <= d`).
/// The basis only has to be orthonormal: how far each point lies off it is measured point
/// by point and enters the error bound.
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
pub(super) fn gamma(d: usize) -> f64 {
    1.1 * (d as f64 + 4.0) * f64::from(f32::EPSILON) / 2.0
}
