//! The matrix-free spectrum against dense ones: the empirical score (analytic products),
//! random low-rank-plus-noise Jacobians (proptest), and the readings of both paths.
use faer::{Mat, MatMut, MatRef};
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_score::{EmpiricalScore, GaussianScore, ScoreField, ScoreFieldExt};
use geomem_spectral::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Singular values of `I + tJ` (denoiser) or `tJ` (score) from the exact Jacobian.
fn dense_operator_values<F: ScoreField>(f: &F, x: &[f64], t: f64, op: Operator) -> Vec<f64> {
    let j = f.jacobian(x, t).unwrap().unwrap();
    let d = j.nrows();
    let id = if op == Operator::Denoiser { 1.0 } else { 0.0 };
    let m = Mat::from_fn(d, d, |a, b| t * j[(a, b)] + if a == b { id } else { 0.0 });
    singular_values(m.as_ref()).unwrap()
}

/// The matrix-free values in the operator's units, decreasing.
fn operator_values(s: &JacobianSpectrum, op: Operator) -> Vec<f64> {
    let own = s.operator_values().unwrap();
    assert_eq!(own.operator, op);
    // The map to J and back (|1 - a|/t for the denoiser, every a <= 1 here) loses nothing.
    let t = s.t();
    let mut back: Vec<f64> = match op {
        Operator::Score => s.values().iter().map(|x| x * t).collect(),
        Operator::Denoiser => s.values().iter().map(|x| 1.0 - x * t).collect(),
    };
    back.sort_by(|a, b| b.total_cmp(a));
    assert!(back.iter().zip(&own.values).all(|(a, b)| (a - b).abs() <= 1e-12 * own.values[0].max(1.0)));
    own.values.clone()
}

fn empirical(d: usize, m: usize, n: usize, seed: u64) -> EmpiricalScore {
    let lm = LinearManifold::new(d, &[Block { dim: m, variance: 1.0 }], Embedding::RandomRotation { seed }).unwrap();
    EmpiricalScore::new(lm.sample(n, seed + 1)).unwrap()
}

/// The empirical score has exact products; its denoiser Jacobian `Cov_w/t` has rank `≤ m`
/// (its weighted points lie on the m-dimensional manifold) and its score Jacobian `d - m`
/// values at `1/t`: both ends equal the dense spectrum to rounding, in several shapes.
#[test]
fn empirical_score_equals_the_dense_spectrum_at_both_ends() {
    for (d, m, n, t) in [(20, 3, 400, 0.2), (100, 6, 2000, 0.3), (300, 10, 3000, 0.5)] {
        let f = empirical(d, m, n, d as u64);
        let x: Vec<f64> = f.data().row(0).iter().map(|v| v + 0.01).collect();
        for op in [Operator::Denoiser, Operator::Score] {
            // A first block wider than the rank m + oversample: the range is captured at once.
            let p = MatrixFreeParams::default().operator(op).block(16).oversample(4).seed(3);
            let s = spectrum(&f, &x, t, &SpectrumParams::matrix_free(p)).unwrap();
            let got = operator_values(&s, op);
            let want = dense_operator_values(&f, &x, t, op);
            let tol = 1e-9 * (d as f64).sqrt() * want[0];
            // The score end needs the d - m values at 1/t: the block grows to d (no gap above them).
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < tol, "d = {d}, {op:?}, value {k}: {a} vs {b}");
            }
            let bounds = s.errors().unwrap();
            assert!(bounds.iter().all(|&e| e * t < tol), "{op:?}: bounds {:?}", &bounds[..3]);
            if op == Operator::Denoiser {
                assert_eq!(s.part(), Part::Bottom);
                assert_eq!(s.values().len(), 16, "d = {d}: one block");
                let dense = spectrum(&f, &x, t, &SpectrumParams::pointwise()).unwrap();
                let gap = |s: &JacobianSpectrum| s.dimension_from_largest_gap(GapScale::Linear, 0).unwrap();
                assert_eq!(gap(&s), gap(&dense), "d = {d}");
                assert_eq!(s.soft_count().unwrap(), dense.soft_count().unwrap(), "d = {d}");
            }
        }
    }
}

