//! Exact k nearest neighbours: a single-precision screen by batched GEMM, then exact
//! double-precision distances for the few candidates that bounds cannot rule out.
//!
//! * **Coordinates** ([`frame`], [`points`]). The screen works in centred coordinates (the
//!   reference's mean subtracted, so that single precision resolves the data's spread however
//!   far they lie from the origin), scaled by powers of two, and on a basis where one pays:
//!   the subspace the reference spans where it spans a low-dimensional one (a linear manifold
//!   of `geomem-data`, say), else, with enough points and coordinates, its leading principal
//!   directions (a randomised range finder on a sample: 128 screened and up to 384 in all),
//!   kept where a sample of queries shows that they pay (images, curved manifolds; not white
//!   noise). On a basis of `m` directions the screen holds the `m` coordinates and, as
//!   coordinate `m + 1`, each point's distance `ρ` off the basis: the screened value
//!   `ľ = |P q - P r|² + (ρ_q - ρ_r)²` is a lower bound on the squared distance.
//! * **Screen** ([`scan`], [`screen`], [`top`]). Squared distances `|q|² + |r|² - 2 q·r`
//!   come from single-precision matrix products in tiles of at most 256 × 256 points, each
//!   tile screened while it is still in the core's cache: each query keeps its smallest
//!   screened values (a few more than `k` without principal directions, as many as nine
//!   sampled queries in ten need with them) and a floor below which nothing it dropped lies.
//!   On one data set (`knn_self`) only the tiles of the lower block triangle are multiplied,
//!   each updating the points of both its blocks: half the products of a full search.
//! * **Refinement** ([`refine`], [`exact`]). Each query walks its candidates in ascending
//!   screened value, keeping the `k` smallest exact distances `√Σ(q - r)²` met so far; a
//!   candidate whose lower bound lies beyond the `k`-th is never measured, and the walk stops
//!   at the first whose screened value does. On principal directions each candidate is first
//!   bounded on the further principal coordinates, 64 at a time (partial distances plus the
//!   distance off the directions read so far), which rules out most of them at a fraction of
//!   an exact distance's reads. A query whose candidates run out before its `k`-th is
//!   certified (near ties, duplicates, a loose screen) is rescanned against the whole
//!   reference.
//!
//! Every bound carries the rounding errors that could make it too high: an `f32` dot product
//! of length `m` errs by at most `γ_m |q||r|` with `γ_m ≈ (m + 2)·2⁻²⁴` whatever the
//! summation order, and the double-precision projections by a small multiple of `d·2⁻⁵³`. So
//! the result equals a brute-force double-precision search (`tests/knn.rs`), ties broken by
//! the smaller index.

mod amx;
mod exact;
mod frame;
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
    check_points("reference points", reference, 1)?;
    check_points("query points", queries, 1)?;
    check_width("query points", queries.ncols(), reference.ncols())?;
    param("k", k, k >= 1 && k <= reference.nrows(), "must lie in 1 ..= number of reference points")?;
    Ok(search(queries, reference, k, false))
}

/// The `k` nearest other points of every row of `data`: point `i` is not its own neighbour
/// (a duplicate of it at another index is, at distance 0).
///
/// # Errors
/// [`crate::LidError::Data`] for empty or non-finite data;
/// [`crate::LidError::InvalidParameter`] unless `1 <= k < data.nrows()`.
pub fn knn_self(data: MatRef<'_, f64>, k: usize) -> Result<Neighbours> {
    check_points("data points", data, 2)?;
    param("k", k, k >= 1 && k < data.nrows(), "must lie in 1 .. number of points")?;
    Ok(search(data, data, k, true))
}

fn search(q: MatRef<'_, f64>, r: MatRef<'_, f64>, k: usize, same: bool) -> Neighbours {
    let p = points::prepare(q, r, same, k);
    let mut tops: Vec<Top> = (0..q.nrows()).map(|_| Top::new(p.keep)).collect();
    scan::scan(&mut tops, &p, same);
    let (mut queries, order) = refine::first(&p, tops, k, same);
    let open = queries.iter().filter(|q| q.is_open()).count();
    if 2 * open < p.reference().norms.len() {
        refine::rescan(&p, &mut queries, same);
    } else {
        let mut tops: Vec<Top> = queries.iter().map(|q| Top::collecting(q.reach())).collect();
        scan::scan(&mut tops, &p, same);
        queries = refine::second(&p, queries, tops, &order);
    }
    let mut out = Neighbours { k, distances: Vec::with_capacity(q.nrows() * k), indices: Vec::new() };
    out.indices.reserve(q.nrows() * k);
    for (d, ix) in queries.into_iter().map(|q| q.finish(p.scale)) {
        out.distances.extend(d);
        out.indices.extend(ix);
    }
    out
}
