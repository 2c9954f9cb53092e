//! Training the toy network on the host (issue 23): the step of [`crate::train`] (seed 001,
//! Supp. A: the ε-MSE of the VE process, Adam, the EMA of the weights) with its backward
//! pass written out, `f32` GEMMs in faer on one thread and the SiLU passes in AVX-512 or
//! AVX2 where the CPU has it.
//!
//! The draws are [`crate::train`]'s (the same `(seed, step)` streams), Adam is burn's
//! `Adam` with `AdamConfig::new()` formula for formula (`m ← β₁m + (1-β₁)g`,
//! `v ← β₂v + (1-β₂)g²`, `θ ← θ - lr·m·√(1-β₂ᵗ)/(1-β₁ᵗ) / (√v + ε√(1-β₂ᵗ))`), and the
//! EMA is [`crate::ema`]'s. What differs is rounding: the order of the GEMMs' and the bias
//! gradients' sums, and the SiLU's `exp` (`HostMlp`'s, within 1e-6 relative); so a run
//! agrees with [`crate::train`] to `f32` rounding at first and drifts as any two roundings
//! of one training run do. The logged loss is summed in `f64`. Meant for the CPU: on a GPU
//! backend each step would copy its loss to the device ([`train_toy`] picks burn's step there). Checkpoints are the burn trainer's (weights, EMA and Adam moments as
//! burn records): either trainer resumes the other's run directory.

use crate::checkpoint;
use crate::draws::HostData;
use crate::host_unet::state::{moments, params, AdamRecs, Records, WriteFlat};
use crate::model::{host_conditioning, ResidualMlp};
use crate::train::{load, save, Draw, TrainConfig, TrainState};
use crate::train_loop::{open_run, run_loop, Trainer};
use crate::LogRow;
use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::ops::ControlFlow;
use std::path::Path;

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// One float parameter in burn's visiting order: a layer's weight (`in × out`, stored
/// column-major) or bias (`out × 1`).
#[derive(Clone, Debug)]
struct Tensor2 {
    rows: usize,
    cols: usize,
    v: Vec<f32>,
}

impl Tensor2 {
    fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, v: vec![0.0; rows * cols] }
    }
    fn mat(&self) -> MatRef<'_, f32> {
        MatRef::from_column_major_slice(&self.v, self.rows, self.cols)
    }
    fn mat_mut(&mut self) -> MatMut<'_, f32> {
        MatMut::from_column_major_slice_mut(&mut self.v, self.rows, self.cols)
    }
    /// From burn's row-major `[in, out]` (or `[out]`) data.
    fn from_burn(dims: &[usize], data: &[f32]) -> Self {
        let (rows, cols) = if dims.len() == 2 { (dims[0], dims[1]) } else { (dims[0], 1) };
        let v = (0..rows * cols).map(|k| data[(k % rows) * cols + k / rows]).collect();
        Self { rows, cols, v }
    }
    /// Back to burn's row-major layout.
    fn to_burn(&self) -> Vec<f32> {
        (0..self.rows * self.cols).map(|k| self.v[(k % self.cols) * self.rows + k / self.cols]).collect()
    }
}

/// Everything the host step changes: weights, EMA weights, Adam moments and their step.
#[derive(Clone, Debug)]
struct HostState {
    w: Vec<Tensor2>,
    ema: Vec<Tensor2>,
    m: Vec<Tensor2>,
    v: Vec<Tensor2>,
    adam_time: usize,
    step: u64,
    d: usize,
    emb_dim: usize,
    sigma_data: f64,
}

/// Reads every float parameter (id, dims, values) of a module, in visiting order.
struct Read<B: Backend>(Vec<(ParamId, Vec<usize>, Vec<f32>)>, std::marker::PhantomData<B>);

impl<B: Backend> ModuleVisitor<B> for Read<B> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let t = p.val();
        let dims = t.dims().to_vec();
        let v = t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        self.0.push((p.id, dims, v));
    }
}

