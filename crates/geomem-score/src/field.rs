//! The [`ScoreField`] trait: anything that maps noisy points and a diffusion time to a score,
//! and [`ScoreFieldExt`], the validated calls every estimator makes.
//!
//! An implementation writes `dim` and `eval` (and, where it can do better than the
//! defaults, `eval_jacobian`, `eval_jvp`, `eval_vjp`, `eval_divergence`, `precision`). Callers never
//! call the `eval*` hooks: they call the methods of [`ScoreFieldExt`], implemented once for
//! every field, which check shapes, finiteness and `t` before any hook runs. No
//! implementation repeats a check.

use crate::error::{check_dim, check_finite, check_time, Result, ScoreError};
use faer::{Mat, MatMut, MatRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The floating-point precision a field computes in.
///
/// The trait speaks `f64` on the host; a trained network computes in `f32` on its device.
/// Finite-difference estimators read [`ScoreField::precision`] to choose steps above the
/// field's rounding floor ([`Precision::central_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precision {
    /// Double precision: unit roundoff `2^-53 ≈ 1.1e-16`.
    F64,
    /// Single precision (trained networks): unit roundoff `2^-24 ≈ 6e-8`.
    F32,
}

impl Precision {
    /// Machine epsilon of the precision (`f64::EPSILON` or `f32::EPSILON`).
    pub fn epsilon(self) -> f64 {
        match self {
            Self::F64 => f64::EPSILON,
            Self::F32 => f64::from(f32::EPSILON),
        }
    }

    /// Step of a central difference at time `t`: `h = ε^{1/3} √t`.
    ///
    /// # Formula
    /// A central difference of a field with relative rounding error `ε` and length scale `√t`
    /// (the scale on which a score at time `t` varies) has error `≈ ε/h' + h'²` in the
    /// relative step `h' = h/√t`, smallest at `h' = ε^{1/3}`: `6e-6 √t` in `f64`,
    /// `4.9e-3 √t` in `f32`, for a relative error near `ε^{2/3}` (`5e-11`, `2.4e-5`).
    pub fn central_step(self, t: f64) -> f64 {
        self.epsilon().cbrt() * t.sqrt()
    }
}

/// Settings of the divergence `tr ∇s` ([`ScoreFieldExt::divergence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DivergenceParams {
    /// Exact trace when `d <= exact_below`, Hutchinson's estimator above.
    pub exact_below: usize,
    /// Number of Rademacher probes of Hutchinson's estimator.
    pub probes: usize,
    /// Seed of the probes (point `i` of a batch uses the stream `seed + i`).
    pub seed: u64,
}

impl Default for DivergenceParams {
    /// Defaults: exact up to `d = 1024`, 64 probes above, seed 0.
    fn default() -> Self {
        Self { exact_below: 1024, probes: 64, seed: 0 }
    }
}

impl DivergenceParams {
    /// With another exact-trace threshold.
    pub fn exact_below(mut self, d: usize) -> Self {
        self.exact_below = d;
        self
    }
    /// With another number of probes.
    pub fn probes(mut self, k: usize) -> Self {
        self.probes = k;
        self
    }
    /// With another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// A score field `s(x, t) ≈ ∇ log p_t(x)` of the variance-exploding process `x_t = x_0 + √t ε`.
///
/// Points are the **rows** of an `n × d` matrix, so a batch of `n` evaluations is one call.
/// Implementations: [`crate::GaussianScore`] (exact score of a Gaussian linear manifold),
/// [`crate::EmpiricalScore`] (score of a finite training set), [`crate::VpScore`] (a
/// variance-preserving model seen in VE time) and, in `geomem-nets`, trained networks.
///
/// Implement `dim` and `eval`; override the other hooks where the field can do better.
/// Call the field through [`ScoreFieldExt`], which validates every input first.
///
/// ```
/// use faer::{MatMut, MatRef};
/// use geomem_score::{Result, ScoreField, ScoreFieldExt};
///
/// /// The score of N(0, v I) in dimension d: s(x, t) = -x / (v + t).
/// struct Isotropic { d: usize, v: f64 }
///
/// impl ScoreField for Isotropic {
///     fn dim(&self) -> usize { self.d }
///     fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
///         for j in 0..self.d {
///             for i in 0..x.nrows() {
///                 out[(i, j)] = -x[(i, j)] / (self.v + t);
///             }
///         }
///         Ok(())
///     }
/// }
///
/// let f = Isotropic { d: 3, v: 2.0 };
/// assert_eq!(f.score(&[1.0, 0.0, 0.0], 2.0).unwrap()[0], -0.25);
/// assert!(f.score(&[1.0, 0.0], 2.0).is_err()); // wrong dimension: never reaches eval
/// assert!(f.score(&[1.0, 0.0, 0.0], 0.0).is_err()); // t <= 0
/// // the default divergence (central differences along e_1..e_d) is -d/(v + t):
/// let div = f.divergence(&[0.3, 0.1, -0.2], 2.0, &Default::default()).unwrap();
/// assert!((div + 0.75).abs() < 1e-8);
/// ```
pub trait ScoreField {
    /// The ambient dimension `d`.
    fn dim(&self) -> usize;

