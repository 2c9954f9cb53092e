//! The error type of `geomem-rem`.

/// Errors raised by the REM theory functions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RemError {
    /// A parameter outside its allowed range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A negative or non-finite variance.
    #[error("invalid variance {value} at index {index}: variances must be finite and >= 0")]
    InvalidVariance {
        /// Index.
        index: usize,
        /// Value.
        value: f64,
    },
    /// Vectors of different lengths.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A diffusion time that is not finite and strictly positive.
    #[error("invalid diffusion time t = {0}: t must be finite and > 0")]
    InvalidTime(f64),
}

/// Result alias of `geomem-rem`.
pub type Result<T> = std::result::Result<T, RemError>;

pub(crate) fn param(name: &'static str, value: f64, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(RemError::InvalidParameter { name, value: value.to_string(), reason })
    }
}

pub(crate) fn check_time(t: f64) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(RemError::InvalidTime(t))
    }
}

pub(crate) fn check_variances(v: &[f64]) -> Result<()> {
    if v.is_empty() {
        return Err(RemError::InvalidParameter {
            name: "sigma2",
            value: "[]".into(),
            reason: "need at least one dimension",
        });
    }
    for (index, &value) in v.iter().enumerate() {
        if !(value.is_finite() && value >= 0.0) {
            return Err(RemError::InvalidVariance { index, value });
        }
    }
    Ok(())
}
