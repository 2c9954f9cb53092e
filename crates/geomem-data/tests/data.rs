//! Tests of the data models, subsets and file input-output.
use faer::Mat;
use geomem_data::*;
use proptest::prelude::*;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("geomem-data-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn sample_cov(x: &Mat<f64>) -> Mat<f64> {
    let n = x.nrows() as f64;
    Mat::from_fn(x.ncols(), x.ncols(), |a, b| (0..x.nrows()).map(|i| x[(i, a)] * x[(i, b)]).sum::<f64>() / n)
}

#[test]
fn linear_manifold_has_the_block_variances() {
    let blocks = [Block { dim: 2, variance: 1.0 }, Block { dim: 3, variance: 0.3 }];
    let lm = LinearManifold::new(8, &blocks, Embedding::Aligned).unwrap();
    assert_eq!(lm.principal_variances(), vec![1.0, 1.0, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0]);
    let x = lm.sample(40_000, 3);
    let c = sample_cov(&x);
    for (k, v) in lm.principal_variances().iter().enumerate() {
        assert!((c[(k, k)] - v).abs() < 0.03 * v.max(0.01), "k={k} {} vs {v}", c[(k, k)]);
    }
    // Off-manifold coordinates are exactly zero.
    assert!((0..x.nrows()).all(|i| x[(i, 7)] == 0.0));
    assert_eq!(lm.gap_positions(), vec![3, 6]);
}

#[test]
fn rotated_manifold_lies_in_the_span_of_the_basis() {
    let lm =
        LinearManifold::new(10, &[Block { dim: 4, variance: 2.0 }], Embedding::RandomRotation { seed: 9 }).unwrap();
    let q = lm.basis();
    let qtq = q.transpose() * q;
    for i in 0..10 {
        for j in 0..10 {
            assert!((qtq[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
        }
    }
    let x = lm.sample(50, 1);
    let proj = x.as_ref() * q; // coordinates in the basis
    for i in 0..50 {
        for k in 4..10 {
            assert!(proj[(i, k)].abs() < 1e-12);
        }
    }
}

#[test]
fn sampling_is_seeded() {
    let lm = LinearManifold::new(5, &[Block { dim: 3, variance: 1.0 }], Embedding::RandomRotation { seed: 2 }).unwrap();
    assert_eq!(lm.sample(10, 4), lm.sample(10, 4));
    assert_ne!(lm.sample(10, 4), lm.sample(10, 5));
    let vm = VonMisesCircle::new(0.0, 3.0, 1.0).unwrap();
    assert_eq!(vm.sample_angles(20, 1), vm.sample_angles(20, 1));
}

#[test]
fn hidden_manifold_variance_and_activation() {
    let hm = HiddenManifold::new(50, 10, 2.0, Activation::Identity, 1).unwrap();
    let f = hm.factor();
    let mean_sq: f64 =
        (0..50).flat_map(|i| (0..10).map(move |j| (i, j))).map(|(i, j)| f[(i, j)].powi(2)).sum::<f64>() / 500.0;
    assert!((mean_sq - 0.2).abs() < 0.03, "{mean_sq}");
    let relu = HiddenManifold::new(20, 5, 1.0, Activation::Relu, 1).unwrap().sample(100, 2);
    assert!((0..100).all(|i| (0..20).all(|j| relu[(i, j)] >= 0.0)));
    let mut x = hm.sample(30, 3);
    project_to_sphere(&mut x, 50f64.sqrt()).unwrap();
    for i in 0..30 {
        let n: f64 = x.row(i).iter().map(|v| v * v).sum();
        assert!((n - 50.0).abs() < 1e-9);
    }
    let before = x.clone();
    add_noise(&mut x, 0.01, 4).unwrap();
    let diff: f64 = (0..30).map(|i| (x[(i, 0)] - before[(i, 0)]).powi(2)).sum::<f64>() / 30.0;
    assert!(diff > 0.0 && diff < 1e-3);
}

/// Mean resultant length of VM(μ, κ) is I1(κ)/I0(κ); for κ = 2 that is 0.697775.
#[test]
fn von_mises_mean_resultant_length() {
    let vm = VonMisesCircle::new(0.7, 2.0, 1.0).unwrap();
    let a = vm.sample_angles(200_000, 5);
    let c: f64 = a.iter().map(|t| t.cos()).sum::<f64>() / a.len() as f64;
    let s: f64 = a.iter().map(|t| t.sin()).sum::<f64>() / a.len() as f64;
    let r = (c * c + s * s).sqrt();
    assert!((r - 0.697775).abs() < 0.005, "R = {r}");
    assert!((s.atan2(c) - 0.7).abs() < 0.01);
    let uni = VonMisesCircle::new(0.0, 0.0, 1.0).unwrap().sample_angles(100_000, 1);
    let r0 = (uni.iter().map(|t| t.cos()).sum::<f64>().powi(2) + uni.iter().map(|t| t.sin()).sum::<f64>().powi(2))
        .sqrt()
        / 1e5;
    assert!(r0 < 0.01);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, rng_seed: proptest::test_runner::RngSeed::Fixed(3), ..ProptestConfig::default() })]
    /// Subsets are nested prefixes of one order, without repeats.
    #[test]
    fn subsets_are_nested(total in 1usize..500, a in 0usize..500, b in 0usize..500, seed in 0u64..100) {
        let s = NestedSubsets::new(total, seed);
        let (a, b) = (a.min(total), b.min(total));
        let (lo, hi) = (a.min(b), a.max(b));
        let small = s.indices(lo).unwrap();
        let big = s.indices(hi).unwrap();
        prop_assert_eq!(small, &big[..lo]);
        let mut seen = big.to_vec();
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), hi);
        let too_large = matches!(s.indices(total + 1), Err(DataError::SubsetTooLarge { .. }));
        prop_assert!(too_large);
    }
}