pub(crate) fn read<B: Backend, M: Module<B>>(m: &M) -> Vec<(ParamId, Vec<usize>, Vec<f32>)> {
    let mut r = Read(Vec::new(), std::marker::PhantomData);
    m.visit(&mut r);
    r.0
}

impl HostState {
    /// The host copy of a burn run's state (the flat conversions of `host_unet::state`,
    /// each parameter then transposed to this module's column-major layout).
    ///
    /// # Errors
    /// [`crate::NetsError::Record`] when an Adam moment cannot be read back.
    fn from_burn<B: AutodiffBackend>(s: &TrainState<B>) -> crate::error::Result<Self> {
        let (dims, w) = params(&s.model);
        let (_, ema) = params(&s.ema);
        let recs: AdamRecs<B, ResidualMlp<B>> = s.optim.to_record();
        let (m, v, adam_time) = moments(&s.model, &recs)?;
        let host = |vals: Vec<Vec<f32>>| -> Vec<Tensor2> {
            dims.iter().zip(&vals).map(|(d, v)| Tensor2::from_burn(d, v)).collect()
        };
        Ok(Self {
            w: host(w),
            ema: host(ema),
            m: host(m),
            v: host(v),
            adam_time,
            step: s.step,
            d: s.model.d,
            emb_dim: s.model.emb_dim,
            sigma_data: s.model.sigma_data(),
        })
    }

    /// The burn run's state holding these numbers (`skeleton` gives the modules and ids).
    fn to_burn<B: AutodiffBackend>(&self, skeleton: &TrainState<B>) -> TrainState<B> {
        let flat = |t: &[Tensor2]| -> Vec<Vec<f32>> { t.iter().map(Tensor2::to_burn).collect() };
        let (w, ema, m, v) = (flat(&self.w), flat(&self.ema), flat(&self.m), flat(&self.v));
        let model = skeleton.model.clone().map(&mut WriteFlat { src: w.iter(), grad: true });
        let ema = skeleton.ema.clone().map(&mut WriteFlat { src: ema.iter(), grad: false });
        let out = AdamRecs::<B, ResidualMlp<B>>::default();
        let mut rec = Records::<B, ResidualMlp<B>> { m: m.iter(), v: v.iter(), time: self.adam_time, out };
        model.visit(&mut rec);
        let optim: OptimizerAdaptor<Adam, ResidualMlp<B>, B> = AdamConfig::new().init();
        let optim = if self.adam_time > 0 { optim.load_record(rec.out) } else { optim };
        TrainState { model, ema, optim, step: self.step }
    }
}

// ---- element-wise passes, compiled for the widest vectors of the CPU (`crate::wide`) ----

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + crate::host::fast_exp(-x))
}

#[inline(always)]
fn silu_body(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * sigmoid(v);
    }
}
crate::wide::wide_fn!(pub(crate) fn silu_into(x: &[f32], out: &mut [f32]) => silu_body);

/// `dst = g ⊙ silu'(x)` (`acc = false`) or `dst += g ⊙ silu'(x)`;
/// `silu'(x) = s(x)(1 + x(1 - s(x)))`.
#[inline(always)]
fn silu_grad_body(x: &[f32], g: &[f32], dst: &mut [f32], acc: bool) {
    for ((o, &v), &gv) in dst.iter_mut().zip(x).zip(g) {
        let s = sigmoid(v);
        let d = gv * (s * (1.0 + v * (1.0 - s)));
        *o = if acc { *o + d } else { d };
    }
}
crate::wide::wide_fn!(pub(crate) fn silu_grad(x: &[f32], g: &[f32], dst: &mut [f32], acc: bool) => silu_grad_body);

/// burn's Adam update of one parameter (the module doc's formula, in burn's order of
/// operations), then the EMA `e ← a e + b θ`.
#[inline(always)]
fn adam_ema_body(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], e: &mut [f32], k: &[f32; 5]) {
    let [factor, lr, eps, a, b] = *k;
    let all = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(e.iter_mut());
    for ((((w, &g), m), v), e) in all {
        *m = *m * BETA_1 + g * (1.0 - BETA_1);
        *v = *v * BETA_2 + (g * g) * (1.0 - BETA_2);
        let step = (*m * factor) / (v.sqrt() + eps);
        *w -= step * lr;
        *e = *e * a + *w * b;
    }
}
crate::wide::wide_fn! {
    pub(crate) fn adam_ema(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], e: &mut [f32], k: &[f32; 5]) => adam_ema_body
}

