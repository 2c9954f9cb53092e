//! Speed of geomem-lid's estimators, beside scikit-dimension on the same points.
//!
//! Writes two data sets of N = 10 000 points in d = 784 (seeded), both of intrinsic
//! dimension 10: `DIR/points.npy`, a 10-dimensional Gaussian subspace (linear rank 10: the
//! search screens in the subspace), and `DIR/curved.npy`, the hidden-manifold model
//! `tanh(F z)` with `z` in 10 dimensions (full linear rank: the search screens in all 784
//! coordinates); for each, `DIR/{mle_pw,twonn_pw}{,_curved}.npy`. Times exact k-NN, MLE
//! (k = 20), TwoNN (global, and pointwise on 100 neighbours) on both and FLIPD (empirical
//! score and the toy network), and prints one JSON object; with a second argument
//! `knn-only`, only the k-NN searches (k = 20 and 2) on both. `benches/compare/skdim_lid.py
//! DIR` then times scikit-dimension on the same files and compares the outputs.
//!
//! Usage: `cargo run --release -p geomem-benches --bin lid_speed [DIR]`

use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_data::{write_npy, Activation, Block, Embedding, HiddenManifold, LinearManifold};
use geomem_lid::{knn_self, Combine, Flipd, Mle, TwoNn};
use geomem_nets::{ResidualMlpConfig, TrainedScore};
use geomem_score::EmpiricalScore;
use std::time::Instant;

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("reps >= 1"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/lid_speed".into()));
    std::fs::create_dir_all(&dir)?;
    let lm = LinearManifold::new(784, &[Block { dim: 10, variance: 1.0 }], Embedding::RandomRotation { seed: 3 })?;
    let x = lm.sample(10_000, 1);
    write_npy(dir.join("points.npy"), x.as_ref())?;
    let curved = HiddenManifold::new(784, 10, 1.0, Activation::Tanh, 3)?.sample(10_000, 1);
    write_npy(dir.join("curved.npy"), curved.as_ref())?;
    let mut timings = serde_json::Map::new();
    for (points, tag) in [(&x, ""), (&curved, "_curved")] {
        for k in [20, 2] {
            let (t, _) = best_of(3, || knn_self(points.as_ref(), k).expect("knn"));
            timings.insert(format!("knn_self_k{k}_s{tag}"), t.into());
        }
    }
    if std::env::args().nth(2).as_deref() == Some("knn-only") {
        println!("{}", serde_json::Value::Object(timings));
        return Ok(());
    }
    let col = |v: &[f64]| Mat::from_fn(v.len(), 1, |i, _| v[i]);
    for (points, tag) in [(&x, ""), (&curved, "_curved")] {
        let (t_mle, mle) = best_of(3, || Mle::default().pointwise(points.as_ref()).expect("mle"));
        let (t_twonn, twonn) = best_of(3, || TwoNn::default().global(points.as_ref()).expect("twonn"));
        let (t_pw, twonn_pw) = best_of(1, || TwoNn::default().pointwise(points.as_ref(), 100).expect("twonn pw"));
        write_npy(dir.join(format!("mle_pw{tag}.npy")), col(&mle).as_ref())?;
        write_npy(dir.join(format!("twonn_pw{tag}.npy")), col(&twonn_pw).as_ref())?;
        let entries = [
            ("mle_k20_s", t_mle),
            ("mle_harmonic", Combine::Harmonic.apply(&mle)),
            ("twonn_global_s", t_twonn),
            ("twonn", twonn.dimension),
            ("twonn_pointwise_100_s", t_pw),
        ];
        for (key, v) in entries {
            timings.insert(format!("{key}{tag}"), v.into());
        }
    }

    // FLIPD: the empirical score of 1000 points in d = 784, and the toy network in d = 30.
    let emp = EmpiricalScore::new(x.subrows(0, 1000).to_owned())?;
    let q = x.subrows(1000, 200).to_owned();
    let (t_emp, _) = best_of(3, || Flipd::new(0.1).expect("t0").estimate(&emp, q.as_ref()).expect("flipd"));
    let net = ResidualMlpConfig::new(30).init_seeded::<Flex>(&Default::default(), 0)?;
    let field = TrainedScore::<Autodiff<Flex>>::new(net, Default::default());
    let lm30 = LinearManifold::new(30, &[Block { dim: 7, variance: 1.0 }], Embedding::Aligned)?;
    let q30 = lm30.sample(1000, 2);
    let (t_net, _) = best_of(3, || Flipd::new(0.1).expect("t0").estimate(&field, q30.as_ref()).expect("flipd"));
    timings.insert("n".into(), 10_000.into());
    timings.insert("d".into(), 784.into());
    timings.insert("threads".into(), rayon::current_num_threads().into());
    timings.insert("flipd_empirical_n1000_d784_points_per_s".into(), (200.0 / t_emp).into());
    timings.insert("flipd_toy_net_d30_points_per_s".into(), (1000.0 / t_net).into());
    println!("{}", serde_json::Value::Object(timings));
    Ok(())
}
