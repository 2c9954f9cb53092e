//! DDPM training of the [`UNet`] (Ho et al. 2020, as seed 000 trains its image models):
//! linear `β` from `β_min = 10⁻⁴` to `β_max = 2·10⁻²` over `T = 1000` steps, a uniform step
//! `k`, `x_k = √ᾱ_k x₀ + √(1-ᾱ_k) ε`, loss `‖ε̂(x_k, k) - ε‖²` averaged over pixels and batch,
//! Adam (`lr = 10⁻⁴`, `β = (0.9, 0.999)`, `ε = 10⁻⁸` as PyTorch), gradients clipped to global
//! norm 1 (PyTorch's `clip_grad_norm_`), an EMA of the weights.
//!
//! Same run directories as the toy network (`config.json`, `metrics.csv`,
//! `checkpoint.bin` written atomically): every draw of step `k` (batch rows, steps, noise)
//! comes from the host generator seeded by `(seed, k)`, so a run killed and resumed ends with
//! the weights of one that never stopped. Dropout masks come from the backend's generator,
//! reseeded from `(seed, k)` before each step: reproducible and resumable on one backend,
//! but not equal across backends (the paper's MNIST and digits configs have no dropout).
//!
//! The EMA decay at step `k` is `min(decay, (1 + k)/(10 + k))` (as the toy network; the
//! authors' EMA starts at `decay` directly, which over short CPU runs leaves the EMA near
//! the initial weights).

use crate::checkpoint;
use crate::draws::HostData;
use crate::ema::EmaNet;
use crate::error::{param, NetsError};
use crate::metrics::LogRow;
use crate::split::{mse_and_grads, split_grads};
use crate::train_loop::{
    config_from_json, loop_builders, mix, open_run, run_loop, weights_finite, LoopConfig, Trainer,
};
use crate::unet::{UNet, UNetConfig};
use burn::config::Config;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use faer::MatRef;
use geomem_score::DdpmSchedule;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::ops::ControlFlow;
use std::path::Path;

/// Settings of a DDPM training run; saved as `config.json` in the run directory.
#[derive(Config, Debug, PartialEq)]
pub struct DdpmTrainConfig {
    /// Network settings.
    pub model: UNetConfig,
    /// The loop's settings (the toy network's defaults, but `lr = 1e-4`). A `batch_split`
    /// above 1 needs `dropout = 0`: dropout masks come from the backend's one generator,
    /// whose draws would depend on the order the parts run in.
    #[config(default = "LoopConfig::new().with_lr(1e-4)")]
    pub run: LoopConfig,
    /// First `β` of the linear schedule.
    #[config(default = 1e-4)]
    pub beta_min: f64,
    /// Last `β`.
    #[config(default = 2e-2)]
    pub beta_max: f64,
    /// Number of diffusion steps `T`.
    #[config(default = 1000)]
    pub timesteps: usize,
    /// Global gradient-norm bound (0: no clipping).
    #[config(default = 1.0)]
    pub clip_grad: f64,
}

loop_builders!(DdpmTrainConfig);

impl DdpmTrainConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`].
    pub fn check(&self) -> crate::error::Result<()> {
        self.model.check()?;
        self.run.check()?;
        param(
            "batch_split",
            self.run.batch_split,
            self.run.batch_split == 1 || self.model.dropout == 0.0,
            "must be 1 when dropout > 0 (dropout masks come from the backend's one generator)",
        )?;
        param(
            "clip_grad",
            self.clip_grad,
            self.clip_grad.is_finite() && self.clip_grad >= 0.0,
            "must be finite and >= 0",
        )?;
        self.schedule().map(|_| ())
    }

    /// The noise schedule.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`] for a bad `β` range or `T`.
    pub fn schedule(&self) -> crate::error::Result<DdpmSchedule> {
        DdpmSchedule::linear(self.beta_min, self.beta_max, self.timesteps).map_err(|e| NetsError::InvalidParameter {
            name: "schedule",
            value: e.to_string(),
            reason: "beta_min < beta_max < 1, T >= 1",
        })
    }

    /// Reads a `config.json` and checks it.
    ///
    /// # Errors
    /// [`NetsError::Io`], [`NetsError::Config`], [`NetsError::InvalidParameter`].
    pub fn read(path: &Path) -> crate::error::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        let bad = |e: serde_json::Error| NetsError::Config { path: path.to_path_buf(), reason: e.to_string() };
        let cfg: Self = config_from_json(serde_json::from_str(&text).map_err(bad)?).map_err(bad)?;
        cfg.check()?;
        Ok(cfg)
    }

    fn same_run(&self, o: &Self) -> bool {
        self.run.same_run(&o.run)
            && (&self.model, self.beta_min, self.beta_max, self.timesteps, self.clip_grad)
                == (&o.model, o.beta_min, o.beta_max, o.timesteps, o.clip_grad)
    }

    pub(crate) fn adam(&self) -> AdamConfig {
        AdamConfig::new().with_epsilon(1e-8)
    }
}