/// A linear field `s(x) = M x` with exact products and `M = U diag(σ) Vᵀ + ε G`: `r` leading
/// values above a noise floor, not symmetric.
struct LowRank {
    m: Mat<f64>,
}

impl LowRank {
    fn new(d: usize, r: usize, floor: f64, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut g = |rows, cols| Mat::from_fn(rows, cols, |_, _| -> f64 { StandardNormal.sample(&mut rng) });
        let (u, v) = (g(d, r).qr().compute_thin_Q(), g(d, r).qr().compute_thin_Q());
        let sig = Mat::from_fn(r, r, |i, j| if i == j { 1.0 + i as f64 / r as f64 } else { 0.0 });
        let noise = g(d, d) * (floor / (d as f64).sqrt());
        Self { m: &u * &sig * v.transpose() + noise }
    }
}

impl ScoreField for LowRank {
    fn dim(&self) -> usize {
        self.m.nrows()
    }
    fn eval(&self, x: MatRef<'_, f64>, _t: f64, mut out: MatMut<'_, f64>) -> geomem_score::Result<()> {
        out.copy_from(x * self.m.transpose());
        Ok(())
    }
    fn eval_jacobian(&self, _x: &[f64], _t: f64) -> geomem_score::Result<Option<Mat<f64>>> {
        Ok(Some(self.m.clone()))
    }
    fn eval_jvp(&self, _x: &[f64], _t: f64, v: MatRef<'_, f64>) -> geomem_score::Result<Mat<f64>> {
        Ok(v * self.m.transpose())
    }
    fn eval_vjp(&self, _x: &[f64], _t: f64, u: MatRef<'_, f64>) -> geomem_score::Result<Mat<f64>> {
        Ok(u * &self.m)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

    /// On random low-rank-plus-noise Jacobians the score end finds the `r` leading values
    /// to their a-posteriori bound, stops past the gap well before `d`, reads `r` stiff
    /// directions, and each bound really contains a singular value of `M`.
    #[test]
    fn low_rank_plus_noise(d in 30usize..160, r in 1usize..12, lf in -4.0f64..-2.0, seed in 0u64..1000, block in 4usize..12) {
        let f = LowRank::new(d, r, 10f64.powf(lf), seed);
        let t = 1.0;
        let p = MatrixFreeParams::default().operator(Operator::Score).block(block).oversample(2).seed(seed);
        let s = spectrum(&f, &vec![0.0; d], t, &SpectrumParams::matrix_free(p)).unwrap();
        let want = singular_values(f.m.as_ref()).unwrap();
        let errs = s.errors().unwrap();
        prop_assert!(s.gap_found());
        prop_assert!(s.values().len() <= r + 2 * block + 2, "{} values for r = {r}", s.values().len());
        for (k, (&v, &e)) in s.values().iter().zip(errs).enumerate() {
            let nearest = want.iter().map(|w| (w - v).abs()).fold(f64::INFINITY, f64::min);
            prop_assert!(nearest <= e + 1e-12, "value {k}: {v}, nearest {nearest}, bound {e}");
            if k < r {
                prop_assert!((v - want[k]).abs() < 1e-6 * (d as f64).sqrt(), "value {k}: {v} vs {}", want[k]);
            }
        }
        // d - k with k = r stiff values above the gap.
        prop_assert_eq!(s.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), d - r);
        let rest = s.rest().unwrap();
        prop_assert!(rest.estimate <= want[s.values().len().min(d - 1)] * 1.0001 + 1e-12 || rest.estimate <= want[r]);
        prop_assert!(rest.bound >= want[s.values().len().min(d - 1)]);
    }
}

