//! The nearest-neighbour label, AUROC and the OD/DD kinds; the per-point interface on one
//! data set and one field.
use faer::Mat;
use geomem_lid::{
    auroc, classify, memorization, DataEstimator, DataLid, LidError, MemKind, Mle, NormalBundleLid, PointwiseLid,
    Summary, TwoNn,
};
use geomem_score::GaussianScore;
use geomem_spectral::GapScale;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn normal(n: usize, d: usize, m: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(n, d, |_, j| {
        let z: f64 = StandardNormal.sample(&mut rng);
        if j < m {
            z
        } else {
            0.0
        }
    })
}

#[test]
fn copies_are_memorized_and_fresh_points_are_not() {
    let train = normal(50, 3, 3, 7);
    let copies = Mat::from_fn(50, 3, |i, j| train[(i, j)] + 1e-4);
    let m = memorization(copies.as_ref(), train.as_ref(), 1.0 / 3.0).unwrap();
    assert_eq!(m.fraction_memorized, 1.0);
    assert_eq!(m.nearest, (0..50).collect::<Vec<_>>());
    let per_train: Vec<f64> = (0..50).map(|j| j as f64 * 0.5).collect();
    assert_eq!(m.at_memorized(&per_train).unwrap(), per_train);
    assert!(m.at_memorized(&per_train[..10]).is_err());
    let fresh = normal(500, 3, 3, 8);
    let f = memorization(fresh.as_ref(), train.as_ref(), 1.0 / 3.0).unwrap();
    assert!(f.fraction_memorized < 0.2, "{}", f.fraction_memorized);
    assert!(memorization(fresh.as_ref(), train.subrows(0, 1), 0.3).is_err());
    assert!(memorization(fresh.as_ref(), train.as_ref(), 0.0).is_err());
    let mut bad = Mat::<f64>::zeros(2, 3);
    bad[(1, 2)] = f64::NAN;
    assert!(matches!(memorization(bad.as_ref(), train.as_ref(), 1.0 / 3.0), Err(LidError::Data { .. })));
    bad[(1, 2)] = f64::INFINITY;
    assert!(matches!(memorization(bad.as_ref(), train.as_ref(), 1.0 / 3.0), Err(LidError::Data { .. })));
}

#[test]
fn auroc_closed_cases() {
    let labels = [true, true, false, false];
    assert_eq!(auroc(&[4.0, 3.0, 2.0, 1.0], &labels).unwrap(), Some(1.0));
    assert_eq!(auroc(&[1.0, 2.0, 3.0, 4.0], &labels).unwrap(), Some(0.0));
    assert_eq!(auroc(&[1.0, 1.0, 1.0, 1.0], &labels).unwrap(), Some(0.5));
    // One inversion of four pairs.
    assert_eq!(auroc(&[4.0, 2.0, 3.0, 1.0], &labels).unwrap(), Some(0.75));
    assert_eq!(auroc(&[1.0, 2.0], &[true, true]).unwrap(), None);
    assert!(auroc(&[1.0], &[true, false]).is_err());
    assert!(auroc(&[f64::NAN, 1.0], &[true, false]).is_err());
}

#[test]
fn od_and_dd_memorization() {
    // Seed 004: OD-Mem where the model's LID is below the data's, DD-Mem where they agree
    // (both low), and a third kind where the model's lies above the data's.
    let memorized = [false, true, true, true, true, true];
    let model = [1.0, 0.1, 0.05, 0.3, 1.5, 0.4];
    let data = [1.0, 1.0, 0.1, 0.1, 1.0, 0.1];
    let kinds = classify(&memorized, &model, &data, 0.25).unwrap();
    use MemKind::*;
    assert_eq!(kinds, [Novel, OdMem, DdMem, DdMem, AboveData, AboveData]);
    // No margin: only exact agreement is DD-Mem.
    let kinds = classify(&[true, true, true], &[0.2, 0.2, 0.2], &[0.2, 0.3, 0.1], 0.0).unwrap();
    assert_eq!(kinds, [DdMem, OdMem, AboveData]);
    assert!(classify(&[true], &[1.0, 2.0], &[1.0], 0.1).is_err());
    assert!(classify(&[true], &[1.0], &[1.0], -1.0).is_err());
}

