//! The exact screen of points that lie on a lattice of 256 levels (8-bit images, scaled by
//! any factor and offset, provided both end levels occur: the levels run from the smallest
//! coordinate to the largest in 255 steps): products of integers, by AVX-512 VNNI where the
//! machine has it.
//!
//! Where every coordinate of every point is `lo + h q` with `q` an integer in `0 ..= 255`,
//! up to an error `e` (a sample of points is checked coordinate by coordinate, `|e| <= h /
//! 1024`, then every point as a whole, `|x - L| <= √d h / 1024`; Fashion-MNIST as `byte /
//! 255` errs by the rounding of the division alone), the screen works on the lattice points
//! `L = h s`, `s = q - 128` a signed byte. Their products `L_a·L_b = h² Σ s_a s_b` are sums
//! of integers, exact in 32 bits (`|Σ s_a s_b| <= 128² d`, so up to [`MAX_DIM`]
//! coordinates), then rounded to single precision (exactly below `2²⁴`) and multiplied by
//! `h²` rounded to single precision: so they err by at most `u |L_a||L_b|` with
//! `u = 3.1 · 2⁻²⁴` ([`pair_error`]), against `(d + 4) · 2⁻²⁴` for a product in single
//! precision and `2⁻⁷` in bfloat16. How far each point lies from its lattice point,
//! `ε_i >= |x_i - L_i|` (screen units, with the roundings of measuring it), enters the error
//! of its keys (`super::points::prepared`):
//! `|x_a - x_b|² >= |L_a - L_b|² - 2 |L_a - L_b| (ε_a + ε_b)`.
//!
//! `VPDPBUSD` multiplies unsigned bytes by signed ones, four at a time into 32-bit sums. The
//! points are kept once, as rows of `kp` signed bytes `s` (`kp` the dimension rounded up to
//! 64, zeros past it); the groups of 16 points that a tile's vectors read are packed from
//! the rows once as unsigned bytes `s + 128` ([`Int8::groups`], the transposition of
//! `super::amx`), and `Σ (s_a + 128) s_b - 128 Σ s_b = Σ s_a s_b`.

use super::amx::{transpose_pairs, Lines};
use std::ops::Range;
use std::sync::OnceLock;

/// Points per step of the kernel on each side (as AMX tiles: blocks start at multiples of
/// 32).
pub(super) const STEP: usize = 32;

/// Levels of the lattice.
const LEVELS: f64 = 255.0;

/// Largest distance of a coordinate from its lattice level, relative to the step `h`, for
/// which the lattice screen is used (a point may lie `√d` times as far from its lattice
/// point, so its keys lose at most about `√d h / 256 · |L_a - L_b|`).
const OFF: f64 = 1.0 / 1024.0;

/// Most coordinates for the lattice screen: its 32-bit sums stay exact (`128² d < 2³¹`).
pub(super) const MAX_DIM: usize = 1 << 16;

/// Points checked before the lattice is tried on all of them.
const SAMPLE: usize = 64;

/// A lattice of 256 levels, in the pre-scaled units of the search: level `q` at `lo + h q`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Lattice {
    pub(super) lo: f64,
    pub(super) h: f64,
}

impl Lattice {
    /// The largest distance of a coordinate from its level that the lattice accepts.
    pub(super) fn tolerance(&self) -> f64 {
        OFF * self.h
    }

    /// `v`'s nearest level `q` (the end levels for values beyond them) and `v`'s distance
    /// from it (without the rounding of [`Lattice::rounding`]); `inv` is `1 / h`. Adding and
    /// subtracting [`ROUND`] rounds to the nearest integer in any instruction set
    /// (`f64::round` is a library call on the baseline target), so the conversion's loop
    /// ([`quantize`]) vectorises.
    #[inline(always)]
    fn level(&self, v: f64, inv: f64) -> (f64, f64) {
        let q = (((v - self.lo) * inv + ROUND) - ROUND).clamp(0.0, LEVELS);
        (q, v - (self.lo + q * self.h))
    }

    /// The rounding of [`Lattice::level`]'s distances: a few units in the last place of the
    /// largest value involved.
    pub(super) fn rounding(&self) -> f64 {
        4.0 * f64::EPSILON * (self.lo.abs() + (LEVELS + 1.0) * self.h)
    }
}

