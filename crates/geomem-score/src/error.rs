//! The error type of `geomem-score`.

/// Errors raised by score fields and noise schedules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// A matrix or vector had the wrong size.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The size that was required.
        expected: usize,
        /// The size that was given.
        got: usize,
    },
    /// A diffusion time that is not finite and strictly positive.
    #[error("invalid diffusion time t = {0}: t must be finite and > 0")]
    InvalidTime(f64),
    /// A variance that is negative or not finite.
    #[error("invalid variance {value} at index {index}: variances must be finite and >= 0")]
    InvalidVariance {
        /// Index of the offending variance.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A dataset with no points, or a point with no coordinates.
    #[error("empty dataset: at least one point of dimension >= 1 is required")]
    EmptyDataset,
    /// An input that contains NaN or infinity.
    #[error("non-finite value in {0}")]
    NonFinite(&'static str),
    /// The manifold dimension exceeds the ambient dimension.
    #[error("manifold dimension m = {m} exceeds ambient dimension d = {d}")]
    ManifoldTooLarge {
        /// Manifold dimension.
        m: usize,
        /// Ambient dimension.
        d: usize,
    },
    /// A parameter outside its allowed range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A dense decomposition (SVD or eigendecomposition) did not converge.
    #[error("linear algebra failure: {0}")]
    Linalg(&'static str),
    /// An error raised by a score field implemented outside this crate (a trained network).
    #[error("score field backend: {0}")]
    Backend(String),
    /// A VE time that is not a time of a discrete schedule's grid.
    #[error("t = {t} is not on the schedule's grid (nearest: step {nearest_step}, t = {nearest_t}); use the schedule's own ve_time(k)")]
    OffGrid {
        /// The time asked for.
        t: f64,
        /// The step whose time is nearest.
        nearest_step: usize,
        /// Its time.
        nearest_t: f64,
    },
    /// A VE time outside the range a schedule covers.
    #[error("t = {t} lies outside the schedule's range [{min}, {max}]")]
    TimeOutOfRange {
        /// The time asked for.
        t: f64,
        /// Smallest time of the schedule.
        min: f64,
        /// Largest time of the schedule.
        max: f64,
    },
    /// A discrete step outside `0 … T-1`.
    #[error("step {step} is outside 0..{steps}")]
    StepOutOfRange {
        /// The step asked for.
        step: usize,
        /// Number of steps `T`.
        steps: usize,
    },
}

/// Result alias of `geomem-score`.
pub type Result<T> = std::result::Result<T, ScoreError>;

/// Checks that `t` is a usable diffusion time.
pub(crate) fn check_time(t: f64) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(ScoreError::InvalidTime(t))
    }
}

/// Checks that `got == expected`.
pub(crate) fn check_dim(expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(ScoreError::DimensionMismatch { expected, got })
    }
}

/// Checks that every entry of a matrix is finite.
pub(crate) fn check_finite(m: faer::MatRef<'_, f64>, what: &'static str) -> Result<()> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].is_finite() {
                return Err(ScoreError::NonFinite(what));
            }
        }
    }
    Ok(())
}

/// Checks a list of variances: each finite and non-negative.
pub(crate) fn check_variances(v: &[f64]) -> Result<()> {
    for (index, &value) in v.iter().enumerate() {
        if !(value.is_finite() && value >= 0.0) {
            return Err(ScoreError::InvalidVariance { index, value });
        }
    }
    Ok(())
}
