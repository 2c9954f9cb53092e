//! Tests of the positional REM: ζ functions, condensation time, N_eff, Jacobian model.
use geomem_rem::*;
use proptest::prelude::*;

fn blocks(d: usize, m1: usize, v1: f64, m2: usize, v2: f64) -> Vec<f64> {
    let mut s = vec![v1; m1];
    s.extend(vec![v2; m2]);
    s.resize(d, 0.0);
    s
}

fn arb_problem() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1usize..12)
        .prop_flat_map(|d| (proptest::collection::vec(0.0f64..3.0, d), proptest::collection::vec(-2.0f64..2.0, d)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

    /// Eq. 28 is the derivative of Eq. 27.
    #[test]
    fn zeta_prime_is_derivative((s, x) in arb_problem(), lambda in 0.2f64..3.0, lt in -2.0f64..2.0) {
        let t = 10f64.powf(lt);
        let rem = PositionalRem::new(&s, &x, 0.1).unwrap();
        let h = 1e-6;
        let fd = (rem.zeta(lambda + h, t).unwrap() - rem.zeta(lambda - h, t).unwrap()) / (2.0 * h);
        let an = rem.zeta_prime(lambda, t).unwrap();
        prop_assert!((fd - an).abs() < 1e-6 * (1.0 + an.abs()), "fd {fd} an {an}");
        prop_assert_eq!(rem.zeta(0.0, t).unwrap(), 0.0);
    }

    /// The exact t_c solves α + ζ(1) - ζ'(1) = 0, evaluated through ζ and ζ' (an independent
    /// code path from the simplified G(t) the solver uses).
    #[test]
    fn exact_tc_satisfies_its_equation((s, x) in arb_problem(), alpha in 0.01f64..2.0) {
        prop_assume!(s.iter().any(|&v| v > 1e-3));
        let rem = PositionalRem::new(&s, &x, alpha).unwrap();
        let tc = rem.condensation_time();
        let res = alpha + rem.zeta(1.0, tc).unwrap() - rem.zeta_prime(1.0, tc).unwrap();
        prop_assert!(res.abs() < 1e-9 * (1.0 + alpha), "residual {res} at t_c = {tc}");
        // Condensed (negative entropy) below t_c, not above.
        prop_assert!(rem.entropy(0.9 * tc).unwrap() < 0.0);
        prop_assert!(rem.entropy(1.1 * tc).unwrap() > 0.0);
    }

    /// N_eff lies in [1, N], equals N above t_c and tends to 1 as t → 0.
    #[test]
    fn n_eff_bounds(t in 1e-8f64..1e4, tc in 0.0f64..10.0, n in 1.0f64..1e5) {
        let v = n_eff(t, tc, n).unwrap();
        prop_assert!((1.0..=n).contains(&v));
        if t >= tc { prop_assert_eq!(v, n); }
        let y = participation_ratio(t, tc, n).unwrap();
        prop_assert!((y * v - 1.0).abs() < 1e-12);
    }
}

/// The large-t closed form (Eq. 15) approaches the exact t_c as α → 0 (t_c → ∞); Eq. 34 as
/// printed does not (a factor √2 off at ω² = 0).
#[test]
fn large_t_form_approaches_exact_as_alpha_vanishes() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    let x = vec![0.0; 30];
    let mut prev = f64::INFINITY;
    for &alpha in &[0.1, 0.01, 1e-3, 1e-4, 1e-6] {
        let rem = PositionalRem::new(&s, &x, alpha).unwrap();
        let rel = (rem.condensation_time_large_t() / rem.condensation_time() - 1.0).abs();
        assert!(rel < prev, "error must shrink with alpha: {rel} at {alpha}");
        prev = rel;
    }
    assert!(prev < 0.01, "{prev}");
    let rem = PositionalRem::new(&s, &x, 1e-6).unwrap();
    let r34 = rem.condensation_time_eq34_as_printed() / rem.condensation_time();
    assert!((r34 - 2f64.sqrt()).abs() < 0.02, "{r34}");
}

