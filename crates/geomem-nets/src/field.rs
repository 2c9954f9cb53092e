//! A trained network as a [`ScoreField`]: `s(x, t) = -ε̂(x, √t)/√t`, with its Jacobian,
//! Jacobian-vector products and divergence by reverse-mode automatic differentiation.
//!
//! burn differentiates in reverse mode only, so every derivative here is a batch of
//! vector-Jacobian products `uᵀ ∂ε̂/∂x`, one backward pass for a whole batch: the rows
//! of the Jacobian are the products with `e_1 … e_d` (exact trace and Jacobian), and
//! Hutchinson's estimate needs only `zᵀ J z`, which a VJP serves as well as a JVP.

use crate::model::ResidualMlp;
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use faer::{Mat, MatMut, MatRef};
use geomem_score::{rademacher_probes, DivergenceParams, Precision, Result, ScoreError, ScoreField};

/// Rows per forward or backward pass.
const CHUNK: usize = 4096;

/// The score of a trained [`ResidualMlp`] (usually its EMA weights).
///
/// Precision: the network computes in `f32` ([`Precision::F32`]): scores carry a relative
/// error near `1e-7` (more where `ε̂` is small compared with its terms), so finite
/// differences must use steps of [`Precision::central_step`] or larger. The Jacobian,
/// JVPs and the divergence do not difference at all: they come from automatic
/// differentiation on the backend `B` (an autodiff backend; forward passes run on its
/// inner backend).
#[derive(Debug, Clone)]
pub struct TrainedScore<B: AutodiffBackend> {
    model: ResidualMlp<B::InnerBackend>,
    grad_model: ResidualMlp<B>,
    device: B::Device,
}

fn backend_err(e: impl std::fmt::Debug) -> ScoreError {
    ScoreError::Backend(format!("{e:?}"))
}

impl<B: AutodiffBackend> TrainedScore<B> {
    /// Wraps a network living on `device`.
    pub fn new(model: ResidualMlp<B::InnerBackend>, device: B::Device) -> Self {
        let grad_model = ResidualMlp::<B>::from_inner(model.clone()).no_grad();
        Self { model, grad_model, device }
    }
    /// The network.
    pub fn model(&self) -> &ResidualMlp<B::InnerBackend> {
        &self.model
    }

    /// `ε̂` of `m` rows (row-major `f32`) at noise level `sigma`.
    fn eps(&self, rows: Vec<f32>, m: usize, sigma: f32) -> Result<Vec<f32>> {
        let d = self.model.d;
        let (cin, emb) = self.model.conditioning(&[sigma], &self.device);
        let (cin, emb) = (cin.repeat_dim(0, m), emb.repeat_dim(0, m));
        let xt = Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(rows, [m, d]), &self.device);
        self.model.forward(xt, cin, emb).into_data().to_vec().map_err(backend_err)
    }

    /// Rows `u_iᵀ ∂ε̂(x_i)/∂x` for `m` points `x_i` and cotangents `u_i` (row-major `f32`),
    /// in one backward pass.
    fn vjp_rows(&self, x: Vec<f32>, u: Vec<f32>, m: usize, sigma: f32) -> Result<Vec<f32>> {
        let d = self.model.d;
        let (cin, emb) = self.grad_model.conditioning(&[sigma], &self.device);
        let (cin, emb) = (cin.repeat_dim(0, m), emb.repeat_dim(0, m));
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x, [m, d]), &self.device).require_grad();
        let ut = Tensor::<B, 2>::from_data(TensorData::new(u, [m, d]), &self.device);
        let loss = (self.grad_model.forward(xt.clone(), cin, emb) * ut).sum();
        let grads = loss.backward();
        let g = xt.grad(&grads).ok_or_else(|| ScoreError::Backend("no gradient for the input".into()))?;
        g.into_data().to_vec().map_err(backend_err)
    }

    /// Rows `u_kᵀ ∇s(x_{k / per_point})` (`k × d`) for the rows `u_k` of `u`: each row of
    /// `x` serves `per_point` consecutive cotangents, all in chunked backward passes.
    fn score_vjp(&self, x: MatRef<'_, f64>, per_point: usize, t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        let (d, k, sigma) = (self.model.d, u.nrows(), t.sqrt());
        let mut out = Mat::zeros(k, d);
        for start in (0..k).step_by(CHUNK) {
            let len = CHUNK.min(k - start);
            let rows = start..start + len;
            let xs: Vec<f32> = rows.clone().flat_map(|r| (0..d).map(move |j| x[(r / per_point, j)] as f32)).collect();
            let us: Vec<f32> = rows.flat_map(|r| (0..d).map(move |j| u[(r, j)] as f32)).collect();
            let g = self.vjp_rows(xs, us, len, sigma as f32)?;
            for r in 0..len {
                for j in 0..d {
                    out[(start + r, j)] = -f64::from(g[r * d + j]) / sigma;
                }
            }
        }
        Ok(out)
    }

    /// The autodiff Jacobian of the score at one point (row `i` is `∂s_i/∂x`).
    fn jacobian_at(&self, x: &[f64], t: f64) -> Result<Mat<f64>> {
        let d = self.model.d;
        self.score_vjp(MatRef::from_row_major_slice(x, 1, d), d, t, Mat::<f64>::identity(d, d).as_ref())
    }
}

impl<B: AutodiffBackend> ScoreField for TrainedScore<B> {
    fn dim(&self) -> usize {
        self.model.d
    }

    fn precision(&self) -> Precision {
        Precision::F32
    }

    /// # Formula
    /// `s(x, t) = -ε̂(x, σ = √t) / σ`, evaluated in `f32` in chunks of 4096 rows.
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
        let (d, sigma) = (self.model.d, t.sqrt());
        for start in (0..x.nrows()).step_by(CHUNK) {
            let len = CHUNK.min(x.nrows() - start);
            let rows: Vec<f32> = (start..start + len).flat_map(|i| (0..d).map(move |j| x[(i, j)] as f32)).collect();
            let eps = self.eps(rows, len, sigma as f32)?;
            for r in 0..len {
                for j in 0..d {
                    out[(start + r, j)] = -f64::from(eps[r * d + j]) / sigma;
                }
            }
        }
        Ok(())
    }

    /// The exact Jacobian of the network's score by reverse mode: `d` vector-Jacobian
    /// products with `e_1 … e_d` in one backward pass (row `i` is `∂s_i/∂x`).
    fn eval_jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        self.jacobian_at(x, t).map(Some)
    }

    /// `J v_i` from the autodiff Jacobian (`V Jᵀ`): exact, one backward pass of `d` rows.
    fn eval_jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        Ok(v * self.jacobian_at(x, t)?.transpose())
    }

    /// Exact trace (the diagonal of the autodiff Jacobian) when `d <= exact_below`;
    /// Hutchinson's `(1/K) Σ_k z_kᵀ (z_kᵀ ∇s)ᵀ` with the probes of
    /// [`geomem_score::rademacher_probes`] (stream `seed + i` for point `i`) above.
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, p: &DivergenceParams) -> Result<Vec<f64>> {
        let (d, n) = (self.model.d, x.nrows());
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
