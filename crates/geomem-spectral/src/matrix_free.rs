//! Leading singular values of a Jacobian operator from products alone: no `d × d` matrix and
//! no `8d` forward passes, only `O(k)` Jacobian-vector and vector-Jacobian products for the
//! `k` values that matter.
//!
//! # Method
//! A randomized range finder with power iterations and a block that grows (Halko, Martinsson
//! & Tropp, SIAM Review 53 (2011), Alg. 4.4 with Gaussian test blocks, Sec. 4.4 for the
//! growth and Sec. 4.3 for the error estimate). Let `M` be the operator ([`Operator`]):
//!
//! ```text
//! Y = M Ω                               (b JVPs, Ω a seeded d × b Gaussian block)
//! Y ← (I - Q Qᵀ) Y, orthonormalised     (twice, against the basis Q built so far)
//! repeat q times: Y ← (I - Q Qᵀ) M (Mᵀ Y), orthonormalised   (power iteration)
//! Q ← [Q, Y];  B ← [B; Yᵀ M]           (b VJPs: B = Qᵀ M, L × d)
//! σ_i, ũ_i, v_i ← SVD(B)               (Ritz values σ_i(B) ≤ σ_i(M))
//! ```
//!
//! The block stops growing when the values have fallen past the gap: among the first
//! `L - oversample` Ritz values the smallest is below `fall · σ_1`, and the largest gap
//! `σ_j - σ_{j+1}` has at least `past_gap` of them below it and exceeds the smallest (every
//! gap further down is then smaller, values being `≥ 0`); or when `L` reaches `max_rank`.
//!
//! # What the basis misses
//! One more seeded block `Ω` measures the rest, `P = I - QQᵀ`: with `y_i = P M ω_i`,
//! `τ = 10 √(2/π) max_i ‖y_i‖ ≥ ‖P M‖ ≥ σ_{L+1}(M)` with probability at least `1 - 10^{-b}`
//! (Halko et al., Lemma 4.1 / Eq. 4.3; a bound on the Frobenius scale, loose when many small
//! values remain), and one power step `max_i ‖Mᵀ y_i‖ / ‖y_i‖ ≤ ‖P M‖`, an estimate of the
//! largest value left out (a lower bound of `‖P M‖`, close to it unless the rest is spread).
//!
//! # Fallback
//! Where the spectrum has no gap the block grows to `d` and the products cost several times
//! a whole Jacobian (each basis column takes `2q + 2` products, the bounds one more). With
//! [`MatrixFreeParams::jacobian_fallback`] the estimator asks the field for its Jacobian
//! instead once the products spent plus the next block's would exceed `d` (a network's
//! Jacobian costs `d` VJPs in one batched backward pass, an empirical score's is analytic)
//! and returns every value of the operator from it ([`Products::jacobians`] says so); a
//! field without one (a closure) goes on with products. Not with a `max_rank` below `d`.
//!
//! # Error bound per value
//! `u_i = Q ũ_i` and `v_i` satisfy `Mᵀ u_i = σ_i v_i` by construction (`B = QᵀM` comes from
//! the VJPs), and `L` more JVPs give `r_i = M v_i - σ_i u_i`. `(u_i, v_i)/√2` is then an
//! approximate eigenvector of the symmetric `[[0, M], [Mᵀ, 0]]`, whose eigenvalues are
//! `±σ_j(M)`, with residual `‖r_i‖/√2`, so some singular value of `M` lies within
//! `e_i = ‖r_i‖/√2` of `σ_i` (Bauer–Fike for symmetric matrices). The bound covers the
//! products as computed: the error of a finite-difference JVP is inside `r_i`.

