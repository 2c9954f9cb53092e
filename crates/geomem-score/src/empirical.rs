//! Empirical score of a finite training set (seed 001, Eq. 10 and 11) with its analytic
//! Jacobian, posterior weights and participation ratio.
//!
//! For data `y¹ … y^N` the VE marginal is the Gaussian mixture
//! `p_t^N(x) = N⁻¹ Σ_μ N(x; y^μ, t I)` (Eq. 10) and its score is (Eq. 11)
//!
//! ```text
//! s(x, t) = Σ_μ w_μ(x, t) (y^μ - x) / t,    w_μ = softmax_μ( (x·y^μ - ‖y^μ‖²/2) / t ).
//! ```
//!
//! The weights are the Boltzmann weights of the REM of Eq. 12-13; they are computed by
//! log-sum-exp, so any `t` from `1e-8` to `1e4` gives finite values. Differentiating once more,
//!
//! ```text
//! ∇s(x, t) = ( Cov_w(y) / t - I ) / t,   Cov_w(y) = Σ_μ w_μ y^μ y^μᵀ - m mᵀ,  m = Σ_μ w_μ y^μ,
//! ```
//!
//! a symmetric matrix, so its singular values are the absolute values of its eigenvalues.
//! The participation ratio `Y = Σ_μ w_μ²` (Eq. 35) and `N_eff = 1/Y` (Sec. 5.2) measure how
//! many training points the score averages over.

use crate::error::{check_dim, check_finite, check_time, Result, ScoreError};
use crate::field::{DivergenceParams, ScoreField};
use faer::linalg::matmul::{matmul, triangular::BlockStructure};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Side};

/// Elements of the `N × chunk` logit matrix held at once by a score or log-density call.
const LOGIT_BUDGET: usize = 1 << 22;

/// The score of the empirical distribution of a training set.
#[derive(Debug)]
pub struct EmpiricalScore {
    /// Training points as rows, `N × d`.
    y: Mat<f64>,
    /// `‖y^μ‖² / 2`.
    half_sq_norms: Vec<f64>,
    /// Reused buffers for the weighted, centred points of the Jacobian (`N × d` at most):
    /// allocating 60 MB per call costs more in page faults than the centring itself. A
    /// pool, locked only to take or return a buffer, so parallel spectra do not wait on
    /// each other.
    scratch: std::sync::Mutex<Vec<Vec<f64>>>,
}

impl Clone for EmpiricalScore {
    fn clone(&self) -> Self {
        Self { y: self.y.clone(), half_sq_norms: self.half_sq_norms.clone(), scratch: Default::default() }
    }
}

/// Posterior of the training points given a noisy point: the quantities the empirical score
/// and the REM theory are made of.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Posterior {
    /// Weights `w_μ(x, t)`, summing to one.
    pub weights: Vec<f64>,
    /// Posterior mean `m = Σ_μ w_μ y^μ`.
    pub mean: Vec<f64>,
    /// Participation ratio `Y = Σ_μ w_μ²` (Eq. 35).
    pub participation_ratio: f64,
    /// Effective number of samples `N_eff = 1 / Σ_μ w_μ²`, in `[1, N]`.
    pub n_eff: f64,
    /// Indices of the weights above `1e-16 / N` (the others carry < 1e-16 of the mass).
    pub active: Vec<usize>,
}

impl EmpiricalScore {
    /// The empirical score of the rows of `data` (`N × d`).
    ///
    /// # Errors
    /// [`ScoreError::EmptyDataset`] when `N = 0` or `d = 0`, [`ScoreError::NonFinite`] when
    /// the data contain NaN or ∞.
    pub fn new(data: Mat<f64>) -> Result<Self> {
        if data.nrows() == 0 || data.ncols() == 0 {
            return Err(ScoreError::EmptyDataset);
        }
        check_finite(data.as_ref(), "training data")?;
        let half_sq_norms = (0..data.nrows()).map(|i| 0.5 * data.row(i).iter().map(|v| v * v).sum::<f64>()).collect();
        Ok(Self { y: data, half_sq_norms, scratch: Default::default() })
    }

    /// Number of training points `N`.
    pub fn n(&self) -> usize {
        self.y.nrows()
    }

