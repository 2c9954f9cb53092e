//! The image estimator's perturbations (Gaussian, orthonormal blocks, the authors' per-channel
//! orthogonal matrices) and Algorithm 3 as the authors' notebook pools it.
use geomem_score::GaussianScore;
use geomem_spectral::{normal_bundle_spectrum, NormalBundleParams, Perturbation, SecondDerivativeRule};

fn gram_rows(m: &faer::Mat<f64>, a: usize, b: usize) -> f64 {
    (0..m.ncols()).map(|j| m[(a, j)] * m[(b, j)]).sum()
}

#[test]
fn orthonormal_blocks_are_orthogonal_with_norm_d() {
    let (d, k) = (12, 30);
    let (n, r) = Perturbation::OrthonormalBlocks.directions(k, d, 4).unwrap();
    assert_eq!(r, 1.0);
    for a in 0..k {
        assert!((gram_rows(&n, a, a) - d as f64).abs() < 1e-9);
        for b in (a + 1)..k {
            if a / d == b / d {
                assert!(gram_rows(&n, a, b).abs() < 1e-9, "rows {a} {b} of one block");
            }
        }
    }
    assert!(gram_rows(&n, 0, 12).abs() > 1e-6, "different blocks are independent draws");
}

#[test]
fn per_channel_directions_are_the_authors_orthogonal_images() {
    let (c, h) = (3, 4);
    let d = c * h * h;
    let (n, r) = Perturbation::PerChannelOrthogonal { channels: c, size: h }.directions(5, d, 1).unwrap();
    assert!((r * r - 1.0 / h as f64).abs() < 1e-15);
    for i in 0..5 {
        assert!((gram_rows(&n, i, i) - (c * h) as f64).abs() < 1e-9, "|n|² = c·h");
        for ch in 0..c {
            // Rows of the channel's h × h block are orthonormal.
            for a in 0..h {
                for b in 0..h {
                    let dot: f64 =
                        (0..h).map(|j| n[(i, ch * h * h + a * h + j)] * n[(i, ch * h * h + b * h + j)]).sum();
                    assert!((dot - f64::from(u8::from(a == b))).abs() < 1e-9);
                }
            }
        }
    }
    assert!(Perturbation::PerChannelOrthogonal { channels: 3, size: 4 }.directions(2, 47, 0).is_err());
}