use crate::error::{param, Result, SpectralError};
use faer::{Mat, MatRef};
use geomem_score::{ScoreField, ScoreFieldExt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Which Jacobian the matrix-free estimator factorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Operator {
    /// `I + t J`, the Jacobian of the denoiser `D(x) = x + t s(x)` (Tweedie). For an exact
    /// score it is `Cov[x_0 | x]/t`, symmetric with eigenvalues `≥ 0`: near 1 along soft
    /// (tangent) directions and near 0 along stiff (normal) ones, so its leading values are
    /// the soft directions. Few of them near a manifold of low dimension or when a field
    /// memorizes.
    #[default]
    Denoiser,
    /// `t J`, the score Jacobian in units of `1/t`: its leading values are the stiff
    /// directions (`t s ≈ 1`). Few of them when a field is soft in most directions.
    Score,
}

/// Settings of the matrix-free estimator ([`crate::Method::MatrixFree`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct MatrixFreeParams {
    /// Which operator's leading values are computed.
    pub operator: Operator,
    /// Columns `b` added to the basis per growth step (also the number of probes of the
    /// tail estimate).
    pub block: usize,
    /// Power iterations `q` per block (each costs `b` VJPs and `b` JVPs).
    pub power_iterations: usize,
    /// The last `oversample` Ritz values are not used by the stopping rule (they converge last).
    pub oversample: usize,
    /// Values required below the largest gap before the block stops growing.
    pub past_gap: usize,
    /// The block grows until its smallest trusted value is below `fall` times the largest.
    pub fall: f64,
    /// Largest basis size `L` (`None`: `d`).
    pub max_rank: Option<usize>,
    /// Compute the per-value residual bounds (`L` more JVPs).
    pub bounds: bool,
    /// Seed of the Gaussian test blocks.
    pub seed: u64,
    /// Give up on products and take the field's own Jacobian (when it has one) once the
    /// products spent plus the next block's would exceed `d` (module doc, "Fallback"); off
    /// when `max_rank` is below `d`.
    #[serde(default)]
    pub jacobian_fallback: bool,
}

impl Default for MatrixFreeParams {
    /// Defaults: the denoiser operator, block 16, one power iteration, oversample 8,
    /// 2 values past the gap, a fall to half the largest value, `max_rank = d`, bounds on,
    /// seed 0, no Jacobian fallback.
    fn default() -> Self {
        Self {
            operator: Operator::Denoiser,
            block: 16,
            power_iterations: 1,
            oversample: 8,
            past_gap: 2,
            fall: 0.5,
            max_rank: None,
            bounds: true,
            seed: 0,
            jacobian_fallback: false,
        }
    }
}

impl MatrixFreeParams {
    /// With another operator.
    pub fn operator(mut self, operator: Operator) -> Self {
        self.operator = operator;
        self
    }
    /// With another block size.
    pub fn block(mut self, block: usize) -> Self {
        self.block = block;
        self
    }
    /// With another number of power iterations.
    pub fn power_iterations(mut self, q: usize) -> Self {
        self.power_iterations = q;
        self
    }
    /// With another oversampling.
    pub fn oversample(mut self, p: usize) -> Self {
        self.oversample = p;
        self
    }
    /// With another number of values required past the gap.
    pub fn past_gap(mut self, n: usize) -> Self {
        self.past_gap = n;
        self
    }
    /// With another fall.
    pub fn fall(mut self, fall: f64) -> Self {
        self.fall = fall;
        self
    }
    /// With a cap on the basis size.
    pub fn max_rank(mut self, rank: usize) -> Self {
        self.max_rank = Some(rank);
        self
    }
    /// With or without the residual bounds.
    pub fn bounds(mut self, on: bool) -> Self {
        self.bounds = on;
        self
    }
    /// With another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// With or without the fallback to the field's Jacobian.
    pub fn jacobian_fallback(mut self, on: bool) -> Self {
        self.jacobian_fallback = on;
        self
    }

    fn check(&self) -> Result<()> {
        param("block", self.block, self.block >= 1, "need at least one column per block")?;
        param("fall", self.fall, self.fall > 0.0 && self.fall < 1.0, "must lie in (0, 1)")?;
        let cap = self.max_rank.unwrap_or(usize::MAX);
        param("max_rank", cap, cap >= 1, "need at least one value")
    }
}

/// How many products an estimate took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Products {
    /// Jacobian-vector products `J v`.
    pub jvp: usize,
    /// Vector-Jacobian products `uᵀ J`.
    pub vjp: usize,
    /// Whole Jacobians taken from the field (the fallback; a network's costs `d` VJPs).
    #[serde(default)]
    pub jacobians: usize,
}

/// The raw result: leading singular values of the operator, decreasing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leading {
    pub values: Vec<f64>,
    /// `e_i`, or empty without bounds.
    pub errors: Vec<f64>,
    /// What the basis misses (`None` without bounds).
    pub rest: Option<Rest>,
    /// Whether the stopping rule found the gap (false: stopped at `max_rank`).
    pub gap_found: bool,
    pub products: Products,
}

/// What a matrix-free basis leaves out, in the operator's units (module doc).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rest {
    /// One power step's estimate of the largest value left out (a lower bound of `‖(I - QQᵀ)M‖`).
    pub estimate: f64,
    /// Halko et al.'s probabilistic upper bound of every value left out.
    pub bound: f64,
    /// The bound holds with probability at least `1 - 10^{-probes}`.
    pub probes: usize,
}

