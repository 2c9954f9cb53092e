//! Noise schedules and the conversions between them.
//!
//! Everything in geomem is written in the variance-exploding (VE) time `t = σ²`:
//! `x_t = x_0 + √t ε`. Two other parameterisations appear in the papers:
//!
//! * the geometric VE schedule of score-SDE models, `σ(τ) = σ_min (σ_max/σ_min)^τ`,
//!   `τ ∈ [0, 1]` (seed 001, Supp. A: σ_min = 0.01, σ_max = 50 for the toy networks);
//! * the discrete DDPM variance-preserving schedule (Ho et al. 2020, used for the image
//!   models: β linear from 1e-4 to 2e-2 over T = 1000 steps),
//!   `x_k = √ᾱ_k x_0 + √(1-ᾱ_k) ε`, `ᾱ_k = Π_{i<=k} (1-β_i)`.
//!
//! A VP state maps to a VE state by `x_ve = x_vp / √ᾱ_k` at `t = (1-ᾱ_k)/ᾱ_k`, and scores map
//! back by `s_vp(x_vp) = s_ve(x_vp/√ᾱ_k, t) / √ᾱ_k`.

use crate::error::{check_time, Result, ScoreError};

fn param(name: &'static str, value: f64, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ScoreError::InvalidParameter { name, value: value.to_string(), reason })
    }
}

/// The geometric VE schedule `σ(τ) = σ_min (σ_max/σ_min)^τ`, `t(τ) = σ(τ)²`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeometricVe {
    sigma_min: f64,
    sigma_max: f64,
}

impl Default for GeometricVe {
    /// Defaults: `σ_min = 0.01`, `σ_max = 50` (seed 001, Supp. A).
    fn default() -> Self {
        Self { sigma_min: 0.01, sigma_max: 50.0 }
    }
}

impl GeometricVe {
    /// A schedule with `0 < σ_min < σ_max < ∞`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidParameter`] otherwise.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        param("sigma_min", sigma_min, sigma_min.is_finite() && sigma_min > 0.0, "must be finite and > 0")?;
        param("sigma_max", sigma_max, sigma_max.is_finite() && sigma_max > sigma_min, "must be finite and > sigma_min")?;
        Ok(Self { sigma_min, sigma_max })
    }
    /// `σ_min`.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
    /// `σ_max`.
    pub fn sigma_max(&self) -> f64 {
        self.sigma_max
    }
    /// `σ(τ) = σ_min (σ_max/σ_min)^τ`.
    pub fn sigma(&self, tau: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(tau)
    }
    /// VE time `t(τ) = σ(τ)²`.
    pub fn time(&self, tau: f64) -> f64 {
        self.sigma(tau).powi(2)
    }
    /// Inverse of [`GeometricVe::time`]: `τ = ln(√t/σ_min) / ln(σ_max/σ_min)`
    /// (outside `[0, 1]` when `t` is outside `[σ_min², σ_max²]`).
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`.
    pub fn tau(&self, t: f64) -> Result<f64> {
        check_time(t)?;
        Ok((t.sqrt() / self.sigma_min).ln() / (self.sigma_max / self.sigma_min).ln())
    }
}

/// The discrete DDPM variance-preserving schedule with linear `β`.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpmSchedule {
    betas: Vec<f64>,
    alpha_bar: Vec<f64>,
}

impl Default for DdpmSchedule {
    /// Defaults: `β_min = 1e-4`, `β_max = 2e-2`, `T = 1000` (Ho et al. 2020; seed 001 Supp. A).
    fn default() -> Self {
        Self::linear(1e-4, 2e-2, 1000).expect("default parameters are valid")
    }
}

impl DdpmSchedule {
    /// `β_k` linear from `beta_min` to `beta_max` over `steps` steps (`k = 0 … T-1`).
    ///
    /// # Errors
    /// [`ScoreError::InvalidParameter`] unless `0 < β_min <= β_max < 1` and `T >= 1`.
    pub fn linear(beta_min: f64, beta_max: f64, steps: usize) -> Result<Self> {
        param("beta_min", beta_min, beta_min > 0.0 && beta_min < 1.0, "must lie in (0, 1)")?;
        param("beta_max", beta_max, beta_max >= beta_min && beta_max < 1.0, "must lie in [beta_min, 1)")?;
        param("steps", steps as f64, steps >= 1, "must be >= 1")?;
        let betas: Vec<f64> = (0..steps)
            .map(|k| if steps == 1 { beta_min } else { beta_min + (beta_max - beta_min) * k as f64 / (steps - 1) as f64 })
            .collect();
        let mut acc = 1.0;
        let alpha_bar = betas.iter().map(|b| {
            acc *= 1.0 - b;
            acc
        }).collect();
        Ok(Self { betas, alpha_bar })
    }
    /// Number of steps `T`.
    pub fn steps(&self) -> usize {
        self.betas.len()
    }
    /// `β_k`.
    pub fn beta(&self, k: usize) -> Option<f64> {
        self.betas.get(k).copied()
    }
    /// `ᾱ_k = Π_{i<=k} (1 - β_i)`.
    pub fn alpha_bar(&self, k: usize) -> Option<f64> {
        self.alpha_bar.get(k).copied()
    }
    /// The VE time of step `k`: `t_k = (1 - ᾱ_k) / ᾱ_k`.
    pub fn ve_time(&self, k: usize) -> Option<f64> {
        self.alpha_bar(k).map(|a| (1.0 - a) / a)
    }
    /// The step whose VE time is closest to `t` in `log t`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`.
    pub fn step_for_ve_time(&self, t: f64) -> Result<usize> {
        check_time(t)?;
        let lt = t.ln();
        let mut best = (0, f64::INFINITY);
        for k in 0..self.steps() {
            let e = (self.ve_time(k).unwrap_or(f64::NAN).ln() - lt).abs();
            if e < best.1 {
                best = (k, e);
            }
        }
        Ok(best.0)
    }
    /// Scale factor `1/√ᾱ_k` that maps a VP state to the VE state at `t_k`
    /// (`x_ve = x_vp / √ᾱ_k`) and a VE score to the VP score (`s_vp = s_ve / √ᾱ_k`).
    pub fn vp_to_ve_scale(&self, k: usize) -> Option<f64> {
        self.alpha_bar(k).map(|a| 1.0 / a.sqrt())
    }
}
