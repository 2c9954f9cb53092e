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
    let lm = LinearManifold::new(
        12,
        &[Block { dim: 2, variance: 1.0 }, Block { dim: 3, variance: 0.3 }],
        Embedding::RandomRotation { seed: 3 },
    )
    .unwrap();
    let g = GaussianScore::from_factor(lm.factor()).unwrap();
    let x: Vec<f64> = (0..12).map(|i| (i as f64).cos()).collect();
    for &t in &[1e-3, 0.1, 2.0] {
        let exact = g.spectrum(t).unwrap();
        for p in [
            SpectrumParams::default(),
            SpectrumParams::finite_difference(Scheme::Central, Step::SqrtT),
            SpectrumParams::improved_normal_bundle(5),
        ] {
            let s = spectrum(&g, &x, t, &p).unwrap().into_values();
            assert!(max_rel(&s, &exact) < 1e-8, "t={t} {p:?}: {}", max_rel(&s, &exact));
        }
        // Canonical forward differences reproduce the matrix itself.
        let j = SpectrumEstimator::new(SpectrumParams::default(), 12).jacobian(&g, &x, t).unwrap();
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
        let central = SpectrumParams::finite_difference(Scheme::Central, step);
        let canon = spectrum(&f, &x, t, &central).unwrap().into_values();
        let inb = spectrum(&f, &x, t, &central.directions(Directions::RandomOrthonormal { seed })).unwrap().into_values();
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
            let s =
                normal_bundle_spectrum(&g, &[0.0; 10], t, &NormalBundleParams::default().k(k).variant(variant).seed(3))
                    .unwrap();
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
    let eq5 = SpectrumParams::default();
    assert!(matches!(spectrum(&g, &[0.0; 3], 1.0, &eq5), Err(SpectralError::Score(_))));
    assert!(matches!(spectrum(&g, &[0.0; 2], 0.0, &eq5), Err(SpectralError::Score(_))));
    let p = SpectrumParams::finite_difference(Scheme::Forward, Step::Fixed(-1.0));
    assert!(matches!(spectrum(&g, &[0.0; 2], 1.0, &p), Err(SpectralError::InvalidParameter { .. })));
    let mf = SpectrumParams::matrix_free(MatrixFreeParams::default().block(0));
    assert!(matches!(spectrum(&g, &[0.0; 2], 1.0, &mf), Err(SpectralError::InvalidParameter { .. })));
    let mf = SpectrumParams::matrix_free(MatrixFreeParams::default());
    assert!(matches!(spectrum(&g, &[f64::NAN, 0.0], 1.0, &mf), Err(SpectralError::Score(_))));
    assert!(matches!(spectrum(&g, &[0.0; 2], -1.0, &mf), Err(SpectralError::Score(_))));
    assert!(SpectrumEstimator::new(mf, 2).jacobian(&g, &[0.0; 2], 1.0).is_err(), "no matrix");
    assert!(matches!(
        normal_bundle_spectrum(&g, &[0.0; 2], 1.0, &NormalBundleParams::default().k(0)),
        Err(SpectralError::InvalidParameter { .. })
    ));
}

/// Tiny and huge t, and a few hundred dimensions: finite spectra.
#[test]
fn extreme_times_are_finite() {
    let d = 256;
    let lm = LinearManifold::new(d, &[Block { dim: 20, variance: 1.0 }], Embedding::Aligned).unwrap();
    let f = EmpiricalScore::new(lm.sample(500, 2)).unwrap();
    let x: Vec<f64> = f.data().row(0).iter().copied().collect();
    for &t in &[1e-8, 1e4] {
        let s = spectrum(&f, &x, t, &SpectrumParams::improved_normal_bundle(1)).unwrap().into_values();
        assert!(s.iter().all(|v| v.is_finite()), "t={t}");
        let nb = normal_bundle_spectrum(&f, &x, t, &NormalBundleParams::default().k(300)).unwrap();
        assert!(nb.iter().all(|v| v.is_finite()), "t={t}");
    }
}

