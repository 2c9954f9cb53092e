//! FLIPD against its closed forms: the Gaussian linear manifold (exact at every t, tends to
//! m on the manifold), the empirical score (Σ w |x - y|² / t, tends to 0 at training
//! points), Hutchinson beside the exact trace, and the VP form beside the VE form.
use faer::Mat;
use geomem_lid::{flipd_curve, knee, Flipd, FlipdVp, LidError};
use geomem_score::{DdpmSchedule, DivergenceParams, EmpiricalScore, GaussianScore, VeAsVp, VpGrid, VpScore};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn normal(n: usize, d: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(n, d, |_, _| {
        let z: f64 = StandardNormal.sample(&mut rng);
        z
    })
}

/// `d - Σ t/(λ+t) + t Σ x²/(λ+t)²`.
fn gaussian_flipd(var: &[f64], x: &[f64], t: f64) -> f64 {
    var.len() as f64 - var.iter().map(|l| t / (l + t)).sum::<f64>()
        + t * var.iter().zip(x).map(|(l, xi)| xi * xi / (l + t).powi(2)).sum::<f64>()
}

#[test]
fn gaussian_manifold_closed_form_at_every_t_and_m_as_t_goes_to_0() {
    // m = 3 tangent directions with variances 2, 1, 0.1 in d = 12.
    let mut var = vec![0.0; 12];
    var[..3].copy_from_slice(&[2.0, 1.0, 0.1]);
    let f = GaussianScore::from_variances(&var).unwrap();
    let mut x = normal(5, 12, 1);
    for i in 0..5 {
        for j in 0..12 {
            x[(i, j)] = if j < 3 { x[(i, j)] * var[j].sqrt() } else { 0.0 };
        }
    }
    for t in [1e-8, 1e-4, 1e-2, 1.0, 1e2, 1e4] {
        let v = Flipd::new(t).unwrap().estimate(&f, x.as_ref()).unwrap();
        for (i, vi) in v.iter().enumerate() {
            let row: Vec<f64> = x.row(i).iter().copied().collect();
            let want = gaussian_flipd(&var, &row, t);
            assert!((vi - want).abs() < 1e-9 * 12.0, "t = {t}: {vi} vs {want}");
        }
    }
    let small = Flipd::new(1e-8).unwrap().estimate(&f, x.as_ref()).unwrap();
    assert!(small.iter().all(|v| (v - 3.0).abs() < 1e-6), "{small:?}");
    // Off the manifold the normal term t x²/t² blows up: FLIPD is far from m.
    let off = Mat::from_fn(1, 12, |_, j| if j == 5 { 0.1 } else { 0.0 });
    assert!(Flipd::new(1e-4).unwrap().estimate(&f, off.as_ref()).unwrap()[0] > 50.0);
}

#[test]
fn empirical_score_closed_form_and_zero_at_training_points() {
    let y = normal(30, 6, 2);
    let f = EmpiricalScore::new(y.clone()).unwrap();
    let x = normal(4, 6, 3);
    for t in [1e-2, 0.3, 5.0] {
        let v = Flipd::new(t).unwrap().estimate(&f, x.as_ref()).unwrap();
        for (i, vi) in v.iter().enumerate() {
            let row: Vec<f64> = x.row(i).iter().copied().collect();
            let w = f.posterior(&row, t).unwrap().weights;
            let want: f64 =
                (0..30).map(|mu| w[mu] * (0..6).map(|j| (row[j] - y[(mu, j)]).powi(2)).sum::<f64>()).sum::<f64>() / t;
            assert!((vi - want).abs() < 1e-9 * want.max(1.0), "t = {t}: {vi} vs {want}");
        }
    }
    let at_train = Flipd::new(1e-3).unwrap().estimate(&f, y.subrows(0, 5)).unwrap();
    assert!(at_train.iter().all(|v| v.abs() < 1e-6), "{at_train:?}");
}

#[test]
fn hutchinson_estimates_the_exact_trace() {
    let f = EmpiricalScore::new(normal(50, 40, 4)).unwrap();
    let x = normal(3, 40, 5);
    // The empirical score's divergence has a closed form; the VP adapter of its VE-as-VP
    // wrapper has none, so the generic trace runs: by differences (exact) and by Hutchinson.
    let sched = DdpmSchedule::linear(1e-4, 2e-2, 1000).unwrap();
    let t = sched.ve_time(200).unwrap();
    let closed = Flipd::new(t).unwrap().estimate(&f, x.as_ref()).unwrap();
    let wrapped = VpScore::discrete(VeAsVp::new(f, VpGrid::Discrete(sched.clone())), sched);
    let ex = Flipd::new(t).unwrap().estimate(&wrapped, x.as_ref()).unwrap();
    let hp = DivergenceParams::default().exact_below(10).probes(2000).seed(7);
    let hu = Flipd::new(t).unwrap().divergence(hp).estimate(&wrapped, x.as_ref()).unwrap();
    // t·tr∇s is about -40 here: a wrong or missing trace is far outside these tolerances.
    for ((c, a), b) in closed.iter().zip(&ex).zip(&hu) {
        assert!((a - c).abs() < 1e-3, "differences {a} vs closed form {c}");
        assert!((b - c).abs() < 2.0, "Hutchinson {b} vs closed form {c}");
    }
}

