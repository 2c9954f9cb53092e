//! Jacobian spectra of score fields and the local intrinsic dimension read from them.
//!
//! Works on any [`geomem_score::ScoreField`] and hands it whole batches of points.
//!
//! | function | method | source |
//! |---|---|---|
//! | [`smoothed_jacobian`], [`smoothed_jacobian_with`] | `[s(x + √t q_j) - s(x)]/√t`, canonical or random orthonormal `q_j` | seed 001 Eq. 5; improved NB, seed 000 Sec. 3.3.1 |
//! | [`normal_bundle_spectrum`] | SVD of `K` scores at noisy points (Alg. 1) or of `K` central differences (Alg. 2) | seed 001 Supp. B.1 |
//! | [`Spectrum`] | sorted, normalised spectra; gaps `s_k - s_{k+1}` | seed 001 Eq. 7 |
//! | [`authors_spectrum`] | the authors' synthetic procedure (`K = d` unit Haar directions) and the mean score's share of its top value | their `analyze_spectrum.py` |
//! | [`pointwise_jacobian`] | the field's own Jacobian, or its JVPs, along a basis | — |
//! | [`SecondDerivativeRule`] | first `|s''| > c · median` after `d̄` values | seed 001 Alg. 3 |
//! | [`block_stiffness`], [`block_weights_in_top`], [`block_weights_of_values`], [`stiffening`] | which variance block a field loses, from its Jacobian | seed 001 Fig. 15 |
//! | [`signed_spectrum`], [`sign_split`] | eigenvalues of `(J + Jᵀ)/2` by decreasing `|λ|`: attractive or repulsive directions on each side of a gap | — |
//! | [`marked_gaps`], [`intervals_where`], [`OPEN_LOG_GAP`] | gap analysis of sweeps (the figures' conventions) | — |
//!
//! ```
//! use geomem_score::GaussianScore;
//! use geomem_spectral::{smoothed_jacobian_spectrum, SmoothedJacobianParams, Spectrum, GapScale};
//! let var: Vec<f64> = [vec![1.0; 3], vec![0.0; 7]].concat();
//! let field = GaussianScore::from_variances(&var).unwrap();
//! let s = smoothed_jacobian_spectrum(&field, &[0.0; 10], 0.01, &SmoothedJacobianParams::improved_normal_bundle(1)).unwrap();
//! let spec = Spectrum::new(s).unwrap();
//! assert_eq!(spec.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), 3);
//! ```

mod authors;
mod dimension;
mod directions;
mod error;
mod gaps;
mod jacobian;
mod normal_bundle;
mod signs;
mod spectrum;
mod subspaces;

pub use authors::{authors_spectrum, AuthorsSpectrum};
pub use dimension::{soft_count, stiffness, PooledDimensions, Reading, SecondDerivativeRule, STIFF_LEVEL};
pub use directions::{Directions, OrthonormalBasis};
pub use error::{singular_values, Result, SpectralError};
pub use gaps::{
    format_intervals, intervals_where, is_open, marked_gaps, mean_spectrum, normalize, MarkedGaps, OPEN_LOG_GAP,
};
pub use jacobian::{
    pointwise_jacobian, pointwise_jacobian_spectrum, smoothed_jacobian, smoothed_jacobian_in_basis,
    smoothed_jacobian_spectrum, smoothed_jacobian_spectrum_in_basis, smoothed_jacobian_with, Scheme,
    SmoothedJacobianParams, Step,
};
pub use normal_bundle::{
    normal_bundle_matrix, normal_bundle_spectrum, NormalBundleParams, NormalBundleVariant, Perturbation,
};
pub use signs::{sign_split, signed_spectrum, SignSplit};
pub use spectrum::{GapScale, Spectrum};
pub use subspaces::{
    block_stiffness, block_weights_in_top, block_weights_of_values, isotropic_tangent_weight, log_spectrum_distance,
    stiffening,
};
