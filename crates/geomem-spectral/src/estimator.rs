//! One entry point for the Jacobian spectrum of any [`ScoreField`]: [`spectrum`] with a
//! [`SpectrumParams`], or a [`SpectrumEstimator`] built once and reused across points (it
//! keeps the basis of the dense methods).
//!
//! | [`Method`] | what it computes | cost per point | source |
//! |---|---|---|---|
//! | `FiniteDifference` | `[s(x + h q_j) - s(x)]/h` (or central) along orthonormal `q_j` | `d + 1` (`2d`) evaluations, `d × d` SVD | seed 001 Eq. 5; improved NB with random `q_j`, seed 000 Sec. 3.3.1 |
//! | `Pointwise` | the field's own Jacobian (or JVPs) along `q_j`: the exact pointwise Jacobian | the field's Jacobian, or `d` JVPs | — |
//! | `NormalBundle` | SVD of `K` scores at noisy points or `K` central differences, `S / (r√(tK))` | `K` (`2K`) evaluations, `d × K` SVD | seed 001 Supp. B.1 (Alg. 1-2), seed 000's image estimator |
//! | `MatrixFree` | leading singular values of `I + tJ` or `tJ` from products | `O(k)` JVPs and VJPs | Halko et al. 2011 (see [`MatrixFreeParams`]) |
//!
//! The dense methods return all `d` (or `min(d, K)`) singular values of the score Jacobian;
//! the matrix-free one returns one end of that spectrum with error bounds. Both come as a
//! [`JacobianSpectrum`], which gives the same readings (largest gap, Algorithm 3 in both
//! forms, stiffness, soft count) either way.

use crate::directions::{Directions, OrthonormalBasis};
use crate::error::{singular_values, Result, SpectralError};
use crate::jacobian::{finite_difference, pointwise, Scheme, Step};
use crate::jacobian_spectrum::JacobianSpectrum;
use crate::matrix_free::{leading, MatrixFreeParams};
use crate::normal_bundle::{normal_bundle_matrix, NormalBundleParams};
use faer::Mat;
use geomem_score::ScoreField;
use std::borrow::Cow;

/// How the spectrum is estimated (module doc).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Method {
    /// Finite differences of the score along the directions (seed 001 Eq. 5 with
    /// `Scheme::Forward`, `Step::SqrtT`).
    FiniteDifference {
        /// Forward or central.
        scheme: Scheme,
        /// The step `h`.
        step: Step,
    },
    /// The field's own derivatives along the directions: its Jacobian when it has one,
    /// otherwise its JVPs (exact for closed forms and networks, central differences at the
    /// step its precision allows for a field with neither).
    Pointwise,
    /// The Normal Bundle matrix (its own directions: [`NormalBundleParams::perturbation`]).
    NormalBundle(NormalBundleParams),
    /// Leading values from Jacobian-vector and vector-Jacobian products.
    MatrixFree(MatrixFreeParams),
}

/// Settings of [`spectrum`] and [`SpectrumEstimator`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SpectrumParams {
    /// The method.
    pub method: Method,
    /// The orthonormal directions of `FiniteDifference` and `Pointwise` (ignored by the others).
    pub directions: Directions,
}

impl Default for SpectrumParams {
    /// Defaults: seed 001's Eq. 5 (forward differences of step `√t` along `e_1 … e_d`).
    fn default() -> Self {
        Self::finite_difference(Scheme::Forward, Step::SqrtT)
    }
}

impl SpectrumParams {
    /// Finite differences along the canonical basis.
    pub fn finite_difference(scheme: Scheme, step: Step) -> Self {
        Self { method: Method::FiniteDifference { scheme, step }, directions: Directions::Canonical }
    }
    /// The improved Normal Bundle settings of seed 000 (Sec. 3.3.1): forward differences of
    /// step `√t` along random orthonormal directions from `seed`.
    pub fn improved_normal_bundle(seed: u64) -> Self {
        Self::default().directions(Directions::RandomOrthonormal { seed })
    }
    /// The field's own Jacobian along the canonical basis.
    pub fn pointwise() -> Self {
        Self { method: Method::Pointwise, directions: Directions::Canonical }
    }
    /// The Normal Bundle estimator.
    pub fn normal_bundle(params: NormalBundleParams) -> Self {
        Self { method: Method::NormalBundle(params), directions: Directions::Canonical }
    }
    /// The matrix-free estimator.
    pub fn matrix_free(params: MatrixFreeParams) -> Self {
        Self { method: Method::MatrixFree(params), directions: Directions::Canonical }
    }
    /// With other directions.
    pub fn directions(mut self, directions: Directions) -> Self {
        self.directions = directions;
        self
    }
}

