//! The [`ScoreField`] trait: anything that maps noisy points and a diffusion time to a score.

use crate::error::{check_dim, check_time, Result};
use faer::{Mat, MatMut, MatRef};

/// A score field `s(x, t) ≈ ∇ log p_t(x)` of the variance-exploding process `x_t = x_0 + √t ε`.
///
/// Points are the **rows** of an `n × d` matrix, so a batch of `n` evaluations is one call.
/// Implementations: [`crate::GaussianScore`] (exact score of a Gaussian linear manifold),
/// [`crate::EmpiricalScore`] (score of a finite training set) and, in `geomem-nets`, trained
/// networks. Every estimator of `geomem-spectral` is generic over this trait.
pub trait ScoreField {
    /// The ambient dimension `d`.
    fn dim(&self) -> usize;

    /// Writes the score of every row of `x` (shape `n × d`) at time `t` into `out` (`n × d`).
    ///
    /// # Errors
    /// [`crate::ScoreError::DimensionMismatch`] for wrong shapes,
    /// [`crate::ScoreError::InvalidTime`] for `t <= 0` or non-finite `t`.
    fn score_batch_into(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()>;

    /// The score of every row of `x` at time `t`, as a new `n × d` matrix.
    ///
    /// # Errors
    /// As [`ScoreField::score_batch_into`].
    fn score_batch(&self, x: MatRef<'_, f64>, t: f64) -> Result<Mat<f64>> {
        check_dim(self.dim(), x.ncols())?;
        check_time(t)?;
        let mut out = Mat::zeros(x.nrows(), x.ncols());
        self.score_batch_into(x, t, out.as_mut())?;
        Ok(out)
    }

    /// The score at one point.
    ///
    /// # Errors
    /// As [`ScoreField::score_batch_into`].
    fn score(&self, x: &[f64], t: f64) -> Result<Vec<f64>> {
        check_dim(self.dim(), x.len())?;
        let xm = MatRef::from_row_major_slice(x, 1, x.len());
        let s = self.score_batch(xm, t)?;
        Ok((0..x.len()).map(|j| s[(0, j)]).collect())
    }

    /// The exact Jacobian `∂s_i/∂x_j` at `x`, when the field has one in closed form.
    ///
    /// Returns `None` for fields without an analytic Jacobian (trained networks); use the
    /// finite-difference estimators of `geomem-spectral` for those.
    fn jacobian(&self, x: &[f64], t: f64) -> Option<Result<Mat<f64>>> {
        let _ = (x, t);
        None
    }
}

impl<F: ScoreField + ?Sized> ScoreField for &F {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn score_batch_into(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
        (**self).score_batch_into(x, t, out)
    }
    fn jacobian(&self, x: &[f64], t: f64) -> Option<Result<Mat<f64>>> {
        (**self).jacobian(x, t)
    }
}

/// Checks the shapes of a batched call: `x` and `out` both `n × d`.
pub(crate) fn check_batch(d: usize, x: MatRef<'_, f64>, out: &MatMut<'_, f64>, t: f64) -> Result<()> {
    check_dim(d, x.ncols())?;
    check_dim(d, out.ncols())?;
    check_dim(x.nrows(), out.nrows())?;
    check_time(t)
}