/// Eq. 29-30 approach Eq. 27-28 at large t.
#[test]
fn large_t_zeta_expansion() {
    let s = blocks(10, 3, 1.0, 3, 0.2);
    let x: Vec<f64> = (0..10).map(|i| (i as f64 * 0.37).sin()).collect();
    let rem = PositionalRem::new(&s, &x, 0.5).unwrap();
    let t = 1e3;
    let (z, zp) = rem.zeta_large_t(1.0, t).unwrap();
    assert!((z / rem.zeta(1.0, t).unwrap() - 1.0).abs() < 1e-2);
    assert!((zp / rem.zeta_prime(1.0, t).unwrap() - 1.0).abs() < 1e-2);
}

/// Along which direction condensation comes first depends on the regime. The directional
/// term of the exact condition is x²σ²/(2(t+σ²)²): at large t (small α) it grows with σ² and
/// high-variance directions condense first (Eq. 15, Sec. 5.4); when t_c is below the
/// variances (here d = 30, N = 1000, t_c ≈ 0.02-0.1) it behaves as x²/(2σ²) and the order
/// reverses. docs/THEORY.md discusses this disagreement with the paper's narrative.
#[test]
fn tc_direction_ordering_depends_on_regime() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    let tc = |n: f64, axis: Option<usize>, large_t: bool| {
        let mut x = vec![0.0; 30];
        if let Some(a) = axis {
            x[a] = 2.0;
        }
        let rem = PositionalRem::with_n(&s, &x, n).unwrap();
        if large_t {
            rem.condensation_time_large_t()
        } else {
            rem.condensation_time()
        }
    };
    // N = 1000: exact t_c is larger along the low-variance axis 3 than the high-variance axis 0.
    let (t0, t_hi, t_lo) = (tc(1000.0, None, false), tc(1000.0, Some(0), false), tc(1000.0, Some(3), false));
    assert!(t_lo > t_hi && t_hi > t0, "{t0} {t_hi} {t_lo}");
    // Eq. 15 keeps the paper's order at every N.
    assert!(tc(1000.0, Some(0), true) > tc(1000.0, Some(3), true));
    // N = 1.01 (α → 0, t_c ≫ σ²): the exact order agrees with the paper.
    assert!(tc(1.01, Some(0), false) > tc(1.01, Some(3), false));
    // No variance at all: never condensed.
    assert_eq!(PositionalRem::with_n(&[0.0; 3], &[1.0; 3], 10.0).unwrap().condensation_time(), 0.0);
}

/// The derived closed form equals the expected column norms of the random Jacobian of Eq. 18
/// (checked against Monte Carlo draws), the printed Eq. 43 and Eq. 19 do not.
#[test]
fn derived_closed_form_matches_sampled_column_norms() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    let model = EmpiricalJacobianModel::new(&s, 1000.0).unwrap();
    // t_c(0) = 0.0245 here: 0.005 and 0.01 are in the condensed phase, 0.05 is not.
    for &t in &[0.005, 0.01, 0.05] {
        let draws = 400;
        let mut norms = vec![0.0; 30];
        for k in 0..draws {
            let j = model.sample(t, k).unwrap();
            for c in 0..30 {
                norms[c] += (0..30).map(|r| j[(r, c)].powi(2)).sum::<f64>() / draws as f64;
            }
        }
        let mut mc: Vec<f64> = norms.iter().map(|v| v.sqrt()).collect();
        mc.sort_by(|a, b| b.total_cmp(a));
        let derived = model.closed_form_spectrum(t, ClosedForm::Derived).unwrap();
        for (a, b) in mc.iter().zip(&derived) {
            assert!((a / b - 1.0).abs() < 0.05, "t={t}: mc {a} derived {b}");
        }
        let e43 = model.closed_form_spectrum(t, ClosedForm::Eq43AsPrinted).unwrap();
        let e19 = model.closed_form_spectrum(t, ClosedForm::Eq19AsPrinted).unwrap();
        let worst = |v: &[f64]| mc.iter().zip(v).map(|(a, b)| (a / b - 1.0).abs()).fold(0.0, f64::max);
        if t < 0.02 {
            assert!(worst(&e43) > 0.2 && worst(&e19) > 0.2, "t={t}: {} {}", worst(&e43), worst(&e19));
        }
    }
}

