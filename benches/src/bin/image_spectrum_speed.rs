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
//!
//! It first prints the arithmetic a spectrum takes: the net's multiply-adds per forward image
//! (`UNetConfig::multiply_adds`) and, for the Normal Bundle's `8d` images, those of the host's
//! path (Winograd's F(4×4, 3×3) products, 36 per 4 × 4 outputs with the map rounded up to
//! whole tiles, where its rule takes a convolution on AVX-512: 3 × 3 stride 1, at least 16
//! channels each side, side at least 4; every other convolution at its direct count).
//! Divided by this CPU's peak multiply-add rate (`peak_speed`) on both cores, that is a
//! floor under the time no f32 kernel of that algorithm can go below.

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
    print_cost(&cfg)?;
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

/// Prints the multiply-adds of one forward image and of the Normal Bundle's `8d` images,
/// directly and as the host's F(4×4) path does them (module doc).
fn print_cost(cfg: &UNetConfig) -> Result<(), Box<dyn std::error::Error>> {
    let m = cfg.multiply_adds()?;
    let d = (cfg.channels * cfg.image_size * cfg.image_size) as f64;
    let host: u128 = (cfg.convolutions()?.iter())
        .map(|c| {
            let four = c.kernel == 3 && c.stride == 1 && c.cin.min(c.cout) >= 16 && c.side >= 4;
            let direct = c.multiply_adds().unwrap_or(u128::MAX);
            if four {
                36 * (c.side.div_ceil(4) as u128).pow(2) * (c.cin * c.cout) as u128
            } else {
                direct
            }
        })
        .sum::<u128>()
        + m.attention
        + m.linear;
    let nb = 8.0 * d;
    println!(
        "multiply-adds per forward image: {:.4e} (3x3 stride 1: {:.4e}, other convolutions {:.3e}, attention {:.3e}, linear {:.3e}); \
         on the host's F(4x4) path {:.4e}",
        m.total() as f64,
        m.conv3x3 as f64,
        m.other_convs as f64,
        m.attention as f64,
        m.linear as f64,
        host as f64
    );
    println!(
        "the Normal Bundle's {nb} forward images: {:.3e} multiply-adds direct, {:.3e} on the F(4x4) path",
        nb * m.total() as f64,
        nb * host as f64
    );
    Ok(())
}
