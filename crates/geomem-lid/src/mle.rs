//! The maximum-likelihood estimator of Levina and Bickel (2005), with scikit-dimension 0.5's
//! conventions (`skdim.id.MLE`).
//!
//! At a point with neighbour distances `R_1 <= … <= R_k` (the point itself excluded):
//!
//! ```text
//! m̂(x) = (k - 1) / Σ_{j=1..k} ln(R_k / R_j)        (unbiased = false, the default)
//! m̂(x) = (k - 2) / Σ_{j=1..k} ln(R_k / R_j)        (unbiased = true)
//! ```
//!
//! The sum runs over all `k` neighbours (the `j = k` term is zero), exactly as
//! `skdim.id.MLE()._maxLikDimEstFromR_haro_approx` with `dnoise = None`. Defaults are
//! scikit-dimension's: `k = 20` (`MLE._N_NEIGHBORS`) and the global value combined as
//! `comb = "mle"`, the harmonic mean `1 / mean(1/m̂)` of MacKay and Ghahramani (2005)
//! ([`Combine::Harmonic`]); `"mean"` and `"median"` are [`Combine::Mean`] and
//! [`Combine::Median`]. One difference: where the `k` neighbours all coincide with the point
//! (`R_k = 0`), scikit-dimension returns NaN and geomem returns 0 (the point is a
//! zero-dimensional atom of the data); where only some do (`R_j = 0 < R_k`), both return 0.

use crate::error::{param, Result};
use crate::knn::{knn, knn_self, Neighbours};
use faer::MatRef;

/// How pointwise estimates combine into one global value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Combine {
    /// Arithmetic mean (`comb = "mean"`).
    Mean,
    /// `1 / mean(1 / m̂)`, MacKay and Ghahramani's form (`comb = "mle"`, scikit-dimension's
    /// default).
    #[default]
    Harmonic,
    /// Median (`comb = "median"`, numpy's: the mean of the two middle values when even).
    Median,
}

impl Combine {
    /// The combination of `values`; NaN for an empty slice.
    pub fn apply(self, values: &[f64]) -> f64 {
        if values.is_empty() {
            return f64::NAN;
        }
        let n = values.len() as f64;
        match self {
            Self::Mean => values.iter().sum::<f64>() / n,
            Self::Harmonic => n / values.iter().map(|v| 1.0 / v).sum::<f64>(),
            Self::Median => median(values),
        }
    }
}

/// numpy's median (mean of the two middle values of an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Levina–Bickel MLE settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Mle {
    /// Neighbours per point (scikit-dimension: 20).
    pub k: usize,
    /// `k - 2` instead of `k - 1` in the numerator.
    pub unbiased: bool,
}

impl Default for Mle {
    fn default() -> Self {
        Self { k: 20, unbiased: false }
    }
}

impl Mle {
    /// With `k` neighbours.
    ///
    /// # Errors
    /// [`crate::LidError::InvalidParameter`] for `k < 2` (`k < 3` when unbiased).
    pub fn new(k: usize, unbiased: bool) -> Result<Self> {
        let s = Self { k, unbiased };
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<()> {
        let min = if self.unbiased { 3 } else { 2 };
        param("k", self.k, self.k >= min, "MLE needs k >= 2 (k >= 3 when unbiased)")
    }

    /// The estimate from one point's ascending neighbour distances.
    ///
    /// # Formula
    /// `(k - 1) / Σ_j ln(R_k / R_j)` (Levina and Bickel 2005, Eq. 8 without the `j = k` term
    /// dropped, as scikit-dimension sums it).
    pub fn from_distances(&self, r: &[f64]) -> f64 {
        let k = r.len();
        let rk = r[k - 1];
        if rk <= 0.0 || r[0] <= 0.0 {
            return 0.0;
        }
        let kfac = if self.unbiased { k as f64 - 2.0 } else { k as f64 - 1.0 };
        kfac / r.iter().map(|&rj| (rk / rj).ln()).sum::<f64>()
    }

    /// Pointwise estimates from precomputed neighbours (the first `k` of each row).
    ///
    /// # Errors
    /// [`crate::LidError::InvalidParameter`] when the neighbours hold fewer than `k`.
    pub fn from_neighbours(&self, nb: &Neighbours) -> Result<Vec<f64>> {
        self.check()?;
        param("k", self.k, self.k <= nb.k(), "the neighbour lists are shorter than k")?;
        Ok((0..nb.len()).map(|i| self.from_distances(&nb.distances(i)[..self.k])).collect())
    }

    /// The pointwise estimate at every point of `data` from its `k` nearest other points
    /// (`skdim.id.MLE().fit(data, n_neighbors=k).dimension_pw_`).
    ///
    /// # Errors
    /// As [`knn_self`], and `k >= data.nrows()`.
    pub fn pointwise(&self, data: MatRef<'_, f64>) -> Result<Vec<f64>> {
        self.check()?;
        self.from_neighbours(&knn_self(data, self.k)?)
    }

    /// The estimate at each query from its `k` nearest points of `reference` (a generated
    /// sample against the training set).
    ///
    /// # Errors
    /// As [`knn`].
    pub fn at(&self, queries: MatRef<'_, f64>, reference: MatRef<'_, f64>) -> Result<Vec<f64>> {
        self.check()?;
        self.from_neighbours(&knn(queries, reference, self.k)?)
    }

    /// The global estimate of `data` (`skdim.id.MLE().fit(data, n_neighbors=k, comb=…)`).
    ///
    /// # Errors
    /// As [`Mle::pointwise`].
    pub fn global(&self, data: MatRef<'_, f64>, comb: Combine) -> Result<f64> {
        Ok(comb.apply(&self.pointwise(data)?))
    }
}
