//! The GEMM search equals brute force in double precision, with duplicates, ties, huge and
//! tiny units, on every screen (AMX tiles where the machine has them, the integer screen of
//! points on a lattice, on AVX-512 VNNI where the machine has it and portable elsewhere, and
//! the single-precision ones); errors for bad input.
use faer::{Mat, MatRef};
use geomem_lid::knn::{
    knn_brute_force, knn_on, knn_self_on, knn_self_without_amx, knn_without_amx, screen_of, Screens,
};
use geomem_lid::{knn, knn_self, LidError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn gaussian(n: usize, d: usize, scale: f64, seed: u64) -> Mat<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Mat::from_fn(n, d, |_, _| {
        let z: f64 = StandardNormal.sample(&mut rng);
        scale * z
    })
}

/// A search's result against brute force's: distances within `1e-12` relative and the same
/// indices, ties broken by the smaller index as brute force breaks them (a wrong index at a
/// tied distance fails too).
fn same(a: &geomem_lid::Neighbours, b: &geomem_lid::Neighbours) {
    assert_eq!(a.len(), b.len());
    for i in 0..a.len() {
        for (x, y) in a.distances(i).iter().zip(b.distances(i)) {
            assert!((x - y).abs() <= 1e-12 * y.max(1e-300), "row {i}: {x} vs {y}");
        }
        assert_eq!(a.indices(i), b.indices(i), "row {i}");
    }
}

/// The searches of one data set (the fastest, the single-precision screens, the lattice
/// screen where the points lie on one) against brute force.
fn self_equal(x: MatRef<'_, f64>, k: usize) -> geomem_lid::Neighbours {
    let brute = knn_brute_force(x, x, k, true);
    same(&knn_self_without_amx(x, k).unwrap(), &brute);
    same(&knn_self_on(x, k, Screens::Lattice).unwrap(), &brute);
    let nb = knn_self(x, k).unwrap();
    same(&nb, &brute);
    nb
}

/// The searches of queries against a reference against brute force.
fn cross_equal(q: MatRef<'_, f64>, x: MatRef<'_, f64>, k: usize) {
    let brute = knn_brute_force(q, x, k, false);
    same(&knn_without_amx(q, x, k).unwrap(), &brute);
    same(&knn_on(q, x, k, Screens::Lattice).unwrap(), &brute);
    same(&knn(q, x, k).unwrap(), &brute);
}

#[test]
fn several_panels_and_transposed_blocks() {
    // 1300 points: three panels, so the transposed update of earlier panels runs.
    let x = gaussian(1300, 7, 1.0, 1);
    self_equal(x.as_ref(), 5);
    let q = gaussian(600, 7, 1.0, 2);
    cross_equal(q.as_ref(), x.as_ref(), 3);
}

#[test]
fn duplicates_and_near_ties_fall_back_to_exact() {
    // 40 copies of one point and a lattice of equal distances.
    let mut x = gaussian(300, 4, 1.0, 3);
    for i in 0..40 {
        for j in 0..4 {
            x[(i, j)] = x[(0, j)];
        }
    }
    for i in 40..100 {
        for j in 0..4 {
            x[(i, j)] = ((i * (j + 1)) % 5) as f64;
        }
    }
    let nb = self_equal(x.as_ref(), 10);
    assert_eq!(nb.distances(0)[..10], [0.0; 10], "39 duplicates at distance 0");
    assert!(!nb.indices(0).contains(&0), "a point is not its own neighbour");
}

#[test]
fn units_do_not_matter() {
    // 1e307: sums of the coordinates (a mean, say) would overflow; 1e-310: subnormal.
    for scale in [1e-310, 1e-150, 1e-20, 1e30, 1e200, 1e307] {
        let x = gaussian(200, 5, scale, 4);
        self_equal(x.as_ref(), 4);
    }
}

#[test]
fn high_dimension_equals_brute_force() {
    let x = gaussian(700, 784, 1.0, 5);
    self_equal(x.as_ref(), 20);
}