/// Far above t_c (generalisation) with many points the model reduces to the exact spectrum.
#[test]
fn model_reduces_to_exact_spectrum_in_generalisation_phase() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    let model = EmpiricalJacobianModel::new(&s, 1e12).unwrap();
    let t = 5.0;
    let exact = exact_spectrum(&s, t).unwrap();
    let cf = model.closed_form_spectrum(t, ClosedForm::Derived).unwrap();
    for (a, b) in cf.iter().zip(&exact) {
        assert!((a / b - 1.0).abs() < 1e-6);
    }
}

#[test]
fn bad_input_gets_typed_errors() {
    assert!(matches!(
        PositionalRem::new(&[1.0, -1.0], &[0.0, 0.0], 0.1),
        Err(RemError::InvalidVariance { index: 1, .. })
    ));
    assert!(matches!(PositionalRem::new(&[1.0], &[0.0, 0.0], 0.1), Err(RemError::DimensionMismatch { .. })));
    assert!(matches!(PositionalRem::new(&[1.0], &[0.0], 0.0), Err(RemError::InvalidParameter { .. })));
    assert!(matches!(PositionalRem::new(&[1.0], &[f64::NAN], 0.1), Err(RemError::InvalidParameter { .. })));
    assert!(matches!(PositionalRem::new(&[], &[], 0.1), Err(RemError::InvalidParameter { .. })));
    let rem = PositionalRem::new(&[1.0], &[0.0], 0.1).unwrap();
    assert!(matches!(rem.zeta(1.0, 0.0), Err(RemError::InvalidTime(_))));
    assert!(n_eff(-1.0, 1.0, 10.0).is_err());
    assert!(n_eff(1.0, 1.0, 0.5).is_err());
    assert!(EmpiricalJacobianModel::new(&[1.0], 1.0).is_err());
}

