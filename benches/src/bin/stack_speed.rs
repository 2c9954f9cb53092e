//! Aggregate training throughput (net-steps per second) of a sweep of the paper's toy network
//! (d = 30, batch 128) on burn's CPU backend: nets one at a time, stacked into one model
//! (`train_stacked`, M nets per optimizer step), one process-thread per core, or both.
//!
//! Usage: `cargo run --release -p geomem-benches --bin stack_speed [STEPS]`

use burn::backend::{Autodiff, Flex};
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_nets::{train, train_stacked, ResidualMlpConfig, TrainConfig};
use std::ops::ControlFlow;
use std::time::Instant;

type B = Autodiff<Flex>;

fn cfgs(m: usize, steps: u64) -> Vec<TrainConfig> {
    (0..m)
        .map(|k| {
            TrainConfig::new(ResidualMlpConfig::new(30))
                .with_steps(steps)
                .with_seed(k as u64)
                .with_checkpoint_every(0)
                .with_log_every(steps)
        })
        .collect()
}

/// Net-steps per second of `threads` threads, each training a stack of `m` nets.
fn rate(m: usize, threads: usize, steps: u64, stacked: bool) -> f64 {
    let lm = LinearManifold::new(
        30,
        &[Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }],
        Embedding::Aligned,
    )
    .expect("manifold");
    let sets: Vec<_> = (0..m).map(|k| lm.sample(8 << k, k as u64)).collect();
    let go = |steps: u64| {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let dev = Default::default();
                    let c = cfgs(m, steps);
                    let refs: Vec<_> = sets.iter().map(|x| x.as_ref()).collect();
                    if stacked {
                        train_stacked::<B>(&refs, &c, None, &dev, &mut |_| ControlFlow::Continue(())).expect("train");
                    } else {
                        for (x, c) in refs.iter().zip(&c) {
                            train::<B>(*x, c, None, &dev, &mut |_| ControlFlow::Continue(())).expect("train");
                        }
                    }
                });
            }
        })
    };
    go(100);
    let start = Instant::now();
    go(steps);
    (steps as usize * m * threads) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let steps: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    println!("| layout | nets per stack | threads | net-steps/s |\n|---|---|---|---|");
    println!("| one at a time | 1 | 1 | {:.0} |", rate(1, 1, steps, false));
    println!("| one net per core | 1 | 2 | {:.0} |", rate(1, 2, steps, false));
    for m in [2, 4, 8, 16] {
        println!("| stacked | {m} | 1 | {:.0} |", rate(m, 1, steps / 2, true));
    }
    for m in [4, 8] {
        println!("| stacked, one stack per core | {m} | 2 | {:.0} |", rate(m, 2, steps / 2, true));
    }
}
