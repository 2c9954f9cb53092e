//! Shared helpers of the integration tests.
#![allow(dead_code)]
use faer::Mat;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// `n × d` standard normal matrix scaled column-wise by `sqrt(var[j])`.
pub fn gaussian_rows(n: usize, var: &[f64], seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = Mat::zeros(n, var.len());
    for i in 0..n {
        for (j, v) in var.iter().enumerate() {
            let z: f64 = StandardNormal.sample(&mut rng);
            m[(i, j)] = z * v.sqrt();
        }
    }
    m
}

/// Relative Frobenius error `‖a - b‖ / max(‖b‖, tiny)`.
pub fn rel_err(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            num += (a[(i, j)] - b[(i, j)]).powi(2);
            den += b[(i, j)].powi(2);
        }
    }
    (num / den.max(1e-300)).sqrt()
}
