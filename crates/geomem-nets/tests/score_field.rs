//! Any noise model as a score field (`NetScore`): VJPs and JVPs against the autodiff
//! Jacobian, the VP form against `VpScore`, and matrix-free spectra equal to the dense ones
//! for a trained toy net and a trained small U-Net.
use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_nets::*;
use geomem_score::{ScoreField, ScoreFieldExt, VpGrid, VpScore};
use geomem_spectral::{singular_values, spectrum, GapScale, MatrixFreeParams, Operator, SpectrumParams};
use std::ops::ControlFlow;

mod common;

type B = Autodiff<Flex>;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

/// A toy net trained on a 2-dimensional plane (variance 1) in R^d, 1e-3 off it.
fn toy(d: usize, steps: u64) -> TrainedScore<B> {
    let blocks = [Block { dim: 2, variance: 1.0 }, Block { dim: d - 2, variance: 1e-3 }];
    let data = LinearManifold::new(d, &blocks, Embedding::RandomRotation { seed: 1 }).unwrap().sample(512, 2);
    let c = TrainConfig::new(ResidualMlpConfig::new(d).with_hidden(64))
        .with_steps(steps)
        .with_lr(2e-3)
        .with_log_every(50)
        .with_checkpoint_every(0)
        .with_sigma_max(10.0);
    TrainedScore::new(
        train::<B>(data.as_ref(), &c, None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap().ema,
        dev(),
    )
}

fn max_abs(a: &Mat<f64>) -> f64 {
    (0..a.nrows()).flat_map(|i| (0..a.ncols()).map(move |j| (i, j))).map(|(i, j)| a[(i, j)].abs()).fold(0.0, f64::max)
}

/// Singular values of `I + tJ` or `tJ` from the autodiff Jacobian.
fn dense<F: ScoreField>(f: &F, x: &[f64], t: f64, op: Operator) -> Vec<f64> {
    let j = f.jacobian(x, t).unwrap().unwrap();
    let id = if op == Operator::Denoiser { 1.0 } else { 0.0 };
    let m = Mat::from_fn(j.nrows(), j.ncols(), |a, b| t * j[(a, b)] + if a == b { id } else { 0.0 });
    singular_values(m.as_ref()).unwrap()
}

/// The matrix-free values in the operator's units, decreasing, with their bounds.
fn leading<F: ScoreField>(f: &F, x: &[f64], t: f64, p: MatrixFreeParams) -> Vec<(f64, f64)> {
    let s = spectrum(f, x, t, &SpectrumParams::matrix_free(p)).unwrap();
    let op = s.operator_values().unwrap();
    op.values.iter().copied().zip(op.errors.iter().copied()).collect()
}

#[test]
fn vjp_and_jvp_agree_with_the_autodiff_jacobian() {
    let d = 6;
    let f = toy(d, 60);
    let x = [0.3, -0.2, 0.1, 0.05, -0.4, 0.2];
    let u = Mat::from_fn(4, d, |i, k| ((i + 3 * k) % 5) as f64 - 2.0);
    for t in [0.01, 0.5] {
        let j = f.jacobian(&x, t).unwrap().unwrap();
        let scale = max_abs(&j);
        let uj = f.vjp(&x, t, u.as_ref()).unwrap() - u.as_ref() * &j;
        // f32 backward passes against f64 products of the f32 Jacobian: rounding of f32.
        assert!(max_abs(&uj) <= 1e-5 * scale * d as f64, "VJP: {} of {scale}", max_abs(&uj));
        let exact = f.jvp(&x, t, u.as_ref()).unwrap();
        assert!(max_abs(&(&exact - u.as_ref() * j.transpose())) <= 1e-12 * scale);
        let fd = f.clone().with_jvp(JvpMethod::CentralDifference).jvp(&x, t, u.as_ref()).unwrap();
        let err = max_abs(&(&fd - &exact));
        assert!(err <= 2e-3 * scale * (d as f64).sqrt(), "t = {t}: central differences off by {err} of {scale}");
        assert!(err > 0.0, "the central differences are differences, not the Jacobian");
    }
}

/// Both operators on a trained toy net: every matrix-free value lies within its bound of a
/// dense value, and with two power iterations the two values above the gap agree with the
/// dense ones to 1e-4 of the largest with exact (Jacobian) JVPs and to 2e-3 with central
/// differences.
#[test]
fn matrix_free_equals_dense_for_a_trained_toy_net() {
    let d = 24;
    let f = toy(d, 600);
    let x: Vec<f64> = (0..d).map(|i| 0.1 * (i as f64).sin()).collect();
    let t = 0.01;
    for (field, tol) in [(f.clone(), 1e-4), (f.clone().with_jvp(JvpMethod::CentralDifference), 2e-3)] {
        for op in [Operator::Denoiser, Operator::Score] {
            let want = dense(&field, &x, t, op);
            let got = leading(
                &field,
                &x,
                t,
                MatrixFreeParams::default().operator(op).block(6).oversample(3).power_iterations(2).seed(7),
            );
            // The net is stiff in 22 directions: only the denoiser end stops early.
            assert!(op == Operator::Score || got.len() <= d / 2, "{op:?}: no gap found, {} values", got.len());
            for (k, &(v, e)) in got.iter().enumerate() {
                let nearest = want.iter().map(|w| (w - v).abs()).fold(f64::INFINITY, f64::min);
                assert!(nearest <= e + 1e-6, "{op:?} value {k}: {v}, nearest dense {nearest}, bound {e}");
            }
            for k in 0..2 {
                assert!((got[k].0 - want[k]).abs() <= tol * want[0], "{op:?} value {k}: {} vs {}", got[k].0, want[k]);
            }
        }
        let s = spectrum(&field, &x, t, &SpectrumParams::matrix_free(MatrixFreeParams::default().block(6))).unwrap();
        let dense_s = spectrum(&field, &x, t, &SpectrumParams::pointwise()).unwrap();
        let gap = |s: &geomem_spectral::JacobianSpectrum| s.dimension_from_largest_gap(GapScale::Linear, 0).unwrap();
        assert_eq!(gap(&s), gap(&dense_s));
    }
}

fn unet(steps: u64) -> (geomem_nets::UNet<Flex>, DdpmTrainConfig) {
    let cfg = common::tiny_unet().with_steps(steps).with_checkpoint_every(0).with_log_every(50);
    let images = geomem_data::ImageSet::digits().unwrap().rows(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    let state = train_ddpm::<B>(images.as_ref(), &cfg, None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    (state.ema, cfg)
}

/// A trained small U-Net through `NetScore::vp`: the same scores as `VpScore<UNetEps>`, the
/// same derivatives by VJP as by its Jacobian, and matrix-free values within their bounds of
/// the dense spectrum of its autodiff Jacobian.
#[test]
fn small_unet_as_a_score_field_and_its_matrix_free_spectrum() {
    let (net, cfg) = unet(40);
    let sched = cfg.schedule().unwrap();
    let field = NetScore::<B, UNet<B>>::vp(net.clone(), VpGrid::Discrete(sched.clone()), dev()).with_batch(64);
    let reference = VpScore::discrete(UNetEps::<Flex>::new(net, dev(), 64), sched.clone());
    let x = geomem_data::ImageSet::digits().unwrap().rows(&[0, 9]).unwrap();
    let t = sched.ve_time(10).unwrap();
    let (a, b) = (field.score_batch(x.as_ref(), t).unwrap(), reference.score_batch(x.as_ref(), t).unwrap());
    assert!(max_abs(&(&a - &b)) <= 1e-6 * max_abs(&b), "VP form differs from VpScore");
    assert!(field.score_batch(x.as_ref(), 1.2345e-3).is_err(), "off the grid");
    let x0: Vec<f64> = x.row(0).iter().copied().collect();
    let j = field.jacobian(&x0, t).unwrap().unwrap();
    let u = Mat::from_fn(3, 64, |i, k| (((i + 1) * (k + 2)) % 7) as f64 - 3.0);
    let uj = field.vjp(&x0, t, u.as_ref()).unwrap() - u.as_ref() * &j;
    assert!(max_abs(&uj) <= 1e-5 * max_abs(&j) * 64.0, "VJP: {} of {}", max_abs(&uj), max_abs(&j));
    for op in [Operator::Denoiser, Operator::Score] {
        let want = dense(&field, &x0, t, op);
        let got = leading(&field, &x0, t, MatrixFreeParams::default().operator(op).block(8).seed(1));
        for (k, &(v, e)) in got.iter().enumerate() {
            let nearest = want.iter().map(|w| (w - v).abs()).fold(f64::INFINITY, f64::min);
            assert!(nearest <= e + 1e-6, "{op:?} value {k}: {v}, nearest dense {nearest}, bound {e}");
        }
        assert!((got[0].0 - want[0]).abs() <= 1e-4 * want[0], "{op:?}: {} vs {}", got[0].0, want[0]);
        eprintln!("{op:?}: {} values of 64; first {:?}", got.len(), &got[..4.min(got.len())]);
    }
}
