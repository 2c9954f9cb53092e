//! Exact k nearest neighbours: a screen by batched products (single precision, bfloat16 on
//! AMX, integers on a lattice), then exact double-precision distances for the few candidates
//! that bounds cannot rule out.
//!
//! * **Coordinates** (`frame`, `points`). The screen works in centred coordinates (the
//!   reference's mean subtracted, so that single precision resolves the data's spread however
//!   far they lie from the origin), scaled by powers of two, and on a basis where one pays:
//!   the subspace the reference spans where it spans a low-dimensional one (a linear manifold
//!   of `geomem-data`, say), else, with enough points and coordinates, its leading principal
//!   directions (a randomised range finder on a sample: 128 screened and up to 384 in all),
//!   kept where a sample of queries shows that they pay (images, curved manifolds; not white
//!   noise). On a basis of `m` directions the screen holds the `m` coordinates and, as
//!   coordinate `m + 1`, each point's distance `ρ` off the basis: the screened value
//!   `ľ = |P q - P r|² + (ρ_q - ρ_r)²` is a lower bound on the squared distance.
//!   Points that lie on a lattice of 256 levels (8-bit images, scaled by any factor and
//!   offset, both end levels occurring: coordinates within `h / 1024` of `lo + h q`, `q` in
//!   `0 ..= 255`, on a sample, and every point within `√d h / 1024` of its lattice point;
//!   `lattice`) are screened instead on their lattice points in integers, where the machine
//!   has AVX-512 VNNI and no AMX: exact integer products rounded to single precision, so the
//!   keys are all but exact and each query measures little more than its `k` (each point's
//!   distance from its lattice point enters the bound).
//! * **Screen** (`scan`, `screen`, `top`). Squared distances `|q|² + |r|² - 2 q·r`
//!   come from matrix products (rounded to single precision) in tiles of at most 256 × 256
//!   points, each
//!   tile screened while it is still in the core's cache: each query keeps its smallest
//!   screened values (a few more than `k`; on AMX, a quarter more than nine sampled queries
//!   in ten need) and a floor below which nothing it dropped lies.
//!   On one data set (`knn_self`) only the tiles of the lower block triangle are multiplied,
//!   each updating the points of both its blocks: half the products of a full search. On a
//!   lattice the set is first put in an order that keeps near points together (`order`: the
//!   cells of a k-d tree on eight principal coordinates of a sample), so that each block's
//!   own tile fills its points' lists with near candidates and the later tiles offer them
//!   few; the walks then go in that order, reading points that the walks before them read.
//! * **Refinement** (`refine`, `exact`). Each query walks its candidates in ascending
//!   screened value, keeping the `k` smallest exact distances `√Σ(q - r)²` met so far; a
//!   candidate whose lower bound lies beyond the `k`-th is never measured, and the walk stops
//!   at the first whose screened value does. On principal directions each candidate is first
//!   bounded on the further principal coordinates, 64 at a time (partial distances plus the
//!   distance off the directions read so far), which rules out most of them at a fraction of
//!   an exact distance's reads. A query whose candidates run out before its `k`-th is
//!   certified (near ties, duplicates, a loose screen) is rescanned against the whole
//!   reference, or, where the open queries number at least half the reference points (a
//!   loose screen on principal directions), all take a second screen: each holds the entries below its reach in 8
//!   bytes while a budget shared by all (24 MiB) has room, and walks them in ascending
//!   order at the end; past the budget it walks what it holds and then bounds and measures
//!   each further entry as it comes. So the memory stays bounded (`refine::Stream`).
//!
//! Every bound carries the rounding errors that could make it too high: an `f32` dot product
//! of length `m` errs by at most `γ_m |q||r|` with `γ_m ≈ (m + 2)·2⁻²⁴` whatever the
//! summation order, and the double-precision projections by a small multiple of `d·2⁻⁵³`. So
//! the result equals a brute-force double-precision search (`tests/knn.rs`), ties broken by
//! the smaller index.

mod amx;
mod exact;
mod frame;
mod lattice;
mod order;
mod points;
mod refine;
mod scan;
mod screen;
mod top;

