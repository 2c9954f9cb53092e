//! TwoNN (Facco, d'Errico, Rodriguez and Laio 2017), as scikit-dimension 0.5 defines it
//! (`skdim.id.TwoNN`).
//!
//! With `r1, r2` the distances of each point to its nearest and second-nearest other point,
//! `μ = r2/r1` follows a Pareto law `F(μ) = 1 - μ^{-m}`. Points with `r1 = 0` (duplicates)
//! are dropped; of the `N` remaining ratios the largest `discard_fraction` are discarded,
//! keeping `n = ⌊N (1 - discard_fraction)⌋` (default 0.1), and with the sorted kept ratios
//! `μ_(1..n)` and the empirical CDF `F_i = i/N`:
//!
//! ```text
//! linear (default): m̂ = Σ x_i y_i / Σ x_i²,  x_i = ln μ_(i),  y_i = -ln(1 - F_i)
//!                   (least squares through the origin)
//! mle:              m̂ = (n - 1) / (Σ_i ln μ_(i) + (N - n) ln μ_(n))
//! ```
//!
//! The pointwise estimate of a point (scikit-dimension's `fit_pw`, default
//! `n_neighbors = 100`) is the global estimate of its `n_neighbors` nearest other points,
//! the point itself not included. Every nearest-neighbour search, the neighbourhoods' own
//! included, is [`mod@crate::knn`]'s exact one (scikit-dimension measures the neighbourhoods by
//! a Gram matrix, `scikit-learn`'s `euclidean_distances`: the same numbers to about 1e-14).

use crate::error::{param, LidError, Result};
use crate::knn::{knn, knn_self, Neighbours};
use faer::{Mat, MatRef};
use rayon::prelude::*;

/// How the Pareto exponent is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TwoNnMethod {
    /// Least squares through the origin of `-ln(1 - F)` on `ln μ` (Facco et al.; default).
    #[default]
    Linear,
    /// The closed-form maximum-likelihood exponent, discarded ratios censored.
    Mle,
}

/// TwoNN settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct TwoNn {
    /// Fraction of the largest ratios discarded (default 0.1).
    pub discard_fraction: f64,
    /// The fit (default [`TwoNnMethod::Linear`]).
    pub method: TwoNnMethod,
}

impl Default for TwoNn {
    fn default() -> Self {
        Self { discard_fraction: 0.1, method: TwoNnMethod::Linear }
    }
}

/// A global TwoNN fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TwoNnFit {
    /// The estimated dimension.
    pub dimension: f64,
    /// `ln μ` of the kept ratios, ascending.
    pub x: Vec<f64>,
    /// `-ln(1 - F)` of the kept ratios.
    pub y: Vec<f64>,
    /// Points dropped for a zero nearest-neighbour distance.
    pub duplicates: usize,
}

