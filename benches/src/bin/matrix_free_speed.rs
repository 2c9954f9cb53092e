//! One image spectrum several ways on the same U-Net, alternating: the image figure's dense
//! estimator (the U-Net through the VP adapter on the host, central differences of K = 4d
//! per-channel orthogonal perturbations, 8d forward images, SVD of d × K; what
//! `image_spectrum_speed` times), the exact Jacobian's (`SpectrumParams::pointwise`: one
//! forward image and the input's reverse pass for its d rows, `HostUNetEps::eps_vjp`), and
//! the matrix-free leading values of `I + tJ` and of `tJ` (VJPs from the same reverse pass,
//! JVPs by central differences). Prints each time and the readings (Algorithm 3, largest
//! gap, soft count, stiffness). The Normal Bundle matrix of round `r` uses perturbation seed
//! `r`, so its rounds show how far two draws of the dense estimator read apart.
//!
//! The net is trained first on the host (`train_ddpm_host`) for `STEPS` steps (DDPM, batch
//! `BATCH`, lr 1e-3, EMA 0.999) on the first `N` training images: Fashion-MNIST
//! (`/usr/share/datasets/fashion-mnist`) for a 28 × 28 config, Fashion-MNIST mean-pooled
//! 2 × 2 for a 14 × 14 one (the real-data figure's), the embedded 8 × 8 digits otherwise;
//! its EMA weights are measured at the first `POINTS` training images.
//!
//! Usage: `cargo run --release -p geomem-benches --bin matrix_free_speed -- CONFIG.json STEPS N [ROUNDS] [K] [PARALLEL] [DBAR] [C] [OPS] [MAX_RANK] [BATCH] [POINTS]`
//! (defaults: 1 round, steps k = `0` (a comma-separated list), d̄ = d/8, c = 15, OPS = `djsn`:
//! d = dense, j = exact Jacobian, c = central differences along `e_i` at the step `f32`
//! allows (the Jacobian again, from forward passes), w = the same at the Normal Bundle's
//! perturbation length `√(t c h)`, s = denoiser end, n = score end, p = time 64 VJPs and 64
//! JVPs; MAX_RANK = d; training batch 16; 1 point; PARALLEL is not used).
//!
//! Environment: `MF_RUN_DIR=DIR` trains into (or resumes from) a run directory, so a second
//! call measures the same net without training; `MF_FALLBACK=1` turns on the matrix-free
//! estimator's Jacobian fallback.

use burn::backend::{Autodiff, Flex};
use burn::config::Config;
use geomem_data::{read_fashion_mnist, ImageSet, Split};
use geomem_nets::{train_ddpm_host, DdpmTrainConfig, HostUNetEps, UNetConfig};
use geomem_score::{ScoreFieldExt, VpScore};
use geomem_spectral::{
    normal_bundle_spectrum, spectrum, GapScale, JacobianSpectrum, MatrixFreeParams, NormalBundleParams, Operator,
    Perturbation, Scheme, SecondDerivativeRule, SpectrumParams, Step,
};
use std::ops::ControlFlow;
use std::time::Instant;

type B = Autodiff<Flex>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> Res<T>
where
    T::Err: std::error::Error + 'static,
{
    Ok(match args.get(i) {
        Some(s) => s.parse()?,
        None => default,
    })
}

fn images(cfg: &UNetConfig, n: usize) -> Res<faer::Mat<f64>> {
    let set = match cfg.image_size {
        28 => read_fashion_mnist(Split::Train)?,
        14 => read_fashion_mnist(Split::Train)?.mean_pool(2)?,
        _ => ImageSet::digits()?,
    };
    Ok(set.rows(&(0..n.min(set.len())).collect::<Vec<_>>())?)
}

fn report(name: &str, secs: f64, s: &JacobianSpectrum, rule: &SecondDerivativeRule) {
    let show = |r: Result<String, geomem_spectral::SpectralError>| r.unwrap_or_else(|e| format!("({e})"));
    println!(
        "{name}: {secs:.2} s, {} values, {:?}, gap found {}; Algorithm 3 {}, largest gap -> {}, soft count {}, t*s_median {}",
        s.values().len(),
        s.products(),
        s.gap_found(),
        show(s.read(rule).map(|r| format!("{r:?} = {}", r.dimension(s.dim())))),
        show(s.dimension_from_largest_gap(GapScale::Linear, 0).map(|v| v.to_string())),
        show(s.soft_count().map(|v| v.to_string())),
        show(s.stiffness().map(|(a, b)| format!("{a:.4}..{b:.4}"))),
    );
}

