//! `cargo xtask gpu-check`: the CUDA path against the CPU, and its speed, in one JSON report.
//!
//! Built with `--features cuda` the device backend is burn's CUDA backend; without it, the
//! device backend is the CPU (Flex) again, so the command runs everywhere and its
//! comparisons are tested, but then it says `"device_backend": "flex (CPU)"` and claims
//! nothing about CUDA. Parts:
//! 1. the toy net and a small U-Net (`smoke`) trained the same number of steps from the same
//!    seed on the device and on the CPU: final losses and the EMA nets' outputs compared
//!    within stated tolerances (f32 on two devices: the same numbers up to rounding that
//!    training amplifies slowly);
//! 2. timings on the device: toy-net steps/s, a stacked sweep of toy nets (net-steps/s), and
//!    a U-Net (by default the paper's Fashion-MNIST / MNIST one, 24.5M parameters):
//!    training steps/s, forward images/s, and one image spectrum (8d forward images).

use crate::backend::{self, Inner, Train};
use anyhow::Result;
use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_nets::{
    train, train_ddpm, train_stacked, DdpmTrainConfig, ResidualMlpConfig, TrainConfig, TrainedScore, UNetConfig,
    UNetEps,
};
use geomem_score::{ScoreFieldExt, VpEpsModel, VpScore, VpTime};
use geomem_spectral::{normal_bundle_spectrum, NormalBundleParams, Perturbation};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

type Cpu = Flex;
type CpuTrain = Autodiff<Cpu>;

/// Relative tolerance of outputs (largest difference over largest value) between devices.
const OUTPUT_RTOL: f64 = 2e-2;
/// Relative tolerance of the final smoothed training loss between devices.
const LOSS_RTOL: f64 = 2e-2;

#[derive(clap::Args)]
pub struct GpuCheckArgs {
    /// Training steps of each compared net.
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// U-Net timed on the device: a shipped config name or a JSON path (default the paper's
    /// Fashion-MNIST / MNIST U-Net, 24.5M parameters).
    #[arg(long, default_value = "mnist")]
    timed_unet: String,
    /// Timed training steps of that U-Net.
    #[arg(long, default_value_t = 20)]
    timed_steps: u64,
    /// Timed steps of the toy net and of the stacked sweep.
    #[arg(long, default_value_t = 200)]
    toy_steps: u64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "results/gpu_check.json")]
    out: PathBuf,
}

/// Largest absolute difference over the largest absolute value of `a`.
fn rel_diff(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let (mut diff, mut scale) = (0.0f64, 0.0f64);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            diff = diff.max((a[(i, j)] - b[(i, j)]).abs());
            scale = scale.max(a[(i, j)].abs());
        }
    }
    diff / scale.max(f64::MIN_POSITIVE)
}

fn points(n: usize, d: usize, phase: f64) -> Mat<f64> {
    Mat::from_fn(n, d, |i, j| ((i * 7 + j * 3) as f64 * 0.61 + phase).sin() * if j < 2 { 1.0 } else { 0.2 })
}

fn comparison(what: &str, loss: (f64, f64), out: (&Mat<f64>, &Mat<f64>)) -> serde_json::Value {
    let loss_rel = (loss.0 - loss.1).abs() / loss.1.abs().max(f64::MIN_POSITIVE);
    let out_rel = rel_diff(out.1, out.0);
    serde_json::json!({
        "net": what, "loss_device": loss.0, "loss_cpu": loss.1, "loss_rel_diff": loss_rel,
        "output_rel_diff": out_rel, "loss_rtol": LOSS_RTOL, "output_rtol": OUTPUT_RTOL,
        "pass": loss_rel <= LOSS_RTOL && out_rel <= OUTPUT_RTOL,
    })
}

fn toy_cfg(steps: u64, seed: u64) -> TrainConfig {
    TrainConfig::new(ResidualMlpConfig::new(8)).with_steps(steps).with_seed(seed).with_log_every(steps)
}

