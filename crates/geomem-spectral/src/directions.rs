//! Perturbation directions: the canonical basis or a random orthonormal basis, and a
//! precomputed [`OrthonormalBasis`] to reuse across calls.
use crate::error::{param, Result};
use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// An orthonormal set of `d` perturbation directions (the columns of a `d × d` matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Directions {
    /// `e_1, …, e_d` (Eq. 5 of seed 001).
    Canonical,
    /// Gaussian directions orthonormalised by QR: the improved Normal Bundle method of
    /// seed 000, Sec. 3.3.1.
    RandomOrthonormal {
        /// Seed of the directions.
        seed: u64,
    },
}

impl Directions {
    /// The `d × d` matrix whose columns are the directions (a QR of a `d × d` Gaussian
    /// matrix for [`Directions::RandomOrthonormal`]: `4d³/3` flops, so build it once with
    /// [`OrthonormalBasis::from_directions`] when many points share it).
    pub fn basis(self, d: usize) -> Mat<f64> {
        match self {
            Self::Canonical => Mat::identity(d, d),
            Self::RandomOrthonormal { seed } => {
                let mut rng = StdRng::seed_from_u64(seed);
                let g = Mat::from_fn(d, d, |_, _| -> f64 { StandardNormal.sample(&mut rng) });
                g.qr().compute_Q()
            }
        }
    }
}

/// `k <= d` orthonormal directions in `R^d`, the columns of a `d × k` matrix, checked once.
#[derive(Debug, Clone, PartialEq)]
pub struct OrthonormalBasis {
    q: Mat<f64>,
}

impl OrthonormalBasis {
    /// Builds the `d × d` basis of `directions`.
    pub fn from_directions(directions: Directions, d: usize) -> Self {
        Self { q: directions.basis(d) }
    }

    /// Takes the columns of `q` (`d × k`), checking `‖QᵀQ - I‖_max <= 1e-10 √d`.
    ///
    /// # Errors
    /// [`crate::SpectralError::InvalidParameter`] for no columns, more columns than rows,
    /// non-finite entries or columns that are not orthonormal.
    pub fn new(q: Mat<f64>) -> Result<Self> {
        let (d, k) = (q.nrows(), q.ncols());
        param("basis columns", k, k >= 1 && k <= d, "need 1 <= k <= d columns")?;
        let finite = (0..k).all(|j| q.col(j).iter().all(|v| v.is_finite()));
        param("basis", "non-finite entry", finite, "entries must be finite")?;
        let g = q.transpose() * q.as_ref();
        let err = (0..k)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| (g[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs())
            .fold(0.0, f64::max);
        param("basis", err, err <= 1e-10 * (d as f64).sqrt(), "columns must be orthonormal")?;
        Ok(Self { q })
    }

    /// The ambient dimension `d`.
    pub fn dim(&self) -> usize {
        self.q.nrows()
    }

    /// The number of directions `k`.
    pub fn len(&self) -> usize {
        self.q.ncols()
    }

    /// Always false: a basis has at least one direction.
    pub fn is_empty(&self) -> bool {
        self.q.ncols() == 0
    }

    /// The `d × k` matrix of directions.
    pub fn as_mat(&self) -> MatRef<'_, f64> {
        self.q.as_ref()
    }
}
