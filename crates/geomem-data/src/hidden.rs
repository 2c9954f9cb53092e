//! The hidden manifold model: `x = φ(F z)` with a random Gaussian projection `F`
//! (seed 000, Sec. 3.1; linear when `φ` is the identity), plus the post-processing the
//! authors' synthetic experiments use (small off-manifold noise, projection to a sphere).

use crate::error::{param, DataError, Result};
use crate::random::gaussian_matrix;
use faer::{Mat, MatRef};

/// The element-wise channel function `φ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Activation {
    /// `φ(u) = u`: the linear hidden manifold.
    Identity,
    /// `φ(u) = tanh(u)`.
    Tanh,
    /// `φ(u) = max(u, 0)`.
    Relu,
    /// `φ(u) = sin(u)`.
    Sin,
}

impl Activation {
    /// Applies `φ`.
    pub fn apply(self, u: f64) -> f64 {
        match self {
            Self::Identity => u,
            Self::Tanh => u.tanh(),
            Self::Relu => u.max(0.0),
            Self::Sin => u.sin(),
        }
    }
}

/// `x = φ(F z)`, `z ~ N(0, I_m)`, `F` a `d × m` matrix of i.i.d. `N(0, σ²/m)` entries, so
/// that each pre-activation has variance `σ²` and `FᵀF` follows the Marchenko–Pastur law
/// with edges `σ²(α_m^{-1/2} ± 1)²`, `α_m = m/d`.
#[derive(Debug, Clone)]
pub struct HiddenManifold {
    factor: Mat<f64>,
    activation: Activation,
}

impl HiddenManifold {
    /// Draws `F` from `seed`.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for `d = 0`, `m = 0` or a bad `sigma2`;
    /// [`DataError::ManifoldTooLarge`] when `m > d`.
    pub fn new(d: usize, m: usize, sigma2: f64, activation: Activation, seed: u64) -> Result<Self> {
        param("d", d, d >= 1, "must be >= 1")?;
        param("m", m, m >= 1, "must be >= 1")?;
        if m > d {
            return Err(DataError::ManifoldTooLarge { m, d });
        }
        if !(sigma2.is_finite() && sigma2 >= 0.0) {
            return Err(DataError::InvalidVariance { index: 0, value: sigma2 });
        }
        let scale = (sigma2 / m as f64).sqrt();
        let mut factor = gaussian_matrix(d, m, seed);
        for j in 0..m {
            for i in 0..d {
                factor[(i, j)] *= scale;
            }
        }
        Ok(Self { factor, activation })
    }
    /// The projection `F` (`d × m`).
    pub fn factor(&self) -> MatRef<'_, f64> {
        self.factor.as_ref()
    }
    /// `n` samples as rows.
    pub fn sample(&self, n: usize, seed: u64) -> Mat<f64> {
        let z = gaussian_matrix(n, self.factor.ncols(), seed);
        let mut x = z.as_ref() * self.factor.transpose();
        if self.activation != Activation::Identity {
            for j in 0..x.ncols() {
                for i in 0..x.nrows() {
                    x[(i, j)] = self.activation.apply(x[(i, j)]);
                }
            }
        }
        x
    }
}

/// Adds i.i.d. `N(0, std²)` noise to every entry (off-manifold noise).
///
/// # Errors
/// [`DataError::InvalidParameter`] for a negative or non-finite `std`.
pub fn add_noise(x: &mut Mat<f64>, std: f64, seed: u64) -> Result<()> {
    param("std", std, std.is_finite() && std >= 0.0, "must be finite and >= 0")?;
    let e = gaussian_matrix(x.nrows(), x.ncols(), seed);
    for j in 0..x.ncols() {
        for i in 0..x.nrows() {
            x[(i, j)] += std * e[(i, j)];
        }
    }
    Ok(())
}

/// Rescales every row to Euclidean norm `radius` (rows of norm 0 are left at 0).
///
/// # Errors
/// [`DataError::InvalidParameter`] for a non-positive radius.
pub fn project_to_sphere(x: &mut Mat<f64>, radius: f64) -> Result<()> {
    param("radius", radius, radius.is_finite() && radius > 0.0, "must be finite and > 0")?;
    for i in 0..x.nrows() {
        let n = x.row(i).iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 {
            for j in 0..x.ncols() {
                x[(i, j)] *= radius / n;
            }
        }
    }
    Ok(())
}
