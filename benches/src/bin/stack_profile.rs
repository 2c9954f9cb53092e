//! Profiling helper: trains one stack of M toy nets for S steps (`stack_profile M S`).
use burn::backend::{Autodiff, Flex};
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_nets::{train_stacked, ResidualMlpConfig, TrainConfig};
use std::ops::ControlFlow;
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("number")).collect();
    let (m, steps) = (a[0], a[1] as u64);
    let lm = LinearManifold::new(
        30,
        &[Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }],
        Embedding::Aligned,
    )
    .expect("manifold");
    let sets: Vec<_> = (0..m).map(|k| lm.sample(64, k as u64)).collect();
    let refs: Vec<_> = sets.iter().map(|x| x.as_ref()).collect();
    let c: Vec<_> = (0..m)
        .map(|k| {
            TrainConfig::new(ResidualMlpConfig::new(30)).with_steps(steps).with_seed(k as u64).with_checkpoint_every(0)
        })
        .collect();
    let t = std::time::Instant::now();
    train_stacked::<Autodiff<Flex>>(&refs, &c, None, &Default::default(), &mut |_| ControlFlow::Continue(()))
        .expect("train");
    println!("{:.0} net-steps/s", (steps as usize * m) as f64 / t.elapsed().as_secs_f64());
}
