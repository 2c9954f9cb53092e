//! Helpers shared by the training tests (each test binary uses some of them).
#![allow(dead_code)]
use geomem_nets::{DdpmTrainConfig, LogRow, UNetConfig};
use std::ops::ControlFlow;

/// Runs `f` in a rayon pool of `threads` threads.
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// A log callback that records the step of every metric row in `seen` and stops the run (as
/// a crash would) at the first row of step `stop` or later.
pub fn stop_at(stop: u64, seen: &mut Vec<u64>) -> impl FnMut(&LogRow) -> ControlFlow<()> + '_ {
    move |r| {
        seen.push(r.step);
        if r.step >= stop {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// The tests' tiny DDPM U-Net on 8 × 8 images (base 16, multipliers (1, 2), attention at 4,
/// one residual block, 8 groups), batch 16, lr 2e-3, seed 3; checkpoints and logs as the
/// caller sets them.
pub fn tiny_unet() -> DdpmTrainConfig {
    let model = UNetConfig::new(8, 1)
        .with_base(16)
        .with_mults(vec![1, 2])
        .with_attn_resolutions(vec![4])
        .with_res_blocks(1)
        .with_groups(8);
    DdpmTrainConfig::new(model).with_batch_size(16).with_lr(2e-3).with_seed(3)
}
