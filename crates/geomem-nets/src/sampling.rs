//! Sampling from any [`ScoreField`] (VE, geometric noise levels), and from any DDPM noise
//! predictor ([`VpEpsModel`]) by ancestral sampling ([`sample_ddpm`]).
//!
//! Noise levels `σ_0 = σ_max > σ_1 > … > σ_n = σ_min`, geometric, `t_i = σ_i²`. From
//! `x_0 ~ N(0, σ_max² I)`:
//!
//! * reverse SDE (Euler–Maruyama): `x_{i+1} = x_i + (t_i - t_{i+1}) s(x_i, t_i) + √(t_i - t_{i+1}) z`;
//! * probability-flow ODE (Euler): `x_{i+1} = x_i + ½ (t_i - t_{i+1}) s(x_i, t_i)`.

use crate::error::{param, Result};
use faer::Mat;
use geomem_score::{DdpmSchedule, ScoreField, ScoreFieldExt, VpEpsModel, VpTime};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sampler {
    /// Reverse-time SDE, Euler–Maruyama.
    ReverseSde,
    /// Probability-flow ODE, Euler.
    ProbabilityFlow,
}

/// Settings of [`sample`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SamplingParams {
    /// Sampler.
    pub sampler: Sampler,
    /// Number of steps.
    pub steps: usize,
    /// Largest noise level.
    pub sigma_max: f64,
    /// Smallest noise level.
    pub sigma_min: f64,
    /// Seed of the initial noise and of the SDE noise.
    pub seed: u64,
}

impl Default for SamplingParams {
    /// Defaults: reverse SDE, 500 steps, `σ_max = 50`, `σ_min = 0.01`, seed 0.
    fn default() -> Self {
        Self { sampler: Sampler::ReverseSde, steps: 500, sigma_max: 50.0, sigma_min: 0.01, seed: 0 }
    }
}

impl SamplingParams {
    /// With another sampler.
    pub fn sampler(mut self, s: Sampler) -> Self {
        self.sampler = s;
        self
    }
    /// With another number of steps.
    pub fn steps(mut self, n: usize) -> Self {
        self.steps = n;
        self
    }
    /// With other noise levels.
    pub fn sigma_range(mut self, sigma_min: f64, sigma_max: f64) -> Self {
        (self.sigma_min, self.sigma_max) = (sigma_min, sigma_max);
        self
    }
    /// With another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// Draws `n` samples (rows) from `field`.
///
/// # Errors
/// [`crate::NetsError::InvalidParameter`] for bad settings; errors of the field.
pub fn sample<F: ScoreField + ?Sized>(field: &F, n: usize, p: &SamplingParams) -> Result<Mat<f64>> {
    param("steps", p.steps, p.steps >= 1, "must be >= 1")?;
    param("sigma_min", p.sigma_min, p.sigma_min.is_finite() && p.sigma_min > 0.0, "must be finite and > 0")?;
    param("sigma_max", p.sigma_max, p.sigma_max.is_finite() && p.sigma_max > p.sigma_min, "must be > sigma_min")?;
    let d = field.dim();
    param("n", n, n >= 1, "must be >= 1")?;
    param("n", n, fits_in_memory(n, d), "n × d values must fit in memory")?;
    let fits = n.checked_mul(d).and_then(|e| e.checked_mul(8)).is_some_and(|b| b <= isize::MAX as usize);
    param("n", n, fits, "n × d values must fit in memory")?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut x = Mat::from_fn(n, d, |_, _| {
        p.sigma_max * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
    });
    let ts: Vec<f64> = (0..=p.steps)
        .map(|i| (p.sigma_max * (p.sigma_min / p.sigma_max).powf(i as f64 / p.steps as f64)).powi(2))
        .collect();
    for w in ts.windows(2) {
        let (t, tn) = (w[0], w[1]);
        let s = field.score_batch(x.as_ref(), t)?;
        let dt = t - tn;
        for j in 0..d {
            for i in 0..n {
                x[(i, j)] += match p.sampler {
                    Sampler::ReverseSde => {
                        dt * s[(i, j)]
                            + dt.sqrt() * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
                    }
                    Sampler::ProbabilityFlow => 0.5 * dt * s[(i, j)],
                };
            }
        }
    }
    Ok(x)
}

/// Whether `n × d` values of `f64` (a few such matrices) can be addressed at all.
fn fits_in_memory(n: usize, d: usize) -> bool {
    n.checked_mul(d).and_then(|e| e.checked_mul(8)).is_some_and(|b| b <= isize::MAX as usize)
}

/// Settings of [`sample_ddpm`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct DdpmSampling {
    /// Number of denoising steps `S`: the steps `τ_1 < … < τ_S` of the schedule, evenly
    /// spaced from 0 to `T - 1` (`S = T` is the plain ancestral sampler).
    pub steps: usize,
    /// Clip the predicted clean image to `[-1, 1]` at every step (the DDPM reference
    /// sampler's `clip_denoised`, for images scaled to `[-1, 1]`).
    pub clip: bool,
    /// Seed of the initial noise and of every step's noise.
    pub seed: u64,
}

