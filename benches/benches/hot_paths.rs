//! criterion benchmarks of geomem's hot paths, on seeded inputs at the sizes users run:
//! the empirical score of a batch (d = 30, 784, 3072), its analytic Jacobian spectrum
//! (MNIST size: N = 10 000, d = 784), the Normal Bundle and improved-NB estimators, and the
//! REM condensation-time solver; 100 training steps of the toy network by the host step
//! (`train_host`) and by burn's (`train`), d = 30, batch 128; 10 training steps of the
//! image figure's smoke U-Net by the host step (`train_ddpm_host`) and by burn's
//! (`train_ddpm`), batch 64 of 8×8 images; the exact k-NN search (k = 20) of 4096 curved
//! points in d = 784 on a lattice of 256 levels (the integer screen where the machine has
//! VNNI) and the same points a little off it (the other screens).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use geomem_data::{gaussian_matrix, Block, Embedding, LinearManifold};
use geomem_rem::PositionalRem;
use geomem_score::{EmpiricalScore, ScoreFieldExt};
use geomem_spectral::{normal_bundle_spectrum, spectrum, NormalBundleParams, SpectrumParams};
use std::hint::black_box;

/// Data on a 10 % linear manifold of the ambient space, unit variance, seed 0.
fn data(n: usize, d: usize) -> faer::Mat<f64> {
    let m = (d / 10).max(1);
    LinearManifold::new(d, &[Block { dim: m, variance: 1.0 }], Embedding::RandomRotation { seed: 1 })
        .expect("valid")
        .sample(n, 0)
}

fn empirical_score(c: &mut Criterion) {
    let mut g = c.benchmark_group("empirical_score_batch");
    g.sample_size(10);
    for &(n, d, batch) in &[(1000usize, 30usize, 1024usize), (10_000, 784, 256), (2000, 3072, 64)] {
        let f = EmpiricalScore::new(data(n, d)).expect("data");
        let x = gaussian_matrix(batch, d, 7);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(format!("N{n}_d{d}_batch{batch}")), &x, |b, x| {
            b.iter(|| black_box(f.score_batch(x.as_ref(), 0.5).expect("score")))
        });
    }
    g.finish();
}

fn empirical_jacobian(c: &mut Criterion) {
    let mut g = c.benchmark_group("empirical_jacobian_spectrum");
    g.sample_size(10);
    let (n, d) = (10_000, 784);
    let f = EmpiricalScore::new(data(n, d)).expect("data");
    let x: Vec<f64> = f.data().row(0).iter().map(|v| v + 0.01).collect();
    // t = 1e3: every weight counts (full d × d covariance); t = 1: a few hundred active
    // points (Gram route); the memorisation regime is cheaper still.
    for &t in &[1e3, 1.0] {
        g.bench_with_input(BenchmarkId::from_parameter(format!("N{n}_d{d}_t{t}")), &t, |b, &t| {
            b.iter(|| black_box(f.jacobian_spectrum(&x, t).expect("spectrum")))
        });
    }
    g.finish();
}

fn estimators(c: &mut Criterion) {
    let mut g = c.benchmark_group("spectral_estimators");
    g.sample_size(10);
    for &(n, d) in &[(1000usize, 30usize), (5000, 784)] {
        let f = EmpiricalScore::new(data(n, d)).expect("data");
        let x0 = vec![0.0; d];
        g.bench_function(BenchmarkId::new("normal_bundle_alg2_k4d", format!("N{n}_d{d}")), |b| {
            b.iter(|| black_box(normal_bundle_spectrum(&f, &x0, 0.1, &NormalBundleParams::default()).expect("nb")))
        });
        g.bench_function(BenchmarkId::new("improved_nb", format!("N{n}_d{d}")), |b| {
            b.iter(|| black_box(spectrum(&f, &x0, 0.1, &SpectrumParams::improved_normal_bundle(1)).expect("inb")))
        });
    }
    g.finish();
}

