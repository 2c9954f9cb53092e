//! Denoising score matching for the VE process (seed 001, Supp. A), with an EMA of the
//! weights, atomic checkpoints and exact resumption.
//!
//! Loss (ε-prediction, the DSM loss with weight `σ²`):
//! `L = E_{x₀, σ, ε} ‖ε̂(x₀ + σε, σ) - ε‖² / d`, `ln σ ~ U(ln σ_min, ln σ_max)`, `t = σ²`.
//!
//! All randomness of step `k` (batch indices, `σ`, `ε`) is drawn on the host from
//! `StdRng::seed_from_u64(mix(seed, k))`, so the RNG state of a run is its step counter:
//! a run resumed from the checkpoint of step `k` draws exactly what an uninterrupted run
//! draws from step `k` on.

use crate::checkpoint;
use crate::error::{param, NetsError};

use crate::model::{ResidualMlp, ResidualMlpConfig};
use burn::config::Config;
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use faer::MatRef;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

/// Settings of a training run; saved as `config.json` in the run directory.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Network settings.
    pub model: ResidualMlpConfig,
    /// Total number of optimisation steps (the paper: 2 000 000).
    #[config(default = 10000)]
    pub steps: u64,
    /// Batch size.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Smallest noise level.
    #[config(default = 0.01)]
    pub sigma_min: f64,
    /// Largest noise level.
    #[config(default = 50.0)]
    pub sigma_max: f64,
    /// EMA decay; the effective decay at step `k` is `min(decay, (1 + k)/(10 + k))`.
    #[config(default = 0.9999)]
    pub ema_decay: f64,
    /// Seed of the initialisation and of every draw.
    #[config(default = 0)]
    pub seed: u64,
    /// Parts each batch is split into, their gradients computed in parallel (one thread
    /// each, rayon) and summed in order. 1 (the default) is the plain step; k > 1 gives the
    /// same step up to the rounding of the sum (a different run: resuming needs the same k),
    /// and the same numbers on any number of threads. Worth it for one net on several cores;
    /// a sweep is faster with one net per core and k = 1.
    #[config(default = 1)]
    pub batch_split: usize,
    /// Steps between checkpoints (0: only at the end).
    #[config(default = 1000)]
    pub checkpoint_every: u64,
    /// Steps between metric rows.
    #[config(default = 100)]
    pub log_every: u64,
}

