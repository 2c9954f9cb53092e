//! One interface for every per-point estimator: [`PointwiseLid`].
//!
//! Data estimators ([`DataLid`]: MLE, TwoNN) read the neighbours of each point in a data set;
//! model estimators ([`FlipdLid`], [`NormalBundleLid`]) read a [`ScoreField`]. All answer the
//! same question, "what dimension is there at these points", so the values of one estimator
//! can be set beside another's point by point.

use crate::error::{check_points, Result};
use crate::flipd::Flipd;
use crate::mle::Mle;
use crate::twonn::TwoNn;
use faer::{Mat, MatRef};
use geomem_score::ScoreField;
use geomem_spectral::{GapScale, OrthonormalBasis, SpectrumEstimator, SpectrumParams};

/// A local-intrinsic-dimension estimator evaluated at the rows of a matrix.
pub trait PointwiseLid {
    /// A short name for tables and files (`mle`, `twonn`, `flipd`, `nb`).
    fn name(&self) -> String;
    /// The estimate at every row of `points`.
    ///
    /// # Errors
    /// The estimator's own: invalid points, a field's errors.
    fn lid(&self, points: MatRef<'_, f64>) -> Result<Vec<f64>>;
}

/// Which data-based estimator.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DataEstimator {
    /// Levina–Bickel with `k` neighbours.
    Mle(Mle),
    /// TwoNN on the `n_neighbors` nearest points of each point.
    TwoNn(TwoNn, usize),
}

/// Where a data estimator finds the neighbours of a point.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Neighbourhood {
    /// Among the points themselves, each point excluded from its own neighbours
    /// (scikit-dimension's `dimension_pw_`).
    Itself,
    /// Among the rows of a reference set (the training set, for generated samples).
    Reference(Mat<f64>),
}

/// A data-based pointwise estimator.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLid {
    /// The estimator.
    pub estimator: DataEstimator,
    /// Where the neighbours come from.
    pub neighbourhood: Neighbourhood,
}

impl DataLid {
    /// The estimator on the points themselves.
    pub fn itself(estimator: DataEstimator) -> Self {
        Self { estimator, neighbourhood: Neighbourhood::Itself }
    }
    /// The estimator against a reference set.
    pub fn against(estimator: DataEstimator, reference: Mat<f64>) -> Self {
        Self { estimator, neighbourhood: Neighbourhood::Reference(reference) }
    }
}

impl PointwiseLid for DataLid {
    fn name(&self) -> String {
        match self.estimator {
            DataEstimator::Mle(_) => "mle".into(),
            DataEstimator::TwoNn(..) => "twonn".into(),
        }
    }

    fn lid(&self, points: MatRef<'_, f64>) -> Result<Vec<f64>> {
        match (&self.estimator, &self.neighbourhood) {
            (DataEstimator::Mle(m), Neighbourhood::Itself) => m.pointwise(points),
            (DataEstimator::Mle(m), Neighbourhood::Reference(r)) => m.at(points, r.as_ref()),
            (DataEstimator::TwoNn(t, n), Neighbourhood::Itself) => t.pointwise(points, *n),
            (DataEstimator::TwoNn(t, n), Neighbourhood::Reference(r)) => t.pointwise_at(points, r.as_ref(), *n),
        }
    }
}

/// FLIPD of a score field at a fixed `t0`.
#[derive(Debug, Clone)]
pub struct FlipdLid<F> {
    /// The field.
    pub field: F,
    /// Settings.
    pub flipd: Flipd,
}

impl<F: ScoreField> PointwiseLid for FlipdLid<F> {
    fn name(&self) -> String {
        "flipd".into()
    }
    fn lid(&self, points: MatRef<'_, f64>) -> Result<Vec<f64>> {
        self.flipd.estimate(&self.field, points)
    }
}

/// The Normal Bundle dimension: `d` minus the position of the largest gap of the singular
/// values of the field's Jacobian at time `t` (its own Jacobian or JVPs along the canonical
/// basis), ignoring the first `skip` gaps.
#[derive(Debug, Clone)]
pub struct NormalBundleLid<F> {
    /// The field.
    pub field: F,
    /// The time.
    pub t: f64,
    /// How gaps are measured.
    pub scale: GapScale,
    /// Gaps ignored at the top of the spectrum.
    pub skip: usize,
}

impl<F: ScoreField> PointwiseLid for NormalBundleLid<F> {
    fn name(&self) -> String {
        "nb".into()
    }
    fn lid(&self, points: MatRef<'_, f64>) -> Result<Vec<f64>> {
        check_points("points", points, 1)?;
        let d = self.field.dim();
        let basis = OrthonormalBasis::new(Mat::identity(d, d))?;
        let estimator = SpectrumEstimator::in_basis(SpectrumParams::pointwise(), &basis);
        (0..points.nrows())
            .map(|i| {
                let x: Vec<f64> = points.row(i).iter().copied().collect();
                let s = estimator.estimate(&self.field, &x, self.t)?;
                Ok(s.dimension_from_largest_gap(self.scale, self.skip)? as f64)
            })
            .collect()
    }
}

/// The spread of a set of pointwise estimates (NaN entries counted, then left out).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Number of points.
    pub n: usize,
    /// Number of NaN estimates.
    pub nan: usize,
    /// Mean.
    pub mean: f64,
    /// Standard deviation (`n - 1` in the denominator).
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// 5 %, 25 %, 50 %, 75 %, 95 % quantiles (linear interpolation, numpy's default).
    pub quantiles: [f64; 5],
    /// Maximum.
    pub max: f64,
}

impl Summary {
    /// The summary of `values`.
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_unstable_by(f64::total_cmp);
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        let q = |p: f64| {
            if n == 0 {
                return f64::NAN;
            }
            let h = p * (n - 1) as f64;
            let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
            v[lo] + (h - lo as f64) * (v[hi] - v[lo])
        };
        Self {
            n: values.len(),
            nan: values.len() - n,
            mean,
            std: if n > 1 { var.sqrt() } else { f64::NAN },
            min: v.first().copied().unwrap_or(f64::NAN),
            quantiles: [q(0.05), q(0.25), q(0.5), q(0.75), q(0.95)],
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}
