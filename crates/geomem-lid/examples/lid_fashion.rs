//! Times geomem-lid's k-NN estimators on Fashion-MNIST training images (f64 in [0, 1]).
//!
//! Usage: `cargo run --release -p geomem-lid --example lid_fashion -- N WHAT [REPS] [NPY]`
//! with WHAT one of `knn:K`, `mle`, `twonn`; NPY writes the first N images as `.npy`.

use faer::Mat;
use geomem_data::{read_fashion_mnist, write_npy, Split};
use geomem_lid::{knn_self, Combine, Mle, TwoNn};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(10_000), |s| s.parse())?;
    let what = args.get(2).cloned().unwrap_or_else(|| "mle".into());
    let reps: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let set = read_fashion_mnist(Split::Train)?;
    let x = Mat::from_fn(n, set.dim(), |i, j| ((set.images[(i, j)] + 1.0) * 127.5).round() / 255.0);
    drop(set);
    if let Some(p) = args.get(4) {
        write_npy(p, x.as_ref())?;
    }
    for _ in 0..reps {
        let t = Instant::now();
        let v = if let Some(k) = what.strip_prefix("knn:") {
            let nb = knn_self(x.as_ref(), k.parse()?)?;
            (0..nb.len()).map(|i| nb.distances(i).iter().sum::<f64>()).sum::<f64>()
        } else if what == "twonn_pw" {
            TwoNn::default().pointwise(x.as_ref(), 100)?.iter().sum::<f64>()
        } else if what == "mle" {
            Combine::Harmonic.apply(&Mle::default().pointwise(x.as_ref())?)
        } else {
            TwoNn::default().global(x.as_ref())?.dimension
        };
        println!("{what} n={n} {:.3} s value {v:.12}", t.elapsed().as_secs_f64());
    }
    Ok(())
}