/// `n` points of a random `r`-dimensional subspace of `R^d`, shifted by `offset` in every
/// coordinate, plus isotropic noise of standard deviation `noise`.
fn subspace(n: usize, r: usize, d: usize, offset: f64, noise: f64, seed: u64) -> Mat<f64> {
    let (z, f, e) = (gaussian(n, r, 1.0, seed), gaussian(r, d, 1.0, seed + 1), gaussian(n, d, noise, seed + 2));
    Mat::from_fn(n, d, |i, j| offset + (0..r).map(|l| z[(i, l)] * f[(l, j)]).sum::<f64>() + e[(i, j)])
}

#[test]
fn low_rank_data_far_from_the_origin_equal_brute_force() {
    // Screened in 3 projected coordinates (the search centres and projects); exact anyway.
    for noise in [0.0, 1e-6, 1e-2] {
        let x = subspace(700, 3, 60, 1e3, noise, 11);
        self_equal(x.as_ref(), 7);
        let q = subspace(300, 3, 60, 1e3, noise, 11 + 100);
        cross_equal(q.as_ref(), x.as_ref(), 5);
    }
}

#[test]
fn a_point_off_the_sampled_subspace_is_still_found() {
    // Point 5 (not among the sampled points) leaves the plane the others span: its own
    // neighbours and its place among theirs come out exact.
    let mut x = subspace(400, 2, 30, 0.0, 0.0, 12);
    x[(5, 0)] += 0.3;
    let q = subspace(50, 2, 30, 0.0, 0.0, 13);
    self_equal(x.as_ref(), 6);
    cross_equal(q.as_ref(), x.as_ref(), 4);
    // Queries off the reference's plane.
    let off = gaussian(50, 30, 1.0, 14);
    cross_equal(off.as_ref(), x.as_ref(), 4);
}

/// `n` points `tanh(F z)` with `z` in `r` dimensions and `F` `d × r`, shifted by `offset`:
/// curved, so every direction of `R^d` is spanned, but most of the spread lies in a few.
fn curved(n: usize, r: usize, d: usize, offset: f64, seed: u64) -> Mat<f64> {
    let (z, f) = (gaussian(n, r, 1.0, seed), gaussian(r, d, (r as f64).sqrt().recip(), seed + 1));
    Mat::from_fn(n, d, |i, j| offset + (0..r).map(|l| z[(i, l)] * f[(l, j)]).sum::<f64>().tanh())
}

#[test]
fn curved_data_equal_brute_force() {
    // d = 160 and 1500 points: full rank, most of the spread in a few directions. With AMX
    // the self-searches screen all 160 coordinates in bfloat16; without, on 40 principal
    // directions plus each point's distance off them, the further 40 read pair by pair.
    // The cross searches with 200 and 60 queries pay for neither (too few queries).
    for offset in [0.0, 50.0] {
        let x = curved(1500, 6, 160, offset, 15);
        for k in [1, 5, 20] {
            self_equal(x.as_ref(), k);
        }
        let q = curved(200, 6, 160, offset, 15 + 100);
        cross_equal(q.as_ref(), x.as_ref(), 5);
        // Queries far off the reference's principal directions.
        let off = gaussian(60, 160, 1.0, 17);
        cross_equal(off.as_ref(), x.as_ref(), 3);
    }
}