#[test]
fn bad_parameters_get_typed_errors() {
    assert!(matches!(
        LinearManifold::new(3, &[Block { dim: 4, variance: 1.0 }], Embedding::Aligned),
        Err(DataError::ManifoldTooLarge { m: 4, d: 3 })
    ));
    assert!(matches!(
        LinearManifold::new(3, &[Block { dim: 1, variance: -1.0 }], Embedding::Aligned),
        Err(DataError::InvalidVariance { .. })
    ));
    assert!(matches!(
        LinearManifold::new(3, &[Block { dim: 1, variance: f64::NAN }], Embedding::Aligned),
        Err(DataError::InvalidVariance { .. })
    ));
    assert!(matches!(HiddenManifold::new(3, 5, 1.0, Activation::Tanh, 0), Err(DataError::ManifoldTooLarge { .. })));
    assert!(VonMisesCircle::new(0.0, -1.0, 1.0).is_err());
    assert!(VonMisesCircle::new(0.0, 1.0, 0.0).is_err());
    let mut x = Mat::zeros(2, 2);
    assert!(add_noise(&mut x, -1.0, 0).is_err());
    assert!(project_to_sphere(&mut x, 0.0).is_err());
}

#[test]
fn npy_round_trip_and_other_dtypes() {
    let m = Mat::from_fn(7, 3, |i, j| i as f64 * 0.5 - j as f64);
    let p = tmp("a.npy");
    write_npy(&p, m.as_ref()).unwrap();
    assert_eq!(read_npy(&p).unwrap(), m);
    // float32 written by npyz (as numpy would).
    use npyz::WriterBuilder;
    let p32 = tmp("b.npy");
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[2, 2])
        .writer(std::fs::File::create(&p32).unwrap())
        .begin_nd()
        .unwrap();
    w.extend([1.5f32, 2.0, -3.0, 4.25]).unwrap();
    w.finish().unwrap();
    let r = read_npy(&p32).unwrap();
    assert_eq!((r[(0, 0)], r[(0, 1)], r[(1, 0)], r[(1, 1)]), (1.5, 2.0, -3.0, 4.25));
}

