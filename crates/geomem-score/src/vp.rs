//! Variance-preserving (DDPM) models as VE [`ScoreField`]s, and back.
//!
//! A VP model predicts the noise `ε̂(x_vp, k)` of `x_vp = √ᾱ x_0 + √(1-ᾱ) ε`. With
//! `ᾱ = 1/(1+t)` the VE state is `x = x_vp/√ᾱ = √(1+t) x_vp` at VE time `t`, and
//!
//! ```text
//! s_ve(x, t) = √ᾱ s_vp(√ᾱ x) = -√ᾱ ε̂(√ᾱ x) / √(1-ᾱ) = -ε̂(x/√(1+t), k) / √t.
//! ```
//!
//! [`VpScore`] applies this exactly; a VE time that is not on the model's grid (discrete
//! DDPM) or outside its range is an error. [`VeAsVp`] goes the other way (a VE field as a
//! noise predictor, `ε̂(x_vp, k) = -√t s_ve(√(1+t) x_vp, t)`), so each adapter is tested
//! against the other.

use crate::error::{Result, ScoreError};
use crate::field::{Precision, ScoreField};
use crate::schedule::{DdpmSchedule, LinearVpSde};
use faer::{Mat, MatMut, MatRef};

/// A time of a VP model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VpTime {
    /// Discrete DDPM step `k ∈ 0 … T-1`.
    Step(usize),
    /// Continuous time `τ ∈ (0, 1]` of a VP SDE.
    Continuous(f64),
}

/// A noise-prediction model of the variance-preserving process (a DDPM U-Net, say).
pub trait VpEpsModel {
    /// The data dimension `d`.
    fn dim(&self) -> usize;
    /// The precision the model computes in.
    fn precision(&self) -> Precision {
        Precision::F64
    }
    /// Writes `ε̂(x_vp, time)` of every row of `x_vp` (`n × d`, finite) into `out`.
    ///
    /// # Errors
    /// The model's own errors.
    fn eps_into(&self, x_vp: MatRef<'_, f64>, time: VpTime, out: MatMut<'_, f64>) -> Result<()>;
    /// Vector-Jacobian products `u_iᵀ ∂ε̂(x_vp, time)/∂x_vp` at one point `x_vp` (length
    /// `d`, finite) for the rows `u_i` of `u` (`k × d`, finite), as the rows of a `k × d`
    /// matrix, when the model differentiates itself (a network in reverse mode); `Ok(None)`
    /// otherwise (the default). [`VpScore`] takes its Jacobian and its VJPs from here.
    ///
    /// # Errors
    /// The model's own errors.
    fn eps_vjp(&self, x_vp: &[f64], time: VpTime, u: MatRef<'_, f64>) -> Result<Option<Mat<f64>>> {
        let _ = (x_vp, time, u);
        Ok(None)
    }
}

/// Which grid a [`VpScore`] converts VE times on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VpGrid {
    /// A discrete DDPM schedule: only its times `t_k` are valid.
    Discrete(DdpmSchedule),
    /// A continuous VP SDE: every `t ∈ (0, t(1)]` is valid.
    Continuous(LinearVpSde),
}

impl VpGrid {
    /// The VP time of a VE time.
    ///
    /// # Errors
    /// [`ScoreError::OffGrid`], [`ScoreError::TimeOutOfRange`], [`ScoreError::InvalidTime`].
    pub fn vp_time(&self, t: f64) -> Result<VpTime> {
        match self {
            Self::Discrete(s) => s.step_of_ve_time(t).map(VpTime::Step),
            Self::Continuous(s) => s.tau(t).map(VpTime::Continuous),
        }
    }
    /// The VE time of a VP time.
    ///
    /// # Errors
    /// [`ScoreError::StepOutOfRange`], [`ScoreError::InvalidParameter`] for a `τ` outside
    /// `(0, 1]`, [`ScoreError::InvalidParameter`] for a time of the other kind.
    pub fn ve_time(&self, time: VpTime) -> Result<f64> {
        match (self, time) {
            (Self::Discrete(s), VpTime::Step(k)) => s.ve_time(k),
            (Self::Continuous(s), VpTime::Continuous(tau)) => s.ve_time(tau),
            _ => Err(ScoreError::InvalidParameter {
                name: "time",
                value: format!("{time:?}"),
                reason: "a discrete grid takes steps, a continuous one takes tau",
            }),
        }
    }
}

/// A VP noise predictor seen as a VE score field: `s(x, t) = -ε̂(x/√(1+t), k(t))/√t`.
#[derive(Debug, Clone)]
pub struct VpScore<M> {
    model: M,
    grid: VpGrid,
}

