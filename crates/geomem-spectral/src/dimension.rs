//! The second-derivative dimension rule of seed 001, Algorithm 3 (Supp. B.2).
//!
//! On the decreasing spectrum `s_1 ≥ … ≥ s_d`, take `D_i = |s_{i-1} - 2 s_i + s_{i+1}|`,
//! discard the first `d̄` values, and find the first `i` with `D_i > c · median(D)`. The drop
//! sits between `s_i` and `s_{i+1}`, so `i` values (1-based) are large and the manifold
//! dimension is `d - i`. (The printed algorithm returns `d - n + d̄`, with `n` counted
//! after the discarded values; the position in the full spectrum is `n + d̄`, so the sign
//! of `d̄` there is a misprint.)

use crate::error::{param, Result, SpectralError};

/// Settings of Algorithm 3.
///
/// Deserialisation checks `c` as [`SecondDerivativeRule::new`] does.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawRule")]
#[non_exhaustive]
pub struct SecondDerivativeRule {
    /// `d̄`: values discarded at the top of the spectrum.
    pub discard: usize,
    /// `c`: threshold in units of the median second derivative.
    pub threshold: f64,
}

#[derive(serde::Deserialize)]
struct RawRule {
    discard: usize,
    threshold: f64,
}

impl TryFrom<RawRule> for SecondDerivativeRule {
    type Error = SpectralError;
    fn try_from(r: RawRule) -> Result<Self> {
        Self::new(r.discard, r.threshold)
    }
}

impl Default for SecondDerivativeRule {
    /// Defaults: `d̄ = 1` (the first value, "as it tends to be large"), `c = 10`.
    /// The constants the papers and the authors' code use per data set are the associated
    /// constants (`PAPER_*`, `CODE_*`).
    fn default() -> Self {
        Self { discard: 1, threshold: 10.0 }
    }
}

/// Algorithm 3's constants per data set, as printed and as the authors' code sets them.
///
/// `PAPER_*`: seed 001, Supp. B.2 ("For MNIST we use d̄ = 100, c = 15 and t = 0, for Cifra10
/// d̄ = 1000, c = 10 and t = 15, and for CelebA d̄ = 1000, c = 10 and t = 0"; seed 000 names
/// the data sets of its Sec. 3.3.4 but its values are stripped). `CODE_*`: the cell of
/// `image_experiments/plot_svds_data.ipynb` (beatriceachilli/losing-dimensions) that draws
/// the dimension against the training-set size (`d_bar`, `est_c` per `root_folder`). They
/// differ for MNIST (`c` 20 against 15; the cell's own comment says 15) and CelebA-HQ (`d̄`
/// 1500 against 1000); Fashion-MNIST and LSUN-Church have code values only (the cell's
/// comment gives LSUN-Church `d̄ = 2200, c = 10`, the code 2000 and 20). Which figure uses
/// which: `docs/REPRODUCTION.md`, "Algorithm 3's constants".
impl SecondDerivativeRule {
    /// Seed 001, MNIST: `d̄ = 100, c = 15`.
    pub const PAPER_MNIST: Self = Self { discard: 100, threshold: 15.0 };
    /// Seed 001, CIFAR-10: `d̄ = 1000, c = 10`.
    pub const PAPER_CIFAR10: Self = Self { discard: 1000, threshold: 10.0 };
    /// Seed 001, CelebA: `d̄ = 1000, c = 10`.
    pub const PAPER_CELEBA: Self = Self { discard: 1000, threshold: 10.0 };
    /// The authors' code, MNIST: `d̄ = 100, c = 20`.
    pub const CODE_MNIST: Self = Self { discard: 100, threshold: 20.0 };
    /// The authors' code, Fashion-MNIST: `d̄ = 200, c = 15`.
    pub const CODE_FASHION_MNIST: Self = Self { discard: 200, threshold: 15.0 };
    /// The authors' code, CIFAR-10: `d̄ = 1000, c = 10` (as seed 001).
    pub const CODE_CIFAR10: Self = Self { discard: 1000, threshold: 10.0 };
    /// The authors' code, CelebA-HQ 64×64: `d̄ = 1500, c = 10`.
    pub const CODE_CELEBA_HQ: Self = Self { discard: 1500, threshold: 10.0 };
    /// The authors' code, LSUN-Church 64×64: `d̄ = 2000, c = 20`.
    pub const CODE_LSUN_CHURCH: Self = Self { discard: 2000, threshold: 20.0 };
}