// ---- the step ----

/// `dst (+)= a b`, `f32`, on this thread.
pub(crate) fn mm(dst: MatMut<'_, f32>, acc: Accum, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    matmul(dst, acc, a, b, 1.0, Par::Seq);
}

/// `z = x W + b` (`W`, `b` = parameters `2·layer`, `2·layer + 1` of `w`).
fn linear(w: &[Tensor2], layer: usize, x: &Tensor2, z: &mut Tensor2) {
    mm(z.mat_mut(), Accum::Replace, x.mat(), w[2 * layer].mat());
    for (col, &bj) in z.v.chunks_exact_mut(z.rows).zip(&w[2 * layer + 1].v) {
        col.iter_mut().for_each(|x| *x += bj);
    }
}

/// `g_b[j] = Σᵢ dz[i, j]`.
fn col_sums(dz: &Tensor2, gb: &mut Tensor2) {
    for (col, o) in dz.v.chunks_exact(dz.rows).zip(gb.v.iter_mut()) {
        *o = col.iter().sum();
    }
}

/// A linear layer's weight and bias gradients from its input `x` and output gradient `dz`;
/// with `dx`, also the input's gradient `dz Wᵀ`.
fn layer_grads(w: &[Tensor2], layer: usize, x: &Tensor2, dz: &Tensor2, g: &mut [Tensor2], dx: Option<&mut Tensor2>) {
    mm(g[2 * layer].mat_mut(), Accum::Replace, x.mat().transpose(), dz.mat());
    col_sums(dz, &mut g[2 * layer + 1]);
    if let Some(dx) = dx {
        mm(dx.mat_mut(), Accum::Replace, dz.mat(), w[2 * layer].mat().transpose());
    }
}

/// The buffers of one step, kept between steps (allocating them every step cost more in
/// page faults than the element-wise passes).
struct Work {
    /// `x₀ = [x_t c_in, emb(ln σ)]`.
    x0: Tensor2,
    /// Per block: input `h`, `silu(h)`, `z₁`, `silu(z₁)`.
    blocks: Vec<[Tensor2; 4]>,
    /// The last block's output, its SiLU, the network's output.
    h: Tensor2,
    a: Tensor2,
    y: Tensor2,
    /// Gradients of every parameter, and of the output and two hidden activations.
    g: Vec<Tensor2>,
    dy: Tensor2,
    dh: Tensor2,
    t1: Tensor2,
    t2: Tensor2,
}

impl Work {
    fn new(w: &[Tensor2], b: usize, d: usize, emb: usize) -> Self {
        let h = w[1].rows;
        let hid = || Tensor2::zeros(b, h);
        let nb = (w.len() - 4) / 4;
        Self {
            x0: Tensor2::zeros(b, d + emb),
            blocks: (0..nb).map(|_| [hid(), hid(), hid(), hid()]).collect(),
            h: hid(),
            a: hid(),
            y: Tensor2::zeros(b, d),
            g: w.iter().map(|t| Tensor2::zeros(t.rows, t.cols)).collect(),
            dy: Tensor2::zeros(b, d),
            dh: hid(),
            t1: hid(),
            t2: hid(),
        }
    }
}

impl HostState {
    /// Writes `x₀ = [x_t c_in, emb(ln σ)]` of the draws (the conditioning of
    /// [`ResidualMlp`]).
    fn inputs(&self, draw: &Draw, x0: &mut Tensor2) {
        let (b, d, e) = (draw.sigma.len(), self.d, self.emb_dim);
        let (cin, emb) = host_conditioning(e, self.sigma_data, &draw.sigma);
        for i in 0..b {
            for j in 0..d {
                x0.v[j * b + i] = draw.xt[i * d + j] * cin[i];
            }
            for k in 0..e {
                x0.v[(d + k) * b + i] = emb[i * e + k];
            }
        }
    }

