//! geomem-lid against scikit-dimension 0.5 on the same points: the numbers below were printed
//! by `benches/compare/skdim_reference.py` (scikit-dimension 0.5.0, numpy 2) on the data set
//! that `data()` rebuilds from the same formula.
use faer::Mat;
use geomem_lid::{Combine, Mle, TwoNn, TwoNnMethod};

fn data() -> Mat<f64> {
    let two_pi = 2.0 * std::f64::consts::PI;
    Mat::from_fn(300, 6, |i, j| {
        let i = i as f64;
        let u = (i * 0.6180339887498949).rem_euclid(1.0);
        let v = (i * 0.41421356237309515).rem_euclid(1.0);
        let w = (i * 0.7320508075688772).rem_euclid(1.0);
        [(two_pi * u).cos(), (two_pi * u).sin(), v, w * v, (3.0 * w).sin(), 0.5 * u * v][j]
    })
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} vs scikit-dimension {b}");
}

#[test]
fn mle_equals_scikit_dimension() {
    let x = data();
    let pw = Mle::default().pointwise(x.as_ref()).unwrap();
    for (a, b) in pw.iter().zip([
        2.5779394869508603,
        2.625892873941461,
        1.7715519404416733,
        2.5710620139056104,
        2.717839601770331,
    ]) {
        close(*a, b);
    }
    close(Combine::Harmonic.apply(&pw), 2.3458009251660656);
    close(Combine::Mean.apply(&pw), 2.457767474798268);
    close(Combine::Median.apply(&pw), 2.3853396261297886);
    let unbiased = Mle::new(10, true).unwrap().pointwise(x.as_ref()).unwrap();
    for (a, b) in unbiased.iter().zip([2.0473360281639015, 2.540206849125556, 2.0505417075464347]) {
        close(*a, b);
    }
}

#[test]
fn twonn_equals_scikit_dimension() {
    let x = data();
    close(TwoNn::default().global(x.as_ref()).unwrap().dimension, 3.2280064450274484);
    let mle = TwoNn::new(0.1, TwoNnMethod::Mle).unwrap();
    close(mle.global(x.as_ref()).unwrap().dimension, 3.473262690767448);
    let pw = TwoNn::default().pointwise(x.as_ref(), 100).unwrap();
    for (a, b) in pw.iter().zip([
        2.979047345912418,
        3.3345118958014353,
        3.4573979281698173,
        3.1901686557075766,
        3.1069106122713968,
    ]) {
        close(*a, b);
    }
}
