//! The denoising loss of a network on a fixed set of draws, for comparing training points
//! with held-out points (the train/held-out gap that memorization opens).

use crate::draws::{log_uniform_sigmas, noisy_rows, HostData};
use crate::error::{param, Result};
use crate::model::ResidualMlp;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use faer::MatRef;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Draws of [`dsm_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossDraws {
    /// Number of draws `K`; draw `k` uses data point `k mod N`.
    pub draws: usize,
    /// Smallest noise level (`ln σ` uniform between the two).
    pub sigma_min: f64,
    /// Largest noise level.
    pub sigma_max: f64,
    /// Seed of `σ` and `ε` (the same for every dataset, so two sets see the same noises).
    pub seed: u64,
}

/// Mean DSM loss `(1/K) Σ_k ‖ε̂(x_k + σ_k ε_k, σ_k) - ε_k‖² / d` of `model` on `data`
/// (`N × d`), the training objective of [`crate::train`] on fixed draws.
///
/// # Errors
/// [`crate::NetsError::Data`] for empty, mis-shaped or non-finite data;
/// [`crate::NetsError::InvalidParameter`] for `draws = 0` or a bad noise range.
pub fn dsm_loss<B: Backend>(
    model: &ResidualMlp<B>,
    data: MatRef<'_, f64>,
    p: &LossDraws,
    device: &B::Device,
) -> Result<f64> {
    param("draws", p.draws, p.draws >= 1, "must be >= 1")?;
    let ok = p.sigma_min > 0.0 && p.sigma_max > p.sigma_min && p.sigma_max.is_finite();
    param("sigma range", format!("[{}, {}]", p.sigma_min, p.sigma_max), ok, "0 < sigma_min < sigma_max < inf")?;
    let host = HostData::new(data, model.d)?;
    let d = host.d;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut total = 0.0;
    for start in (0..p.draws).step_by(4096) {
        let b = 4096.min(p.draws - start);
        let sigma = log_uniform_sigmas(&mut rng, b, p.sigma_min, p.sigma_max);
        let (xt, eps) = noisy_rows(&mut rng, &host, &sigma, |_, k| (start + k) % host.n);
        let (cin, emb) = model.conditioning(&sigma, device);
        let xt = Tensor::<B, 2>::from_data(TensorData::new(xt, [b, d]), device);
        let eps = Tensor::<B, 2>::from_data(TensorData::new(eps, [b, d]), device);
        let diff = model.forward(xt, cin, emb) - eps;
        let sum: f32 = (diff.clone() * diff).sum().into_scalar().elem();
        total += f64::from(sum);
    }
    Ok(total / (p.draws * d) as f64)
}

/// Mean DDPM loss `(1/K) Σ_k ‖ε̂(√ᾱ_{k} x_k + √(1-ᾱ_{k}) ε_k, k) - ε_k‖² / d` of a U-Net on
/// `data` (`N × d`, rows channel-major images) over `draws` fixed draws: draw `i` uses image
/// `i mod N`, a uniform step and a Gaussian noise from `seed`, so a training set and a
/// held-out set of any sizes see the same steps and noises. Their ratio (held-out over
/// training) is 1 for a net that generalizes and grows as it memorizes.
///
/// # Errors
/// [`crate::NetsError::Data`] for empty, mis-shaped or non-finite data;
/// [`crate::NetsError::InvalidParameter`] for `draws = 0`.
pub fn ddpm_loss<B: Backend>(
    model: &crate::UNet<B>,
    data: MatRef<'_, f64>,
    schedule: &geomem_score::DdpmSchedule,
    draws: usize,
    seed: u64,
    device: &B::Device,
) -> Result<f64> {
    use rand::Rng;
    use rand_distr::{Distribution, StandardNormal};
    param("draws", draws, draws >= 1, "must be >= 1")?;
    let (c, h) = (model.channels(), model.image_size());
    let host = HostData::new(data, c * h * h)?;
    let d = host.d;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = 0.0;
    for start in (0..draws).step_by(256) {
        let b = 256.min(draws - start);
        let (mut xk, mut steps, mut eps) =
            (Vec::with_capacity(b * d), Vec::with_capacity(b), Vec::with_capacity(b * d));
        for r in 0..b {
            let k = rng.random_range(0..schedule.steps());
            let ab = schedule.alpha_bar(k)?;
            let (a, s) = (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32);
            steps.push(k as f32);
            let row = &host.values[((start + r) % host.n) * d..][..d];
            for &v in row {
                let e: f32 = StandardNormal.sample(&mut rng);
                eps.push(e);
                xk.push(a * v + s * e);
            }
        }
        let x = Tensor::<B, 4>::from_data(TensorData::new(xk, [b, c, h, h]), device);
        let e = Tensor::<B, 4>::from_data(TensorData::new(eps, [b, c, h, h]), device);
        let diff = model.forward(x, model.embed_steps(&steps, device)) - e;
        let sum: f32 = (diff.clone() * diff).sum().into_scalar().elem();
        total += f64::from(sum);
    }
    Ok(total / (draws * d) as f64)
}
