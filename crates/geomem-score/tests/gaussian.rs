//! Tests of the exact Gaussian score (Eq. 8, 9).
mod common;
use common::{gaussian_rows, rel_err};
use faer::Mat;
use geomem_score::{marchenko_pastur_gap, GaussianScore, MpEdge, ScoreError, ScoreFieldExt};

#[test]
fn score_solves_the_covariance_system() {
    let f = gaussian_rows(6, &[1.0; 3], 1); // F is 6 × 3
    let g = GaussianScore::from_factor(f.as_ref()).unwrap();
    let sigma = f.as_ref() * f.transpose();
    let x = [0.3, -1.0, 0.2, 0.5, 0.0, 1.5];
    for &t in &[1e-3, 0.1, 1.0, 100.0] {
        let s = g.score(&x, t).unwrap();
        // (Σ + tI) s = -x
        for i in 0..6 {
            let r: f64 = (0..6).map(|j| (sigma[(i, j)] + if i == j { t } else { 0.0 }) * s[j]).sum();
            assert!((r + x[i]).abs() < 1e-9 * (1.0 + x[i].abs()) / t.min(1.0), "t={t} i={i}");
        }
    }
}

/// Eq. 8: t ∇s = (1/t) F (I + FᵀF/t)⁻¹ Fᵀ - I.
#[test]
fn jacobian_matches_eq8_woodbury_form() {
    let f = gaussian_rows(7, &[1.0, 1.0], 4);
    let g = GaussianScore::from_factor(f.as_ref()).unwrap();
    for &t in &[0.01, 0.5, 3.0] {
        let j = g.jacobian(&[0.0; 7], t).unwrap().unwrap();
        let ftf = f.transpose() * f.as_ref();
        let inner = Mat::from_fn(2, 2, |i, k| if i == k { 1.0 } else { 0.0 } + ftf[(i, k)] / t);
        let det = inner[(0, 0)] * inner[(1, 1)] - inner[(0, 1)] * inner[(1, 0)];
        let inv = Mat::from_fn(2, 2, |i, k| match (i, k) { (0, 0) => inner[(1, 1)], (1, 1) => inner[(0, 0)], _ => -inner[(i, k)] } / det);
        let rhs = Mat::from_fn(7, 7, |i, k| {
            let fif = f.as_ref() * inv.as_ref() * f.transpose();
            fif[(i, k)] / t - if i == k { 1.0 } else { 0.0 }
        });
        let tj = Mat::from_fn(7, 7, |i, k| t * j[(i, k)]);
        assert!(rel_err(&tj, &rhs) < 1e-10);
    }
}

/// The spectrum shows its gap at d - m and between variance blocks.
#[test]
fn spectrum_gaps_at_manifold_and_between_blocks() {
    let var = [1.0, 1.0, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0];
    let g = GaussianScore::from_variances(&var).unwrap();
    let t = 0.01;
    let s = g.spectrum(t).unwrap();
    let gaps: Vec<f64> = s.windows(2).map(|w| (w[0] - w[1]) / s[0]).collect();
    let mut order: Vec<usize> = (0..gaps.len()).collect();
    order.sort_by(|a, b| gaps[*b].total_cmp(&gaps[*a]));
    // Largest gap after index d - m = 5 (between position 5 and 6, 1-based), next after 8.
    assert_eq!(order[0] + 1, 5);
    assert_eq!(order[1] + 1, 8);
    assert!((gaps[4] - g.manifold_gap(t).unwrap()).abs() < 1e-12);
}

/// Eq. 9 with the lower Marchenko–Pastur edge predicts the gap of a random F at large d;
/// the printed (upper-edge) form does not.
#[test]
fn marchenko_pastur_lower_edge_predicts_gap() {
    let (d, m) = (600, 150);
    let f = gaussian_rows(d, &vec![1.0 / m as f64; m], 21); // entries N(0, σ²/m), σ² = 1
    let g = GaussianScore::from_factor(f.as_ref()).unwrap();
    let t = 0.5;
    let measured = g.manifold_gap(t).unwrap();
    let lower = marchenko_pastur_gap(t, 1.0, m as f64 / d as f64, MpEdge::Lower).unwrap();
    let upper = marchenko_pastur_gap(t, 1.0, m as f64 / d as f64, MpEdge::UpperAsPrinted).unwrap();
    assert!((measured - lower).abs() / lower < 0.1, "measured {measured} lower {lower}");
    assert!((measured - upper).abs() / upper > 0.2, "measured {measured} upper {upper}");
}

#[test]
fn bad_input_gets_typed_errors() {
    assert_eq!(
        GaussianScore::from_factor(Mat::zeros(2, 3).as_ref()).unwrap_err(),
        ScoreError::ManifoldTooLarge { m: 3, d: 2 }
    );
    assert!(matches!(GaussianScore::from_variances(&[1.0, -0.1]), Err(ScoreError::InvalidVariance { index: 1, .. })));
    assert!(matches!(GaussianScore::from_variances(&[f64::NAN]), Err(ScoreError::InvalidVariance { .. })));
    let neg = Mat::from_fn(2, 2, |i, j| if i == j { -1.0 } else { 0.0 });
    assert!(matches!(GaussianScore::from_covariance(neg.as_ref()), Err(ScoreError::InvalidVariance { .. })));
    let g = GaussianScore::from_variances(&[1.0, 2.0]).unwrap();
    assert!(matches!(g.spectrum(0.0), Err(ScoreError::InvalidTime(_))));
    assert!(matches!(g.score(&[1.0], 1.0), Err(ScoreError::DimensionMismatch { .. })));
    assert!(marchenko_pastur_gap(1.0, 1.0, 1.5, MpEdge::Lower).is_err());
}

#[test]
fn extreme_times_are_finite() {
    let g = GaussianScore::from_variances(&[1.0, 0.3, 0.0]).unwrap();
    for &t in &[1e-8, 1e4] {
        assert!(g.spectrum(t).unwrap().iter().all(|v| v.is_finite()));
        assert!(g.score(&[1.0, 1.0, 1.0], t).unwrap().iter().all(|v| v.is_finite()));
    }
}