use crate::error::{check_points, check_width, param, Result};
pub use exact::knn_brute_force;
use faer::MatRef;
use top::Top;

/// The `k` nearest reference points of every query, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    k: usize,
    distances: Vec<f64>,
    indices: Vec<usize>,
}

impl Neighbours {
    /// The number of neighbours per query.
    pub fn k(&self) -> usize {
        self.k
    }
    /// The number of queries.
    pub fn len(&self) -> usize {
        self.indices.len() / self.k
    }
    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
    /// Euclidean distances of query `i` to its neighbours, ascending.
    pub fn distances(&self, i: usize) -> &[f64] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
    /// Reference indices of the neighbours of query `i`, nearest first.
    pub fn indices(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
}

/// The `k` nearest points of `reference` to every row of `queries`.
///
/// # Errors
/// [`crate::LidError::Data`] for empty or non-finite inputs or different widths;
/// [`crate::LidError::InvalidParameter`] unless `1 <= k <= reference.nrows()`.
pub fn knn(queries: MatRef<'_, f64>, reference: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_cross(queries, reference, k)?;
    Ok(search(queries, reference, k, false, Screens::Fastest))
}

/// The `k` nearest other points of every row of `data`: point `i` is not its own neighbour
/// (a duplicate of it at another index is, at distance 0).
///
/// # Errors
/// [`crate::LidError::Data`] for empty or non-finite data;
/// [`crate::LidError::InvalidParameter`] unless `1 <= k < data.nrows()`.
pub fn knn_self(data: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_self(data, k)?;
    Ok(search(data, data, k, true, Screens::Fastest))
}

/// [`knn`] without AMX tiles, whatever the machine: the portable screens, which the tests
/// compare with brute force too.
///
/// # Errors
/// As [`knn`].
#[doc(hidden)]
pub fn knn_without_amx(queries: MatRef<'_, f64>, reference: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_cross(queries, reference, k)?;
    Ok(search(queries, reference, k, false, Screens::Portable))
}

/// [`knn_self`] without AMX tiles (see [`knn_without_amx`]).
///
/// # Errors
/// As [`knn_self`].
#[doc(hidden)]
pub fn knn_self_without_amx(data: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_self(data, k)?;
    Ok(search(data, data, k, true, Screens::Portable))
}

/// Which screens a search may use: the tests compare each with brute force.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screens {
    /// The fastest this machine has ([`knn`], [`knn_self`]).
    Fastest,
    /// Single precision only, no AMX tiles and no lattice ([`knn_without_amx`]).
    Portable,
    /// The integer screen wherever the points lie on a lattice of 256 levels, on AVX-512
    /// VNNI where the machine has it and on a portable loop elsewhere; no AMX tiles.
    Lattice,
}

/// [`knn`] on the screens `screens` allows.
///
/// # Errors
/// As [`knn`].
#[doc(hidden)]
pub fn knn_on(queries: MatRef<'_, f64>, reference: MatRef<'_, f64>, k: usize, screens: Screens) -> Result<Neighbours> {
    check_cross(queries, reference, k)?;
    Ok(search(queries, reference, k, false, screens))
}

/// [`knn_self`] on the screens `screens` allows.
///
/// # Errors
/// As [`knn_self`].
#[doc(hidden)]
pub fn knn_self_on(data: MatRef<'_, f64>, k: usize, screens: Screens) -> Result<Neighbours> {
    check_self(data, k)?;
    Ok(search(data, data, k, true, screens))
}

/// The screen a search of `queries` (`None`: the reference itself, as [`knn_self`]) against
/// `reference` would use here: `"lattice"`, `"amx"`, `"principal"`, `"span"` or `"full"`
/// (single precision). For tests and benchmarks.
///
/// # Errors
/// As [`knn`] and [`knn_self`].
#[doc(hidden)]
pub fn screen_of(
    queries: Option<MatRef<'_, f64>>,
    reference: MatRef<'_, f64>,
    k: usize,
    screens: Screens,
) -> Result<&'static str> {
    let p = match queries {
        Some(q) => {
            check_cross(q, reference, k)?;
            points::prepare(q, reference, false, k, screens)
        }
        None => {
            check_self(reference, k)?;
            points::prepare(reference, reference, true, k, screens)
        }
    };
    Ok(match (&p.q.screen, p.deep.is_some()) {
        (points::Screen::I8(_), _) => "lattice",
        (points::Screen::Bf16(_), _) => "amx",
        (_, true) => "principal",
        (points::Screen::F32(c), false) if c.d < reference.ncols() => "span",
        _ => "full",
    })
}