    /// The precision the field computes in (default [`Precision::F64`]).
    fn precision(&self) -> Precision {
        Precision::F64
    }

    /// Writes the score of every row of `x` (`n × d`) at time `t` into `out` (`n × d`).
    ///
    /// Called only through [`ScoreFieldExt`]: `x` and `out` have `d` columns and the same
    /// rows, every entry of `x` is finite and `t` is finite and `> 0`.
    ///
    /// # Errors
    /// Only errors of the field itself (a device failure of a trained network).
    fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()>;

    /// The Jacobian `∂s_i/∂x_j` at `x` when the field can compute it (analytically or by
    /// automatic differentiation); `Ok(None)` otherwise (the default).
    ///
    /// Called only through [`ScoreFieldExt::jacobian`] with a finite `x` of length `d`.
    ///
    /// # Errors
    /// Errors of the field.
    fn eval_jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        let _ = (x, t);
        Ok(None)
    }

    /// Jacobian-vector products `J(x) v_i` for the rows `v_i` of `v` (`k × d`), as the rows
    /// of a `k × d` matrix.
    ///
    /// Default: central differences `[s(x + h v̂_i) - s(x - h v̂_i)] ‖v_i‖ / (2h)` along the
    /// unit directions `v̂_i`, all `2k` points in one call of [`ScoreField::eval`], with
    /// `h` = [`Precision::central_step`]. Called only through [`ScoreFieldExt::jvp`].
    ///
    /// # Errors
    /// Errors of the field.
    fn eval_jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        central_difference_jvp(self, x, t, v)
    }

    /// Vector-Jacobian products `u_iᵀ J(x)` (that is `(Jᵀ u_i)ᵀ`) for the rows `u_i` of `u`
    /// (`k × d`), as the rows of a `k × d` matrix.
    ///
    /// Default: `U J` from [`ScoreField::eval_jacobian`] when there is one; otherwise the
    /// Jacobian from `d` products [`ScoreField::eval_jvp`] along `e_1 … e_d` (as costly as a
    /// dense Jacobian: fields that can do better, a network by reverse-mode automatic
    /// differentiation, a symmetric closed form by its JVP, override it). Called only
    /// through [`ScoreFieldExt::vjp`].
    ///
    /// # Errors
    /// Errors of the field.
    fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        if let Some(j) = self.eval_jacobian(x, t)? {
            return Ok(u * j);
        }
        vjp_from_jvps(self, x, t, u)
    }

    /// The divergence `tr ∇s` at every row of `x` (`n × d`).
    ///
    /// Default: the trace of [`ScoreField::eval_jacobian`] when there is one; otherwise the
    /// sum of `e_jᵀ J e_j` over the canonical basis from [`ScoreField::eval_jvp`] when
    /// `d <= exact_below`, and Hutchinson's estimator `(1/K) Σ_k z_kᵀ J z_k` with `K`
    /// seeded Rademacher probes above. Called only through [`ScoreFieldExt::divergence`].
    ///
    /// # Errors
    /// Errors of the field.
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, p: &DivergenceParams) -> Result<Vec<f64>> {
        default_divergence(self, x, t, p)
    }
}

/// The validated calls on a [`ScoreField`], implemented once for every field.
pub trait ScoreFieldExt: ScoreField {
    /// Checks a batch: `x` has `d` columns and finite entries, `t` is finite and `> 0`.
    ///
    /// # Errors
    /// [`ScoreError::DimensionMismatch`], [`ScoreError::NonFinite`], [`ScoreError::InvalidTime`].
    fn check_points(&self, x: MatRef<'_, f64>, t: f64) -> Result<()> {
        check_dim(self.dim(), x.ncols())?;
        check_time(t)?;
        check_finite(x, "points x")
    }