/// Times `m` VJPs and `m` JVPs (one batched call each) of `field` at `x`.
fn products(field: &impl ScoreFieldExt, x: &[f64], t: f64, m: usize) -> Res<()> {
    let u = faer::Mat::from_fn(m, x.len(), |i, j| ((i * 31 + j * 7) % 13) as f64 / 13.0 - 0.5);
    let start = Instant::now();
    field.vjp(x, t, u.as_ref())?;
    let vjp = start.elapsed().as_secs_f64();
    let start = Instant::now();
    field.jvp(x, t, u.as_ref())?;
    let jvp = start.elapsed().as_secs_f64();
    println!(
        "{m} VJPs {vjp:.2} s ({:.1} ms each), {m} JVPs {jvp:.2} s ({:.1} ms each)",
        1e3 * vjp / m as f64,
        1e3 * jvp / m as f64
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let cfg = UNetConfig::load(args.get(1).map_or("experiments/unet/digits.json", String::as_str))?;
    let (steps, n): (u64, usize) = (arg(&args, 2, 100)?, arg(&args, 3, 16)?);
    let rounds: usize = arg(&args, 4, 1)?;
    let ks: Vec<usize> = arg(&args, 5, "0".to_string())?.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let d = cfg.channels * cfg.image_size * cfg.image_size;
    let rule = SecondDerivativeRule::new(arg(&args, 7, d / 8)?, arg(&args, 8, 15.0)?)?;
    let ops: String = arg(&args, 9, "djsn".to_string())?;
    let max_rank: usize = arg(&args, 10, d)?;
    let fallback = std::env::var_os("MF_FALLBACK").is_some();
    let (batch, points): (usize, usize) = (arg(&args, 11, 16)?, arg(&args, 12, 1)?);
    let run_dir = std::env::var_os("MF_RUN_DIR").map(std::path::PathBuf::from);
    let train = DdpmTrainConfig::new(cfg.clone())
        .with_steps(steps)
        .with_batch_size(batch.min(n))
        .with_lr(1e-3)
        .with_ema_decay(0.999)
        .with_checkpoint_every(if run_dir.is_some() { steps } else { 0 })
        .with_log_every(steps.max(1));
    let data = images(&cfg, n)?;
    let dev = Default::default();
    let start = Instant::now();
    let mut last = 0.0;
    let state = train_ddpm_host::<B>(data.as_ref(), &train, run_dir.as_deref(), &dev, &mut |r| {
        last = r.loss_ema;
        ControlFlow::Continue(())
    })?;
    println!(
        "trained {steps} steps on {} images in {:.1} s (EMA loss {last:.4})",
        data.nrows(),
        start.elapsed().as_secs_f64()
    );
    let sched = train.schedule()?;
    let dense = VpScore::discrete(HostUNetEps::new(&state.ema, &cfg)?, sched.clone());
    let free = &dense;
    let nb = NormalBundleParams::default()
        .perturbation(Perturbation::PerChannelOrthogonal { channels: cfg.channels, size: cfg.image_size });
    for (k, i) in ks.iter().flat_map(|&k| (0..points.min(data.nrows())).map(move |i| (k, i))) {
        let x: Vec<f64> = data.row(i).iter().copied().collect();
        let t = sched.ve_time(k)?;
        println!("d = {d}, step k = {k} (t = {t:.3e}), point {i}, rule {rule:?}");
        for r in 0..rounds {
            for op in ops.chars() {
                let start = Instant::now();
                let (name, s) = match op {
                    'd' => (
                        "dense (figure's NB, 8d forward images)",
                        JacobianSpectrum::whole(normal_bundle_spectrum(&dense, &x, t, &nb.seed(r as u64))?, t)?,
                    ),
                    'j' => (
                        "exact Jacobian (1 forward image, d reverse rows)",
                        spectrum(&dense, &x, t, &SpectrumParams::pointwise())?,
                    ),
                    'c' | 'w' => {
                        // The Normal Bundle's perturbations have length √(t c h).
                        let wide = (t * (cfg.channels * cfg.image_size) as f64).sqrt();
                        let step = if op == 'c' { Step::Auto } else { Step::Fixed(wide) };
                        let p = SpectrumParams::finite_difference(Scheme::Central, step);
                        let name = if op == 'c' {
                            "central differences along e_i, step eps^(1/3) sqrt(t) (2d forward images)"
                        } else {
                            "central differences along e_i, step sqrt(t c h), the NB's perturbation length"
                        };
                        (name, spectrum(&dense, &x, t, &p)?)
                    }
                    's' | 'n' => {
                        let operator = if op == 's' { Operator::Denoiser } else { Operator::Score };
                        let p = MatrixFreeParams::default()
                            .operator(operator)
                            .max_rank(max_rank)
                            .seed(r as u64)
                            .jacobian_fallback(fallback);
                        (
                            if op == 's' { "matrix-free I + tJ" } else { "matrix-free tJ" },
                            spectrum(free, &x, t, &SpectrumParams::matrix_free(p))?,
                        )
                    }
                    'p' => {
                        products(free, &x, t, 64)?;
                        continue;
                    }
                    _ => continue,
                };
                report(&format!("k = {k}, point {i}, round {r}, {name}"), start.elapsed().as_secs_f64(), &s, &rule);
            }
        }
    }
    Ok(())
}