impl TwoNn {
    /// With another discard fraction and method.
    ///
    /// # Errors
    /// [`LidError::InvalidParameter`] unless `0 <= discard_fraction < 1`.
    pub fn new(discard_fraction: f64, method: TwoNnMethod) -> Result<Self> {
        let s = Self { discard_fraction, method };
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<()> {
        let f = self.discard_fraction;
        param("discard_fraction", f, (0.0..1.0).contains(&f), "must lie in [0, 1)")
    }

    /// The fit from the distances `(r1, r2)` of every point to its two nearest others.
    ///
    /// # Errors
    /// [`LidError::Data`] when fewer than two ratios are left to fit.
    pub fn from_distances(&self, r1: &[f64], r2: &[f64]) -> Result<TwoNnFit> {
        self.check()?;
        let mut mu: Vec<f64> = r1.iter().zip(r2).filter(|(a, _)| **a > 0.0).map(|(a, b)| b / a).collect();
        let duplicates = r1.len() - mu.len();
        let n_all = mu.len();
        let keep = (n_all as f64 * (1.0 - self.discard_fraction)).floor() as usize;
        if keep < 2 {
            return Err(LidError::Data {
                what: "points",
                reason: format!("{keep} ratios left after dropping {duplicates} duplicates and discarding"),
            });
        }
        if keep == n_all && self.method == TwoNnMethod::Linear {
            return Err(LidError::InvalidParameter {
                name: "discard_fraction",
                value: format!("{}", self.discard_fraction),
                reason: "keeping every ratio puts F = 1 on the last one (-ln 0) in the linear fit; discard some or use the mle method",
            });
        }
        mu.sort_unstable_by(f64::total_cmp);
        mu.truncate(keep);
        let x: Vec<f64> = mu.iter().map(|m| m.ln()).collect();
        let y: Vec<f64> = (1..=keep).map(|i| -(1.0 - i as f64 / n_all as f64).ln()).collect();
        let dimension = match self.method {
            TwoNnMethod::Linear => {
                let sxy: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
                sxy / x.iter().map(|a| a * a).sum::<f64>()
            }
            TwoNnMethod::Mle => (keep as f64 - 1.0) / (x.iter().sum::<f64>() + (n_all - keep) as f64 * x[keep - 1]),
        };
        Ok(TwoNnFit { dimension, x, y, duplicates })
    }

    /// The global estimate of `data` (`skdim.id.TwoNN().fit(data)`).
    ///
    /// # Errors
    /// As [`knn_self`] (at least three points), and [`TwoNn::from_distances`].
    pub fn global(&self, data: MatRef<'_, f64>) -> Result<TwoNnFit> {
        self.check()?;
        let nb = knn_self(data, 2)?;
        let (r1, r2): (Vec<f64>, Vec<f64>) = (0..nb.len()).map(|i| (nb.distances(i)[0], nb.distances(i)[1])).unzip();
        self.from_distances(&r1, &r2)
    }

    /// The pointwise estimate at every point: the global estimate of its `n_neighbors`
    /// nearest other points (`skdim.id.TwoNN().fit_pw(data, n_neighbors=…)`). A neighbourhood
    /// too degenerate to fit (fewer than two distinct ratios) gives NaN at that point.
    ///
    /// # Errors
    /// As [`knn_self`], and [`LidError::InvalidParameter`] for `n_neighbors < 3`.
    pub fn pointwise(&self, data: MatRef<'_, f64>, n_neighbors: usize) -> Result<Vec<f64>> {
        self.check()?;
        param("n_neighbors", n_neighbors, n_neighbors >= 3, "a neighbourhood needs at least 3 points")?;
        Ok(self.on_neighbourhoods(data, &knn_self(data, n_neighbors)?))
    }

    /// As [`TwoNn::pointwise`] at points outside the data: the global estimate of the
    /// `n_neighbors` nearest points of `reference` to each query.
    ///
    /// # Errors
    /// As [`knn`], and [`LidError::InvalidParameter`] for `n_neighbors < 3`.
    pub fn pointwise_at(
        &self,
        queries: MatRef<'_, f64>,
        reference: MatRef<'_, f64>,
        n_neighbors: usize,
    ) -> Result<Vec<f64>> {
        self.check()?;
        param("n_neighbors", n_neighbors, n_neighbors >= 3, "a neighbourhood needs at least 3 points")?;
        Ok(self.on_neighbourhoods(reference, &knn(queries, reference, n_neighbors)?))
    }

    /// The global fit of each neighbourhood: the two nearest of every member among the
    /// others come from [`knn_self`] on the neighbourhood's points.
    fn on_neighbourhoods(&self, data: MatRef<'_, f64>, nb: &Neighbours) -> Vec<f64> {
        // Points as contiguous columns, so gathering a neighbourhood reads memory in order.
        let dt = data.transpose().to_owned();
        (0..nb.len())
            .into_par_iter()
            .map(|i| {
                let members = nb.indices(i);
                let hood = Mat::from_fn(data.ncols(), nb.k(), |l, a| dt[(l, members[a])]);
                let Ok(two) = knn_self(hood.transpose(), 2) else { return f64::NAN };
                let (r1, r2): (Vec<f64>, Vec<f64>) =
                    (0..two.len()).map(|m| (two.distances(m)[0], two.distances(m)[1])).unzip();
                self.from_distances(&r1, &r2).map_or(f64::NAN, |f| f.dimension)
            })
            .collect()
    }
}
