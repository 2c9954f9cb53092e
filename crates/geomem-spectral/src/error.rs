//! The error type of `geomem-spectral`.
use geomem_score::ScoreError;

/// Errors raised by the spectral estimators.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpectralError {
    /// An error of the score field being probed.
    #[error(transparent)]
    Score(#[from] ScoreError),
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
    /// A spectrum too short for the requested operation.
    #[error("spectrum of length {len} is too short: {reason}")]
    SpectrumTooShort {
        /// Its length.
        len: usize,
        /// What was needed.
        reason: &'static str,
    },
    /// A reading that the computed part of a spectrum does not decide (a matrix-free
    /// spectrum whose values left out may lie on both sides of a level).
    #[error("undetermined: {0}")]
    Undetermined(&'static str),
    /// The SVD did not converge (faer's `SvdError` has no `Error` impl; wrapped by hand).
    #[error("singular value decomposition did not converge")]
    SvdNoConvergence,
}

/// Result alias of `geomem-spectral`.
pub type Result<T> = std::result::Result<T, SpectralError>;

pub(crate) fn param(name: &'static str, value: impl ToString, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(SpectralError::InvalidParameter { name, value: value.to_string(), reason })
    }
}

/// Singular values of `m`, sorted decreasing, through faer.
///
/// # Errors
/// [`SpectralError::SvdNoConvergence`].
pub fn singular_values(m: faer::MatRef<'_, f64>) -> Result<Vec<f64>> {
    m.singular_values().map_err(|_| SpectralError::SvdNoConvergence)
}