/// Weights, EMA weights, Adam state and step of a DDPM run.
pub struct DdpmState<B: AutodiffBackend> {
    /// Trained weights.
    pub model: UNet<B>,
    /// EMA of the weights.
    pub ema: UNet<B::InnerBackend>,
    /// Adam state.
    pub optim: OptimizerAdaptor<Adam, UNet<B>, B>,
    /// Steps done.
    pub step: u64,
}

/// The draws of one step: noisy images, their steps, and the noises (row-major `b × d`).
pub(crate) struct Draw {
    pub(crate) xk: Vec<f32>,
    pub(crate) steps: Vec<f32>,
    pub(crate) eps: Vec<f32>,
}

impl Draw {
    pub(crate) fn new(data: &[f32], n: usize, d: usize, ab: &[f64], cfg: &DdpmTrainConfig, step: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(mix(cfg.run.seed, step));
        let b = cfg.run.batch_size;
        let (mut xk, mut steps, mut eps) =
            (Vec::with_capacity(b * d), Vec::with_capacity(b), Vec::with_capacity(b * d));
        for _ in 0..b {
            let i = rng.random_range(0..n);
            let k = rng.random_range(0..ab.len());
            let (a, s) = (ab[k].sqrt() as f32, (1.0 - ab[k]).sqrt() as f32);
            steps.push(k as f32);
            for j in 0..d {
                let e: f32 = StandardNormal.sample(&mut rng);
                eps.push(e);
                xk.push(a * data[i * d + j] + s * e);
            }
        }
        Self { xk, steps, eps }
    }
}

impl Draw {
    /// The ε-MSE of the draws `rows` and its gradients: the mean over those rows
    /// (`total = None`), or their sum of squares over `total` entries (a part of a split
    /// batch, so that the parts add up to the whole batch).
    fn loss<B: AutodiffBackend>(
        &self,
        model: &UNet<B>,
        rows: std::ops::Range<usize>,
        total: Option<usize>,
        device: &B::Device,
    ) -> (Tensor<B::InnerBackend, 1>, B::Gradients) {
        let (c, h) = (model.channels(), model.image_size());
        let d = c * h * h;
        let (m, lo, hi) = (rows.len(), rows.start * d, rows.end * d);
        let x = Tensor::<B, 4>::from_data(TensorData::new(self.xk[lo..hi].to_vec(), [m, c, h, h]), device);
        let eps = Tensor::<B, 4>::from_data(TensorData::new(self.eps[lo..hi].to_vec(), [m, c, h, h]), device);
        mse_and_grads(model.forward(x, model.embed_steps(&self.steps[rows], device)), eps, total)
    }
}

/// Scales every gradient by `min(1, max_norm / (‖g‖ + 10⁻⁶))`, `‖g‖` the norm of all
/// gradients together (PyTorch's `clip_grad_norm_`), without reading it back.
fn clip_global<B: AutodiffBackend>(model: &UNet<B>, grads: &mut GradientsParams, max_norm: f64) {
    struct SumSq<'a, IB: Backend> {
        grads: &'a GradientsParams,
        total: Option<Tensor<IB, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SumSq<'_, B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(p.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    let mut acc = SumSq::<B::InnerBackend> { grads, total: None };
    model.visit(&mut acc);
    let Some(total) = acc.total else { return };
    let coef = (total.sqrt().add_scalar(1e-6).recip().mul_scalar(max_norm)).clamp_max(1.0);
    struct Scale<'a, IB: Backend> {
        grads: &'a mut GradientsParams,
        coef: Tensor<IB, 1>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(p.id) {
                let c = self.coef.clone().reshape([1; D]);
                self.grads.register::<B::InnerBackend, D>(p.id, g * c);
            }
        }
    }
    model.visit(&mut Scale::<B::InnerBackend> { grads, coef });
}