    /// The training points, `N × d`.
    pub fn data(&self) -> MatRef<'_, f64> {
        self.y.as_ref()
    }

    /// Writes the normalised weights of the points `x` (rows, `n × d`) into the columns of
    /// `w` (`N × n`): `w[μ, i] = w_μ(x_i, t)`.
    fn weights_into(&self, x: MatRef<'_, f64>, t: f64, mut w: MatMut<'_, f64>) {
        // w ← Y Xᵀ, then a column-wise log-sum-exp.
        matmul(w.as_mut(), Accum::Replace, self.y.as_ref(), x.transpose(), 1.0, faer::get_global_parallelism());
        let inv_t = 1.0 / t;
        for i in 0..x.nrows() {
            let col = w.rb_mut().col_mut(i).try_as_col_major_mut().expect("owned column is contiguous").as_slice_mut();
            let mut amax = f64::NEG_INFINITY;
            for (a, h) in col.iter_mut().zip(&self.half_sq_norms) {
                *a -= h;
                amax = amax.max(*a);
            }
            let mut sum = 0.0;
            for a in col.iter_mut() {
                *a = ((*a - amax) * inv_t).exp();
                sum += *a;
            }
            let inv = 1.0 / sum;
            for a in col.iter_mut() {
                *a *= inv;
            }
        }
    }

    /// `log p_t^N(x)` of Eq. 10 for every row of `x` (`n × d`), by log-sum-exp.
    ///
    /// # Formula
    /// `log p_t^N(x) = -d/2 ln(2πt) - ln N + ln Σ_μ exp(-‖x - y^μ‖²/(2t))`.
    ///
    /// # Errors
    /// [`ScoreError::DimensionMismatch`], [`ScoreError::InvalidTime`], [`ScoreError::NonFinite`].
    pub fn log_density(&self, x: MatRef<'_, f64>, t: f64) -> Result<Vec<f64>> {
        check_dim(self.y.ncols(), x.ncols())?;
        check_time(t)?;
        check_finite(x, "points x")?;
        let d = self.y.ncols() as f64;
        let norm = -0.5 * d * (2.0 * std::f64::consts::PI * t).ln() - (self.n() as f64).ln();
        let chunk = (LOGIT_BUDGET / self.n()).clamp(1, x.nrows().max(1));
        let mut g = Mat::<f64>::zeros(self.n(), chunk);
        let mut out = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(chunk) {
            let len = chunk.min(x.nrows() - start);
            let xc = x.subrows(start, len);
            let mut gc = g.as_mut().subcols_mut(0, len);
            matmul(gc.rb_mut(), Accum::Replace, self.y.as_ref(), xc.transpose(), 1.0, faer::get_global_parallelism());
            for i in 0..len {
                let half_x2 = 0.5 * xc.row(i).iter().map(|v| v * v).sum::<f64>();
                // -‖x - y‖²/2 = x·y - ‖y‖²/2 - ‖x‖²/2
                let col = gc.rb().col(i);
                let a = |mu: usize| col[mu] - self.half_sq_norms[mu] - half_x2;
                let m = (0..self.n()).map(a).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..self.n()).map(|mu| ((a(mu) - m) / t).exp()).sum();
                out.push(norm + m / t + sum.ln());
            }
        }
        Ok(out)
    }

    /// Posterior weights, mean and participation ratio at one point.
    ///
    /// # Formula
    /// `w_μ = exp((x·y^μ - ‖y^μ‖²/2)/t) / Z`, `Y = Σ w_μ²` (Eq. 35), `N_eff = 1/Y` (Sec. 5.2).
    ///
    /// # Errors
    /// [`ScoreError::DimensionMismatch`], [`ScoreError::InvalidTime`], [`ScoreError::NonFinite`].
    pub fn posterior(&self, x: &[f64], t: f64) -> Result<Posterior> {
        check_dim(self.y.ncols(), x.len())?;
        check_time(t)?;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(ScoreError::NonFinite("point x"));
        }
        let xm = MatRef::from_row_major_slice(x, 1, x.len());
        let mut w = Mat::zeros(self.n(), 1);
        self.weights_into(xm, t, w.as_mut());
        let weights: Vec<f64> = w.col_as_slice(0).to_vec();
        // Weights below 1e-16/N carry less than 1e-16 of the mass together: skip them.
        let cut = 1e-16 / self.n() as f64;
        let active: Vec<usize> = (0..self.n()).filter(|&mu| weights[mu] > cut).collect();
        let mean: Vec<f64> = if 4 * active.len() > self.n() {
            let mut mean = Mat::<f64>::zeros(1, x.len());
            matmul(mean.as_mut(), Accum::Replace, w.transpose(), self.y.as_ref(), 1.0, faer::get_global_parallelism());
            (0..x.len()).map(|j| mean[(0, j)]).collect()
        } else {
            (0..x.len())
                .map(|j| {
                    let col = self.y.col_as_slice(j);
                    active.iter().map(|&mu| weights[mu] * col[mu]).sum()
                })
                .collect()
        };
        let participation_ratio: f64 = weights.iter().map(|v| v * v).sum();
        Ok(Posterior { active, mean, n_eff: 1.0 / participation_ratio, participation_ratio, weights })
    }

    /// Calls `then` on the weighted, centred training points `√w_μ (y^μ - m)` of the
    /// non-negligible weights, as rows of a view into the reused scratch buffer. Weights below `1e-16 / N` are dropped: together they carry less than `1e-16`
    /// of the mass, below what double precision resolves in `Cov_w`.
    fn centred_active<R>(&self, post: &Posterior, then: impl FnOnce(MatRef<'_, f64>) -> R) -> R {
        let active = &post.active;
        let sw: Vec<f64> = active.iter().map(|&mu| post.weights[mu].sqrt()).collect();
        let all = active.len() == self.n();
        let (k, d) = (active.len(), self.y.ncols());
        let mut owned = self.take_scratch();
        if owned.len() < k * d {
            owned.resize(k * d, 0.0);
        }
        let buf = &mut owned[..k * d];
        for j in 0..d {
            let m = post.mean[j];
            let ycol = self.y.col_as_slice(j);
            let acol = &mut buf[j * k..(j + 1) * k];
            if all {
                for ((o, &y), &s) in acol.iter_mut().zip(ycol).zip(&sw) {
                    *o = s * (y - m);
                }
            } else {
                for ((o, &mu), &s) in acol.iter_mut().zip(active).zip(&sw) {
                    *o = s * (ycol[mu] - m);
                }
            }
        }
        let result = then(MatRef::from_column_major_slice(buf, k, d));
        self.return_scratch(owned);
        result
    }

    fn take_scratch(&self) -> Vec<f64> {
        let mut pool = self.scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.pop().unwrap_or_default()
    }

    fn return_scratch(&self, buf: Vec<f64>) {
        let mut pool = self.scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.push(buf);
    }

    /// Lower triangle of `op(A) op(A)ᵀ`: `A Aᵀ` when `gram`, else `Aᵀ A` (half the flops of a
    /// full product; the eigensolver reads only the lower triangle).
    fn lower_product(a: MatRef<'_, f64>, gram: bool) -> Mat<f64> {
        let (l, r) = if gram { (a, a.transpose()) } else { (a.transpose(), a) };
        let mut c = Mat::zeros(l.nrows(), l.nrows());
        faer::linalg::matmul::triangular::matmul(
            c.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            l,
            BlockStructure::Rectangular,
            r,
            BlockStructure::Rectangular,
            1.0,
            faer::get_global_parallelism(),
        );
        c
    }

    /// Posterior covariance `Cov_w(y)` at `x` (`d × d`).
    ///
    /// # Errors
    /// As [`EmpiricalScore::posterior`].
    pub fn posterior_covariance(&self, x: &[f64], t: f64) -> Result<Mat<f64>> {
        let post = self.posterior(x, t)?;
        let d = self.y.ncols();
        let mut cov = self.centred_active(&post, |a| Self::lower_product(a, false));
        for j in 0..d {
            for i in 0..j {
                cov[(i, j)] = cov[(j, i)];
            }
        }
        Ok(cov)
    }

    /// Singular values of the analytic Jacobian at `x`, sorted in decreasing order.
    ///
    /// # Formula
    /// Eigenvalues `(c_k / t - 1) / t` of `∇s`, with `c_k` the eigenvalues of `Cov_w(y)`;
    /// singular values are their absolute values. When fewer than `d` weights are
    /// non-negligible (`k < d`, the memorisation regime) the `c_k` come from the `k × k` Gram
    /// matrix of the centred points and the other `d - k` eigenvalues of `Cov_w` are zero —
    /// exact, and `(d/k)²` cheaper than the `d × d` route.
    ///
    /// # Errors
    /// As [`EmpiricalScore::posterior`], plus [`ScoreError::Linalg`].
    pub fn jacobian_spectrum(&self, x: &[f64], t: f64) -> Result<Vec<f64>> {
        let post = self.posterior(x, t)?;
        let (k, d) = (post.active.len(), self.y.ncols());
        let small = k < d;
        let g = self.centred_active(&post, |a| Self::lower_product(a, small));
        let c = g
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|_| ScoreError::Linalg("eigenvalues of Cov_w did not converge"))?;
        let mut s: Vec<f64> = c.iter().map(|&ck| ((ck.max(0.0) / t - 1.0) / t).abs()).collect();
        if small {
            s.extend(std::iter::repeat_n(1.0 / t, d - k));
        }
        s.sort_by(|a, b| b.total_cmp(a));
        Ok(s)
    }
}