/// A [`SpectrumParams`] prepared for one dimension: the basis of the dense methods is built
/// once (a `d × d` QR for random directions) or borrowed from the caller.
#[derive(Debug, Clone)]
pub struct SpectrumEstimator<'a> {
    params: SpectrumParams,
    basis: Option<Cow<'a, OrthonormalBasis>>,
}

impl SpectrumEstimator<'static> {
    /// Prepares `params` for fields of dimension `d`.
    pub fn new(params: SpectrumParams, d: usize) -> Self {
        let dense = matches!(params.method, Method::FiniteDifference { .. } | Method::Pointwise);
        let basis = dense.then(|| Cow::Owned(OrthonormalBasis::from_directions(params.directions, d)));
        Self { params, basis }
    }
}

impl<'a> SpectrumEstimator<'a> {
    /// Uses the caller's basis (`k <= d` directions) instead of `params.directions`.
    pub fn in_basis(params: SpectrumParams, basis: &'a OrthonormalBasis) -> Self {
        Self { params, basis: Some(Cow::Borrowed(basis)) }
    }

    /// The settings.
    pub fn params(&self) -> &SpectrumParams {
        &self.params
    }

    /// The matrix whose singular values the dense methods return: `[J q_1, …, J q_k]`
    /// (`d × k`) for `FiniteDifference` and `Pointwise`, the normalised `d × K` Normal
    /// Bundle matrix for `NormalBundle`.
    ///
    /// # Errors
    /// [`SpectralError::Score`] for a wrong `x` length, a bad `t`, a basis of another
    /// dimension or a field error; [`SpectralError::InvalidParameter`] for a bad step or
    /// `K`, and for `MatrixFree`, which forms no matrix.
    pub fn jacobian<F: ScoreField + ?Sized>(&self, field: &F, x: &[f64], t: f64) -> Result<Mat<f64>> {
        let basis = || self.basis.as_deref().map_or_else(|| self.own_basis(field.dim()), Cow::Borrowed);
        match self.params.method {
            Method::FiniteDifference { scheme, step } => finite_difference(field, x, t, (scheme, step), &basis()),
            Method::Pointwise => pointwise(field, x, t, &basis()),
            Method::NormalBundle(p) => normal_bundle_matrix(field, x, t, &p),
            Method::MatrixFree(_) => Err(SpectralError::InvalidParameter {
                name: "method",
                value: "MatrixFree".into(),
                reason: "the matrix-free method forms no Jacobian matrix",
            }),
        }
    }

    fn own_basis(&self, d: usize) -> Cow<'a, OrthonormalBasis> {
        Cow::Owned(OrthonormalBasis::from_directions(self.params.directions, d))
    }

    /// The spectrum of the score Jacobian at `x`: every singular value for the dense
    /// methods, one end with error bounds for the matrix-free one.
    ///
    /// # Errors
    /// As [`SpectrumEstimator::jacobian`] (except for `MatrixFree`), plus
    /// [`SpectralError::SvdNoConvergence`].
    pub fn estimate<F: ScoreField + ?Sized>(&self, field: &F, x: &[f64], t: f64) -> Result<JacobianSpectrum> {
        if let Method::MatrixFree(p) = self.params.method {
            return JacobianSpectrum::from_leading(leading(field, x, t, &p)?, p.operator, field.dim(), t);
        }
        let values = singular_values(self.jacobian(field, x, t)?.as_ref())?;
        JacobianSpectrum::whole(values, t)
    }
}

/// The spectrum of the score Jacobian of `field` at `x` and time `t` with the given settings.
///
/// ```
/// use geomem_score::GaussianScore;
/// use geomem_spectral::{spectrum, GapScale, MatrixFreeParams, SpectrumParams};
/// let var: Vec<f64> = [vec![1.0; 3], vec![0.0; 7]].concat();
/// let field = GaussianScore::from_variances(&var).unwrap();
/// let dense = spectrum(&field, &[0.0; 10], 0.01, &SpectrumParams::improved_normal_bundle(1)).unwrap();
/// assert_eq!(dense.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), 3);
/// let leading = spectrum(&field, &[0.0; 10], 0.01, &SpectrumParams::matrix_free(MatrixFreeParams::default().block(4).oversample(1))).unwrap();
/// assert_eq!(leading.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), 3);
/// ```
///
/// # Errors
/// As [`SpectrumEstimator::estimate`].
pub fn spectrum<F: ScoreField + ?Sized>(
    field: &F,
    x: &[f64],
    t: f64,
    params: &SpectrumParams,
) -> Result<JacobianSpectrum> {
    SpectrumEstimator::new(*params, field.dim()).estimate(field, x, t)
}
