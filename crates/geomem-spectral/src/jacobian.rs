//! The smoothed Jacobian of seed 001, Eq. 5: finite differences of step `√t`.
//!
//! ```text
//! J_j(x, t) = [ s(x + √t q_j, t) - s(x, t) ] / √t                (forward, Eq. 5)
//! J_j(x, t) = [ s(x + √t q_j, t) - s(x - √t q_j, t) ] / (2√t)    (central)
//! ```
//!
//! for an orthonormal set `q_j` ([`Directions`]). The columns are `J q_j`, so for an
//! orthonormal basis the singular values are those of the smoothed Jacobian itself; with
//! random directions this is the improved Normal Bundle method of seed 000, Sec. 3.3.1.
//! All `d + 1` (or `2d`) score evaluations go to the field in one batch.

use crate::directions::Directions;
use crate::error::{param, singular_values, Result};
use geomem_score::{check_dim, check_time, ScoreField};
use faer::Mat;

/// Finite-difference scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scheme {
    /// One-sided difference, Eq. 5 (`d + 1` evaluations).
    Forward,
    /// Symmetric difference (`2d` evaluations), second-order accurate.
    Central,
}

/// Step of the finite difference.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// `h = √t`: perturbations at the resolution of the noise (Eq. 5).
    SqrtT,
    /// A fixed step `h > 0` (small `h` gives the pointwise Jacobian).
    Fixed(f64),
}

/// Settings of [`smoothed_jacobian_with`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SmoothedJacobianParams {
    /// Difference scheme.
    pub scheme: Scheme,
    /// Step.
    pub step: Step,
    /// Perturbation directions.
    pub directions: Directions,
}

impl Default for SmoothedJacobianParams {
    /// Defaults: `Scheme::Forward`, `Step::SqrtT`, `Directions::Canonical` (Eq. 5 exactly).
    fn default() -> Self {
        Self { scheme: Scheme::Forward, step: Step::SqrtT, directions: Directions::Canonical }
    }
}

impl SmoothedJacobianParams {
    /// The improved Normal Bundle settings of seed 000 (Sec. 3.3.1): forward differences of
    /// step `√t` along random orthonormal directions from `seed`.
    pub fn improved_normal_bundle(seed: u64) -> Self {
        Self { directions: Directions::RandomOrthonormal { seed }, ..Self::default() }
    }
    /// With another scheme.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }
    /// With another step.
    pub fn step(mut self, step: Step) -> Self {
        self.step = step;
        self
    }
    /// With other directions.
    pub fn directions(mut self, directions: Directions) -> Self {
        self.directions = directions;
        self
    }
}

/// The smoothed Jacobian of Eq. 5 at `x` (forward differences along the canonical basis).
///
/// # Errors
/// As [`smoothed_jacobian_with`].
pub fn smoothed_jacobian<F: ScoreField + ?Sized>(field: &F, x: &[f64], t: f64) -> Result<Mat<f64>> {
    smoothed_jacobian_with(field, x, t, &SmoothedJacobianParams::default())
}

/// The finite-difference Jacobian `[J q_1, …, J q_d]` (`d × d`) with the given settings.
///
/// # Errors
/// [`crate::SpectralError::Score`] for a wrong `x` length or a bad `t` (or any error of the
/// field), [`crate::SpectralError::InvalidParameter`] for a non-positive fixed step.
pub fn smoothed_jacobian_with<F: ScoreField + ?Sized>(field: &F, x: &[f64], t: f64, params: &SmoothedJacobianParams) -> Result<Mat<f64>> {
    let d = field.dim();
    check_dim(d, x.len())?;
    check_time(t)?;
    let h = match params.step {
        Step::SqrtT => t.sqrt(),
        Step::Fixed(h) => {
            param("step", h, h.is_finite() && h > 0.0, "must be finite and > 0")?;
            h
        }
    };
    let q = params.directions.basis(d);
    let (rows, central) = match params.scheme {
        Scheme::Forward => (d + 1, false),
        Scheme::Central => (2 * d, true),
    };
    // Rows 0..d: x + h q_j; rows d..: x - h q_j (central) or x itself (forward).
    let pts = Mat::from_fn(rows, d, |r, i| {
        if r < d {
            x[i] + h * q[(i, r)]
        } else if central {
            x[i] - h * q[(i, r - d)]
        } else {
            x[i]
        }
    });
    let s = field.score_batch(pts.as_ref(), t)?;
    Ok(if central {
        Mat::from_fn(d, d, |i, j| (s[(j, i)] - s[(d + j, i)]) / (2.0 * h))
    } else {
        Mat::from_fn(d, d, |i, j| (s[(j, i)] - s[(d, i)]) / h)
    })
}

/// Sorted singular values of [`smoothed_jacobian_with`].
///
/// # Errors
/// As [`smoothed_jacobian_with`], plus [`crate::SpectralError::SvdNoConvergence`].
pub fn smoothed_jacobian_spectrum<F: ScoreField + ?Sized>(field: &F, x: &[f64], t: f64, params: &SmoothedJacobianParams) -> Result<Vec<f64>> {
    singular_values(smoothed_jacobian_with(field, x, t, params)?.as_ref())
}
