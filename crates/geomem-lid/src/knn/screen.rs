//! The screens of one tile of single-precision products: each query's candidates
//! ([`Top`]) take the entries below their floor, tested eight or sixteen at a time.

use super::top::Top;
use faer::MatRef;

/// Reference points `start ..` of a tile, as the screens see them.
#[derive(Clone, Copy)]
pub(super) struct Refs<'a> {
    pub(super) norms: &'a [f64],
    pub(super) halves: &'a [f32],
    pub(super) start: usize,
}

/// Entries screened together before any is pushed: most runs hold nothing below the floor.
const RUN: usize = 16;

/// Room for the roundings of the single-precision screen, relative to `|q|² + max |r|²`:
/// the screen passes everything the double-precision test `|q|² + |r|² - 2g < floor`
/// accepts, and a little more (2⁻¹⁸ is far above the few roundings of 2⁻²⁴ it covers).
const SCREEN_ROOM: f64 = 1.0 / (1u64 << 18) as f64;

/// `x` minus `room`, in single precision: at most `x - room + ulp`, so a screen compared
/// with it errs only towards passing.
fn lowered(x: f64, room: f64) -> f32 {
    (x - room) as f32
}

/// Query `c` of `tops` (column `c` of the tile, squared norm `qn[c]`) against the tile's
/// rows: reference points `refs.start + o` with squared norms `refs.norms[o]` (the largest
/// of all at most `rmax`). `skip` (a diagonal tile, offset 0) leaves out the query itself.
///
/// Runs of entries are screened in single precision as `g - rn/2 > (qn - floor)/2` (eight
/// or sixteen at a time: `pulp` compiles the loop for the machine's SIMD width); a run
/// that passes pushes its entries' double-precision `qn + rn - 2g`, which [`Top`] keeps
/// only below its floor.
pub(super) fn update_cols(
    tops: &mut [Top],
    g: MatRef<'_, f32>,
    qn: &[f64],
    refs: Refs<'_>,
    rmax: f64,
    skip: Option<usize>,
) {
    let n = g.nrows();
    let (rn, half) = (&refs.norms[..n], &refs.halves[..n]);
    pulp::Arch::new().dispatch(Cols { tops, g, qn, rn, half, rmax, row0: refs.start, skip });
}

struct Cols<'a> {
    tops: &'a mut [Top],
    g: MatRef<'a, f32>,
    qn: &'a [f64],
    rn: &'a [f64],
    half: &'a [f32],
    rmax: f64,
    row0: usize,
    skip: Option<usize>,
}

impl pulp::WithSimd for Cols<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Cols { tops, g, qn, rn, half, rmax, row0, skip } = self;
        let mut scratch = Vec::new();
        for (c, top) in tops.iter_mut().enumerate() {
            let col = g.col(c).try_as_col_major().expect("a tile has contiguous columns").as_slice();
            let base = qn[c];
            if top.fresh() {
                let all = col.iter().enumerate().filter(|&(j, _)| skip.is_none_or(|s| j + s != c));
                top.fill(all.map(|(j, &g)| (base + rn[j] - 2.0 * f64::from(g), row0 + j)), &mut scratch);
                continue;
            }
            let room = SCREEN_ROOM * (base + rmax);
            let mut t = lowered(0.5 * (base - top.floor), room);
            for (b, (gc, hc)) in col.chunks(RUN).zip(half.chunks(RUN)).enumerate() {
                let mut mask =
                    gc.iter().zip(hc).enumerate().fold(0u32, |m, (o, (&g, &h))| m | (u32::from(g - h > t) << o));
                if mask != 0 {
                    while mask != 0 {
                        let o = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let j = b * RUN + o;
                        if skip.is_none_or(|s| j + s != c) {
                            top.push(base + rn[j] - 2.0 * f64::from(gc[o]), row0 + j);
                        }
                    }
                    t = lowered(0.5 * (base - top.floor), room);
                }
            }
        }
    }
}

/// The tile's rows as queries (`tops`, squared norms `qn`) against its columns: reference
/// points `refs.start + c` with squared norms `rn[c]`; `norm_sum` bounds `|q|² + |r|²`.
/// Screened like [`update_cols`], as `g - (qn - floor)/2 > rn[c]/2` down each column in
/// runs of rows.
pub(super) fn update_rows(tops: &mut [Top], g: MatRef<'_, f32>, qn: &[f64], refs: Refs<'_>, norm_sum: f64) {
    let qn = &qn[..g.nrows()];
    let room = SCREEN_ROOM * norm_sum;
    pulp::Arch::new().dispatch(Rows { tops, g, qn, rn: refs.norms, room, col0: refs.start });
}

struct Rows<'a> {
    tops: &'a mut [Top],
    g: MatRef<'a, f32>,
    qn: &'a [f64],
    rn: &'a [f64],
    room: f64,
    col0: usize,
}

