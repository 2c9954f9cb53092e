//! The held-out/train DSM loss: its scale (a zero network scores E‖ε‖²/d = 1), the gap a net
//! trained on two points opens, and its errors.
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use faer::Mat;
use geomem_nets::{dsm_loss, train, LossDraws, NetsError, ResidualMlpConfig, TrainConfig};
use std::ops::ControlFlow;

type B = Autodiff<Flex>;

struct Zero;
impl<Bk: Backend> ModuleMapper<Bk> for Zero {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        p.map(|t| t.zeros_like())
    }
}

fn draws(k: usize) -> LossDraws {
    LossDraws { draws: k, sigma_min: 0.01, sigma_max: 50.0, seed: 7 }
}

fn points(n: usize, seed: usize) -> Mat<f64> {
    Mat::from_fn(n, 5, |i, j| (((i + seed) * 13 + j * 7) as f64 * 0.71).sin())
}

#[test]
fn a_zero_network_scores_the_noise_variance() {
    let dev = Default::default();
    let net = ResidualMlpConfig::new(5).with_hidden(8).init::<Flex>(&dev).unwrap().map(&mut Zero);
    // ε̂ = 0, so the loss is the mean of ε², 1 within 7 standard errors sqrt(2/(K d)).
    let l = dsm_loss(&net, points(3, 0).as_ref(), &draws(8192), &dev).unwrap();
    assert!((l - 1.0).abs() < 7.0 * (2.0 / (8192.0 * 5.0f64)).sqrt(), "{l}");
    // Fixed draws: the same call gives the same number; a chunk boundary (4096) changes nothing.
    assert_eq!(l, dsm_loss(&net, points(3, 0).as_ref(), &draws(8192), &dev).unwrap());
}

#[test]
fn a_memorizing_net_has_a_held_out_gap_and_a_generalizing_control_has_none() {
    let dev = Default::default();
    let cfg = |seed| {
        TrainConfig::new(ResidualMlpConfig::new(5).with_hidden(32).with_emb_dim(8))
            .with_steps(1500)
            .with_lr(3e-3)
            .with_seed(seed)
            .with_ema_decay(0.99)
    };
    let (two, held) = (points(2, 0), points(64, 100));
    let s = train::<B>(two.as_ref(), &cfg(1), None, &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    let (tr, ho) = (
        dsm_loss(&s.ema, two.as_ref(), &draws(4096), &dev).unwrap(),
        dsm_loss(&s.ema, held.as_ref(), &draws(4096), &dev).unwrap(),
    );
    assert!(ho > 3.0 * tr, "trained on 2 points: train {tr}, held-out {ho}");
    // Control: trained on the held-out pool itself, the two sets differ far less.
    let s = train::<B>(held.as_ref(), &cfg(1), None, &dev, &mut |_| ControlFlow::Continue(())).unwrap();
    let tr2 = dsm_loss(&s.ema, held.as_ref(), &draws(4096), &dev).unwrap();
    let ho2 = dsm_loss(&s.ema, points(64, 500).as_ref(), &draws(4096), &dev).unwrap();
    assert!(ho2 / tr2 < ho / tr / 2.0, "pool: {tr2} vs {ho2}; two points: {tr} vs {ho}");
}

#[test]
fn bad_draws_and_data_are_errors() {
    let dev = Default::default();
    let net = ResidualMlpConfig::new(5).with_hidden(8).init::<Flex>(&dev).unwrap();
    let x = points(3, 0);
    assert!(matches!(dsm_loss(&net, x.as_ref(), &draws(0), &dev), Err(NetsError::InvalidParameter { .. })));
    let bad = LossDraws { sigma_min: 1.0, sigma_max: 0.5, ..draws(10) };
    assert!(matches!(dsm_loss(&net, x.as_ref(), &bad, &dev), Err(NetsError::InvalidParameter { .. })));
    let wrong = Mat::<f64>::zeros(3, 4);
    assert!(matches!(dsm_loss(&net, wrong.as_ref(), &draws(10), &dev), Err(NetsError::Data(_))));
    let nan = Mat::from_fn(2, 5, |i, _| if i == 1 { f64::NAN } else { 0.0 });
    assert!(matches!(dsm_loss(&net, nan.as_ref(), &draws(10), &dev), Err(NetsError::Data(_))));
}
