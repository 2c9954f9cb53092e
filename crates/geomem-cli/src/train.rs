//! `geomem train`: train the paper's toy score network (seed 001, Supp. A: a residual MLP,
//! denoising score matching for the VE process, an EMA of the weights) on a data file, in a
//! run directory that survives interruption (rerun the same command to resume).

use crate::backend;
use crate::output::{bar, read_points};
use anyhow::{Context, Result};
use geomem_nets::{save_safetensors, ResidualMlpConfig, TrainConfig};
use std::ops::ControlFlow;
use std::path::PathBuf;

/// Arguments of `geomem train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Training points, one per row: `.npy` (float64/float32/int) or `.csv`/`.csv.gz`.
    #[arg(long)]
    pub data: PathBuf,
    /// Run directory (config.json, metrics.csv, checkpoint.bin, ema.safetensors).
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Total optimisation steps.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Seed of the initialisation and of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Split each batch into this many parts whose gradients are computed in parallel and
    /// summed (1: the plain step). The same numbers on any machine for a given value, but a
    /// different run for each value (a run directory resumes only with its own). 2 trains
    /// about 1.4 times faster on 2 cores (docs/BENCHMARKS.md).
    #[arg(long, default_value_t = 1)]
    pub batch_split: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Hidden width of the residual MLP.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// EMA decay of the weights.
    #[arg(long, default_value_t = 0.9999)]
    pub ema_decay: f64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Steps between metric rows.
    #[arg(long, default_value_t = 100)]
    pub log_every: u64,
    /// Train on the first N points of a seeded permutation of the file (nested subsets:
    /// the points of a smaller N are among those of a larger one); all points when absent.
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the permutation behind --n.
    #[arg(long, default_value_t = 1)]
    pub subset_seed: u64,
    /// Smallest noise level sigma (t = sigma^2) of the training distribution.
    #[arg(long, default_value_t = 0.01)]
    pub sigma_min: f64,
    /// Largest noise level sigma.
    #[arg(long, default_value_t = 50.0)]
    pub sigma_max: f64,
}

/// Runs `geomem train`.
pub fn run(a: &TrainArgs) -> Result<()> {
    let all = read_points(&a.data)?;
    let data = match a.n {
        Some(n) => geomem_data::NestedSubsets::new(all.nrows(), a.subset_seed).subset(all.as_ref(), n)?,
        None => all,
    };
    let cfg = TrainConfig::new(ResidualMlpConfig::new(data.ncols()).with_hidden(a.hidden))
        .with_steps(a.steps)
        .with_seed(a.seed)
        .with_batch_size(a.batch_size)
        .with_batch_split(a.batch_split)
        .with_lr(a.lr)
        .with_ema_decay(a.ema_decay)
        .with_sigma_min(a.sigma_min)
        .with_sigma_max(a.sigma_max)
        .with_checkpoint_every(a.checkpoint_every)
        .with_log_every(a.log_every);
    cfg.check()?;
    // A run directory's config.json (possibly edited by hand) must be a valid configuration.
    let stored = a.run_dir.join("config.json");
    if stored.exists() {
        TrainConfig::read(&stored).with_context(|| format!("run directory {}", a.run_dir.display()))?;
    }
    println!(
        "training on {} points of dimension {} ({} backend), run directory {}",
        data.nrows(),
        data.ncols(),
        backend::name(),
        a.run_dir.display()
    );
    let pb = bar(a.steps, "train");
    let state = backend::train_toy(data.as_ref(), &cfg, Some(&a.run_dir), &mut |r| {
        pb.set_position(r.step);
        pb.set_message(format!("loss {:.4} {:.0} it/s", r.loss_ema, r.steps_per_sec));
        ControlFlow::Continue(())
    })?;
    pb.finish_and_clear();
    save_safetensors(&state.ema, &a.run_dir.join("ema.safetensors"))?;
    println!("done: {} steps; EMA weights in {}", state.step, a.run_dir.join("ema.safetensors").display());
    Ok(())
}
