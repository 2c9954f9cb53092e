//! Jacobian spectra of score fields and the local intrinsic dimension read from them.
//!
//! Works on any [`geomem_score::ScoreField`] and hands it whole batches of points (or, for
//! the matrix-free method, blocks of Jacobian-vector and vector-Jacobian products).
//!
//! | item | method | source |
//! |---|---|---|
//! | [`spectrum`], [`SpectrumParams`], [`SpectrumEstimator`] | the one entry point: finite differences `[s(x + h q_j) - s(x)]/h` (canonical or random orthonormal `q_j`), the field's own Jacobian, the Normal Bundle, or matrix-free | seed 001 Eq. 5; improved NB, seed 000 Sec. 3.3.1 |
//! | [`Method::NormalBundle`], [`normal_bundle_spectrum`] | SVD of `K` scores at noisy points (Alg. 1) or of `K` central differences (Alg. 2) | seed 001 Supp. B.1 |
//! | [`Method::MatrixFree`], [`MatrixFreeParams`] | leading singular values of `I + tJ` or `tJ` from `O(k)` products, with error bounds | Halko, Martinsson & Tropp 2011 |
//! | [`JacobianSpectrum`] | the result, whole or one end, with the readings below | — |
//! | [`Spectrum`] | sorted, normalised spectra; gaps `s_k - s_{k+1}` | seed 001 Eq. 7 |
//! | [`authors_spectrum`] | the authors' synthetic procedure (`K = d` unit Haar directions) and the mean score's share of its top value | their `analyze_spectrum.py` |
//! | [`SecondDerivativeRule`] | first `|s''| > c · median` after `d̄` values | seed 001 Alg. 3 |
//! | [`block_stiffness`], [`block_weights_in_top`], [`block_weights_of_values`], [`stiffening`] | which variance block a field loses, from its Jacobian | seed 001 Fig. 15 |
//! | [`signed_spectrum`], [`sign_split`] | eigenvalues of `(J + Jᵀ)/2` by decreasing `|λ|`: attractive or repulsive directions on each side of a gap | — |
//! | [`marked_gaps`], [`intervals_where`], [`OPEN_LOG_GAP`] | gap analysis of sweeps (the figures' conventions) | — |
//!
//! ```
//! use geomem_score::GaussianScore;
//! use geomem_spectral::{spectrum, GapScale, SpectrumParams};
//! let var: Vec<f64> = [vec![1.0; 3], vec![0.0; 7]].concat();
//! let field = GaussianScore::from_variances(&var).unwrap();
//! let s = spectrum(&field, &[0.0; 10], 0.01, &SpectrumParams::improved_normal_bundle(1)).unwrap();
//! assert_eq!(s.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), 3);
//! ```

mod authors;
mod dimension;
mod directions;
mod error;
mod estimator;
mod gaps;
mod jacobian;
mod jacobian_spectrum;
mod matrix_free;
mod normal_bundle;
mod signs;
mod spectrum;
mod subspaces;

pub use authors::{authors_spectrum, AuthorsSpectrum};
pub use dimension::{soft_count, stiffness, PooledDimensions, Reading, SecondDerivativeRule, STIFF_LEVEL};
pub use directions::{Directions, OrthonormalBasis};
pub use error::{singular_values, Result, SpectralError};
pub use estimator::{spectrum, Method, SpectrumEstimator, SpectrumParams};
pub use gaps::{
    format_intervals, intervals_where, is_open, marked_gaps, mean_spectrum, normalize, MarkedGaps, OPEN_LOG_GAP,
};
pub use jacobian::{Scheme, Step};
pub use jacobian_spectrum::{JacobianSpectrum, OperatorValues, Part};
pub use matrix_free::{MatrixFreeParams, Operator, Products, Rest};
pub use normal_bundle::{
    normal_bundle_matrix, normal_bundle_spectrum, NormalBundleParams, NormalBundleVariant, Perturbation,
};
pub use signs::{sign_split, signed_spectrum, SignSplit};
pub use spectrum::{GapScale, Spectrum};
pub use subspaces::{
    block_stiffness, block_weights_in_top, block_weights_of_values, isotropic_tangent_weight, log_spectrum_distance,
    stiffening,
};
