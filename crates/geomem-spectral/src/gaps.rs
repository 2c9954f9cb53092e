//! Gap analysis of sweeps of spectra: which gap is open, and over which interval of the
//! swept variable (`t` or `N`) a given gap is the largest.
//!
//! These are the conventions of the figures of `cargo xtask reproduce`
//! (`docs/REPRODUCTION.md`); they live here so that a user's own sweep reads gaps the same
//! way.

use crate::error::Result;
use crate::spectrum::{GapScale, Spectrum};

/// A gap counts as open when the spectrum jumps by at least 25 % across it: log gap
/// `>= ln 1.25`. A convention of geomem, not of the paper.
pub const OPEN_LOG_GAP: f64 = 0.223_143_551_314_209_76;

/// Whether a log gap is open ([`OPEN_LOG_GAP`]).
pub fn is_open(log_gap: f64) -> bool {
    log_gap >= OPEN_LOG_GAP
}

/// Values divided by the largest (a list of zeros, or an empty one, is returned as is).
pub fn normalize(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(0.0, f64::max);
    v.iter().map(|x| if m > 0.0 { x / m } else { *x }).collect()
}

/// Element-wise mean of equally long spectra (an empty list gives an empty vector).
pub fn mean_spectrum(vs: &[Vec<f64>]) -> Vec<f64> {
    let Some(first) = vs.first() else { return Vec::new() };
    let n = vs.len() as f64;
    (0..first.len()).map(|i| vs.iter().map(|v| v.get(i).copied().unwrap_or(f64::NAN)).sum::<f64>() / n).collect()
}

/// The largest log gap of a spectrum and the log gaps at marked positions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MarkedGaps {
    /// 1-based position of the largest log gap (number of values above it).
    pub largest_at: usize,
    /// Log gap at each marked position (`None` when the position is out of range).
    pub at_marks: Vec<Option<f64>>,
}

impl MarkedGaps {
    /// The marked positions whose gap is open.
    pub fn open<'a>(&self, positions: &'a [usize]) -> Vec<&'a usize> {
        positions.iter().zip(&self.at_marks).filter(|(_, g)| g.is_some_and(is_open)).map(|(p, _)| p).collect()
    }
}

/// Position of the largest log gap of `values` and the log gaps at the 1-based `positions`.
///
/// # Errors
/// As [`Spectrum::new`] (empty or non-finite values) and [`Spectrum::largest_gap`] (fewer
/// than two values).
pub fn marked_gaps(values: &[f64], positions: &[usize]) -> Result<MarkedGaps> {
    let s = Spectrum::new(values.to_vec())?;
    let (largest_at, _) = s.largest_gap(GapScale::Log, 0)?;
    Ok(MarkedGaps { largest_at, at_marks: s.gaps_at(positions, GapScale::Log) })
}

/// Maximal runs of the sweep variable `xs` on which `labels[i] == p`, as closed intervals
/// `(first x, last x)` in sweep order. `labels` is typically the position of the largest
/// gap at each `x`, or the position of a gap where it is open and 0 elsewhere.
pub fn intervals_where(xs: &[f64], labels: &[usize], p: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut run: Option<(f64, f64)> = None;
    for (&x, &k) in xs.iter().zip(labels) {
        run = match (k == p, run) {
            (true, None) => Some((x, x)),
            (true, Some((a, _))) => Some((a, x)),
            (false, Some(r)) => {
                out.push(r);
                None
            }
            (false, None) => None,
        };
    }
    out.extend(run);
    out
}

/// `[a, b] ∪ [c, e]` in scientific notation, or `never` for no interval.
pub fn format_intervals(iv: &[(f64, f64)]) -> String {
    if iv.is_empty() {
        return "never".into();
    }
    iv.iter().map(|(a, b)| format!("[{a:.3e}, {b:.3e}]")).collect::<Vec<_>>().join(" ∪ ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_changes() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let lab = [3, 3, 1, 3, 1, 3];
        assert_eq!(intervals_where(&xs, &lab, 3), vec![(1.0, 2.0), (4.0, 4.0), (6.0, 6.0)]);
        assert_eq!(intervals_where(&xs, &lab, 7), vec![]);
        assert_eq!(format_intervals(&[]), "never");
    }

    #[test]
    fn open_threshold_is_a_quarter_jump() {
        assert!((OPEN_LOG_GAP - 1.25f64.ln()).abs() < 1e-16);
        let g = marked_gaps(&[1.0, 0.9, 0.5, 0.45], &[1, 2, 3, 9]).unwrap();
        assert_eq!(g.largest_at, 2);
        assert_eq!(g.open(&[1, 2, 3, 9]), vec![&2]);
        assert_eq!(g.at_marks[3], None);
    }
}
