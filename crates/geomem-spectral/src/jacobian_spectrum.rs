//! The result of [`crate::spectrum`]: singular values of the score Jacobian `J` at one point,
//! all `d` of them (dense methods) or one end of them (matrix-free), and the dimension
//! readings of seed 001 on either.
//!
//! # The matrix-free ends
//! * [`crate::Operator::Score`] gives the largest values `σ_i(tJ)/t` exactly as the dense
//!   spectrum's first ones ([`Part::Top`]); the values left out lie in `[0, ρ/t]` with `ρ`
//!   the estimate of the largest value the basis missed ([`crate::Rest::estimate`]).
//! * [`crate::Operator::Denoiser`] gives the largest values `a_i` of `I + tJ`, mapped to
//!   `s_i = |1 - a_i|/t`, the **smallest** values of `J` ([`Part::Bottom`]). The map holds
//!   when `J` is symmetric with `tλ ≥ -1` (every exact score: `I + tJ = Cov[x_0|x]/t ⪰ 0`);
//!   a trained network's Jacobian is only nearly symmetric, and the map is then an
//!   approximation. The values left out (`a ≤ ρ`) lie in `[(1 - ρ)/t, (1 + ρ)/t]`.
//!
//! The readings use the computed values where the dense path uses all `d`:
//! * largest gap: among the computed values, at its position in the full spectrum;
//! * Algorithm 3 (paper form, [`JacobianSpectrum::read`]; notebook form,
//!   [`JacobianSpectrum::pooled`]): the second differences and their median are those of the
//!   computed values (the dense path takes the median over all `d`, mostly stiff values;
//!   the denoiser end's median is mostly over soft ones), the positions are those of the
//!   full spectrum, and `d̄` counts from its top; the paper form's "first spike" is the
//!   first from the computed end;
//! * stiffness `t·s_median` and soft count: exact where the computed values decide them,
//!   from the range of the values left out otherwise, and [`SpectralError::Undetermined`]
//!   when that range straddles the level.

use crate::dimension::{PooledDimensions, Reading, SecondDerivativeRule, STIFF_LEVEL};
use crate::error::{param, Result, SpectralError};
use crate::matrix_free::{Leading, Operator, Products, Rest};
use crate::spectrum::{GapScale, Spectrum};

/// Which of the `d` singular values of `J` a [`JacobianSpectrum`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Part {
    /// All of them (a dense method).
    Whole,
    /// The largest ones (matrix-free on `tJ`).
    Top,
    /// The smallest ones (matrix-free on `I + tJ`).
    Bottom,
}

/// The leading singular values of a matrix-free operator as computed, before the map to `J`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperatorValues {
    /// `I + tJ` or `tJ`.
    pub operator: Operator,
    /// Its leading singular values, decreasing.
    pub values: Vec<f64>,
    /// The a-posteriori bound of each (empty without bounds).
    pub errors: Vec<f64>,
}

/// Singular values of the score Jacobian at one point, decreasing, with the readings of
/// seed 001 (module doc).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JacobianSpectrum {
    values: Vec<f64>,
    errors: Option<Vec<f64>>,
    part: Part,
    dim: usize,
    t: f64,
    rest: Option<Rest>,
    gap_found: bool,
    products: Products,
    operator_values: Option<OperatorValues>,
}

impl JacobianSpectrum {
    /// All `d` values of a dense estimate (any order; sorted here).
    ///
    /// # Errors
    /// As [`Spectrum::new`]; [`SpectralError::InvalidParameter`] for `t` not finite and `> 0`.
    pub fn whole(values: Vec<f64>, t: f64) -> Result<Self> {
        param("t", t, t.is_finite() && t > 0.0, "must be finite and > 0")?;
        let values: Vec<f64> = Spectrum::new(values)?.into();
        let dim = values.len();
        Ok(Self {
            values,
            errors: None,
            part: Part::Whole,
            dim,
            t,
            rest: None,
            gap_found: true,
            products: Products::default(),
            operator_values: None,
        })
    }

    /// The spectrum of `J` from the leading values of `operator` (module doc).
    pub(crate) fn from_leading(lead: Leading, operator: Operator, dim: usize, t: f64) -> Result<Self> {
        let errs = if lead.errors.is_empty() { vec![0.0; lead.values.len()] } else { lead.errors.clone() };
        let mut pairs: Vec<(f64, f64)> = match operator {
            Operator::Score => lead.values.iter().zip(&errs).map(|(v, e)| (v / t, e / t)).collect(),
            Operator::Denoiser => lead.values.iter().zip(&errs).map(|(a, e)| ((1.0 - a).abs() / t, e / t)).collect(),
        };
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (values, errors): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let part = if values.len() == dim {
            Part::Whole
        } else if operator == Operator::Score {
            Part::Top
        } else {
            Part::Bottom
        };
        let values: Vec<f64> = Spectrum::new(values)?.into();
        let errors = (!lead.errors.is_empty()).then_some(errors);
        let (rest, gap_found, products) = (lead.rest, lead.gap_found, lead.products);
        let operator_values = Some(OperatorValues { operator, values: lead.values, errors: lead.errors });
        Ok(Self { values, errors, part, dim, t, rest, gap_found, products, operator_values })
    }

