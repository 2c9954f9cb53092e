//! FLIPD and the Normal Bundle dimension of one's own burn module: implement `NoiseModel`
//! (the lines between the markers), wrap the module in `NetScore`, and every estimator of
//! `geomem-lid` and `geomem-spectral` runs on it with autodiff derivatives.
//!
//! The module here is untrained (seeded initial weights): the example shows the wiring, not
//! a dimension worth reading. `cargo run -p geomem-nets --example own_module` (also run by
//! `cargo test`).
use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_lid::{Flipd, NormalBundleLid, PointwiseLid};
use geomem_nets::NetScore;
use geomem_score::ScoreFieldExt;
use geomem_spectral::GapScale;

// ---- the user's module: 22 lines ----
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{activation::silu, backend::Backend, Tensor};
use geomem_nets::NoiseModel;

/// A two-layer net conditioned on log σ (the VE form).
#[derive(Module, Debug)]
struct MyNet<B: Backend> {
    l1: Linear<B>,
    l2: Linear<B>,
}

impl<B: Backend> NoiseModel<B> for MyNet<B> {
    fn dim(&self) -> usize {
        self.l2.weight.dims()[1]
    }
    fn predict_noise(&self, x: Tensor<B, 2>, sigma: f64) -> Tensor<B, 2> {
        let level = Tensor::full([x.dims()[0], 1], sigma.ln(), &x.device());
        self.l2.forward(silu(self.l1.forward(Tensor::cat(vec![x, level], 1))))
    }
}
// ---- end of the user's module ----

type B = Autodiff<Flex>;

/// FLIPD and NB dimension of three points, and FLIPD of the first by hand.
struct Measured {
    flipd: Vec<f64>,
    nb: Vec<f64>,
    by_hand: f64,
}

fn run() -> Result<Measured, Box<dyn std::error::Error>> {
    let (d, device) = (6, Default::default());
    B::seed(&device, 7);
    let net: MyNet<Flex> =
        MyNet { l1: LinearConfig::new(d + 1, 32).init(&device), l2: LinearConfig::new(32, d).init(&device) };
    let field = NetScore::<B, MyNet<B>>::ve(net, device);
    let points = Mat::from_fn(3, d, |i, j| ((i * d + j) as f64 * 0.7).sin());
    let flipd = Flipd::new(0.05)?.estimate(&field, points.as_ref())?;
    let nb = NormalBundleLid { field: &field, t: 0.05, scale: GapScale::Log, skip: 0 }.lid(points.as_ref())?;
    // FLIPD is d + t0 (tr ∇s + |s|²): the same from the autodiff Jacobian by hand.
    let x: Vec<f64> = points.row(0).iter().copied().collect();
    let (j, s) = (field.jacobian(&x, 0.05)?.ok_or("no Jacobian")?, field.score(&x, 0.05)?);
    let by_hand = d as f64 + 0.05 * ((0..d).map(|i| j[(i, i)]).sum::<f64>() + s.iter().map(|v| v * v).sum::<f64>());
    Ok(Measured { flipd, nb, by_hand })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = run()?;
    println!("FLIPD of the first point: {:.9} (by hand {:.9}); NB dimensions {:?}", m.flipd[0], m.by_hand, m.nb);
    Ok(())
}

#[test]
fn flipd_and_nb_of_a_users_module() {
    let Measured { flipd, nb, by_hand } = run().unwrap();
    assert!((flipd[0] - by_hand).abs() <= 1e-9 * by_hand.abs().max(1.0), "{} vs {by_hand}", flipd[0]);
    assert!(flipd.iter().all(|v| v.is_finite()) && nb.iter().all(|&v| (0.0..=6.0).contains(&v)));
}