fn rem_solver(c: &mut Criterion) {
    let mut g = c.benchmark_group("rem_condensation_time");
    for &d in &[30usize, 784, 3072] {
        let sigma2: Vec<f64> = (0..d).map(|i| if i < d / 4 { 1.0 + (i % 5) as f64 * 0.2 } else { 0.0 }).collect();
        let x: Vec<f64> = (0..d).map(|i| ((i * 7919) % 13) as f64 / 13.0 - 0.5).collect();
        let rem = PositionalRem::with_n(&sigma2, &x, 1e4).expect("rem");
        g.bench_function(BenchmarkId::from_parameter(format!("d{d}")), |b| {
            b.iter(|| black_box(rem.condensation_time()))
        });
    }
    g.finish();
}

fn toy_training(c: &mut Criterion) {
    use burn::backend::{Autodiff, Flex};
    use geomem_nets::{train, train_host, ResidualMlpConfig, TrainConfig};
    type B = Autodiff<Flex>;
    let x = LinearManifold::new(
        30,
        &[Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }],
        Embedding::Aligned,
    )
    .expect("valid")
    .sample(1000, 0);
    let cfg = TrainConfig::new(ResidualMlpConfig::new(30)).with_steps(100).with_checkpoint_every(0).with_log_every(100);
    let dev = Default::default();
    let go = || |_: &geomem_nets::LogRow| std::ops::ControlFlow::Continue(());
    let mut g = c.benchmark_group("toy_training_100_steps");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100));
    g.bench_function("train_host", |b| {
        b.iter(|| black_box(train_host::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).expect("train").step))
    });
    g.bench_function("burn_train", |b| {
        b.iter(|| black_box(train::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).expect("train").step))
    });
    g.finish();
}

fn unet_training(c: &mut Criterion) {
    use burn::backend::{Autodiff, Flex};
    use geomem_nets::{train_ddpm, train_ddpm_host, DdpmTrainConfig, UNetConfig};
    type B = Autodiff<Flex>;
    let model = UNetConfig::new(8, 1)
        .with_base(16)
        .with_mults(vec![1, 2])
        .with_attn_resolutions(vec![4])
        .with_res_blocks(1)
        .with_groups(8);
    let x = faer::Mat::from_fn(512, 64, |i, j| (((i * 131 + j * 17) % 97) as f64 / 48.5) - 1.0);
    let cfg = DdpmTrainConfig::new(model)
        .with_steps(10)
        .with_batch_size(64)
        .with_lr(1e-3)
        .with_checkpoint_every(0)
        .with_log_every(10);
    let dev = Default::default();
    let go = || |_: &geomem_nets::LogRow| std::ops::ControlFlow::Continue(());
    let mut g = c.benchmark_group("unet_training_10_steps");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10));
    g.bench_function("train_ddpm_host", |b| {
        b.iter(|| black_box(train_ddpm_host::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).expect("train").step))
    });
    g.bench_function("burn_train_ddpm", |b| {
        b.iter(|| black_box(train_ddpm::<B>(x.as_ref(), &cfg, None, &dev, &mut go()).expect("train").step))
    });
    g.finish();
}

/// `knn_self` at k = 20 on 4096 points `tanh(F z)` (`z` in 10 dimensions, d = 784, seed 3)
/// rounded to 256 levels, as 8-bit images are, and the same points moved off the levels by up
/// to h / 200 (a two-hundredth of a step: not a lattice).
fn knn_search(c: &mut Criterion) {
    let mut g = c.benchmark_group("knn_self_k20");
    g.sample_size(10);
    let hidden = geomem_data::HiddenManifold::new(784, 10, 1.0, geomem_data::Activation::Tanh, 3).expect("valid");
    let x = hidden.sample(4096, 4);
    let (lo, hi) =
        x.col_iter().flat_map(|c| c.iter().copied()).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let h = (hi - lo) / 255.0;
    let on = x.as_ref().map(|&v| lo + h * ((v - lo) / h).round());
    let off =
        faer::Mat::from_fn(4096, 784, |i, j| on[(i, j)] + h * 0.01 * (((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5));
    for (name, pts) in [("lattice_N4096_d784", &on), ("off_lattice_N4096_d784", &off)] {
        g.bench_function(name, |b| b.iter(|| black_box(geomem_lid::knn_self(pts.as_ref(), 20).expect("knn"))));
    }
    g.finish();
}

criterion_group!(
    benches,
    empirical_score,
    empirical_jacobian,
    estimators,
    rem_solver,
    toy_training,
    unet_training,
    knn_search
);
criterion_main!(benches);
