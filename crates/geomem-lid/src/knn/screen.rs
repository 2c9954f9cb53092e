//! The screens of one tile of single-precision products: each query's sink ([`Sink`]: its
//! candidates or its walk) is offered the entries whose key may lie below its floor, tested
//! sixteen at a time, and takes those whose key does.
//!
//! The key of a pair is `|c_i|² + |c_j|² - 2 g_ij - 2u |c_i||c_j|`, with `g_ij` the
//! product's value of `c_i·c_j` and `u` a bound on its relative error (`|g - c_i·c_j| <=
//! u |c_i||c_j|`): so the key is a lower bound on the squared distance (up to the small
//! double-precision terms of [`super::points::Prepared::err`]), pair by pair.

use super::top::Sink;
use faer::MatRef;

/// Points `start ..` of a tile, as the screens see them: squared norms, half of each in
/// single precision, and the norms themselves.
#[derive(Clone, Copy)]
pub(super) struct Refs<'a> {
    pub(super) norms: &'a [f64],
    pub(super) halves: &'a [f32],
    pub(super) lens: &'a [f64],
    pub(super) lens32: &'a [f32],
    pub(super) start: usize,
}

/// Entries screened together before any is pushed: most runs hold nothing below the floor.
const RUN: usize = 16;

/// Room for the roundings of the single-precision screen, relative to `|q|² + max |r|²`:
/// the screen passes everything the double-precision test `key < floor` accepts, and a
/// little more (2⁻¹⁸ is far above the few roundings of 2⁻²⁴ it covers).
const SCREEN_ROOM: f64 = 1.0 / (1u64 << 18) as f64;

/// `x` minus `room`, in single precision: at most `x - room + ulp`, so a screen compared
/// with it errs only towards passing.
fn lowered(x: f64, room: f64) -> f32 {
    (x - room) as f32
}

/// The key of a pair: squared norms `qn`, `rn`, product `g`, norms `ql`, `rl`, and the
/// product's relative error bound `u`.
#[inline(always)]
pub(super) fn key(qn: f64, rn: f64, g: f32, ql: f64, rl: f64, u: f64) -> f64 {
    qn + rn - 2.0 * f64::from(g) - 2.0 * u * ql * rl
}

/// How a run of up to [`RUN`] entries is screened: bit `o` of the mask is set where
/// `g[o] - h[o] + s x[o] > t`.
trait Lanes: Copy {
    fn mask(self, g: &[f32], h: &[f32], x: &[f32], s: f32, t: f32) -> u32;
}

/// Any machine: a loop the compiler vectorises for the build's target.
#[derive(Clone, Copy)]
struct Portable;

impl Lanes for Portable {
    #[inline(always)]
    fn mask(self, g: &[f32], h: &[f32], x: &[f32], s: f32, t: f32) -> u32 {
        let each = g.iter().zip(h).zip(x).enumerate();
        each.fold(0u32, |m, (o, ((&g, &h), &x))| m | (u32::from(g - h + s * x > t) << o))
    }
}

/// AVX-512: sixteen lanes and a mask register, used only inside functions compiled with
/// `avx512f` on machines that have it.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    #[inline(always)]
    fn mask(self, g: &[f32], h: &[f32], x: &[f32], s: f32, t: f32) -> u32 {
        use std::arch::x86_64::{
            _mm512_fmadd_ps, _mm512_mask_cmp_ps_mask, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_sub_ps, _CMP_GT_OQ,
        };
        let n = g.len().min(h.len()).min(x.len()).min(RUN);
        let k = if n == RUN { u16::MAX } else { (1u16 << n) - 1 };
        // SAFETY: `Avx512` runs only where avx512f was detected ([`update_cols`],
        // [`update_rows`]); the masked loads read only the first `n` entries of each slice.
        unsafe {
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, g.as_ptr()), _mm512_maskz_loadu_ps(k, h.as_ptr()));
            let v = _mm512_fmadd_ps(_mm512_set1_ps(s), _mm512_maskz_loadu_ps(k, x.as_ptr()), d);
            u32::from(_mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(k, v, _mm512_set1_ps(t)))
        }
    }
}

