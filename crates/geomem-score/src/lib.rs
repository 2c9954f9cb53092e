//! Score fields for the study of geometric memorization in generative diffusion.
//!
//! The central abstraction is [`ScoreField`]: a batched map from noisy points (rows of a
//! matrix) and a variance-exploding diffusion time `t` (`x_t = x_0 + √t ε`) to
//! `∇ log p_t(x)`. This crate holds the closed-form fields of seed 001
//! ("Losing dimensions: geometric memorization in generative diffusion"):
//!
//! | type | formula | seed 001 |
//! |---|---|---|
//! | [`GaussianScore`] | `s = -(Σ + tI)⁻¹ x`, exact Jacobian and spectrum | Eq. 8, 9 |
//! | [`EmpiricalScore`] | `s = Σ_μ w_μ (y^μ - x)/t`, `∇s = (Cov_w/t - I)/t`, `N_eff = 1/Σw²` | Eq. 10, 11, 35 |
//! | [`GeometricVe`], [`DdpmSchedule`], [`LinearVpSde`] | noise schedules and their exact conversion to VE time | Supp. A |
//! | [`VpScore`], [`VeAsVp`] | a VP (DDPM) noise predictor as a VE field, and back | Supp. A |
//! | [`PointFn`], [`BatchFn`] | a closure of one point or of a batch, its precision stated | — |
//!
//! Implementations write [`ScoreField::eval`] (and optionally the Jacobian, JVP, VJP and
//! divergence hooks); callers use [`ScoreFieldExt`], which validates every input once.
//!
//! ```
//! use geomem_score::{EmpiricalScore, ScoreFieldExt};
//! let data = faer::Mat::from_fn(3, 2, |i, j| (i + 2 * j) as f64);
//! let field = EmpiricalScore::new(data).unwrap();
//! let s = field.score(&[0.5, 1.0], 0.1).unwrap();
//! assert_eq!(s.len(), 2);
//! ```

mod closure;
mod empirical;
mod error;
mod field;
mod gaussian;
mod schedule;
mod vp;

pub use closure::{BatchFn, PointFn};
pub use empirical::{EmpiricalScore, Posterior};
pub use error::{Result, ScoreError};
pub use field::{central_difference_jvp, rademacher_probes, DivergenceParams, Precision, ScoreField, ScoreFieldExt};
pub use gaussian::{marchenko_pastur_edges, marchenko_pastur_gap, GaussianScore, MpEdge};
pub use schedule::{DdpmSchedule, GeometricVe, LinearVpSde, GRID_RTOL};
pub use vp::{VeAsVp, VpEpsModel, VpGrid, VpScore, VpTime};
