//! The loop every trainer shares (toy network, DDPM U-Net): the settings they check alike,
//! the step-seeded generator, resuming a run directory, logging, checkpoint cadence and the
//! stop on a non-finite loss or weight.

use crate::checkpoint;
use crate::error::{param, NetsError};
use crate::metrics::{loss_ema_at, open_metrics, LogRow, LogState, METRICS_FILE};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

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