/// A Gaussian score with a cliff: `m` soft directions of variance about 1, `d - m` stiff
/// ones of variance about 1e-4 (spread, not 0). Both matrix-free ends read the
/// dimension, the stiffness and the soft count of the dense spectrum; with the block grown
/// to `d` the readings are those of the dense path exactly.
#[test]
fn readings_agree_with_the_dense_path() {
    let (d, m, t) = (120, 9, 1e-2);
    let var: Vec<f64> =
        (0..d).map(|i| if i < m { 1.0 + 0.05 * i as f64 } else { 1e-4 * (1.0 + i as f64 / d as f64) }).collect();
    let g = GaussianScore::from_variances(&var).unwrap();
    let x = vec![0.0; d];
    let dense = spectrum(&g, &x, t, &SpectrumParams::pointwise()).unwrap();
    let rule = SecondDerivativeRule::new(0, 10.0).unwrap();
    let bottom =
        spectrum(&g, &x, t, &SpectrumParams::matrix_free(MatrixFreeParams::default().block(6).oversample(3))).unwrap();
    assert_eq!(bottom.part(), Part::Bottom);
    assert!(bottom.products().jvp + bottom.products().vjp < d, "{:?}", bottom.products());
    for s in [&dense, &bottom] {
        assert_eq!(s.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), m);
        assert_eq!(s.read(&rule).unwrap(), Reading::Spike(m));
        assert_eq!(s.soft_count().unwrap(), m);
        let (lo, hi) = s.stiffness().unwrap();
        assert!(lo > 0.9 && hi < 1.05 && lo <= hi, "{lo} {hi}");
    }
    assert_eq!(dense.stiffness().unwrap().0, stiffness(dense.values(), t).unwrap());
    let pooled = JacobianSpectrum::pooled(&rule, &[dense.clone(), bottom.clone()]).unwrap();
    assert!(pooled.spikes.contains(&m), "{pooled:?}");
    let full = MatrixFreeParams::default().operator(Operator::Score).max_rank(d).block(40);
    let whole = spectrum(&g, &x, t, &SpectrumParams::matrix_free(full)).unwrap();
    assert_eq!(whole.part(), Part::Whole);
    assert!(whole.values().iter().zip(dense.values()).all(|(a, b)| (a - b).abs() < 1e-9 * dense.values()[0]));
    assert_eq!(whole.read(&rule).unwrap(), dense.read(&rule).unwrap());
}

/// The notebook form on whole spectra is the existing one; flat spectra read as stiff or soft.
#[test]
fn pooled_and_flat_readings_match_the_slice_forms() {
    let cliff = |d: usize, m: usize| -> Vec<f64> {
        (0..d).map(|i| if i < d - m { 100.0 - 0.01 * i as f64 } else { 1.0 - 0.01 * i as f64 / d as f64 }).collect()
    };
    let rule = SecondDerivativeRule::new(2, 10.0).unwrap();
    let (a, b) = (cliff(40, 7), cliff(40, 12));
    let slices = rule.pooled(&[a.clone(), b.clone()]).unwrap();
    let specs = [JacobianSpectrum::whole(a, 0.01).unwrap(), JacobianSpectrum::whole(b, 0.01).unwrap()];
    assert_eq!(JacobianSpectrum::pooled(&rule, &specs).unwrap(), slices);
    let stiff = JacobianSpectrum::whole(vec![100.0; 30], 0.01).unwrap();
    assert_eq!(stiff.read(&rule).unwrap(), Reading::NoSpikeStiff);
    let soft = JacobianSpectrum::whole(vec![1.0; 30], 0.01).unwrap();
    assert_eq!(soft.read(&rule).unwrap(), Reading::NoSpikeSoft);
    assert!(JacobianSpectrum::whole(vec![1.0; 3], 0.0).is_err());
}