/// AVX2 + FMA: sixteen lanes as two registers of eight, their comparisons gathered by
/// `movemask`; used only inside functions compiled with `avx2` and `fma` on machines that
/// have them. A run shorter than sixteen (the last of a tile) is screened by [`Portable`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    #[inline(always)]
    fn mask(self, g: &[f32], h: &[f32], x: &[f32], s: f32, t: f32) -> u32 {
        use std::arch::x86_64::{
            _mm256_cmp_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_movemask_ps, _mm256_set1_ps, _mm256_sub_ps,
            _CMP_GT_OQ,
        };
        if g.len() < RUN || h.len() < RUN || x.len() < RUN {
            return Portable.mask(g, h, x, s, t);
        }
        // SAFETY: `Avx2` runs only where avx2 and fma were detected ([`update_cols`],
        // [`update_rows`]); each slice holds at least sixteen entries.
        unsafe {
            let (sv, tv) = (_mm256_set1_ps(s), _mm256_set1_ps(t));
            let (g, h, x) = (g.as_ptr(), h.as_ptr(), x.as_ptr());
            let lo = _mm256_fmadd_ps(sv, _mm256_loadu_ps(x), _mm256_sub_ps(_mm256_loadu_ps(g), _mm256_loadu_ps(h)));
            let (g8, h8, x8) = (g.add(8), h.add(8), x.add(8));
            let hi = _mm256_fmadd_ps(sv, _mm256_loadu_ps(x8), _mm256_sub_ps(_mm256_loadu_ps(g8), _mm256_loadu_ps(h8)));
            let (ml, mh) = (_mm256_cmp_ps::<_CMP_GT_OQ>(lo, tv), _mm256_cmp_ps::<_CMP_GT_OQ>(hi, tv));
            _mm256_movemask_ps(ml) as u32 | ((_mm256_movemask_ps(mh) as u32) << 8)
        }
    }
}

/// Whether this machine screens with [`Avx512`].
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Whether this machine screens with [`Avx2`].
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// One screen of a tile (columns or rows as the queries), run on any [`Lanes`].
trait Pass: Sized {
    fn run(self, lanes: impl Lanes);
}

/// `pass` on the widest lanes of this machine: [`Avx512`], else [`Avx2`], else [`Portable`].
fn widest(pass: impl Pass) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: avx512f was detected.
        return unsafe { on_avx512(pass) };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: avx2 and fma were detected.
        return unsafe { on_avx2(pass) };
    }
    pass.run(Portable);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn on_avx512(pass: impl Pass) {
    pass.run(Avx512);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn on_avx2(pass: impl Pass) {
    pass.run(Avx2);
}

/// Queries `q` (column `c` of the tile is query `c`) against the tile's rows, reference
/// points `r` (the largest squared norm of all at most `rmax`); `u` the product's relative
/// error. `skip` (a diagonal tile, offset 0) leaves out the query itself.
///
/// Runs of entries are screened in single precision as `g - rn/2 + u |q||r| > (qn -
/// floor)/2` (sixteen at a time with AVX-512 or AVX2 + FMA, else as wide as the build's target allows); a run that
/// passes pushes its entries' double-precision keys, which the sink takes only below its
/// floor.
pub(super) fn update_cols<S: Sink>(
    tops: &mut [S],
    g: MatRef<'_, f32>,
    q: Refs<'_>,
    r: Refs<'_>,
    rmax: f64,
    u: f64,
    skip: Option<usize>,
) {
    widest(Cols { tops, g, q, r, rmax, u, skip });
}

struct Cols<'a, S> {
    tops: &'a mut [S],
    g: MatRef<'a, f32>,
    q: Refs<'a>,
    r: Refs<'a>,
    rmax: f64,
    u: f64,
    skip: Option<usize>,
}

impl<S: Sink> Pass for Cols<'_, S> {
    #[inline(always)]
    fn run(self, lanes: impl Lanes) {
        let Cols { tops, g, q, r, rmax, u, skip } = self;
        let n = g.nrows();
        let (rn, half, rl, rl32) = (&r.norms[..n], &r.halves[..n], &r.lens[..n], &r.lens32[..n]);
        let (mut keys, mut scratch) = (Vec::new(), Vec::new());
        for (c, top) in tops.iter_mut().enumerate() {
            let col = g.col(c).try_as_col_major().expect("a tile has contiguous columns").as_slice();
            let (base, ql) = (q.norms[c], q.lens[c]);
            let key = |j: usize, g: f32| key(base, rn[j], g, ql, rl[j], u);
            if top.fresh() {
                keys.resize(n, 0.0);
                for j in 0..n {
                    keys[j] = key(j, col[j]);
                }
                // On a diagonal tile (offset `s`) the query itself is entry `c - s`.
                let me = skip.and_then(|s| c.checked_sub(s));
                top.fill(&keys, r.start, me, &mut scratch);
                continue;
            }
            let room = SCREEN_ROOM * (base + rmax);
            let s = (u * ql) as f32;
            let mut t = lowered(0.5 * (base - top.floor()), room);
            let runs = col.chunks(RUN).zip(half.chunks(RUN)).zip(rl32.chunks(RUN));
            for (b, ((gc, hc), xc)) in runs.enumerate() {
                let mut mask = lanes.mask(gc, hc, xc, s, t);
                if mask != 0 {
                    while mask != 0 {
                        let o = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let j = b * RUN + o;
                        if skip.is_none_or(|s| j + s != c) {
                            top.push(key(j, gc[o]), r.start + j);
                        }
                    }
                    t = lowered(0.5 * (base - top.floor()), room);
                }
            }
        }
    }
}