impl SecondDerivativeRule {
    /// A rule with the given `d̄` and `c > 0`.
    ///
    /// # Errors
    /// [`SpectralError::InvalidParameter`] for a non-positive or non-finite `c`.
    pub fn new(discard: usize, threshold: f64) -> Result<Self> {
        param("threshold", threshold, threshold.is_finite() && threshold > 0.0, "must be finite and > 0")?;
        Ok(Self { discard, threshold })
    }

    /// `|D_i|` for `i = 1 … d-2` (0-based centre index), one value per interior point.
    pub fn second_derivative(values: &[f64]) -> Vec<f64> {
        values.windows(3).map(|w| (w[0] - 2.0 * w[1] + w[2]).abs()).collect()
    }

    /// The manifold dimension, or `None` when no second derivative exceeds the threshold.
    ///
    /// # Errors
    /// [`SpectralError::SpectrumTooShort`] when fewer than `d̄ + 3` values are given.
    pub fn dimension(&self, sorted_desc: &[f64]) -> Result<Option<usize>> {
        let d = sorted_desc.len();
        if d < self.discard + 3 {
            return Err(SpectralError::SpectrumTooShort { len: d, reason: "Algorithm 3 needs d̄ + 3 values" });
        }
        // D[j] is centred on index j + 1 (0-based); keep centres >= discard.
        let all = Self::second_derivative(sorted_desc);
        let start = self.discard.saturating_sub(1);
        let kept = &all[start..];
        let mut sorted = kept.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = if sorted.len() % 2 == 1 {
            sorted[sorted.len() / 2]
        } else {
            0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
        };
        Ok(kept.iter().position(|&v| v > self.threshold * median).map(|p| {
            let centre = start + p + 1; // 0-based index of s_i
            d - (centre + 1).min(d)
        }))
    }
}

/// The dimensions that the authors' notebook (`image_experiments/plot_svds_data.ipynb`,
/// `estimate_manifold_dim`) reads from the spectra of all points of one training size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PooledDimensions {
    /// The one median of `|D|` pooled over every point (after the first `d̄` values).
    pub median: f64,
    /// `d - (i + 1 + d̄)` for every spike `i` of every point, points in order.
    pub spikes: Vec<usize>,
    /// For each point, how many spikes it contributed.
    pub per_point: Vec<usize>,
}

impl PooledDimensions {
    /// Mean of the spike dimensions. A point without a spike adds nothing, as in the notebook,
    /// whose `estimate_manifold_dim` skips it; `None` when no point has a spike, where the
    /// notebook's `np.concatenate` of an empty list raises before its "return d" line (so it
    /// never returns `d`). [`Reading`] says what a flat spectrum is.
    pub fn mean(&self) -> Option<f64> {
        (!self.spikes.is_empty()).then(|| self.spikes.iter().sum::<usize>() as f64 / self.spikes.len() as f64)
    }
    /// Population standard deviation of the spike dimensions (`None` without spikes).
    pub fn std(&self) -> Option<f64> {
        let m = self.mean()?;
        let v = self.spikes.iter().map(|&s| (s as f64 - m).powi(2)).sum::<f64>() / self.spikes.len() as f64;
        Some(v.sqrt())
    }
}

impl SecondDerivativeRule {
    /// Algorithm 3 as the authors' notebook computes it: drop the first `d̄` values of every
    /// spectrum, take `|second differences|`, one median `m` over all of them pooled, and
    /// every index `i` (not only the first) with `|D_i| > c·m`, reported as `d - (i + 1 + d̄)`.
    /// At a clean cliff the two spikes on either side give `m + 1` and `m` where the paper's
    /// form ([`SecondDerivativeRule::dimension`]) gives `m`.
    ///
    /// # Errors
    /// [`SpectralError::SpectrumTooShort`] for spectra shorter than `d̄ + 3` or of unequal
    /// lengths; [`SpectralError::InvalidParameter`] for no spectra.
    pub fn pooled(&self, spectra: &[Vec<f64>]) -> Result<PooledDimensions> {
        param("spectra", spectra.len(), !spectra.is_empty(), "need at least one spectrum")?;
        let d = spectra[0].len();
        if d < self.discard + 3 || spectra.iter().any(|s| s.len() != d) {
            return Err(SpectralError::SpectrumTooShort {
                len: d,
                reason: "Algorithm 3 needs d̄ + 3 values in every spectrum, all of one length",
            });
        }
        let diffs: Vec<Vec<f64>> = spectra.iter().map(|s| Self::second_derivative(&s[self.discard..])).collect();
        let mut all: Vec<f64> = diffs.iter().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        let n = all.len();
        let median = if n % 2 == 1 { all[n / 2] } else { 0.5 * (all[n / 2 - 1] + all[n / 2]) };
        let (mut spikes, mut per_point) = (Vec::new(), Vec::with_capacity(spectra.len()));
        for dd in &diffs {
            let before = spikes.len();
            spikes.extend(
                dd.iter()
                    .enumerate()
                    .filter(|(_, &v)| v > self.threshold * median)
                    .map(|(i, _)| d - (i + 1 + self.discard)),
            );
            per_point.push(spikes.len() - before);
        }
        Ok(PooledDimensions { median, spikes, per_point })
    }
}

