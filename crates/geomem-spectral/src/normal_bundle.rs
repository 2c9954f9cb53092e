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
    /// How the perturbation directions are drawn.
    #[serde(default)]
    pub perturbation: Perturbation,
}

/// Perturbation directions `n_i` of the Normal Bundle matrix (the image estimator of
/// seed 000 offers three). Every kind has `E[n nᵀ] ∝ I`; the columns are divided by the
/// directions' root-mean-square scale `r` (`r² = E|n|²/d`), so the singular values estimate
/// those of the Jacobian whatever the kind; only their fluctuations differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Perturbation {
    /// i.i.d. standard normal entries (`|n|² ≈ d`, fluctuating): Algorithms 1-2 as printed.
    #[default]
    Gaussian,
    /// Consecutive blocks of `d` directions, each block the columns of an independent Haar
    /// orthonormal basis scaled by `√d` (`|n|² = d` exactly; orthogonal within a block).
    OrthonormalBlocks,
    /// The authors' synthetic code (`analyze_spectrum.py`, `compute_singular_values_orthg`):
    /// the same Haar orthonormal blocks at unit length (`|n| = 1`, so the perturbation has
    /// size `√t`, not `√(d t)`; `r² = 1/d`). With [`NormalBundleVariant::Scores`] and
    /// `K = d` the matrix is theirs, `s(x0 + √t n_i)/√t`; they drop its largest singular
    /// value (the mean score, a rank-one part) before normalising.
    UnitOrthonormal,
    /// The authors' image code (`run_svd.py`, `get_ortho_noise`): each direction is an
    /// image whose every channel is an independent Haar orthogonal `h × h` matrix
    /// (`|n|² = c·h`, not `d = c·h²`; directions are not mutually orthogonal; `r² = 1/h`).
    PerChannelOrthogonal {
        /// Channels `c`.
        channels: usize,
        /// Image side `h` (= width).
        size: usize,
    },
}

/// A Haar orthogonal `n × n` matrix (QR of a Gaussian matrix, columns signed by `diag R`).
fn haar(n: usize, rng: &mut StdRng) -> Mat<f64> {
    let g = Mat::from_fn(n, n, |_, _| -> f64 { StandardNormal.sample(rng) });
    let qr = g.qr();
    let (mut q, r) = (qr.compute_Q(), qr.R());
    for j in 0..n {
        if r[(j, j)] < 0.0 {
            for i in 0..n {
                q[(i, j)] = -q[(i, j)];
            }
        }
    }
    q
}

impl Perturbation {
    /// `k` directions in `R^d` as the rows of a `k × d` matrix, and their RMS scale `r`.
    ///
    /// # Errors
    /// [`crate::SpectralError::InvalidParameter`] when `d ≠ c·h²` for
    /// [`Perturbation::PerChannelOrthogonal`].
    pub fn directions(self, k: usize, d: usize, seed: u64) -> Result<(Mat<f64>, f64)> {
        let mut rng = StdRng::seed_from_u64(seed);
        match self {
            Perturbation::Gaussian => Ok((Mat::from_fn(k, d, |_, _| -> f64 { StandardNormal.sample(&mut rng) }), 1.0)),
            Perturbation::OrthonormalBlocks | Perturbation::UnitOrthonormal => {
                let mut out = Mat::zeros(k, d);
                let unit = self == Perturbation::UnitOrthonormal;
                let scale = if unit { 1.0 } else { (d as f64).sqrt() };
                for start in (0..k).step_by(d.max(1)) {
                    let q = haar(d, &mut rng);
                    for i in start..(start + d).min(k) {
                        for j in 0..d {
                            out[(i, j)] = scale * q[(j, i - start)];
                        }
                    }
                }
                Ok((out, if unit { 1.0 / (d.max(1) as f64).sqrt() } else { 1.0 }))
            }
            Perturbation::PerChannelOrthogonal { channels, size } => {
                let ok = channels.checked_mul(size).and_then(|v| v.checked_mul(size)) == Some(d) && size >= 1;
                param("perturbation", format!("{channels} × {size}²"), ok, "channels · size² must equal d")?;
                let hh = size * size;
                let mut out = Mat::zeros(k, d);
                for i in 0..k {
                    for c in 0..channels {
                        let q = haar(size, &mut rng);
                        for a in 0..size {
                            for b in 0..size {
                                out[(i, c * hh + a * size + b)] = q[(a, b)];
                            }
                        }
                    }
                }
                Ok((out, (1.0 / size as f64).sqrt()))
            }
        }
    }
}

impl Default for NormalBundleParams {
    /// Defaults: `K = 4d`, central difference (Algorithm 2, what seed 001 uses for linear
    /// manifolds and MNIST), `seed = 0`.
    fn default() -> Self {
        Self { k: None, variant: NormalBundleVariant::CentralDifference, seed: 0, perturbation: Perturbation::Gaussian }
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
    /// With other perturbation directions.
    pub fn perturbation(mut self, p: Perturbation) -> Self {
        self.perturbation = p;
        self
    }
}

/// The matrix `S / (r √(tK))` (`d × K`) of the Normal Bundle method at `x0` (`r` the RMS
/// scale of the [`Perturbation`], 1 for Gaussian directions).
///
/// The image estimator of seed 000 is this matrix on a VP model seen as a VE field
/// (`VpScore`): the authors' perturbed inputs `√ᾱ_k x0 ± σ_k n` are the VE points
/// `x0 ± √t_k n`, and their columns `-ε/σ_k` are the VE scores divided by `√ᾱ_k`; their raw
/// singular values are these times `r √(t K) / √ᾱ_k`, one constant per spectrum.
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
    let sd = t.sqrt();
    let (eps, rms) = params.perturbation.directions(k, d, params.seed)?;
    let norm = 1.0 / (rms * (t * k as f64).sqrt());
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
