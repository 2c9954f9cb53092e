//! The error type of `geomem-nets`.
use geomem_score::ScoreError;
use std::path::PathBuf;

/// Errors raised by networks, training, checkpoints and sampling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetsError {
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
    /// Training data with no points, or points of the wrong dimension.
    #[error("bad training data: {0}")]
    Data(String),
    /// A file that could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint that is truncated, corrupted or from another configuration.
    #[error("corrupt checkpoint {path}: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A configuration file that does not parse as the expected settings.
    #[error("bad configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A metrics file (`metrics.csv`) that is not a single run's metrics.
    #[error("bad metrics file {path}, line {line}: {reason}")]
    Metrics {
        /// The file.
        path: PathBuf,
        /// The line (1 is the header).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A burn record that could not be encoded or decoded.
    #[error("record error: {0}")]
    Record(String),
    /// Training produced a NaN or infinite loss (or weights).
    #[error("training diverged: non-finite loss {loss} at step {step} (last finite at step {last_finite_step}); the last checkpoint was kept")]
    NonFiniteLoss {
        /// The step at which it was seen.
        step: u64,
        /// The loss read there (NaN when the weights, not the loss, were non-finite).
        loss: f64,
        /// The last step whose loss was read finite.
        last_finite_step: u64,
    },
    /// An error of a score field (shapes, times).
    #[error(transparent)]
    Score(#[from] ScoreError),
}

/// Result alias of `geomem-nets`.
pub type Result<T> = std::result::Result<T, NetsError>;

pub(crate) fn param(name: &'static str, value: impl ToString, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(NetsError::InvalidParameter { name, value: value.to_string(), reason })
    }
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NetsError + '_ {
    move |source| NetsError::Io { path: path.to_path_buf(), source }
}
