//! Any noise-predicting burn module ([`NoiseModel`]) as a [`ScoreField`]: its score, and
//! its Jacobian, vector-Jacobian products and divergence by reverse-mode automatic
//! differentiation.
//!
//! burn differentiates in reverse mode only, so every derivative here is a batch of
//! vector-Jacobian products `uᵀ ∂ε̂/∂x`, one backward pass for a whole batch: the rows
//! of the Jacobian are the products with `e_1 … e_d` (exact trace and Jacobian), and
//! Hutchinson's estimate needs only `zᵀ J z`, which a VJP serves as well as a JVP.
//! Jacobian-vector products come from the Jacobian (exact, `d` VJPs) or from central
//! differences (two forward passes per product): [`JvpMethod`].

use crate::model::ResidualMlp;
use crate::noise::{NoiseForm, NoiseModel};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use faer::{Mat, MatMut, MatRef};
use geomem_score::{
    central_difference_jvp, rademacher_probes, DivergenceParams, Precision, Result, ScoreError, ScoreField, VpGrid,
};
use rayon::prelude::*;

/// Rows per forward or backward pass unless set ([`NetScore::with_batch`]).
const CHUNK: usize = 4096;

/// Dimensions up to which [`JvpMethod::Jacobian`] is the default.
pub const EXACT_JVP_BELOW: usize = 256;

/// How a [`NetScore`] computes Jacobian-vector products `J v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JvpMethod {
    /// `V Jᵀ` from the autodiff Jacobian: exact; `d` VJPs (one backward pass of `d` rows)
    /// whatever the number of products.
    Jacobian,
    /// Central differences at the `f32` step `ε^{1/3} √t` ([`Precision::central_step`]): two
    /// forward rows per product, relative error near `ε^{2/3} ≈ 2.4e-5`. What the
    /// matrix-free spectra of large nets use.
    CentralDifference,
}

/// The score of a trained noise model: `s(x, t) = c_out ε̂(c_in x, level)` ([`NoiseForm`]).
///
/// Precision: the network computes in `f32` ([`Precision::F32`]): scores carry a relative
/// error near `1e-7` (more where `ε̂` is small compared with its terms), so finite
/// differences must use steps of [`Precision::central_step`] or larger. The Jacobian,
/// VJPs and the divergence do not difference at all: they come from automatic
/// differentiation on the backend `B` (an autodiff backend; forward passes run on its
/// inner backend).
#[derive(Debug, Clone)]
pub struct NetScore<B: AutodiffBackend, M: AutodiffModule<B>> {
    model: M::InnerModule,
    grad_model: M,
    device: B::Device,
    form: NoiseForm,
    batch: usize,
    parallel: usize,
    jvp: JvpMethod,
}

/// The toy network of seed 001 as a VE score field.
pub type TrainedScore<B> = NetScore<B, ResidualMlp<B>>;

fn backend_err(e: impl std::fmt::Debug) -> ScoreError {
    ScoreError::Backend(format!("{e:?}"))
}

/// `ε̂` of `m` rows (row-major `f32`) at `level`.
fn eps<IB: Backend, N: NoiseModel<IB>>(
    model: &N,
    device: &IB::Device,
    rows: Vec<f32>,
    m: usize,
    level: f64,
) -> Result<Vec<f32>> {
    let xt = Tensor::<IB, 2>::from_data(TensorData::new(rows, [m, model.dim()]), device);
    model.predict_noise(xt, level).into_data().to_vec().map_err(backend_err)
}

impl<B: AutodiffBackend> NetScore<B, ResidualMlp<B>> {
    /// Wraps a [`ResidualMlp`] (usually its EMA weights) living on `device`, VE form.
    pub fn new(model: ResidualMlp<B::InnerBackend>, device: B::Device) -> Self {
        Self::ve(model, device)
    }
}

