//! The error type of `geomem-lid`.
use geomem_score::ScoreError;
use geomem_spectral::SpectralError;

/// Errors raised by the LID estimators.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LidError {
    /// An error of the score field being probed.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// An error of a spectral estimator (the Normal Bundle dimension).
    #[error(transparent)]
    Spectral(#[from] SpectralError),
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
    /// Points that cannot be used: empty, of the wrong width, or with a NaN or infinite
    /// coordinate.
    #[error("invalid {what}: {reason}")]
    Data {
        /// Which input.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result alias of `geomem-lid`.
pub type Result<T> = std::result::Result<T, LidError>;

pub(crate) fn param(name: &'static str, value: impl ToString, ok: bool, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(LidError::InvalidParameter { name, value: value.to_string(), reason })
    }
}

/// Checks a point set: at least `min_rows` rows, `d >= 1` columns, every entry finite.
pub(crate) fn check_points(what: &'static str, x: faer::MatRef<'_, f64>, min_rows: usize) -> Result<()> {
    if x.nrows() < min_rows {
        return Err(LidError::Data { what, reason: format!("{} rows, at least {min_rows} needed", x.nrows()) });
    }
    if x.ncols() == 0 {
        return Err(LidError::Data { what, reason: "no columns".into() });
    }
    // In memory order: down the columns of a column-major matrix, along the rows otherwise;
    // first in parallel and without an early exit (so the loop vectorises), then, only where
    // something is not finite, for the first such entry.
    if all_finite(x) {
        return Ok(());
    }
    let first_bad = |v: &[f64]| v.iter().position(|x| !x.is_finite());
    let bad = if x.row_stride() == 1 {
        (0..x.ncols()).find_map(|j| match x.col(j).try_as_col_major() {
            Some(c) => first_bad(c.as_slice()).map(|i| (i, j)),
            None => x.col(j).iter().position(|v| !v.is_finite()).map(|i| (i, j)),
        })
    } else {
        (0..x.nrows()).find_map(|i| match x.row(i).try_as_row_major() {
            Some(r) => first_bad(r.as_slice()).map(|j| (i, j)),
            None => x.row(i).iter().position(|v| !v.is_finite()).map(|j| (i, j)),
        })
    };
    match bad {
        Some((i, j)) => Err(LidError::Data { what, reason: format!("row {i} has a non-finite coordinate {j}") }),
        None => Ok(()),
    }
}

/// Whether every entry of `x` is finite: `v · 0` is zero for a finite `v` and not a number
/// otherwise, so a sum of them is zero exactly when all are; in parallel over the columns
/// of a column-major matrix or the rows otherwise.
fn all_finite(x: faer::MatRef<'_, f64>) -> bool {
    use rayon::prelude::*;
    // Eight running sums, so the loop vectorises.
    let zero = |v: &[f64]| {
        let mut acc = [0.0f64; 8];
        let chunks = v.chunks_exact(8);
        let tail = chunks.remainder().iter().fold(0.0, |a, &x| a + x * 0.0);
        for c in chunks {
            for t in 0..8 {
                acc[t] += c[t] * 0.0;
            }
        }
        acc.iter().sum::<f64>() + tail == 0.0
    };
    if x.row_stride() == 1 {
        (0..x.ncols()).into_par_iter().all(|j| match x.col(j).try_as_col_major() {
            Some(c) => zero(c.as_slice()),
            None => x.col(j).iter().all(|v| v.is_finite()),
        })
    } else {
        (0..x.nrows()).into_par_iter().all(|i| match x.row(i).try_as_row_major() {
            Some(r) => zero(r.as_slice()),
            None => x.row(i).iter().all(|v| v.is_finite()),
        })
    }
}

/// Checks that two point sets have the same width.
pub(crate) fn check_width(what: &'static str, d: usize, expected: usize) -> Result<()> {
    if d == expected {
        Ok(())
    } else {
        Err(LidError::Data { what, reason: format!("{d} columns, the reference has {expected}") })
    }
}
