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

use crate::error::{check_time, check_variances, param, Result};

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

    /// `t_c,j(t)` for every direction `j`.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn condensation_times(&self, t: f64) -> Result<Vec<f64>> {
        check_time(t)?;
        let (g, l) = (self.g(), self.l());
        Ok(self.sigma2.iter().map(|s| ((g + t * s) / l).sqrt()).collect())
    }

    /// The `t` below which `φ_j > 0`, i.e. the root of `t = t_c,j(t)`:
    /// `(σ_j² + √(σ_j⁴ + 4 L G)) / (2 L)` (`σ_j²/(2 ln N)` on the sphere), one per direction.
    pub fn onset_times(&self) -> Vec<f64> {
        let (g, l) = (self.g(), self.l());
        self.sigma2.iter().map(|s| (s + (s * s + 4.0 * l * g).sqrt()) / (2.0 * l)).collect()
    }

    /// `Φ_j = φ_0 + φ_j` for every direction.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn big_phi(&self, t: f64) -> Result<Vec<f64>> {
        let phi = |tc: f64| if tc > 0.0 { (1.0 / t - 1.0 / tc).max(0.0) } else { 0.0 };
        let p0 = phi(self.condensation_time_centre());
        Ok(self.condensation_times(t)?.into_iter().map(|tc| p0 + phi(tc)).collect())
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
        let f = self.factor(t)?;
        let phi = self.big_phi(t)?;
        Ok(self.sigma2.iter().zip(phi).map(|(s, p)| ((t + s).powi(-2) + (f * p).powi(2)).sqrt()).collect())
    }

    /// [`Self::values`] sorted decreasing.
    ///
    /// # Errors
    /// [`crate::RemError::InvalidTime`].
    pub fn spectrum(&self, t: f64) -> Result<Vec<f64>> {
        let mut s = self.values(t)?;
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