#[test]
fn every_estimator_through_one_interface() {
    // A 2-plane in R^6: data estimators near 2, the Normal Bundle dimension exactly 2.
    let x = normal(1500, 6, 2, 9);
    let field = GaussianScore::from_variances(&[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    let est: Vec<Box<dyn PointwiseLid>> = vec![
        Box::new(DataLid::itself(DataEstimator::Mle(Mle::default()))),
        Box::new(DataLid::itself(DataEstimator::TwoNn(TwoNn::default(), 100))),
        Box::new(NormalBundleLid { field, t: 1e-3, scale: GapScale::Log, skip: 0 }),
    ];
    for e in &est {
        let v = e.lid(x.subrows(0, 1500)).unwrap();
        let s = Summary::of(&v);
        assert!((s.quantiles[2] - 2.0).abs() < 0.3, "{}: median {}", e.name(), s.quantiles[2]);
    }
    // Against a reference: samples of the same plane get MLE near 2 from the training set.
    let against = DataLid::against(DataEstimator::Mle(Mle::default()), x.clone());
    let s = Summary::of(&against.lid(normal(50, 6, 2, 10).as_ref()).unwrap());
    assert!((s.quantiles[2] - 2.0).abs() < 0.4, "{}", s.quantiles[2]);
}

#[test]
fn summary_quantiles_and_nan() {
    let s = Summary::of(&[1.0, f64::NAN, 3.0, 2.0, 4.0, 5.0]);
    assert_eq!((s.n, s.nan), (6, 1));
    assert_eq!(s.quantiles[2], 3.0);
    assert_eq!(s.quantiles[1], 2.0);
    assert!((s.std - 2.5f64.sqrt()).abs() < 1e-12);
}

#[test]
fn detection_separates_copies_from_fresh_points_under_the_empirical_score() {
    // The empirical score memorizes everything: near a training point FLIPD is ~0, away from
    // the training set (on the same plane) it is not. Control: the exact Gaussian score of
    // the plane gives both kinds of sample FLIPD ~2, and the AUROC drops to chance.
    use geomem_lid::detect;
    use geomem_score::EmpiricalScore;
    let train = normal(40, 4, 2, 21);
    let copies = Mat::from_fn(20, 4, |i, j| train[(i, j)] + if j < 2 { 1e-3 } else { 0.0 });
    let fresh = normal(20, 4, 2, 22);
    let samples = Mat::from_fn(40, 4, |i, j| if i < 20 { copies[(i, j)] } else { fresh[(i - 20, j)] });
    let mem = memorization(samples.as_ref(), train.as_ref(), 1.0 / 3.0).unwrap();
    assert!(mem.labels()[..20].iter().all(|&l| l));
    let novel = mem.labels()[20..].iter().filter(|&&l| !l).count();
    assert!(novel >= 15, "{novel} of the fresh points are novel");
    let data_lid = vec![2.0; 40];
    let emp = EmpiricalScore::new(train.clone()).unwrap();
    let d = detect(&emp, samples.as_ref(), &mem, Some(&data_lid), &[1e-3], 0.5).unwrap();
    assert!(d[0].auroc.unwrap() > 0.95, "{:?}", d[0].auroc);
    assert!(d[0].median_memorized < 0.1, "{}", d[0].median_memorized);
    assert_eq!(d[0].count(MemKind::OdMem), 20, "copies read LID ~0 < data LID 2: overfitting-driven");
    let exact = GaussianScore::from_variances(&[1.0, 1.0, 0.0, 0.0]).unwrap();
    let c = detect(&exact, samples.as_ref(), &mem, None, &[1e-3], 0.5).unwrap();
    assert!((c[0].median_memorized - 2.0).abs() < 0.1 && (c[0].median_novel - 2.0).abs() < 0.1);
    assert!(c[0].auroc.unwrap() < 0.8, "the exact score does not separate them: {:?}", c[0].auroc);
    assert!(c[0].kinds.is_none());
    assert!(detect(&emp, samples.as_ref(), &mem, Some(&[2.0; 3]), &[1e-2], 0.5).is_err());
}