impl ScoreField for EmpiricalScore {
    fn dim(&self) -> usize {
        self.y.ncols()
    }

    /// # Formula
    /// Eq. 11: `s(x, t) = (Σ_μ w_μ y^μ - x) / t`, evaluated as two matrix products per chunk
    /// of points (`Y Xᵀ` for the logits, `Wᵀ Y` for the means).
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
        let n = x.nrows();
        let chunk = (LOGIT_BUDGET / self.n()).clamp(1, n.max(1));
        let mut w = Mat::zeros(self.n(), chunk);
        let inv_t = 1.0 / t;
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let xc = x.subrows(start, len);
            let mut wc = w.as_mut().subcols_mut(0, len);
            self.weights_into(xc, t, wc.rb_mut());
            let mut oc = out.rb_mut().subrows_mut(start, len);
            matmul(
                oc.rb_mut(),
                Accum::Replace,
                wc.rb().transpose(),
                self.y.as_ref(),
                inv_t,
                faer::get_global_parallelism(),
            );
            for j in 0..xc.ncols() {
                for i in 0..len {
                    oc[(i, j)] -= xc[(i, j)] * inv_t;
                }
            }
        }
        Ok(())
    }

    /// # Formula
    /// `∇s = (Cov_w(y)/t - I)/t`.
    fn eval_jacobian(&self, x: &[f64], t: f64) -> Result<Option<Mat<f64>>> {
        let mut cov = self.posterior_covariance(x, t)?;
        let d = cov.nrows();
        let inv_t = 1.0 / t;
        for j in 0..d {
            for i in 0..d {
                cov[(i, j)] *= inv_t * inv_t;
            }
            cov[(j, j)] -= inv_t;
        }
        Ok(Some(cov))
    }

    /// # Formula
    /// `uᵀ J = (J u)ᵀ`: the Jacobian `(Cov_w/t - I)/t` is symmetric, so a VJP is the JVP.
    fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.eval_jvp(x, t, u)
    }

    /// # Formula
    /// `J v = (Cov_w v / t - v)/t` with `Cov_w v = Aᵀ(A v)`, `A` the `k × d` weighted
    /// centred points of the non-negligible weights: exact, `O(k d K)` for `K` directions,
    /// no `d × d` matrix.
    fn eval_jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> Result<Mat<f64>> {
        let post = self.posterior(x, t)?;
        let cv = self.centred_active(&post, |a| (v * a.transpose()) * a); // K × d
        let inv_t = 1.0 / t;
        Ok(Mat::from_fn(v.nrows(), v.ncols(), |i, j| (cv[(i, j)] * inv_t - v[(i, j)]) * inv_t))
    }

    /// # Formula
    /// `tr ∇s = (Σ_μ w_μ ‖y^μ - m‖² / t - d) / t`, exact at every `d` (`O(k d)` per point).
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, _p: &DivergenceParams) -> Result<Vec<f64>> {
        let d = self.dim() as f64;
        (0..x.nrows())
            .map(|i| {
                let xi: Vec<f64> = x.row(i).iter().copied().collect();
                let post = self.posterior(&xi, t)?;
                let tr_cov = self.centred_active(&post, |a| a.squared_norm_l2());
                Ok((tr_cov / t - d) / t)
            })
            .collect()
    }
}
