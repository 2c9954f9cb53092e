//! The error type of `geomem-data`.
use std::path::PathBuf;

/// Errors raised by data models, subsets and file input-output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
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
    #[error("invalid variance {value} in block {index}: variances must be finite and >= 0")]
    InvalidVariance {
        /// Block index.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The manifold dimension exceeds the ambient dimension.
    #[error("manifold dimension m = {m} exceeds ambient dimension d = {d}")]
    ManifoldTooLarge {
        /// Manifold dimension.
        m: usize,
        /// Ambient dimension.
        d: usize,
    },
    /// An empty dataset where points are needed.
    #[error("empty dataset")]
    EmptyDataset,
    /// A subset larger than the dataset it is drawn from.
    #[error("subset of size {requested} requested from a dataset of {available} points")]
    SubsetTooLarge {
        /// Requested size.
        requested: usize,
        /// Available points.
        available: usize,
    },
    /// A file that could not be opened, read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file whose contents are not what the reader expects.
    #[error("malformed file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of `geomem-data`.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn param(name: &'static str, value: impl ToString, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(DataError::InvalidParameter { name, value: value.to_string(), reason })
    }
}
