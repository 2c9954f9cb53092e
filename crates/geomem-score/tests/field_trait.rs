//! The validated trait: every bad input is refused before `eval` runs, the default JVP and
//! divergence agree with the exact overrides, and Hutchinson's estimate is seeded and
//! unbiased.
mod common;

use common::{gaussian_rows, rel_err};
use faer::{Mat, MatMut, MatRef};
use geomem_score::{
    BatchFn, DivergenceParams, EmpiricalScore, GaussianScore, Precision, Result, ScoreError, ScoreField, ScoreFieldExt,
};
use proptest::prelude::*;

/// A field that exposes only `eval` of another one, so it gets every default.
struct Plain<F>(F);

impl<F: ScoreField> ScoreField for Plain<F> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
        self.0.eval(x, t, out)
    }
}

/// A field whose `eval` panics on anything the trait promises it never sees.
struct Strict {
    d: usize,
}

impl ScoreField for Strict {
    fn dim(&self) -> usize {
        self.d
    }
    fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> Result<()> {
        assert!(t.is_finite() && t > 0.0, "eval saw t = {t}");
        assert_eq!((x.ncols(), out.ncols(), out.nrows()), (self.d, self.d, x.nrows()));
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                assert!(x[(i, j)].is_finite(), "eval saw a non-finite point");
            }
        }
        Ok(())
    }
}

#[test]
fn validation_happens_before_eval() {
    let f = Strict { d: 3 };
    let good = Mat::<f64>::zeros(2, 3);
    assert!(matches!(
        f.score_batch(Mat::<f64>::zeros(2, 4).as_ref(), 1.0),
        Err(ScoreError::DimensionMismatch { expected: 3, got: 4 })
    ));
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(f.score_batch(good.as_ref(), t), Err(ScoreError::InvalidTime(_))));
        assert!(matches!(f.divergence(&[0.0; 3], t, &DivergenceParams::default()), Err(ScoreError::InvalidTime(_))));
    }
    let nan = Mat::from_fn(2, 3, |i, j| if i == 1 && j == 2 { f64::NAN } else { 0.0 });
    assert!(matches!(f.score_batch(nan.as_ref(), 1.0), Err(ScoreError::NonFinite(_))));
    let mut out = Mat::<f64>::zeros(3, 3);
    assert!(matches!(
        f.score_batch_into(good.as_ref(), 1.0, out.as_mut()),
        Err(ScoreError::DimensionMismatch { expected: 2, got: 3 })
    ));
    assert!(matches!(f.score(&[1.0, f64::INFINITY, 0.0], 1.0), Err(ScoreError::NonFinite(_))));
    assert!(matches!(
        f.jvp(&[0.0; 3], 1.0, Mat::<f64>::zeros(2, 2).as_ref()),
        Err(ScoreError::DimensionMismatch { .. })
    ));
    let bad_v = Mat::from_fn(1, 3, |_, j| if j == 0 { f64::NAN } else { 0.0 });
    assert!(matches!(f.jvp(&[0.0; 3], 1.0, bad_v.as_ref()), Err(ScoreError::NonFinite(_))));
    assert!(matches!(
        f.divergence(&[0.0; 3], 1.0, &DivergenceParams::default().probes(0)),
        Err(ScoreError::InvalidParameter { .. })
    ));
    assert!(matches!(f.jacobian(&[0.0; 2], 1.0), Err(ScoreError::DimensionMismatch { .. })));
    assert_eq!(f.jacobian(&[0.0; 3], 1.0).unwrap(), None);
    assert!(f.score_batch(good.as_ref(), 1e-8).is_ok() && f.score_batch(good.as_ref(), 1e4).is_ok());
}

#[test]
fn precision_steps() {
    assert!((Precision::F64.central_step(1.0) - 6.055e-6).abs() < 1e-8);
    assert!((Precision::F32.central_step(4.0) - 2.0 * 4.921e-3).abs() < 1e-5);
}