impl<M: VpEpsModel> VpScore<M> {
    /// A model on a discrete DDPM schedule.
    pub fn discrete(model: M, schedule: DdpmSchedule) -> Self {
        Self { model, grid: VpGrid::Discrete(schedule) }
    }
    /// A model of a continuous VP SDE.
    pub fn continuous(model: M, sde: LinearVpSde) -> Self {
        Self { model, grid: VpGrid::Continuous(sde) }
    }
    /// The grid.
    pub fn grid(&self) -> &VpGrid {
        &self.grid
    }
    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }
}

impl<M: VpEpsModel> ScoreField for VpScore<M> {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn precision(&self) -> Precision {
        self.model.precision()
    }
    /// # Formula
    /// `s_ve(x, t) = -ε̂(x/√(1+t), k)/√t` with `t_k = t` exactly.
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
        let time = self.grid.vp_time(t)?;
        let scale = (-0.5 * t.ln_1p()).exp(); // 1/√(1+t)
        let x_vp = Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] * scale);
        self.model.eps_into(x_vp.as_ref(), time, out.as_mut())?;
        let c = -1.0 / t.sqrt();
        for j in 0..out.ncols() {
            for i in 0..out.nrows() {
                out[(i, j)] *= c;
            }
        }
        Ok(())
    }

    /// The model's Jacobian ([`VpEpsModel::eps_vjp`] with `e_1 … e_d`) when it has one.
    ///
    /// # Formula
    /// `∂s_ve/∂x = -(1/√(t(1+t))) ∂ε̂/∂x_vp` at `x_vp = x/√(1+t)` (the module's equation).
    fn eval_jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        let d = self.model.dim();
        self.scaled_vjp(x, t, Mat::<f64>::identity(d, d).as_ref())
    }

    /// The model's VJPs when it has them (scaled as [`VpScore::eval_jacobian`]'s formula);
    /// otherwise `U J` from `d` JVPs (the trait's default).
    fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        match self.scaled_vjp(x, t, u)? {
            Some(v) => Ok(v),
            None => crate::field::vjp_from_jvps(self, x, t, u),
        }
    }

    /// The trait's default without the Jacobian (central differences up to `exact_below`,
    /// Hutchinson's estimate above): a model's Jacobian costs `d` reverse passes, more than
    /// Hutchinson's `2K` forward ones at large `d`, and the figures' FLIPD numbers stay those
    /// of the forward passes.
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, p: &crate::DivergenceParams) -> Result<Vec<f64>> {
        crate::field::divergence_by(self, x, t, p, false)
    }
}

impl<M: VpEpsModel> VpScore<M> {
    /// `u_iᵀ ∂s_ve/∂x` from the model's VJPs at `x/√(1+t)`, or `None`.
    fn scaled_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Option<Mat<f64>>> {
        let time = self.grid.vp_time(t)?;
        let scale = (-0.5 * t.ln_1p()).exp(); // 1/√(1+t)
        let x_vp: Vec<f64> = x.iter().map(|v| v * scale).collect();
        let Some(mut v) = self.model.eps_vjp(&x_vp, time, u)? else { return Ok(None) };
        let c = -scale / t.sqrt();
        for j in 0..v.ncols() {
            for i in 0..v.nrows() {
                v[(i, j)] *= c;
            }
        }
        Ok(Some(v))
    }
}

/// A VE score field seen as a VP noise predictor on a grid:
/// `ε̂(x_vp, k) = -√t_k s_ve(√(1+t_k) x_vp, t_k)`.
#[derive(Debug, Clone)]
pub struct VeAsVp<F> {
    field: F,
    grid: VpGrid,
}

impl<F: ScoreField> VeAsVp<F> {
    /// Wraps `field` on `grid`.
    pub fn new(field: F, grid: VpGrid) -> Self {
        Self { field, grid }
    }
}

impl<F: ScoreField> VpEpsModel for VeAsVp<F> {
    fn dim(&self) -> usize {
        self.field.dim()
    }
    fn precision(&self) -> Precision {
        self.field.precision()
    }
    fn eps_into(&self, x_vp: MatRef<'_, f64>, time: VpTime, mut out: MatMut<'_, f64>) -> Result<()> {
        let t = self.grid.ve_time(time)?;
        let scale = (0.5 * t.ln_1p()).exp(); // √(1+t)
        let x = Mat::from_fn(x_vp.nrows(), x_vp.ncols(), |i, j| x_vp[(i, j)] * scale);
        crate::ScoreFieldExt::score_batch_into(&self.field, x.as_ref(), t, out.as_mut())?;
        let c = -t.sqrt();
        for j in 0..out.ncols() {
            for i in 0..out.nrows() {
                out[(i, j)] *= c;
            }
        }
        Ok(())
    }
}