impl TrainConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`].
    pub fn check(&self) -> crate::error::Result<()> {
        self.model.check()?;
        check_loop(self.steps, self.batch_size, self.batch_split, self.lr, self.ema_decay, self.log_every)?;
        param(
            "sigma_min",
            self.sigma_min,
            self.sigma_min.is_finite() && self.sigma_min > 0.0,
            "must be finite and > 0",
        )?;
        param(
            "sigma_max",
            self.sigma_max,
            self.sigma_max.is_finite() && self.sigma_max > self.sigma_min,
            "must be finite and > sigma_min",
        )
    }

    /// Reads a `config.json` written by [`train`] (or by hand) and checks it.
    ///
    /// # Errors
    /// [`NetsError::Io`] when unreadable, [`NetsError::Config`] when it is not a training
    /// configuration, [`NetsError::InvalidParameter`] for a bad setting (an odd or zero
    /// embedding size, a zero width, zero steps, …).
    pub fn read(path: &Path) -> crate::error::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        let bad = |e: serde_json::Error| NetsError::Config { path: path.to_path_buf(), reason: e.to_string() };
        let cfg: Self = config_from_json(serde_json::from_str(&text).map_err(bad)?).map_err(bad)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The settings that must match for a checkpoint to be resumed (all but `steps`,
    /// `checkpoint_every` and `log_every`).
    pub(crate) fn same_run(&self, other: &Self) -> bool {
        self.model == other.model
            && self.batch_size == other.batch_size
            && self.batch_split == other.batch_split
            && self.lr == other.lr
            && self.sigma_min == other.sigma_min
            && self.sigma_max == other.sigma_max
            && self.ema_decay == other.ema_decay
            && self.seed == other.seed
    }
}

/// Everything a run needs to continue: weights, EMA weights, optimizer state and step.
pub struct TrainState<B: AutodiffBackend> {
    /// Trained weights.
    pub model: ResidualMlp<B>,
    /// Exponential moving average of the weights (no autodiff).
    pub ema: ResidualMlp<B::InnerBackend>,
    /// Adam state.
    pub optim: OptimizerAdaptor<Adam, ResidualMlp<B>, B>,
    /// Steps done.
    pub step: u64,
}

/// Checks the settings every trainer shares: `steps >= 1`, `batch_size >= 1`, `batch_split`
/// in `1..=batch_size`, a finite `lr > 0`, `ema_decay` in `[0, 1)`, `log_every >= 1`.
pub(crate) fn check_loop(
    steps: u64,
    batch_size: usize,
    batch_split: usize,
    lr: f64,
    ema_decay: f64,
    log_every: u64,
) -> crate::error::Result<()> {
    param("steps", steps, steps >= 1, "must be >= 1")?;
    param("batch_size", batch_size, batch_size >= 1, "must be >= 1")?;
    param("batch_split", batch_split, (1..=batch_size).contains(&batch_split), "must lie in [1, batch_size]")?;
    param("lr", lr, lr.is_finite() && lr > 0.0, "must be finite and > 0")?;
    param("ema_decay", ema_decay, (0.0..1.0).contains(&ema_decay), "must lie in [0, 1)")?;
    param("log_every", log_every, log_every >= 1, "must be >= 1")
}

/// A training configuration from its JSON form, `batch_split` (added after the first
/// release) taking its default 1 when absent, so that older run directories and checkpoints
/// still read.
pub(crate) fn config_from_json<T: serde::de::DeserializeOwned>(mut value: serde_json::Value) -> serde_json::Result<T> {
    if let Some(obj) = value.as_object_mut() {
        obj.entry("batch_split").or_insert(serde_json::Value::from(1));
    }
    serde_json::from_value(value)
}

/// One row of the metrics CSV.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LogRow {
    /// Steps done.
    pub step: u64,
    /// Loss of the last batch.
    pub loss: f64,
    /// Exponential moving average (0.9 per logged row) of the logged losses.
    pub loss_ema: f64,
    /// Steps per second since the previous row.
    pub steps_per_sec: f64,
}

pub(crate) fn mix(seed: u64, step: u64) -> u64 {
    // splitmix64 of (seed, step): independent streams per step.
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) struct Flatten<B: Backend> {
    pub(crate) out: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.out.push(t.reshape([n]));
    }
}

pub(crate) struct EmaMapper<B: Backend> {
    pub(crate) src: std::vec::IntoIter<Tensor<B, 1>>,
    pub(crate) decay: f64,
}

impl<B: Backend> ModuleMapper<B> for EmaMapper<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(src) = self.src.next() else { return param };
        let decay = self.decay;
        param.map(|e| {
            let dims = e.dims();
            e.mul_scalar(decay) + src.reshape(dims).mul_scalar(1.0 - decay)
        })
    }
}

/// The random draws of one training step: noise levels (`b`), noisy inputs and noises
/// (`b × d`, row-major). A function of `(cfg.seed, step)` only.
pub(crate) struct Draw {
    pub(crate) sigma: Vec<f32>,
    pub(crate) xt: Vec<f32>,
    pub(crate) eps: Vec<f32>,
}

impl Draw {
    pub(crate) fn new(data: &HostData, cfg: &TrainConfig, step: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(cfg.seed, step));
        let sigma = log_uniform_sigmas(&mut rng, cfg.batch_size, cfg.sigma_min, cfg.sigma_max);
        let (xt, eps) = noisy_rows(&mut rng, data, &sigma, |rng, _| rng.random_range(0..data.n));
        Self { sigma, xt, eps }
    }
}

/// `b` noise levels with `ln σ` uniform on `[ln σ_min, ln σ_max]`.
pub(crate) fn log_uniform_sigmas(rng: &mut StdRng, b: usize, sigma_min: f64, sigma_max: f64) -> Vec<f32> {
    let (lmin, lmax) = (sigma_min.ln(), sigma_max.ln());
    (0..b).map(|_| (lmin + (lmax - lmin) * rng.random::<f64>()).exp() as f32).collect()
}

/// Noisy inputs `x_i + σ_k ε_k` and noises `ε_k` (row-major, one row per `σ_k`), the data
/// row of draw `k` given by `row(rng, k)` (drawn before its noise).
pub(crate) fn noisy_rows(
    rng: &mut StdRng,
    data: &HostData,
    sigma: &[f32],
    mut row: impl FnMut(&mut StdRng, usize) -> usize,
) -> (Vec<f32>, Vec<f32>) {
    let d = data.d;
    let (mut xt, mut eps) = (Vec::with_capacity(sigma.len() * d), Vec::with_capacity(sigma.len() * d));
    for (k, s) in sigma.iter().enumerate() {
        let i = row(rng, k);
        for j in 0..d {
            let e: f32 = StandardNormal.sample(rng);
            eps.push(e);
            xt.push(data.values[i * d + j] + s * e);
        }
    }
    (xt, eps)
}

/// The training data as a row-major `f32` buffer, checked.
pub(crate) struct HostData {
    pub(crate) values: Vec<f32>,
    pub(crate) n: usize,
    pub(crate) d: usize,
}

impl HostData {
    pub(crate) fn new(data: MatRef<'_, f64>, d: usize) -> crate::error::Result<Self> {
        if data.nrows() == 0 {
            return Err(NetsError::Data("no training points".into()));
        }
        if data.ncols() != d {
            return Err(NetsError::Data(format!("points have dimension {}, the network expects {d}", data.ncols())));
        }
        let mut values = Vec::with_capacity(data.nrows() * d);
        for i in 0..data.nrows() {
            for j in 0..d {
                let v = data[(i, j)];
                if !v.is_finite() {
                    return Err(NetsError::Data(format!("non-finite value at row {i}, column {j}")));
                }
                values.push(v as f32);
            }
        }
        Ok(Self { values, n: data.nrows(), d })
    }
}

impl<B: AutodiffBackend> TrainState<B> {
    /// A fresh run: weights drawn on the host from `cfg.seed`.
    ///
    /// # Errors
    /// As [`TrainConfig::check`].
    pub fn new(cfg: &TrainConfig, device: &B::Device) -> crate::error::Result<Self> {
        cfg.check()?;
        let model: ResidualMlp<B> = cfg.model.init_seeded(device, cfg.seed)?;
        let ema = model.valid();
        Ok(Self { model, ema, optim: AdamConfig::new().init(), step: 0 })
    }

    /// One optimisation step on a batch drawn from `data`; returns the loss tensor (not yet
    /// read back, so GPU backends stay asynchronous).
    pub(crate) fn step(
        &mut self,
        data: &HostData,
        cfg: &TrainConfig,
        device: &B::Device,
    ) -> Tensor<B::InnerBackend, 1> {
        let draw = Draw::new(data, cfg, self.step);
        let (grads, loss) = if cfg.batch_split <= 1 {
            let (loss, grads) = batch_loss(&self.model, &draw, 0..cfg.batch_size, None, device);
            (GradientsParams::from_grads(grads, &self.model), loss)
        } else {
            let total = cfg.batch_size * data.d;
            split_grads(&self.model, cfg.batch_size, cfg.batch_split, |copy, rows| {
                batch_loss(copy, &draw, rows, Some(total), device)
            })
        };
        self.model = self.optim.step(cfg.lr, self.model.clone(), grads);
        let decay = cfg.ema_decay.min((1.0 + self.step as f64) / (10.0 + self.step as f64));
        let mut flat = Flatten { out: Vec::new() };
        self.model.valid().visit(&mut flat);
        self.ema = self.ema.clone().map(&mut EmaMapper { src: flat.out.into_iter(), decay });
        self.step += 1;
        loss
    }
}

/// The ε-MSE of the draws `rows` of `draw` and its gradients: the mean over those rows
/// (`total = None`), or their sum of squares over `total` entries (a part of a split
/// batch, so that the parts' losses and gradients add up to the whole batch's).
fn batch_loss<B: AutodiffBackend>(
    model: &ResidualMlp<B>,
    draw: &Draw,
    rows: std::ops::Range<usize>,
    total: Option<usize>,
    device: &B::Device,
) -> (Tensor<B::InnerBackend, 1>, B::Gradients) {
    let d = draw.xt.len() / draw.sigma.len();
    let (b, lo, hi) = (rows.len(), rows.start * d, rows.end * d);
    let (cin, emb) = model.conditioning(&draw.sigma[rows], device);
    let xt = Tensor::<B, 2>::from_data(TensorData::new(draw.xt[lo..hi].to_vec(), [b, d]), device);
    let eps = Tensor::<B, 2>::from_data(TensorData::new(draw.eps[lo..hi].to_vec(), [b, d]), device);
    mse_and_grads(model.forward(xt, cin, emb), eps, total)
}

/// `‖pred − eps‖²` as a mean (`total = None`) or as a sum over `total` entries, and its
/// gradients (one backward pass).
pub(crate) fn mse_and_grads<B: AutodiffBackend, const D: usize>(
    pred: Tensor<B, D>,
    eps: Tensor<B, D>,
    total: Option<usize>,
) -> (Tensor<B::InnerBackend, 1>, B::Gradients) {
    let diff = pred - eps;
    let sq = diff.clone() * diff;
    let loss = match total {
        None => sq.mean(),
        Some(n) => sq.sum().mul_scalar(1.0 / n as f64),
    };
    let grads = loss.backward();
    (loss.inner(), grads)
}

/// The gradients of one batch of `b` rows split into `parts` contiguous parts, each part's
/// loss and gradients from `part` (its loss scaled so that the parts add up to the whole
/// batch's) on its own rayon task with a fresh autodiff copy of the weights (so the parts
/// share no graph), summed in part order: the same numbers whatever the number of threads.
pub(crate) fn split_grads<B, M, F>(
    model: &M,
    b: usize,
    parts: usize,
    part: F,
) -> (GradientsParams, Tensor<B::InnerBackend, 1>)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: Fn(&M, std::ops::Range<usize>) -> (Tensor<B::InnerBackend, 1>, B::Gradients) + Sync,
{
    use rayon::prelude::*;
    let jobs: Vec<_> = (0..parts).map(|p| (M::from_inner(model.valid()), p * b / parts..(p + 1) * b / parts)).collect();
    let mut done: Vec<(GradientsParams, Tensor<B::InnerBackend, 1>)> = jobs
        .into_par_iter()
        .map(|(copy, rows)| {
            let (loss, grads) = part(&copy, rows);
            (GradientsParams::from_grads(grads, &copy), loss)
        })
        .collect();
    let (mut grads, mut loss) = done.remove(0);
    for (g, l) in done {
        model.visit(&mut AddGrads { acc: &mut grads, other: g });
        loss = loss + l;
    }
    (grads, loss)
}

/// Adds the gradients `other` into `acc`, parameter by parameter.
struct AddGrads<'a> {
    acc: &'a mut GradientsParams,
    other: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for AddGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let (a, o) =
            (self.acc.remove::<B::InnerBackend, D>(param.id), self.other.remove::<B::InnerBackend, D>(param.id));
        if let Some(sum) = match (a, o) {
            (Some(a), Some(o)) => Some(a + o),
            (a, o) => a.or(o),
        } {
            self.acc.register(param.id, sum);
        }
    }
}

/// Trains (or resumes) a run on `data` (`N × d`).
///
/// With a `run_dir`, the directory receives `config.json`, `metrics.csv` and
/// `checkpoint.bin` (written atomically every `checkpoint_every` steps and at the end). If
/// `checkpoint.bin` already exists the run resumes from it and, because every draw depends
/// only on `(seed, step)`, ends with the same weights as a run that never stopped (up to
/// the determinism of the backend's kernels; exact on the CPU backend). `on_log` is called
/// with every metrics row and may return `ControlFlow::Break` to stop early (as a crash
/// would: no extra checkpoint is written).
///
/// # Errors
/// [`NetsError::InvalidParameter`] for bad settings, [`NetsError::Data`] for bad data,
/// [`NetsError::NonFiniteLoss`] when the loss or the weights stop being finite (training
/// stops there and the last checkpoint, all finite, stays as it was),
/// [`NetsError::CorruptCheckpoint`] for a checkpoint that cannot be resumed (never a silent
/// restart), [`NetsError::Io`] for file errors.
pub fn train<B: AutodiffBackend>(
    data: MatRef<'_, f64>,
    cfg: &TrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<TrainState<B>> {
    cfg.check()?;
    let host = HostData::new(data, cfg.model.d)?;
    let state = open_run(
        run_dir,
        |ck| checkpoint::load::<B>(ck, cfg, device),
        || TrainState::new(cfg, device),
        |cpath| cfg.save(cpath),
    )?;
    let cadence = Cadence { steps: cfg.steps, log_every: cfg.log_every, checkpoint_every: cfg.checkpoint_every };
    let mut run = ToyRun { state, data: &host, cfg, device };
    run_loop(&mut run, &cadence, run_dir, on_log)?;
    Ok(run.state)
}

/// The toy network's run as the shared loop sees it.
struct ToyRun<'a, B: AutodiffBackend> {
    state: TrainState<B>,
    data: &'a HostData,
    cfg: &'a TrainConfig,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> Trainer for ToyRun<'_, B> {
    type Inner = B::InnerBackend;
    fn steps_done(&self) -> u64 {
        self.state.step
    }
    fn advance(&mut self) -> Tensor<B::InnerBackend, 1> {
        self.state.step(self.data, self.cfg, self.device)
    }
    fn weights_finite(&self) -> bool {
        weights_finite(&self.state.model)
    }
    fn save(&self, dir: &Path) -> crate::error::Result<()> {
        checkpoint::save(&dir.join(checkpoint::FILE), &self.state, self.cfg)
    }
}

/// What the shared training loop ([`run_loop`]) needs from a run.
pub(crate) trait Trainer {
    /// The backend the loss comes back on.
    type Inner: Backend;
    /// Steps done.
    fn steps_done(&self) -> u64;
    /// One optimisation step; the loss, not yet read back.
    fn advance(&mut self) -> Tensor<Self::Inner, 1>;
    /// Whether every trained weight is finite.
    fn weights_finite(&self) -> bool;
    /// Writes the checkpoint into `dir`.
    fn save(&self, dir: &Path) -> crate::error::Result<()>;
}

/// How far a run goes and how often it logs and checkpoints.
pub(crate) struct Cadence {
    pub(crate) steps: u64,
    pub(crate) log_every: u64,
    pub(crate) checkpoint_every: u64,
}

/// The state of a run: resumed from `run_dir`'s checkpoint when there is one (`load`),
/// otherwise fresh (`fresh`), after `save_config` wrote `config.json` into a new run
/// directory.
pub(crate) fn open_run<S>(
    run_dir: Option<&Path>,
    load: impl FnOnce(&Path) -> crate::error::Result<S>,
    fresh: impl FnOnce() -> crate::error::Result<S>,
    save_config: impl FnOnce(&Path) -> std::io::Result<()>,
) -> crate::error::Result<S> {
    let Some(dir) = run_dir else { return fresh() };
    std::fs::create_dir_all(dir).map_err(crate::error::io(dir))?;
    let ck = dir.join(checkpoint::FILE);
    if ck.exists() {
        return load(&ck);
    }
    let cpath = dir.join("config.json");
    save_config(&cpath).map_err(crate::error::io(&cpath))?;
    fresh()
}

/// The loop every trainer shares: steps until `cadence.steps`, reads the loss back only on
/// log and checkpoint steps (GPU backends stay asynchronous in between), stops with
/// [`NetsError::NonFiniteLoss`] at the first non-finite loss or weights (the last
/// checkpoint, all finite, is kept), checkpoints into `run_dir`, appends the metric rows
/// to its `metrics.csv`, and returns early when `on_log` breaks (as a crash would: no extra
/// checkpoint). A run that ends writes its final checkpoint.
pub(crate) fn run_loop<T: Trainer>(
    run: &mut T,
    cadence: &Cadence,
    run_dir: Option<&Path>,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<()> {
    let start = run.steps_done();
    // A resumed run continues the smoothed loss of its last kept row, so that its metrics
    // equal an uninterrupted run's.
    let loss_ema = run_dir.and_then(|dir| loss_ema_at(&dir.join("metrics.csv"), start));
    let mut metrics = match run_dir {
        Some(dir) => Some(open_metrics(&dir.join("metrics.csv"), start, "step,loss,loss_ema,steps_per_sec")?),
        None => None,
    };
    let mut log = LogState { loss_ema, last: Instant::now(), last_step: start, last_finite: start };
    let diverged = |step, loss, last_finite| NetsError::NonFiniteLoss { step, loss, last_finite_step: last_finite };
    while run.steps_done() < cadence.steps {
        let loss = run.advance();
        let s = run.steps_done();
        let log_now = s.is_multiple_of(cadence.log_every) || s == cadence.steps;
        let ck_now = run_dir.is_some() && cadence.checkpoint_every > 0 && s.is_multiple_of(cadence.checkpoint_every);
        if !(log_now || ck_now) {
            continue;
        }
        let l = f64::from(loss.into_scalar().elem::<f32>());
        if !l.is_finite() {
            return Err(diverged(s, l, log.last_finite));
        }
        if let (Some(dir), true) = (run_dir, ck_now) {
            if !run.weights_finite() {
                return Err(diverged(s, f64::NAN, log.last_finite));
            }
            run.save(dir)?;
        }
        log.last_finite = s;
        if log_now {
            let row = log.row(s, l);
            if let Some((w, path)) = metrics.as_mut() {
                writeln!(w, "{},{},{},{}", row.step, row.loss, row.loss_ema, row.steps_per_sec)
                    .map_err(crate::error::io(path))?;
                w.flush().map_err(crate::error::io(path))?;
            }
            if on_log(&row).is_break() {
                return Ok(());
            }
        }
    }
    if let Some(dir) = run_dir {
        if !run.weights_finite() {
            return Err(diverged(run.steps_done(), f64::NAN, log.last_finite));
        }
        run.save(dir)?;
    }
    Ok(())
}

/// The smoothed loss and the timing of the metric rows.
struct LogState {
    /// Exponential moving average of the logged losses; `None` before the first row.
    loss_ema: Option<f64>,
    last: Instant,
    last_step: u64,
    /// Last step whose loss (and, at checkpoints, weights) were seen finite.
    last_finite: u64,
}

impl LogState {
    fn row(&mut self, step: u64, loss: f64) -> LogRow {
        let ema = self.loss_ema.map_or(loss, |e| 0.9 * e + 0.1 * loss);
        self.loss_ema = Some(ema);
        let rate = (step - self.last_step) as f64 / self.last.elapsed().as_secs_f64().max(1e-9);
        (self.last, self.last_step) = (Instant::now(), step);
        LogRow { step, loss, loss_ema: ema, steps_per_sec: rate }
    }
}

/// Whether every weight of `model` is finite (one read-back per checkpoint).
pub(crate) fn weights_finite<B: Backend, M: Module<B>>(model: &M) -> bool {
    let mut flat = Flatten { out: Vec::new() };
    model.visit(&mut flat);
    if flat.out.is_empty() {
        return true;
    }
    let bad = Tensor::cat(flat.out, 0).is_finite().bool_not().int().sum().into_scalar();
    bad.elem::<i64>() == 0
}

/// The `loss_ema` of the last row at or before `step` of a metrics file (`None` without one).
fn loss_ema_at(path: &Path, step: u64) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            let s: u64 = f.next()?.parse().ok()?;
            let ema: f64 = f.nth(1)?.parse().ok()?;
            (s <= step).then_some(ema)
        })
        .last()
}

/// Opens `metrics.csv` for appending, dropping rows past `step` (written after the
/// checkpoint a resumed run starts from).
pub(crate) fn open_metrics(
    path: &Path,
    step: u64,
    head: &str,
) -> crate::error::Result<(std::io::BufWriter<std::fs::File>, std::path::PathBuf)> {
    let keep: Vec<String> = match std::fs::read_to_string(path) {
        Ok(s) => s
            .lines()
            .skip(1)
            .filter(|l| l.split(',').next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|k| k <= step))
            .map(String::from)
            .collect(),
        Err(_) => Vec::new(),
    };
    let f = std::fs::File::create(path).map_err(crate::error::io(path))?;
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "{head}").map_err(crate::error::io(path))?;
    for l in keep {
        writeln!(w, "{l}").map_err(crate::error::io(path))?;
    }
    Ok((w, path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    type B = Autodiff<Flex>;

    /// Every parameter's gradient, by name order of the visit.
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);

    impl ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let g = self.0.get::<Flex, D>(p.id).expect("every parameter has a gradient");
            self.1.push(g.into_data().to_vec::<f32>().expect("f32"));
        }
    }

    fn collect(model: &ResidualMlp<B>, g: &GradientsParams) -> Vec<Vec<f32>> {
        let mut c = Collect(g, Vec::new());
        model.visit(&mut c);
        c.1
    }

    /// A batch split into k parts (uneven ones too: 37 rows in 2, 3, 5, 37 parts) gives the
    /// loss and the gradients of the whole batch, up to f32 rounding.
    #[test]
    fn split_gradients_equal_the_whole_batch() {
        let (d, n) = (5, 40);
        let values: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 1.5).collect();
        let data = HostData { values, n, d };
        let cfg = TrainConfig::new(ResidualMlpConfig::new(d).with_hidden(16)).with_batch_size(37);
        let device = Default::default();
        let model: ResidualMlp<B> = cfg.model.init_seeded(&device, 3).unwrap();
        let draw = Draw::new(&data, &cfg, 7);
        let (loss, grads) = batch_loss(&model, &draw, 0..37, None, &device);
        let whole = collect(&model, &GradientsParams::from_grads(grads, &model));
        let loss = loss.into_scalar();
        for parts in [2, 3, 5, 37] {
            let (g, l) =
                split_grads(&model, 37, parts, |copy, rows| batch_loss(copy, &draw, rows, Some(37 * d), &device));
            let l = l.into_scalar();
            assert!((l - loss).abs() <= 1e-6 * loss.abs(), "{parts} parts: loss {l} vs {loss}");
            let split = collect(&model, &g);
            assert_eq!(split.len(), whole.len());
            for (a, b) in split.iter().zip(&whole) {
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(scale > 0.0 && err <= 1e-5 * scale, "{parts} parts: gradient error {err} of {scale}");
            }
        }
    }
}
