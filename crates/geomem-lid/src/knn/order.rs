//! An order of one data set's points in which near points lie together, so that a tile of
//! the screen holds many of its points' nearest neighbours (their candidate lists fill with
//! near candidates from the first tiles on, and later tiles offer them little) and
//! consecutive walks read the same points, still in cache. Only the search's speed depends
//! on it: every point is still screened against every other.

use super::frame::{leading, sampled, Frame};
use faer::{Mat, MatRef};
use rayon::prelude::*;

/// Directions the points are ordered along.
const AXES: usize = 8;
/// Points sampled for the directions.
const SAMPLE: usize = 256;
/// Points of a cell, below which it is not split.
const CELL: usize = 32;

/// The rows of `x` in an order where near ones lie together: the cells of a k-d tree, in
/// tree order, on their coordinates along the [`AXES`] leading principal directions of a
/// sample of [`SAMPLE`] points (centred on the frame's mean); each cell in ascending index.
/// Deterministic. The caller's order where the directions cannot be found.
pub(super) fn spatial(x: MatRef<'_, f64>, frame: &Frame) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.nrows()).collect();
    let at = sampled(x, frame.pre, &frame.mean, SAMPLE);
    let Some((q, _, u)) = leading(at.transpose(), AXES.min(at.nrows()).min(at.ncols())) else {
        return idx;
    };
    // Neither the mean nor the power of two changes the order along a direction.
    let coords = project(x, (q * u).as_ref());
    split(&mut idx, coords.as_ref());
    idx
}

/// The coordinates of the rows of `x` along the columns of `dirs` (`n × m`), in parallel.
/// Contiguous rows are read one at a time, each against all directions at once (one pass
/// over the points); other layouts go to a matrix product.
fn project(x: MatRef<'_, f64>, dirs: MatRef<'_, f64>) -> Mat<f64> {
    let (n, m) = (x.nrows(), dirs.ncols());
    if x.col_stride() != 1 || m != AXES {
        return x * dirs;
    }
    // The directions interleaved: entry `(l, a)` at `AXES l + a`.
    let w: Vec<f64> = (0..dirs.nrows()).flat_map(|l| (0..AXES).map(move |a| dirs[(l, a)])).collect();
    let mut out = vec![[0.0f64; AXES]; n];
    out.par_chunks_mut(AXES).enumerate().for_each(|(b, o)| {
        let mut rows: [&[f64]; AXES] = [&[]; AXES];
        for (t, r) in rows.iter_mut().enumerate().take(o.len()) {
            *r = x.row(AXES * b + t).try_as_row_major().expect("contiguous rows").as_slice();
        }
        along(&rows[..o.len()], &w, o);
    });
    Mat::from_fn(n, m, |i, a| out[i][a])
}

/// The coordinates of up to eight points (`rows`) along the interleaved directions `w`, into
/// `out`: with AVX-512 where the machine has it, else a portable loop (the two may round
/// differently, which changes only the order's cells, never the search's result).
fn along(rows: &[&[f64]], w: &[f64], out: &mut [[f64; AXES]]) {
    #[cfg(target_arch = "x86_64")]
    if rows.len() == AXES && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was detected.
        return unsafe { along_avx512(rows, w, out) };
    }
    for (row, o) in rows.iter().zip(out) {
        for (&v, wl) in row.iter().zip(w.chunks_exact(AXES)) {
            for a in 0..AXES {
                o[a] += v * wl[a];
            }
        }
    }
}

/// [`along`] for eight points at once: each coordinate's eight directions loaded once and
/// multiplied into eight registers, one per point.
///
/// # Safety
/// avx512f available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn along_avx512(rows: &[&[f64]], w: &[f64], out: &mut [[f64; AXES]]) {
    use std::arch::x86_64::{_mm512_fmadd_pd, _mm512_loadu_pd, _mm512_set1_pd, _mm512_setzero_pd, _mm512_storeu_pd};
    let d = rows.iter().map(|r| r.len()).min().unwrap_or(0).min(w.len() / AXES);
    let mut acc = [_mm512_setzero_pd(); AXES];
    for l in 0..d {
        // SAFETY: `l < w.len() / AXES`, so entries `AXES l ..` of `w` exist.
        let wl = unsafe { _mm512_loadu_pd(w.as_ptr().add(AXES * l)) };
        for (a, row) in acc.iter_mut().zip(rows) {
            *a = _mm512_fmadd_pd(_mm512_set1_pd(row[l]), wl, *a);
        }
    }
    for (a, o) in acc.iter().zip(out) {
        // SAFETY: eight doubles into eight.
        unsafe { _mm512_storeu_pd(o.as_mut_ptr(), *a) };
    }
}

