//! Training speed and forward throughput of the DDPM U-Net on burn's CPU backend (Flex),
//! measured as `benches/compare/torch_unet.py` measures the same network in PyTorch:
//! batch 128 of the embedded 8×8 digits (or random images of the config's size), 20 warm-up
//! steps then `steps` timed steps; forward passes of batches of 256 images at step 10.
//!
//! Usage: `cargo run --release -p geomem-benches --bin unet_speed [CONFIG.json] [STEPS]
//! [BATCH_SPLIT] [WARMUP]` (default `experiments/unet/digits.json`, 200 steps, batch split
//! 1, 20 warm-up steps). Also
//! times the forward pass as two batches of 128 evaluated side by side
//! (`UNetEps::with_parallel_batches(2)`).
//!
//! Training runs the host step (`geomem_nets::train_ddpm_host`, what the binaries use on the
//! CPU) unless `UNET_TRAINER=burn` asks for burn's autodiff step (`train_ddpm`).

use burn::backend::{Autodiff, Flex};
use burn::config::Config;
use burn::tensor::{Tensor, TensorData};
use faer::Mat;
use geomem_nets::{train_ddpm, train_ddpm_host, DdpmState, DdpmTrainConfig, UNet, UNetConfig, UNetEps};
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
    let b = 256;
    let h = model.image_size;
    let x = Tensor::<Flex, 4>::from_data(TensorData::new(vec![0.1f32; b * d], [b, model.channels, h, h]), &device);
    let emb = net.embed_steps(&vec![10.0; b], &device);
    std::hint::black_box(net.forward(x.clone(), emb.clone()).into_data());
    let reps = 10;
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(net.forward(x.clone(), emb.clone()).into_data());
    }
    let dt = start.elapsed().as_secs_f64();
    println!("forward: {:.0} images/s (batch {b})", (reps * b) as f64 / dt);
    let eps = UNetEps::new(net, device, b / 2).with_parallel_batches(2);
    let rows = Mat::from_fn(b, d, |_, _| 0.1);
    let mut out = Mat::zeros(b, d);
    eps.eps_into(rows.as_ref(), VpTime::Step(10), out.as_mut())?;
    let start = Instant::now();
    for _ in 0..reps {
        eps.eps_into(rows.as_ref(), VpTime::Step(10), out.as_mut())?;
    }
    let dt = start.elapsed().as_secs_f64();
    println!("forward, 2 batches of {} side by side: {:.0} images/s", b / 2, (reps * b) as f64 / dt);
    Ok(())
}
