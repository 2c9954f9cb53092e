//! Tests of the empirical score (Eq. 10, 11) and its analytic Jacobian.
mod common;
use common::{gaussian_rows, rel_err};
use faer::Mat;
use geomem_score::{EmpiricalScore, ScoreError, ScoreFieldExt};
use proptest::prelude::*;

/// log p_t^N(x) up to a constant, by log-sum-exp, for finite-difference checks.
fn log_density(y: &Mat<f64>, x: &[f64], t: f64) -> f64 {
    let l: Vec<f64> =
        (0..y.nrows()).map(|mu| -(0..x.len()).map(|j| (x[j] - y[(mu, j)]).powi(2)).sum::<f64>() / (2.0 * t)).collect();
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

fn fd_jacobian(f: &EmpiricalScore, x: &[f64], t: f64, h: f64) -> Mat<f64> {
    let d = x.len();
    let mut j = Mat::zeros(d, d);
    for c in 0..d {
        let mut xp = x.to_vec();
        let mut xm = x.to_vec();
        xp[c] += h;
        xm[c] -= h;
        let sp = f.score(&xp, t).unwrap();
        let sm = f.score(&xm, t).unwrap();
        for r in 0..d {
            j[(r, c)] = (sp[r] - sm[r]) / (2.0 * h);
        }
    }
    j
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

    /// The score is the gradient of log p_t^N (Eq. 11 is the derivative of Eq. 10).
    #[test]
    fn score_is_gradient_of_log_density(d in 1usize..6, n in 1usize..40, seed in 0u64..1000, lt in -1.5f64..1.0) {
        let t = 10f64.powf(lt);
        let y = gaussian_rows(n, &vec![1.0; d], seed);
        let x: Vec<f64> = gaussian_rows(1, &vec![1.0; d], seed + 1).row(0).iter().copied().collect();
        let f = EmpiricalScore::new(y.clone()).unwrap();
        let s = f.score(&x, t).unwrap();
        let h = 1e-5 * t.sqrt();
        for c in 0..d {
            let mut xp = x.clone(); xp[c] += h;
            let mut xm = x.clone(); xm[c] -= h;
            let g = (log_density(&y, &xp, t) - log_density(&y, &xm, t)) / (2.0 * h);
            prop_assert!((g - s[c]).abs() <= 1e-5 * (1.0 + s[c].abs()) / t.sqrt(), "c={c} fd={g} s={}", s[c]);
        }
    }

    /// The analytic Jacobian (Cov_w/t - I)/t equals central finite differences of the score.
    #[test]
    fn analytic_jacobian_matches_finite_differences(d in 1usize..8, n in 2usize..60, seed in 0u64..1000, lt in -1.0f64..1.0) {
        let t = 10f64.powf(lt);
        let y = gaussian_rows(n, &vec![1.0; d], seed);
        let x: Vec<f64> = gaussian_rows(1, &vec![0.5; d], seed + 7).row(0).iter().copied().collect();
        let f = EmpiricalScore::new(y).unwrap();
        let ja = f.jacobian(&x, t).unwrap().unwrap();
        let jf = fd_jacobian(&f, &x, t, 1e-5 * t.sqrt());
        let tol = 1e-5 * (d as f64).sqrt();
        prop_assert!(rel_err(&jf, &ja) < tol, "rel err {}", rel_err(&jf, &ja));
    }

    /// N_eff lies in [1, N] and equals 1/Σw².
    #[test]
    fn n_eff_between_one_and_n(d in 1usize..6, n in 1usize..50, seed in 0u64..1000, lt in -8.0f64..4.0) {
        let t = 10f64.powf(lt);
        let y = gaussian_rows(n, &vec![1.0; d], seed);
        let f = EmpiricalScore::new(y).unwrap();
        let p = f.posterior(&vec![0.3; d], t).unwrap();
        prop_assert!(p.n_eff >= 1.0 - 1e-12 && p.n_eff <= n as f64 * (1.0 + 1e-12));
        let s: f64 = p.weights.iter().sum();
        prop_assert!((s - 1.0).abs() < 1e-12);
    }
}

/// The library's log density matches the test's independent log-sum-exp, with the Gaussian
/// normalisation, and integrates to one in d = 1.
#[test]
fn log_density_matches_reference() {
    let y = gaussian_rows(30, &[1.0, 0.5], 8);
    let f = EmpiricalScore::new(y.clone()).unwrap();
    let x = gaussian_rows(5, &[1.0, 1.0], 9);
    for &t in &[1e-3, 0.3, 10.0] {
        let ld = f.log_density(x.as_ref(), t).unwrap();
        for (i, &ldi) in ld.iter().enumerate() {
            let xi: Vec<f64> = x.row(i).iter().copied().collect();
            let reference = log_density(&y, &xi, t) - (2.0 * std::f64::consts::PI * t).ln() - 30f64.ln();
            assert!((ldi - reference).abs() < 1e-9 * (1.0 + reference.abs()), "t={t}");
        }
    }
    let f1 = EmpiricalScore::new(gaussian_rows(7, &[1.0], 1)).unwrap();
    let grid = Mat::from_fn(20001, 1, |i, _| -10.0 + i as f64 * 1e-3);
    let integral: f64 = f1.log_density(grid.as_ref(), 0.2).unwrap().iter().map(|v| v.exp() * 1e-3).sum();
    assert!((integral - 1.0).abs() < 1e-6, "{integral}");
}

/// Both spectrum routes (Gram matrix when k < d, covariance otherwise) equal the SVD of the
/// analytic Jacobian.
#[test]
fn jacobian_spectrum_equals_svd_of_jacobian() {
    for &(n, d, t) in &[(5usize, 12usize, 0.3), (200, 6, 0.5), (50, 20, 1e-3), (300, 10, 20.0)] {
        let y = gaussian_rows(n, &vec![1.0; d], 11);
        let f = EmpiricalScore::new(y).unwrap();
        let x = vec![0.1; d];
        let s = f.jacobian_spectrum(&x, t).unwrap();
        let j = f.jacobian(&x, t).unwrap().unwrap();
        let sv = j.singular_values().unwrap();
        for (a, b) in s.iter().zip(&sv) {
            assert!((a - b).abs() <= 1e-8 * sv[0], "n={n} d={d} t={t}: {a} vs {b}");
        }
    }
}

/// As t → 0 a single training point dominates: N_eff → 1; as t → ∞ all points count.
#[test]
fn n_eff_limits() {
    let y = gaussian_rows(100, &[1.0, 1.0, 1.0], 3);
    let f = EmpiricalScore::new(y).unwrap();
    let x = [0.2, -0.1, 0.4];
    assert!((f.posterior(&x, 1e-6).unwrap().n_eff - 1.0).abs() < 1e-9);
    assert!(f.posterior(&x, 1e4).unwrap().n_eff > 99.0);
}

/// At large t and N the empirical Jacobian spectrum approaches the exact 1/(t + σ_k²).
#[test]
fn large_n_spectrum_approaches_exact() {
    let var = [1.0, 1.0, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0];
    let y = gaussian_rows(20_000, &var, 5);
    let f = EmpiricalScore::new(y).unwrap();
    for &t in &[2.0, 5.0] {
        let s = f.jacobian_spectrum(&[0.0; 8], t).unwrap();
        let mut exact: Vec<f64> = var.iter().map(|v| 1.0 / (t + v)).collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        for (a, b) in s.iter().zip(&exact) {
            assert!((a - b).abs() / b < 0.03, "t={t}: {a} vs {b}");
        }
    }
}

/// Extreme times and large d: no NaN or infinity.
#[test]
fn extreme_times_are_finite() {
    let d = 3072;
    let y = gaussian_rows(64, &vec![1.0; d], 9);
    let f = EmpiricalScore::new(y).unwrap();
    let x = Mat::from_fn(3, d, |i, j| ((i * 31 + j * 7) % 13) as f64 / 13.0 - 0.5);
    for &t in &[1e-8, 1e-3, 1.0, 1e4] {
        let s = f.score_batch(x.as_ref(), t).unwrap();
        for j in 0..d {
            for i in 0..3 {
                assert!(s[(i, j)].is_finite(), "t={t}");
            }
        }
        let p = f.posterior(x.row(0).iter().copied().collect::<Vec<_>>().as_slice(), t).unwrap();
        assert!(p.n_eff.is_finite() && p.n_eff >= 1.0);
        let sp = f.jacobian_spectrum(&vec![0.0; d], t).unwrap();
        assert!(sp.iter().all(|v| v.is_finite()));
    }
}

/// Batched evaluation with chunking equals point-by-point evaluation.
#[test]
fn batch_equals_pointwise() {
    let y = gaussian_rows(3000, &[1.0, 0.5, 0.2], 2);
    let f = EmpiricalScore::new(y).unwrap();
    let x = gaussian_rows(2000, &[1.0, 1.0, 1.0], 4); // 2000 > chunk size for N = 3000
    let s = f.score_batch(x.as_ref(), 0.2).unwrap();
    for i in [0usize, 1399, 1999] {
        let xi: Vec<f64> = x.row(i).iter().copied().collect();
        let si = f.score(&xi, 0.2).unwrap();
        for j in 0..3 {
            assert!((si[j] - s[(i, j)]).abs() < 1e-10 * (1.0 + si[j].abs()));
        }
    }
}

#[test]
fn bad_input_gets_typed_errors() {
    assert_eq!(EmpiricalScore::new(Mat::zeros(0, 3)).unwrap_err(), ScoreError::EmptyDataset);
    let mut bad = Mat::zeros(2, 2);
    bad[(1, 1)] = f64::NAN;
    assert!(matches!(EmpiricalScore::new(bad), Err(ScoreError::NonFinite(_))));
    let f = EmpiricalScore::new(Mat::from_fn(4, 2, |i, j| (i + j) as f64)).unwrap();
    assert_eq!(f.score(&[1.0, 2.0, 3.0], 1.0).unwrap_err(), ScoreError::DimensionMismatch { expected: 2, got: 3 });
    assert_eq!(f.score(&[1.0, 2.0], 0.0).unwrap_err(), ScoreError::InvalidTime(0.0));
    assert!(matches!(f.score(&[1.0, 2.0], -1.0), Err(ScoreError::InvalidTime(_))));
    assert!(matches!(f.score(&[1.0, 2.0], f64::NAN), Err(ScoreError::InvalidTime(_))));
    assert!(matches!(f.posterior(&[f64::NAN, 2.0], 1.0), Err(ScoreError::NonFinite(_))));
}