    /// The forward pass of [`ResidualMlp::forward`], keeping what the backward pass needs.
    fn forward(&self, draw: &Draw, wk: &mut Work) {
        self.inputs(draw, &mut wk.x0);
        let nb = wk.blocks.len();
        for k in 0..nb {
            let (done, rest) = wk.blocks.split_at_mut(k);
            let [hin, a1, z1, a2] = &mut rest[0];
            match done.last() {
                None => linear(&self.w, 0, &wk.x0, hin),
                // h_k = h_{k-1} + z₂ of block k - 1 (in `t1`).
                Some(prev) => hin.v.iter_mut().zip(&prev[0].v).zip(&wk.t1.v).for_each(|((o, x), z)| *o = x + z),
            }
            silu_into(&hin.v, &mut a1.v);
            linear(&self.w, 1 + 2 * k, a1, z1);
            silu_into(&z1.v, &mut a2.v);
            linear(&self.w, 2 + 2 * k, a2, &mut wk.t1);
        }
        match wk.blocks.last() {
            None => linear(&self.w, 0, &wk.x0, &mut wk.h),
            Some(last) => wk.h.v.iter_mut().zip(&last[0].v).zip(&wk.t1.v).for_each(|((o, x), z)| *o = x + z),
        }
        silu_into(&wk.h.v, &mut wk.a.v);
        linear(&self.w, 1 + 2 * nb, &wk.a, &mut wk.y);
    }

    /// The gradients (into `wk.g`) of the ε-MSE, the mean over the batch's `b·d` entries,
    /// as burn's autodiff forms them; returns the loss.
    fn backward(&self, wk: &mut Work, eps: &[f32]) -> f32 {
        let (b, d) = (wk.y.rows, self.d);
        let inv = 1.0 / (b * d) as f32;
        let mut sq = 0f64;
        for i in 0..b {
            for j in 0..d {
                let diff = wk.y.v[j * b + i] - eps[i * d + j];
                sq += f64::from(diff * diff);
                wk.dy.v[j * b + i] = diff * inv + diff * inv;
            }
        }
        let nb = wk.blocks.len();
        layer_grads(&self.w, 1 + 2 * nb, &wk.a, &wk.dy, &mut wk.g, Some(&mut wk.t1));
        silu_grad(&wk.h.v, &wk.t1.v, &mut wk.dh.v, false);
        for (k, [hin, a1, z1, a2]) in wk.blocks.iter().enumerate().rev() {
            layer_grads(&self.w, 2 + 2 * k, a2, &wk.dh, &mut wk.g, Some(&mut wk.t1));
            silu_grad(&z1.v, &wk.t1.v, &mut wk.t2.v, false);
            layer_grads(&self.w, 1 + 2 * k, a1, &wk.t2, &mut wk.g, Some(&mut wk.t1));
            silu_grad(&hin.v, &wk.t1.v, &mut wk.dh.v, true);
        }
        layer_grads(&self.w, 0, &wk.x0, &wk.dh, &mut wk.g, None);
        (sq / (b * d) as f64) as f32
    }

    /// One step of [`crate::train`]'s loop on these draws: gradients, Adam, EMA; the loss.
    fn step(&mut self, draw: &Draw, lr: f64, ema_decay: f64, wk: &mut Work) -> f32 {
        self.forward(draw, wk);
        let loss = self.backward(wk, &draw.eps);
        self.adam_time += 1;
        let t = self.adam_time as i32;
        let c2 = (1.0 - BETA_2.powi(t)).sqrt();
        let factor = c2 / (1.0 - BETA_1.powi(t));
        let decay = crate::ema::decay_at(ema_decay, self.step);
        let k = [factor, lr as f32, EPSILON * c2, decay as f32, (1.0 - decay) as f32];
        for (i, gi) in wk.g.iter().enumerate() {
            let (w, m, v, e) = (&mut self.w[i].v, &mut self.m[i].v, &mut self.v[i].v, &mut self.ema[i].v);
            adam_ema(w, &gi.v, m, v, e, &k);
        }
        self.step += 1;
        loss
    }
}

