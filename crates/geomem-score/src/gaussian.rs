//! Exact score of a Gaussian linear manifold (seed 001, Sec. 5.1, Eq. 8 and 9).
//!
//! Data `x_0 = F z`, `z ~ N(0, I_m)`, so `x_0 ~ N(0, Σ)` with `Σ = F Fᵀ`. Under the
//! variance-exploding process `x_t = x_0 + √t ε` the marginal is `N(0, Σ + t I)`, hence
//!
//! ```text
//! s(x, t) = -(Σ + t I)⁻¹ x,        ∇s = -(Σ + t I)⁻¹ = -U diag(1 / (λ_k + t)) Uᵀ.
//! ```
//!
//! Eq. 8 of seed 001 writes the same matrix through Woodbury,
//! `(1/t) F [I_m + FᵀF/t]⁻¹ Fᵀ - I_d = t ∇s`: its left side is `t` times the Jacobian (the
//! paper's `J_t/t` notation), so its singular values are `t / (t + λ_k)` ∈ (0, 1].

use crate::error::{check_dim, check_finite, check_time, check_variances, Result, ScoreError};
use crate::field::{DivergenceParams, ScoreField};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};

/// The exact score of `N(0, Σ)` under the VE process, stored through the eigendecomposition
/// `Σ = U diag(λ) Uᵀ` so that any `t` costs two matrix products.
#[derive(Debug, Clone)]
pub struct GaussianScore {
    u: Mat<f64>,
    lambda: Vec<f64>,
    diagonal: bool,
}

impl GaussianScore {
    /// Axis-aligned covariance `Σ = diag(sigma2)`.
    ///
    /// # Errors
    /// [`ScoreError::EmptyDataset`] for an empty list, [`ScoreError::InvalidVariance`] for a
    /// negative or non-finite variance.
    pub fn from_variances(sigma2: &[f64]) -> Result<Self> {
        if sigma2.is_empty() {
            return Err(ScoreError::EmptyDataset);
        }
        check_variances(sigma2)?;
        Ok(Self { u: Mat::identity(sigma2.len(), sigma2.len()), lambda: sigma2.to_vec(), diagonal: true })
    }

    /// Covariance `Σ = F Fᵀ` of the linear manifold `x_0 = F z` (`F` is `d × m`, `m <= d`).
    ///
    /// # Errors
    /// [`ScoreError::ManifoldTooLarge`] when `m > d`, [`ScoreError::NonFinite`] for NaN/∞ entries.
    pub fn from_factor(f: MatRef<'_, f64>) -> Result<Self> {
        let (d, m) = (f.nrows(), f.ncols());
        if d == 0 {
            return Err(ScoreError::EmptyDataset);
        }
        if m > d {
            return Err(ScoreError::ManifoldTooLarge { m, d });
        }
        check_finite(f, "factor F")?;
        let sigma = f * f.transpose();
        Self::from_covariance(sigma.as_ref())
    }

    /// Any symmetric positive semi-definite covariance `Σ` (`d × d`).
    ///
    /// Eigenvalues in `[-1e-10 ‖Σ‖, 0)` (round-off) are set to zero.
    ///
    /// # Errors
    /// [`ScoreError::DimensionMismatch`] for a non-square matrix, [`ScoreError::InvalidVariance`]
    /// when `Σ` has a clearly negative eigenvalue, [`ScoreError::Linalg`] if the
    /// eigendecomposition fails.
    pub fn from_covariance(sigma: MatRef<'_, f64>) -> Result<Self> {
        let d = sigma.nrows();
        if d == 0 {
            return Err(ScoreError::EmptyDataset);
        }
        check_dim(d, sigma.ncols())?;
        check_finite(sigma, "covariance")?;
        let sym = Mat::from_fn(d, d, |i, j| 0.5 * (sigma[(i, j)] + sigma[(j, i)]));
        let evd = sym
            .self_adjoint_eigen(Side::Lower)
            .map_err(|_| ScoreError::Linalg("covariance eigendecomposition did not converge"))?;
        let s = evd.S().column_vector();
        let scale = (0..d).map(|k| s[k].abs()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
        let mut lambda = Vec::with_capacity(d);
        for k in 0..d {
            let l = s[k];
            if l < -1e-10 * scale {
                return Err(ScoreError::InvalidVariance { index: k, value: l });
            }
            lambda.push(l.max(0.0));
        }
        Ok(Self { u: evd.U().to_owned(), lambda, diagonal: false })
    }

    /// Eigenvalues `λ_k` of `Σ` (variances along the principal axes), in storage order.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.lambda
    }

    /// The rank `m` of `Σ`: eigenvalues above `1e-12 · max λ`.
    pub fn rank(&self) -> usize {
        let max = self.lambda.iter().copied().fold(0.0, f64::max);
        self.lambda.iter().filter(|&&l| l > 1e-12 * max && l > 0.0).count()
    }

    /// Singular values of the exact Jacobian, `1 / (t + λ_k)`, sorted in decreasing order.
    ///
    /// # Formula
    /// `σ_k(∇s) = 1/(t + λ_k)` (Eq. 8 divided by `t`).
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`.
    pub fn spectrum(&self, t: f64) -> Result<Vec<f64>> {
        check_time(t)?;
        let mut s: Vec<f64> = self.lambda.iter().map(|&l| 1.0 / (t + l)).collect();
        s.sort_by(|a, b| b.total_cmp(a));
        Ok(s)
    }

    /// Size of the manifold gap at position `d - m` of the max-normalised spectrum:
    /// `λ_min / (t + λ_min)`, with `λ_min` the smallest non-zero eigenvalue of `Σ`.
    ///
    /// This is the exact value that Eq. 9 of seed 001 approximates with a Marchenko–Pastur
    /// edge; see [`marchenko_pastur_gap`] and `docs/THEORY.md`. Returns 0 when `Σ = 0`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`.
    pub fn manifold_gap(&self, t: f64) -> Result<f64> {
        check_time(t)?;
        let max = self.lambda.iter().copied().fold(0.0, f64::max);
        let lmin = self.lambda.iter().copied().filter(|&l| l > 1e-12 * max && l > 0.0).fold(f64::INFINITY, f64::min);
        Ok(if lmin.is_finite() { lmin / (t + lmin) } else { 0.0 })
    }

