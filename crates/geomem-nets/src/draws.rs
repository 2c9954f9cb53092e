//! The host side of every training draw: the data as an `f32` buffer, log-uniform noise
//! levels and noisy rows, all from a step-seeded `StdRng` (so a run's draws are a function
//! of `(seed, step)` and a resumed run repeats an uninterrupted one).

use crate::error::NetsError;
use faer::MatRef;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// `b` noise levels with `ln σ` uniform on `[ln σ_min, ln σ_max]`.
pub(crate) fn log_uniform_sigmas(rng: &mut StdRng, b: usize, sigma_min: f64, sigma_max: f64) -> Vec<f32> {
    let (lmin, lmax) = (sigma_min.ln(), sigma_max.ln());
    (0..b).map(|_| (lmin + (lmax - lmin) * rng.random::<f64>()).exp() as f32).collect()
}

/// Noisy inputs `x_i + σ_k ε_k` and noises `ε_k` (row-major, one row per `σ_k`), the data
/// row of draw `k` given by `row(rng, k)` (drawn before its noise).
pub(crate) fn noisy_rows(
    rng: &mut StdRng,
    data: &HostData,
    sigma: &[f32],
    mut row: impl FnMut(&mut StdRng, usize) -> usize,
) -> (Vec<f32>, Vec<f32>) {
    let d = data.d;
    let (mut xt, mut eps) = (Vec::with_capacity(sigma.len() * d), Vec::with_capacity(sigma.len() * d));
    for (k, s) in sigma.iter().enumerate() {
        let i = row(rng, k);
        for j in 0..d {
            let e: f32 = StandardNormal.sample(rng);
            eps.push(e);
            xt.push(data.values[i * d + j] + s * e);
        }
    }
    (xt, eps)
}

/// The training data as a row-major `f32` buffer, checked.
pub(crate) struct HostData {
    pub(crate) values: Vec<f32>,
    pub(crate) n: usize,
    pub(crate) d: usize,
}

impl HostData {
    pub(crate) fn new(data: MatRef<'_, f64>, d: usize) -> crate::error::Result<Self> {
        if data.nrows() == 0 {
            return Err(NetsError::Data("no training points".into()));
        }
        if data.ncols() != d {
            return Err(NetsError::Data(format!("points have dimension {}, the network expects {d}", data.ncols())));
        }
        let mut values = Vec::with_capacity(data.nrows() * d);
        for i in 0..data.nrows() {
            for j in 0..d {
                let v = data[(i, j)];
                if !v.is_finite() {
                    return Err(NetsError::Data(format!("non-finite value at row {i}, column {j}")));
                }
                values.push(v as f32);
            }
        }
        Ok(Self { values, n: data.nrows(), d })
    }
}
