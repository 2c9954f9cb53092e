//! Training speed and forward throughput of the DDPM U-Net on the CPU, measured as `benches/compare/torch_unet.py` measures the same network in PyTorch:
//! batch 128 of the embedded 8×8 digits (or random images of the config's size), 20 warm-up
//! steps then `steps` timed steps; forward passes of batches of 256 images at step 10.
//!
//! Usage: `cargo run --release -p geomem-benches --bin unet_speed [CONFIG.json] [STEPS]
//! [BATCH_SPLIT] [WARMUP]` (default `experiments/unet/digits.json`, 200 steps, batch split
//! 1, 20 warm-up steps; the batch split only changes burn's step). burn's forward pass is
//! also timed as two batches of 128 side by side (`UNetEps::with_parallel_batches(2)`).
//!
//! Training and the forward pass run on the host (`geomem_nets::train_ddpm_host`,
//! `HostUNetEps`: what the binaries use on the CPU) unless `UNET_TRAINER=burn` asks for
//! burn's (`train_ddpm`, `UNetEps`). `UNET_TRAIN_ONLY=1` skips the forward passes.

use burn::backend::{Autodiff, Flex};
use burn::config::Config;
use faer::Mat;
use geomem_nets::{train_ddpm, train_ddpm_host, DdpmState, DdpmTrainConfig, HostUNetEps, UNet, UNetConfig, UNetEps};
use geomem_score::{VpEpsModel, VpTime};
use std::ops::ControlFlow;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or("experiments/unet/digits.json", String::as_str);
    let steps: u64 = args.get(2).map_or(Ok(200), |s| s.parse())?;
    let split: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let warmup: u64 = args.get(4).map_or(Ok(20), |s| s.parse())?;
    let model = UNetConfig::load(path)?;
    let d = model.channels * model.image_size * model.image_size;
    println!("{path}: {} parameters, d = {d}", model.parameter_count().unwrap_or(0));
    let data = Mat::from_fn(1024, d, |i, j| (((i * 131 + j * 17) % 97) as f64 / 48.5) - 1.0);
    let device = Default::default();
    let base = DdpmTrainConfig::new(model.clone()).with_checkpoint_every(0).with_batch_split(split);
    let warm = base.clone().with_steps(warmup).with_log_every(warmup);
    let burn = std::env::var("UNET_TRAINER").is_ok_and(|v| v == "burn");
    let train = |cfg: &DdpmTrainConfig| -> Result<DdpmState<Autodiff<Flex>>, geomem_nets::NetsError> {
        let go = &mut |_: &geomem_nets::LogRow| ControlFlow::Continue(());
        if burn {
            train_ddpm::<Autodiff<Flex>>(data.as_ref(), cfg, None, &device, go)
        } else {
            train_ddpm_host::<Autodiff<Flex>>(data.as_ref(), cfg, None, &device, go)
        }
    };
    train(&warm)?;
    let cfg = base.with_steps(steps).with_log_every(steps);
    let start = Instant::now();
    let state = train(&cfg)?;
    let dt = start.elapsed().as_secs_f64();
    println!(
        "training ({}): {:.2} steps/s, {:.2} s a step (batch 128 in {split} part(s))",
        if burn { "burn" } else { "host" },
        steps as f64 / dt,
        dt / steps as f64
    );
    if std::env::var("UNET_TRAIN_ONLY").is_ok() {
        return Ok(());
    }
    let net: UNet<Flex> = state.ema;
    let (b, reps) = (256, 10);
    let rows = Mat::from_fn(b, d, |_, _| 0.1);
    let mut out = Mat::zeros(b, d);
    let mut time = |m: &dyn VpEpsModel| -> Result<f64, Box<dyn std::error::Error>> {
        m.eps_into(rows.as_ref(), VpTime::Step(10), out.as_mut())?;
        let start = Instant::now();
        for _ in 0..reps {
            m.eps_into(rows.as_ref(), VpTime::Step(10), out.as_mut())?;
        }
        Ok((reps * b) as f64 / start.elapsed().as_secs_f64())
    };
    if !burn {
        let host = HostUNetEps::new(&net, &model)?;
        println!("forward (host): {:.0} images/s (batch {b}, parts of 16 on the rayon pool)", time(&host)?);
        return Ok(());
    }
    let eps = UNetEps::new(net.clone(), device, b);
    println!("forward (burn): {:.0} images/s (batch {b})", time(&eps)?);
    let eps = UNetEps::new(net, device, b / 2).with_parallel_batches(2);
    println!("forward (burn), 2 batches of {} side by side: {:.0} images/s", b / 2, time(&eps)?);
    Ok(())
}
