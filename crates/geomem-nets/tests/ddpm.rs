//! DDPM training of the U-Net: the loss falls from 1 (the zero-initialised net predicts 0),
//! a run stopped and resumed ends with the weights of one that never stopped, a checkpoint of
//! another run is refused, and a trained U-Net is a ScoreField at the schedule's times only.
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use faer::Mat;
use geomem_nets::{load_ema, train_ddpm, DdpmTrainConfig, NetsError, RunConfig, RunDir, RunScore, UNet, UNetEps};
use geomem_score::{ScoreFieldExt, VpEpsModel, VpScore, VpTime};
use std::ops::ControlFlow;

mod common;

type B = Autodiff<Flex>;

fn tiny() -> DdpmTrainConfig {
    common::tiny_unet().with_checkpoint_every(10).with_log_every(5)
}

fn images() -> Mat<f64> {
    geomem_data::ImageSet::digits().unwrap().rows(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-ddpm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

struct Weights(Vec<f32>);
impl<BB: burn::tensor::backend::Backend> ModuleVisitor<BB> for Weights {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<BB, D>>) {
        self.0.extend(p.val().into_data().convert::<f32>().to_vec::<f32>().unwrap());
    }
}

fn weights<BB: burn::tensor::backend::Backend, M: Module<BB>>(m: &M) -> Vec<f32> {
    let mut w = Weights(Vec::new());
    m.visit(&mut w);
    w.0
}

#[test]
fn loss_falls_from_one() {
    let cfg = tiny().with_steps(80);
    let mut losses = Vec::new();
    train_ddpm::<B>(images().as_ref(), &cfg, None, &Default::default(), &mut |r| {
        losses.push(r.loss_ema);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(losses[0] > 0.6, "first logged losses near 1: {losses:?}");
    assert!(*losses.last().unwrap() < 0.6 * losses[0], "loss falls: {losses:?}");
}

#[test]
fn stopped_and_resumed_equals_uninterrupted() {
    let cfg = tiny().with_steps(20);
    let dev = Default::default();
    let (a, b) = (tmp("a"), tmp("b"));
    let full = train_ddpm::<B>(images().as_ref(), &cfg, Some(&a), &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    let stop = train_ddpm::<B>(images().as_ref(), &cfg, Some(&b), &dev, &mut |r| {
        if r.step == 10 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(stop.step, 10);
    let resumed = train_ddpm::<B>(images().as_ref(), &cfg, Some(&b), &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(resumed.step, 20);
    assert!(weights(&full.model) == weights(&resumed.model), "weights equal after resuming");
    assert!(weights(&full.ema) == weights(&resumed.ema), "EMA equal after resuming");
    let (ema, saved): (UNet<Flex>, _) = load_ema(&b.join("checkpoint.bin"), &dev).unwrap();
    assert_eq!(saved, cfg);
    assert!(weights(&ema) == weights(&full.ema), "the checkpoint's EMA is the run's");
    // The run directory as the library opens it: settings, the rows of steps 5..20, the
    // checkpoint's step, and the EMA net as a field on the schedule's grid.
    let run = RunDir::open(&b).unwrap();
    assert_eq!(run.config(), &RunConfig::Ddpm(cfg.clone()));
    assert_eq!(run.metrics().iter().map(|r| r.step).collect::<Vec<_>>(), vec![5, 10, 15, 20]);
    assert_eq!(run.checkpoint_step().unwrap(), 20);
    let sched = cfg.schedule().unwrap();
    let (k, t) = sched.nearest_step(0.01).unwrap();
    assert_eq!(run.config().field_time(0.01).unwrap(), t);
    assert!(run.config().field_time(0.0).is_err());
    let field = run.score_field::<B>(&dev).unwrap();
    let x = Mat::from_fn(2, 64, |i, j| images()[(i, j)] * sched.vp_to_ve_scale(k).unwrap());
    let direct = VpScore::discrete(UNetEps::new(ema, dev, 256), sched).score_batch(x.as_ref(), t).unwrap();
    assert!(field.score_batch(x.as_ref(), t).unwrap() == direct, "RunDir's field is the EMA net's");
    // On the host: the same scores up to f32 rounding, and a Jacobian (burn's field has none)
    // whose products are the burn field's central-difference JVPs.
    let host = run.score_field_on::<B>(&dev, true).unwrap();
    assert!(matches!(host, RunScore::HostUnet(_)));
    let on_host = host.score_batch(x.as_ref(), t).unwrap();
    let scale = direct.norm_max();
    assert!(scale > 0.0 && (&on_host - &direct).norm_max() <= 2e-5 * scale, "the host field is the EMA net's");
    let x0: Vec<f64> = x.row(0).iter().copied().collect();
    assert!(field.jacobian(&x0, t).unwrap().is_none());
    let jac = host.jacobian(&x0, t).unwrap().expect("the host field's Jacobian");
    let v = Mat::from_fn(3, 64, |i, j| ((i * 11 + j) as f64 * 0.7).sin());
    let want = field.jvp(&x0, t, v.as_ref()).unwrap();
    let err = (&v * jac.transpose() - &want).norm_max();
    assert!(err <= 2e-2 * want.norm_max(), "J v differs by {err} of {}", want.norm_max());
    // Another run's settings are refused, not silently restarted.
    let other = cfg.clone().with_lr(1e-3);
    let err = train_ddpm::<B>(images().as_ref(), &other, Some(&b), &dev, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(NetsError::CorruptCheckpoint { .. })));
}

/// A split batch: the same weights on 1 and on 3 threads, resumable, its own run (a run
/// with another split is refused), and refused with dropout.
#[test]
fn split_batches_are_deterministic_and_resumable() {
    // Rows every 5 steps, a checkpoint every 5: a run stopped at its row of step 5 has
    // written the checkpoint of step 5 first.
    let cfg = tiny().with_steps(12).with_checkpoint_every(5).with_batch_split(3);
    let dev = Default::default();
    let run_on = |threads: usize, dir: Option<&std::path::Path>, stop: u64| {
        let mut seen = Vec::new();
        let state = common::on_threads(threads, || {
            train_ddpm::<B>(images().as_ref(), &cfg, dir, &dev, &mut common::stop_at(stop, &mut seen)).unwrap()
        });
        (state, seen)
    };
    let (one, _) = run_on(1, None, u64::MAX);
    let (three, _) = run_on(3, None, u64::MAX);
    assert!(weights(&one.model) == weights(&three.model), "weights depend on the thread count");
    assert!(weights(&one.ema) == weights(&three.ema));
    let dir = tmp("split");
    assert_eq!(run_on(2, Some(&dir), 5).0.step, 5);
    let (resumed, seen) = run_on(2, Some(&dir), u64::MAX);
    assert_eq!(seen, [10, 12], "the second run did not start from the checkpoint of step 5");
    assert!(weights(&resumed.model) == weights(&one.model), "resumed split run differs");
    let other = cfg.clone().with_batch_split(1).with_steps(20);
    let err = train_ddpm::<B>(images().as_ref(), &other, Some(&dir), &dev, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(NetsError::CorruptCheckpoint { .. })));
    let mut dropout = cfg.clone();
    dropout.model.dropout = 0.1;
    let err = train_ddpm::<B>(images().as_ref(), &dropout, None, &dev, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(NetsError::InvalidParameter { .. })));
}

#[test]
fn bad_inputs_are_errors() {
    let dev = Default::default();
    let go = |m: Mat<f64>, cfg: DdpmTrainConfig| {
        train_ddpm::<B>(m.as_ref(), &cfg, None, &dev, &mut |_| ControlFlow::Continue(())).err()
    };
    assert!(matches!(go(Mat::zeros(0, 64), tiny()), Some(NetsError::Data(_))));
    assert!(matches!(go(Mat::zeros(3, 63), tiny()), Some(NetsError::Data(_))));
    let mut m = images();
    m[(2, 5)] = f64::NAN;
    assert!(matches!(go(m, tiny()), Some(NetsError::Data(_))));
    assert!(matches!(go(images(), tiny().with_beta_max(2.0)), Some(NetsError::InvalidParameter { .. })));
    assert!(matches!(go(images(), tiny().with_clip_grad(-1.0)), Some(NetsError::InvalidParameter { .. })));
}

#[test]
fn trained_unet_is_a_score_field_on_its_grid() {
    let cfg = tiny().with_steps(10);
    let dev = Default::default();
    let state = train_ddpm::<B>(images().as_ref(), &cfg, None, &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    let eps = UNetEps::<Flex>::new(state.ema.clone(), dev, 3);
    let x = images();
    let k = 5;
    let mut direct = Mat::zeros(8, 64);
    eps.eps_into(x.as_ref(), VpTime::Step(k), direct.as_mut()).unwrap();
    assert!(direct.norm_l2() > 0.0, "trained, the net no longer predicts 0");
    assert!(eps.eps_into(x.as_ref(), VpTime::Continuous(0.5), direct.as_mut()).is_err());
    // Batches of 3, 3 and 2 images evaluated 2 or 5 at a time: the same numbers.
    for parallel in [2, 5] {
        let mut par = Mat::zeros(8, 64);
        eps.clone().with_parallel_batches(parallel).eps_into(x.as_ref(), VpTime::Step(k), par.as_mut()).unwrap();
        assert!(par == direct, "{parallel} batches at a time changed the output");
    }
    let sched = cfg.schedule().unwrap();
    let field = VpScore::discrete(eps, sched.clone());
    let t = sched.ve_time(k).unwrap();
    let scale = sched.vp_to_ve_scale(k).unwrap();
    // s(x, t) = -ε̂(x/√(1+t), k)/√t: evaluate at x = √(1+t) x_vp.
    let xs = Mat::from_fn(8, 64, |i, j| x[(i, j)] * scale);
    let s = field.score_batch(xs.as_ref(), t).unwrap();
    for i in 0..8 {
        for j in 0..64 {
            assert!((s[(i, j)] + direct[(i, j)] / t.sqrt()).abs() < 1e-4 * (1.0 + s[(i, j)].abs()), "({i},{j})");
        }
    }
    assert!(field.score_batch(xs.as_ref(), t * 1.001).is_err(), "off the schedule's grid");
}