/// Singular values of the exact Jacobian `-(Σ + t)^{-1}` of a Gaussian score, sorted.
fn exact(var: &[f64], t: f64) -> Vec<f64> {
    let mut s: Vec<f64> = var.iter().map(|v| 1.0 / (v + t)).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

#[test]
fn every_perturbation_estimates_the_jacobian_spectrum() {
    // d = 16 = 1 · 4²: a Gaussian field on a 3-dimensional subspace.
    let var: Vec<f64> = [vec![1.0, 0.5, 0.2], vec![0.0; 13]].concat();
    let field = GaussianScore::from_variances(&var).unwrap();
    let t = 1e-2;
    let want = exact(&var, t);
    let p = NormalBundleParams::default();
    // Orthonormal blocks with K a multiple of d: the linear field's spectrum exactly.
    let s = normal_bundle_spectrum(&field, &[0.0; 16], t, &p.perturbation(Perturbation::OrthonormalBlocks)).unwrap();
    for (a, b) in s.iter().zip(&want) {
        assert!((a - b).abs() < 1e-8 * b, "{a} vs {b}");
    }
    // Gaussian and per-channel directions: within sampling error (K = 4d = 64).
    for pert in [Perturbation::Gaussian, Perturbation::PerChannelOrthogonal { channels: 1, size: 4 }] {
        let s = normal_bundle_spectrum(&field, &[0.0; 16], t, &p.perturbation(pert).k(4096)).unwrap();
        for (a, b) in s.iter().zip(&want) {
            assert!((a / b - 1.0).abs() < 0.12, "{pert:?}: {a} vs {b}");
        }
        // The cliff between normal (1/t = 100) and tangent directions (<= 1/0.21) survives.
        assert!(s[12] > 10.0 * s[13], "{pert:?}: {s:?}");
    }
}

/// A smooth decaying spectrum with a cliff before its last `m` values.
fn cliff(d: usize, m: usize, rate: f64) -> Vec<f64> {
    (0..d).map(|i| if i < d - m { 100.0 } else { 1.0 } * (-rate * i as f64).exp()).collect()
}

#[test]
fn pooled_notebook_rule_reports_both_sides_of_the_cliff() {
    let (d, m) = (40, 6);
    let spectra = vec![cliff(d, m, 0.02), cliff(d, m, 0.03), cliff(d, m + 2, 0.02)];
    let rule = SecondDerivativeRule::new(2, 10.0).unwrap();
    let pooled = rule.pooled(&spectra).unwrap();
    assert_eq!(pooled.per_point, vec![2, 2, 2]);
    assert_eq!(pooled.spikes, vec![m + 1, m, m + 1, m, m + 3, m + 2]);
    let mean = pooled.mean().unwrap();
    assert!((mean - (m as f64 + 1.5 - 1.0 + 2.0 / 3.0)).abs() < 1e-12, "mean {mean}");
    assert!(pooled.std().unwrap() > 0.0);
    // The paper's form on the same spectra: the first spike, m.
    assert_eq!(rule.dimension(&spectra[0]).unwrap(), Some(m));
    // No cliff: no spikes; bad input: errors.
    let flat: Vec<f64> = (0..d).map(|i| 10.0 * (-0.05 * i as f64).exp()).collect();
    assert!(SecondDerivativeRule::new(0, 10.0).unwrap().pooled(&[flat.clone(), flat]).unwrap().mean().is_none());
    assert!(rule.pooled(&[]).is_err());
    assert!(rule.pooled(&[vec![1.0; 40], vec![1.0; 39]]).is_err());
}

#[test]
fn authors_synthetic_procedure_gives_the_jacobian_at_the_centre() {
    // s(x) = -x/(σ² + t) is linear: scores at √t n_i (rows of an orthogonal matrix) divided
    // by √t have exactly the singular values 1/(σ² + t). A wrong step or scale fails this.
    let var: Vec<f64> = [vec![1.0; 2], vec![0.3; 5], vec![0.0; 23]].concat();
    let field = GaussianScore::from_variances(&var).unwrap();
    let t = 0.02;
    let p = NormalBundleParams::default()
        .k(30)
        .variant(geomem_spectral::NormalBundleVariant::Scores)
        .perturbation(Perturbation::UnitOrthonormal)
        .seed(4);
    let got = normal_bundle_spectrum(&field, &[0.0; 30], t, &p).unwrap();
    let mut want: Vec<f64> = var.iter().map(|v| 1.0 / (v + t)).collect();
    want.sort_by(|a, b| b.total_cmp(a));
    for (g, w) in got.iter().zip(&want) {
        assert!((g / w - 1.0).abs() < 1e-9, "{g} vs {w}");
    }
}

/// A spectrum without a cliff is read as "no spike", and stiffness tells the two flat fields
/// apart (K = 4d perturbations spread the estimated singular values of an isotropic Jacobian
/// over about 0.6-1.35 of the true one, so the levels are checked to that spread): the empirical score of one image (`∇s = -I/t`, the memorizing limit) is stiff in
/// every direction, a broad Gaussian (`σ² = 100 ≫ t`) soft in every direction. A manifold
/// (rank 3 of 12) has a spike and reads 3, so the stiffness reading does not replace it.
#[test]
fn flat_spectra_read_as_stiff_or_soft() {
    use geomem_spectral::{soft_count, stiffness, Reading};
    let (d, t) = (12, 1e-2);
    let rule = SecondDerivativeRule::new(1, 10.0).unwrap();
    let p = NormalBundleParams::default().perturbation(Perturbation::PerChannelOrthogonal { channels: 3, size: 2 });
    let x = vec![0.1; d];
    let one = faer::Mat::from_fn(1, d, |_, j| 0.05 * j as f64);
    let memorizing = geomem_score::EmpiricalScore::new(one).unwrap();
    let s = normal_bundle_spectrum(&memorizing, &x, t, &p).unwrap();
    assert!((stiffness(&s, t).unwrap() - 1.0).abs() < 0.15, "{s:?}");
    assert_eq!(rule.read(&s, t).unwrap(), Reading::NoSpikeStiff);
    assert_eq!(rule.read(&s, t).unwrap().dimension(d), 0);
    assert_eq!(soft_count(&s, t).unwrap(), 0);
    let soft = GaussianScore::from_variances(&[100.0; 12]).unwrap();
    let s = normal_bundle_spectrum(&soft, &x, t, &p).unwrap();
    let st = stiffness(&s, t).unwrap();
    assert!((st / (t / (100.0 + t)) - 1.0).abs() < 0.3, "{st}");
    assert_eq!(rule.read(&s, t).unwrap(), Reading::NoSpikeSoft);
    assert_eq!(rule.read(&s, t).unwrap().dimension(d), d);
    assert_eq!(soft_count(&s, t).unwrap(), d);
    let mut var = vec![1e-8; 12];
    var[..3].fill(1.0);
    let manifold = GaussianScore::from_variances(&var).unwrap();
    let s = normal_bundle_spectrum(&manifold, &x, t, &p).unwrap();
    // The estimated spectrum's spread over the 9 stiff values hides the cliff from c = 10
    // (Algorithm 3 then reads a flat, stiff field); c = 4 finds it. The soft count needs no
    // cliff.
    let sharp = SecondDerivativeRule::new(1, 4.0).unwrap();
    assert_eq!(sharp.read(&s, t).unwrap(), Reading::Spike(3), "{s:?}");
    assert_eq!(soft_count(&s, t).unwrap(), 3, "three directions of variance 1 > t");
    // Variances 1, 1e-3 (both above t = 1e-5) and 1e-7 (below): the soft count follows t.
    let mut var = vec![1e-7; 12];
    var[..2].fill(1.0);
    var[2..5].fill(1e-3);
    let graded = GaussianScore::from_variances(&var).unwrap();
    let s = normal_bundle_spectrum(&graded, &x, 1e-5, &p).unwrap();
    assert_eq!(soft_count(&s, 1e-5).unwrap(), 5, "{s:?}");
    let s = normal_bundle_spectrum(&graded, &x, 1e-1, &p).unwrap();
    assert_eq!(soft_count(&s, 1e-1).unwrap(), 2, "{s:?}");
    assert!(stiffness(&s, -1.0).is_err() && stiffness(&[], t).is_err() && stiffness(&[f64::NAN], t).is_err());
}
