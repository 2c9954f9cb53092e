//! Random-matrix model of the empirical Jacobian (seed 001, Eq. 18 / 41) and its
//! closed-form singular values (Eq. 19 / 43).
//!
//! In the basis where the data covariance is `diag(σ_k²)`, at `x = 0`, the smoothed
//! Jacobian of the empirical score is modelled as independent Gaussian entries
//!
//! ```text
//! J_ij ~ N( -δ_ij/(t + σ_i²),  σ_i²/(t (t + σ_i²)) · [φ(t, 0) + φ(t, √t e_j)] )      (Eq. 18)
//! ```
//!
//! where the second argument is the **variance** (Eq. 39-41 derive it as `β² C_ii · β/Ñ`,
//! `C = (Λ⁻¹ + β)⁻¹`). Here `φ(t, x) = β / N_eff(t, x) = max(1/(N t), 1/t - 1/t_c(x))`: the
//! variance of the mean of `N_eff` posterior samples. Eq. 18 prints the floor as `1/N`
//! instead of `1/(N t)`; the two agree up to a factor `t` in the generalisation phase where
//! the floor is reached, and only the derived form is consistent with the cap of Eq. 16.
//!
//! Closed form. Writing `J = A + B` (mean plus fluctuation) and keeping the diagonal of
//! `JᵀJ` (Eq. 44-46), `E[(JᵀJ)_ii] = A_i² + Σ_k var(J_ki)`, so
//!
//! ```text
//! s̄_i² = 1/(t + σ_i²)² + Φ_i Σ_k σ_k² / (t (t + σ_k²)),   Φ_i = φ(t, 0) + φ(t, √t e_i).
//! ```
//!
//! Eq. 19 prints `Σ_k σ_k² / (t² (t + σ_k²)²) · Φ_i²` and Eq. 43 prints
//! `Σ_k σ_k⁴ / (t² (t + σ_k²)²) · Φ_i²`; Eq. 43 is what one gets by treating the variance
//! of Eq. 41 as a standard deviation, and Eq. 19 additionally drops a square on `σ_k²`.
//! [`ClosedForm`] selects among the three; the tests check that only
//! [`ClosedForm::Derived`] equals the mean column norms of the sampled matrix.

use crate::condensation::PositionalRem;
use crate::error::{check_time, check_variances, param, Result};
use crate::participation::n_eff;
use faer::Mat;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Which closed form of the singular values to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClosedForm {
    /// `s̄_i² = A_i² + Φ_i Σ_k σ_k²/(t(t+σ_k²))`: the expectation of the column norms of Eq. 18.
    Derived,
    /// Eq. 19 as printed: `A_i² + Φ_i² Σ_k σ_k²/(t²(t+σ_k²)²)`.
    Eq19AsPrinted,
    /// Eq. 43 as printed (in `t` units): `A_i² + Φ_i² Σ_k σ_k⁴/(t²(t+σ_k²)²)`.
    Eq43AsPrinted,
}

/// How `t_c(x)` is computed inside `φ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CondensationMethod {
    /// Root of `α + ζ(1) - ζ'(1) = 0`, the condensation condition of Supp. C. The printed
    /// figures do not say which `t_c` they use; the authors' notebook uses neither this nor
    /// [`Self::LargeT`] as such but Eq. 15 per direction with the `r₄` term switched off for
    /// sphere data ([`crate::NotebookTheory`]).
    Exact,
    /// The large-`t` closed form, Eq. 15.
    LargeT,
}

/// Singular values of the exact score's Jacobian, `1/(t + σ_k²)`, sorted decreasing.
///
/// # Errors
/// [`crate::RemError::InvalidTime`], [`crate::RemError::InvalidVariance`].
pub fn exact_spectrum(sigma2: &[f64], t: f64) -> Result<Vec<f64>> {
    check_time(t)?;
    check_variances(sigma2)?;
    let mut s: Vec<f64> = sigma2.iter().map(|v| 1.0 / (t + v)).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    Ok(s)
}

/// The model of Eq. 18 for data with coordinate variances `σ_k²` and `N` training points.
#[derive(Debug, Clone, PartialEq)]
pub struct EmpiricalJacobianModel {
    sigma2: Vec<f64>,
    n: f64,
    method: CondensationMethod,
}

impl EmpiricalJacobianModel {
    /// A model with `n > 1` training points and exact condensation times.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidVariance`], [`crate::RemError::InvalidParameter`].
    pub fn new(sigma2: &[f64], n: f64) -> Result<Self> {
        check_variances(sigma2)?;
        param("n", n, n.is_finite() && n > 1.0, "must be finite and > 1")?;
        Ok(Self { sigma2: sigma2.to_vec(), n, method: CondensationMethod::Exact })
    }

    /// Chooses how `t_c` is computed.
    pub fn with_condensation(mut self, method: CondensationMethod) -> Self {
        self.method = method;
        self
    }

    /// `d`.
    pub fn d(&self) -> usize {
        self.sigma2.len()
    }

