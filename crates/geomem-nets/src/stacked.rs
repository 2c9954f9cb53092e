//! A sweep of toy networks (sizes × seeds) trained as one stacked model.
//!
//! Every weight of [`ResidualMlp`] gains a leading model axis (`M × in × out`, biases
//! `M × 1 × out`); a forward pass is one batched matrix product per layer, and one Adam
//! step advances all `M` networks. Net `m` sees only its own data and its own draws (those
//! that [`crate::train`] draws for `cfgs[m]`: `(seed, step)` alone fixes them), and the
//! loss is the sum of the per-net DSM losses, so the gradient of net `m`'s weights is the
//! gradient of its own loss. Adam and the EMA act elementwise, hence every net ends with
//! the weights it would have had if trained alone, up to float rounding of the batched
//! products (tested: `tests/stacked.rs`).
//!
//! Why: on a CPU the per-operation overhead of a small network dominates (one net runs far
//! below the arithmetic limit); stacking pays that overhead once per step for all nets. On
//! a GPU it fills the device with many small nets. The code is generic over the backend.

use crate::checkpoint;
use crate::draws::HostData;
use crate::error::{io, param, NetsError, Result};
use crate::metrics::{open_metrics, METRICS_FILE};
use crate::model::{host_conditioning, ResidualMlp};
use crate::train::{Draw, TrainConfig};
use crate::train_loop::weights_finite;
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::Linear;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::silu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use faer::MatRef;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

/// `M` linear layers of equal shape: `y_m = x_m W_m + b_m`.
#[derive(Module, Debug)]
pub struct StackedLinear<B: Backend> {
    /// `M × in × out`.
    pub weight: Param<Tensor<B, 3>>,
    /// `M × 1 × out`.
    pub bias: Param<Tensor<B, 3>>,
}

impl<B: Backend> StackedLinear<B> {
    fn stack(layers: &[&Linear<B>]) -> Result<Self> {
        let mut w = Vec::with_capacity(layers.len());
        let mut b = Vec::with_capacity(layers.len());
        for l in layers {
            let bias =
                l.bias.as_ref().ok_or_else(|| NetsError::Data("a layer without bias cannot be stacked".into()))?;
            w.push(l.weight.val());
            b.push(bias.val().unsqueeze_dim::<2>(0));
        }
        let (w, b) = (Tensor::stack(w, 0).detach(), Tensor::stack(b, 0).detach());
        Ok(Self { weight: Param::from_tensor(w), bias: Param::from_tensor(b) })
    }

    fn get(&self, m: usize) -> Linear<B> {
        let [_, i, o] = self.weight.dims();
        let w = self.weight.val().narrow(0, m, 1).reshape([i, o]).detach();
        let b = self.bias.val().narrow(0, m, 1).reshape([o]).detach();
        Linear { weight: Param::from_tensor(w), bias: Some(Param::from_tensor(b)) }
    }

    /// `x W + 1 b`: the bias enters through a rank-one batched product (`ones` is
    /// `M × b × 1`), which keeps every operand contiguous (a broadcast add over the middle
    /// axis takes burn Flex's slow strided path, measured at 14 % of a training step).
    fn forward(&self, x: Tensor<B, 3>, ones: &Tensor<B, 3>) -> Tensor<B, 3> {
        x.matmul(self.weight.val()) + ones.clone().matmul(self.bias.val())
    }
}

/// A stacked residual block.
#[derive(Module, Debug)]
pub struct StackedBlock<B: Backend> {
    /// First linear layers.
    pub l1: StackedLinear<B>,
    /// Second linear layers.
    pub l2: StackedLinear<B>,
}

/// `M` networks [`ResidualMlp`] of one configuration, with a leading model axis.
#[derive(Module, Debug)]
pub struct StackedMlp<B: Backend> {
    /// Input layers.
    pub input: StackedLinear<B>,
    /// Residual blocks.
    pub blocks: Vec<StackedBlock<B>>,
    /// Output layers.
    pub output: StackedLinear<B>,
    /// Data dimension.
    pub d: usize,
    /// Embedding size.
    pub emb_dim: usize,
    /// `σ_data · 1e6`, as in [`ResidualMlp`].
    pub sigma_data_micro: usize,
}