fn empirical(n: usize, d: usize, seed: u64) -> EmpiricalScore {
    let var: Vec<f64> = (0..d).map(|j| if j < d / 3 { 1.0 } else { 0.05 }).collect();
    EmpiricalScore::new(gaussian_rows(n, &var, seed)).unwrap()
}

#[test]
fn exact_jvp_matches_the_jacobian_and_the_default() {
    for (d, n, t) in [(6, 40, 0.3), (20, 200, 0.05), (50, 30, 1.0)] {
        let f = empirical(n, d, d as u64);
        let x: Vec<f64> = (0..d).map(|j| 0.1 * (j as f64).sin()).collect();
        let v = gaussian_rows(7, &vec![1.0; d], 5);
        let j = f.jacobian(&x, t).unwrap().unwrap();
        let exact = f.jvp(&x, t, v.as_ref()).unwrap();
        let via_j = v.as_ref() * j.transpose();
        assert!(rel_err(&exact, &via_j) < 1e-12 * (d as f64), "d = {d}");
        let fd = Plain(&f).jvp(&x, t, v.as_ref()).unwrap();
        assert!(rel_err(&fd, &via_j) < 1e-7 * (d as f64).sqrt(), "d = {d}: {}", rel_err(&fd, &via_j));
        let g = GaussianScore::from_variances(&vec![0.5; d]).unwrap();
        let gj = g.jacobian(&x, t).unwrap().unwrap();
        assert!(rel_err(&g.jvp(&x, t, v.as_ref()).unwrap(), &(v.as_ref() * gj.transpose())) < 1e-14);
    }
}

/// `s(x) = -A x + tanh(B x)`: a field with a non-symmetric Jacobian `-A + diag(1 - tanh²(Bx)) B`.
fn skew_field(d: usize, seed: u64) -> (impl ScoreField, Mat<f64>, Mat<f64>) {
    let a = gaussian_rows(d, &vec![1.0 / d as f64; d], seed);
    let b = gaussian_rows(d, &vec![1.0 / d as f64; d], seed + 1);
    let (a2, b2) = (a.clone(), b.clone());
    let f = BatchFn::new(d, Precision::F64, move |x: MatRef<'_, f64>, _t: f64, mut out: MatMut<'_, f64>| {
        let (ax, bx) = (x * a2.transpose(), x * b2.transpose());
        for i in 0..x.nrows() {
            for j in 0..x.ncols() {
                out[(i, j)] = -ax[(i, j)] + bx[(i, j)].tanh();
            }
        }
    })
    .unwrap();
    (f, a, b)
}

#[test]
fn default_vjp_is_the_transpose_product_and_symmetric_fields_reuse_their_jvp() {
    for d in [3, 12, 40] {
        let (f, a, b) = skew_field(d, d as u64);
        let x: Vec<f64> = (0..d).map(|j| (0.7 * j as f64).cos()).collect();
        let bx = MatRef::from_row_major_slice(&x, 1, d) * b.transpose();
        let j = Mat::from_fn(d, d, |r, c| -a[(r, c)] + (1.0 - bx[(0, r)].tanh().powi(2)) * b[(r, c)]);
        let u = gaussian_rows(5, &vec![1.0; d], 3);
        let exact = u.as_ref() * j.as_ref();
        assert!(rel_err(&f.vjp(&x, 0.5, u.as_ref()).unwrap(), &exact) < 1e-8 * (d as f64).sqrt(), "d = {d}");
        // the JVP is not the VJP here: the test can tell a transposed product from the right one
        assert!(rel_err(&(u.as_ref() * j.transpose()), &exact) > 0.1);
        let e = empirical(60, d, 4);
        let je = e.jacobian(&x, 0.2).unwrap().unwrap();
        assert!(rel_err(&e.vjp(&x, 0.2, u.as_ref()).unwrap(), &(u.as_ref() * je.as_ref())) < 1e-12 * d as f64);
        assert!(matches!(
            e.vjp(&x, 0.2, Mat::<f64>::zeros(2, d + 1).as_ref()),
            Err(ScoreError::DimensionMismatch { .. })
        ));
    }
}