    fn apply(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>, sign: f64) {
        let d = self.lambda.len();
        if self.diagonal {
            for j in 0..d {
                let c = sign / (t + self.lambda[j]);
                for i in 0..x.nrows() {
                    out[(i, j)] = c * x[(i, j)];
                }
            }
            return;
        }
        // out = sign · X U diag(1/(λ+t)) Uᵀ
        let mut xu = x * self.u.as_ref();
        for j in 0..d {
            let c = sign / (t + self.lambda[j]);
            for i in 0..x.nrows() {
                xu[(i, j)] *= c;
            }
        }
        faer::linalg::matmul::matmul(out.as_mut(), Accum::Replace, xu.as_ref(), self.u.transpose(), 1.0, Par::Seq);
    }
}

impl ScoreField for GaussianScore {
    fn dim(&self) -> usize {
        self.lambda.len()
    }

    /// # Formula
    /// `s(x, t) = -(Σ + t I)⁻¹ x`.
    fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
        self.apply(x, t, out, -1.0);
        Ok(())
    }

    /// # Formula
    /// `∇s = -(Σ + t I)⁻¹`, the same at every `x`.
    fn eval_jacobian(&self, _x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        let d = self.dim();
        let mut j = Mat::zeros(d, d);
        self.apply(Mat::<f64>::identity(d, d).as_ref(), t, j.as_mut(), -1.0);
        Ok(Some(j))
    }

    /// # Formula
    /// `uᵀ J = (J u)ᵀ`: the Jacobian `-(Σ + tI)⁻¹` is symmetric, so a VJP is the JVP.
    fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.eval_jvp(x, t, u)
    }

    /// # Formula
    /// `J v = -(Σ + t I)⁻¹ v` (exact; the Jacobian is symmetric).
    fn eval_jvp(&self, _x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        let mut out = Mat::zeros(v.nrows(), v.ncols());
        self.apply(v, t, out.as_mut(), -1.0);
        Ok(out)
    }

    /// # Formula
    /// `tr ∇s = -Σ_k 1/(λ_k + t)`, exact at every `d`.
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, _p: &DivergenceParams) -> Result<Vec<f64>> {
        let tr: f64 = -self.lambda.iter().map(|l| 1.0 / (l + t)).sum::<f64>();
        Ok(vec![tr; x.nrows()])
    }
}

/// The two edges `σ² (α_m^{-1/2} ± 1)²` of the Marchenko–Pastur law of the eigenvalues of
/// `FᵀF`, for `F` a `d × m` matrix with i.i.d. `N(0, σ²/m)` entries and `α_m = m/d`.
///
/// Returns `(lower, upper)`.
///
/// # Errors
/// [`ScoreError::InvalidParameter`] unless `0 < α_m <= 1`; [`ScoreError::InvalidVariance`]
/// for a negative `σ²`.
pub fn marchenko_pastur_edges(sigma2: f64, alpha_m: f64) -> Result<(f64, f64)> {
    check_variances(&[sigma2])?;
    if !(alpha_m > 0.0 && alpha_m <= 1.0) {
        return Err(ScoreError::InvalidParameter {
            name: "alpha_m",
            value: alpha_m.to_string(),
            reason: "must lie in (0, 1]",
        });
    }
    let r = alpha_m.powf(-0.5);
    Ok((sigma2 * (r - 1.0).powi(2), sigma2 * (r + 1.0).powi(2)))
}

/// Which Marchenko–Pastur edge enters the gap formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpEdge {
    /// `σ²(1 + α_m^{-1/2})²`: the formula as printed in Eq. 9 of seed 001.
    UpperAsPrinted,
    /// `σ²(α_m^{-1/2} - 1)²`: the edge that actually borders the gap at `d - m`
    /// (derivation in `docs/THEORY.md`).
    Lower,
}

/// Gap size of Eq. 9, `λ_e / (t + λ_e)`, with `λ_e` the chosen Marchenko–Pastur edge.
///
/// # Formula
/// Eq. 9 of seed 001: `Δ_GAP(t; σ) = σ²(1 + α_m^{-1/2})² / (t + σ²(1 + α_m^{-1/2})²)`.
/// The derivation in `docs/THEORY.md` shows that the gap at `d - m` of the max-normalised
/// spectrum is `λ_min/(t + λ_min)`, so [`MpEdge::Lower`] is the large-`d` prediction of
/// [`GaussianScore::manifold_gap`]; [`MpEdge::UpperAsPrinted`] reproduces the paper's text.
///
/// # Errors
/// As [`marchenko_pastur_edges`], plus [`ScoreError::InvalidTime`].
pub fn marchenko_pastur_gap(t: f64, sigma2: f64, alpha_m: f64, edge: MpEdge) -> Result<f64> {
    check_time(t)?;
    let (lo, hi) = marchenko_pastur_edges(sigma2, alpha_m)?;
    let l = match edge {
        MpEdge::UpperAsPrinted => hi,
        MpEdge::Lower => lo,
    };
    Ok(l / (t + l))
}
