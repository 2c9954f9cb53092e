//! Speed of geomem-lid's estimators, beside scikit-dimension on the same points.
//!
//! Usage: `cargo run --release -p geomem-benches --bin lid_speed -- DIR [SET] [ESTIMATOR]`
//!
//! Data sets (`SET`, default `all`: the first three), each written to `DIR/SET.npy` (unless
//! there) so that `benches/compare/skdim_lid.py DIR SET` reads the same points:
//! * `points`: N = 10 000 points of a 10-dimensional Gaussian subspace of R^784 (seeded;
//!   linear rank 10: the search screens in the subspace);
//! * `curved`: the hidden-manifold model `tanh(F z)`, `z` in 10 dimensions, in R^784 (full
//!   linear rank, most of the spread in a few directions);
//! * `fashion`: the first 10 000 Fashion-MNIST training images as f64 in [0, 1] (pixel / 255;
//!   real images, d = 784; the IDX bytes read once with `geomem_data::read_idx_image_bytes`);
//! * `fashion60k`: all 60 000 of them.
//!
//! Estimators (`ESTIMATOR`, default `all`): `knn` (the exact search, k = 20 and k = 2),
//! `mle` (k = 20, pointwise + harmonic mean), `twonn` (global), `twonn-pw` (pointwise on 100
//! neighbours; not on `fashion60k`), `flipd` (the empirical score and a toy network, once,
//! not per set). Sets of 10 000 points are timed best of 3, `fashion60k` once. Writes
//! `DIR/{mle_pw,twonn_pw}_SET.npy` and prints one JSON object of timings and outputs. Run one
//! estimator per process to read its peak memory (`/usr/bin/time -v`).

use burn::backend::{Autodiff, Flex};
use faer::{Mat, MatRef};
use geomem_data::{
    read_idx_image_bytes, write_npy, Activation, Block, Embedding, HiddenManifold, LinearManifold, FASHION_MNIST_DIR,
};
use geomem_lid::{knn_self, Combine, Flipd, Mle, TwoNn};
use geomem_nets::{ResidualMlpConfig, TrainedScore};
use geomem_score::EmpiricalScore;
use serde_json::{Map, Value};
use std::path::Path;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

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

/// The points of data set `set`, stored transposed (`d × n`, one point per column): their
/// transpose is the row-major `n × d` matrix the estimators take, each point contiguous as
/// in the C-order array scikit-dimension gets, so the search reads the points in place.
fn data(set: &str) -> Res<Mat<f64>> {
    Ok(match set {
        "points" => {
            let lm =
                LinearManifold::new(784, &[Block { dim: 10, variance: 1.0 }], Embedding::RandomRotation { seed: 3 })?;
            lm.sample(10_000, 1).transpose().to_owned()
        }
        "curved" => HiddenManifold::new(784, 10, 1.0, Activation::Tanh, 3)?.sample(10_000, 1).transpose().to_owned(),
        "fashion" | "fashion60k" => {
            let n = if set == "fashion" { 10_000 } else { 60_000 };
            // The pixel bytes / 255, straight from the file: no f64 copy of all 60 000 images.
            let path = std::path::Path::new(FASHION_MNIST_DIR).join("train-images-idx3-ubyte.gz");
            let (bytes, total, h, w) = read_idx_image_bytes(path)?;
            let d = h * w;
            if total < n {
                return Err(format!("{total} Fashion-MNIST training images, {n} needed").into());
            }
            Mat::from_fn(d, n, |j, i| f64::from(bytes[i * d + j]) / 255.0)
        }
        other => return Err(format!("unknown data set {other}").into()),
    })
}

/// Times `what` on the points `x` of `set` (rows) into `out` (keys end in `_SET`).
fn time_set(dir: &Path, set: &str, x: MatRef<'_, f64>, what: &str, out: &mut Map<String, Value>) -> Res<()> {
    let reps = if set == "fashion60k" { 1 } else { 3 };
    let col = |v: &[f64]| Mat::from_fn(v.len(), 1, |i, _| v[i]);
    let mut put = |key: &str, v: Value| out.insert(format!("{key}_{set}"), v);
    if what == "all" || what == "knn" {
        for k in [20, 2] {
            let (t, _) = best_of(reps, || knn_self(x, k).expect("knn"));
            put(&format!("knn_self_k{k}_s"), t.into());
        }
    }
    if what == "all" || what == "mle" {
        let (t, mle) = best_of(reps, || Mle::default().pointwise(x).expect("mle"));
        write_npy(dir.join(format!("mle_pw_{set}.npy")), col(&mle).as_ref())?;
        put("mle_k20_s", t.into());
        put("mle_harmonic", Combine::Harmonic.apply(&mle).into());
    }
    if what == "all" || what == "twonn" {
        let (t, fit) = best_of(reps, || TwoNn::default().global(x).expect("twonn"));
        put("twonn_global_s", t.into());
        put("twonn", fit.dimension.into());
    }
    if (what == "all" && set != "fashion60k") || what == "twonn-pw" {
        let (t, pw) = best_of(1, || TwoNn::default().pointwise(x, 100).expect("twonn pw"));
        write_npy(dir.join(format!("twonn_pw_{set}.npy")), col(&pw).as_ref())?;
        put("twonn_pointwise_100_s", t.into());
    }
    Ok(())
}

/// FLIPD throughput: the empirical score of 1000 of the `points` in d = 784, and the toy
/// network in d = 30.
fn time_flipd(out: &mut Map<String, Value>) -> Res<()> {
    let x = data("points")?.transpose().to_owned();
    let emp = EmpiricalScore::new(x.subrows(0, 1000).to_owned())?;
    let q = x.subrows(1000, 200).to_owned();
    let (t_emp, _) = best_of(3, || Flipd::new(0.1).expect("t0").estimate(&emp, q.as_ref()).expect("flipd"));
    let net = ResidualMlpConfig::new(30).init_seeded::<Flex>(&Default::default(), 0)?;
    let field = TrainedScore::<Autodiff<Flex>>::new(net, Default::default());
    let lm30 = LinearManifold::new(30, &[Block { dim: 7, variance: 1.0 }], Embedding::Aligned)?;
    let q30 = lm30.sample(1000, 2);
    let (t_net, _) = best_of(3, || Flipd::new(0.1).expect("t0").estimate(&field, q30.as_ref()).expect("flipd"));
    out.insert("flipd_empirical_n1000_d784_points_per_s".into(), (200.0 / t_emp).into());
    out.insert("flipd_toy_net_d30_points_per_s".into(), (1000.0 / t_net).into());
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "target/lid_speed".into()));
    let set = args.get(2).map_or("all", String::as_str);
    let what = args.get(3).map_or("all", String::as_str);
    std::fs::create_dir_all(&dir)?;
    let sets: Vec<&str> = if set == "all" { vec!["points", "curved", "fashion"] } else { vec![set] };
    let mut out = Map::new();
    out.insert("threads".into(), rayon::current_num_threads().into());
    for s in sets {
        let x = data(s)?;
        let file = dir.join(format!("{s}.npy"));
        if !file.exists() {
            write_npy(file, x.transpose())?;
        }
        if what != "flipd" {
            time_set(&dir, s, x.transpose(), what, &mut out)?;
        }
    }
    if what == "all" || what == "flipd" {
        time_flipd(&mut out)?;
    }
    println!("{}", Value::Object(out));
    Ok(())
}