/// Extreme times and large d stay finite.
#[test]
fn extreme_values_are_finite() {
    let s: Vec<f64> = (0..3072).map(|i| if i < 500 { 1.0 + (i % 7) as f64 } else { 0.0 }).collect();
    let rem = PositionalRem::with_n(&s, &vec![0.5; 3072], 1e5).unwrap();
    let tc = rem.condensation_time();
    assert!(tc.is_finite() && tc > 0.0);
    for &t in &[1e-8, 1e4] {
        assert!(rem.zeta(1.0, t).unwrap().is_finite());
        assert!(rem.zeta_prime(1.0, t).unwrap().is_finite());
        assert!(rem.entropy(t).unwrap().is_finite());
    }
    let model = EmpiricalJacobianModel::new(&s[..64], 1e5).unwrap();
    for &t in &[1e-8, 1e4] {
        assert!(model.closed_form_spectrum(t, ClosedForm::Derived).unwrap().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn notebook_form_equals_its_formula_by_hand() {
    // d = 3: variances 1, 0.09, 0; N = 100; linear data (r4 on).
    let s = [1.0, 0.09, 0.0];
    let (n, t) = (100.0f64, 0.05);
    let nb = NotebookTheory::new(&s, n, false).unwrap();
    let l = 2.0 * n.ln();
    let g = (1.0 + 0.0081) / 2.0;
    let tc0 = (g / l).sqrt();
    let phi = |tc: f64| (1.0 / t - 1.0 / tc).max(0.0);
    let f: f64 = s.iter().map(|v| v / (t * t * (t + v))).sum();
    let got = nb.values(t).unwrap();
    for (j, v) in s.iter().enumerate() {
        let tcj = ((g + t * v) / l).sqrt();
        let want = ((t + v).powi(-2) + (f * (phi(tc0) + phi(tcj))).powi(2)).sqrt();
        assert!((got[j] - want).abs() < 1e-12 * want, "direction {j}: {} vs {want}", got[j]);
    }
    // Every onset t solves t = t_c,j(t) and phi switches on there.
    for (j, t0) in nb.onset_times().into_iter().enumerate() {
        let tc = nb.condensation_times(t0).unwrap()[j];
        assert!((tc / t0 - 1.0).abs() < 1e-12);
        assert!(nb.big_phi(t0 * 0.99).unwrap()[j] > nb.big_phi(t0 * 1.01).unwrap()[j]);
    }
}

#[test]
fn notebook_sphere_form_loses_the_high_variance_block_first_and_its_control_does_not() {
    // The authors' panel: std 1 (2 axes), 0.3 (5), 1e-6 (23); N = 1000; sphere (r4 off).
    let s = blocks(30, 2, 1.0, 5, 0.09);
    let s: Vec<f64> = s.iter().map(|v| if *v == 0.0 { 1e-12 } else { *v }).collect();
    let nb = NotebookTheory::new(&s, 1000.0, true).unwrap();
    assert_eq!(nb.condensation_time_centre(), 0.0);
    let l = 2.0 * 1000f64.ln();
    assert!((nb.onset_times()[0] - 1.0 / l).abs() < 1e-12 && (nb.onset_times()[2] - 0.09 / l).abs() < 1e-12);
    // Between the two onsets the two high-variance values exceed the normal ones: gap at 25.
    let gap25 = |m: &NotebookTheory, t: f64| {
        let v = m.spectrum(t).unwrap();
        (v[24] / v[25]).ln()
    };
    assert!(gap25(&nb, 0.03) > 1.0, "{}", gap25(&nb, 0.03));
    let mean = (2.0 + 5.0 * 0.09) / 7.0;
    let iso: Vec<f64> = s.iter().enumerate().map(|(i, v)| if i < 7 { mean } else { *v }).collect();
    let control = NotebookTheory::new(&iso, 1000.0, true).unwrap();
    assert!(gap25(&control, 0.03) < 1e-9);
    assert!(drop_top_normalized(&nb.spectrum(0.03).unwrap(), 7)[0] == 1.0);
    assert!(drop_top_normalized(&[1.0, 2.0], 2).is_empty());
}

#[test]
fn onset_times_solve_their_equation_and_refine_around_hits_them() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    for method in [CondensationMethod::Exact, CondensationMethod::LargeT] {
        let m = EmpiricalJacobianModel::new(&s, 1000.0).unwrap().with_condensation(method);
        let on = m.onset_times().unwrap();
        assert!(on.len() >= 2, "{on:?}");
        let tc0 = m.condensation_time(&[0.0; 30]).unwrap();
        assert!(on.iter().any(|t| (t / tc0 - 1.0).abs() < 1e-12));
        for &t in &on {
            // Either t_c(0) or t = t_c(√t e_j) for one of the distinct variances.
            let hit = [0usize, 2, 7].iter().any(|&j| {
                let mut x = vec![0.0; 30];
                x[j] = t.sqrt();
                (m.condensation_time(&x).unwrap() / t - 1.0).abs() < 1e-9
            });
            assert!(hit || (t / tc0 - 1.0).abs() < 1e-12, "{t}");
        }
        let grid = refine_around(&[1e-3, 1.0], &on, 0.1, 5).unwrap();
        for &t in &on {
            assert!(grid.iter().any(|g| (g / t - 1.0).abs() < 1e-9), "centre {t} on the grid");
        }
        assert!(grid.windows(2).all(|w| w[0] < w[1]));
    }
    assert!(refine_around(&[1.0], &[0.5], 1.5, 3).is_err());
    assert!(refine_around(&[-1.0], &[0.5], 0.1, 3).is_err());
    assert!(NotebookTheory::new(&[1.0], 1.0, true).is_err());
    assert!(NotebookTheory::new(&[1.0], 10.0, true).unwrap().values(0.0).is_err());
}

#[test]
fn exact_tc_along_the_two_blocks_differs_by_under_one_percent_at_fig9_settings() {
    // THEORY §3: at t = 0.02 the exact t_c(√t e_j) is 0.02455 (variance 1) and 0.02470
    // (variance 0.3) at N = 1000, 0.6 % apart: too little to select a block.
    // At N = 1e4: 0.01195 and 0.01203.
    let s = blocks(30, 2, 1.0, 5, 0.3);
    for (n, want) in [(1000.0, [0.02455, 0.02470]), (10_000.0, [0.01195, 0.01203])] {
        let m = EmpiricalJacobianModel::new(&s, n).unwrap();
        let at = |j: usize| {
            let mut x = vec![0.0; 30];
            x[j] = 0.02f64.sqrt();
            m.condensation_time(&x).unwrap()
        };
        let (high, low) = (at(0), at(2));
        assert!((high - want[0]).abs() < 5e-5 && (low - want[1]).abs() < 5e-5, "{high} {low}");
        assert!((low / high - 1.0).abs() < 0.01);
    }
}

/// A point of the 2 + 5 manifold in its eigenbasis (coordinates 0..7), zero elsewhere.
fn manifold_point(d: usize) -> Vec<f64> {
    let mut x = vec![0.0; d];
    x[..7].copy_from_slice(&[0.9, -0.7, 0.4, -0.5, 0.6, 0.3, -0.2]);
    x
}

/// Seed 000 Eq. 34-37 at a point x of the manifold: Φ_j(x) = φ(t, x) + φ(t, x + √t e_j),
/// the mean Jacobian unchanged, and the derived form equal to the column norms of draws.
#[test]
fn closed_form_at_a_manifold_point_follows_its_definition_and_its_draws() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    let (n, t) = (1000.0, 0.03);
    let x = manifold_point(30);
    let model = EmpiricalJacobianModel::new(&s, n).unwrap();
    let phi = |y: &[f64]| {
        let tc = PositionalRem::with_n(&s, y, n).unwrap().condensation_time();
        1.0 / (t * n_eff(t, tc, n).unwrap())
    };
    let bp = model.big_phi_at(t, &x).unwrap();
    for j in [0usize, 1, 2, 6, 7, 29] {
        let mut y = x.clone();
        y[j] += t.sqrt();
        let want = phi(&x) + phi(&y);
        assert!((bp[j] / want - 1.0).abs() < 1e-12, "direction {j}: {} vs {want}", bp[j]);
    }
    // Normal directions (zero variance) do not move ω²: they share Φ = 2 φ(t, x).
    assert!(bp[7..].iter().all(|v| (v / (2.0 * phi(&x)) - 1.0).abs() < 1e-12));
    // At the manifold point condensation starts earlier than at the centre (ω²(x) > 0), so
    // at this t the normal directions carry fluctuations that the centre does not have.
    let tc0 = model.condensation_time(&[0.0; 30]).unwrap();
    let tcx = model.condensation_time(&x).unwrap();
    assert!(tcx > t && t > tc0, "t_c(0) = {tc0}, t_c(x) = {tcx}");
    assert!(bp[29] > 10.0 * model.big_phi(t).unwrap()[29]);
    let draws = 400;
    let mut norms = vec![0.0; 30];
    for k in 0..draws {
        let j = model.sample_at(t, &x, k).unwrap();
        for (c, v) in norms.iter_mut().enumerate() {
            *v += (0..30).map(|r| j[(r, c)].powi(2)).sum::<f64>() / draws as f64;
        }
    }
    let values = model.closed_form_values_at(t, &x, ClosedForm::Derived).unwrap();
    for (c, (a, b)) in norms.iter().zip(&values).enumerate() {
        assert!((a.sqrt() / b - 1.0).abs() < 0.05, "column {c}: mc {} derived {b}", a.sqrt());
    }
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(sorted, model.closed_form_spectrum_at(t, &x, ClosedForm::Derived).unwrap());
    assert!(matches!(model.big_phi_at(t, &x[..29]), Err(RemError::DimensionMismatch { .. })));
    let mut bad = x.clone();
    bad[3] = f64::NAN;
    assert!(model.closed_form_spectrum_at(t, &bad, ClosedForm::Derived).is_err());
}

/// The onsets at x solve their equation, and at x = 0 the notebook's bisection agrees with
/// its closed-form onsets.
#[test]
fn onsets_at_a_manifold_point_solve_their_equations() {
    let s = blocks(30, 2, 1.0, 5, 0.3);
    let x = manifold_point(30);
    let m = EmpiricalJacobianModel::new(&s, 1000.0).unwrap();
    let on = m.onset_times_at(&x).unwrap();
    let tcx = m.condensation_time(&x).unwrap();
    // t_c(x), one root per manifold direction (distinct x_j), none for the normals.
    assert_eq!(on.len(), 8, "{on:?}");
    for &t in &on {
        let hit = (0..7).any(|j| {
            let mut y = x.clone();
            y[j] += t.sqrt();
            (m.condensation_time(&y).unwrap() / t - 1.0).abs() < 1e-9
        });
        assert!(hit || (t / tcx - 1.0).abs() < 1e-12, "{t}");
    }
    for sphere in [false, true] {
        let nb = NotebookTheory::new(&s, 1000.0, sphere).unwrap();
        let mut closed: Vec<f64> = nb.onset_times();
        if !sphere {
            closed.push(nb.condensation_time_centre());
        }
        closed.sort_by(f64::total_cmp);
        closed.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
        let zero = vec![0.0; 30];
        let bis: Vec<f64> = nb.onset_times_at(&zero).unwrap();
        // On the sphere the normals (variance 0) have t_c = 0 and no onset.
        let closed: Vec<f64> = closed.into_iter().filter(|t| *t > 1e-12).collect();
        assert_eq!(bis.len(), closed.len(), "{bis:?} vs {closed:?}");
        for (a, b) in bis.iter().zip(&closed) {
            assert!((a / b - 1.0).abs() < 1e-9, "{a} vs {b}");
        }
    }
}

/// The notebook form at x by hand: Eq. 15 at x and at x + √t e_j.
#[test]
fn notebook_form_at_a_point_equals_its_formula_by_hand() {
    let s = [1.0, 0.09, 0.0];
    let x = [0.8, -0.2, 0.0];
    let (n, t) = (100.0f64, 0.05);
    let nb = NotebookTheory::new(&s, n, false).unwrap();
    let (l, g) = (2.0 * n.ln(), (1.0 + 0.0081) / 2.0);
    let w = |y: &[f64]| s.iter().zip(y).map(|(a, b)| a * b * b).sum::<f64>();
    let phi = |tc: f64| (1.0 / t - 1.0 / tc).max(0.0);
    let tc0 = ((g + w(&x)) / l).sqrt();
    let f: f64 = s.iter().map(|v| v / (t * t * (t + v))).sum();
    let got = nb.values_at(t, &x).unwrap();
    for j in 0..3 {
        let mut y = x;
        y[j] += t.sqrt();
        let want = ((t + s[j]).powi(-2) + (f * (phi(tc0) + phi(((g + w(&y)) / l).sqrt()))).powi(2)).sqrt();
        assert!((got[j] - want).abs() < 1e-12 * want, "direction {j}: {} vs {want}", got[j]);
    }
    assert!(matches!(nb.values_at(t, &x[..2]), Err(RemError::DimensionMismatch { .. })));
    assert!(nb.values_at(t, &[f64::INFINITY, 0.0, 0.0]).is_err());
}