impl<B: AutodiffBackend> DdpmState<B> {
    /// A fresh run: weights drawn on the host from `cfg.run.seed`.
    ///
    /// # Errors
    /// As [`DdpmTrainConfig::check`].
    pub fn new(cfg: &DdpmTrainConfig, device: &B::Device) -> crate::error::Result<Self> {
        cfg.check()?;
        let model: UNet<B> = cfg.model.init_seeded(device, cfg.run.seed)?;
        let ema = model.valid();
        Ok(Self { model, ema, optim: cfg.adam().init(), step: 0 })
    }

    fn step(
        &mut self,
        data: &[f32],
        n: usize,
        ab: &[f64],
        cfg: &DdpmTrainConfig,
        device: &B::Device,
    ) -> Tensor<B::InnerBackend, 1> {
        let draw = Draw::new(data, n, cfg.model.channels * cfg.model.image_size.pow(2), ab, cfg, self.step);
        if cfg.model.dropout > 0.0 {
            B::seed(device, mix(cfg.run.seed ^ 0xD80F_0A7D, self.step));
        }
        let b = cfg.run.batch_size;
        let (mut grads, loss) = if cfg.run.batch_split <= 1 {
            let (loss, grads) = draw.loss(&self.model, 0..b, None, device);
            (GradientsParams::from_grads(grads, &self.model), loss)
        } else {
            let total = draw.eps.len();
            split_grads(&self.model, b, cfg.run.batch_split, |copy, rows| draw.loss(copy, rows, Some(total), device))
        };
        if cfg.clip_grad > 0.0 {
            clip_global(&self.model, &mut grads, cfg.clip_grad);
        }
        self.model = self.optim.step(cfg.run.lr, self.model.clone(), grads);
        self.ema = crate::ema::update(self.ema.clone(), &self.model, cfg.run.ema_decay, self.step);
        self.step += 1;
        loss
    }
}

pub(crate) fn save<B: AutodiffBackend>(
    dir: &Path,
    s: &DdpmState<B>,
    cfg: &DdpmTrainConfig,
) -> crate::error::Result<()> {
    let config = serde_json::to_value(cfg).map_err(|e| NetsError::Record(e.to_string()))?;
    let bytes = checkpoint::encode_parts(s.step, config, &s.model, &s.ema, &s.optim)?;
    checkpoint::write_atomic(&dir.join(checkpoint::FILE), &bytes)
}

/// Reads the checkpoint of a DDPM run for `cfg`.
///
/// # Errors
/// [`NetsError::Io`]; [`NetsError::CorruptCheckpoint`] for a damaged file or one of another
/// run.
pub fn load_ddpm<B: AutodiffBackend>(
    path: &Path,
    cfg: &DdpmTrainConfig,
    device: &B::Device,
) -> crate::error::Result<DdpmState<B>> {
    let bytes = std::fs::read(path).map_err(crate::error::io(path))?;
    let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
    let (step, config, parts) = checkpoint::sections(path, &bytes)?;
    let stored: DdpmTrainConfig = config_from_json(config).map_err(|e| bad(format!("config: {e}")))?;
    if !stored.same_run(cfg) {
        return Err(bad("the checkpoint belongs to a run with other settings".into()));
    }
    let (model, ema): (UNet<B>, UNet<B::InnerBackend>) =
        (cfg.model.init_seeded(device, 0)?, cfg.model.init_seeded(device, 0)?);
    let (model, ema, optim) = checkpoint::load_parts(path, parts, model, ema, &cfg.adam(), device)?;
    Ok(DdpmState { model, ema, optim, step })
}

