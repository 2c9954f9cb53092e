//! Seeded random matrices.
use faer::Mat;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// `rows × cols` matrix of i.i.d. standard normal entries, filled row by row from `seed`.
pub fn gaussian_matrix(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = Mat::zeros(rows, cols);
    for i in 0..rows {
        for j in 0..cols {
            m[(i, j)] = StandardNormal.sample(&mut rng);
        }
    }
    m
}

/// A Haar-distributed `d × d` orthogonal matrix: QR of a Gaussian matrix with the signs of
/// `diag(R)` moved into `Q` (Mezzadri 2007).
pub fn haar_orthogonal(d: usize, seed: u64) -> Mat<f64> {
    let g = gaussian_matrix(d, d, seed);
    let qr = g.qr();
    let mut q = qr.compute_Q();
    let r = qr.R();
    for j in 0..d {
        if r[(j, j)] < 0.0 {
            for i in 0..d {
                q[(i, j)] = -q[(i, j)];
            }
        }
    }
    q
}
