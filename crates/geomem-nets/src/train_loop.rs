//! The loop every trainer shares (toy network, DDPM U-Net): the settings they check alike,
//! the step-seeded generator, resuming a run directory, logging, checkpoint cadence and the
//! stop on a non-finite loss or weight.

use crate::checkpoint;
use crate::error::{param, NetsError};
use crate::metrics::{loss_ema_at, open_metrics, LogRow, LogState, METRICS_FILE};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

/// The settings of the loop every trainer shares, nested as `run` in
/// [`crate::TrainConfig`] and [`crate::DdpmTrainConfig`] (`config.json`: `"run": {…}`).
#[derive(Config, Debug, PartialEq)]
pub struct LoopConfig {
    /// Total number of optimisation steps (the paper: 2 000 000 for the toy network, 400 000
    /// for MNIST, 500 000 for CIFAR-10).
    #[config(default = 10000)]
    pub steps: u64,
    /// Batch size.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Parts each batch is split into, their gradients computed in parallel (one thread
    /// each, rayon) and summed in order. 1 (the default) is the plain step; k > 1 gives the
    /// same step up to the rounding of the sum (a different run: resuming needs the same k),
    /// and the same numbers on any number of threads. Worth it for one net on several cores;
    /// a sweep is faster with one net per core and k = 1.
    #[config(default = 1)]
    pub batch_split: usize,
    /// Adam learning rate (the DDPM trainer's default: 1e-4).
    #[config(default = 1e-3)]
    pub lr: f64,
    /// EMA decay; the effective decay at step `k` is `min(decay, (1 + k)/(10 + k))`.
    #[config(default = 0.9999)]
    pub ema_decay: f64,
    /// Seed of the initialisation and of every draw.
    #[config(default = 0)]
    pub seed: u64,
    /// Steps between checkpoints (0: only at the end).
    #[config(default = 1000)]
    pub checkpoint_every: u64,
    /// Steps between metric rows.
    #[config(default = 100)]
    pub log_every: u64,
}

impl LoopConfig {
    /// Checks `steps >= 1`, `batch_size >= 1`, `batch_split` in `1..=batch_size`, a finite
    /// `lr > 0`, `ema_decay` in `[0, 1)`, `log_every >= 1`.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`].
    pub fn check(&self) -> crate::error::Result<()> {
        let (b, k) = (self.batch_size, self.batch_split);
        param("steps", self.steps, self.steps >= 1, "must be >= 1")?;
        param("batch_size", b, b >= 1, "must be >= 1")?;
        param("batch_split", k, (1..=b).contains(&k), "must lie in [1, batch_size]")?;
        param("lr", self.lr, self.lr.is_finite() && self.lr > 0.0, "must be finite and > 0")?;
        param("ema_decay", self.ema_decay, (0.0..1.0).contains(&self.ema_decay), "must lie in [0, 1)")?;
        param("log_every", self.log_every, self.log_every >= 1, "must be >= 1")
    }

    /// The settings that must match for a checkpoint to be resumed (all but `steps`,
    /// `checkpoint_every` and `log_every`).
    pub(crate) fn same_run(&self, o: &Self) -> bool {
        (self.batch_size, self.batch_split, self.lr, self.ema_decay, self.seed)
            == (o.batch_size, o.batch_split, o.lr, o.ema_decay, o.seed)
    }
}

/// `with_steps`, `with_lr`, … on a trainer's configuration, setting its nested
/// [`LoopConfig`] (`run`), so that builders read as before the settings were nested.
macro_rules! loop_builders {
    ($ty:ty) => {
        impl $ty {
            loop_builders!(@one with_steps, steps, u64);
            loop_builders!(@one with_batch_size, batch_size, usize);
            loop_builders!(@one with_batch_split, batch_split, usize);
            loop_builders!(@one with_lr, lr, f64);
            loop_builders!(@one with_ema_decay, ema_decay, f64);
            loop_builders!(@one with_seed, seed, u64);
            loop_builders!(@one with_checkpoint_every, checkpoint_every, u64);
            loop_builders!(@one with_log_every, log_every, u64);
        }
    };
    (@one $name:ident, $field:ident, $t:ty) => {
        #[doc = concat!("With `run.", stringify!($field), "` set ([`crate::LoopConfig`]).")]
        pub fn $name(mut self, value: $t) -> Self {
            self.run.$field = value;
            self
        }
    };
}
pub(crate) use loop_builders;

/// The keys of [`LoopConfig`], written at the top level of a configuration before the loop
/// settings were nested.
const LOOP_KEYS: [&str; 8] =
    ["steps", "batch_size", "batch_split", "lr", "ema_decay", "seed", "checkpoint_every", "log_every"];

/// A training configuration from its JSON form. Older forms still read: loop settings at
/// the top level (before they were nested as `run`) are moved into `run`, and a missing
/// `batch_split` (added after the first release) takes its default 1, so that older run
/// directories and checkpoints open unchanged. A loop setting both inside `run` and at the
/// top level (a hand edit in the old place) is an error, not silently ignored.
pub(crate) fn config_from_json<T: serde::de::DeserializeOwned>(mut value: serde_json::Value) -> serde_json::Result<T> {
    if let Some(obj) = value.as_object_mut() {
        if let Some(k) = LOOP_KEYS.iter().find(|k| obj.contains_key(**k) && obj.contains_key("run")) {
            return Err(serde::de::Error::custom(format!("`{k}` is a loop setting: it belongs inside `run`")));
        }
        if !obj.contains_key("run") {
            let run: serde_json::Map<String, serde_json::Value> =
                LOOP_KEYS.iter().filter_map(|k| obj.remove(*k).map(|v| (k.to_string(), v))).collect();
            obj.insert("run".into(), serde_json::Value::Object(run));
        }
        if let Some(run) = obj.get_mut("run").and_then(|r| r.as_object_mut()) {
            run.entry("batch_split").or_insert(serde_json::Value::from(1));
        }
    }
    serde_json::from_value(value)
}

/// The generator seed of step `step` of a run seeded `seed`.
pub(crate) fn mix(seed: u64, step: u64) -> u64 {
    // splitmix64 of (seed, step): independent streams per step.
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
    cadence: &LoopConfig,
    run_dir: Option<&Path>,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<()> {
    let start = run.steps_done();
    // A resumed run continues the smoothed loss of its last kept row, so that its metrics
    // equal an uninterrupted run's.
    let loss_ema = run_dir.and_then(|dir| loss_ema_at(&dir.join(METRICS_FILE), start));
    let mut metrics = match run_dir {
        Some(dir) => Some(open_metrics(&dir.join(METRICS_FILE), start, "step,loss,loss_ema,steps_per_sec")?),
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

/// Whether every weight of `model` is finite (one read-back per checkpoint).
pub(crate) fn weights_finite<B: Backend, M: Module<B>>(model: &M) -> bool {
    let mut flat = crate::ema::Flatten { out: Vec::new() };
    model.visit(&mut flat);
    if flat.out.is_empty() {
        return true;
    }
    let bad = Tensor::cat(flat.out, 0).is_finite().bool_not().int().sum().into_scalar();
    bad.elem::<i64>() == 0
}
