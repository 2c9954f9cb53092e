//! Tests of the Jacobian estimators, spectra and dimension rules.
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_score::{EmpiricalScore, GaussianScore, ScoreFieldExt};
use geomem_spectral::*;
use proptest::prelude::*;

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-300)).fold(0.0, f64::max)
}

/// For a linear field every finite-difference scheme is exact: the smoothed Jacobian of the
/// Gaussian score equals its exact Jacobian, in any orthonormal basis.
#[test]
fn smoothed_jacobian_is_exact_for_gaussian_score() {
    let lm = LinearManifold::new(12, &[Block { dim: 2, variance: 1.0 }, Block { dim: 3, variance: 0.3 }], Embedding::RandomRotation { seed: 3 }).unwrap();
    let g = GaussianScore::from_factor(lm.factor()).unwrap();
    let x: Vec<f64> = (0..12).map(|i| (i as f64).cos()).collect();
    for &t in &[1e-3, 0.1, 2.0] {
        let exact = g.spectrum(t).unwrap();
        for p in [
            SmoothedJacobianParams::default(),
            SmoothedJacobianParams::default().scheme(Scheme::Central),
            SmoothedJacobianParams::improved_normal_bundle(5),
        ] {
            let s = smoothed_jacobian_spectrum(&g, &x, t, &p).unwrap();
            assert!(max_rel(&s, &exact) < 1e-8, "t={t} {p:?}: {}", max_rel(&s, &exact));
        }
        // Canonical forward differences reproduce the matrix itself.
        let j = smoothed_jacobian(&g, &x, t).unwrap();
        let je = g.jacobian(&x, t).unwrap().unwrap();
        for a in 0..12 {
            for b in 0..12 {
                assert!((j[(a, b)] - je[(a, b)]).abs() < 1e-8 / t);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, rng_seed: proptest::test_runner::RngSeed::Fixed(5), ..ProptestConfig::default() })]

    /// The improved Normal Bundle spectrum (random orthonormal directions) equals the smoothed
    /// Jacobian's (canonical directions) when the step is small enough for the field to be
    /// linear at that scale; both then equal the analytic spectrum of the empirical score.
    #[test]
    fn improved_nb_equals_smoothed_jacobian_spectrum(d in 2usize..10, n in 5usize..80, seed in 0u64..500, lt in -1.0f64..1.0) {
        let t = 10f64.powf(lt);
        let lm = LinearManifold::new(d, &[Block { dim: 1.max(d / 2), variance: 1.0 }], Embedding::Aligned).unwrap();
        let f = EmpiricalScore::new(lm.sample(n, seed)).unwrap();
        let x = vec![0.1; d];
        let step = Step::Fixed(1e-5 * t.sqrt());
        let canon = smoothed_jacobian_spectrum(&f, &x, t, &SmoothedJacobianParams::default().scheme(Scheme::Central).step(step)).unwrap();
        let inb = smoothed_jacobian_spectrum(&f, &x, t, &SmoothedJacobianParams::improved_normal_bundle(seed).scheme(Scheme::Central).step(step)).unwrap();
        let analytic = f.jacobian_spectrum(&x, t).unwrap();
        let scale = analytic[0];
        let tol = 1e-5 * (d as f64).sqrt() * scale;
        for k in 0..d {
            prop_assert!((canon[k] - inb[k]).abs() < tol, "k={k} {} {}", canon[k], inb[k]);
            prop_assert!((canon[k] - analytic[k]).abs() < tol, "k={k} {} {}", canon[k], analytic[k]);
        }
    }
}

/// Normal Bundle with K ≫ d approaches the Jacobian spectrum, and more so as K grows.
#[test]
fn normal_bundle_converges_with_k() {
    let var: Vec<f64> = [vec![1.0; 2], vec![0.3; 3], vec![0.0; 5]].concat();
    let g = GaussianScore::from_variances(&var).unwrap();
    let t = 0.05;
    let exact = g.spectrum(t).unwrap();
    let mut errs = Vec::new();
    for &k in &[20usize, 200, 20_000] {
        let mut e = 0.0;
        for variant in [NormalBundleVariant::Scores, NormalBundleVariant::CentralDifference] {
            let s = normal_bundle_spectrum(&g, &[0.0; 10], t, &NormalBundleParams::default().k(k).variant(variant).seed(3)).unwrap();
            e = f64::max(e, max_rel(&s, &exact));
        }
        errs.push(e);
    }
    assert!(errs[0] > errs[1] && errs[1] > errs[2], "{errs:?}");
    assert!(errs[2] < 0.05, "{errs:?}");
}

/// The Normal Bundle on the empirical score of a large dataset recovers the gap at d - m.
#[test]
fn normal_bundle_finds_manifold_gap_on_empirical_score() {
    let lm = LinearManifold::new(10, &[Block { dim: 3, variance: 1.0 }], Embedding::Aligned).unwrap();
    let f = EmpiricalScore::new(lm.sample(20_000, 1)).unwrap();
    let s = normal_bundle_spectrum(&f, &[0.0; 10], 0.05, &NormalBundleParams::default()).unwrap();
    let spec = Spectrum::new(s).unwrap();
    assert_eq!(spec.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), 3);
}