/// Orders the points `idx` (rows of `coords`) into the cells of a k-d tree: halves at the
/// median of the coordinate that spreads most (ties by index), each half in turn.
fn split(idx: &mut [usize], coords: MatRef<'_, f64>) {
    if idx.len() <= CELL {
        idx.sort_unstable();
        return;
    }
    let spread = |a: usize| {
        let (lo, hi) = idx.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
            let v = coords[(i, a)];
            (lo.min(v), hi.max(v))
        });
        hi - lo
    };
    let axis = (0..coords.ncols())
        .map(|a| (spread(a), a))
        .fold((f64::NEG_INFINITY, 0), |m, s| if s.0 > m.0 { s } else { m })
        .1;
    let mid = idx.len() / 2;
    idx.select_nth_unstable_by(mid, |&i, &j| coords[(i, axis)].total_cmp(&coords[(j, axis)]).then(i.cmp(&j)));
    let (lo, hi) = idx.split_at_mut(mid);
    rayon::join(|| split(lo, coords), || split(hi, coords));
}

#[cfg(test)]
mod tests {
    use super::super::frame::{extremes, power_scale};
    use super::super::Screens;
    use super::*;

    /// Every point once, the same order every time, and near points near each other in it:
    /// points of 100 tight clusters, interleaved in the caller's order, mostly find their
    /// nearest neighbour within a cell's length of them in the order (in the caller's order, few).
    #[test]
    fn the_order_is_a_permutation_that_keeps_near_points_together() {
        let (n, d, clusters) = (3000, 20, 100);
        let mut state = 7u64;
        let mut unit = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let centres: Vec<f64> = (0..clusters * d).map(|_| 10.0 * unit()).collect();
        let x = Mat::from_fn(n, d, |i, j| centres[(i % clusters) * d + j] + 0.01 * unit());
        let (lo, hi) = extremes(x.as_ref(), None);
        let frame = Frame::new(None, x.as_ref(), power_scale(lo.abs().max(hi.abs())), (lo, hi), Screens::Portable);
        let order = spatial(x.as_ref(), &frame);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_eq!(order, spatial(x.as_ref(), &frame));
        // Share of points whose nearest neighbour lies within `CELL` places of them.
        let close = |order: &[usize]| {
            let mut at = vec![0; n];
            order.iter().enumerate().for_each(|(p, &i)| at[i] = p);
            let dist = |a: usize, b: usize| (0..d).map(|j| (x[(a, j)] - x[(b, j)]).powi(2)).sum::<f64>();
            let nearest =
                |i: usize| (0..n).filter(|&j| j != i).min_by(|&a, &b| dist(i, a).total_cmp(&dist(i, b))).unwrap();
            (0..n).filter(|&i| at[i].abs_diff(at[nearest(i)]) <= CELL).count() as f64 / n as f64
        };
        let caller: Vec<usize> = (0..n).collect();
        assert!(close(&caller) < 0.05, "the caller's order interleaves the clusters");
        // 0.84 with these points.
        assert!(close(&order) > 0.75, "near points apart in the order: {}", close(&order));
    }

    /// The projections of contiguous rows, eight points at a time (AVX-512 where the machine
    /// has it), are the matrix product's, with a row count off every multiple of eight.
    #[test]
    fn row_projections_are_the_product() {
        let (n, d) = (45, 37);
        let x = Mat::from_fn(n, d, |i, j| (((i * 31 + j * 17) % 23) as f64 - 11.0) / 7.0);
        let dirs = Mat::from_fn(d, AXES, |l, a| (((l * 7 + a * 5) % 13) as f64 - 6.0) / 13.0);
        let rows = x.transpose().to_owned();
        let got = project(rows.transpose(), dirs.as_ref());
        let want = &x * &dirs;
        for i in 0..n {
            for a in 0..AXES {
                assert!((got[(i, a)] - want[(i, a)]).abs() <= 1e-12 * (1.0 + want[(i, a)].abs()), "({i}, {a})");
            }
        }
    }
}