    /// `t_c(x)` by the chosen method.
    ///
    /// # Errors
    /// As [`PositionalRem::with_n`].
    pub fn condensation_time(&self, x: &[f64]) -> Result<f64> {
        let rem = PositionalRem::with_n(&self.sigma2, x, self.n)?;
        Ok(match self.method {
            CondensationMethod::Exact => rem.condensation_time(),
            CondensationMethod::LargeT => rem.condensation_time_large_t(),
        })
    }

    /// The times where each `φ` of [`Self::big_phi`] leaves its floor: `t_c(0)` first, then,
    /// for every distinct variance `σ_j²`, the root of `t = t_c(√t e_j)` (bisection in `ln t`
    /// on `[1e-12, 1e6]`; a direction with no root in that range is left out). Sorted,
    /// duplicates removed. A `t`-grid that steps over these misses where gaps open
    /// ([`refine_around`]).
    ///
    /// # Errors
    /// As [`PositionalRem::with_n`].
    pub fn onset_times(&self) -> Result<Vec<f64>> {
        self.onset_times_at(&vec![0.0; self.d()])
    }

    /// [`Self::onset_times`] at the position `x`: `t_c(x)` and, for every distinct pair
    /// `(σ_j², x_j)` (every direction of zero variance shares one), a root of
    /// `t = t_c(x + √t e_j)`.
    ///
    /// # Errors
    /// As [`PositionalRem::with_n`].
    pub fn onset_times_at(&self, x: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![self.condensation_time(x)?];
        let mut seen: Vec<(f64, f64)> = Vec::new();
        for j in 0..self.d() {
            let v = self.sigma2[j];
            let key = (v, if v == 0.0 { 0.0 } else { x[j] });
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let h = |lt: f64| -> Result<f64> {
                let mut y = x.to_vec();
                y[j] += (0.5 * lt).exp();
                Ok(lt - self.condensation_time(&y)?.ln())
            };
            if let Some(t) = log_bisect(h)? {
                out.push(t);
            }
        }
        out.sort_by(f64::total_cmp);
        out.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
        Ok(out)
    }