/// The lattice the points of `r` and `q` (`pre`-scaled; `extremes` their smallest and
/// largest entry, pre-scaled) lie on, if they do: levels from the smallest entry to the
/// largest in 255 steps, checked on [`SAMPLE`] evenly spaced points of each set (the whole
/// sets are checked as they are converted).
pub(super) fn find(
    q: Option<faer::MatRef<'_, f64>>,
    r: faer::MatRef<'_, f64>,
    pre: f64,
    (lo, hi): (f64, f64),
) -> Option<Lattice> {
    let lattice = Lattice { lo, h: (hi - lo) / LEVELS };
    if !(lattice.h > 0.0 && lattice.h.is_finite()) || r.ncols() > MAX_DIM {
        return None;
    }
    let (tol, inv) = (lattice.tolerance() + lattice.rounding(), 1.0 / lattice.h);
    let on = |x: faer::MatRef<'_, f64>| {
        let s = SAMPLE.min(x.nrows());
        (0..s).all(|t| x.row(t * x.nrows() / s).iter().all(|&v| lattice.level(v * pre, inv).1.abs() <= tol))
    };
    (q.is_none_or(on) && on(r)).then_some(lattice)
}

/// Whether the lattice screen's products run on AVX-512 VNNI here (elsewhere they run on a
/// portable loop, used only where asked for). Asked once per process; `GEOMEM_NO_VNNI` turns
/// it off.
pub(super) fn fast() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| std::env::var_os("GEOMEM_NO_VNNI").is_none() && imp::detect())
}

/// Points on a lattice as the screen's operands.
pub(super) struct Int8 {
    /// Rows of `kp` signed bytes `s` (two to a `u16`), zero past the dimension and past the
    /// points: what a tile broadcasts.
    pub(super) rows: Lines,
    /// The same points in groups of 16, for each quadruple `p` of coordinates 16 points × 4
    /// unsigned bytes `s + 128` (64 bytes): what a tile's vectors read. Empty for a gathered
    /// set (whose points are only broadcast).
    pub(super) groups: Lines,
    /// The dimension, and the bytes per point (the dimension rounded up to 64).
    pub(super) d: usize,
    pub(super) kp: usize,
    /// `Σ s` of each point (padded to [`STEP`] points with zeros).
    pub(super) sums: Vec<i32>,
    /// `h²` in screen units, in single precision.
    pub(super) h2: f32,
}

fn as_bytes(v: &[u16]) -> &[u8] {
    // SAFETY: any `u16` slice is twice as many initialised bytes, and `u8` has alignment 1.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 2) }
}

