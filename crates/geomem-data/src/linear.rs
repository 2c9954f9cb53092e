//! The linear manifold model `x_0 = F z` of seed 001, Sec. 5 and Supp. C: `m` latent
//! Gaussian coordinates split into blocks of equal variance, placed on coordinate axes or
//! rotated by a random orthogonal matrix.

use crate::error::{param, DataError, Result};
use crate::random::{gaussian_matrix, haar_orthogonal};
use faer::{Mat, MatRef};

/// A block of `dim` latent directions with variance `variance`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// Number of directions.
    pub dim: usize,
    /// Variance `σ²` along each of them.
    pub variance: f64,
}

/// How the manifold sits in the ambient space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Embedding {
    /// Block `k` occupies consecutive coordinate axes, starting at axis 0.
    Aligned,
    /// The aligned manifold rotated by a Haar-random orthogonal matrix drawn from `seed`.
    RandomRotation {
        /// Seed of the rotation.
        seed: u64,
    },
}

/// The linear manifold `x_0 = F z`, `z ~ N(0, I_m)`, with `F = Q diag(σ_k)` restricted to its
/// first `m` columns (`Q = I` for [`Embedding::Aligned`]).
#[derive(Debug, Clone)]
pub struct LinearManifold {
    d: usize,
    blocks: Vec<Block>,
    basis: Mat<f64>,
    factor: Mat<f64>,
}

impl LinearManifold {
    /// A manifold of ambient dimension `d` with the given blocks.
    ///
    /// Example (seed 001, Fig. 4): `d = 30`, blocks `(2, 1.0)` and `(5, 0.3)`.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for `d = 0` or an empty block,
    /// [`DataError::InvalidVariance`] for a negative or non-finite variance,
    /// [`DataError::ManifoldTooLarge`] when the blocks add up to more than `d`.
    pub fn new(d: usize, blocks: &[Block], embedding: Embedding) -> Result<Self> {
        param("d", d, d >= 1, "ambient dimension must be >= 1")?;
        for (index, b) in blocks.iter().enumerate() {
            if !(b.variance.is_finite() && b.variance >= 0.0) {
                return Err(DataError::InvalidVariance { index, value: b.variance });
            }
            param("block dim", b.dim, b.dim >= 1, "each block needs >= 1 direction")?;
        }
        let m: usize = blocks.iter().map(|b| b.dim).sum();
        if m > d {
            return Err(DataError::ManifoldTooLarge { m, d });
        }
        let basis = match embedding {
            Embedding::Aligned => Mat::identity(d, d),
            Embedding::RandomRotation { seed } => haar_orthogonal(d, seed),
        };
        let sd: Vec<f64> = blocks.iter().flat_map(|b| std::iter::repeat_n(b.variance.sqrt(), b.dim)).collect();
        let factor = Mat::from_fn(d, m, |i, k| basis[(i, k)] * sd[k]);
        Ok(Self { d, blocks: blocks.to_vec(), basis, factor })
    }

    /// Ambient dimension `d`.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Manifold dimension `m`.
    pub fn m(&self) -> usize {
        self.factor.ncols()
    }
    /// The blocks.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    /// The `d × m` factor `F` (covariance `F Fᵀ`).
    pub fn factor(&self) -> MatRef<'_, f64> {
        self.factor.as_ref()
    }
    /// The orthogonal basis `Q` (`d × d`): its first `m` columns span the manifold.
    pub fn basis(&self) -> MatRef<'_, f64> {
        self.basis.as_ref()
    }
    /// Variances `σ_i²` along the `d` basis directions (zeros past `m`): the input of the REM
    /// theory (Supp. C works in this basis).
    pub fn principal_variances(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.blocks.iter().flat_map(|b| std::iter::repeat_n(b.variance, b.dim)).collect();
        v.resize(self.d, 0.0);
        v
    }
    /// Positions of the theoretical gaps in the sorted spectrum: after the `d - m` normal
    /// directions, then after each block but the last (sorted by decreasing variance):
    /// `d - m`, `d - m + m_1`, ... (1-based counts of large singular values).
    pub fn gap_positions(&self) -> Vec<usize> {
        let mut blocks = self.blocks.clone();
        blocks.sort_by(|a, b| a.variance.total_cmp(&b.variance));
        let mut pos = vec![self.d - self.m()];
        let mut acc = self.d - self.m();
        for b in blocks.iter().take(blocks.len().saturating_sub(1)) {
            acc += b.dim;
            pos.push(acc);
        }
        pos
    }
    /// `n` samples as rows (`n × d`), from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Mat<f64> {
        let z = gaussian_matrix(n, self.m(), seed);
        z.as_ref() * self.factor.transpose()
    }
}