#[test]
fn divergence_closed_forms_and_defaults_agree() {
    let p = DivergenceParams::default();
    for (d, n, t) in [(5, 50, 0.2), (30, 400, 0.02), (30, 400, 3.0)] {
        let f = empirical(n, d, 2 * d as u64);
        let x = gaussian_rows(3, &vec![0.5; d], 9);
        let exact = f.divergence_batch(x.as_ref(), t, &p).unwrap();
        let plain = Plain(&f).divergence_batch(x.as_ref(), t, &p).unwrap();
        for i in 0..3 {
            let xi: Vec<f64> = x.row(i).iter().copied().collect();
            let j = f.jacobian(&xi, t).unwrap().unwrap();
            let tr: f64 = (0..d).map(|a| j[(a, a)]).sum();
            assert!((exact[i] - tr).abs() <= 1e-10 * tr.abs().max(1.0 / t), "closed form vs trace");
            assert!(
                (plain[i] - tr).abs() <= 1e-7 * tr.abs().max(1.0 / t),
                "central differences vs trace: {} {tr}",
                plain[i]
            );
        }
    }
    let g = GaussianScore::from_variances(&[1.0, 0.0, 0.25]).unwrap();
    let div = g.divergence(&[0.3, 0.0, 1.0], 0.5, &p).unwrap();
    assert!((div + (1.0 / 1.5 + 1.0 / 0.5 + 1.0 / 0.75)).abs() < 1e-14);
}

#[test]
fn hutchinson_is_seeded_and_unbiased() {
    let (d, t) = (40, 0.1);
    let f = empirical(300, d, 77);
    let x: Vec<f64> = vec![0.05; d];
    let j = f.jacobian(&x, t).unwrap().unwrap();
    let tr: f64 = (0..d).map(|a| j[(a, a)]).sum();
    // Var of one Rademacher probe: 2 Σ_{a≠b} J_ab².
    let off: f64 =
        (0..d).flat_map(|a| (0..d).map(move |b| (a, b))).filter(|(a, b)| a != b).map(|(a, b)| j[(a, b)].powi(2)).sum();
    let probes = 400;
    let sd = (2.0 * off / probes as f64).sqrt();
    let p = DivergenceParams::default().exact_below(0).probes(probes).seed(3);
    let est = Plain(&f).divergence(&x, t, &p).unwrap();
    assert!((est - tr).abs() < 4.0 * sd + 1e-6 * tr.abs(), "{est} vs {tr} (sd {sd})");
    assert_eq!(est, Plain(&f).divergence(&x, t, &p).unwrap(), "same seed, same estimate");
    assert_ne!(est, Plain(&f).divergence(&x, t, &p.seed(4)).unwrap(), "another seed, another estimate");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, rng_seed: proptest::test_runner::RngSeed::Fixed(31), ..ProptestConfig::default() })]

    /// A diagonal Gaussian's JVP is exact at any t of the supported range.
    #[test]
    fn gaussian_jvp_at_extreme_times(lt in -8.0f64..4.0, d in 1usize..12) {
        let t = 10f64.powf(lt);
        let var: Vec<f64> = (0..d).map(|j| j as f64 * 0.3).collect();
        let g = GaussianScore::from_variances(&var).unwrap();
        let v = Mat::from_fn(2, d, |i, j| (i + j) as f64 - 1.0);
        let out = g.jvp(&vec![0.0; d], t, v.as_ref()).unwrap();
        for j in 0..d {
            let want = -v[(1, j)] / (var[j] + t);
            prop_assert!((out[(1, j)] - want).abs() <= 1e-14 * want.abs().max(1e-300));
        }
    }
}
