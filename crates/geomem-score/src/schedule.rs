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
//! back by `s_vp(x_vp) = s_ve(x_vp/√ᾱ_k, t) / √ᾱ_k`. Both directions are exact:
//! `ᾱ = 1/(1+t)`, so `t_k = expm1(-ln ᾱ_k)` with `ln ᾱ_k = Σ_{i<=k} ln(1-β_i)` summed in
//! logarithms (no cancellation in `1 - ᾱ` at small `k`). A time that is not on a discrete
//! grid, or outside a schedule's range, is an error ([`ScoreError::OffGrid`],
//! [`ScoreError::TimeOutOfRange`]), never rounded to the nearest step silently.

use crate::error::{check_time, Result, ScoreError};

/// Relative tolerance within which a VE time is taken to be a grid time `t_k`.
pub const GRID_RTOL: f64 = 1e-12;

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
        param(
            "sigma_max",
            sigma_max,
            sigma_max.is_finite() && sigma_max > sigma_min,
            "must be finite and > sigma_min",
        )?;
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
    /// `ln ᾱ_k`, decreasing.
    log_alpha_bar: Vec<f64>,
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
        let span = (steps.max(2) - 1) as f64;
        let betas: Vec<f64> = (0..steps).map(|k| beta_min + (beta_max - beta_min) * k as f64 / span).collect();
        let mut acc = 0.0;
        let log_alpha_bar = betas
            .iter()
            .map(|b| {
                acc += (-b).ln_1p();
                acc
            })
            .collect();
        Ok(Self { betas, log_alpha_bar })
    }
    /// Number of steps `T`.
    pub fn steps(&self) -> usize {
        self.betas.len()
    }
    fn check_step(&self, k: usize) -> Result<()> {
        if k < self.steps() {
            Ok(())
        } else {
            Err(ScoreError::StepOutOfRange { step: k, steps: self.steps() })
        }
    }
    /// `β_k`.
    ///
    /// # Errors
    /// [`ScoreError::StepOutOfRange`] for `k >= T`.
    pub fn beta(&self, k: usize) -> Result<f64> {
        self.check_step(k)?;
        Ok(self.betas[k])
    }
    /// `ᾱ_k = Π_{i<=k} (1 - β_i)`.
    ///
    /// # Errors
    /// [`ScoreError::StepOutOfRange`] for `k >= T`.
    pub fn alpha_bar(&self, k: usize) -> Result<f64> {
        self.check_step(k)?;
        Ok(self.log_alpha_bar[k].exp())
    }
    /// The VE time of step `k`: `t_k = (1 - ᾱ_k) / ᾱ_k = expm1(-ln ᾱ_k)`.
    ///
    /// # Errors
    /// [`ScoreError::StepOutOfRange`] for `k >= T`.
    pub fn ve_time(&self, k: usize) -> Result<f64> {
        self.check_step(k)?;
        Ok((-self.log_alpha_bar[k]).exp_m1())
    }
    /// The step `k` with `t_k = t` (to relative precision [`GRID_RTOL`]): the exact inverse
    /// of [`DdpmSchedule::ve_time`].
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`, [`ScoreError::TimeOutOfRange`] outside
    /// `[t_0, t_{T-1}]`, [`ScoreError::OffGrid`] between two grid times.
    pub fn step_of_ve_time(&self, t: f64) -> Result<usize> {
        let (k, tk) = self.nearest_step(t)?;
        let (min, max) = (self.ve_time(0)?, self.ve_time(self.steps() - 1)?);
        if t < min * (1.0 - GRID_RTOL) || t > max * (1.0 + GRID_RTOL) {
            return Err(ScoreError::TimeOutOfRange { t, min, max });
        }
        if (t - tk).abs() <= GRID_RTOL * tk {
            Ok(k)
        } else {
            Err(ScoreError::OffGrid { t, nearest_step: k, nearest_t: tk })
        }
    }
    /// The step whose VE time is nearest to `t` in `ln t`, and that time: an explicit
    /// rounding, for callers who want one.
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`.
    pub fn nearest_step(&self, t: f64) -> Result<(usize, f64)> {
        check_time(t)?;
        // -ln ᾱ_k increases with k; t = expm1(-ln ᾱ) ⇔ -ln ᾱ = ln1p(t).
        let target = t.ln_1p();
        let pos = self.log_alpha_bar.partition_point(|&l| -l < target);
        let (a, b) = (pos.saturating_sub(1), pos.min(self.steps() - 1));
        let t_of = |k: usize| (-self.log_alpha_bar[k]).exp_m1();
        let log_err = |k: usize| (t_of(k).ln() - t.ln()).abs();
        let k = if log_err(b) < log_err(a) { b } else { a };
        Ok((k, t_of(k)))
    }
    /// Scale factor `1/√ᾱ_k` that maps a VP state to the VE state at `t_k`
    /// (`x_ve = x_vp / √ᾱ_k`) and a VE score to the VP score (`s_vp = s_ve / √ᾱ_k`).
    ///
    /// # Errors
    /// [`ScoreError::StepOutOfRange`] for `k >= T`.
    pub fn vp_to_ve_scale(&self, k: usize) -> Result<f64> {
        self.check_step(k)?;
        Ok((-0.5 * self.log_alpha_bar[k]).exp())
    }
}