    /// As [`ScoreFieldExt::check_points`] for one point.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::check_points`].
    fn check_point(&self, x: &[f64], t: f64) -> Result<()> {
        check_dim(self.dim(), x.len())?;
        self.check_points(MatRef::from_row_major_slice(x, 1, x.len()), t)
    }

    /// Writes the score of every row of `x` (shape `n × d`) at time `t` into `out` (`n × d`).
    ///
    /// # Errors
    /// [`ScoreError::DimensionMismatch`] for wrong shapes, [`ScoreError::InvalidTime`] for
    /// `t <= 0` or non-finite `t`, [`ScoreError::NonFinite`] for NaN or ∞ in `x`, and the
    /// field's own errors.
    fn score_batch_into(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
        self.check_points(x, t)?;
        check_dim(self.dim(), out.ncols())?;
        check_dim(x.nrows(), out.nrows())?;
        self.eval(x, t, out)
    }

    /// The score of every row of `x` at time `t`, as a new `n × d` matrix.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::score_batch_into`].
    fn score_batch(&self, x: MatRef<'_, f64>, t: f64) -> Result<Mat<f64>> {
        self.check_points(x, t)?;
        let mut out = Mat::zeros(x.nrows(), x.ncols());
        self.eval(x, t, out.as_mut())?;
        Ok(out)
    }

    /// The score at one point.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::score_batch_into`].
    fn score(&self, x: &[f64], t: f64) -> Result<Vec<f64>> {
        let s = self.score_batch(MatRef::from_row_major_slice(x, 1, x.len()), t)?;
        Ok((0..x.len()).map(|j| s[(0, j)]).collect())
    }

    /// The Jacobian `∂s_i/∂x_j` (`d × d`) at `x` when the field computes one; `Ok(None)` for
    /// fields that do not (use [`ScoreFieldExt::jvp`] or the estimators of
    /// `geomem-spectral` for those).
    ///
    /// # Errors
    /// As [`ScoreFieldExt::check_point`], and the field's own errors.
    fn jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        self.check_point(x, t)?;
        self.eval_jacobian(x, t)
    }

    /// Jacobian-vector products `J(x) v_i` for the rows of `v` (`k × d`), one batched call.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::check_point`]; [`ScoreError::DimensionMismatch`] when `v` does
    /// not have `d` columns, [`ScoreError::NonFinite`] for NaN or ∞ in `v`.
    fn jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.check_point(x, t)?;
        check_dim(self.dim(), v.ncols())?;
        check_finite(v, "directions v")?;
        self.eval_jvp(x, t, v)
    }

    /// Vector-Jacobian products `u_iᵀ J(x)` for the rows of `u` (`k × d`), one batched call.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::jvp`] (with `u` in place of `v`).
    fn vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.check_point(x, t)?;
        check_dim(self.dim(), u.ncols())?;
        check_finite(u, "cotangents u")?;
        self.eval_vjp(x, t, u)
    }

    /// The divergence `tr ∇s(x_i, t)` at every row of `x`.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::check_points`]; [`ScoreError::InvalidParameter`] for zero probes.
    fn divergence_batch(&self, x: MatRef<'_, f64>, t: f64, p: &DivergenceParams) -> Result<Vec<f64>> {
        self.check_points(x, t)?;
        if p.probes == 0 {
            return Err(ScoreError::InvalidParameter {
                name: "probes",
                value: "0".into(),
                reason: "Hutchinson's estimator needs at least one probe",
            });
        }
        self.eval_divergence(x, t, p)
    }

    /// The divergence `tr ∇s(x, t)` at one point.
    ///
    /// # Errors
    /// As [`ScoreFieldExt::divergence_batch`].
    fn divergence(&self, x: &[f64], t: f64, p: &DivergenceParams) -> Result<f64> {
        Ok(self.divergence_batch(MatRef::from_row_major_slice(x, 1, x.len()), t, p)?[0])
    }
}

impl<F: ScoreField + ?Sized> ScoreFieldExt for F {}

macro_rules! forward_field {
    ($($ty:ty),*) => {$(
        impl<F: ScoreField + ?Sized> ScoreField for $ty {
            fn dim(&self) -> usize {
                (**self).dim()
            }
            fn precision(&self) -> Precision {
                (**self).precision()
            }
            fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
                (**self).eval(x, t, out)
            }
            fn eval_jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
                (**self).eval_jacobian(x, t)
            }
            fn eval_jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
                (**self).eval_jvp(x, t, v)
            }
            fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
                (**self).eval_vjp(x, t, u)
            }
            fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, p: &DivergenceParams) -> Result<Vec<f64>> {
                (**self).eval_divergence(x, t, p)
            }
        }
    )*};
}

