//! The theory panel of the authors' notebook (`synthetic-experiments/
//! plots_synthetic_theory.ipynb` of `beatriceachilli/losing-dimensions`, last cell), as a
//! third named form beside Eq. 19 as printed and the derived form of
//! [`crate::EmpiricalJacobianModel`]. Read it as what produced the paper's theory figure,
//! not as a derivation: `docs/THEORY.md` §8 says what each choice does to the spectrum.
//!
//! With `σ_i²` the variances before normalisation, `G = g Σ_i σ_i⁴ / 2` (`g = 0` for data on
//! a sphere, 1 otherwise: "the r₄ term switched off") and `L = 2 ln N`:
//!
//! ```text
//! t_c,j(t) = √((G + t σ_j²) / L)        Eq. 15 at √t e_j, one condensation time per direction
//! t_c,0    = √(G / L)                   Eq. 15 at x = 0 (0 on the sphere)
//! φ_j(t)   = max(0, 1/t - 1/t_c,j(t)),  φ_0(t) = max(0, 1/t - 1/t_c,0)  (0 on the sphere)
//! F(t)     = Σ_k σ_k² / (t² (t + σ_k²))
//! s_j(t)   = √( 1/(t + σ_j²)²  +  (F(t) (φ_0(t) + φ_j(t)))² )
//! ```
//!
//! Compared with the derived form `√(A_j² + Φ_j Σ σ_k²/(t(t + σ_k²)))`: the fluctuation term
//! is squared once more, `F` carries `t²` instead of `t`, the floor of `φ` is 0 instead of
//! `1/(N t)`, and `t_c` is Eq. 15's large-`t` form. The notebook then sorts the values,
//! drops the largest few (7 for d = 30, 2 + 5) and divides by the largest remaining one
//! ([`drop_top_normalized`]).

use crate::error::{check_time, check_variances, param, RemError, Result};
use crate::jacobian_model::log_bisect;

/// The authors' closed-form spectrum (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookTheory {
    sigma2: Vec<f64>,
    n: f64,
    sphere: bool,
}

impl NotebookTheory {
    /// Variances `sigma2` (before normalisation), `n > 1` points, `sphere` when the data are
    /// normalised (the `r₄` term and `φ_0` are then switched off).
    ///
    /// # Errors
    /// [`crate::RemError::InvalidVariance`], [`crate::RemError::InvalidParameter`].
    pub fn new(sigma2: &[f64], n: f64, sphere: bool) -> Result<Self> {
        check_variances(sigma2)?;
        param("n", n, n.is_finite() && n > 1.0, "must be finite and > 1")?;
        Ok(Self { sigma2: sigma2.to_vec(), n, sphere })
    }

    fn g(&self) -> f64 {
        if self.sphere {
            0.0
        } else {
            self.sigma2.iter().map(|v| v * v).sum::<f64>() / 2.0
        }
    }

    fn l(&self) -> f64 {
        2.0 * self.n.ln()
    }

    /// `t_c,0 = √(G/L)`: 0 on the sphere, where every point is at the same distance from the
    /// centre.
    pub fn condensation_time_centre(&self) -> f64 {
        (self.g() / self.l()).sqrt()
    }