/// The continuous variance-preserving SDE with linear `β(τ) = β_min + τ (β_max - β_min)`,
/// `τ ∈ (0, 1]` (Song et al. 2021; defaults `β_min = 0.1`, `β_max = 20`).
///
/// # Formula
/// `ln ᾱ(τ) = -(β_min τ + ½ (β_max - β_min) τ²)`, `t(τ) = expm1(-ln ᾱ(τ))`, and the inverse
/// `τ(t) = (-β_min + √(β_min² + 2 (β_max - β_min) ln(1+t))) / (β_max - β_min)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearVpSde {
    beta_min: f64,
    beta_max: f64,
}

impl Default for LinearVpSde {
    /// Defaults: `β_min = 0.1`, `β_max = 20`.
    fn default() -> Self {
        Self { beta_min: 0.1, beta_max: 20.0 }
    }
}

impl LinearVpSde {
    /// A schedule with `0 < β_min <= β_max < ∞`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidParameter`] otherwise.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        param("beta_min", beta_min, beta_min.is_finite() && beta_min > 0.0, "must be finite and > 0")?;
        param("beta_max", beta_max, beta_max.is_finite() && beta_max >= beta_min, "must be finite and >= beta_min")?;
        Ok(Self { beta_min, beta_max })
    }
    fn check_tau(tau: f64) -> Result<()> {
        param("tau", tau, tau > 0.0 && tau <= 1.0, "must lie in (0, 1]")
    }
    /// `ln ᾱ(τ)`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidParameter`] unless `τ ∈ (0, 1]`.
    pub fn log_alpha_bar(&self, tau: f64) -> Result<f64> {
        Self::check_tau(tau)?;
        Ok(-(self.beta_min * tau + 0.5 * (self.beta_max - self.beta_min) * tau * tau))
    }
    /// The VE time `t(τ) = expm1(-ln ᾱ(τ))`.
    ///
    /// # Errors
    /// As [`LinearVpSde::log_alpha_bar`].
    pub fn ve_time(&self, tau: f64) -> Result<f64> {
        Ok((-self.log_alpha_bar(tau)?).exp_m1())
    }
    /// The VP time `τ` of a VE time `t`: the exact inverse of [`LinearVpSde::ve_time`].
    ///
    /// # Errors
    /// [`ScoreError::InvalidTime`] for `t <= 0`, [`ScoreError::TimeOutOfRange`] for
    /// `t > t(1)`.
    pub fn tau(&self, t: f64) -> Result<f64> {
        check_time(t)?;
        let l = t.ln_1p();
        let db = self.beta_max - self.beta_min;
        // Stable root of ½ db τ² + β_min τ - l = 0.
        let tau = 2.0 * l / (self.beta_min + (self.beta_min * self.beta_min + 2.0 * db * l).sqrt());
        if tau > 1.0 + GRID_RTOL {
            return Err(ScoreError::TimeOutOfRange { t, min: 0.0, max: self.ve_time(1.0)? });
        }
        Ok(tau.min(1.0))
    }
}