#[test]
fn corrupt_and_missing_files_get_errors() {
    let p = tmp("c.npy");
    write_npy(&p, Mat::from_fn(10, 10, |i, j| (i * j) as f64).as_ref()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let trunc = tmp("trunc.npy");
    std::fs::write(&trunc, &bytes[..bytes.len() - 40]).unwrap();
    assert!(matches!(read_npy(&trunc), Err(DataError::LengthMismatch { .. })));
    let garbage = tmp("garbage.npy");
    std::fs::write(&garbage, b"not a numpy file at all").unwrap();
    assert!(matches!(read_npy(&garbage), Err(DataError::NpyHeader { .. })));
    assert!(matches!(read_npy(tmp("missing.npy")), Err(DataError::Io { .. })));
    let bad_csv = tmp("bad.csv");
    std::fs::write(&bad_csv, "a,b\n1,2\n3,x\n").unwrap();
    assert!(matches!(read_csv(&bad_csv), Err(DataError::NotNumeric { .. })));
    let ragged = tmp("ragged.csv");
    std::fs::write(&ragged, "1,2\n3\n").unwrap();
    assert!(read_csv(&ragged).is_err());
}

#[test]
fn csv_round_trip_with_header() {
    let m = Mat::from_fn(4, 2, |i, j| (i as f64).powi(2) - j as f64 / 3.0);
    let p = tmp("m.csv");
    write_csv(&p, m.as_ref(), Some(&["x", "y"])).unwrap();
    assert_eq!(read_csv(&p).unwrap(), m);
}

#[test]
fn embedded_digits() {
    let d = geomem_data::digits().unwrap();
    assert_eq!((d.images.nrows(), d.images.ncols(), d.labels.len()), (1797, 64, 1797));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for j in 0..64 {
        for i in 0..1797 {
            lo = lo.min(d.images[(i, j)]);
            hi = hi.max(d.images[(i, j)]);
        }
    }
    assert_eq!((lo, hi), (-1.0, 1.0));
    // Every class is present, about 180 each (sklearn's load_digits counts: 178..=183).
    for c in 0..10u8 {
        let n = d.labels.iter().filter(|&&l| l == c).count();
        assert!((170..=190).contains(&n), "class {c}: {n}");
    }
    // Pixel (0, 0) is blank in every image of this set.
    assert!((0..1797).all(|i| d.images[(i, 0)] == -1.0));
}

#[test]
fn authors_sphere_data_match_their_definition() {
    let a = NoisyLinear::authors(30, 2, 5).unwrap();
    assert_eq!(a.principal_variances()[..8], [1.0, 1.0, 0.09, 0.09, 0.09, 0.09, 0.09, 1e-4]);
    let x = a.sample(4000, 3);
    assert_eq!(x, a.sample(4000, 3));
    for i in 0..x.nrows() {
        assert!((x.row(i).norm_l2() - 1.0).abs() < 1e-12);
    }
    // Before normalisation: per-axis variances 1, 0.09, 1e-4 (within 5 standard errors).
    let raw = NoisyLinear::new(a.manifold().clone(), 1e-4, None).unwrap().sample(4000, 3);
    for (j, v) in [(0, 1.0), (3, 0.09), (20, 1e-4)] {
        let var = raw.col(j).iter().map(|u| u * u).sum::<f64>() / 4000.0;
        assert!((var / v - 1.0).abs() < 5.0 * (2.0f64 / 4000.0).sqrt(), "axis {j}: {var} vs {v}");
    }
    // The control keeps m, the total variance, the noise and the sphere.
    let c = a.isotropic_control().unwrap();
    let (pv, cv) = (a.principal_variances(), c.principal_variances());
    assert!((pv.iter().sum::<f64>() - cv.iter().sum::<f64>()).abs() < 1e-12);
    assert!(cv[..7].iter().all(|v| (v - 2.45 / 7.0).abs() < 1e-12));
    assert_eq!((c.off_variance(), c.radius(), c.manifold().m()), (1e-4, Some(1.0), 7));
    assert!(NoisyLinear::new(a.manifold().clone(), -1.0, None).is_err());
    assert!(NoisyLinear::new(a.manifold().clone(), 0.0, Some(0.0)).is_err());
}

#[test]
fn radial_direction_of_the_authors_data_lies_mostly_in_the_high_variance_block() {
    // THEORY §8 places the sphere's radial direction in the variance-1 block: its mean share
    // E|y_1|²/|y|² there is 0.70 (2 axes of variance 1 against 5 of 0.09 and 23 of 1e-4).
    let x = NoisyLinear::authors(30, 2, 5).unwrap().sample(20_000, 11);
    let share = (0..x.nrows()).map(|i| x[(i, 0)].powi(2) + x[(i, 1)].powi(2)).sum::<f64>() / x.nrows() as f64;
    assert!((share - 0.70).abs() < 0.01, "{share}");
}
