//! Sorted spectra, gaps (seed 001, Eq. 7) and dimension from the largest gap.
use crate::error::{Result, SpectralError};

/// How gaps are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GapScale {
    /// `(s_k - s_{k+1}) / s_1` on the max-normalised spectrum (Eq. 7).
    Linear,
    /// `ln s_k - ln s_{k+1}`: the jump on a log axis, which also shows gaps between
    /// variance blocks far below the largest value.
    Log,
}

/// A spectrum of singular values, sorted in decreasing order.
///
/// Deserialisation goes through [`Spectrum::new`], so a stored spectrum that is empty,
/// negative or non-finite is an error, never a value that panics later.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct Spectrum {
    values: Vec<f64>,
}

impl TryFrom<Vec<f64>> for Spectrum {
    type Error = SpectralError;
    fn try_from(values: Vec<f64>) -> Result<Self> {
        Self::new(values)
    }
}

impl From<Spectrum> for Vec<f64> {
    fn from(s: Spectrum) -> Self {
        s.values
    }
}

impl Spectrum {
    /// Sorts `values` decreasingly.
    ///
    /// # Errors
    /// [`SpectralError::InvalidParameter`] for a negative or non-finite value,
    /// [`SpectralError::SpectrumTooShort`] for an empty list.
    pub fn new(mut values: Vec<f64>) -> Result<Self> {
        if values.is_empty() {
            return Err(SpectralError::SpectrumTooShort { len: 0, reason: "a spectrum needs at least one value" });
        }
        if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(SpectralError::InvalidParameter {
                name: "singular value",
                value: v.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        values.sort_by(|a, b| b.total_cmp(a));
        Ok(Self { values })
    }
    /// The values, decreasing.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Always false: a spectrum has at least one value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// Values divided by the largest (all zeros stay zeros).
    pub fn normalized(&self) -> Vec<f64> {
        let m = self.values[0];
        if m > 0.0 {
            self.values.iter().map(|v| v / m).collect()
        } else {
            self.values.clone()
        }
    }
    /// Gap after each position `k = 1 … len-1` (1-based: the gap between the `k`-th and
    /// `(k+1)`-th largest value), element `k - 1` of the result.
    pub fn gaps(&self, scale: GapScale) -> Vec<f64> {
        let s0 = self.values[0].max(f64::MIN_POSITIVE);
        let tiny = s0 * 1e-300_f64.max(f64::MIN_POSITIVE);
        self.values
            .windows(2)
            .map(|w| match scale {
                GapScale::Linear => (w[0] - w[1]) / s0,
                GapScale::Log => (w[0].max(tiny)).ln() - (w[1].max(tiny)).ln(),
            })
            .collect()
    }
    /// The gaps at the given 1-based positions (`None` for a position out of range).
    pub fn gaps_at(&self, positions: &[usize], scale: GapScale) -> Vec<Option<f64>> {
        let g = self.gaps(scale);
        positions.iter().map(|&k| k.checked_sub(1).and_then(|i| g.get(i).copied())).collect()
    }
    /// Position `k` (1-based count of values above the gap) and size of the largest gap,
    /// ignoring the first `skip` gaps.
    ///
    /// # Errors
    /// [`SpectralError::SpectrumTooShort`] when fewer than `skip + 2` values exist.
    pub fn largest_gap(&self, scale: GapScale, skip: usize) -> Result<(usize, f64)> {
        let g = self.gaps(scale);
        if g.len() <= skip {
            return Err(SpectralError::SpectrumTooShort { len: self.len(), reason: "no gap left after skipping" });
        }
        let (i, v) =
            g.iter()
                .enumerate()
                .skip(skip)
                .fold((skip, f64::NEG_INFINITY), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        Ok((i + 1, v))
    }
    /// Local dimension read from the largest gap: `len - k` (the number of small values).
    ///
    /// # Errors
    /// As [`Spectrum::largest_gap`].
    pub fn dimension_from_largest_gap(&self, scale: GapScale, skip: usize) -> Result<usize> {
        Ok(self.len() - self.largest_gap(scale, skip)?.0)
    }
}