/// `10 √(2/π)`: Halko et al.'s factor from `max_i ‖P M ω_i‖` to `‖P M‖` (probability `1 - 10^{-b}`).
const TAIL_FACTOR: f64 = 7.978_845_608_028_654;

/// The operator `M` applied through the field's validated products.
struct Op<'a, F: ?Sized> {
    field: &'a F,
    x: &'a [f64],
    t: f64,
    operator: Operator,
    products: Products,
}

impl<F: ScoreField + ?Sized> Op<'_, F> {
    /// Rows `(M v_i)ᵀ` for the rows `v_i` of `v`.
    fn apply(&mut self, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.products.jvp += v.nrows();
        let jv = self.field.jvp(self.x, self.t, v)?;
        Ok(self.combine(v, jv))
    }
    /// Rows `u_iᵀ M` for the rows `u_i` of `u`.
    fn apply_t(&mut self, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.products.vjp += u.nrows();
        let uj = self.field.vjp(self.x, self.t, u)?;
        Ok(self.combine(u, uj))
    }
    fn combine(&self, v: MatRef<'_, f64>, jv: Mat<f64>) -> Mat<f64> {
        let (t, identity) = (self.t, self.operator == Operator::Denoiser);
        Mat::from_fn(v.nrows(), v.ncols(), |i, j| t * jv[(i, j)] + if identity { v[(i, j)] } else { 0.0 })
    }
}

/// `Y - (Y Qᵀ) Q` for rows, twice (classical Gram–Schmidt with one reorthogonalisation).
fn project_out(y: &mut Mat<f64>, q: &Mat<f64>) {
    if q.nrows() == 0 {
        return;
    }
    for _ in 0..2 {
        let c = y.as_ref() * q.transpose();
        *y -= &c * q;
    }
}

/// Orthonormal rows spanning the rows of `y` (thin QR of `yᵀ`).
fn orthonormal_rows(y: &Mat<f64>) -> Mat<f64> {
    y.transpose().qr().compute_thin_Q().transpose().to_owned()
}

fn gaussian(rows: usize, d: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(rows, d, |_, _| StandardNormal.sample(&mut rng))
}

/// Position `j` (1-based count of values above it) and size of the largest gap among the
/// first `m` values.
pub(crate) fn largest_gap(values: &[f64], m: usize) -> Option<(usize, f64)> {
    values[..m.min(values.len())]
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, w[0] - w[1]))
        .fold(None, |best, (j, g)| if best.is_none_or(|(_, b)| g > b) { Some((j, g)) } else { best })
}

/// The stopping rule of the module doc.
fn fallen_past_gap(values: &[f64], p: &MatrixFreeParams) -> bool {
    let m = values.len().saturating_sub(p.oversample);
    let Some((j, g)) = largest_gap(values, m) else { return false };
    let smallest = values[m - 1];
    m - j >= p.past_gap.max(1) && g > smallest && smallest <= p.fall * values[0]
}

/// Seed of the `round`-th Gaussian block.
fn block_seed(seed: u64, round: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(round)
}

/// Leading singular values of the operator at `x` (module doc).
pub(crate) fn leading<F: ScoreField + ?Sized>(field: &F, x: &[f64], t: f64, p: &MatrixFreeParams) -> Result<Leading> {
    p.check()?;
    field.check_point(x, t)?;
    let d = field.dim();
    let cap = p.max_rank.unwrap_or(d).min(d);
    let mut op = Op { field, x, t, operator: p.operator, products: Products::default() };
    let (mut q, mut b) = (Mat::<f64>::zeros(0, d), Mat::<f64>::zeros(0, d));
    let mut values: Vec<f64> = Vec::new();
    let mut round = 0u64;
    // A cap below d asks for at most `cap` values: the fallback, which returns all d, is off.
    let mut fallback = p.jacobian_fallback && cap >= d;
    let gap_found = loop {
        let found = fallen_past_gap(&values, p);
        if found || q.nrows() >= cap {
            break found;
        }
        let rows = p.block.min(cap - q.nrows());
        if fallback && spent(&op.products) + rows * (2 * p.power_iterations + 2) > d {
            if let Some(j) = field.jacobian(x, t)? {
                return whole(&op, j, p.bounds);
            }
            fallback = false;
        }
        let mut y = op.apply(gaussian(rows, d, block_seed(p.seed, round)).as_ref())?;
        project_out(&mut y, &q);
        let new = grow(&mut op, y, &q, p.power_iterations)?;
        b = stack(&b, &op.apply_t(new.as_ref())?);
        q = stack(&q, &new);
        values = singular_values_of(&b)?;
        round += 1;
    };
    let (errors, rest) = if p.bounds {
        (residual_bounds(&mut op, &q, &b)?, Some(rest(&mut op, &q, p, block_seed(p.seed, round))?))
    } else {
        (Vec::new(), None)
    };
    Ok(Leading { values, errors, rest, gap_found, products: op.products })
}