pub(super) fn as_bytes_mut(v: &mut [u16]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`, borrowed mutably once.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 2) }
}

/// Bytes per point for dimension `d`.
pub(super) fn padded(d: usize) -> usize {
    d.div_ceil(64) * 64
}

impl Int8 {
    /// Room for `n` points (rounded up to [`STEP`]) of dimension `d`, all zero, with their
    /// groups where `groups`; products scaled by `h2`.
    pub(super) fn zeros(n: usize, d: usize, h2: f32, groups: bool) -> Self {
        let kp = padded(d);
        let np = n.div_ceil(STEP) * STEP;
        let g = Lines::zeros(if groups { np * kp / 2 } else { 0 });
        Self { rows: Lines::zeros(np * kp / 2), groups: g, d, kp, sums: vec![0; np], h2 }
    }

    /// The rows of the points `picks`, in that order (no groups).
    pub(super) fn gather(&self, picks: &[usize]) -> Self {
        let half = self.kp / 2;
        let mut out = Self::zeros(picks.len(), self.d, self.h2, false);
        let src = self.rows.as_slice();
        for (t, &i) in picks.iter().enumerate() {
            out.rows.as_mut_slice()[t * half..(t + 1) * half].copy_from_slice(&src[i * half..(i + 1) * half]);
            out.sums[t] = self.sums[i];
        }
        out
    }
}

/// The rows of some points (`kp` bytes each, a multiple of 16 points) as their groups into
/// `out` (as long): a 16 × `kp/4` transposition of quadruples of bytes per group, and each
/// signed byte to unsigned (`s + 128` flips the top bit).
pub(super) fn pack_groups(rows: &[u16], kp: usize, out: &mut [u16]) {
    let half = kp / 2;
    for (src, dst) in rows.chunks_exact(16 * half).zip(out.chunks_exact_mut(16 * half)) {
        transpose_pairs(src, half, dst);
        dst.iter_mut().for_each(|w| *w ^= 0x8080);
    }
}

/// Adding and subtracting `1.5 · 2⁵²` rounds a double below `2⁵¹` in magnitude to the
/// nearest integer (ties to even).
const ROUND: f64 = 6_755_399_441_055_744.0;

/// One point `x` (values before the power of two `pre`) on the lattice: its signed bytes
/// into `row`, and `(Σ s, Σ s², |x pre - L|²)` where `L` is its lattice point (pre-scaled
/// units; the last without the rounding of [`Lattice::rounding`]). Eight lanes at a time:
/// with AVX-512 where the machine has it, else a loop the compiler vectorises for the
/// build's target; the same operations lane by lane, so the same bits.
pub(super) fn quantize(x: &[f64], pre: f64, lattice: &Lattice, row: &mut [u8]) -> (i32, i64, f64) {
    assert!(row.len() >= x.len(), "a row holds the point");
    #[cfg(target_arch = "x86_64")]
    if imp::detect_quantize() {
        // SAFETY: avx512f, avx512bw and avx512vl were detected; `row` holds `x.len()` bytes.
        return unsafe { imp::quantize(x, pre, lattice, row) };
    }
    quantize_lanes(x, pre, lattice, row)
}

/// The sums of [`quantize`] from its eight lanes, added in lane order.
fn totals(sum: [f64; 8], sq: [f64; 8], off: [f64; 8]) -> (i32, i64, f64) {
    let total = |a: [f64; 8]| a.iter().sum::<f64>();
    (total(sum) as i32, total(sq) as i64, total(off))
}

#[inline(always)]
fn quantize_lanes(x: &[f64], pre: f64, lattice: &Lattice, row: &mut [u8]) -> (i32, i64, f64) {
    let inv = 1.0 / lattice.h;
    let (mut sum, mut sq, mut off) = ([0.0f64; 8], [0.0f64; 8], [0.0f64; 8]);
    let mut one = |v: f64, o: &mut u8, t: usize| {
        let (q, e) = lattice.level(v * pre, inv);
        let s = q - 128.0;
        *o = s as i32 as i8 as u8;
        sum[t] += s;
        sq[t] += s * s;
        off[t] += e * e;
    };
    let n8 = x.len() / 8 * 8;
    let (head, tail) = row[..x.len()].split_at_mut(n8);
    let (xt, rt) = (&x[n8..], tail);
    for (x8, r8) in x.chunks_exact(8).zip(head.chunks_exact_mut(8)) {
        for t in 0..8 {
            one(x8[t], &mut r8[t], t);
        }
    }
    for (t, (&v, o)) in xt.iter().zip(rt.iter_mut()).enumerate() {
        one(v, o, t);
    }
    totals(sum, sq, off)
}

/// The relative error of one product of two lattice points (`u` of `super::screen::key`).
pub(super) fn pair_error() -> f64 {
    3.1 * 2f64.powi(-24)
}

/// `g[a_i, b_j] = L_{a.start + i} · L_{b.start + j}` into `buf` (column-major, leading
/// dimension `ld`): rows from the groups of `x`, columns from the rows of `y`, both ranges
/// starting at multiples of [`STEP`]; entries past the ranges up to the next multiple of
/// [`STEP`] are written too. On AVX-512 VNNI where [`fast`], else a portable loop with the
/// same result, bit for bit.
///
/// # Panics
/// Where a range or `buf` is too short for that, or `x` has no groups (a bug of the caller,
/// never the data's).
pub(super) fn tile(buf: &mut [f32], ld: usize, x: &Int8, a: Range<usize>, y: &Int8, b: Range<usize>) {
    let (ma, mb, kp) = (a.len().div_ceil(STEP) * STEP, b.len().div_ceil(STEP) * STEP, y.kp);
    assert!(a.start.is_multiple_of(STEP) && b.start.is_multiple_of(STEP) && ma <= ld && x.kp == kp);
    assert!(as_bytes(x.groups.as_slice()).len() >= (a.start + ma) * kp);
    assert!(as_bytes(y.rows.as_slice()).len() >= (b.start + mb) * kp && y.sums.len() >= b.start + mb);
    assert!(buf.len() >= (mb.max(1) - 1) * ld + ma || mb == 0);
    let o = Operands {
        groups: &as_bytes(x.groups.as_slice())[a.start * kp..],
        ma,
        rows: &as_bytes(y.rows.as_slice())[b.start * kp..],
        sums: &y.sums[b.start..],
        mb,
        kp,
        quads: y.d.div_ceil(4),
        h2: y.h2,
    };
    if fast() {
        // SAFETY: VNNI was detected (`fast`); the bounds were checked above.
        unsafe { imp::tile(buf, ld, &o) };
    } else {
        portable(buf, ld, &o);
    }
}

/// One tile's operands as the kernels read them ([`tile`] checks their bounds): `ma / 16`
/// groups of `16 kp` bytes from the first row point, `mb` rows of `kp` bytes and their sums
/// from the first column point, `ma` and `mb` multiples of 32, `kp` of 64; the quadruples
/// of coordinates past `quads` are zeros; the products' scale `h2`.
struct Operands<'a> {
    groups: &'a [u8],
    ma: usize,
    rows: &'a [u8],
    sums: &'a [i32],
    mb: usize,
    kp: usize,
    quads: usize,
    h2: f32,
}

/// [`tile`] element by element: `Σ (u_a - 128) s_b` from the groups' unsigned bytes (in 64
/// bits, then the same integer as VNNI's).
fn portable(buf: &mut [f32], ld: usize, o: &Operands<'_>) {
    let Operands { groups, ma, rows, sums, mb, kp, h2, .. } = *o;
    for j in 0..mb {
        let row = &rows[j * kp..(j + 1) * kp];
        for i in 0..ma {
            let g = &groups[(i / 16) * 16 * kp..];
            let dot: i64 =
                (0..kp).map(|l| i64::from(g[(l / 4) * 64 + (i % 16) * 4 + l % 4]) * i64::from(row[l] as i8)).sum();
            buf[j * ld + i] = ((dot - 128 * i64::from(sums[j])) as i32) as f32 * h2;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::{Lattice, Operands, LEVELS, ROUND};
    use std::arch::x86_64::{
        __m512d, __mmask8, _mm256_cvtepi32_epi8, _mm512_add_pd, _mm512_cvtpd_epi32, _mm512_mask_add_pd,
        _mm512_maskz_loadu_pd, _mm512_max_pd, _mm512_min_pd, _mm512_mul_pd, _mm512_set1_pd, _mm512_setzero_pd,
        _mm512_storeu_pd, _mm512_sub_pd, _mm_mask_storeu_epi8,
    };
    use std::arch::x86_64::{
        __m512i, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_mul_ps, _mm512_or_si512,
        _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_si512, _mm512_storeu_ps, _mm512_sub_epi32,
        _mm512_test_epi64_mask,
    };

    pub(super) fn detect() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }

    /// Whether [`quantize`] runs here.
    pub(super) fn detect_quantize() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }

    /// [`super::quantize`] in AVX-512 registers of eight doubles (the last one masked): the
    /// operations of `quantize_lanes`, lane for lane, without fused multiply-adds.
    ///
    /// # Safety
    /// avx512f, avx512bw and avx512vl available; `row` at least as long as `x`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn quantize(x: &[f64], pre: f64, l: &Lattice, row: &mut [u8]) -> (i32, i64, f64) {
        let set = _mm512_set1_pd;
        let (pv, lo, h, inv, round) = (set(pre), set(l.lo), set(l.h), set(1.0 / l.h), set(ROUND));
        let (top, mid, zero) = (set(LEVELS), set(128.0), _mm512_setzero_pd());
        let (mut sum, mut sq, mut off) = (zero, zero, zero);
        for c in 0..x.len().div_ceil(8) {
            let n = (x.len() - 8 * c).min(8);
            let k: __mmask8 = if n == 8 { u8::MAX } else { (1u8 << n) - 1 };
            // SAFETY: the mask reads and writes only the `n` entries left in `x` and `row`.
            let v = _mm512_mul_pd(unsafe { _mm512_maskz_loadu_pd(k, x.as_ptr().add(8 * c)) }, pv);
            let q = _mm512_sub_pd(_mm512_add_pd(_mm512_mul_pd(_mm512_sub_pd(v, lo), inv), round), round);
            let q = _mm512_max_pd(_mm512_min_pd(q, top), zero);
            let e = _mm512_sub_pd(v, _mm512_add_pd(lo, _mm512_mul_pd(q, h)));
            let s = _mm512_sub_pd(q, mid);
            sum = _mm512_mask_add_pd(sum, k, sum, s);
            sq = _mm512_mask_add_pd(sq, k, sq, _mm512_mul_pd(s, s));
            off = _mm512_mask_add_pd(off, k, off, _mm512_mul_pd(e, e));
            let bytes = _mm256_cvtepi32_epi8(_mm512_cvtpd_epi32(s));
            // SAFETY: as above.
            unsafe { _mm_mask_storeu_epi8(row.as_mut_ptr().add(8 * c).cast(), u16::from(k), bytes) };
        }
        let lanes = |v: __m512d| {
            let mut a = [0.0f64; 8];
            // SAFETY: eight doubles into eight.
            unsafe { _mm512_storeu_pd(a.as_mut_ptr(), v) };
            a
        };
        super::totals(lanes(sum), lanes(sq), lanes(off))
    }

    /// The quadruples `p < quads` where some byte of the 32 points of groups `g0` and `g1`
    /// is not zero, into `active`: a quadruple whose unsigned bytes are all zero (every
    /// point at the lattice's lowest level there, the background of an image) adds nothing
    /// to `Σ u_a s_b`, whatever the rows, and is skipped.
    ///
    /// # Safety
    /// avx512f available; `quads` quadruples (64 bytes each) readable from `g0` and `g1`.
    #[target_feature(enable = "avx512f")]
    unsafe fn active_quads(g0: *const u8, g1: *const u8, quads: usize, active: &mut Vec<usize>) {
        active.clear();
        for p in 0..quads {
            // SAFETY: quadruple `p` of both groups is readable (the contract).
            let v = unsafe {
                _mm512_or_si512(_mm512_loadu_si512(g0.add(64 * p).cast()), _mm512_loadu_si512(g1.add(64 * p).cast()))
            };
            if _mm512_test_epi64_mask(v, v) != 0 {
                active.push(p);
            }
        }
    }

    /// See [`super::tile`]: 32 points of the groups (two vectors of 16) against 8 rows
    /// broadcast four bytes at a time: sixteen registers of sixteen 32-bit sums, over the
    /// quadruples where the 32 points are not all zero ([`active_quads`]).
    ///
    /// # Safety
    /// avx512f, avx512bw and avx512vnni available; the operands within the bounds of
    /// [`super::Operands`] (`buf` holds `(mb - 1) ld + ma` floats).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile(buf: &mut [f32], ld: usize, o: &Operands<'_>) {
        let Operands { groups, ma, rows, sums, mb, kp, quads, h2 } = *o;
        let scale = _mm512_set1_ps(h2);
        let mut active = Vec::with_capacity(quads);
        for aa in (0..ma).step_by(32) {
            let g0 = groups[aa * kp..].as_ptr();
            let g1 = groups[(aa + 16) * kp..].as_ptr();
            // SAFETY: avx512f is enabled here; the groups hold `quads` quadruples (contract).
            unsafe { active_quads(g0, g1, quads, &mut active) };
            for bb in (0..mb).step_by(8) {
                let r = rows[bb * kp..].as_ptr();
                let mut acc = [_mm512_setzero_si512(); 16];
                for &p in &active {
                    // SAFETY: quadruple `p` of each group and of each of the 8 rows lies
                    // inside the slices (the contract).
                    let (v0, v1) = unsafe {
                        (_mm512_loadu_si512(g0.add(64 * p).cast()), _mm512_loadu_si512(g1.add(64 * p).cast()))
                    };
                    for s in 0..8 {
                        // SAFETY: as above.
                        let w = unsafe { r.add(s * kp + 4 * p).cast::<i32>().read_unaligned() };
                        let w = _mm512_set1_epi32(w);
                        acc[2 * s] = _mm512_dpbusd_epi32(acc[2 * s], v0, w);
                        acc[2 * s + 1] = _mm512_dpbusd_epi32(acc[2 * s + 1], v1, w);
                    }
                }
                for s in 0..8 {
                    let corr = _mm512_set1_epi32(128 * sums[bb + s]);
                    let out = buf[(bb + s) * ld + aa..(bb + s) * ld + aa + 32].as_mut_ptr();
                    let f = |v: __m512i| _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, corr)), scale);
                    // SAFETY: 32 floats of column `bb + s` from row `aa` lie inside `buf`
                    // (the slice above).
                    unsafe {
                        _mm512_storeu_ps(out, f(acc[2 * s]));
                        _mm512_storeu_ps(out.add(16), f(acc[2 * s + 1]));
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(super) fn detect() -> bool {
        false
    }

    pub(super) unsafe fn tile(_: &mut [f32], _: usize, _: &super::Operands<'_>) {
        unreachable!("VNNI is never detected here")
    }

    pub(super) fn detect_quantize() -> bool {
        false
    }

    pub(super) unsafe fn quantize(_: &[f64], _: f64, _: &super::Lattice, _: &mut [u8]) -> (i32, i64, f64) {
        unreachable!("AVX-512 is never detected here")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// [`find`] on points taken as they are (`pre` = 1).
    fn look(q: Option<faer::MatRef<'_, f64>>, r: faer::MatRef<'_, f64>) -> Option<Lattice> {
        find(q, r, 1.0, super::super::frame::extremes(r, q))
    }

    /// A small generator of bytes and uniform numbers (no dependency on `rand` here).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn byte(&mut self) -> u8 {
            (self.next() >> 40) as u8
        }
        fn unit(&mut self) -> f64 {
            self.next() as f64 / (1u64 << 53) as f64
        }
    }

    /// `n` points of dimension `d` on the lattice `lo + h q` (levels `q` drawn at random, the
    /// end levels 0 and 255 among them) as their `Int8` and their levels.
    fn lattice_points(n: usize, d: usize, g: &mut Gen) -> (Int8, Vec<Vec<i32>>) {
        let levels: Vec<Vec<i32>> = (0..n).map(|_| (0..d).map(|_| i32::from(g.byte())).collect()).collect();
        (on_levels(&levels, d), levels)
    }

    /// Points of dimension `d` at the given levels of the lattice `-3 + q / 4`, as their
    /// `Int8` (with groups; products scaled by `h² = 1 / 16`).
    fn on_levels(levels: &[Vec<i32>], d: usize) -> Int8 {
        let (n, l) = (levels.len(), Lattice { lo: -3.0, h: 0.25 });
        let mut x = Int8::zeros(n, d, 0.0625, true);
        let kp = x.kp;
        let rows = as_bytes_mut(x.rows.as_mut_slice());
        for (i, q) in levels.iter().enumerate() {
            let v: Vec<f64> = q.iter().map(|&q| l.lo + l.h * f64::from(q)).collect();
            let (sum, sq, off) = quantize(&v, 1.0, &l, &mut rows[i * kp..(i + 1) * kp]);
            assert_eq!(off, 0.0, "exact lattice values");
            assert_eq!(sum, q.iter().map(|q| q - 128).sum::<i32>());
            assert_eq!(sq, q.iter().map(|&q| i64::from(q - 128).pow(2)).sum::<i64>());
            x.sums[i] = sum;
        }
        let (rows, groups) = (x.rows.as_slice().to_vec(), x.groups.as_mut_slice());
        pack_groups(&rows, kp, groups);
        x
    }

    /// `Σ s_a s_b` of two points' levels.
    fn level_dot(a: &[i32], b: &[i32]) -> i64 {
        a.iter().zip(b).map(|(&p, &q)| i64::from(p - 128) * i64::from(q - 128)).sum()
    }

    /// The AVX-512 conversion gives the portable loop's bytes and sums bit for bit (points on
    /// the lattice and off it, beyond its ends, every length of the last register).
    #[test]
    fn the_wide_conversion_equals_the_portable_loop() {
        let mut g = Gen(11);
        let l = Lattice { lo: -3.0, h: 0.25 };
        for d in [1, 7, 8, 9, 77, 784] {
            for off in [0.0, 1e-9, 0.1, 40.0] {
                let x: Vec<f64> = (0..d).map(|_| l.lo + l.h * f64::from(g.byte()) + off * (g.unit() - 0.5)).collect();
                let (mut a, mut b) = (vec![0u8; d + 5], vec![0u8; d + 5]);
                let portable = quantize_lanes(&x, 0.5, &l, &mut a);
                let fast = quantize(&x, 0.5, &l, &mut b);
                assert_eq!(a, b, "d = {d}: bytes");
                assert_eq!(
                    (portable.0, portable.1, portable.2.to_bits()),
                    (fast.0, fast.1, fast.2.to_bits()),
                    "d = {d}"
                );
            }
        }
    }

    /// Tiles at offsets (with partial blocks, a dimension off every multiple of 4) equal the
    /// integer products `h² Σ s_a s_b` within `u |L_a||L_b|` (exactly where they are below
    /// 2²⁴, as here), and the portable loop gives the same bits as VNNI where it runs.
    #[test]
    fn tiles_are_the_integer_products() {
        let mut g = Gen(7);
        let (n, d) = (200, 77);
        let (x, levels) = lattice_points(n, d, &mut g);
        let dot = |a: usize, b: usize| level_dot(&levels[a], &levels[b]);
        for (a, b) in [(0..64, 0..64), (32..200, 96..131), (160..200, 0..200)] {
            let (ma, mb) = (a.len().div_ceil(32) * 32, b.len().div_ceil(32) * 32);
            let mut buf = vec![f32::NAN; mb * 256];
            tile(&mut buf, 256, &x, a.clone(), &x, b.clone());
            for (j, bj) in b.clone().enumerate() {
                for (i, ai) in a.clone().enumerate() {
                    assert_eq!(buf[j * 256 + i], (dot(ai, bj) as f64 * 0.0625) as f32, "({ai}, {bj})");
                }
            }
            let mut plain = vec![f32::NAN; mb * 256];
            let kp = x.kp;
            let groups = &as_bytes(x.groups.as_slice())[a.start * kp..];
            let rows = &as_bytes(x.rows.as_slice())[b.start * kp..];
            let o = Operands { groups, ma, rows, sums: &x.sums[b.start..], mb, kp, quads: d.div_ceil(4), h2: x.h2 };
            portable(&mut plain, 256, &o);
            for j in 0..mb {
                let (v, p) = (&buf[j * 256..j * 256 + ma], &plain[j * 256..j * 256 + ma]);
                assert!(
                    v.iter().zip(p).all(|(v, p)| v.to_bits() == p.to_bits()),
                    "column {j}: VNNI and portable differ"
                );
            }
        }
        // A gathered set (rows only) as the broadcast side: the same products.
        let picks = [5, 199, 0, 77];
        let y = x.gather(&picks);
        let mut buf = vec![0f32; 32 * 224];
        tile(&mut buf, 224, &x, 0..200, &y, 0..4);
        for (c, &p) in picks.iter().enumerate() {
            assert!((0..200).all(|a| buf[c * 224 + a] == (dot(a, p) as f64 * 0.0625) as f32), "pick {p}");
        }
    }

    /// Points with a background (the lowest level on whole quadruples of coordinates, as
    /// images have): the products stay exact, so no quadruple where some point of a step is
    /// off that level is skipped (whether the background is skipped shows in time only).
    /// Here coordinates 0..40 are background for points 0..48 (all of the first step, only
    /// the first half of the second: skipping on one group's bytes alone fails), and
    /// quadruple `k` of coordinates 40..104 for every point but point `32 + 2k + k mod 2`,
    /// at its byte `k mod 4` (one byte keeps its quadruple, in each of the sixteen 64-bit
    /// lanes of the two groups, in the lane's first point or its second).
    #[test]
    fn tiles_skip_only_what_every_point_leaves_at_the_lowest_level() {
        let (mut g, (n, d)) = (Gen(5), (200, 123));
        let kept = |i: usize, t: usize| {
            let k = (t - 40) / 4;
            i == 32 + 2 * k + k % 2 && (t - 40) % 4 == k % 4
        };
        let background = |i: usize, t: usize| (t < 40 && i < 48) || ((40..104).contains(&t) && !kept(i, t));
        let levels: Vec<Vec<i32>> = (0..n)
            .map(|i| (0..d).map(|t| if background(i, t) { 0 } else { 1 + i32::from(g.byte() % 255) }).collect())
            .collect();
        let x = on_levels(&levels, d);
        for (a, b) in [(0..64, 0..200), (32..96, 0..64), (0..200, 160..200)] {
            let mut buf = vec![f32::NAN; 224 * 256];
            tile(&mut buf, 256, &x, a.clone(), &x, b.clone());
            for (j, bj) in b.clone().enumerate() {
                for (i, ai) in a.clone().enumerate() {
                    let want = (level_dot(&levels[ai], &levels[bj]) as f64 * 0.0625) as f32;
                    assert_eq!(buf[j * 256 + i], want, "({ai}, {bj})");
                }
            }
        }
    }

    /// Products past 2²⁴ (every level at an end, d = 1100): exact in the sums, and within the
    /// stated bound once rounded.
    #[test]
    fn large_products_stay_within_the_bound() {
        let (n, d) = (32, 1100);
        let mut x = Int8::zeros(n, d, 1.0 / 3.0, true);
        let kp = x.kp;
        let l = Lattice { lo: 0.0, h: 1.0 };
        let rows = as_bytes_mut(x.rows.as_mut_slice());
        for i in 0..n {
            let v: Vec<f64> = (0..d).map(|t| if (t + i).is_multiple_of(3) { 255.0 } else { 0.0 }).collect();
            x.sums[i] = quantize(&v, 1.0, &l, &mut rows[i * kp..(i + 1) * kp]).0;
        }
        let rows = x.rows.as_slice().to_vec();
        pack_groups(&rows, kp, x.groups.as_mut_slice());
        let mut buf = vec![0f32; 32 * 32];
        tile(&mut buf, 32, &x, 0..32, &x, 0..32);
        let s = |i: usize, t: usize| if (t + i).is_multiple_of(3) { 127.0 } else { -128.0 };
        let largest = (0..d).map(|t| s(0, t) * s(0, t)).sum::<f64>();
        assert!(largest > 2f64.powi(24), "the test reaches past 2^24: {largest}");
        for a in 0..n {
            for b in 0..n {
                let exact: f64 = (0..d).map(|t| s(a, t) * s(b, t)).sum::<f64>() / 3.0;
                let norm = |i: usize| (0..d).map(|t| s(i, t) * s(i, t)).sum::<f64>().sqrt() / 3f64.sqrt();
                let err = (f64::from(buf[b * 32 + a]) - exact).abs();
                assert!(err <= pair_error() * norm(a) * norm(b), "({a}, {b}): {err}");
            }
        }
    }

    /// The lattice is found for 8-bit images however scaled (`byte / 255`, `byte / 127.5 - 1`,
    /// rounded to single precision, far from the origin), and not for points off it by more
    /// than the tolerance, nor for more than 256 levels, nor for constant points.
    #[test]
    fn lattices_are_found_only_where_the_points_lie_on_one() {
        let mut g = Gen(3);
        let bytes = Mat::from_fn(300, 50, |_, _| f64::from(g.byte()));
        let find1 = |f: &dyn Fn(f64) -> f64| look(None, bytes.as_ref().map(|&b| f(b)).as_ref());
        let l = find1(&|b| b / 255.0).expect("byte / 255");
        assert!((l.h - 1.0 / 255.0).abs() < 1e-15 && l.lo == 0.0, "{l:?}");
        assert!(find1(&|b| b / 127.5 - 1.0).is_some(), "byte / 127.5 - 1");
        assert!(find1(&|b| f64::from((b / 255.0) as f32)).is_some(), "single precision");
        assert!(find1(&|b| 1e6 + 3.0 * b).is_some(), "far from the origin");
        let jitter = Mat::from_fn(300, 50, |_, _| g.unit());
        let off = |by: f64| Mat::from_fn(300, 50, |i, j| bytes[(i, j)] / 255.0 + by * jitter[(i, j)]);
        assert!(look(None, off(1e-5).as_ref()).is_none(), "off by up to h / 400");
        assert!(look(None, off(1e-7).as_ref()).is_some(), "off by up to h / 40 000");
        assert!(find1(&|b| b + 0.5 * (b % 2.0)).is_none(), "levels not evenly spaced");
        let wide = Mat::from_fn(300, 50, |i, j| ((i * 7 + j) % 300) as f64);
        assert!(look(None, wide.as_ref()).is_none(), "300 levels");
        assert!(look(None, Mat::from_fn(300, 50, |_, _| 1.0).as_ref()).is_none(), "constant");
        // Past MAX_DIM coordinates the 32-bit sums could overflow: no lattice.
        let wide_bytes = |d: usize| Mat::from_fn(2, d, |i, j| ((i * 131 + j * 7) % 256) as f64);
        assert!(look(None, wide_bytes(MAX_DIM).as_ref()).is_some());
        assert!(look(None, wide_bytes(MAX_DIM + 1).as_ref()).is_none(), "too many coordinates");
        // Queries below the reference's levels widen the range: still a lattice when they are
        // on it; off it when they are not.
        let q = Mat::from_fn(20, 50, |i, _| -(i as f64));
        assert!(look(Some(q.as_ref()), bytes.as_ref().map(|&b| b.min(236.0)).as_ref()).is_some());
        assert!(look(Some(q.as_ref().map(|&v| v - 0.5).as_ref()), bytes.as_ref()).is_none());
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Tiles of 256 × 256 points (d = 784) cycling over 1, 2 and 4 blocks of points: prints
    /// the multiply-adds per second of one thread (`cargo test --release -p geomem-lid --lib
    /// lattice::speed -- --ignored --nocapture`; against `peak_speed`'s `VPDPBUSD` rate).
    /// Asserts nothing about speed.
    #[test]
    #[ignore]
    fn tile_speed() {
        if !fast() {
            return eprintln!("no VNNI here");
        }
        let (n, d) = (1024, 784);
        let mut x = Int8::zeros(n, d, 1.0, true);
        let kp = x.kp;
        let l = Lattice { lo: 0.0, h: 1.0 };
        let rows = as_bytes_mut(x.rows.as_mut_slice());
        for i in 0..n {
            let v: Vec<f64> = (0..d).map(|t| ((t * 7 + i * 3) % 256) as f64).collect();
            x.sums[i] = quantize(&v, 1.0, &l, &mut rows[i * kp..(i + 1) * kp]).0;
        }
        let rows = x.rows.as_slice().to_vec();
        pack_groups(&rows, kp, x.groups.as_mut_slice());
        let mut buf = vec![0f32; 256 * 256];
        for cycle in [1, 2, 4] {
            let range = |r: usize| (r % cycle) * 256..(r % cycle) * 256 + 256;
            let (reps, t0) = (2000, std::time::Instant::now());
            for r in 0..reps {
                tile(&mut buf, 256, &x, range(r), &x, range(r + cycle / 2));
            }
            let macs = 256.0 * 256.0 * (d.div_ceil(4) * 4) as f64 * reps as f64;
            eprintln!("{cycle} block(s): {:.0} GMAC/s", macs / t0.elapsed().as_secs_f64() / 1e9);
        }
    }
}