#[test]
fn vp_form_batches_equal_single_points_and_hutchinson_tracks_the_exact_trace() {
    // d = 40 above exact_below = 10 with 200 probes: 20 points per model call, so 45 points
    // take three calls; point i keeps its probe stream seed + i whatever the batching.
    let mut var = vec![0.0; 40];
    var[..4].copy_from_slice(&[1.0, 0.5, 0.3, 0.2]);
    let sched = DdpmSchedule::linear(1e-4, 2e-2, 1000).unwrap();
    let model = VeAsVp::new(GaussianScore::from_variances(&var).unwrap(), VpGrid::Discrete(sched.clone()));
    let x = Mat::from_fn(45, 40, |i, j| if j < 4 { ((i * 7 + j * 3) as f64 * 0.37).sin() } else { 0.0 });
    let hp = DivergenceParams::default().exact_below(10).probes(200).seed(3);
    let vp = FlipdVp::new(sched.clone(), 50).unwrap().divergence(hp);
    let all = vp.estimate(&model, x.as_ref()).unwrap();
    let first = vp.estimate(&model, x.subrows(0, 5)).unwrap();
    assert_eq!(&all[..5], &first[..]);
    let t = sched.ve_time(50).unwrap();
    for (i, v) in all.iter().enumerate() {
        let row: Vec<f64> = x.row(i).iter().copied().collect();
        let want = gaussian_flipd(&var, &row, t);
        assert!((v - want).abs() < 0.1 * 40.0, "point {i}: {v} vs {want}");
    }
}

#[test]
fn vp_form_equals_ve_form_of_the_adapted_field() {
    let mut var = vec![0.0; 8];
    var[..2].copy_from_slice(&[1.0, 0.3]);
    let sched = DdpmSchedule::linear(1e-4, 2e-2, 1000).unwrap();
    let model = VeAsVp::new(GaussianScore::from_variances(&var).unwrap(), VpGrid::Discrete(sched.clone()));
    let x = Mat::from_fn(3, 8, |i, j| if j < 2 { 0.3 * (i as f64 + 1.0) * (j as f64 + 0.5) } else { 0.0 });
    for k in [0usize, 15, 100] {
        let vp = FlipdVp::new(sched.clone(), k).unwrap().estimate(&model, x.as_ref()).unwrap();
        let t = sched.ve_time(k).unwrap();
        for (i, v) in vp.iter().enumerate() {
            let row: Vec<f64> = x.row(i).iter().copied().collect();
            let want = gaussian_flipd(&var, &row, t);
            assert!((v - want).abs() < 1e-5 * 8.0, "step {k}: VP {v} vs VE closed form {want}");
        }
    }
    assert!(FlipdVp::new(sched, 1000).is_err());
}

#[test]
fn curve_and_knee() {
    // A plateau at 2 for small t falling to 0 for large t: the knee sits at the shoulder.
    let ts: Vec<f64> = (0..41).map(|i| 10f64.powf(-6.0 + 0.2 * i as f64)).collect();
    let y: Vec<f64> = ts.iter().map(|t| 2.0 / (1.0 + t / 1e-2)).collect();
    let k = knee(&ts, &y).unwrap();
    assert!(ts[k] > 1e-4 && ts[k] < 1e-2, "knee at t = {}", ts[k]);
    assert_eq!(knee(&ts[..2], &y[..2]), None);
    assert_eq!(knee(&ts, &vec![1.0; 41]), None);
    let f = GaussianScore::from_variances(&[1.0, 0.0, 0.0]).unwrap();
    let x = Mat::from_fn(2, 3, |i, j| if j == 0 { i as f64 } else { 0.0 });
    let c = flipd_curve(&f, x.as_ref(), &ts[..5], DivergenceParams::default()).unwrap();
    assert_eq!((c.nrows(), c.ncols()), (2, 5));
    assert!((c[(0, 0)] - 1.0).abs() < 1e-5);
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(Flipd::new(0.0), Err(LidError::InvalidParameter { .. })));
    assert!(matches!(Flipd::new(f64::NAN), Err(LidError::InvalidParameter { .. })));
    let f = GaussianScore::from_variances(&[1.0, 0.0]).unwrap();
    assert!(matches!(Flipd::new(1.0).unwrap().estimate(&f, Mat::<f64>::zeros(1, 3).as_ref()), Err(LidError::Score(_))));
    let nan = Mat::from_fn(1, 2, |_, _| f64::NAN);
    assert!(Flipd::new(1.0).unwrap().estimate(&f, nan.as_ref()).is_err());
}