    /// The computed singular values of `J`, decreasing.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
    /// The computed values, decreasing.
    pub fn into_values(self) -> Vec<f64> {
        self.values
    }
    /// A-posteriori bound of each value (matrix-free with bounds; `None` otherwise): a
    /// singular value of `J` lies within it (for `Bottom`, under the symmetric map).
    pub fn errors(&self) -> Option<&[f64]> {
        self.errors.as_deref()
    }
    /// Which values these are.
    pub fn part(&self) -> Part {
        self.part
    }
    /// The ambient dimension `d` (the length of the full spectrum).
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The diffusion time.
    pub fn t(&self) -> f64 {
        self.t
    }
    /// What the matrix-free basis left out, in the operator's units.
    pub fn rest(&self) -> Option<Rest> {
        self.rest
    }
    /// Whether the matrix-free block fell past a gap (always true for dense methods).
    pub fn gap_found(&self) -> bool {
        self.gap_found
    }
    /// The matrix-free operator's own values (`None` for dense methods).
    pub fn operator_values(&self) -> Option<&OperatorValues> {
        self.operator_values.as_ref()
    }
    /// The products a matrix-free estimate took.
    pub fn products(&self) -> Products {
        self.products
    }

    /// Position in the full spectrum of the first computed value.
    fn offset(&self) -> usize {
        match self.part {
            Part::Bottom => self.dim - self.values.len(),
            _ => 0,
        }
    }

    /// The range `[lo, hi]` of the values left out (`J` units).
    fn rest_range(&self) -> Option<(f64, f64)> {
        let rho = self.rest?.estimate;
        match self.part {
            Part::Whole => None,
            Part::Top => Some((0.0, rho / self.t)),
            Part::Bottom => Some(((1.0 - rho).max(0.0) / self.t, (1.0 + rho) / self.t)),
        }
    }

    /// Position `k` (1-based count of values above it, in the full spectrum) and size of the
    /// largest gap among the computed values, ignoring the gaps at positions `<= skip`
    /// (seed 001 Eq. 7 for [`GapScale::Linear`], divided by the largest computed value).
    ///
    /// # Errors
    /// [`SpectralError::SpectrumTooShort`] when no gap is left after skipping.
    pub fn largest_gap(&self, scale: GapScale, skip: usize) -> Result<(usize, f64)> {
        let off = self.offset();
        let (k, g) = Spectrum::new(self.values.clone())?.largest_gap(scale, skip.saturating_sub(off))?;
        Ok((k + off, g))
    }

    /// The dimension read from the largest gap: `d - k`, the number of values below it.
    ///
    /// # Errors
    /// As [`JacobianSpectrum::largest_gap`].
    pub fn dimension_from_largest_gap(&self, scale: GapScale, skip: usize) -> Result<usize> {
        Ok(self.dim - self.largest_gap(scale, skip)?.0)
    }

    /// `t · s_median` over all `d` values as a range `(lo, hi)` (equal when the computed
    /// values hold the median; [`crate::stiffness`] for a whole spectrum).
    ///
    /// # Errors
    /// [`SpectralError::Undetermined`] when the median was left out and no bound of the rest
    /// was computed.
    pub fn stiffness(&self) -> Result<(f64, f64)> {
        let d = self.dim;
        let (a, b) = (self.at((d - 1) / 2)?, self.at(d / 2)?);
        Ok((0.5 * self.t * (a.0 + b.0), 0.5 * self.t * (a.1 + b.1)))
    }

    /// The range of the value at 0-based position `p` of the full spectrum.
    fn at(&self, p: usize) -> Result<(f64, f64)> {
        let off = self.offset();
        if p >= off && p < off + self.values.len() {
            let v = self.values[p - off];
            return Ok((v, v));
        }
        self.rest_range().ok_or(SpectralError::Undetermined("the median was not computed and the rest has no bound"))
    }