impl<B, M> NetScore<B, M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + NoiseModel<B>,
    M::InnerModule: NoiseModel<B::InnerBackend>,
{
    /// A model of the VE form living on `device`. Defaults: passes of 4096 rows, one at a
    /// time, [`JvpMethod::Jacobian`] up to `d =` [`EXACT_JVP_BELOW`] and
    /// [`JvpMethod::CentralDifference`] above.
    pub fn ve(model: M::InnerModule, device: B::Device) -> Self {
        Self::with_form(model, NoiseForm::Ve, device)
    }

    /// A model of the VP form on `grid` (a DDPM schedule or a VP SDE); defaults as [`NetScore::ve`].
    pub fn vp(model: M::InnerModule, grid: VpGrid, device: B::Device) -> Self {
        Self::with_form(model, NoiseForm::Vp(grid), device)
    }

    fn with_form(model: M::InnerModule, form: NoiseForm, device: B::Device) -> Self {
        let grad_model = M::from_inner(model.clone()).for_inference().no_grad();
        let jvp = if model.dim() <= EXACT_JVP_BELOW { JvpMethod::Jacobian } else { JvpMethod::CentralDifference };
        Self { model, grad_model, device, form, batch: CHUNK, parallel: 1, jvp }
    }

    /// With passes of `rows` rows (at least 1): a U-Net needs far fewer than the 4096 default.
    pub fn with_batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// Evaluates up to `parallel` forward passes at once on rayon tasks (at least 1). The
    /// passes, hence the numbers, are the same for every value ([`crate::UNetEps`] explains
    /// when it pays).
    pub fn with_parallel_batches(mut self, parallel: usize) -> Self {
        self.parallel = parallel.max(1);
        self
    }

    /// With another way to compute JVPs.
    pub fn with_jvp(mut self, jvp: JvpMethod) -> Self {
        self.jvp = jvp;
        self
    }

    /// The network.
    pub fn model(&self) -> &M::InnerModule {
        &self.model
    }

    /// Rows `u_iᵀ ∂ε̂(z_i)/∂z` for `m` inputs `z_i` and cotangents `u_i` (row-major `f32`),
    /// in one backward pass.
    fn vjp_rows(&self, z: Vec<f32>, u: Vec<f32>, m: usize, level: f64) -> Result<Vec<f32>> {
        let d = self.model.dim();
        let zt = Tensor::<B, 2>::from_data(TensorData::new(z, [m, d]), &self.device).require_grad();
        let ut = Tensor::<B, 2>::from_data(TensorData::new(u, [m, d]), &self.device);
        let grads = (self.grad_model.predict_noise(zt.clone(), level) * ut).sum().backward();
        let g = zt.grad(&grads).ok_or_else(|| ScoreError::Backend("no gradient for the input".into()))?;
        g.into_data().to_vec().map_err(backend_err)
    }

    /// Rows `u_kᵀ ∇s(x_{k / per_point})` (`k × d`) for the rows `u_k` of `u`: each row of
    /// `x` serves `per_point` consecutive cotangents, all in chunked backward passes.
    ///
    /// # Formula
    /// `s(x) = c_out ε̂(c_in x)`, so `uᵀ ∇s = c_out c_in · uᵀ ∂ε̂/∂z` at `z = c_in x`.
    fn score_vjp(&self, x: MatRef<'_, f64>, per_point: usize, t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        let (d, k) = (self.model.dim(), u.nrows());
        let (c_in, level, c_out) = self.form.level(t)?;
        let mut out = Mat::zeros(k, d);
        for start in (0..k).step_by(self.batch) {
            let len = self.batch.min(k - start);
            let rows = start..start + len;
            let zs: Vec<f32> =
                rows.clone().flat_map(|r| (0..d).map(move |j| (c_in * x[(r / per_point, j)]) as f32)).collect();
            let us: Vec<f32> = rows.flat_map(|r| (0..d).map(move |j| u[(r, j)] as f32)).collect();
            let g = self.vjp_rows(zs, us, len, level)?;
            for r in 0..len {
                for j in 0..d {
                    out[(start + r, j)] = c_out * c_in * f64::from(g[r * d + j]);
                }
            }
        }
        Ok(out)
    }

    /// The autodiff Jacobian of the score at one point (row `i` is `∂s_i/∂x`).
    fn jacobian_at(&self, x: &[f64], t: f64) -> Result<Mat<f64>> {
        let d = self.model.dim();
        self.score_vjp(MatRef::from_row_major_slice(x, 1, d), d, t, Mat::<f64>::identity(d, d).as_ref())
    }
}

