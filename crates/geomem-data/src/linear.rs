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
        Ok(Self::with_basis(blocks, basis))
    }

    /// Blocks (already checked) on the first columns of an orthogonal `basis`.
    fn with_basis(blocks: &[Block], basis: Mat<f64>) -> Self {
        let sd: Vec<f64> = blocks.iter().flat_map(|b| std::iter::repeat_n(b.variance.sqrt(), b.dim)).collect();
        let factor = Mat::from_fn(basis.nrows(), sd.len(), |i, k| basis[(i, k)] * sd[k]);
        Self { d: basis.nrows(), blocks: blocks.to_vec(), basis, factor }
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

/// A linear manifold with isotropic noise off it, optionally normalised onto a sphere: the
/// data of the authors' synthetic code (`synthetic_score_common.py` of
/// `beatriceachilli/losing-dimensions`: standard deviations 1 and 0.3 on two blocks, 0.01
/// on the remaining axes, every sample divided by its norm), which the printed papers do not
/// describe.
///
/// Sampling draws `x = F z + ε`, `ε ~ N(0, off_variance)` on the `d - m` normal axes of the
/// basis only (the manifold axes get no noise, as in the authors' code), then rescales every
/// row to norm `radius` when a radius is set.
#[derive(Debug, Clone)]
pub struct NoisyLinear {
    manifold: LinearManifold,
    off_variance: f64,
    radius: Option<f64>,
}

impl NoisyLinear {
    /// `manifold` plus variance `off_variance` on its normal axes, rows rescaled to norm
    /// `radius` when `Some`.
    ///
    /// # Errors
    /// [`DataError::InvalidVariance`] for a negative or non-finite `off_variance`,
    /// [`DataError::InvalidParameter`] for a radius that is not finite and `> 0`.
    pub fn new(manifold: LinearManifold, off_variance: f64, radius: Option<f64>) -> Result<Self> {
        if !(off_variance.is_finite() && off_variance >= 0.0) {
            return Err(DataError::InvalidVariance { index: manifold.blocks().len(), value: off_variance });
        }
        if let Some(r) = radius {
            param("radius", r, r.is_finite() && r > 0.0, "must be finite and > 0")?;
        }
        Ok(Self { manifold, off_variance, radius })
    }

    /// The authors' variant: `d` axes, `m1` of standard deviation 1 and `m2` of 0.3
    /// (variances 1 and 0.09), 0.01 on the rest (variance 1e-4), aligned with the coordinate
    /// axes, every sample on the unit sphere.
    ///
    /// # Errors
    /// As [`LinearManifold::new`].
    pub fn authors(d: usize, m1: usize, m2: usize) -> Result<Self> {
        let blocks = [Block { dim: m1, variance: 1.0 }, Block { dim: m2, variance: 0.09 }];
        Self::new(LinearManifold::new(d, &blocks, Embedding::Aligned)?, 1e-4, Some(1.0))
    }

    /// The same data with every manifold variance replaced by their dimension-weighted mean
    /// (same total variance, same `m`, noise and sphere): the isotropic control.
    ///
    /// # Errors
    /// None in practice (the blocks were checked); kept for symmetry with [`Self::new`].
    pub fn isotropic_control(&self) -> Result<Self> {
        let lm = &self.manifold;
        let mean = lm.principal_variances().iter().take(lm.m()).sum::<f64>() / lm.m().max(1) as f64;
        let blocks: Vec<Block> = lm.blocks().iter().map(|b| Block { dim: b.dim, variance: mean }).collect();
        Self::new(LinearManifold::with_basis(&blocks, lm.basis.clone()), self.off_variance, self.radius)
    }

    /// The manifold before noise and normalisation.
    pub fn manifold(&self) -> &LinearManifold {
        &self.manifold
    }
    /// Variance on the normal axes.
    pub fn off_variance(&self) -> f64 {
        self.off_variance
    }
    /// Radius of the sphere, if the samples are normalised.
    pub fn radius(&self) -> Option<f64> {
        self.radius
    }
    /// Variances along the `d` basis axes before normalisation: the manifold's, then
    /// `off_variance` (the `scales²` the authors' theory panel uses).
    pub fn principal_variances(&self) -> Vec<f64> {
        let mut v = self.manifold.principal_variances();
        for x in v.iter_mut().skip(self.manifold.m()) {
            *x = self.off_variance;
        }
        v
    }
    /// `n` samples as rows (`n × d`), from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Mat<f64> {
        let (d, m) = (self.manifold.d(), self.manifold.m());
        let mut x = self.manifold.sample(n, seed);
        if self.off_variance > 0.0 && d > m {
            let e = gaussian_matrix(n, d - m, seed ^ 0x006e_6f69_7365);
            let normal = self.manifold.basis.subcols(m, d - m);
            x += (e * normal.transpose()) * self.off_variance.sqrt();
        }
        if let Some(r) = self.radius {
            for i in 0..n {
                let norm = x.row(i).norm_l2();
                if norm > 0.0 {
                    for j in 0..d {
                        x[(i, j)] *= r / norm;
                    }
                }
            }
        }
        x
    }
}