impl<B: Backend> StackedMlp<B> {
    /// Stacks networks of one configuration (net `m` becomes slice `m`).
    ///
    /// # Errors
    /// [`NetsError::Data`] for an empty list or networks of different shapes.
    pub fn from_nets(nets: &[ResidualMlp<B>]) -> Result<Self> {
        let first = nets.first().ok_or_else(|| NetsError::Data("no networks to stack".into()))?;
        let shape = checkpoint::shapes::<B, _>(first);
        for n in nets {
            let same = (n.d, n.emb_dim, n.sigma_data_micro) == (first.d, first.emb_dim, first.sigma_data_micro);
            if !same || checkpoint::shapes::<B, _>(n) != shape {
                return Err(NetsError::Data("stacked networks must share one configuration".into()));
            }
        }
        let layer =
            |f: &dyn Fn(&ResidualMlp<B>) -> &Linear<B>| StackedLinear::stack(&nets.iter().map(f).collect::<Vec<_>>());
        let blocks = (0..first.blocks.len())
            .map(|k| Ok(StackedBlock { l1: layer(&|n| &n.blocks[k].l1)?, l2: layer(&|n| &n.blocks[k].l2)? }))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            input: layer(&|n| &n.input)?,
            blocks,
            output: layer(&|n| &n.output)?,
            d: first.d,
            emb_dim: first.emb_dim,
            sigma_data_micro: first.sigma_data_micro,
        })
    }

    /// `σ_data`.
    pub fn sigma_data(&self) -> f64 {
        self.sigma_data_micro as f64 * 1e-6
    }

    /// Number of stacked networks `M`.
    pub fn models(&self) -> usize {
        self.input.weight.dims()[0]
    }

    /// Network `m` on its own.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`] when `m >= M`.
    pub fn net(&self, m: usize) -> Result<ResidualMlp<B>> {
        param("net index", m, m < self.models(), "must be below the number of stacked networks")?;
        Ok(ResidualMlp {
            input: self.input.get(m),
            blocks: self
                .blocks
                .iter()
                .map(|b| crate::model::ResidualBlock { l1: b.l1.get(m), l2: b.l2.get(m) })
                .collect(),
            output: self.output.get(m),
            d: self.d,
            emb_dim: self.emb_dim,
            sigma_data_micro: self.sigma_data_micro,
        })
    }

    /// `ε̂` for inputs `x` (`M × b × d`) with scales `c_in` (`M × b × 1`) and embeddings
    /// (`M × b × emb_dim`): net `m` reads slice `m`.
    pub fn forward(&self, x: Tensor<B, 3>, c_in: Tensor<B, 3>, emb: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_scaled(x * c_in, emb)
    }

    /// As [`StackedMlp::forward`] for inputs already scaled by `c_in`.
    pub fn forward_scaled(&self, x_scaled: Tensor<B, 3>, emb: Tensor<B, 3>) -> Tensor<B, 3> {
        let [m, b, _] = x_scaled.dims();
        let ones = Tensor::ones([m, b, 1], &x_scaled.device());
        let mut h = self.input.forward(Tensor::cat(vec![x_scaled, emb], 2), &ones);
        for blk in &self.blocks {
            h = h.clone() + blk.l2.forward(silu(blk.l1.forward(silu(h), &ones)), &ones);
        }
        self.output.forward(silu(h), &ones)
    }
}

/// Checks that `cfgs` describe stackable runs: valid, and equal in every setting but the
/// seed (same network, batch, learning rate, noise range, EMA, steps).
///
/// # Errors
/// [`NetsError::InvalidParameter`].
pub fn check_stack(cfgs: &[TrainConfig]) -> Result<()> {
    param("stacked runs", cfgs.len(), !cfgs.is_empty(), "at least one run")?;
    for c in cfgs {
        c.check()?;
        param("batch_split", c.run.batch_split, c.run.batch_split == 1, "must be 1 in a stacked run")?;
        let same = c.clone().with_seed(cfgs[0].run.seed);
        let ok = same.same_run(&cfgs[0]) && c.run.steps == cfgs[0].run.steps;
        param("stacked runs", c.run.seed, ok, "must share every setting but the seed")?;
    }
    Ok(())
}

/// Weights, EMA weights, Adam state and step of a stacked sweep.
pub struct StackedTrainState<B: AutodiffBackend> {
    /// Trained weights.
    pub model: StackedMlp<B>,
    /// EMA of the weights.
    pub ema: StackedMlp<B::InnerBackend>,
    /// Adam state (elementwise, so per net).
    pub optim: OptimizerAdaptor<Adam, StackedMlp<B>, B>,
    /// Steps done (by every net).
    pub step: u64,
}

