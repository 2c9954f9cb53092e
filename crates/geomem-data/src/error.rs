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
    /// A `.npy` file whose magic string, version or header dict is malformed or truncated.
    #[error("bad .npy header in {path}: {reason}")]
    NpyHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `.npy` element type the reader does not convert.
    #[error("unsupported dtype '{dtype}' in {path} (float64, float32, int64, int32 and uint8 are read)")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The `descr` of the header.
        dtype: String,
    },
    /// An array that is not 1-D or 2-D.
    #[error("{path}: expected a 1-D or 2-D array, found shape {shape:?}")]
    UnsupportedShape {
        /// The file.
        path: PathBuf,
        /// The shape of the header.
        shape: Vec<u64>,
    },
    /// A shape whose number of bytes overflows 64 bits.
    #[error("{path}: shape {shape:?} is too large to exist")]
    ShapeOverflow {
        /// The file.
        path: PathBuf,
        /// The shape of the header.
        shape: Vec<u64>,
    },
    /// A body shorter (truncated) or longer than the header's shape says.
    #[error("{path}: the shape needs {expected_bytes} bytes of data, the file has {got_bytes}")]
    LengthMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes the shape needs.
        expected_bytes: u64,
        /// Bytes present after the header.
        got_bytes: u64,
    },
    /// A NaN or infinite value in a data file.
    #[error("{path}: non-finite value at row {row}, column {col}")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Row (0-based) of the value.
        row: usize,
        /// Column (0-based).
        col: usize,
    },
    /// A CSV field that is not a number.
    #[error("{path}: line {line}: '{field}' is not a number")]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// Line (1-based).
        line: usize,
        /// The field (first 40 characters).
        field: String,
    },
    /// A CSV row with another number of fields than the first.
    #[error("{path}: line {line} has {got} fields, expected {expected}")]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// Line (1-based).
        line: usize,
        /// Fields of the first row.
        expected: usize,
        /// Fields of this row.
        got: usize,
    },
    /// A data set that ships in a system package which is not installed.
    #[error("{what} is not installed: {path} does not exist (install it with `{install}`, Debian package {package})")]
    NotInstalled {
        /// The data set.
        what: &'static str,
        /// Where the package puts it.
        path: PathBuf,
        /// The package.
        package: &'static str,
        /// The command that installs it.
        install: &'static str,
    },
    /// A size that does not fit in this machine's memory.
    #[error("{what} needs {} GiB, more than the {} GiB of memory of this machine", gib(*.bytes), gib(*.available))]
    TooLarge {
        /// What was asked for.
        what: String,
        /// The bytes it needs.
        bytes: u128,
        /// The bytes there are.
        available: u128,
    },
    /// A file name whose type no reader knows.
    #[error("{path}: unknown file type (points are read from .npy, .csv or .csv.gz)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
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

impl DataError {
    /// The same error with `path` as its file (parsers report an empty path).
    pub(crate) fn at(self, p: &std::path::Path) -> Self {
        use DataError::*;
        let path = p.to_path_buf();
        match self {
            NpyHeader { reason, .. } => NpyHeader { path, reason },
            UnsupportedDtype { dtype, .. } => UnsupportedDtype { path, dtype },
            UnsupportedShape { shape, .. } => UnsupportedShape { path, shape },
            ShapeOverflow { shape, .. } => ShapeOverflow { path, shape },
            LengthMismatch { expected_bytes, got_bytes, .. } => LengthMismatch { path, expected_bytes, got_bytes },
            NonFinite { row, col, .. } => NonFinite { path, row, col },
            NotNumeric { line, field, .. } => NotNumeric { path, line, field },
            RaggedRow { line, expected, got, .. } => RaggedRow { path, line, expected, got },
            Format { reason, .. } => Format { path, reason },
            other => other,
        }
    }
}

/// Bytes in GiB, for messages.
fn gib(bytes: u128) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 30) as f64)
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