/// Stiffness level that separates the two flat cases of [`Reading`]: `t · s_median` above it
/// is stiff (a memorizing field has `t · s = 1` in every direction), below it soft.
pub const STIFF_LEVEL: f64 = 0.5;

/// `t` times the median of a spectrum of the score Jacobian's singular values: 1 for a field
/// that is stiff in every direction (`∇s = -I/t`, the empirical score of one point, a net
/// that has memorized its training image), `t/(σ² + t) → 0` for one that is soft in every
/// direction (a Gaussian of variance `σ² ≫ t`); between the two for a manifold, where the
/// normal directions are stiff and the tangent ones soft.
///
/// # Errors
/// [`SpectralError::SpectrumTooShort`] for an empty spectrum;
/// [`SpectralError::InvalidParameter`] for `t` not finite and > 0 or a non-finite value.
pub fn stiffness(spectrum: &[f64], t: f64) -> Result<f64> {
    if spectrum.is_empty() {
        return Err(SpectralError::SpectrumTooShort { len: 0, reason: "the stiffness needs one value" });
    }
    param("t", t, t.is_finite() && t > 0.0, "must be finite and > 0")?;
    param("spectrum", "non-finite value", spectrum.iter().all(|v| v.is_finite()), "values must be finite")?;
    let mut v = spectrum.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    Ok(t * median)
}

/// The number of directions in which a field is soft at time `t`: the singular values `s_i`
/// of its score Jacobian with `t · s_i <` [`STIFF_LEVEL`]. It needs no cliff in the
/// spectrum. For Gaussian data of covariance eigenvalues `λ_i` (`s_i = 1/(λ_i + t)`) it counts
/// the directions with `λ_i > t`: the dimension of the data resolved at time `t` (0 for a
/// memorizing field, whose `t · s_i = 1` in every direction; `d` for one soft in every
/// direction).
///
/// # Errors
/// As [`stiffness`].
pub fn soft_count(spectrum: &[f64], t: f64) -> Result<usize> {
    stiffness(spectrum, t)?;
    Ok(spectrum.iter().filter(|&&s| t * s < STIFF_LEVEL).count())
}

/// What one spectrum says about the dimension, with Algorithm 3's "no spike" reported as
/// such instead of falling back to `d`: a spectrum without a cliff is flat, and a flat
/// spectrum is either stiff in every direction (a memorizing field, dimension 0) or soft in
/// every direction (dimension `d`); [`stiffness`] tells the two apart at [`STIFF_LEVEL`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Reading {
    /// Algorithm 3 found a spike: the dimension it reads.
    Spike(usize),
    /// No spike; stiff in every direction (`t · s_median ≥` [`STIFF_LEVEL`]): dimension 0.
    NoSpikeStiff,
    /// No spike; soft in every direction (`t · s_median <` [`STIFF_LEVEL`]): dimension `d`.
    NoSpikeSoft,
}

impl Reading {
    /// The dimension of the reading in ambient dimension `d`: the spike's, 0, or `d`.
    pub fn dimension(&self, d: usize) -> usize {
        match *self {
            Self::Spike(m) => m,
            Self::NoSpikeStiff => 0,
            Self::NoSpikeSoft => d,
        }
    }
    /// A short name: `spike`, `no spike, stiff`, `no spike, soft`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Spike(_) => "spike",
            Self::NoSpikeStiff => "no spike, stiff",
            Self::NoSpikeSoft => "no spike, soft",
        }
    }
}

impl SecondDerivativeRule {
    /// Algorithm 3 (the paper's form, [`SecondDerivativeRule::dimension`]) on one spectrum of
    /// the score Jacobian at time `t`, with the flat cases told apart by [`stiffness`].
    ///
    /// # Errors
    /// As [`SecondDerivativeRule::dimension`] and [`stiffness`].
    pub fn read(&self, sorted_desc: &[f64], t: f64) -> Result<Reading> {
        let stiff = stiffness(sorted_desc, t)?;
        Ok(match self.dimension(sorted_desc)? {
            Some(m) => Reading::Spike(m),
            None if stiff >= STIFF_LEVEL => Reading::NoSpikeStiff,
            None => Reading::NoSpikeSoft,
        })
    }
}