impl<B: Backend> EmaNet<B> for UNet<B> {
    type Config = DdpmTrainConfig;
    fn load_ema(path: &Path, device: &B::Device) -> crate::error::Result<(Self, DdpmTrainConfig)> {
        use burn::record::Recorder;
        let bytes = std::fs::read(path).map_err(crate::error::io(path))?;
        let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
        let (_, config, [_, e, _]) = checkpoint::sections(path, &bytes)?;
        let cfg: DdpmTrainConfig = config_from_json(config).map_err(|e| bad(format!("config: {e}")))?;
        cfg.check()?;
        let skeleton: UNet<B> = cfg.model.init_seeded(device, 0)?;
        let rec = Recorder::<B>::load(&checkpoint::Rec::default(), e.to_vec(), device)
            .map_err(|e| bad(format!("EMA record: {e}")))?;
        Ok((checkpoint::load_checked(skeleton, rec, "EMA").map_err(bad)?, cfg))
    }
}

/// Trains (or resumes) a DDPM run on `images` (`N × d`, `d = c·h·w`, channel-major).
/// Same contract as [`crate::train`]: a `run_dir` receives `config.json`, `metrics.csv`
/// and `checkpoint.bin` and resumes from it; `on_log` may stop the run early.
///
/// # Errors
/// [`NetsError::InvalidParameter`], [`NetsError::Data`], [`NetsError::NonFiniteLoss`],
/// [`NetsError::CorruptCheckpoint`], [`NetsError::Io`].
pub fn train_ddpm<B: AutodiffBackend>(
    images: MatRef<'_, f64>,
    cfg: &DdpmTrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<DdpmState<B>> {
    let (host, ab, state) = open_ddpm_run::<B>(images, cfg, run_dir, device)?;
    let mut run = DdpmRun { state, data: &host, ab: &ab, cfg, device };
    run_loop(&mut run, &cfg.run, run_dir, on_log)?;
    Ok(run.state)
}

/// The checked settings' data on the host, `ᾱ_k` of every step, and the run's state (resumed
/// from `run_dir`'s checkpoint, or fresh after writing `config.json` there).
pub(crate) fn open_ddpm_run<B: AutodiffBackend>(
    images: MatRef<'_, f64>,
    cfg: &DdpmTrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
) -> crate::error::Result<(HostData, Vec<f64>, DdpmState<B>)> {
    cfg.check()?;
    let d = cfg.model.channels * cfg.model.image_size * cfg.model.image_size;
    let host = HostData::new(images, d)?;
    let sched = cfg.schedule()?;
    let ab: Vec<f64> = (0..cfg.timesteps)
        .map(|k| sched.alpha_bar(k))
        .collect::<Result<_, _>>()
        .map_err(|e| NetsError::Data(e.to_string()))?;
    let state = open_run(
        run_dir,
        |ck| load_ddpm::<B>(ck, cfg, device),
        || DdpmState::new(cfg, device),
        |cpath| cfg.save(cpath),
    )?;
    Ok((host, ab, state))
}

/// A DDPM run as the shared loop sees it.
struct DdpmRun<'a, B: AutodiffBackend> {
    state: DdpmState<B>,
    data: &'a HostData,
    ab: &'a [f64],
    cfg: &'a DdpmTrainConfig,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> Trainer for DdpmRun<'_, B> {
    type Inner = B::InnerBackend;
    fn steps_done(&self) -> u64 {
        self.state.step
    }
    fn advance(&mut self) -> Tensor<B::InnerBackend, 1> {
        self.state.step(&self.data.values, self.data.n, self.ab, self.cfg, self.device)
    }
    fn weights_finite(&self) -> bool {
        weights_finite(&self.state.model)
    }
    fn save(&self, dir: &Path) -> crate::error::Result<()> {
        save(dir, &self.state, self.cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    type B = Autodiff<Flex>;

    /// Global norm of the gradients of `model`, and their concatenation.
    fn grads_of(model: &UNet<B>, grads: &GradientsParams) -> (f64, Vec<f32>) {
        struct Get<'a>(&'a GradientsParams, Vec<f32>);
        impl ModuleVisitor<B> for Get<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                if let Some(g) = self.0.get::<Flex, D>(p.id) {
                    self.1.extend(g.into_data().to_vec::<f32>().unwrap());
                }
            }
        }
        let mut g = Get(grads, Vec::new());
        model.visit(&mut g);
        (g.1.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt(), g.1)
    }

    #[test]
    fn clipping_scales_all_gradients_to_the_global_norm() {
        let dev = Default::default();
        let cfg = UNetConfig::new(8, 1)
            .with_base(16)
            .with_mults(vec![1, 2])
            .with_attn_resolutions(vec![4])
            .with_res_blocks(1)
            .with_groups(8);
        let model: UNet<B> = cfg.init_seeded(&dev, 1).unwrap();
        // At initialisation only the zero output conv has a non-zero gradient; the check runs
        // over every registered gradient.
        let grads = || {
            let x = Tensor::<B, 4>::from_data(
                TensorData::new((0..128).map(|i| (i as f32).sin()).collect::<Vec<_>>(), [2, 1, 8, 8]),
                &dev,
            );
            let loss = model.forward(x, model.embed_steps(&[3.0, 500.0], &dev)).sum();
            GradientsParams::from_grads(loss.backward(), &model)
        };
        let (norm, raw) = grads_of(&model, &grads());
        assert!(norm > 1e-3, "norm {norm}");
        for bound in [norm * 0.25, norm * 4.0] {
            let mut g = grads();
            clip_global(&model, &mut g, bound);
            let (clipped, v) = grads_of(&model, &g);
            let want = norm.min(bound);
            assert!((clipped - want).abs() < 1e-4 * want, "bound {bound}: {clipped} vs {want}");
            let ratio = want / norm;
            for (a, b) in raw.iter().zip(&v) {
                assert!((f64::from(*a) * ratio - f64::from(*b)).abs() < 1e-5 * (1.0 + f64::from(*a).abs()));
            }
        }
    }

    /// A batch split into parts (12 rows in 2, 5 and 12 parts) gives the loss and the
    /// gradients of the whole batch up to f32 rounding, for a U-Net trained a few steps (so
    /// that every layer has a gradient, not only the zero-initialised output).
    #[test]
    fn split_gradients_equal_the_whole_batch() {
        let dev = Default::default();
        let model = UNetConfig::new(8, 1).with_base(16).with_mults(vec![1, 2]).with_res_blocks(1).with_groups(8);
        let cfg = DdpmTrainConfig::new(model).with_batch_size(12).with_lr(1e-2);
        let data: Vec<f32> = (0..20 * 64).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.8).collect();
        let sched = cfg.schedule().unwrap();
        let ab: Vec<f64> = (0..cfg.timesteps).map(|k| sched.alpha_bar(k).unwrap()).collect();
        let mut state = DdpmState::<B>::new(&cfg, &dev).unwrap();
        for _ in 0..5 {
            state.step(&data, 20, &ab, &cfg, &dev);
        }
        let draw = Draw::new(&data, 20, 64, &ab, &cfg, 99);
        let (loss, g) = draw.loss(&state.model, 0..12, None, &dev);
        let (norm, whole) = grads_of(&state.model, &GradientsParams::from_grads(g, &state.model));
        let loss = loss.into_scalar();
        let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        let nonzero = whole.iter().filter(|v| v.abs() > 1e-3 * scale).count();
        assert!(nonzero > whole.len() / 4, "{nonzero} of {} gradients non-negligible", whole.len());
        for parts in [2, 5, 12] {
            let (g, l) = split_grads(&state.model, 12, parts, |copy, rows| draw.loss(copy, rows, Some(12 * 64), &dev));
            let l = l.into_scalar();
            assert!((l - loss).abs() <= 1e-6 * loss.abs(), "{parts} parts: loss {l} vs {loss}");
            let (n2, split) = grads_of(&state.model, &g);
            assert_eq!(split.len(), whole.len());
            let err = split.iter().zip(&whole).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 1e-5 * scale, "{parts} parts: gradient error {err} of {scale} (norms {n2}, {norm})");
        }
    }
}
