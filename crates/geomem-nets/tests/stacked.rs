//! A stacked sweep trains every net to the weights it gets alone; it resumes exactly; it
//! refuses runs that cannot share one optimizer step.
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use faer::Mat;
use geomem_nets::{train, train_stacked, NetsError, ResidualMlpConfig, StackedTrainState, TrainConfig};
use std::ops::ControlFlow;

type B = Autodiff<Flex>;

struct Values(Vec<f32>);
impl<Bk: Backend> ModuleVisitor<Bk> for Values {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Bk, D>>) {
        self.0.extend(p.val().into_data().iter::<f32>());
    }
}
fn values<Bk: Backend, M: Module<Bk>>(m: &M) -> Vec<f32> {
    let mut v = Values(Vec::new());
    m.visit(&mut v);
    v.0
}

fn data(n: usize, d: usize, seed: u64) -> Mat<f64> {
    Mat::from_fn(n, d, |i, j| (((i * 31 + j * 17) as u64 + seed) as f64 * 0.37).sin() * if j < 2 { 1.0 } else { 0.1 })
}

fn cfg(seed: u64, steps: u64) -> TrainConfig {
    TrainConfig::new(ResidualMlpConfig::new(5).with_hidden(16).with_emb_dim(4))
        .with_steps(steps)
        .with_batch_size(8)
        .with_lr(3e-3)
        .with_ema_decay(0.9)
        .with_seed(seed)
        .with_log_every(5)
        .with_checkpoint_every(10)
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn stacked_nets_equal_nets_trained_alone() {
    let dev = Default::default();
    let sets = [data(3, 5, 1), data(7, 5, 2), data(20, 5, 3)];
    let cfgs = [cfg(11, 40), cfg(12, 40), cfg(13, 40)];
    let refs: Vec<_> = sets.iter().map(|m| m.as_ref()).collect();
    let mut stacked_losses = Vec::new();
    let stacked = train_stacked::<B>(&refs, &cfgs, None, &dev, &mut |r| {
        stacked_losses.push(r.losses.clone());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(stacked_losses.len(), 8, "one row per log_every = 5 steps");
    for m in 0..3 {
        let mut losses = Vec::new();
        let alone = train::<B>(sets[m].as_ref(), &cfgs[m], None, &dev, &mut |r| {
            losses.push(r.loss);
            ControlFlow::Continue(())
        })
        .unwrap();
        // The logged batch losses agree too (Adam would hide a wrongly scaled loss in the
        // weights; the loss values show it).
        for (row, l) in stacked_losses.iter().zip(&losses) {
            assert!((row[m] - l).abs() < 1e-4 * l.abs().max(1.0), "net {m}: loss {} vs {l}", row[m]);
        }
        let (a, s) = (values(&alone.model), values(&stacked.model.net(m).unwrap()));
        assert!(max_rel_diff(&a, &s) < 1e-4, "net {m}: weights differ by {}", max_rel_diff(&a, &s));
        let (a, s) = (values(&alone.ema), values(&stacked.ema_net(m).unwrap()));
        assert!(max_rel_diff(&a, &s) < 1e-4, "net {m}: EMA differs by {}", max_rel_diff(&a, &s));
    }
    // Control: nets of the stack differ from each other (the comparison can fail).
    let (n0, n1) = (values(&stacked.model.net(0).unwrap()), values(&stacked.model.net(1).unwrap()));
    assert!(max_rel_diff(&n0, &n1) > 1e-2);
}

#[test]
fn stacked_run_resumes_to_identical_weights() {
    let dev = Default::default();
    let sets = [data(4, 5, 5), data(9, 5, 6)];
    let refs: Vec<_> = sets.iter().map(|m| m.as_ref()).collect();
    let cfgs = [cfg(1, 30), cfg(2, 30)];
    let whole = train_stacked::<B>(&refs, &cfgs, None, &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    let dir = std::env::temp_dir().join(format!("geomem_stacked_resume_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Stop at step 25 (last checkpoint at 20), as a crash would, then resume.
    let mut stop =
        |r: &geomem_nets::StackedLogRow| if r.step >= 25 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
    let cut = train_stacked::<B>(&refs, &cfgs, Some(&dir), &dev, &mut stop).unwrap();
    assert_eq!(cut.step, 25);
    let resumed = train_stacked::<B>(&refs, &cfgs, Some(&dir), &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(resumed.step, 30);
    assert_eq!(values(&whole.model), values(&resumed.model));
    assert_eq!(values(&whole.ema), values(&resumed.ema));
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let steps: Vec<&str> = metrics.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["5", "10", "15", "20", "25", "30"]);
    // Other settings than those of the checkpoint are refused, not silently restarted.
    let other = [cfg(1, 40).with_lr(1e-2), cfg(2, 40).with_lr(1e-2)];
    let err = train_stacked::<B>(&refs, &other, Some(&dir), &dev, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(NetsError::CorruptCheckpoint { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unstackable_runs_are_refused() {
    let dev = Default::default();
    let err = StackedTrainState::<B>::new(&[cfg(1, 10), cfg(2, 10).with_lr(1e-2)], &dev);
    assert!(matches!(err, Err(NetsError::InvalidParameter { .. })));
    let err = StackedTrainState::<B>::new(&[cfg(1, 10), cfg(2, 20)], &dev);
    assert!(matches!(err, Err(NetsError::InvalidParameter { .. })));
    assert!(matches!(StackedTrainState::<B>::new(&[], &dev), Err(NetsError::InvalidParameter { .. })));
    // A split batch is another run than the solo one the stack reproduces.
    let split = [cfg(1, 10).with_batch_split(2), cfg(2, 10).with_batch_split(2)];
    assert!(matches!(StackedTrainState::<B>::new(&split, &dev), Err(NetsError::InvalidParameter { .. })));
    let s = StackedTrainState::<B>::new(&[cfg(1, 10), cfg(2, 10)], &dev).unwrap();
    assert!(matches!(s.model.net(2), Err(NetsError::InvalidParameter { .. })));
    let sets = [data(4, 5, 5)];
    let refs: Vec<_> = sets.iter().map(|m| m.as_ref()).collect();
    let err = train_stacked::<B>(&refs, &[cfg(1, 10), cfg(2, 10)], None, &dev, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(NetsError::Data(_))));
}