/// The tile's rows as queries `q` against its columns, reference points `r`; `norm_sum`
/// bounds `|q|² + |r|²`. Screened like [`update_cols`], as `g - (qn - floor)/2 + u |q||r| >
/// rn/2` down each column in runs of rows.
pub(super) fn update_rows<S: Sink>(
    tops: &mut [S],
    g: MatRef<'_, f32>,
    q: Refs<'_>,
    r: Refs<'_>,
    norm_sum: f64,
    u: f64,
) {
    widest(Rows { tops, g, q, r, room: SCREEN_ROOM * norm_sum, u });
}

struct Rows<'a, S> {
    tops: &'a mut [S],
    g: MatRef<'a, f32>,
    q: Refs<'a>,
    r: Refs<'a>,
    room: f64,
    u: f64,
}

impl<S: Sink> Pass for Rows<'_, S> {
    #[inline(always)]
    fn run(self, lanes: impl Lanes) {
        let Rows { tops, g, q, r, room, u } = self;
        let m = g.nrows();
        let (qn, ql) = (&q.norms[..m], &q.lens[..m]);
        // Half the room on each side of the comparison.
        let w_of = |q: f64, t: &S| lowered(0.5 * (q - t.floor()), 0.5 * room);
        let mut w: Vec<f32> = tops.iter().zip(qn).map(|(t, &q)| w_of(q, t)).collect();
        let a: Vec<f32> = ql.iter().map(|&l| (u * l) as f32).collect();
        for c in 0..g.ncols() {
            let col = g.col(c).try_as_col_major().expect("a tile has contiguous columns").as_slice();
            let (rc, t) = (r.norms[c], lowered(0.5 * r.norms[c], 0.5 * room));
            for (b, ((gc, wc), ac)) in col.chunks(RUN).zip(w.chunks_mut(RUN)).zip(a.chunks(RUN)).enumerate() {
                let mut mask = lanes.mask(gc, wc, ac, r.lens32[c], t);
                while mask != 0 {
                    let o = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let i = b * RUN + o;
                    tops[i].push(key(qn[i], rc, gc[o], ql[i], r.lens[c], u), r.start + c);
                    wc[o] = w_of(qn[i], &tops[i]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::top::Top;
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

    /// Points with squared norms `norms`, as a [`Refs`] borrows them.
    struct Owned {
        norms: Vec<f64>,
        halves: Vec<f32>,
        lens: Vec<f64>,
        lens32: Vec<f32>,
    }

    impl Owned {
        fn new(norms: &[f64]) -> Self {
            let lens: Vec<f64> = norms.iter().map(|r| r.sqrt()).collect();
            Self {
                norms: norms.to_vec(),
                halves: norms.iter().map(|&r| (0.5 * r) as f32).collect(),
                lens32: lens.iter().map(|&l| l as f32).collect(),
                lens,
            }
        }

        fn refs(&self, start: usize) -> Refs<'_> {
            Refs { norms: &self.norms, halves: &self.halves, lens: &self.lens, lens32: &self.lens32, start }
        }
    }

    /// A tile whose entries put each key within a few single-precision roundings of each
    /// top's floor, on both sides (`qn`: the columns' squared norms, `rn`: the rows').
    fn tile_near_floors(
        qn: &[f64],
        rn: &[f64],
        u: f64,
        floors: impl Fn(usize, usize) -> f64,
        rng: &mut StdRng,
    ) -> Vec<f32> {
        let mut g = vec![0f32; rn.len() * qn.len()];
        for c in 0..qn.len() {
            for o in 0..rn.len() {
                let rel = [-1e-6, -1e-7, -3e-8, 0.0, 3e-8, 1e-7, 1e-6, 0.3][rng.random_range(0..8)];
                let v = floors(o, c) * (1.0 + rel);
                g[c * rn.len() + o] = (0.5 * (qn[c] + rn[o] - 2.0 * u * (qn[c] * rn[o]).sqrt() - v)) as f32;
            }
        }
        g
    }

    fn same_state(a: &Top, b: &Top) {
        assert_eq!(a.items, b.items);
        assert_eq!(a.floor.to_bits(), b.floor.to_bits());
    }

    fn tops(floors: &[f64], seed: u64, keep: usize) -> Vec<Top> {
        floors.iter().map(|&f| full_top(keep, f, &mut StdRng::seed_from_u64(seed))).collect()
    }

    /// The single-precision screens, portable, AVX2 and AVX-512 alike, never reject an entry that
    /// the double-precision test of [`Top::push`] would take: the tops end exactly as when
    /// every key is pushed.
    #[test]
    fn screens_reject_nothing_the_exact_test_takes() {
        let mut rng = StdRng::seed_from_u64(5);
        let (nr, nc, keep) = (37, 29, 6);
        let qn: Vec<f64> = (0..nc).map(|_| rng.random_range(0.2..1.0)).collect();
        let rn: Vec<f64> = (0..nr).map(|_| rng.random_range(0.2..1.0)).collect();
        let floor_c: Vec<f64> = (0..nc).map(|_| rng.random_range(0.1..0.8)).collect();
        let floor_r: Vec<f64> = (0..nr).map(|_| rng.random_range(0.1..0.8)).collect();
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (qo, ro) = (Owned::new(&qn), Owned::new(&rn));
        let (qr, rr) = (qo.refs(200), ro.refs(100));
        for u in [0.0, 1e-6, 1.0 / 128.0] {
            let key = |a: f64, b: f64, g: f32| key(a, b, g, a.sqrt(), b.sqrt(), u);
            // Columns as queries.
            let g = tile_near_floors(&qn, &rn, u, |_, c| floor_c[c], &mut rng);
            let gm = MatRef::from_column_major_slice(&g, nr, nc);
            let mut all = tops(&floor_c, 1, keep);
            for (c, top) in all.iter_mut().enumerate() {
                (0..nr).for_each(|o| top.push(key(qn[c], rn[o], gm[(o, c)]), 100 + o));
            }
            assert!(all.iter().any(|t| t.items.iter().any(|&(_, j)| j >= 100)), "some entries were taken");
            let mut screened = tops(&floor_c, 1, keep);
            update_cols(&mut screened, gm, qr, rr, max(&rn), u, None);
            screened.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
            let mut portable = tops(&floor_c, 1, keep);
            let cols = Cols { tops: &mut portable, g: gm, q: qr, r: rr, rmax: max(&rn), u, skip: None };
            cols.run(Portable);
            portable.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                let mut wide = tops(&floor_c, 1, keep);
                let cols = Cols { tops: &mut wide, g: gm, q: qr, r: rr, rmax: max(&rn), u, skip: None };
                // SAFETY: avx2 and fma were detected.
                unsafe { on_avx2(cols) };
                wide.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
            }
            // Rows as queries (the tile's rows are the queries, its columns the reference).
            let g = tile_near_floors(&qn, &rn, u, |o, _| floor_r[o], &mut rng);
            let gm = MatRef::from_column_major_slice(&g, nr, nc);
            let mut all = tops(&floor_r, 2, keep);
            for c in 0..nc {
                all.iter_mut().enumerate().for_each(|(o, top)| top.push(key(rn[o], qn[c], gm[(o, c)]), 200 + c));
            }
            assert!(all.iter().any(|t| t.items.iter().any(|&(_, j)| j >= 200)), "some entries were taken");
            let mut screened = tops(&floor_r, 2, keep);
            update_rows(&mut screened, gm, rr, qr, max(&rn) + max(&qn), u);
            screened.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
            let mut portable = tops(&floor_r, 2, keep);
            let rows = Rows { tops: &mut portable, g: gm, q: rr, r: qr, room: SCREEN_ROOM * (max(&rn) + max(&qn)), u };
            rows.run(Portable);
            portable.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                let mut wide = tops(&floor_r, 2, keep);
                let room = SCREEN_ROOM * (max(&rn) + max(&qn));
                // SAFETY: avx2 and fma were detected.
                unsafe { on_avx2(Rows { tops: &mut wide, g: gm, q: rr, r: qr, room, u }) };
                wide.iter().zip(&all).for_each(|(a, b)| same_state(a, b));
            }
        }
    }
}
