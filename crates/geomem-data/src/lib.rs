//! Data for geometric-memorization experiments: manifold models, seeded sampling, nested
//! subsets and `.npy`/CSV input-output. Every sampler takes a seed; the same seed gives the
//! same numbers. Points are the rows of a `faer::Mat<f64>`.
//!
//! | model | definition | source |
//! |---|---|---|
//! | [`LinearManifold`] | `x = Q diag(σ) z`, blocks of (dimension, variance) | seed 001, Sec. 5, Supp. C |
//! | [`HiddenManifold`] | `x = φ(F z)`, `F_ij ~ N(0, σ²/m)` | seed 000, Sec. 3.1 |
//! | [`VonMisesCircle`] | angle `~ VM(μ, κ)` on a circle | seed 004 (Ross et al.) |
//! | [`ImageSet`] | UCI digits (embedded), MNIST/Fashion-MNIST (IDX), CIFAR-10 (binary) | seed 000, Sec. 4 |
//!
//! ```
//! use geomem_data::{Block, Embedding, LinearManifold, NestedSubsets};
//! let lm = LinearManifold::new(30, &[Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }], Embedding::Aligned).unwrap();
//! let data = lm.sample(1000, 0);
//! let subsets = NestedSubsets::new(1000, 1);
//! let s250 = subsets.subset(data.as_ref(), 250).unwrap();
//! assert_eq!((s250.nrows(), s250.ncols()), (250, 30));
//! assert_eq!(lm.gap_positions(), vec![23, 28]);
//! ```

mod digits;
mod error;
mod hidden;
mod images;
mod io;
mod linear;
mod memory;
mod npy;
mod random;
mod subsets;
mod von_mises;

pub use digits::{digits, Digits};
pub use error::{DataError, Result};
pub use hidden::{add_noise, project_to_sphere, Activation, HiddenManifold};
pub use images::{
    read_cifar10, read_fashion_mnist, read_idx_image_bytes, read_idx_images, read_idx_labels, read_mnist, ImageSet,
    Split, FASHION_MNIST_DIR,
};
pub use io::{parse_csv, parse_npy, read_csv, read_npy, read_points, write_csv, write_npy, PointsFormat};
pub use linear::{Block, Embedding, LinearManifold, NoisyLinear};
pub use memory::{check_memory, matrix_bytes, physical_memory};
pub use random::{gaussian_matrix, haar_orthogonal};
pub use subsets::{NestedSplit, NestedSubsets};
pub use von_mises::VonMisesCircle;
