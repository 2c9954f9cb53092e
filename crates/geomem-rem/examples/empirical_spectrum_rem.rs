//! The empirical score's Jacobian spectrum and the REM condensation time of a user's data:
//! `cargo run -p geomem-rem --example empirical_spectrum_rem -- points.npy` (`.npy`, `.csv`
//! or `.csv.gz`, one point per row). Without an argument it uses 300 seeded points of a
//! 2 + 5 linear manifold in R^30 (seed 001's data).
//!
//! Below `t_c` the posterior of the empirical score at the data's mean is dominated by few
//! points and the spectrum is stiff in every direction (`t · s ≈ 1`); above it the data's
//! own dimensions soften.
use geomem_rem::PositionalRem;
use geomem_score::EmpiricalScore;
use geomem_spectral::{soft_count, spectrum, GapScale, Spectrum, SpectrumParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let x = match std::env::args().nth(1) {
        Some(p) => geomem_data::read_points(p)?,
        None => {
            use geomem_data::{Block, Embedding, LinearManifold};
            let blocks = [Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }];
            LinearManifold::new(30, &blocks, Embedding::Aligned)?.sample(300, 0)
        }
    };
    let (n, d) = (x.nrows(), x.ncols());
    let tc = PositionalRem::of_data(x.as_ref())?.condensation_time();
    println!("{n} points in R^{d}: REM condensation time at the data's mean t_c = {tc:.4}");
    let mean: Vec<f64> = (0..d).map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64).collect();
    let field = EmpiricalScore::new(x)?;
    for t in [tc / 10.0, tc, 10.0 * tc] {
        let s = spectrum(&field, &mean, t, &SpectrumParams::pointwise())?.into_values();
        let nb = Spectrum::new(s.clone())?.dimension_from_largest_gap(GapScale::Log, 0)?;
        println!(
            "t = {t:.4}: t·s from {:.3} to {:.3}, soft directions {}, NB dimension {nb}",
            t * s[0],
            t * s[d - 1],
            soft_count(&s, t)?
        );
    }
    Ok(())
}