fn check_cross(queries: MatRef<'_, f64>, reference: MatRef<'_, f64>, k: usize) -> Result<()> {
    check_points("reference points", reference, 1)?;
    check_points("query points", queries, 1)?;
    check_width("query points", queries.ncols(), reference.ncols())?;
    param("k", k, k >= 1 && k <= reference.nrows(), "must lie in 1 ..= number of reference points")
}

fn check_self(data: MatRef<'_, f64>, k: usize) -> Result<()> {
    check_points("data points", data, 2)?;
    param("k", k, k >= 1 && k < data.nrows(), "must lie in 1 .. number of points")
}

fn search(q: MatRef<'_, f64>, r: MatRef<'_, f64>, k: usize, same: bool, screens: Screens) -> Neighbours {
    search_holding(q, r, k, same, screens, refine::HOLD_BUDGET)
}

/// [`search`] with `hold` bytes for the second screen's held candidates.
fn search_holding(
    q: MatRef<'_, f64>,
    r: MatRef<'_, f64>,
    k: usize,
    same: bool,
    screens: Screens,
    hold: usize,
) -> Neighbours {
    let p = points::prepare(q, r, same, k, screens);
    let mut tops: Vec<Top> = (0..q.nrows()).map(|_| Top::new(p.keep)).collect();
    scan::scan(&mut tops, &p, same);
    let (mut queries, order) = refine::first(&p, tops, k, same);
    let open = queries.iter().filter(|q| q.is_open()).count();
    if 2 * open < p.reference().norms.len() {
        refine::rescan(&p, &mut queries, same);
    } else {
        queries = refine::second(&p, queries, same, &order, hold);
    }
    // Query `i` of the search is the caller's `original(i)`.
    let mut out = Neighbours { k, distances: vec![0.0; q.nrows() * k], indices: vec![0; q.nrows() * k] };
    for (i, query) in queries.into_iter().enumerate() {
        let (d, ix) = query.finish(p.scale);
        let at = p.q.original(i) * k;
        out.distances[at..at + k].copy_from_slice(&d);
        out.indices[at..at + k].copy_from_slice(&ix);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::frame::{max_abs, power_scale, Frame};
    use super::points::{prepare, Screen};
    use faer::Mat;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// `n` points of a random `r`-dimensional subspace of `R^d` around `offset`, plus noise.
    fn subspace(n: usize, r: usize, d: usize, offset: f64, noise: f64, rng: &mut StdRng) -> Mat<f64> {
        let mut normal = || rng.sample::<f64, _>(rand_distr::StandardNormal);
        let f = Mat::from_fn(r, d, |_, _| normal());
        let z = Mat::from_fn(n, r, |_, _| normal());
        let e = Mat::from_fn(n, d, |_, _| noise * normal());
        Mat::from_fn(n, d, |i, j| offset + (0..r).map(|l| z[(i, l)] * f[(l, j)]).sum::<f64>() + e[(i, j)])
    }

    /// Gaussian points whose spectrum falls as a power (`σ_l² ∝ l^-1.5` in 256 dimensions,
    /// about 95 % of the spread in the 64 screened directions, as on images) take principal
    /// directions, and most queries stay open after the first walk: the second screen runs.
    /// Some first walks miss a true neighbour, so the second screen has work to do. Its result
    /// equals brute force whether the candidates are all held, held until a small budget or
    /// the default one is spent, or none held (every entry measured as it comes), on one data
    /// set and across two.
    #[test]
    fn the_second_screen_equals_brute_force_whatever_it_holds() {
        let mut rng = StdRng::seed_from_u64(47);
        let mut normal = || rng.sample::<f64, _>(rand_distr::StandardNormal);
        let (n, d) = (2400, 256);
        let x = Mat::from_fn(n, d, |_, j| normal() * ((j + 1) as f64).powf(-0.75));
        let k = 10;
        // Across two sets: enough reference points for principal directions (1024) and enough
        // queries that the open ones can number half of them.
        let (q, r) = (x.subrows(0, 1300), x.subrows(1300, 1100));
        let (brute_self, brute_cross) =
            (super::knn_brute_force(x.as_ref(), x.as_ref(), k, true), super::knn_brute_force(q, r, k, false));
        for (q, r, same, brute) in [(x.as_ref(), x.as_ref(), true, &brute_self), (q, r, false, &brute_cross)] {
            let p = prepare(q, r, same, k, super::Screens::Portable);
            assert!(p.deep.is_some(), "principal directions");
            let mut tops: Vec<super::Top> = (0..q.nrows()).map(|_| super::Top::new(p.keep)).collect();
            super::scan::scan(&mut tops, &p, same);
            let firsts = super::refine::first(&p, tops, k, same).0;
            let open = firsts.iter().filter(|q| q.is_open()).count();
            assert!(2 * open >= r.nrows(), "{open} open: the second screen would not run");
            let found = firsts.into_iter().map(|q| q.finish(p.scale).1);
            let wrong = found.enumerate().filter(|(i, ix)| ix.as_slice() != brute.indices(*i)).count();
            assert!(wrong > 0, "every first walk already exact: the second screen would have nothing to find");
        }
        let all = usize::MAX;
        let all_held = super::search_holding(x.as_ref(), x.as_ref(), k, true, super::Screens::Portable, all);
        let all_held_cross = super::search_holding(q, r, k, false, super::Screens::Portable, all);
        close(&all_held, &brute_self);
        close(&all_held_cross, &brute_cross);
        for hold in [0, 4096, super::refine::HOLD_BUDGET] {
            assert_eq!(
                super::search_holding(x.as_ref(), x.as_ref(), k, true, super::Screens::Portable, hold),
                all_held,
                "hold {hold}"
            );
            assert_eq!(
                super::search_holding(q, r, k, false, super::Screens::Portable, hold),
                all_held_cross,
                "hold {hold}, across"
            );
        }
    }

    /// The same neighbours as brute force (indices may differ only between equal distances),
    /// distances within the roundings of another summation order.
    fn close(a: &super::Neighbours, b: &super::Neighbours) {
        assert_eq!(a.len(), b.len());
        for i in 0..a.len() {
            for (c, ((x, y), (ix, iy))) in
                a.distances(i).iter().zip(b.distances(i)).zip(a.indices(i).iter().zip(b.indices(i))).enumerate()
            {
                assert!((x - y).abs() <= 1e-12 * y, "query {i}, neighbour {c}: {x} against {y}");
                assert_eq!(ix, iy, "query {i}, neighbour {c}");
            }
        }
    }

    /// The screen's dimension for one data set, without AMX.
    fn dim(x: &Mat<f64>) -> usize {
        prepare(x.as_ref(), x.as_ref(), true, 5, super::Screens::Portable).q.screen.dim()
    }

    /// Which screen the integration tests' data get: projected where the points span a
    /// low-dimensional subspace to what single precision resolves, on principal directions
    /// where most of the spread lies in a few and a sample says they pay, full otherwise;
    /// AMX tiles (where the machine has them) instead of principal directions or the full
    /// single-precision screen.
    #[test]
    fn the_screen_is_projected_only_where_the_points_span_few_dimensions() {
        let mut rng = StdRng::seed_from_u64(21);
        // A basis of m vectors: m coordinates on it and the distance off it.
        assert_eq!(dim(&subspace(700, 3, 60, 1e3, 0.0, &mut rng)), 3 + 1);
        let slightly = subspace(700, 3, 60, 1e3, 1e-6, &mut rng);
        let p = prepare(slightly.as_ref(), slightly.as_ref(), true, 5, super::Screens::Fastest);
        assert_eq!(p.q.screen.dim(), 3 + 1, "noise below the screen's resolution is left out");
        assert!(p.err.iter().all(|&e| e > 0.0));
        assert_eq!(dim(&subspace(700, 3, 60, 1e3, 1e-2, &mut rng)), 60, "resolved noise: all coordinates");
        // Point 5 is not sampled; it shifts the mean by 0.3 / 4000 only, below what the
        // sample resolves, so the basis holds the plane alone and point 5 lies off it.
        let mut outlier = subspace(4000, 2, 30, 0.0, 0.0, &mut rng);
        assert_eq!(dim(&outlier), 2 + 1);
        outlier[(5, 0)] += 0.3;
        assert_eq!(dim(&outlier), 30, "a point off the sampled plane: the projection is dropped");
        // Enough coordinates and points for principal directions: kept where most of the
        // spread lies in a few (noise of 1 % around a 3-dimensional subspace), not for white
        // noise, where they would leave nearly every point within reach.
        let (close, noise) =
            (subspace(2000, 3, 256, 0.0, 0.01, &mut rng), subspace(2000, 256, 256, 0.0, 0.0, &mut rng));
        assert_eq!(dim(&close), 64 + 1, "principal directions");
        assert_eq!(dim(&noise), 256, "white noise: all coordinates");
        let ends = super::frame::extremes(noise.as_ref(), None);
        let f = Frame::new(None, noise.as_ref(), power_scale(max_abs(noise.as_ref())), ends, super::Screens::Portable);
        assert!(super::frame::principal(noise.as_ref(), f.pre, &f.mean, 64, 128).is_none(), "not even tried");
        assert_eq!(dim(&subspace(300, 20, 40, 0.0, 0.0, &mut rng)), 40, "too many dimensions to pay");
        // Queries off the reference's subspace: the projection is dropped.
        let (x, q) = (subspace(400, 2, 30, 0.0, 0.0, &mut rng), subspace(50, 30, 30, 0.0, 0.0, &mut rng));
        assert_eq!(prepare(q.as_ref(), x.as_ref(), false, 5, super::Screens::Portable).q.screen.dim(), 30);
        // Points on a lattice of 256 levels: the integer screen by default where the machine
        // has VNNI and no AMX; never on the portable screens.
        let (lo, hi) = super::frame::extremes(close.as_ref(), None);
        let h = (hi - lo) / 255.0;
        let bytes = close.as_ref().map(|&v| lo + h * ((v - lo) / h).round());
        let fastest = prepare(bytes.as_ref(), bytes.as_ref(), true, 5, super::Screens::Fastest);
        let on_lattice = matches!(fastest.q.screen, Screen::I8(_));
        assert_eq!(on_lattice, super::lattice::fast() && !super::amx::available(), "the default screen");
        let portable = prepare(bytes.as_ref(), bytes.as_ref(), true, 5, super::Screens::Portable);
        assert!(!matches!(portable.q.screen, Screen::I8(_)));
        // On one set on a lattice the points are searched in an order of their own (the
        // caller's order elsewhere); a query set keeps the caller's order.
        let ordered = prepare(bytes.as_ref(), bytes.as_ref(), true, 5, super::Screens::Lattice);
        let order = ordered.q.order.as_ref().expect("an order on a lattice");
        assert!(order.iter().enumerate().any(|(p, &i)| p != i));
        assert!(portable.q.order.is_none());
        let cross = prepare(bytes.as_ref(), bytes.as_ref(), false, 5, super::Screens::Lattice);
        assert!(matches!(cross.q.screen, Screen::I8(_)) && cross.q.order.is_none());
        // With AMX: every coordinate in bfloat16, for white noise and the curved points alike.
        if super::amx::available() {
            for x in [&close, &noise] {
                let p = prepare(x.as_ref(), x.as_ref(), true, 5, super::Screens::Fastest);
                assert!(matches!(p.q.screen, Screen::Bf16(_)) && p.q.screen.dim() == 256);
            }
        }
    }
}
