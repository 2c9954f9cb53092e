//! A score function of one's own as a [`ScoreField`]: a closure of one point or of a batch,
//! with the precision it computes in stated at construction.
//!
//! Finite-difference estimators choose their steps from [`ScoreField::precision`], so a
//! closure that computes in `f32` must say so ([`Precision::F32`]) or its derivatives would
//! be differenced at `f64` steps, far below its rounding floor. There is no default: both
//! constructors take the precision.

use crate::error::{Result, ScoreError};
use crate::field::{Precision, ScoreField};
use faer::{MatMut, MatRef};

/// A [`ScoreField`] from a closure `f(x, t, out)` of **one point**: `x` and `out` have
/// length `d`; the field calls it once per row of a batch.
///
/// ```
/// use geomem_score::{PointFn, Precision, ScoreFieldExt};
/// // The score of N(0, 2 I) in R^3: s(x, t) = -x / (2 + t).
/// let f = PointFn::new(3, Precision::F64, |x: &[f64], t: f64, out: &mut [f64]| {
///     for (o, xi) in out.iter_mut().zip(x) {
///         *o = -xi / (2.0 + t);
///     }
/// })
/// .unwrap();
/// assert_eq!(f.score(&[1.0, 0.0, 0.0], 2.0).unwrap()[0], -0.25);
/// assert!(f.score(&[1.0, 0.0], 2.0).is_err()); // checked before the closure runs
/// ```
#[derive(Clone)]
pub struct PointFn<F> {
    d: usize,
    precision: Precision,
    f: F,
}

/// A [`ScoreField`] from a closure `f(x, t, out)` of **a batch**: `x` and `out` are `n × d`
/// matrices with one point per row (the form to use when the closure can do better on a
/// batch than point by point: one matrix product, one call to a network).
///
/// ```
/// use faer::{MatMut, MatRef};
/// use geomem_score::{BatchFn, Precision, ScoreFieldExt};
/// let f = BatchFn::new(2, Precision::F32, |x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>| {
///     for i in 0..x.nrows() {
///         for j in 0..x.ncols() {
///             out[(i, j)] = -x[(i, j)] / (1.0 + t);
///         }
///     }
/// })
/// .unwrap();
/// assert_eq!(f.score(&[1.0, 2.0], 1.0).unwrap(), vec![-0.5, -1.0]);
/// ```
#[derive(Clone)]
pub struct BatchFn<F> {
    d: usize,
    precision: Precision,
    f: F,
}

fn check_dimension(d: usize) -> Result<()> {
    if d == 0 {
        return Err(ScoreError::InvalidParameter {
            name: "d",
            value: "0".into(),
            reason: "a score field needs at least one dimension",
        });
    }
    Ok(())
}

impl<F: Fn(&[f64], f64, &mut [f64])> PointFn<F> {
    /// The field of `f` in dimension `d`, computing in `precision`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidParameter`] for `d = 0`.
    pub fn new(d: usize, precision: Precision, f: F) -> Result<Self> {
        check_dimension(d)?;
        Ok(Self { d, precision, f })
    }
}

impl<F: Fn(MatRef<'_, f64>, f64, MatMut<'_, f64>)> BatchFn<F> {
    /// The field of `f` in dimension `d`, computing in `precision`.
    ///
    /// # Errors
    /// [`ScoreError::InvalidParameter`] for `d = 0`.
    pub fn new(d: usize, precision: Precision, f: F) -> Result<Self> {
        check_dimension(d)?;
        Ok(Self { d, precision, f })
    }
}

impl<F: Fn(&[f64], f64, &mut [f64])> ScoreField for PointFn<F> {
    fn dim(&self) -> usize {
        self.d
    }
    fn precision(&self) -> Precision {
        self.precision
    }
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
        let (mut xi, mut si) = (vec![0.0; self.d], vec![0.0; self.d]);
        for i in 0..x.nrows() {
            xi.iter_mut().zip(x.row(i).iter()).for_each(|(a, b)| *a = *b);
            (self.f)(&xi, t, &mut si);
            out.as_mut().row_mut(i).iter_mut().zip(&si).for_each(|(o, s)| *o = *s);
        }
        Ok(())
    }
}

impl<F: Fn(MatRef<'_, f64>, f64, MatMut<'_, f64>)> ScoreField for BatchFn<F> {
    fn dim(&self) -> usize {
        self.d
    }
    fn precision(&self) -> Precision {
        self.precision
    }
    fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
        (self.f)(x, t, out);
        Ok(())
    }
}

impl<F> std::fmt::Debug for PointFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointFn").field("d", &self.d).field("precision", &self.precision).finish_non_exhaustive()
    }
}

impl<F> std::fmt::Debug for BatchFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchFn").field("d", &self.d).field("precision", &self.precision).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScoreFieldExt;
    use faer::Mat;

    #[test]
    fn point_and_batch_forms_agree_and_keep_their_precision() {
        let p = PointFn::new(3, Precision::F32, |x: &[f64], t: f64, o: &mut [f64]| {
            o.iter_mut().zip(x).enumerate().for_each(|(j, (o, x))| *o = -x / (j as f64 + 1.0 + t));
        })
        .unwrap();
        let b = BatchFn::new(3, Precision::F64, |x: MatRef<'_, f64>, t: f64, mut o: MatMut<'_, f64>| {
            for i in 0..x.nrows() {
                for j in 0..3 {
                    o[(i, j)] = -x[(i, j)] / (j as f64 + 1.0 + t);
                }
            }
        })
        .unwrap();
        let x = Mat::from_fn(4, 3, |i, j| (i as f64 - 1.5) * (j as f64 + 0.5));
        assert_eq!(p.score_batch(x.as_ref(), 0.5).unwrap(), b.score_batch(x.as_ref(), 0.5).unwrap());
        assert_eq!((p.precision(), b.precision()), (Precision::F32, Precision::F64));
        assert!(PointFn::new(0, Precision::F64, |_: &[f64], _: f64, _: &mut [f64]| {}).is_err());
        assert!(p.score(&[f64::NAN, 0.0, 0.0], 1.0).is_err());
    }
}
