//! Sampling from any [`ScoreField`] and a memorisation measure on the samples.
//!
//! Noise levels `σ_0 = σ_max > σ_1 > … > σ_n = σ_min`, geometric, `t_i = σ_i²`. From
//! `x_0 ~ N(0, σ_max² I)`:
//!
//! * reverse SDE (Euler–Maruyama): `x_{i+1} = x_i + (t_i - t_{i+1}) s(x_i, t_i) + √(t_i - t_{i+1}) z`;
//! * probability-flow ODE (Euler): `x_{i+1} = x_i + ½ (t_i - t_{i+1}) s(x_i, t_i)`.

use crate::error::{param, Result};
use faer::Mat;
use geomem_score::{ScoreField, ScoreFieldExt};
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