    /// The number of directions with `t · s_i <` [`STIFF_LEVEL`] among all `d`
    /// ([`crate::soft_count`] for a whole spectrum).
    ///
    /// # Errors
    /// [`SpectralError::Undetermined`] when the values left out may lie on both sides of the
    /// level.
    pub fn soft_count(&self) -> Result<usize> {
        let soft = self.values.iter().filter(|&&s| self.t * s < STIFF_LEVEL).count();
        let left_out = self.dim - self.values.len();
        if left_out == 0 {
            return Ok(soft);
        }
        match self.rest_range() {
            Some((_, hi)) if self.t * hi < STIFF_LEVEL => Ok(soft + left_out),
            Some((lo, _)) if self.t * lo >= STIFF_LEVEL => Ok(soft),
            _ => Err(SpectralError::Undetermined("the values left out may lie on both sides of the soft level")),
        }
    }

    /// Algorithm 3, the paper's form, on the computed values (module doc), with a spectrum
    /// without a spike read as stiff or soft by [`JacobianSpectrum::stiffness`]
    /// ([`SecondDerivativeRule::read`] for a whole spectrum). The first spike is the first
    /// from the end that was computed: from the top (after `d̄`) for `Whole` and `Top`, from
    /// the soft end for `Bottom` (the denoiser's own order), where the few stiff values past
    /// the gap would otherwise come first.
    ///
    /// # Errors
    /// [`SpectralError::SpectrumTooShort`] for fewer than 3 computed values outside the top
    /// `d̄`; [`SpectralError::Undetermined`] for no spike and a stiffness range across
    /// [`STIFF_LEVEL`].
    pub fn read(&self, rule: &SecondDerivativeRule) -> Result<Reading> {
        let (off, len) = (self.offset(), self.values.len());
        let skip = rule.discard.saturating_sub(off);
        let spike = if self.part == Part::Bottom {
            let ascending: Vec<f64> = self.values[skip.min(len)..].iter().rev().copied().collect();
            let first = SecondDerivativeRule::new(0, rule.threshold)?.dimension(&ascending)?;
            first.map(|r| ascending.len() - r) // centre + 1 = the values below the spike
        } else {
            let first = SecondDerivativeRule::new(skip, rule.threshold)?.dimension(&self.values)?;
            first.map(|m| self.dim - off - len + m)
        };
        if let Some(m) = spike {
            return Ok(Reading::Spike(m));
        }
        match self.stiffness()? {
            (lo, _) if lo >= STIFF_LEVEL => Ok(Reading::NoSpikeStiff),
            (_, hi) if hi < STIFF_LEVEL => Ok(Reading::NoSpikeSoft),
            _ => Err(SpectralError::Undetermined("no spike, and the stiffness range straddles the level")),
        }
    }

    /// Algorithm 3 as the authors' notebook computes it ([`SecondDerivativeRule::pooled`]),
    /// on the computed values of every spectrum: second differences after the top `d̄` of
    /// each full spectrum, one median pooled over all, every spike reported as `d - (i + 1 + d̄)`
    /// with `i` its position in the full spectrum.
    ///
    /// # Errors
    /// [`SpectralError::InvalidParameter`] for no spectra; [`SpectralError::SpectrumTooShort`]
    /// for a spectrum with fewer than 3 values after its discarded ones.
    pub fn pooled(rule: &SecondDerivativeRule, spectra: &[JacobianSpectrum]) -> Result<PooledDimensions> {
        param("spectra", spectra.len(), !spectra.is_empty(), "need at least one spectrum")?;
        let mut diffs = Vec::with_capacity(spectra.len());
        for s in spectra {
            let skip = rule.discard.saturating_sub(s.offset());
            if s.values.len() < skip + 3 {
                return Err(SpectralError::SpectrumTooShort {
                    len: s.values.len(),
                    reason: "Algorithm 3 needs d̄ + 3 values",
                });
            }
            // Full position of local difference j: offset + skip + j + 1 (its centre).
            diffs.push((s.dim - s.offset() - skip, SecondDerivativeRule::second_derivative(&s.values[skip..])));
        }
        let mut all: Vec<f64> = diffs.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        all.sort_by(f64::total_cmp);
        let n = all.len();
        let median = if n % 2 == 1 { all[n / 2] } else { 0.5 * (all[n / 2 - 1] + all[n / 2]) };
        let (mut spikes, mut per_point) = (Vec::new(), Vec::with_capacity(spectra.len()));
        for (below, dd) in &diffs {
            let before = spikes.len();
            let over = dd.iter().enumerate().filter(|(_, &v)| v > rule.threshold * median);
            spikes.extend(over.map(|(i, _)| below - (i + 1)));
            per_point.push(spikes.len() - before);
        }
        Ok(PooledDimensions { median, spikes, per_point })
    }
}