#[test]
fn row_major_points_are_read_in_place_with_the_same_result() {
    // Rows contiguous and `d + 3` apart (columns of a wider column-major matrix, transposed;
    // the three entries between rows are NaN, so a read outside a row would show): the exact
    // distances read the caller's rows in place. Same numbers as from the column-major copy,
    // on every screen (AMX or principal directions, the full screen for d = 7).
    for (n, d, seed) in [(1300, 96, 31), (700, 7, 33)] {
        let x = curved(n, 6, d, 0.0, seed);
        let wide = Mat::from_fn(d + 3, n, |j, i| if j < d { x[(i, j)] } else { f64::NAN });
        let rows = wide.transpose().subcols(0, d);
        assert_eq!(rows.col_stride(), 1);
        for k in [1, 20] {
            assert_eq!(knn_self(rows, k).unwrap(), knn_self(x.as_ref(), k).unwrap());
            assert_eq!(knn_self_without_amx(rows, k).unwrap(), knn_self_without_amx(x.as_ref(), k).unwrap());
        }
        let q = curved(150, 6, d, 0.0, seed + 100);
        let qt = q.transpose().to_owned();
        assert_eq!(knn(qt.transpose(), rows, 3).unwrap(), knn(q.as_ref(), x.as_ref(), 3).unwrap());
    }
    // On a lattice, where one set is searched in an order of its own and its exact distances
    // read the caller's rows through it.
    let (x, _, _) = on_lattice(&curved(1300, 6, 96, 0.0, 35));
    let wide = Mat::from_fn(99, 1300, |j, i| if j < 96 { x[(i, j)] } else { f64::NAN });
    let rows = wide.transpose().subcols(0, 96);
    assert_eq!(screen_of(None, rows, 20, Screens::Lattice).unwrap(), "lattice");
    for k in [1, 20] {
        let brute = knn_brute_force(x.as_ref(), x.as_ref(), k, true);
        same(&knn_self_on(rows, k, Screens::Lattice).unwrap(), &brute);
        assert_eq!(
            knn_self_on(rows, k, Screens::Lattice).unwrap(),
            knn_self_on(x.as_ref(), k, Screens::Lattice).unwrap()
        );
    }
}

#[test]
fn ties_and_copies_on_the_fast_screens_equal_brute_force() {
    // Enough points and coordinates for AMX tiles (or principal directions): a coarse grid
    // (many exactly tied distances), 70 copies of one point and a few far outliers.
    let mut x = gaussian(1300, 96, 1.5, 21);
    for j in 0..96 {
        for i in 0..1300 {
            x[(i, j)] = x[(i, j)].round();
        }
        for i in 1..70 {
            x[(i * 17, j)] = x[(0, j)];
        }
        x[(1299, j)] += 1e3;
    }
    for k in [1, 2, 20, 75] {
        self_equal(x.as_ref(), k);
    }
    let q = gaussian(300, 96, 1.5, 22);
    cross_equal(q.as_ref(), x.as_ref(), 3);
}

/// `x` on a lattice of 256 levels from its smallest to its largest entry.
fn on_lattice(x: &Mat<f64>) -> (Mat<f64>, f64, f64) {
    let (lo, hi) =
        x.col_iter().flat_map(|c| c.iter().copied()).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let h = (hi - lo) / 255.0;
    (x.as_ref().map(|&v| lo + h * ((v - lo) / h).round()), lo, h)
}

#[test]
fn points_on_a_lattice_equal_brute_force() {
    // Curved points in 96 dimensions on 256 levels, far from the origin: many tied
    // distances (integer squared distances), 70 copies of one point.
    let (mut x, lo, h) = on_lattice(&curved(1300, 5, 96, 1e4, 23));
    for j in 0..96 {
        for i in 1..70 {
            x[(i * 17, j)] = x[(0, j)];
        }
    }
    assert_eq!(screen_of(None, x.as_ref(), 5, Screens::Lattice).unwrap(), "lattice");
    for k in [1, 2, 20, 75] {
        self_equal(x.as_ref(), k);
    }
    // Queries on the reference's levels.
    let q = curved(300, 5, 96, 1e4, 24).as_ref().map(|&v| lo + h * ((v.clamp(lo, lo + 255.0 * h) - lo) / h).round());
    assert_eq!(screen_of(Some(q.as_ref()), x.as_ref(), 3, Screens::Lattice).unwrap(), "lattice");
    for k in [1, 3, 20] {
        cross_equal(q.as_ref(), x.as_ref(), k);
    }
    // A point off the lattice by h / 3 in one coordinate, found in the check of every
    // point (not the sample's): the search falls back to another screen.
    x[(1001, 7)] += h / 3.0;
    assert_ne!(screen_of(None, x.as_ref(), 5, Screens::Lattice).unwrap(), "lattice");
    self_equal(x.as_ref(), 5);
    // Queries between the reference's levels: no lattice for both.
    x[(1001, 7)] -= h / 3.0;
    let between = q.as_ref().map(|&v| v + 0.5 * h);
    assert_ne!(screen_of(Some(between.as_ref()), x.as_ref(), 3, Screens::Lattice).unwrap(), "lattice");
    cross_equal(between.as_ref(), x.as_ref(), 3);
}