    /// `Σ_i σ_i² x_i²` (`d ω²(x)` of Eq. 15), after checking `x`.
    fn weight(&self, x: &[f64]) -> Result<f64> {
        if x.len() != self.sigma2.len() {
            return Err(RemError::DimensionMismatch { expected: self.sigma2.len(), got: x.len() });
        }
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return Err(RemError::InvalidParameter { name: "x", value: v.to_string(), reason: "must be finite" });
        }
        Ok(self.sigma2.iter().zip(x).map(|(s, v)| s * v * v).sum())
    }

    /// `t_c,0(x) = √((G + Σ σ_i² x_i²)/L)`: Eq. 15 at `x`, the notebook's `t_c,0` moved off
    /// the centre (an extension: the notebook evaluates only `x = 0`).
    ///
    /// # Errors
    /// [`crate::RemError::DimensionMismatch`], [`crate::RemError::InvalidParameter`] for a
    /// non-finite `x`.
    pub fn condensation_time_at(&self, x: &[f64]) -> Result<f64> {
        Ok(((self.g() + self.weight(x)?) / self.l()).sqrt())
    }

    /// `t_c,j(t)` for every direction `j`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn condensation_times(&self, t: f64) -> Result<Vec<f64>> {
        self.condensation_times_at(t, &vec![0.0; self.sigma2.len()])
    }

    /// `t_c,j(t, x) = √((G + Σ_i σ_i² (x + √t e_j)_i²)/L)`: Eq. 15 at `x + √t e_j`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`]; as [`Self::condensation_time_at`] for `x`.
    pub fn condensation_times_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        check_time(t)?;
        let (g, l, w) = (self.g(), self.l(), self.weight(x)?);
        let r = t.sqrt();
        Ok(self.sigma2.iter().zip(x).map(|(s, xj)| ((g + w + s * (2.0 * r * xj + t)) / l).sqrt()).collect())
    }

    /// The `t` below which `φ_j > 0`, i.e. the root of `t = t_c,j(t)`:
    /// `(σ_j² + √(σ_j⁴ + 4 L G)) / (2 L)` (`σ_j²/(2 ln N)` on the sphere), one per direction.
    pub fn onset_times(&self) -> Vec<f64> {
        let (g, l) = (self.g(), self.l());
        self.sigma2.iter().map(|s| (s + (s * s + 4.0 * l * g).sqrt()) / (2.0 * l)).collect()
    }

    /// The onsets at `x`: `t_c,0(x)` and, per direction, a root of `t = t_c,j(t, x)`
    /// (bisection in `ln t` on `[1e-12, 1e6]`; a direction without one is left out), sorted,
    /// duplicates removed.
    ///
    /// # Errors
    /// As [`Self::condensation_time_at`].
    pub fn onset_times_at(&self, x: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![self.condensation_time_at(x)?];
        for j in 0..self.sigma2.len() {
            let h = |lt: f64| -> Result<f64> { Ok(lt - self.condensation_times_at(lt.exp(), x)?[j].ln()) };
            if let Some(t) = log_bisect(h)? {
                out.push(t);
            }
        }
        out.retain(|t| *t > 0.0);
        out.sort_by(f64::total_cmp);
        out.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
        Ok(out)
    }

    /// `Φ_j = φ_0 + φ_j` for every direction.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn big_phi(&self, t: f64) -> Result<Vec<f64>> {
        self.big_phi_at(t, &vec![0.0; self.sigma2.len()])
    }

    /// `Φ_j(x) = φ(t_c,0(x)) + φ(t_c,j(t, x))`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`]; as [`Self::condensation_time_at`] for `x`.
    pub fn big_phi_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        let phi = |tc: f64| if tc > 0.0 { (1.0 / t - 1.0 / tc).max(0.0) } else { 0.0 };
        let tcj = self.condensation_times_at(t, x)?;
        let p0 = phi(self.condensation_time_at(x)?);
        Ok(tcj.into_iter().map(|tc| p0 + phi(tc)).collect())
    }

    /// `F(t) = Σ_k σ_k² / (t² (t + σ_k²))`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn factor(&self, t: f64) -> Result<f64> {
        check_time(t)?;
        Ok(self.sigma2.iter().map(|s| s / (t * t * (t + s))).sum())
    }

    /// `s_j(t)` in the order of `sigma2` (not sorted), so a caller can follow each
    /// direction.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn values(&self, t: f64) -> Result<Vec<f64>> {
        self.values_at(t, &vec![0.0; self.sigma2.len()])
    }

    /// [`Self::values`] at `x`, with [`Self::big_phi_at`].
    ///
    /// # Errors
    /// As [`Self::big_phi_at`].
    pub fn values_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        let f = self.factor(t)?;
        let phi = self.big_phi_at(t, x)?;
        Ok(self.sigma2.iter().zip(phi).map(|(s, p)| ((t + s).powi(-2) + (f * p).powi(2)).sqrt()).collect())
    }

    /// [`Self::values`] sorted decreasing.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn spectrum(&self, t: f64) -> Result<Vec<f64>> {
        self.spectrum_at(t, &vec![0.0; self.sigma2.len()])
    }

    /// [`Self::values_at`] sorted decreasing.
    ///
    /// # Errors
    /// As [`Self::big_phi_at`].
    pub fn spectrum_at(&self, t: f64, x: &[f64]) -> Result<Vec<f64>> {
        let mut s = self.values_at(t, x)?;
        s.sort_by(|a, b| b.total_cmp(a));
        Ok(s)
    }
}

/// The notebook's display: the decreasing spectrum `s` without its `drop` largest values,
/// divided by the largest remaining one. Empty when `drop >= s.len()`.
pub fn drop_top_normalized(s: &[f64], drop: usize) -> Vec<f64> {
    let rest = s.get(drop..).unwrap_or(&[]);
    let top = rest.first().copied().unwrap_or(1.0);
    rest.iter().map(|v| v / top).collect()
}
