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

use crate::checkpoint::{self, Rec};
use crate::draws::{log_uniform_sigmas, noisy_rows, HostData};
use crate::ema::EmaNet;
use crate::error::{io, param, NetsError};
use crate::metrics::LogRow;
use crate::model::{ResidualMlp, ResidualMlpConfig};
use crate::split::{mse_and_grads, split_grads};
use crate::train_loop::{
    config_from_json, loop_builders, mix, open_run, run_loop, weights_finite, LoopConfig, Trainer,
};
use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::record::Recorder;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use faer::MatRef;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::ControlFlow;
use std::path::Path;

/// Settings of a training run; saved as `config.json` in the run directory.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Network settings.
    pub model: ResidualMlpConfig,
    /// The loop's settings: steps, batch, learning rate, EMA, seed, cadence.
    #[config(default = "LoopConfig::new()")]
    pub run: LoopConfig,
    /// Smallest noise level.
    #[config(default = 0.01)]
    pub sigma_min: f64,
    /// Largest noise level.
    #[config(default = 50.0)]
    pub sigma_max: f64,
}

loop_builders!(TrainConfig);

impl TrainConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`].
    pub fn check(&self) -> crate::error::Result<()> {
        self.model.check()?;
        self.run.check()?;
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
        )?;
        // One step holds a few batch × width activations: keep one below 2^31 entries.
        let m = &self.model;
        let rows = (self.run.batch_size as u128).checked_mul((m.d + m.emb_dim + m.hidden) as u128);
        param(
            "batch_size",
            self.run.batch_size,
            rows.is_some_and(|r| r < 1 << 31),
            "batch_size × (d + emb_dim + hidden) must stay below 2^31",
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
            && self.run.same_run(&other.run)
            && self.sigma_min == other.sigma_min
            && self.sigma_max == other.sigma_max
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

/// The random draws of one training step: noise levels (`b`), noisy inputs and noises
/// (`b × d`, row-major). A function of `(cfg.run.seed, step)` only.
pub(crate) struct Draw {
    pub(crate) sigma: Vec<f32>,
    pub(crate) xt: Vec<f32>,
    pub(crate) eps: Vec<f32>,
}

impl Draw {
    pub(crate) fn new(data: &HostData, cfg: &TrainConfig, step: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(cfg.run.seed, step));
        let sigma = log_uniform_sigmas(&mut rng, cfg.run.batch_size, cfg.sigma_min, cfg.sigma_max);
        let (xt, eps) = noisy_rows(&mut rng, data, &sigma, |rng, _| rng.random_range(0..data.n));
        Self { sigma, xt, eps }
    }
}

impl<B: AutodiffBackend> TrainState<B> {
    /// A fresh run: weights drawn on the host from `cfg.run.seed`.
    ///
    /// # Errors
    /// As [`TrainConfig::check`].
    pub fn new(cfg: &TrainConfig, device: &B::Device) -> crate::error::Result<Self> {
        cfg.check()?;
        let model: ResidualMlp<B> = cfg.model.init_seeded(device, cfg.run.seed)?;
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
        let (grads, loss) = if cfg.run.batch_split <= 1 {
            let (loss, grads) = batch_loss(&self.model, &draw, 0..cfg.run.batch_size, None, device);
            (GradientsParams::from_grads(grads, &self.model), loss)
        } else {
            let total = cfg.run.batch_size * data.d;
            split_grads(&self.model, cfg.run.batch_size, cfg.run.batch_split, |copy, rows| {
                batch_loss(copy, &draw, rows, Some(total), device)
            })
        };
        self.model = self.optim.step(cfg.run.lr, self.model.clone(), grads);
        self.ema = crate::ema::update(self.ema.clone(), &self.model, cfg.run.ema_decay, self.step);
        self.step += 1;
        loss
    }
}

/// The ε-MSE of the draws `rows` of `draw` and its gradients: the mean over those rows
/// (`total = None`), or their sum of squares over `total` entries (a part of a split
/// batch, so that the parts' losses and gradients add up to the whole batch's).
pub(crate) fn batch_loss<B: AutodiffBackend>(
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
    let state =
        open_run(run_dir, |ck| load::<B>(ck, cfg, device), || TrainState::new(cfg, device), |cpath| cfg.save(cpath))?;
    let mut run = ToyRun { state, data: &host, cfg, device };
    run_loop(&mut run, &cfg.run, run_dir, on_log)?;
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
        save(&dir.join(checkpoint::FILE), &self.state, self.cfg)
    }
}

// The toy network's checkpoints (the layout of `checkpoint.rs`, the settings a
// `TrainConfig`).

/// Encodes `state` into checkpoint bytes.
///
/// # Errors
/// [`NetsError::Record`] when a record cannot be encoded.
pub fn encode<B: AutodiffBackend>(state: &TrainState<B>, cfg: &TrainConfig) -> crate::error::Result<Vec<u8>> {
    let config = serde_json::to_value(cfg).map_err(checkpoint::rec_err)?;
    checkpoint::encode_parts(state.step, config, &state.model, &state.ema, &state.optim)
}

/// Writes `state` to `path` atomically (temporary file, fsync, rename).
///
/// # Errors
/// [`NetsError::Io`], [`NetsError::Record`].
pub fn save<B: AutodiffBackend>(path: &Path, state: &TrainState<B>, cfg: &TrainConfig) -> crate::error::Result<()> {
    checkpoint::write_atomic(path, &encode(state, cfg)?)
}

/// Decodes checkpoint bytes for the run `cfg`.
///
/// # Errors
/// [`NetsError::CorruptCheckpoint`] for a damaged file, a checkpoint of another run
/// (different network or training settings) or records that do not decode.
pub fn decode<B: AutodiffBackend>(
    path: &Path,
    bytes: &[u8],
    cfg: &TrainConfig,
    device: &B::Device,
) -> crate::error::Result<TrainState<B>> {
    let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
    let (step, config, [m, e, o]) = checkpoint::sections(path, bytes)?;
    let stored: TrainConfig = config_from_json(config).map_err(|e| bad(format!("config: {e}")))?;
    if !stored.same_run(cfg) {
        return Err(bad("the checkpoint belongs to a run with other settings".into()));
    }
    let model: ResidualMlp<B> = cfg.model.init(device)?;
    let ema: ResidualMlp<B::InnerBackend> = cfg.model.init(device)?;
    let (model, ema, optim) = checkpoint::load_parts(path, [m, e, o], model, ema, &AdamConfig::new(), device)?;
    Ok(TrainState { model, ema, optim, step })
}

/// Reads and decodes `path`.
///
/// # Errors
/// [`NetsError::Io`] when unreadable, otherwise as [`decode`].
pub fn load<B: AutodiffBackend>(
    path: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> crate::error::Result<TrainState<B>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    decode(path, &bytes, cfg, device)
}

impl<B: Backend> EmaNet<B> for ResidualMlp<B> {
    type Config = TrainConfig;
    fn load_ema(path: &Path, device: &B::Device) -> crate::error::Result<(Self, TrainConfig)> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let (_, config, [_, e, _]) = checkpoint::sections(path, &bytes)?;
        let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
        let cfg: TrainConfig = config_from_json(config).map_err(|e| bad(format!("config: {e}")))?;
        cfg.check()?;
        let ema: ResidualMlp<B> = cfg.model.init(device)?;
        let record =
            Recorder::<B>::load(&Rec::default(), e.to_vec(), device).map_err(|e| bad(format!("EMA record: {e}")))?;
        Ok((checkpoint::load_checked(ema, record, "EMA").map_err(bad)?, cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::{Module, ModuleVisitor, Param};
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

    /// A batch whose activations could not be allocated is a clear error, not an overflow
    /// or an abort; the largest batch below the bound passes.
    #[test]
    fn oversized_batches_are_refused() {
        let model = ResidualMlpConfig::new(30);
        let width = 30 + 32 + 128;
        for b in [usize::MAX, usize::MAX / 2, (1 << 31) / width + 1] {
            let err = TrainConfig::new(model.clone()).with_batch_size(b).check().unwrap_err();
            assert!(matches!(err, NetsError::InvalidParameter { .. }), "{b}: {err}");
        }
        assert!(TrainConfig::new(model).with_batch_size((1 << 31) / width - 1).check().is_ok());
    }
}
