//! Training speed and score-evaluation throughput of the paper's toy network on burn's CPU
//! backend (Flex), measured the same way as `benches/compare/torch_mlp.py`:
//! d = 30, batch 128, 200 warm-up steps then 3000 timed steps; score evaluation of batches of
//! 1024 points.
//!
//! Usage: `cargo run --release -p geomem-benches --bin train_speed [BATCH_SPLIT]` (the
//! batch split of `TrainConfig`, 1 when absent); `train_speed host [REPS]` times only
//! `HostMlp`'s evaluation, of an untrained net (the same arithmetic), for profiling;
//! `train_speed host-train` times `train_host` (the host step) in place of burn's step.

use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_nets::{train, train_host, ResidualMlpConfig, TrainConfig, TrainedScore};
use geomem_score::ScoreFieldExt;
use std::ops::ControlFlow;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let d = 30;
    let lm = LinearManifold::new(
        d,
        &[Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }],
        Embedding::Aligned,
    )?;
    let data = lm.sample(1000, 0);
    let device = Default::default();
    if std::env::args().nth(1).as_deref() == Some("host") {
        let reps = std::env::args().nth(2).map_or(Ok(3000), |a| a.parse())?;
        let model = ResidualMlpConfig::new(d).init::<Flex>(&device)?;
        return host_eval(&geomem_nets::HostMlp::from_model(&model)?, d, reps);
    }
    let on_host = std::env::args().nth(1).as_deref() == Some("host-train");
    let split: usize = if on_host { 1 } else { std::env::args().nth(1).map_or(Ok(1), |a| a.parse())? };
    let run = |cfg: &TrainConfig| {
        let mut go = |_: &_| ControlFlow::Continue(());
        if on_host {
            train_host::<Autodiff<Flex>>(data.as_ref(), cfg, None, &device, &mut go)
        } else {
            train::<Autodiff<Flex>>(data.as_ref(), cfg, None, &device, &mut go)
        }
    };
    let warm = TrainConfig::new(ResidualMlpConfig::new(d))
        .with_steps(200)
        .with_checkpoint_every(0)
        .with_log_every(200)
        .with_batch_split(split);
    run(&warm)?;
    let n = 3000;
    let cfg = warm.clone().with_steps(n).with_log_every(n);
    let start = Instant::now();
    let state = run(&cfg)?;
    let dt = start.elapsed().as_secs_f64();
    println!(
        "geomem-nets ({}): training {:.0} steps/s (batch 128 in {split} part(s), d {d})",
        if on_host { "train_host" } else { "burn 0.21 Flex" },
        n as f64 / dt
    );
    let field = TrainedScore::<Autodiff<Flex>>::new(state.ema, device);
    let x = Mat::from_fn(1024, d, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5);
    for _ in 0..20 {
        field.score_batch(x.as_ref(), 0.25)?;
    }
    let reps = 300;
    let start = Instant::now();
    for _ in 0..reps {
        field.score_batch(x.as_ref(), 0.25)?;
    }
    let dt = start.elapsed().as_secs_f64();
    println!("geomem-nets score evaluation: {:.0} points/s (batch 1024)", (reps * 1024) as f64 / dt);
    // The network alone, tensors built once (separates burn's forward pass from the f64
    // conversion and conditioning of `TrainedScore`).
    let model = field.model();
    let (cin, emb) = model.conditioning(&[0.5f32; 1024], &device);
    let xt = burn::tensor::Tensor::<Flex, 2>::from_data(
        burn::tensor::TensorData::new(vec![0.1f32; 1024 * d], [1024, d]),
        &device,
    );
    let start = Instant::now();
    for _ in 0..reps {
        let out = model.forward(xt.clone(), cin.clone(), emb.clone()).into_data();
        std::hint::black_box(out);
    }
    let dt = start.elapsed().as_secs_f64();
    println!("burn forward pass alone: {:.0} points/s (batch 1024)", (reps * 1024) as f64 / dt);
    host_eval(&geomem_nets::HostMlp::from_model(model)?, d, reps)
}

/// Times `reps` evaluations of 1024 points by `HostMlp`.
fn host_eval(host: &geomem_nets::HostMlp, d: usize, reps: usize) -> Result<(), Box<dyn std::error::Error>> {
    let x = Mat::from_fn(1024, d, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5);
    for _ in 0..20 {
        host.score_batch(x.as_ref(), 0.25)?;
    }
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(host.score_batch(x.as_ref(), 0.25)?);
    }
    let dt = start.elapsed().as_secs_f64();
    println!("geomem-nets HostMlp (faer f32) score evaluation: {:.0} points/s (batch 1024)", (reps * 1024) as f64 / dt);
    Ok(())
}
