//! The theory's inputs read off a data set: the variances `σ_i²` of its principal
//! directions, and the positional REM of `N` such points at their mean.

use crate::condensation::PositionalRem;
use crate::error::{param, RemError, Result};
use faer::{MatRef, Side};

/// The variances of the principal directions of the rows of `x` (`N × d`): the eigenvalues
/// of the covariance `(1/N) Σ (x_i - x̄)(x_i - x̄)ᵀ`, largest first, rounding below 0
/// clipped to 0. These are the `σ_i²` of seed 001's linear model (Sec. 5, Supp. C) when the
/// data are Gaussian.
///
/// # Errors
/// [`RemError::InvalidParameter`] for fewer than 2 rows, no column, a non-finite entry, or
/// an eigen-decomposition that does not converge.
pub fn principal_variances(x: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let (n, d) = (x.nrows(), x.ncols());
    param("rows", n as f64, n >= 2, "need at least 2 points")?;
    param("columns", d as f64, d >= 1, "need at least one dimension")?;
    if (0..d).any(|j| (0..n).any(|i| !x[(i, j)].is_finite())) {
        return Err(RemError::InvalidParameter { name: "x", value: "non-finite".into(), reason: "must be finite" });
    }
    let mean: Vec<f64> = (0..d).map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64).collect();
    let centred = faer::Mat::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
    let cov = centred.transpose() * &centred * faer::Scale(1.0 / n as f64);
    let ev = cov.self_adjoint_eigenvalues(Side::Lower).map_err(|_| RemError::InvalidParameter {
        name: "x",
        value: "covariance".into(),
        reason: "its eigen-decomposition did not converge",
    })?;
    let mut v: Vec<f64> = ev.iter().map(|&e| e.max(0.0)).collect();
    v.sort_by(|a, b| b.total_cmp(a));
    Ok(v)
}

impl PositionalRem {
    /// The REM of the `N` rows of `x` at their mean: variances from
    /// [`principal_variances`], `α = ln N / d`, `x = 0` (Eq. 33's `ω² = 0`), so that
    /// [`PositionalRem::condensation_time`] is the time below which the empirical score of
    /// these points is dominated by one of them at the centre (seed 001, Supp. C).
    ///
    /// ```
    /// use geomem_rem::{principal_variances, PositionalRem};
    /// // 200 points spread along two axes of R^3.
    /// let x = faer::Mat::from_fn(200, 3, |i, j| match j {
    ///     0 => ((i * 37 % 200) as f64 / 100.0) - 1.0,
    ///     1 => ((i * 91 % 200) as f64 / 200.0) - 0.5,
    ///     _ => 0.0,
    /// });
    /// let rem = PositionalRem::of_data(x.as_ref()).unwrap();
    /// let v = principal_variances(x.as_ref()).unwrap();
    /// let same = PositionalRem::with_n(&v, &[0.0; 3], 200.0).unwrap();
    /// assert_eq!(rem.condensation_time(), same.condensation_time());
    /// assert!(rem.condensation_time() > 0.0);
    /// ```
    ///
    /// # Errors
    /// As [`principal_variances`] and [`PositionalRem::with_n`].
    pub fn of_data(x: MatRef<'_, f64>) -> Result<Self> {
        let v = principal_variances(x)?;
        Self::with_n(&v, &vec![0.0; v.len()], x.nrows() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points `±a e_1`, `±b e_2` (equal counts): covariance `diag(a²/2, b²/2, 0)`, whatever
    /// rotation the points are given in.
    #[test]
    fn variances_of_a_cross_are_exact() {
        let (a, b) = (2.0, 0.5);
        let pts = [[a, 0.0, 0.0], [-a, 0.0, 0.0], [0.0, b, 0.0], [0.0, -b, 0.0]];
        let (c, s) = (0.6, 0.8); // a rotation in the (1, 3) plane
        let x = faer::Mat::from_fn(4, 3, |i, j| match j {
            0 => c * pts[i][0] - s * pts[i][2],
            1 => pts[i][1],
            _ => s * pts[i][0] + c * pts[i][2],
        });
        let v = principal_variances(x.as_ref()).unwrap();
        let want = [a * a / 2.0, b * b / 2.0, 0.0];
        for (got, want) in v.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{v:?}");
        }
        assert!(principal_variances(x.subrows(0, 1)).is_err());
        let nan = faer::Mat::from_fn(3, 2, |i, _| if i == 1 { f64::NAN } else { 1.0 });
        assert!(principal_variances(nan.as_ref()).is_err());
    }
}