impl<B: AutodiffBackend> StackedTrainState<B> {
    /// Fresh runs: net `m` drawn from `cfgs[m].seed` exactly as [`crate::TrainState::new`].
    ///
    /// # Errors
    /// As [`check_stack`].
    pub fn new(cfgs: &[TrainConfig], device: &B::Device) -> Result<Self> {
        check_stack(cfgs)?;
        let nets = cfgs.iter().map(|c| c.model.init_seeded::<B>(device, c.run.seed)).collect::<Result<Vec<_>>>()?;
        let model = StackedMlp::from_nets(&nets)?;
        let ema = model.valid();
        Ok(Self { model, ema, optim: AdamConfig::new().init(), step: 0 })
    }

    /// The EMA weights of net `m` (for evaluation).
    ///
    /// # Errors
    /// As [`StackedMlp::net`].
    pub fn ema_net(&self, m: usize) -> Result<ResidualMlp<B::InnerBackend>> {
        self.ema.net(m)
    }

    /// One step of every net; returns the per-net losses (`M`, not yet read back).
    fn step(&mut self, data: &[HostData], cfgs: &[TrainConfig], device: &B::Device) -> Tensor<B::InnerBackend, 1> {
        let (m, b, d, e) = (cfgs.len(), cfgs[0].run.batch_size, self.model.d, self.model.emb_dim);
        let (mut xt, mut eps, mut emb) = (Vec::new(), Vec::new(), Vec::new());
        for (h, c) in data.iter().zip(cfgs) {
            let draw = Draw::new(h, c, self.step);
            let (ci, em) = host_conditioning(e, self.model.sigma_data(), &draw.sigma);
            // x c_in on the host: the same f32 product the unstacked network forms.
            xt.extend(draw.xt.chunks(d).zip(&ci).flat_map(|(row, c)| row.iter().map(move |v| v * c)));
            eps.extend(draw.eps);
            emb.extend(em);
        }
        let t = |v: Vec<f32>, w: usize| Tensor::<B, 3>::from_data(TensorData::new(v, [m, b, w]), device);
        let pred = self.model.forward_scaled(t(xt, d), t(emb, e));
        let diff = pred - t(eps, d);
        let per_net = (diff.clone() * diff).sum_dim(2).sum_dim(1).reshape([m]).div_scalar((b * d) as f64);
        let grads = GradientsParams::from_grads(per_net.clone().sum().backward(), &self.model);
        self.model = self.optim.step(cfgs[0].run.lr, self.model.clone(), grads);
        self.ema = crate::ema::update(self.ema.clone(), &self.model, cfgs[0].run.ema_decay, self.step);
        self.step += 1;
        per_net.inner()
    }
}

/// One row of a stacked run's metrics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StackedLogRow {
    /// Steps done by every net.
    pub step: u64,
    /// Loss of the last batch of each net.
    pub losses: Vec<f64>,
    /// Net-steps per second (steps × nets) since the previous row.
    pub net_steps_per_sec: f64,
}

/// File names inside a stacked run directory.
const STACK_CONFIG: &str = "stack.json";

/// Saves a checkpoint unless a weight is not finite (then the error names `last_finite`,
/// the last step whose losses were seen finite, and the previous checkpoint stays).
fn save_stacked<B: AutodiffBackend>(
    dir: &Path,
    s: &StackedTrainState<B>,
    cfgs: &[TrainConfig],
    last_finite: u64,
) -> Result<()> {
    if !weights_finite(&s.model) {
        return Err(NetsError::NonFiniteLoss { step: s.step, loss: f64::NAN, last_finite_step: last_finite });
    }
    let config = serde_json::to_value(cfgs).map_err(|e| NetsError::Record(e.to_string()))?;
    let bytes = checkpoint::encode_parts(s.step, config, &s.model, &s.ema, &s.optim)?;
    checkpoint::write_atomic(&dir.join(checkpoint::FILE), &bytes)
}

fn load_stacked<B: AutodiffBackend>(
    path: &Path,
    cfgs: &[TrainConfig],
    device: &B::Device,
) -> Result<StackedTrainState<B>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
    let (step, config, parts) = checkpoint::sections(path, &bytes)?;
    let serde_json::Value::Array(list) = config else {
        return Err(bad("config: not a list of run settings".into()));
    };
    let stored: Vec<TrainConfig> = list
        .into_iter()
        .map(crate::train_loop::config_from_json)
        .collect::<serde_json::Result<_>>()
        .map_err(|e| bad(format!("config: {e}")))?;
    let same = stored.len() == cfgs.len() && stored.iter().zip(cfgs).all(|(a, b)| a.same_run(b));
    if !same {
        return Err(bad("the checkpoint belongs to a stacked run with other settings".into()));
    }
    let skeleton = StackedTrainState::<B>::new(cfgs, device)?;
    let (model, ema, optim) =
        checkpoint::load_parts(path, parts, skeleton.model, skeleton.ema, &burn::optim::AdamConfig::new(), device)?;
    Ok(StackedTrainState { model, ema, optim, step })
}