fn spent(p: &Products) -> usize {
    p.jvp + p.vjp
}

/// Every singular value of the operator from the field's Jacobian `j` (the fallback):
/// exact to the Jacobian's precision, so the bounds and the rest are 0. `M` is formed as
/// the products would form it, rows `(M e_i)ᵀ` from the rows `(J e_i)ᵀ` of `Jᵀ`: `Mᵀ`,
/// whose singular values are `M`'s.
fn whole<F: ScoreField + ?Sized>(op: &Op<'_, F>, j: Mat<f64>, bounds: bool) -> Result<Leading> {
    let d = j.nrows();
    let values = singular_values_of(&op.combine(Mat::<f64>::identity(d, d).as_ref(), j.transpose().to_owned()))?;
    let products = Products { jacobians: op.products.jacobians + 1, ..op.products };
    let (errors, rest) =
        if bounds { (vec![0.0; d], Some(Rest { estimate: 0.0, bound: 0.0, probes: 0 })) } else { (Vec::new(), None) };
    Ok(Leading { values, errors, rest, gap_found: true, products })
}

/// What the basis `q` misses (module doc); zero when it spans `R^d`.
fn rest<F: ScoreField + ?Sized>(op: &mut Op<'_, F>, q: &Mat<f64>, p: &MatrixFreeParams, seed: u64) -> Result<Rest> {
    let d = q.ncols();
    if q.nrows() >= d {
        return Ok(Rest { estimate: 0.0, bound: 0.0, probes: p.block });
    }
    let mut y = op.apply(gaussian(p.block, d, seed).as_ref())?;
    project_out(&mut y, q);
    let norms: Vec<f64> = (0..y.nrows()).map(|i| y.row(i).norm_l2()).collect();
    let my = op.apply_t(y.as_ref())?;
    let estimate =
        (0..y.nrows()).filter(|&i| norms[i] > 0.0).map(|i| my.row(i).norm_l2() / norms[i]).fold(0.0, f64::max);
    let bound = TAIL_FACTOR * norms.iter().copied().fold(0.0, f64::max);
    Ok(Rest { estimate, bound, probes: p.block })
}

/// The next orthonormal rows of the basis from the block `y = M Ω` (already projected),
/// with `power` power iterations.
fn grow<F: ScoreField + ?Sized>(op: &mut Op<'_, F>, y: Mat<f64>, basis: &Mat<f64>, power: usize) -> Result<Mat<f64>> {
    let mut y = orthonormal_rows(&y);
    for _ in 0..power {
        let z = orthonormal_rows(&op.apply_t(y.as_ref())?);
        let mut next = op.apply(z.as_ref())?;
        project_out(&mut next, basis);
        y = orthonormal_rows(&next);
    }
    Ok(y)
}

fn stack(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows() + b.nrows(), a.ncols(), |i, j| if i < a.nrows() { a[(i, j)] } else { b[(i - a.nrows(), j)] })
}

fn singular_values_of(b: &Mat<f64>) -> Result<Vec<f64>> {
    b.singular_values().map_err(|_| SpectralError::SvdNoConvergence)
}

/// `e_i = ‖M v_i - σ_i u_i‖/√2` for every Ritz triplet of `B = Q M` (rows of `q`).
fn residual_bounds<F: ScoreField + ?Sized>(op: &mut Op<'_, F>, q: &Mat<f64>, b: &Mat<f64>) -> Result<Vec<f64>> {
    let svd = b.thin_svd().map_err(|_| SpectralError::SvdNoConvergence)?;
    let (u_small, v, s) = (svd.U(), svd.V(), svd.S().column_vector());
    let mv = op.apply(v.transpose())?; // L × d, rows M v_i
    let u = u_small.transpose() * q; // L × d, rows u_i = Σ_l ũ_{l i} q_l
    Ok((0..b.nrows())
        .map(|i| {
            let r: f64 = (0..q.ncols()).map(|j| (mv[(i, j)] - s[i] * u[(i, j)]).powi(2)).sum();
            (r / 2.0).sqrt()
        })
        .collect())
}