    /// `φ(t, x) = 1/(t N_eff(t, x))`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn phi(&self, t: f64, x: &[f64]) -> Result<f64> {
        let tc = self.condensation_time(x)?;
        Ok(1.0 / (t * n_eff(t, tc, self.n)?))
    }

    /// `Φ_j = φ(t, 0) + φ(t, √t e_j)` for every `j`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn big_phi(&self, t: f64) -> Result<Vec<f64>> {
        self.big_phi_at(t, &vec![0.0; self.d()])
    }

    /// `Φ_j(x) = φ(t, x) + φ(t, x + √t e_j)`: the variance factor of the forward difference
    /// `√β (s(x + e_j/√β) - s(x))` at a position `x` (seed 000, Eq. 34-36, which sets the
    /// model "on x, a point belonging to the manifold"; seed 001 Eq. 40-41 is `x = 0`).
    /// `x` is in the eigenbasis of the data covariance, like `sigma2`, and is treated as
    /// independent of the training set (a held-out point, not a training point).
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`]; as [`PositionalRem::with_n`] for `x`.
    pub fn big_phi_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        check_time(t)?;
        let p0 = self.phi(t, x)?;
        let mut y = x.to_vec();
        (0..self.d())
            .map(|j| {
                y[j] += t.sqrt();
                let p = self.phi(t, &y);
                y[j] = x[j];
                p.map(|p| p0 + p)
            })
            .collect()
    }

    /// Mean `-1/(t + σ_i²)` and variance `σ_i²/(t(t+σ_i²)) Φ_j` of `J_ij` (Eq. 18), as two
    /// `d × d` matrices.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn moments(&self, t: f64) -> Result<(Mat<f64>, Mat<f64>)> {
        self.moments_at(t, &vec![0.0; self.d()])
    }

    /// [`Self::moments`] at `x`: the mean of the score, `-(Λ + t)⁻¹ x` (Eq. 39), is linear
    /// in `x`, so the mean Jacobian does not move; only `Φ_j` becomes [`Self::big_phi_at`].
    ///
    /// # Errors
    /// As [`Self::big_phi_at`].
    pub fn moments_at(&self, t: f64, x: &[f64]) -> Result<(Mat<f64>, Mat<f64>)> {
        let phi = self.big_phi_at(t, x)?;
        let d = self.d();
        let mean = Mat::from_fn(d, d, |i, j| if i == j { -1.0 / (t + self.sigma2[i]) } else { 0.0 });
        let var = Mat::from_fn(d, d, |i, j| self.sigma2[i] / (t * (t + self.sigma2[i])) * phi[j]);
        Ok((mean, var))
    }

    /// One draw of the random Jacobian of Eq. 18, seeded.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn sample(&self, t: f64, seed: u64) -> Result<Mat<f64>> {
        self.sample_at(t, &vec![0.0; self.d()], seed)
    }

    /// One draw of the random Jacobian at `x` ([`Self::moments_at`]), seeded.
    ///
    /// # Errors
    /// As [`Self::big_phi_at`].
    pub fn sample_at(&self, t: f64, x: &[f64], seed: u64) -> Result<Mat<f64>> {
        let (mean, var) = self.moments_at(t, x)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let d = self.d();
        let mut j = Mat::zeros(d, d);
        for c in 0..d {
            for r in 0..d {
                let z: f64 = StandardNormal.sample(&mut rng);
                j[(r, c)] = mean[(r, c)] + var[(r, c)].sqrt() * z;
            }
        }
        Ok(j)
    }

    /// Sorted singular values of one draw of Eq. 18 (the centre panels of Fig. 4, 11, 12).
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`]; an SVD that does not converge is reported as
    /// [`crate::RemError::InvalidParameter`] on `t`.
    pub fn sample_spectrum(&self, t: f64, seed: u64) -> Result<Vec<f64>> {
        let j = self.sample(t, seed)?;
        j.singular_values().map_err(|_| crate::RemError::InvalidParameter {
            name: "t",
            value: t.to_string(),
            reason: "SVD of the sampled Jacobian did not converge",
        })
    }

    /// Closed-form singular values `s̄_i` (Eq. 19 / 43; see [`ClosedForm`]), sorted decreasing.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn closed_form_spectrum(&self, t: f64, form: ClosedForm) -> Result<Vec<f64>> {
        self.closed_form_spectrum_at(t, &vec![0.0; self.d()], form)
    }

    /// [`Self::closed_form_spectrum`] at the position `x` (seed 000 Eq. 37 with
    /// [`Self::big_phi_at`]), sorted decreasing.
    ///
    /// # Errors
    /// As [`Self::big_phi_at`].
    pub fn closed_form_spectrum_at(&self, t: f64, x: &[f64], form: ClosedForm) -> Result<Vec<f64>> {
        let mut out = self.closed_form_values_at(t, x, form)?;
        out.sort_by(|a, b| b.total_cmp(a));
        Ok(out)
    }

    /// The closed-form value of each direction at `x`, in the order of `sigma2` (not
    /// sorted), so a caller can tell which block a value belongs to: in this model the
    /// columns are independent and `JᵀJ` is treated as diagonal, so value `i` belongs to the
    /// coordinate axis `e_i`.
    ///
    /// # Errors
    /// As [`Self::big_phi_at`].
    pub fn closed_form_values_at(&self, t: f64, x: &[f64], form: ClosedForm) -> Result<Vec<f64>> {
        let phi = self.big_phi_at(t, x)?;
        let s = &self.sigma2;
        let sum: f64 = match form {
            ClosedForm::Derived => s.iter().map(|&v| v / (t * (t + v))).sum(),
            ClosedForm::Eq19AsPrinted => s.iter().map(|&v| v / (t * t * (t + v) * (t + v))).sum(),
            ClosedForm::Eq43AsPrinted => s.iter().map(|&v| v * v / (t * t * (t + v) * (t + v))).sum(),
        };
        Ok((0..self.d())
            .map(|i| {
                let a = 1.0 / (t + s[i]);
                let b = match form {
                    ClosedForm::Derived => phi[i] * sum,
                    _ => phi[i] * phi[i] * sum,
                };
                (a * a + b).sqrt()
            })
            .collect())
    }
}

/// A root of `h(ln t) = 0` by bisection in `ln t` on `[1e-12, 1e6]`, `h` increasing through
/// it; `None` when `h` does not change sign from below to above on that range.
pub(crate) fn log_bisect(h: impl Fn(f64) -> Result<f64>) -> Result<Option<f64>> {
    let (mut lo, mut hi) = (1e-12f64.ln(), 1e6f64.ln());
    if h(lo)? > 0.0 || h(hi)? < 0.0 {
        return Ok(None);
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if h(mid)? < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some((0.5 * (lo + hi)).exp()))
}

/// `grid` plus every centre `c` and `points` log-spaced times on `[c (1 - rel), c (1 + rel)]`
/// around it (centres that are not finite and positive are skipped), sorted, with values closer
/// than a relative `1e-9` merged.
///
/// # Errors
/// [`crate::RemError::InvalidParameter`] unless `0 < rel < 1`;
/// [`crate::RemError::InvalidTime`] for a grid value that is not finite and positive.
pub fn refine_around(grid: &[f64], centres: &[f64], rel: f64, points: usize) -> Result<Vec<f64>> {
    param("rel", rel, rel > 0.0 && rel < 1.0, "must lie in (0, 1)")?;
    for &t in grid {
        check_time(t)?;
    }
    let mut out = grid.to_vec();
    for &c in centres.iter().filter(|c| c.is_finite() && **c > 0.0) {
        out.push(c);
        if points <= 1 {
            continue;
        }
        let (a, b) = ((c * (1.0 - rel)).ln(), (c * (1.0 + rel)).ln());
        let steps = points.max(2) - 1;
        out.extend((0..points).map(|i| (a + (b - a) * i as f64 / steps as f64).exp()));
    }
    out.sort_by(f64::total_cmp);
    out.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
    Ok(out)
}
