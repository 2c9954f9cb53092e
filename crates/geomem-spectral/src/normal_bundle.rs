//! The Normal Bundle estimators of seed 001, Supp. B.1 (Stanczuk et al.).
//!
//! Algorithm 1: draw `K` noisy points `x_i = x_0 + √t ε_i` and stack the scores `s(x_i, t)`
//! as the columns of `S` (`d × K`). Algorithm 2 (central difference): the columns are
//! `[s(x_0 + √t ε_i) - s(x_0 - √t ε_i)] / 2` (the second point of each pair is the mirror
//! image of the first, which is what "sampling with variance -σ²" in the printed algorithm
//! amounts to). For a locally linear field `s(x_0 + u) ≈ s(x_0) + J u`, so
//! `S Sᵀ / (t K) → J Jᵀ (+ s(x_0) s(x_0)ᵀ / t for Algorithm 1)` as `K → ∞`: the singular values of
//! `S / √(tK)` estimate those of the Jacobian. This crate returns them in that scale.

use crate::error::{param, singular_values, Result};
use faer::Mat;
use geomem_score::{ScoreField, ScoreFieldExt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Which algorithm of Supp. B.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NormalBundleVariant {
    /// Algorithm 1: scores at `K` noisy points.
    Scores,
    /// Algorithm 2: central differences of `K` mirrored pairs.
    CentralDifference,
}

/// Settings of the Normal Bundle estimator.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NormalBundleParams {
    /// Number of score vectors `K`; `None` means `4 d`.
    pub k: Option<usize>,
    /// Algorithm 1 or 2.
    pub variant: NormalBundleVariant,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for NormalBundleParams {
    /// Defaults: `K = 4d`, central difference (Algorithm 2, what seed 001 uses for linear
    /// manifolds and MNIST), `seed = 0`.
    fn default() -> Self {
        Self { k: None, variant: NormalBundleVariant::CentralDifference, seed: 0 }
    }
}

impl NormalBundleParams {
    /// With `K` score vectors.
    pub fn k(mut self, k: usize) -> Self {
        self.k = Some(k);
        self
    }
    /// With another algorithm.
    pub fn variant(mut self, v: NormalBundleVariant) -> Self {
        self.variant = v;
        self
    }
    /// With another seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The matrix `S / √(tK)` (`d × K`) of the Normal Bundle method at `x0`.
///
/// # Errors
/// [`crate::SpectralError::Score`] for a wrong `x0` length, a bad `t` or a field error;
/// [`crate::SpectralError::InvalidParameter`] for `K = 0`.
pub fn normal_bundle_matrix<F: ScoreField + ?Sized>(
    field: &F,
    x0: &[f64],
    t: f64,
    params: &NormalBundleParams,
) -> Result<Mat<f64>> {
    field.check_point(x0, t)?;
    let d = field.dim();
    let k = params.k.unwrap_or(4 * d);
    param("k", k, k >= 1, "need at least one score vector")?;
    let mut rng = StdRng::seed_from_u64(params.seed);
    let sd = t.sqrt();
    let eps = Mat::from_fn(k, d, |_, _| -> f64 { StandardNormal.sample(&mut rng) });
    let norm = 1.0 / (t * k as f64).sqrt();
    match params.variant {
        NormalBundleVariant::Scores => {
            let pts = Mat::from_fn(k, d, |i, j| x0[j] + sd * eps[(i, j)]);
            let s = field.score_batch(pts.as_ref(), t)?;
            Ok(Mat::from_fn(d, k, |j, i| s[(i, j)] * norm))
        }
        NormalBundleVariant::CentralDifference => {
            let pts =
                Mat::from_fn(
                    2 * k,
                    d,
                    |i, j| if i < k { x0[j] + sd * eps[(i, j)] } else { x0[j] - sd * eps[(i - k, j)] },
                );
            let s = field.score_batch(pts.as_ref(), t)?;
            Ok(Mat::from_fn(d, k, |j, i| 0.5 * (s[(i, j)] - s[(k + i, j)]) * norm))
        }
    }
}

/// Sorted singular values of [`normal_bundle_matrix`] (`min(d, K)` of them).
///
/// # Errors
/// As [`normal_bundle_matrix`], plus [`crate::SpectralError::SvdNoConvergence`].
pub fn normal_bundle_spectrum<F: ScoreField + ?Sized>(
    field: &F,
    x0: &[f64],
    t: f64,
    params: &NormalBundleParams,
) -> Result<Vec<f64>> {
    singular_values(normal_bundle_matrix(field, x0, t, params)?.as_ref())
}
