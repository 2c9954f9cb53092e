//! The Jacobian spectrum of one's own score function, a closure, dense and matrix-free.
//!
//! The field: a Gaussian of variances about 1 on a 3-dimensional plane in R^40 and about
//! 1e-4 off it, `s(x, t) = -x_i / (v_i + t)`. At t = 1e-2 the plane's directions are soft and the others
//! stiff: both methods read dimension 3.
//!
//! `cargo run -p geomem-spectral --example closure_spectrum` (also run by `cargo test`).
use geomem_score::{PointFn, Precision};
use geomem_spectral::{spectrum, GapScale, MatrixFreeParams, SecondDerivativeRule, SpectrumParams};

fn run() -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let d = 40;
    let var = move |i: usize| if i < 3 { 1.0 + 0.3 * i as f64 } else { 1e-4 * (1.0 + i as f64 / d as f64) };
    // One point at a time, computed in f64 (an f32 function would say Precision::F32).
    let field = PointFn::new(d, Precision::F64, move |x: &[f64], t: f64, out: &mut [f64]| {
        for (i, (o, xi)) in out.iter_mut().zip(x).enumerate() {
            *o = -xi / (var(i) + t);
        }
    })?;
    let (x, t) = (vec![0.1; d], 1e-2);
    let dense = spectrum(&field, &x, t, &SpectrumParams::default())?; // seed 001 Eq. 5: d + 1 evaluations
    let leading = spectrum(&field, &x, t, &SpectrumParams::matrix_free(MatrixFreeParams::default().block(4)))?;
    let rule = SecondDerivativeRule::new(1, 10.0)?;
    for (name, s) in [("dense", &dense), ("matrix-free", &leading)] {
        println!(
            "{name}: {} values, largest gap -> {}, Algorithm 3 -> {:?}, soft count {}, {:?}",
            s.values().len(),
            s.dimension_from_largest_gap(GapScale::Linear, 0)?,
            s.read(&rule)?,
            s.soft_count()?,
            s.products()
        );
    }
    Ok((dense.read(&rule)?.dimension(d), leading.read(&rule)?.dimension(d)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().map(|_| ())
}

#[test]
fn both_methods_read_the_plane() {
    assert_eq!(run().unwrap(), (3, 3));
}
