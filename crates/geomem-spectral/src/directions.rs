//! Perturbation directions: the canonical basis or a random orthonormal basis.
use faer::Mat;
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
    /// The `d × d` matrix whose columns are the directions.
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
