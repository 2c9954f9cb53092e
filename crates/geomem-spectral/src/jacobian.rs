//! The smoothed Jacobian of seed 001, Eq. 5: finite differences of step `√t`.
//!
//! ```text
//! J_j(x, t) = [ s(x + √t q_j, t) - s(x, t) ] / √t                (forward, Eq. 5)
//! J_j(x, t) = [ s(x + √t q_j, t) - s(x - √t q_j, t) ] / (2√t)    (central)
//! ```
//!
//! for an orthonormal set `q_j` ([`crate::Directions`]). The columns are `J q_j`, so for an
//! orthonormal basis the singular values are those of the smoothed Jacobian itself; with
//! random directions this is the improved Normal Bundle method of seed 000, Sec. 3.3.1.
//! All `d + 1` (or `2d`) score evaluations go to the field in one batch.
//!
//! The kernels here are reached through [`crate::SpectrumEstimator`] (`Method::FiniteDifference`
//! and `Method::Pointwise`); they call the field only through [`ScoreFieldExt`].

use crate::directions::OrthonormalBasis;
use crate::error::{param, Result};
use faer::Mat;
use geomem_score::{Precision, ScoreError, ScoreField, ScoreFieldExt};

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
    /// The pointwise Jacobian with the step that the field's precision allows:
    /// `ε^{1/3} √t` for central differences and `ε^{1/2} √t` for forward ones, with `ε`
    /// the field's [`Precision::epsilon`] (`f32` networks get `4.9e-3 √t` and `3.5e-4 √t`,
    /// far above their rounding floor; `f64` fields `6e-6 √t` and `1.5e-8 √t`).
    Auto,
}

impl Step {
    /// The step `h` at time `t` for a field of the given precision and scheme.
    ///
    /// # Errors
    /// [`crate::SpectralError::InvalidParameter`] for a non-positive or non-finite fixed step.
    pub fn size(self, t: f64, precision: Precision, scheme: Scheme) -> Result<f64> {
        match (self, scheme) {
            (Self::SqrtT, _) => Ok(t.sqrt()),
            (Self::Fixed(h), _) => {
                param("step", h, h.is_finite() && h > 0.0, "must be finite and > 0")?;
                Ok(h)
            }
            (Self::Auto, Scheme::Central) => Ok(precision.central_step(t)),
            (Self::Auto, Scheme::Forward) => Ok(precision.epsilon().sqrt() * t.sqrt()),
        }
    }
}

/// The finite-difference Jacobian `[J q_1, …, J q_k]` (`d × k`) along the columns of `basis`.
///
/// # Errors
/// [`crate::SpectralError::Score`] for a wrong `x` length, a bad `t` or a field error (a basis of
/// another dimension is a [`ScoreError::DimensionMismatch`]);
/// [`crate::SpectralError::InvalidParameter`] for a non-positive fixed step.
pub(crate) fn finite_difference<F: ScoreField + ?Sized>(
    field: &F,
    x: &[f64],
    t: f64,
    (scheme, step): (Scheme, Step),
    basis: &OrthonormalBasis,
) -> Result<Mat<f64>> {
    check_basis(field, x, t, basis)?;
    let d = field.dim();
    let h = step.size(t, field.precision(), scheme)?;
    let (q, k) = (basis.as_mat(), basis.len());
    let central = scheme == Scheme::Central;
    let rows = if central { 2 * k } else { k + 1 };
    // Rows 0..k: x + h q_j; rows k..: x - h q_j (central) or x itself (forward).
    let pts = Mat::from_fn(rows, d, |r, i| {
        if r < k {
            x[i] + h * q[(i, r)]
        } else if central {
            x[i] - h * q[(i, r - k)]
        } else {
            x[i]
        }
    });
    let s = field.score_batch(pts.as_ref(), t)?;
    Ok(if central {
        Mat::from_fn(d, k, |i, j| (s[(j, i)] - s[(k + j, i)]) / (2.0 * h))
    } else {
        Mat::from_fn(d, k, |i, j| (s[(j, i)] - s[(k, i)]) / h)
    })
}

/// Checks `x` and `t` for `field` and that `basis` lives in its dimension.
fn check_basis<F: ScoreField + ?Sized>(field: &F, x: &[f64], t: f64, basis: &OrthonormalBasis) -> Result<()> {
    field.check_point(x, t)?;
    if basis.dim() != field.dim() {
        return Err(ScoreError::DimensionMismatch { expected: field.dim(), got: basis.dim() }.into());
    }
    Ok(())
}

/// The pointwise Jacobian `[J q_1, …, J q_k]` (`d × k`) from the field itself: its own
/// Jacobian when it has one (closed form, automatic differentiation), otherwise its
/// Jacobian-vector products ([`ScoreFieldExt::jvp`], central differences at the step its
/// precision allows unless the field overrides them).
///
/// # Errors
/// As [`finite_difference`].
pub(crate) fn pointwise<F: ScoreField + ?Sized>(
    field: &F,
    x: &[f64],
    t: f64,
    basis: &OrthonormalBasis,
) -> Result<Mat<f64>> {
    check_basis(field, x, t, basis)?;
    if let Some(j) = field.jacobian(x, t)? {
        return Ok(j * basis.as_mat());
    }
    let jv = field.jvp(x, t, basis.as_mat().transpose())?; // k × d, rows J q_j
    Ok(jv.transpose().to_owned())
}