#[test]
fn stored_spectra_and_rules_are_checked_on_deserialisation() {
    use geomem_spectral::{SecondDerivativeRule, Spectrum};
    let ok: Spectrum = serde_json::from_str("[0.5, 2.0, 1.0]").unwrap();
    assert_eq!(ok.values(), &[2.0, 1.0, 0.5]);
    assert_eq!(serde_json::to_string(&ok).unwrap(), "[2.0,1.0,0.5]");
    assert!(serde_json::from_str::<Spectrum>("[]").is_err(), "empty");
    assert!(serde_json::from_str::<Spectrum>("[1.0, -2.0]").is_err(), "negative");
    let rule: SecondDerivativeRule = serde_json::from_str(r#"{"discard": 3, "threshold": 12.0}"#).unwrap();
    assert_eq!(rule, SecondDerivativeRule::new(3, 12.0).unwrap());
    assert!(serde_json::from_str::<SecondDerivativeRule>(r#"{"discard": 3, "threshold": -1.0}"#).is_err());
}

#[test]
fn precomputed_basis_gives_the_same_spectrum() {
    let data = geomem_data::LinearManifold::new(
        12,
        &[geomem_data::Block { dim: 4, variance: 1.0 }],
        geomem_data::Embedding::Aligned,
    )
    .unwrap()
    .sample(200, 3);
    let f = EmpiricalScore::new(data).unwrap();
    let basis = OrthonormalBasis::from_directions(Directions::RandomOrthonormal { seed: 4 }, 12);
    let x = vec![0.1; 12];
    for t in [0.01, 0.5] {
        let per_call = spectrum(&f, &x, t, &SpectrumParams::improved_normal_bundle(4)).unwrap();
        let reused = SpectrumEstimator::in_basis(SpectrumParams::default(), &basis).estimate(&f, &x, t).unwrap();
        assert_eq!(per_call, reused);
        let prepared = SpectrumEstimator::new(SpectrumParams::improved_normal_bundle(4), 12);
        assert_eq!(prepared.estimate(&f, &x, t).unwrap(), reused);
    }
    let wrong = OrthonormalBasis::from_directions(Directions::Canonical, 5);
    assert!(SpectrumEstimator::in_basis(SpectrumParams::default(), &wrong).estimate(&f, &x, 0.1).is_err());
    assert!(OrthonormalBasis::new(faer::Mat::from_fn(3, 2, |i, j| (i + j) as f64)).is_err(), "not orthonormal");
    assert!(OrthonormalBasis::new(faer::Mat::<f64>::zeros(3, 0)).is_err(), "no columns");
    assert!(OrthonormalBasis::new(faer::Mat::<f64>::identity(3, 3)).is_ok());
}

#[test]
fn pointwise_jacobian_uses_the_fields_own_derivatives() {
    let data = geomem_data::LinearManifold::new(
        8,
        &[geomem_data::Block { dim: 3, variance: 1.0 }],
        geomem_data::Embedding::Aligned,
    )
    .unwrap()
    .sample(50, 1);
    let f = EmpiricalScore::new(data).unwrap();
    let x = vec![0.05; 8];
    let q = OrthonormalBasis::from_directions(Directions::RandomOrthonormal { seed: 2 }, 8);
    let t = 0.05;
    let est = SpectrumEstimator::in_basis(SpectrumParams::pointwise(), &q);
    let jq = est.jacobian(&f, &x, t).unwrap();
    let want = f.jacobian(&x, t).unwrap().unwrap() * q.as_mat();
    assert!((0..8).all(|i| (0..8).all(|j| (jq[(i, j)] - want[(i, j)]).abs() < 1e-12 / t)));
    let exact = f.jacobian_spectrum(&x, t).unwrap();
    let s = est.estimate(&f, &x, t).unwrap().into_values();
    assert!(s.iter().zip(&exact).all(|(a, b)| (a - b).abs() < 1e-9 * exact[0]));
}

#[test]
fn auto_step_respects_an_f32_field() {
    use faer::{MatMut, MatRef};
    use geomem_score::{Precision, ScoreField};
    /// The exact Gaussian score rounded to f32, reporting its precision.
    struct Rounded(GaussianScore);
    impl ScoreField for Rounded {
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn precision(&self) -> Precision {
            Precision::F32
        }
        fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> geomem_score::Result<()> {
            let xr = faer::Mat::from_fn(x.nrows(), x.ncols(), |i, j| f64::from(x[(i, j)] as f32));
            self.0.eval(xr.as_ref(), t, out.as_mut())?;
            for j in 0..out.ncols() {
                for i in 0..out.nrows() {
                    out[(i, j)] = f64::from(out[(i, j)] as f32);
                }
            }
            Ok(())
        }
    }
    let var = [1.0, 0.5, 0.1, 0.0, 0.0];
    let f = Rounded(GaussianScore::from_variances(&var).unwrap());
    let t = 1e-3;
    let exact = f.0.spectrum(t).unwrap();
    let x = [0.3, -0.2, 0.1, 0.0, 0.0];
    let err = |step: Step| {
        let s = spectrum(&f, &x, t, &SpectrumParams::finite_difference(Scheme::Central, step)).unwrap().into_values();
        s.iter().zip(&exact).map(|(a, b)| ((a - b) / b).abs()).fold(0.0, f64::max)
    };
    // 1e-5·√t sits on the f32 rounding floor; the automatic step does not.
    let (tiny, auto) = (err(Step::Fixed(1e-5 * t.sqrt())), err(Step::Auto));
    assert!(auto < 1e-4, "auto step: relative error {auto}");
    assert!(tiny > 10.0 * auto, "fixed 1e-5 sqrt(t): {tiny} vs auto {auto}");
}

/// The authors' synthetic procedure (NB Algorithm 1, K = d unit orthonormal directions) at a
/// point where the mean score dominates: the top singular value is the mean score, and the
/// rest are the Jacobian's with the mean score's direction projected out of its output
/// (and one probe direction out of its input). A mean score in the soft (tangent) space
/// takes a soft value: the Jacobian's gap (24 stiff directions here) reads one place
/// further, at 25, in the rank among all d values. One in the stiff (normal) space takes a
/// stiff value: the gap stays at 24. The authors' notebook drops the top value but plots by
/// that rank (`docs/THEORY.md` §8).
#[test]
fn authors_procedure_moves_the_jacobian_gap_when_the_mean_score_is_tangent() {
    let var: Vec<f64> = [vec![0.0; 24], vec![1.0; 6]].concat();
    let g = GaussianScore::from_variances(&var).unwrap();
    let t = 1e-3;
    let gap_at = |s: &[f64]| {
        let logs: Vec<f64> = s.windows(2).map(|w| (w[0] / w[1]).ln()).collect();
        // 1-based mark k = the gap between the k-th and (k+1)-th largest values.
        (0..logs.len()).max_by(|&a, &b| logs[a].total_cmp(&logs[b])).unwrap() + 1
    };
    // No mean score; a mean score -x/t = 100 along a stiff direction; one ≈ -x = 100 along
    // a soft one. Either gives the matrix a rank-one part of norm 100 √(K/t) ≈ 17 000,
    // against the Jacobian's values 1000 (stiff) and 1 (soft).
    for (axis, value, want) in [(0, 0.0, 24), (0, 0.1, 24), (29, 100.0, 25)] {
        let mut x0 = vec![0.0; 30];
        x0[axis] = value;
        for seed in 0..5 {
            let p = NormalBundleParams::default()
                .k(30)
                .variant(NormalBundleVariant::Scores)
                .perturbation(Perturbation::UnitOrthonormal)
                .seed(seed);
            let m = normal_bundle_matrix(&g, &x0, t, &p).unwrap();
            let s = singular_values(m.as_ref()).unwrap();
            assert_eq!(gap_at(&s), want, "x0[{axis}] = {value}, seed {seed}: {s:?}");
            if want == 25 {
                // The top value dropped and the rest read by their own index: back at 24.
                assert_eq!(gap_at(&s[1..]), 24);
            }
        }
    }
}
