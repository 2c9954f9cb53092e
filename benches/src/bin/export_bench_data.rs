//! Writes the inputs of the side-by-side comparison in `benches/compare/` as `.npy`, with
//! the spectra computed here, so the Python reference runs on the same numbers and its
//! result can be checked against ours.
//!
//! Usage: `cargo run --release -p geomem-benches --bin export_bench_data -- <dir>`

use geomem_data::{write_npy, Block, Embedding, LinearManifold};
use geomem_score::EmpiricalScore;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/bench-data".into());
    std::fs::create_dir_all(&dir)?;
    let (n, d) = (10_000, 784);
    let y = LinearManifold::new(d, &[Block { dim: d / 10, variance: 1.0 }], Embedding::RandomRotation { seed: 1 })?
        .sample(n, 0);
    let f = EmpiricalScore::new(y.clone())?;
    let x: Vec<f64> = f.data().row(0).iter().map(|v| v + 0.01).collect();
    write_npy(format!("{dir}/Y.npy"), y.as_ref())?;
    write_npy(format!("{dir}/x.npy"), faer::MatRef::from_row_major_slice(&x, 1, d))?;
    for t in [1e3, 1.0] {
        let reps = 5;
        let mut best = f64::INFINITY;
        let mut s = Vec::new();
        for _ in 0..reps {
            let start = Instant::now();
            s = f.jacobian_spectrum(&x, t)?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        write_npy(format!("{dir}/spectrum_t{t}.npy"), faer::MatRef::from_row_major_slice(&s, 1, d))?;
        println!("rust geomem jacobian_spectrum N={n} d={d} t={t}: best of {reps} = {:.2} ms", best * 1e3);
    }
    Ok(())
}
