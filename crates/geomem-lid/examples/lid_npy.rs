//! LID of a user's points: `cargo run -p geomem-lid --example lid_npy -- points.npy`
//! (`.npy`, `.csv` or `.csv.gz`, one point per row). Without an argument it writes 500
//! seeded points of a 2-dimensional plane in R^10 to a temporary `.npy` and reads that.
use geomem_lid::{Combine, Mle, Summary, TwoNn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let plane = geomem_data::LinearManifold::new(
                10,
                &[geomem_data::Block { dim: 2, variance: 1.0 }],
                geomem_data::Embedding::Aligned,
            )?;
            let p = std::env::temp_dir().join(format!("geomem-lid-example-{}.npy", std::process::id()));
            geomem_data::write_npy(&p, plane.sample(500, 0).as_ref())?;
            p
        }
    };
    let x = geomem_data::read_points(&path)?;
    let mle = Mle::default().pointwise(x.as_ref())?;
    let twonn = TwoNn::default().global(x.as_ref())?;
    let s = Summary::of(&mle);
    println!("{}: {} points of dimension {}", path.display(), x.nrows(), x.ncols());
    println!("MLE (k = 20): median {:.2}, harmonic mean {:.2}", s.quantiles[2], Combine::Harmonic.apply(&mle));
    println!("TwoNN: {:.2}", twonn.dimension);
    Ok(())
}
