//! `geomem inspect`: what a run directory holds: its kind and settings, the step of its
//! checkpoint, its logged losses and files, and for a U-Net what a spectrum of it costs in
//! multiply-adds (`UNetConfig::multiply_adds`).

use crate::output::write_json;
use anyhow::{Context, Result};
use geomem_nets::{RunConfig, RunDir};
use std::path::PathBuf;

/// Arguments of `geomem inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The run directory.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Also write the description as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The description of a run directory as JSON.
fn describe(run: &RunDir) -> Result<serde_json::Value> {
    let settings = match run.config() {
        RunConfig::Toy(c) => serde_json::to_value(c)?,
        RunConfig::Ddpm(c) => serde_json::to_value(c)?,
        other => serde_json::Value::String(format!("{other:?}")),
    };
    let checkpoint = match run.checkpoint_step() {
        Ok(step) => serde_json::json!({ "step": step }),
        Err(e) => serde_json::json!({ "error": format!("{e}") }),
    };
    let m = run.metrics();
    let last = m.last().map(|r| serde_json::json!({ "step": r.step, "loss": r.loss, "loss_ema": r.loss_ema }));
    let files: Vec<String> = std::fs::read_dir(run.path())
        .with_context(|| format!("listing {}", run.path().display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    Ok(serde_json::json!({
        "path": run.path(), "kind": run.config().kind(), "dim": run.config().dim(),
        "steps_planned": run.config().steps(), "checkpoint": checkpoint, "logged_rows": m.len(),
        "last_row": last, "files": files, "settings": settings, "cost": cost(run)?,
    }))
}

/// A U-Net's multiply-adds: per forward image (and its 3 × 3 stride-1 convolutions), a
/// Normal Bundle matrix of `K = 4d` central differences (`8d` forward images) and an exact
/// Jacobian (one forward image and `d` reverse rows, each about a forward image's count);
/// `null` for other nets. As floating-point numbers: the counts are `u128`, which
/// `serde_json::Value` does not hold.
fn cost(run: &RunDir) -> Result<serde_json::Value> {
    let RunConfig::Ddpm(c) = run.config() else { return Ok(serde_json::Value::Null) };
    let m = c.model.multiply_adds()?;
    let (per, d) = (m.total() as f64, run.config().dim() as f64);
    Ok(serde_json::json!({
        "multiply_adds_per_image": per, "conv3x3_per_image": m.conv3x3 as f64,
        "normal_bundle": 8.0 * d * per, "exact_jacobian": (d + 1.0) * per,
    }))
}

/// Runs `geomem inspect`.
pub fn run(a: &InspectArgs) -> Result<()> {
    let run = RunDir::open(&a.run_dir).with_context(|| format!("run directory {}", a.run_dir.display()))?;
    let v = describe(&run)?;
    println!("run directory {}: {} network, d = {}", a.run_dir.display(), v["kind"], v["dim"]);
    match run.checkpoint_step() {
        Ok(step) => println!("checkpoint at step {step} of {}", run.config().steps()),
        Err(e) => println!("no usable checkpoint: {e}"),
    }
    if let (Some(first), Some(last)) = (run.metrics().first(), run.metrics().last()) {
        println!(
            "{} logged rows: loss {:.4} (smoothed {:.4}) at step {}, {:.4} at step {}",
            run.metrics().len(),
            last.loss,
            last.loss_ema,
            last.step,
            first.loss_ema,
            first.step
        );
    }
    if let Some(c) = v["cost"].as_object() {
        println!(
            "multiply-adds: {:.3e} per forward image; a Normal Bundle spectrum (8d images) {:.3e}, an exact Jacobian {:.3e}",
            c["multiply_adds_per_image"].as_f64().unwrap_or(f64::NAN),
            c["normal_bundle"].as_f64().unwrap_or(f64::NAN),
            c["exact_jacobian"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!("settings: {}", v["settings"]);
    if let Some(p) = &a.json {
        write_json(p, &v)?;
    }
    Ok(())
}