/// Starts or resumes the stacked state of `run_dir`.
fn open_state<B: AutodiffBackend>(
    cfgs: &[TrainConfig],
    run_dir: Option<&Path>,
    device: &B::Device,
) -> Result<StackedTrainState<B>> {
    let Some(dir) = run_dir else { return StackedTrainState::new(cfgs, device) };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ck = dir.join(checkpoint::FILE);
    if ck.exists() {
        return load_stacked(&ck, cfgs, device);
    }
    let path = dir.join(STACK_CONFIG);
    let text = serde_json::to_string_pretty(cfgs).map_err(|e| NetsError::Record(e.to_string()))?;
    std::fs::write(&path, text).map_err(io(&path))?;
    StackedTrainState::new(cfgs, device)
}

/// Trains (or resumes) the runs `cfgs` on their datasets `data[m]` as one stacked model.
///
/// Net `m` ends with the weights that [`crate::train`] gives `cfgs[m]` on `data[m]` (to
/// float rounding). With a `run_dir`: `stack.json` (the configurations), `metrics.csv`
/// (`step`, one loss per net, net-steps per second) and `checkpoint.bin` (atomic, every
/// `checkpoint_every` steps and at the end); an existing checkpoint is resumed, so calling
/// again with a larger `steps` continues the same runs. `on_log` may stop early.
///
/// # Errors
/// As [`crate::train`]; [`NetsError::InvalidParameter`] when the runs differ in more than
/// their seeds, [`NetsError::Data`] when `data` and `cfgs` differ in length.
pub fn train_stacked<B: AutodiffBackend>(
    data: &[MatRef<'_, f64>],
    cfgs: &[TrainConfig],
    run_dir: Option<&Path>,
    device: &B::Device,
    on_log: &mut dyn FnMut(&StackedLogRow) -> ControlFlow<()>,
) -> Result<StackedTrainState<B>> {
    check_stack(cfgs)?;
    if data.len() != cfgs.len() {
        return Err(NetsError::Data(format!("{} datasets for {} runs", data.len(), cfgs.len())));
    }
    let host = data.iter().map(|x| HostData::new(*x, cfgs[0].model.d)).collect::<Result<Vec<_>>>()?;
    let mut state = open_state::<B>(cfgs, run_dir, device)?;
    let head = std::iter::once("step".to_string())
        .chain((0..cfgs.len()).map(|m| format!("loss_{m}")))
        .chain(std::iter::once("net_steps_per_sec".into()))
        .collect::<Vec<_>>()
        .join(",");
    let mut metrics = match run_dir {
        Some(dir) => Some(open_metrics(&dir.join(METRICS_FILE), state.step, &head)?),
        None => None,
    };
    let cfg = &cfgs[0];
    let (mut last, mut last_step, mut last_finite) = (Instant::now(), state.step, state.step);
    while state.step < cfg.run.steps {
        let loss = state.step(&host, cfgs, device);
        let s = state.step;
        let log_now = s % cfg.run.log_every == 0 || s == cfg.run.steps;
        let ck_now = run_dir.is_some() && cfg.run.checkpoint_every > 0 && s % cfg.run.checkpoint_every == 0;
        if !(log_now || ck_now) {
            continue;
        }
        let losses: Vec<f64> = loss.into_data().iter::<f32>().map(|v| f64::from(v.elem::<f32>())).collect();
        if let Some(bad) = losses.iter().find(|l| !l.is_finite()) {
            return Err(NetsError::NonFiniteLoss { step: s, loss: *bad, last_finite_step: last_finite });
        }
        if let (Some(dir), true) = (run_dir, ck_now) {
            save_stacked(dir, &state, cfgs, last_finite)?;
        }
        last_finite = s;
        if !log_now {
            continue;
        }
        let rate = ((s - last_step) * cfgs.len() as u64) as f64 / last.elapsed().as_secs_f64().max(1e-9);
        (last, last_step) = (Instant::now(), s);
        let row = StackedLogRow { step: s, losses, net_steps_per_sec: rate };
        if let Some((w, path)) = metrics.as_mut() {
            let cells: Vec<String> = row.losses.iter().map(|l| l.to_string()).collect();
            writeln!(w, "{s},{},{rate}", cells.join(",")).map_err(io(path))?;
            w.flush().map_err(io(path))?;
        }
        if on_log(&row).is_break() {
            return Ok(state);
        }
    }
    if let Some(dir) = run_dir {
        save_stacked(dir, &state, cfgs, last_finite)?;
    }
    Ok(state)
}
