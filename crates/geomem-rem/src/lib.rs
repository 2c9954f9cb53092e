//! Statistical-physics theory of geometric memorization: the positional Random Energy Model
//! of seed 001 (Supp. C-D). Depends on no ML crate.
//!
//! | item | formula | seed 001 |
//! |---|---|---|
//! | [`PositionalRem::zeta`], [`PositionalRem::zeta_prime`] | moment generating function of the energies | Eq. 25-28 |
//! | [`PositionalRem::condensation_time`] | root of `α + ζ(1) - ζ'(1) = 0` | Supp. C |
//! | [`PositionalRem::condensation_time_large_t`] | `√((r₄/2 + ω²)/(2α))` | Eq. 15 (Eq. 34 is misprinted) |
//! | [`r2`], [`r4`], [`omega2`] | `(1/d)Σσ²`, `(1/d)Σσ⁴`, `(1/d)Σx²σ²` | Eq. 31-33 |
//! | [`participation_ratio`], [`n_eff`] | `E[Y] = 1 - t/t_c`, `N_eff = min(N, t_c/(t_c - t))` | Eq. 16, 35-37 |
//! | [`EmpiricalJacobianModel`] | random-matrix Jacobian and its closed-form singular values | Eq. 18/41, 19/43 |
//! | [`EmpiricalJacobianModel::closed_form_spectrum_at`], [`EmpiricalJacobianModel::sample_at`] | the same at a point `x` of the manifold, `Φ_j(x) = φ(t, x) + φ(t, x + √t e_j)` | seed 000 Eq. 34-37 |
//! | [`NotebookTheory`] | the theory panel as the authors' notebook computes it (and [`NotebookTheory::values_at`], its extension to a point `x`) | their code, not printed |
//! | [`EmpiricalJacobianModel::onset_times`], [`refine_around`] | where each `φ` switches on; a `t`-grid refined there | Eq. 18 |
//! | [`SpectrumTheory`] ([`JacobianForm`], [`NotebookTheory`]) | any closed form's per-direction values and onset times, behind one trait | Eq. 19/43, notebook |
//! | [`exact_spectrum`] | `1/(t + σ_k²)` | Eq. 8 |
//! | [`principal_variances`], [`PositionalRem::of_data`] | `σ_i²` of a data set (its covariance's eigenvalues) and its REM at the mean | Sec. 5, Supp. C |
//!
//! ```
//! use geomem_rem::PositionalRem;
//! let sigma2: Vec<f64> = [vec![1.0; 2], vec![0.3; 5], vec![0.0; 23]].concat();
//! let rem = PositionalRem::with_n(&sigma2, &vec![0.0; 30], 1000.0).unwrap();
//! let tc = rem.condensation_time();
//! assert!(rem.entropy(tc).unwrap().abs() < 1e-9);
//! ```

mod condensation;
mod data;
mod error;
mod jacobian_model;
mod notebook;
mod participation;
mod theory;

pub use condensation::{omega2, r2, r4, PositionalRem};
pub use data::principal_variances;
pub use error::{RemError, Result};
pub use jacobian_model::{exact_spectrum, refine_around, ClosedForm, CondensationMethod, EmpiricalJacobianModel};
pub use notebook::{drop_top_normalized, NotebookTheory};
pub use participation::{n_eff, participation_ratio};
pub use theory::{JacobianForm, SpectrumTheory};
