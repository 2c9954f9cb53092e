//! `geomem sample`: samples of a run directory's EMA network (the reverse SDE over the run's
//! noise levels for the toy network, ancestral DDPM sampling for a U-Net).

use crate::backend::{self, Train};
use crate::output::{spinner, write_matrix};
use anyhow::{ensure, Context, Result};
use geomem_data::{check_memory, matrix_bytes};
use geomem_nets::RunDir;
use std::path::PathBuf;

/// Arguments of `geomem sample`.
#[derive(clap::Args)]
pub struct SampleArgs {
    /// The run directory.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// Sampler steps (a U-Net: at most its schedule's T).
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file, `.npy` or `.csv` (one sample per row).
    #[arg(long, default_value = "samples.npy")]
    pub out: PathBuf,
}

/// Runs `geomem sample`.
pub fn run(a: &SampleArgs) -> Result<()> {
    ensure!(a.n >= 1, "--n must be >= 1");
    geomem_data::PointsFormat::of(&a.out).context("--out")?;
    let run = RunDir::open(&a.run_dir).with_context(|| format!("run directory {}", a.run_dir.display()))?;
    let d = run.config().dim();
    // The sampler holds a few n × d matrices at once.
    check_memory(&format!("{} samples of dimension {d}", a.n), 4 * matrix_bytes(a.n, d))?;
    let pb = spinner(&format!("sampling {} points, {} steps", a.n, a.steps));
    let x = run.sample::<Train>(a.n, a.steps, a.seed, &backend::device());
    pb.finish_and_clear();
    let x = x.with_context(|| format!("sampling run directory {}", a.run_dir.display()))?;
    write_matrix(&a.out, x.as_ref())?;
    println!("{} samples of dimension {d} ({} backend): {}", x.nrows(), backend::name(), a.out.display());
    Ok(())
}
