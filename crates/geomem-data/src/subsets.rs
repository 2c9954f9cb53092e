//! Nested subsets: one seeded permutation of a dataset, whose prefixes are the subsets of
//! every size, so a sweep over `N` reuses the same points (`S_250 ⊂ S_500 ⊂ …`).
use crate::error::{DataError, Result};
use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A seeded order of the rows of a dataset.
#[derive(Debug, Clone)]
pub struct NestedSubsets {
    order: Vec<usize>,
}

impl NestedSubsets {
    /// A random order of `total` rows from `seed`.
    pub fn new(total: usize, seed: u64) -> Self {
        let mut order: Vec<usize> = (0..total).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        Self { order }
    }
    /// The row indices of the subset of size `n`: the first `n` of the order.
    ///
    /// # Errors
    /// [`DataError::SubsetTooLarge`] when `n` exceeds the dataset.
    pub fn indices(&self, n: usize) -> Result<&[usize]> {
        self.order.get(..n).ok_or(DataError::SubsetTooLarge { requested: n, available: self.order.len() })
    }
    /// The subset of size `n` of `data` (`total × d`) as a new matrix.
    ///
    /// # Errors
    /// [`DataError::SubsetTooLarge`], or [`DataError::InvalidParameter`] when `data` does not
    /// have `total` rows.
    pub fn subset(&self, data: MatRef<'_, f64>, n: usize) -> Result<Mat<f64>> {
        crate::error::param(
            "data rows",
            data.nrows(),
            data.nrows() == self.order.len(),
            "must equal the size the subsets were drawn for",
        )?;
        let idx = self.indices(n)?;
        Ok(Mat::from_fn(n, data.ncols(), |i, j| data[(idx[i], j)]))
    }
}

/// Nested training subsets plus a held-out split, from one seeded permutation: the last
/// `held_out` rows of the order are held out, training subsets are prefixes of the rest
/// (the authors' protocol: every smaller training set is contained in every larger one,
/// and no size ever sees a held-out point).
#[derive(Debug, Clone)]
pub struct NestedSplit {
    order: Vec<usize>,
    held_out: usize,
}

impl NestedSplit {
    /// Orders `total` rows from `seed` and holds out `held_out` of them.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] when `held_out >= total` (no training point left).
    pub fn new(total: usize, held_out: usize, seed: u64) -> Result<Self> {
        crate::error::param("held_out", held_out, held_out < total, "must leave at least one training point")?;
        Ok(Self { order: NestedSubsets::new(total, seed).order, held_out })
    }
    /// The largest training size.
    pub fn max_train(&self) -> usize {
        self.order.len() - self.held_out
    }
    /// Row indices of the training subset of size `n` (a prefix of the order).
    ///
    /// # Errors
    /// [`DataError::SubsetTooLarge`] when `n` exceeds [`NestedSplit::max_train`].
    pub fn train(&self, n: usize) -> Result<&[usize]> {
        if n > self.max_train() {
            return Err(DataError::SubsetTooLarge { requested: n, available: self.max_train() });
        }
        Ok(&self.order[..n])
    }
    /// Row indices of the held-out points.
    pub fn held_out(&self) -> &[usize] {
        &self.order[self.max_train()..]
    }
}