/// The toy net on the device and on the CPU from one seed.
fn compare_toy(steps: u64) -> Result<serde_json::Value> {
    let data = points(64, 8, 0.0);
    let cfg = toy_cfg(steps, 5);
    let (mut ld, mut lc) = (f64::NAN, f64::NAN);
    let dev = train::<Train>(data.as_ref(), &cfg, None, &backend::device(), &mut |r| {
        ld = r.loss_ema;
        ControlFlow::Continue(())
    })?;
    let cpu = train::<CpuTrain>(data.as_ref(), &cfg, None, &Default::default(), &mut |r| {
        lc = r.loss_ema;
        ControlFlow::Continue(())
    })?;
    let x = points(32, 8, 1.0);
    let sd = TrainedScore::<Train>::new(dev.ema, backend::device()).score_batch(x.as_ref(), 0.05)?;
    let sc = TrainedScore::<CpuTrain>::new(cpu.ema, Default::default()).score_batch(x.as_ref(), 0.05)?;
    Ok(comparison("toy residual MLP, d = 8", (ld, lc), (&sd, &sc)))
}

fn unet_cfg(name: &str) -> Result<UNetConfig> {
    crate::figures::image_dimension::unet_config(name)
}

/// The `smoke` U-Net (8×8) on the device and on the CPU from one seed.
fn compare_unet(steps: u64) -> Result<serde_json::Value> {
    let model = unet_cfg("smoke")?;
    let data = geomem_data::ImageSet::digits()?.images;
    let cfg = DdpmTrainConfig::new(model).with_steps(steps).with_batch_size(32).with_lr(1e-3).with_log_every(steps);
    let (mut ld, mut lc) = (f64::NAN, f64::NAN);
    let dev = train_ddpm::<Train>(data.as_ref(), &cfg, None, &backend::device(), &mut |r| {
        ld = r.loss_ema;
        ControlFlow::Continue(())
    })?;
    let cpu = train_ddpm::<CpuTrain>(data.as_ref(), &cfg, None, &Default::default(), &mut |r| {
        lc = r.loss_ema;
        ControlFlow::Continue(())
    })?;
    let x = Mat::from_fn(16, 64, |i, j| data[(i, j)] * 0.9);
    let mut ed = Mat::zeros(16, 64);
    let mut ec = Mat::zeros(16, 64);
    UNetEps::<Inner>::new(dev.ema, backend::device(), 16).eps_into(x.as_ref(), VpTime::Step(10), ed.as_mut())?;
    UNetEps::<Cpu>::new(cpu.ema, Default::default(), 16).eps_into(x.as_ref(), VpTime::Step(10), ec.as_mut())?;
    Ok(comparison("DDPM U-Net, smoke config (8×8)", (ld, lc), (&ed, &ec)))
}

/// Steps per second of `run(steps)` after `run(warm)`.
fn rate(warm: u64, steps: u64, run: impl Fn(u64) -> Result<()>) -> Result<f64> {
    run(warm)?;
    let t = Instant::now();
    run(steps)?;
    Ok(steps as f64 / t.elapsed().as_secs_f64())
}

fn time_toy(steps: u64) -> Result<serde_json::Value> {
    let data = points(1024, 8, 0.0);
    let toy = rate((steps / 10).max(1), steps, |s| {
        train::<Train>(data.as_ref(), &toy_cfg(s, 1), None, &backend::device(), &mut |_| ControlFlow::Continue(()))?;
        Ok(())
    })?;
    let m = 16;
    let refs: Vec<_> = (0..m).map(|_| data.as_ref()).collect();
    let stacked = rate((steps / 10).max(1), steps, |s| {
        let cfgs: Vec<TrainConfig> = (0..m as u64).map(|k| toy_cfg(s, k)).collect();
        train_stacked::<Train>(&refs, &cfgs, None, &backend::device(), &mut |_| ControlFlow::Continue(()))?;
        Ok(())
    })?;
    Ok(serde_json::json!({
        "toy_steps_per_s": toy, "stacked_nets": m, "stacked_net_steps_per_s": stacked * m as f64,
    }))
}