impl<B, M> ScoreField for NetScore<B, M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + NoiseModel<B>,
    M::InnerModule: NoiseModel<B::InnerBackend> + Sync,
{
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn precision(&self) -> Precision {
        Precision::F32
    }

    /// # Formula
    /// `s(x, t) = c_out ε̂(c_in x, level)` ([`NoiseForm::level`]), evaluated in `f32` in
    /// passes of `batch` rows, `parallel` passes at a time.
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
        let (d, n) = (self.model.dim(), x.nrows());
        let (c_in, level, c_out) = self.form.level(t)?;
        let batch = self.batch;
        let starts: Vec<usize> = (0..n).step_by(batch).collect();
        let len = |s: usize| batch.min(n - s);
        for group in starts.chunks(self.parallel) {
            let rows =
                |s: usize| (s..s + len(s)).flat_map(|i| (0..d).map(move |j| (c_in * x[(i, j)]) as f32)).collect();
            let (model, device) = (&self.model, &self.device);
            let done: Vec<Vec<f32>> =
                group.par_iter().map(|&s| eps(model, device, rows(s), len(s), level)).collect::<Result<_>>()?;
            for (&s, eps) in group.iter().zip(&done) {
                for r in 0..len(s) {
                    for j in 0..d {
                        out[(s + r, j)] = c_out * f64::from(eps[r * d + j]);
                    }
                }
            }
        }
        Ok(())
    }

    /// The exact Jacobian of the network's score by reverse mode: `d` vector-Jacobian
    /// products with `e_1 … e_d` in chunked backward passes (row `i` is `∂s_i/∂x`).
    fn eval_jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        self.jacobian_at(x, t).map(Some)
    }

    /// `J v_i` by the [`JvpMethod`] of the field.
    fn eval_jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        match self.jvp {
            JvpMethod::Jacobian => Ok(v * self.jacobian_at(x, t)?.transpose()),
            JvpMethod::CentralDifference => central_difference_jvp(self, x, t, v),
        }
    }

    /// `u_iᵀ J` by reverse mode: one backward pass of `k` rows.
    fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.score_vjp(MatRef::from_row_major_slice(x, 1, x.len()), u.nrows(), t, u)
    }

    /// Exact trace (the diagonal of the autodiff Jacobian) when `d <= exact_below`;
    /// Hutchinson's `(1/K) Σ_k z_kᵀ (z_kᵀ ∇s)ᵀ` with the probes of
    /// [`geomem_score::rademacher_probes`] (stream `seed + i` for point `i`) above.
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, p: &DivergenceParams) -> Result<Vec<f64>> {
        let (d, n) = (self.model.dim(), x.nrows());
        let exact = d <= p.exact_below;
        let r = if exact { d } else { p.probes };
        // Cotangents of every point stacked: all points share the backward passes.
        let probes: Vec<Mat<f64>> = (0..n)
            .map(|i| if exact { Mat::identity(d, d) } else { rademacher_probes(r, d, p.seed.wrapping_add(i as u64)) })
            .collect();
        let u = Mat::from_fn(n * r, d, |row, j| probes[row / r][(row % r, j)]);
        let g = self.score_vjp(x, r, t, u.as_ref())?;
        let quad = |row: usize| (0..d).map(|j| u[(row, j)] * g[(row, j)]).sum::<f64>();
        Ok((0..n)
            .map(|i| {
                let total: f64 = (i * r..(i + 1) * r).map(quad).sum();
                if exact {
                    total
                } else {
                    total / r as f64
                }
            })
            .collect())
    }
}