impl pulp::WithSimd for Rows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Rows { tops, g, qn, rn, room, col0 } = self;
        // Half the room on each side of the comparison.
        let w_of = |q: f64, t: &Top| lowered(0.5 * (q - t.floor), 0.5 * room);
        let mut w: Vec<f32> = tops.iter().zip(qn).map(|(t, &q)| w_of(q, t)).collect();
        for (c, &rc) in rn[..g.ncols()].iter().enumerate() {
            let col = g.col(c).try_as_col_major().expect("a tile has contiguous columns").as_slice();
            let t = lowered(0.5 * rc, 0.5 * room);
            for (b, (gc, wc)) in col.chunks(RUN).zip(w.chunks_mut(RUN)).enumerate() {
                let mut mask =
                    gc.iter().zip(wc.iter()).enumerate().fold(0u32, |m, (o, (&g, &w))| m | (u32::from(g - w > t) << o));
                while mask != 0 {
                    let o = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let i = b * RUN + o;
                    tops[i].push(qn[i] + rc - 2.0 * f64::from(gc[o]), col0 + c);
                    wc[o] = w_of(qn[i], &tops[i]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A top holding `keep` values below `floor`, cut back once so that its floor is `floor`.
    fn full_top(keep: usize, floor: f64, rng: &mut StdRng) -> Top {
        let mut t = Top::new(keep);
        for j in 0..keep {
            t.push(floor * rng.random_range(0.5..1.0), usize::MAX - j);
        }
        while t.floor.is_infinite() {
            t.push(floor, 0);
        }
        assert_eq!(t.floor, floor);
        t
    }

    /// A tile whose entries put `qn + rn - 2g` within a few single-precision roundings of
    /// each top's floor, on both sides.
    fn tile_near_floors(qn: &[f64], rn: &[f64], floors: impl Fn(usize, usize) -> f64, rng: &mut StdRng) -> Vec<f32> {
        let mut g = vec![0f32; rn.len() * qn.len()];
        for c in 0..qn.len() {
            for o in 0..rn.len() {
                let rel = [-1e-6, -1e-7, -3e-8, 0.0, 3e-8, 1e-7, 1e-6, 0.3][rng.random_range(0..8)];
                let v = floors(o, c) * (1.0 + rel);
                g[c * rn.len() + o] = (0.5 * (qn[c] + rn[o] - v)) as f32;
            }
        }
        g
    }

    fn same_state(a: &Top, b: &Top) {
        assert_eq!(a.items, b.items);
        assert_eq!(a.floor.to_bits(), b.floor.to_bits());
    }

    /// The single-precision screens never reject an entry that the double-precision test
    /// of [`Top::push`] would take: the tops end exactly as when every entry is pushed.
    #[test]
    fn screens_reject_nothing_the_exact_test_takes() {
        let mut rng = StdRng::seed_from_u64(5);
        let (nr, nc, keep) = (37, 29, 6);
        let qn: Vec<f64> = (0..nc).map(|_| rng.random_range(0.2..1.0)).collect();
        let rn: Vec<f64> = (0..nr).map(|_| rng.random_range(0.2..1.0)).collect();
        let floor_c: Vec<f64> = (0..nc).map(|_| rng.random_range(0.1..0.8)).collect();
        let floor_r: Vec<f64> = (0..nr).map(|_| rng.random_range(0.1..0.8)).collect();
        // Columns as queries.
        let g = tile_near_floors(&qn, &rn, |_, c| floor_c[c], &mut rng);
        let gm = MatRef::from_column_major_slice(&g, nr, nc);
        let mut screened: Vec<Top> =
            floor_c.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(1))).collect();
        let mut all: Vec<Top> = floor_c.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(1))).collect();
        let halves = |v: &[f64]| v.iter().map(|&r| (0.5 * r) as f32).collect::<Vec<f32>>();
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let rh = halves(&rn);
        update_cols(&mut screened, gm, &qn, Refs { norms: &rn, halves: &rh, start: 100 }, max(&rn), None);
        for (c, top) in all.iter_mut().enumerate() {
            for o in 0..nr {
                top.push(qn[c] + rn[o] - 2.0 * f64::from(gm[(o, c)]), 100 + o);
            }
        }
        screened.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
        assert!(all.iter().any(|t| t.items.iter().any(|&(_, j)| j >= 100)), "some entries were taken");
        // Rows as queries (the tile's rows are the queries, its columns the reference).
        let g = tile_near_floors(&qn, &rn, |o, _| floor_r[o], &mut rng);
        let gm = MatRef::from_column_major_slice(&g, nr, nc);
        let mut screened: Vec<Top> =
            floor_r.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(2))).collect();
        let mut all: Vec<Top> = floor_r.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(2))).collect();
        let qh = halves(&qn);
        update_rows(&mut screened, gm, &rn, Refs { norms: &qn, halves: &qh, start: 200 }, max(&rn) + max(&qn));
        for c in 0..nc {
            for (o, top) in all.iter_mut().enumerate() {
                top.push(rn[o] + qn[c] - 2.0 * f64::from(gm[(o, c)]), 200 + c);
            }
        }
        screened.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
        assert!(all.iter().any(|t| t.items.iter().any(|&(_, j)| j >= 200)), "some entries were taken");
    }
}