forward_field!(&F, Box<F>, std::sync::Arc<F>);

/// The default [`ScoreField::eval_jvp`], for overrides that choose it case by case: central
/// differences `[s(x + h v̂_i) - s(x - h v̂_i)] ‖v_i‖ / (2h)` along the unit directions, all
/// `2k` points in one call of [`ScoreField::eval`], `h` = [`Precision::central_step`] of the
/// field's precision. The inputs are those of the hook (checked by [`ScoreFieldExt::jvp`]).
///
/// # Errors
/// Errors of the field.
pub fn central_difference_jvp<F: ScoreField + ?Sized>(
    f: &F,
    x: &[f64],
    t: f64,
    v: MatRef<'_, f64>,
) -> Result<Mat<f64>> {
    let (k, d) = (v.nrows(), v.ncols());
    let h = f.precision().central_step(t);
    let norms: Vec<f64> = (0..k).map(|i| v.row(i).iter().map(|a| a * a).sum::<f64>().sqrt()).collect();
    let unit = |i: usize, j: usize| if norms[i] > 0.0 { v[(i, j)] / norms[i] } else { 0.0 };
    let pts = Mat::from_fn(2 * k, d, |r, j| if r < k { x[j] + h * unit(r, j) } else { x[j] - h * unit(r - k, j) });
    let mut s = Mat::zeros(2 * k, d);
    f.eval(pts.as_ref(), t, s.as_mut())?;
    Ok(Mat::from_fn(k, d, |i, j| (s[(i, j)] - s[(k + i, j)]) * norms[i] / (2.0 * h)))
}

/// Seeded Rademacher probes (`k × d`, entries ±1, rows are probes): the probes of every
/// Hutchinson estimate in geomem, so that fields overriding the divergence draw the same
/// ones from the same seed.
pub fn rademacher_probes(k: usize, d: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(k, d, |_, _| if rng.random::<bool>() { 1.0 } else { -1.0 })
}

/// `Σ_i v_i · (J v_i) / k` for the rows of `v` and of `jv`.
pub(crate) fn mean_quadratic_form(v: MatRef<'_, f64>, jv: MatRef<'_, f64>) -> f64 {
    let k = v.nrows();
    let total: f64 = (0..k).map(|i| (0..v.ncols()).map(|j| v[(i, j)] * jv[(i, j)]).sum::<f64>()).sum();
    total / k as f64
}

/// `U J` from the Jacobian's `d` products [`ScoreField::eval_jvp`] along `e_1 … e_d`.
pub(crate) fn vjp_from_jvps<F: ScoreField + ?Sized>(f: &F, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
    let d = f.dim();
    let jt = f.eval_jvp(x, t, Mat::<f64>::identity(d, d).as_ref())?; // row j: (J e_j)ᵀ, so Jᵀ
    Ok(u * jt.transpose())
}

/// The default [`ScoreField::eval_divergence`].
fn default_divergence<F: ScoreField + ?Sized>(
    f: &F,
    x: MatRef<'_, f64>,
    t: f64,
    p: &DivergenceParams,
) -> Result<Vec<f64>> {
    divergence_by(f, x, t, p, true)
}

/// [`ScoreField::eval_divergence`]'s default; without `jacobian` it does not ask the field
/// for its Jacobian (central differences or Hutchinson's estimate from JVPs only).
pub(crate) fn divergence_by<F: ScoreField + ?Sized>(
    f: &F,
    x: MatRef<'_, f64>,
    t: f64,
    p: &DivergenceParams,
    jacobian: bool,
) -> Result<Vec<f64>> {
    let d = f.dim();
    let mut out = Vec::with_capacity(x.nrows());
    for i in 0..x.nrows() {
        let xi: Vec<f64> = x.row(i).iter().copied().collect();
        let jac = if jacobian { f.eval_jacobian(&xi, t)? } else { None };
        let value = if let Some(j) = jac {
            (0..d).map(|a| j[(a, a)]).sum()
        } else if d <= p.exact_below {
            let jv = f.eval_jvp(&xi, t, Mat::<f64>::identity(d, d).as_ref())?;
            (0..d).map(|a| jv[(a, a)]).sum()
        } else {
            let z = rademacher_probes(p.probes, d, p.seed.wrapping_add(i as u64));
            mean_quadratic_form(z.as_ref(), f.eval_jvp(&xi, t, z.as_ref())?.as_ref())
        };
        out.push(value);
    }
    Ok(out)
}
