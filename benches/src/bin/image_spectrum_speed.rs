//! Time of one image spectrum as the image figure computes it: a U-Net of the given config
//! as a score field through the VP adapter at step `k = 0`, the central-difference Normal
//! Bundle matrix with `K = 4d` of the authors' per-channel orthogonal perturbations (`2K`
//! forward images, evaluated in batches of BATCH = 512, PARALLEL = 1 batches at a time),
//! and its singular values. The weights are
//! the seeded initialisation (its output layer is zero, so every score is 0; the time does
//! not depend on the weights).
//!
//! Usage: `cargo run --release -p geomem-benches --bin image_spectrum_speed -- CONFIG.json [REPEATS] [PARALLEL] [BATCH]`
//!
//! With `UNET_EVAL=host` the net is evaluated on the host (`HostUNetEps`: parts of 16
//! images on the rayon pool; BATCH and PARALLEL do not apply). With `SPECTRUM=jacobian`
//! as well, the spectrum is the exact Jacobian's (`SpectrumParams::pointwise`: one forward
//! image kept, then the input's reverse pass for the `d` rows, in parts of 16) instead of
//! the Normal Bundle matrix's.

use burn::backend::Flex;
use burn::config::Config;
use geomem_nets::{HostUNetEps, UNetConfig, UNetEps};
use geomem_score::{DdpmSchedule, VpScore};
use geomem_spectral::{normal_bundle_spectrum, spectrum, NormalBundleParams, Perturbation, SpectrumParams};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or("experiments/unet/digits.json", String::as_str);
    let repeats: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let parallel: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let batch: usize = args.get(4).map_or(Ok(512), |s| s.parse())?;
    let cfg = UNetConfig::load(path)?;
    let (c, h) = (cfg.channels, cfg.image_size);
    let device = Default::default();
    let sched = DdpmSchedule::linear(1e-4, 2e-2, 1000)?;
    let t = sched.ve_time(0)?;
    let model = cfg.init_seeded::<Flex>(&device, 0)?;
    if std::env::var("UNET_EVAL").is_ok_and(|v| v == "host") {
        println!("evaluated on the host (HostUNetEps)");
        return run(path, &VpScore::discrete(HostUNetEps::new(&model, &cfg)?, sched), c, h, t, repeats, "host");
    }
    let net = UNetEps::<Flex>::new(model, device, batch).with_parallel_batches(parallel);
    let net = VpScore::discrete(net, sched);
    run(path, &net, c, h, t, repeats, &format!("batches of {batch}, {parallel} at a time"))
}

/// Times `repeats` spectra of `net` at one image.
fn run<F: geomem_score::ScoreField>(
    path: &str,
    net: &F,
    c: usize,
    h: usize,
    t: f64,
    repeats: usize,
    how: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let d = c * h * h;
    let x: Vec<f64> = (0..d).map(|i| (0.37 * i as f64).sin() * 0.9).collect();
    let p = NormalBundleParams::default().perturbation(Perturbation::PerChannelOrthogonal { channels: c, size: h });
    if std::env::var("SPECTRUM").is_ok_and(|v| v == "jacobian") {
        println!("{path}: d = {d}, the exact Jacobian (1 forward image, {d} reverse rows), {how}");
        for r in 0..repeats {
            let start = Instant::now();
            let s = spectrum(net, &x, t, &SpectrumParams::pointwise())?.into_values();
            let dt = start.elapsed().as_secs_f64();
            println!("jacobian spectrum {r}: {dt:.2} s ({:.1} rows/s), {} values", d as f64 / dt, s.len());
        }
        return Ok(());
    }
    println!("{path}: d = {d}, K = {}, {} forward images per spectrum, {how}", 4 * d, 8 * d);
    for r in 0..repeats {
        let start = Instant::now();
        let s = normal_bundle_spectrum(net, &x, t, &p.seed(r as u64))?;
        let dt = start.elapsed().as_secs_f64();
        println!("spectrum {r}: {dt:.2} s ({:.1} forward images/s), {} values", (8 * d) as f64 / dt, s.len());
    }
    Ok(())
}