/// Training steps/s, forward images/s and one spectrum of the timed U-Net on the device.
fn time_unet(name: &str, steps: u64) -> Result<serde_json::Value> {
    let model = unet_cfg(name)?;
    let d = model.channels * model.image_size * model.image_size;
    let data = Mat::from_fn(256, d, |i, j| (((i * 131 + j * 17) % 97) as f64 / 48.5) - 1.0);
    let base = DdpmTrainConfig::new(model.clone()).with_batch_size(128);
    let train_rate = rate(2, steps, |s| {
        let cfg = base.clone().with_steps(s).with_log_every(s);
        train_ddpm::<Train>(data.as_ref(), &cfg, None, &backend::device(), &mut |_| ControlFlow::Continue(()))?;
        Ok(())
    })?;
    let net = model.init_seeded::<Inner>(&backend::device(), 0)?;
    let eps = UNetEps::<Inner>::new(net, backend::device(), 256);
    let x = Mat::from_fn(256, d, |i, j| data[(i, j)]);
    let mut out = Mat::zeros(256, d);
    eps.eps_into(x.as_ref(), VpTime::Step(10), out.as_mut())?;
    let t = Instant::now();
    for _ in 0..4 {
        eps.eps_into(x.as_ref(), VpTime::Step(10), out.as_mut())?;
    }
    let forward = 1024.0 / t.elapsed().as_secs_f64();
    let sched = base.schedule()?;
    let tk = sched.ve_time(0)?;
    let field = VpScore::discrete(UNetEps::<Inner>::new(eps.model().clone(), backend::device(), 512), sched);
    let p = NormalBundleParams::default()
        .perturbation(Perturbation::PerChannelOrthogonal { channels: model.channels, size: model.image_size });
    let x0: Vec<f64> = (0..d).map(|j| data[(0, j)]).collect();
    let t = Instant::now();
    let s = normal_bundle_spectrum(&field, &x0, tk, &p)?;
    Ok(serde_json::json!({
        "unet": name, "parameters": model.parameter_count().map(|c| c as u64), "d": d,
        "training_steps_per_s_batch_128": train_rate, "forward_images_per_s": forward,
        "spectrum_seconds": t.elapsed().as_secs_f64(), "spectrum_forward_images": 8 * d, "spectrum_values": s.len(),
    }))
}

pub fn run(a: &GpuCheckArgs) -> Result<()> {
    let start = Instant::now();
    println!("gpu-check: device backend {}, CPU backend flex", backend::name());
    let toy = compare_toy(a.steps)?;
    println!("toy net: {toy}");
    let unet = compare_unet(a.steps)?;
    println!("small U-Net: {unet}");
    let toy_speed = time_toy(a.toy_steps)?;
    println!("toy timings: {toy_speed}");
    let unet_speed = time_unet(&a.timed_unet, a.timed_steps)?;
    println!("U-Net timings: {unet_speed}");
    let pass = toy["pass"].as_bool() == Some(true) && unet["pass"].as_bool() == Some(true);
    let report = serde_json::json!({
        "device_backend": backend::name(), "cuda_feature": cfg!(feature = "cuda"), "steps": a.steps,
        "comparisons": [toy, unet], "pass": pass, "toy_timings": toy_speed, "unet_timings": unet_speed,
        "seconds": start.elapsed().as_secs_f64(),
    });
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&report)?)?;
    println!("report: {} (pass: {pass})", a.out.display());
    anyhow::ensure!(pass, "the device and the CPU disagree beyond the tolerances (see {})", a.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole command on the CPU backend with small settings: the comparisons pass (the
    /// device is the CPU here, so they are exact) and the report holds every part.
    #[test]
    fn gpu_check_runs_and_reports_on_the_cpu_backend() {
        let out = std::env::temp_dir().join(format!("geomem-gpu-check-{}.json", std::process::id()));
        let a = GpuCheckArgs { steps: 20, timed_unet: "smoke".into(), timed_steps: 2, toy_steps: 10, out: out.clone() };
        run(&a).unwrap();
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(r["pass"], true);
        assert_eq!(r["comparisons"][0]["output_rel_diff"], 0.0, "the same backend gives the same numbers");
        assert!(r["unet_timings"]["forward_images_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(r["unet_timings"]["spectrum_values"], 64);
        assert!(r["toy_timings"]["stacked_net_steps_per_s"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn rel_diff_sees_a_difference() {
        let a = Mat::from_fn(2, 2, |i, j| (i + j) as f64 + 1.0);
        let mut b = a.clone();
        assert_eq!(rel_diff(&a, &b), 0.0);
        b[(1, 1)] += 0.3;
        assert!((rel_diff(&a, &b) - 0.1).abs() < 1e-12);
    }
}