/// The host run as the shared loop sees it; `skeleton` lends burn's modules (and their
/// parameter ids) for checkpoints and the returned state.
struct HostRun<'a, B: AutodiffBackend> {
    state: HostState,
    work: Work,
    skeleton: TrainState<B>,
    data: &'a HostData,
    cfg: &'a TrainConfig,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> Trainer for HostRun<'_, B> {
    type Inner = B::InnerBackend;
    fn steps_done(&self) -> u64 {
        self.state.step
    }
    fn advance(&mut self) -> Tensor<B::InnerBackend, 1> {
        let draw = Draw::new(self.data, self.cfg, self.state.step);
        let loss = self.state.step(&draw, self.cfg.run.lr, self.cfg.run.ema_decay, &mut self.work);
        Tensor::from_data(TensorData::new(vec![loss], [1]), self.device)
    }
    fn weights_finite(&self) -> bool {
        self.state.w.iter().all(|t| t.v.iter().all(|x| x.is_finite()))
    }
    fn save(&self, dir: &Path) -> crate::error::Result<()> {
        save(&dir.join(checkpoint::FILE), &self.state.to_burn(&self.skeleton), self.cfg)
    }
}

/// [`crate::train`] with the step computed on the host (this module's doc): the same
/// settings, run directory, checkpoints, metrics and resumption, several times faster on
/// a CPU; `B` only holds the returned state and encodes the checkpoints. `batch_split` is
/// ignored (the host step is one thread; a sweep runs one net per core).
///
/// # Errors
/// As [`crate::train`].
pub fn train_host<B: AutodiffBackend>(
    data: faer::MatRef<'_, f64>,
    cfg: &TrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<TrainState<B>> {
    cfg.check()?;
    let host = HostData::new(data, cfg.model.d)?;
    let skeleton =
        open_run(run_dir, |ck| load::<B>(ck, cfg, device), || TrainState::new(cfg, device), |cpath| cfg.save(cpath))?;
    let state = HostState::from_burn(&skeleton)?;
    let work = Work::new(&state.w, cfg.run.batch_size, cfg.model.d, cfg.model.emb_dim);
    let mut run = HostRun { state, work, skeleton, data: &host, cfg, device };
    run_loop(&mut run, &cfg.run, run_dir, on_log)?;
    Ok(run.state.to_burn(&run.skeleton))
}

/// Trains the toy network with the step that suits the device: [`train_host`] when `on_cpu`
/// and the batch is not split, otherwise burn's [`crate::train`] (a GPU backend, or a batch
/// split over cores, which only burn's step does). The binaries call it with
/// `on_cpu = !cfg!(feature = "cuda")`.
///
/// # Errors
/// As [`crate::train`].
pub fn train_toy<B: AutodiffBackend>(
    data: faer::MatRef<'_, f64>,
    cfg: &TrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
    on_cpu: bool,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<TrainState<B>> {
    if on_cpu && cfg.run.batch_split <= 1 {
        train_host::<B>(data, cfg, run_dir, device, on_log)
    } else {
        crate::train::<B>(data, cfg, run_dir, device, on_log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResidualMlpConfig;
    use burn::backend::{Autodiff, Flex};
    type B = Autodiff<Flex>;

    fn data(n: usize, d: usize) -> faer::Mat<f64> {
        faer::Mat::from_fn(n, d, |i, j| ((i * 31 + j * 17) % 23) as f64 / 11.0 - 1.0)
    }

    /// The SiLU passes compiled for this CPU's vectors give the baseline build's bits
    /// (spanning `exp`'s range: large negative, near zero, large positive inputs).
    #[test]
    fn the_wide_silu_passes_are_the_baseline_bit_for_bit() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.037 * (1.0 + (i % 7) as f32)).collect();
        let g: Vec<f32> = (0..1000).map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0).collect();
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
        let (mut a, mut b) = (vec![0.0; 1000], vec![0.0; 1000]);
        silu_into(&x, &mut a);
        silu_body(&x, &mut b);
        assert!(same(&a, &b), "silu");
        let (mut a, mut d) = (g.clone(), g.clone());
        silu_grad(&x, &g, &mut a, true);
        silu_grad_body(&x, &g, &mut d, true);
        assert!(same(&a, &d), "silu'");
        // Every copy this CPU runs, not only the widest.
        #[cfg(target_arch = "x86_64")]
        for (isa, on) in [("avx512", crate::wide::avx512()), ("avx2", crate::wide::avx2())] {
            let (mut c, mut e) = (vec![0.0; 1000], g.clone());
            // SAFETY: each copy runs only where its instruction set was detected.
            match (isa, on) {
                ("avx512", true) => unsafe { (silu_into::avx512(&x, &mut c), silu_grad::avx512(&x, &g, &mut e, true)) },
                ("avx2", true) => unsafe { (silu_into::avx2(&x, &mut c), silu_grad::avx2(&x, &g, &mut e, true)) },
                _ => continue,
            };
            assert!(same(&c, &b) && same(&e, &d), "{isa}");
        }
    }

    /// The Adam + EMA pass compiled for this CPU's vectors gives the baseline build's bits.
    #[test]
    fn the_wide_adam_ema_pass_is_the_baseline_bit_for_bit() {
        let n = 777;
        let f = |s: usize, c: f32| (0..n).map(|i| (((i * s) % 29) as f32 / 14.0 - 1.0) * c).collect::<Vec<f32>>();
        let (g, k) = (f(7, 0.3), [1.7f32, 1e-3, 1e-8, 0.999, 0.001]);
        let (mut a, mut b) =
            ([f(3, 1.0), f(5, 0.01), f(11, 1e-4), f(13, 0.5)], [f(3, 1.0), f(5, 0.01), f(11, 1e-4), f(13, 0.5)]);
        for v in [&mut a[2], &mut b[2]] {
            v.iter_mut().for_each(|x| *x = x.abs());
        }
        let fresh = a.clone();
        {
            let [w, m, v, e] = &mut a;
            adam_ema(w, &g, m, v, e, &k);
        }
        {
            let [w, m, v, e] = &mut b;
            adam_ema_body(w, &g, m, v, e, &k);
        }
        let same = |a: &[Vec<f32>; 4], b: &[Vec<f32>; 4]| {
            a.iter().zip(b).all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()))
        };
        assert!(same(&a, &b));
        // Every copy this CPU runs, not only the widest.
        #[cfg(target_arch = "x86_64")]
        for (isa, on) in [("avx512", crate::wide::avx512()), ("avx2", crate::wide::avx2())] {
            let mut c = fresh.clone();
            let [w, m, v, e] = &mut c;
            // SAFETY: each copy runs only where its instruction set was detected.
            match (isa, on) {
                ("avx512", true) => unsafe { adam_ema::avx512(w, &g, m, v, e, &k) },
                ("avx2", true) => unsafe { adam_ema::avx2(w, &g, m, v, e, &k) },
                _ => continue,
            }
            assert!(same(&c, &b), "{isa}");
        }
    }

    /// The host copy of a state and back gives the same numbers, Adam's moments included.
    #[test]
    fn the_state_survives_the_round_trip() {
        let cfg = TrainConfig::new(ResidualMlpConfig::new(3).with_hidden(8)).with_steps(5).with_batch_size(4);
        let dev = Default::default();
        let st = crate::train::<B>(data(10, 3).as_ref(), &cfg, None, &dev, &mut |_| ControlFlow::Continue(())).unwrap();
        let host = HostState::from_burn(&st).unwrap();
        assert_eq!((host.adam_time, host.step), (5, 5));
        assert!(host.m.iter().any(|t| t.v.iter().any(|&x| x != 0.0)));
        let back = HostState::from_burn(&host.to_burn(&st)).unwrap();
        for (a, b) in [(&host.w, &back.w), (&host.ema, &back.ema), (&host.m, &back.m), (&host.v, &back.v)] {
            assert!(a.iter().zip(b).all(|(x, y)| x.v == y.v && (x.rows, x.cols) == (y.rows, y.cols)));
        }
    }

    /// Every parameter's gradient from burn's autodiff, in visiting order (burn's layout).
    struct Grads<'a>(&'a burn::optim::GradientsParams, Vec<Vec<f32>>);

    impl ModuleVisitor<B> for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let g = self.0.get::<Flex, D>(p.id).expect("every parameter has a gradient");
            self.1.push(g.into_data().to_vec::<f32>().expect("f32"));
        }
    }

    /// The hand-written backward pass gives burn's autodiff gradients (0 to 3 blocks, an
    /// embedding of 6, a batch of 37 rows, noise levels over the whole range), to 2e-5 of
    /// each tensor's largest.
    #[test]
    fn the_host_gradients_are_burns() {
        let (d, n) = (5, 40);
        let x = data(n, d);
        let host = HostData::new(x.as_ref(), d).unwrap();
        for (blocks, step) in [(2, 0), (2, 7), (0, 3), (1, 4), (3, 5)] {
            let model = ResidualMlpConfig::new(d).with_hidden(16).with_blocks(blocks).with_emb_dim(6);
            let cfg = TrainConfig::new(model).with_batch_size(37);
            let dev = Default::default();
            let st = TrainState::<B>::new(&cfg, &dev).unwrap();
            let draw = Draw::new(&host, &cfg, step);
            let (loss, grads) = crate::train::batch_loss(&st.model, &draw, 0..37, None, &dev);
            let grads = burn::optim::GradientsParams::from_grads(grads, &st.model);
            let mut want = Grads(&grads, Vec::new());
            st.model.visit(&mut want);
            let hs = HostState::from_burn(&st).unwrap();
            let mut wk = Work::new(&hs.w, 37, d, cfg.model.emb_dim);
            hs.forward(&draw, &mut wk);
            let l = hs.backward(&mut wk, &draw.eps);
            let got = &wk.g;
            let loss = loss.into_scalar();
            assert!((l - loss).abs() <= 1e-5 * loss, "loss {l} vs {loss}");
            assert_eq!(got.len(), want.1.len());
            for (k, (g, w)) in got.iter().zip(&want.1).enumerate() {
                let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = g.to_burn().iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(scale > 0.0 && err <= 2e-5 * scale, "{blocks} blocks, tensor {k}: {err} of {scale}");
            }
        }
    }

    fn weights(st: &TrainState<B>) -> Vec<f32> {
        read(&st.ema).into_iter().flat_map(|(_, _, v)| v).collect()
    }

    fn largest_gap(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// A host run follows burn's run of the same settings: after 300 steps every EMA weight
    /// lies within 1e-5 of burn's (measured 2e-7: rounding alone; a step moves a weight by up to lr = 1e-3),
    /// while the run of another seed differs from it by more than 1e-2 (the control).
    #[test]
    fn a_host_run_follows_the_burn_run() {
        let cfg = TrainConfig::new(ResidualMlpConfig::new(4).with_hidden(16))
            .with_steps(300)
            .with_batch_size(16)
            .with_ema_decay(0.9);
        let (dev, x) = (Default::default(), data(30, 4));
        let go = || |_: &LogRow| ControlFlow::Continue(());
        let burn = weights(&crate::train::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).unwrap());
        let host = weights(&train_host::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).unwrap());
        let other = weights(&train_host::<B>(x.as_ref(), &cfg.clone().with_seed(1), None, &dev, &mut go()).unwrap());
        let (gap, control) = (largest_gap(&burn, &host), largest_gap(&burn, &other));
        eprintln!("host vs burn {gap:e}, other seed {control:e}");
        assert!(gap <= 1e-5 && control > 1e-2, "host vs burn {gap}, other seed {control}");
    }

    /// The resumption tests' run (200 steps, checkpoints every 60), its data and a fresh
    /// temporary run directory named by `tag`.
    fn resume_case(tag: &str) -> (TrainConfig, faer::Mat<f64>, std::path::PathBuf) {
        let cfg = TrainConfig::new(ResidualMlpConfig::new(3).with_hidden(8))
            .with_steps(200)
            .with_batch_size(8)
            .with_checkpoint_every(60)
            .with_log_every(20);
        let dir = std::env::temp_dir().join(format!("geomem-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (cfg, data(20, 3), dir)
    }

    /// Stops a run at its log row of step 140 (as a crash would): it resumes from step 120.
    fn stop_after_130(r: &LogRow) -> ControlFlow<()> {
        if r.step >= 130 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// A host run stopped after step 130 and resumed from its run directory (its checkpoint
    /// of step 120) ends with the uninterrupted run's weights bit for bit, and burn's trainer
    /// resumes the host's checkpoint (the same format) to the host run's weights within
    /// rounding.
    #[test]
    fn host_runs_resume_bit_for_bit_and_burn_resumes_them() {
        let (cfg, x, dir) = resume_case("host-resume");
        let dev = Default::default();
        let whole =
            weights(&train_host::<B>(x.as_ref(), &cfg, None, &dev, &mut |_| ControlFlow::Continue(())).unwrap());
        train_host::<B>(x.as_ref(), &cfg, Some(&dir), &dev, &mut stop_after_130).unwrap();
        let copy = dir.with_extension("burn");
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["config.json", "checkpoint.bin", "metrics.csv"] {
            std::fs::copy(dir.join(f), copy.join(f)).unwrap();
        }
        let go = || |_: &LogRow| ControlFlow::Continue(());
        let resumed = weights(&train_host::<B>(x.as_ref(), &cfg, Some(&dir), &dev, &mut go()).unwrap());
        let by_burn = weights(&crate::train::<B>(x.as_ref(), &cfg, Some(&copy), &dev, &mut go()).unwrap());
        let _ = (std::fs::remove_dir_all(&dir), std::fs::remove_dir_all(&copy));
        assert_eq!(resumed, whole);
        let gap = largest_gap(&by_burn, &whole);
        assert!(gap <= 1e-5, "burn resuming the host run: {gap}");
    }

    /// `train_toy` picks the host step on the CPU with an unsplit batch and burn's step
    /// otherwise: each result equals the chosen trainer's bit for bit (and the two differ).
    #[test]
    fn train_toy_picks_the_step() {
        let cfg = TrainConfig::new(ResidualMlpConfig::new(3).with_hidden(8)).with_steps(30).with_batch_size(8);
        let (dev, x) = (Default::default(), data(12, 3));
        let go = || |_: &LogRow| ControlFlow::Continue(());
        let run = |c: &TrainConfig, cpu| weights(&train_toy::<B>(x.as_ref(), c, None, &dev, cpu, &mut go()).unwrap());
        let host = weights(&train_host::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).unwrap());
        let burn = weights(&crate::train::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).unwrap());
        let split = cfg.clone().with_batch_split(2);
        let burn_split = weights(&crate::train::<B>(x.as_ref(), &split, None, &dev, &mut go()).unwrap());
        assert_ne!(host, burn);
        assert_eq!(run(&cfg, true), host);
        assert_eq!(run(&cfg, false), burn);
        assert_eq!(run(&split, true), burn_split);
    }

    /// The host step resumes a run that burn's step checkpointed (Adam's moments and step
    /// read back from burn's records): it ends within 1e-5 of the uninterrupted burn run.
    #[test]
    fn the_host_step_resumes_a_burn_run() {
        let (cfg, x, dir) = resume_case("burn-to-host");
        let dev = Default::default();
        let go = || |_: &LogRow| ControlFlow::Continue(());
        let whole = weights(&crate::train::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).unwrap());
        crate::train::<B>(x.as_ref(), &cfg, Some(&dir), &dev, &mut stop_after_130).unwrap();
        let resumed = train_host::<B>(x.as_ref(), &cfg, Some(&dir), &dev, &mut go()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(resumed.step, 200);
        let gap = largest_gap(&weights(&resumed), &whole);
        assert!(gap <= 1e-5, "host resuming burn's run: {gap}");
    }
}