impl DdpmSampling {
    /// `steps` denoising steps, clipping on, seed `seed`.
    pub fn new(steps: usize, seed: u64) -> Self {
        Self { steps, clip: true, seed }
    }
    /// With clipping on or off.
    pub fn clip(mut self, on: bool) -> Self {
        self.clip = on;
        self
    }
}

/// The steps `τ_S > … > τ_1 = 0` of a sampler of `s` steps on a schedule of `big_t` steps,
/// evenly spaced, largest first, `τ_S = T - 1`.
fn respaced(big_t: usize, s: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..s).map(|i| ((big_t - 1) * i + (s - 1) / 2) / (s - 1).max(1)).collect();
    v.dedup();
    v.reverse();
    v
}

/// Draws `n` images (rows, clean-data coordinates) from a DDPM noise predictor by ancestral
/// sampling (Ho et al. 2020, Eq. 6-7), on `p.steps` of the schedule's steps (the respacing
/// of Nichol & Dhariwal 2021: between kept steps `τ_i > τ_{i-1}`, `β' = 1 - ᾱ_{τ_i}/ᾱ_{τ_{i-1}}`).
/// Each step predicts `x̂_0 = (x - √(1-ᾱ) ε̂)/√ᾱ`, clipped to `[-1, 1]` when `p.clip`, and
/// draws from the Gaussian posterior `q(x_prev | x, x̂_0)`; the last step returns `x̂_0`.
///
/// # Errors
/// [`crate::NetsError::InvalidParameter`] for `steps` outside `1..=T` or `n = 0`; the
/// model's own errors.
pub fn sample_ddpm<M: VpEpsModel + ?Sized>(
    model: &M,
    schedule: &DdpmSchedule,
    n: usize,
    p: &DdpmSampling,
) -> Result<Mat<f64>> {
    let big_t = schedule.steps();
    param("steps", p.steps, (1..=big_t).contains(&p.steps), "must lie in 1..=T")?;
    param("n", n, n >= 1, "must be >= 1")?;
    let d = model.dim();
    param("n", n, fits_in_memory(n, d), "n × d values must fit in memory")?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut normal = || <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng);
    let mut x = Mat::from_fn(n, d, |_, _| normal());
    let mut eps = Mat::zeros(n, d);
    let taus = respaced(big_t, p.steps);
    for (i, &k) in taus.iter().enumerate() {
        let ab = schedule.alpha_bar(k)?;
        let ab_prev = match taus.get(i + 1) {
            Some(&kp) => schedule.alpha_bar(kp)?,
            None => 1.0,
        };
        model.eps_into(x.as_ref(), VpTime::Step(k), eps.as_mut())?;
        let beta = 1.0 - ab / ab_prev;
        let c0 = ab_prev.sqrt() * beta / (1.0 - ab);
        let cx = (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab);
        let sd = (beta * (1.0 - ab_prev) / (1.0 - ab)).max(0.0).sqrt();
        let last = i + 1 == taus.len();
        for j in 0..d {
            for r in 0..n {
                let mut x0 = (x[(r, j)] - (1.0 - ab).sqrt() * eps[(r, j)]) / ab.sqrt();
                if p.clip {
                    x0 = x0.clamp(-1.0, 1.0);
                }
                x[(r, j)] = if last { x0 } else { c0 * x0 + cx * x[(r, j)] + sd * normal() };
            }
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn respacing_keeps_both_ends_and_decreases() {
        for (t, s) in [(1000, 1000), (1000, 100), (1000, 1), (10, 3), (7, 7)] {
            let v = super::respaced(t, s);
            assert_eq!(v.len(), s, "{t} {s}");
            assert_eq!(*v.last().unwrap(), 0);
            if s > 1 {
                assert_eq!(v[0], t - 1);
            }
            assert!(v.windows(2).all(|w| w[0] > w[1]));
        }
    }
}