/// A closure field: the default VJP (from `d` central-difference JVPs) and JVP make the
/// matrix-free path work on any field, at the accuracy of the differences.
#[test]
fn a_closure_field_gets_the_matrix_free_path_through_the_defaults() {
    use geomem_score::{BatchFn, Precision};
    let d = 24;
    let lam: Vec<f64> = (0..d).map(|i| if i < 4 { 1.0 } else { 1e-3 }).collect();
    let lam2 = lam.clone();
    let f = BatchFn::new(d, Precision::F64, move |x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>| {
        for i in 0..x.nrows() {
            for j in 0..d {
                out[(i, j)] = -x[(i, j)] / (lam2[j] + t) + 0.1 * (x[(i, j)]).sin().powi(3);
            }
        }
    })
    .unwrap();
    let t = 0.01;
    let s = spectrum(
        &f,
        &vec![0.0; d],
        t,
        &SpectrumParams::matrix_free(MatrixFreeParams::default().block(6).oversample(2)),
    )
    .unwrap();
    let want: Vec<f64> = lam.iter().map(|l| l / (l + t)).collect(); // denoiser values (sin³ has zero slope at 0)
    let got = operator_values(&s, Operator::Denoiser);
    let bounds = s.errors().unwrap(); // J units, stiffest first: the soft values' bounds are last
    for k in 0..4 {
        let e = bounds[bounds.len() - 1 - k] * t;
        assert!((got[k] - want[k]).abs() <= e + 1e-9 && e < 1e-2, "{k}: {} vs {}, bound {e}", got[k], want[k]);
    }
    assert_eq!(s.dimension_from_largest_gap(GapScale::Linear, 0).unwrap(), 4);
}

/// With the fallback, a spectrum without a gap (the score end of a Gaussian: `d - m` stiff
/// values, all wanted) stops growing the block after at most `d` products and takes the
/// field's Jacobian: every value equals the dense spectrum, bounds 0, one Jacobian counted.
/// Without it the same call spends more than `d` products. A field without a Jacobian (a
/// closure) goes on with products and still gets its values; so does a call capped below `d`.
#[test]
fn the_jacobian_fallback_caps_the_products_of_a_gapless_spectrum() {
    use geomem_score::{BatchFn, Precision};
    let (d, m, t) = (120, 9, 1e-2);
    let var: Vec<f64> = (0..d).map(|i| if i < m { 1.0 } else { 1e-4 * (1.0 + i as f64 / d as f64) }).collect();
    let g = GaussianScore::from_variances(&var).unwrap();
    let x = vec![0.0; d];
    let want = dense_operator_values(&g, &x, t, Operator::Score);
    let p = MatrixFreeParams::default().operator(Operator::Score).block(8);
    let plain = spectrum(&g, &x, t, &SpectrumParams::matrix_free(p)).unwrap();
    assert!(spent(&plain) > d && plain.products().jacobians == 0, "{:?}", plain.products());
    let fast = spectrum(&g, &x, t, &SpectrumParams::matrix_free(p.jacobian_fallback(true))).unwrap();
    assert!(spent(&fast) <= d && fast.products().jacobians == 1, "{:?}", fast.products());
    let got = operator_values(&fast, Operator::Score);
    assert_eq!(got.len(), d);
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-12 * want[0]));
    assert!(fast.errors().unwrap().iter().all(|&e| e == 0.0));
    // A cap below d asks for at most that many values: no fallback.
    let capped = spectrum(&g, &x, t, &SpectrumParams::matrix_free(p.max_rank(d - 1).jacobian_fallback(true))).unwrap();
    assert!(capped.products().jacobians == 0 && capped.values().len() < d, "{:?}", capped.products());
    let var2 = var.clone();
    let f = BatchFn::new(d, Precision::F64, move |x: MatRef<'_, f64>, _t: f64, mut out: MatMut<'_, f64>| {
        for i in 0..x.nrows() {
            for j in 0..d {
                out[(i, j)] = -x[(i, j)] / var2[j];
            }
        }
    })
    .unwrap();
    let closure = spectrum(&f, &x, t, &SpectrumParams::matrix_free(p.jacobian_fallback(true))).unwrap();
    assert_eq!(closure.products().jacobians, 0);
    assert!(closure.values().len() >= d - m);
}

fn spent(s: &JacobianSpectrum) -> usize {
    s.products().jvp + s.products().vjp
}