#[test]
fn spectrum_gaps_and_positions() {
    let s = Spectrum::new(vec![0.1, 1.0, 1.0, 0.5, 0.1, 0.1]).unwrap();
    assert_eq!(s.values(), &[1.0, 1.0, 0.5, 0.1, 0.1, 0.1]);
    assert_eq!(s.normalized()[2], 0.5);
    let g = s.gaps(GapScale::Linear);
    assert_eq!(g.len(), 5);
    assert!((g[2] - 0.4).abs() < 1e-15);
    assert_eq!(s.largest_gap(GapScale::Linear, 0).unwrap().0, 2);
    assert_eq!(s.largest_gap(GapScale::Log, 0).unwrap().0, 3);
    assert_eq!(s.gaps_at(&[0, 3, 9], GapScale::Linear), vec![None, Some(g[2]), None]);
    assert_eq!(s.dimension_from_largest_gap(GapScale::Log, 0).unwrap(), 3);
    assert!(Spectrum::new(vec![]).is_err());
    assert!(Spectrum::new(vec![1.0, -0.1]).is_err());
    assert!(Spectrum::new(vec![1.0, f64::NAN]).is_err());
    assert!(s.largest_gap(GapScale::Linear, 5).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(9), ..ProptestConfig::default() })]

    /// Algorithm 3 finds the dimension of a step spectrum. The two blocks are linear with
    /// dyadic slopes, so every second difference away from the step is exactly zero (the
    /// rule compares against the median of |s''|: sorted noise would make that median tiny
    /// and let curvature inside the top block win, which is why the paper discards d̄ values).
    #[test]
    fn second_derivative_rule_finds_steps(d in 8usize..200, frac in 0.1f64..0.9, discard in 0usize..3) {
        let big = ((d as f64 * frac) as usize).max(discard + 2).min(d - 2);
        let v: Vec<f64> = (0..d).map(|i| if i < big { 1.0 - i as f64 / 1024.0 } else { 1.0 / 128.0 - (i - big) as f64 / 1048576.0 }).collect();
        let spec = Spectrum::new(v).unwrap();
        let rule = SecondDerivativeRule::new(discard, 10.0).unwrap();
        prop_assert_eq!(rule.dimension(spec.values()).unwrap(), Some(d - big));
    }
}

#[test]
fn second_derivative_rule_errors_and_flat_spectra() {
    let rule = SecondDerivativeRule::default();
    assert!(rule.dimension(&[1.0, 0.5]).is_err());
    assert!(SecondDerivativeRule::new(1, 0.0).is_err());
    // A smooth exponential decay has no drop: its largest second derivative is e^{2} times
    // the median, below c = 10.
    let smooth: Vec<f64> = (0..20).map(|i| (-(i as f64) / 5.0).exp()).collect();
    assert_eq!(rule.dimension(&smooth).unwrap(), None);
    // With a drop after 6 values and the tail scaled by 0.05, the curvature inside the top
    // block already exceeds 10x the median (the tail is flat): the rule reports the first
    // place above c · median, so d̄ = 5 values must be discarded to land on the drop.
    let step: Vec<f64> = (0..20).map(|i| (-(i as f64) / 5.0).exp() * if i < 6 { 1.0 } else { 0.05 }).collect();
    assert_eq!(SecondDerivativeRule::new(5, 10.0).unwrap().dimension(&step).unwrap(), Some(14));
}

#[test]
fn bad_input_gets_typed_errors() {
    let g = GaussianScore::from_variances(&[1.0, 0.0]).unwrap();
    assert!(matches!(smoothed_jacobian(&g, &[0.0; 3], 1.0), Err(SpectralError::Score(_))));
    assert!(matches!(smoothed_jacobian(&g, &[0.0; 2], 0.0), Err(SpectralError::Score(_))));
    let p = SmoothedJacobianParams::default().step(Step::Fixed(-1.0));
    assert!(matches!(smoothed_jacobian_with(&g, &[0.0; 2], 1.0, &p), Err(SpectralError::InvalidParameter { .. })));
    assert!(matches!(normal_bundle_spectrum(&g, &[0.0; 2], 1.0, &NormalBundleParams::default().k(0)), Err(SpectralError::InvalidParameter { .. })));
}

/// Tiny and huge t, and a few hundred dimensions: finite spectra.
#[test]
fn extreme_times_are_finite() {
    let d = 256;
    let lm = LinearManifold::new(d, &[Block { dim: 20, variance: 1.0 }], Embedding::Aligned).unwrap();
    let f = EmpiricalScore::new(lm.sample(500, 2)).unwrap();
    let x: Vec<f64> = f.data().row(0).iter().copied().collect();
    for &t in &[1e-8, 1e4] {
        let s = smoothed_jacobian_spectrum(&f, &x, t, &SmoothedJacobianParams::improved_normal_bundle(1)).unwrap();
        assert!(s.iter().all(|v| v.is_finite()), "t={t}");
        let nb = normal_bundle_spectrum(&f, &x, t, &NormalBundleParams::default().k(300)).unwrap();
        assert!(nb.iter().all(|v| v.is_finite()), "t={t}");
    }
}