#[test]
fn fashion_mnist_equals_brute_force() {
    // Real images, f64 in [0, 1]: the data of the benchmark.
    let set = match geomem_data::read_fashion_mnist(geomem_data::Split::Train) {
        Ok(s) => s,
        Err(e) => return eprintln!("Fashion-MNIST not installed, skipped: {e}"),
    };
    let x = Mat::from_fn(1500, set.dim(), |i, j| ((set.images[(i, j)] + 1.0) * 127.5).round() / 255.0);
    assert_eq!(screen_of(None, x.as_ref(), 20, Screens::Lattice).unwrap(), "lattice", "bytes / 255");
    for k in [2, 20] {
        self_equal(x.as_ref(), k);
    }
    let q = Mat::from_fn(300, set.dim(), |i, j| ((set.images[(1500 + i, j)] + 1.0) * 127.5).round() / 255.0);
    cross_equal(q.as_ref(), x.as_ref(), 2);
}

#[test]
fn bad_input_is_an_error() {
    let x = gaussian(10, 3, 1.0, 6);
    assert!(matches!(knn_self(x.as_ref(), 10), Err(LidError::InvalidParameter { .. })));
    assert!(matches!(knn_self(x.as_ref(), 0), Err(LidError::InvalidParameter { .. })));
    assert!(matches!(knn(x.as_ref(), x.as_ref(), 11), Err(LidError::InvalidParameter { .. })));
    assert!(matches!(knn(gaussian(2, 4, 1.0, 7).as_ref(), x.as_ref(), 1), Err(LidError::Data { .. })));
    assert!(matches!(knn_self(Mat::<f64>::zeros(0, 3).as_ref(), 1), Err(LidError::Data { .. })));
    let mut bad = x.clone();
    bad[(3, 1)] = f64::NAN;
    assert!(matches!(knn_self(bad.as_ref(), 2), Err(LidError::Data { .. })));
    bad[(3, 1)] = f64::INFINITY;
    assert!(matches!(knn(bad.as_ref(), x.as_ref(), 2), Err(LidError::Data { .. })));
    // Row-major points (each row contiguous), -inf past the first eight entries of a row.
    let mut wide = gaussian(10, 12, 1.0, 8);
    wide[(7, 10)] = f64::NEG_INFINITY;
    let rows = wide.transpose().to_owned();
    let err = knn_self(rows.transpose(), 2).unwrap_err();
    assert!(err.to_string().contains("row 7 has a non-finite coordinate 10"), "{err}");
}

proptest! {
    #![proptest_config(Config { cases: 48, rng_seed: RngSeed::Fixed(11), ..Config::default() })]
    #[test]
    fn equals_brute_force(n in 3usize..80, d in 1usize..12, k in 1usize..6, seed in 0u64..1000, coarse in any::<bool>()) {
        let k = k.min(n - 1);
        let mut x = gaussian(n, d, 1.0, seed);
        if coarse {
            // Coordinates on a coarse grid: many exactly tied distances and duplicates.
            for j in 0..d { for i in 0..n { x[(i, j)] = x[(i, j)].round(); } }
        }
        self_equal(x.as_ref(), k);
    }

    #[test]
    fn low_rank_equals_brute_force(n in 3usize..300, r in 1usize..4, k in 1usize..6, seed in 0u64..1000, offset in -1e4f64..1e4) {
        let (k, d) = (k.min(n - 1), 16 + r);
        let x = subspace(n, r, d, offset, 0.0, seed);
        self_equal(x.as_ref(), k);
    }
}
