//! The von Mises distribution on a circle in the plane (the toy of Ross et al., seed 004).
use crate::error::{param, Result};
use faer::Mat;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Angles `θ ~ VM(μ, κ)` with density `∝ exp(κ cos(θ - μ))`, placed at `r (cos θ, sin θ)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VonMisesCircle {
    mu: f64,
    kappa: f64,
    radius: f64,
}

impl VonMisesCircle {
    /// A circle of `radius` with mean angle `mu` and concentration `kappa >= 0`
    /// (`kappa = 0` is uniform on the circle).
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] for negative or non-finite `kappa`, a
    /// non-positive radius or a non-finite `mu`.
    pub fn new(mu: f64, kappa: f64, radius: f64) -> Result<Self> {
        param("mu", mu, mu.is_finite(), "must be finite")?;
        param("kappa", kappa, kappa.is_finite() && kappa >= 0.0, "must be finite and >= 0")?;
        param("radius", radius, radius.is_finite() && radius > 0.0, "must be finite and > 0")?;
        Ok(Self { mu, kappa, radius })
    }

    /// `n` angles, by the Best–Fisher (1979) rejection sampler; a normal approximation
    /// `N(μ, 1/κ)` above `κ = 1e6`, where the sampler loses precision.
    pub fn sample_angles(&self, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let pi = std::f64::consts::PI;
        (0..n)
            .map(|_| {
                let k = self.kappa;
                if k < 1e-12 {
                    return self.mu + pi * (2.0 * rng.random::<f64>() - 1.0);
                }
                if k > 1e6 {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    return self.mu + z / k.sqrt();
                }
                let tau = 1.0 + (1.0 + 4.0 * k * k).sqrt();
                let rho = (tau - (2.0 * tau).sqrt()) / (2.0 * k);
                let r = (1.0 + rho * rho) / (2.0 * rho);
                loop {
                    let u1: f64 = rng.random();
                    let u2: f64 = rng.random();
                    let u3: f64 = rng.random();
                    let z = (pi * u1).cos();
                    let f = (1.0 + r * z) / (r + z);
                    let c = k * (r - f);
                    if c * (2.0 - c) - u2 > 0.0 || (c / u2).ln() + 1.0 - c >= 0.0 {
                        let th = f.clamp(-1.0, 1.0).acos();
                        return self.mu + if u3 > 0.5 { th } else { -th };
                    }
                }
            })
            .collect()
    }

    /// `n` points on the circle as rows of an `n × 2` matrix.
    pub fn sample(&self, n: usize, seed: u64) -> Mat<f64> {
        let a = self.sample_angles(n, seed);
        Mat::from_fn(n, 2, |i, j| self.radius * if j == 0 { a[i].cos() } else { a[i].sin() })
    }
}
