//! Screening products on Intel AMX: points rounded to bfloat16 and multiplied in tiles by
//! `TDPBF16PS`, sums in single precision.
//!
//! A tile multiply-add computes `C[m][n] += Σ_p A[m][2p]·B[p][2n] + A[m][2p+1]·B[p][2n+1]`
//! on 16 × 16 single-precision sums: a product of 16 × 32 by 32 × 16 bfloat16 values, about
//! three times as many multiply-adds per cycle as AVX-512 in single precision (measured on
//! the machine of `docs/BENCHMARKS.md`). The points are kept once, as rows of `kp`
//! coordinates (the `A` operand, `kp` the dimension rounded up to 32 with zeros); the `B`
//! operand's groups of 16 points in the pair-interleaved layout are packed from the rows
//! for each tile ([`Groups`]: a 16 × 16 transposition of coordinate pairs, a few percent of
//! a tile's multiply-adds), which halves the screen's memory.
//!
//! # Error
//! Rounding to bfloat16 (8 significant bits, after rounding to `f32`) errs by at most
//! `u_b = 2⁻⁸ (1 + 2⁻¹⁵)` relative; products of two bfloat16 are exact in single precision;
//! the sums are single-precision operations in an unspecified order (`γ_kp`), with subnormal
//! inputs and results flushed to zero (at most `2⁻¹²⁶` each). So the product of two points
//! errs by at most `(2u_b + u_b² + γ_kp (1 + u_b)²) |x||y| + 3 kp 2⁻¹²⁶` ([`pair_error`],
//! [`flush_error`]).

use std::ops::Range;
use std::sync::OnceLock;

/// One cache line of bfloat16 values.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

/// Bfloat16 values in whole cache lines: every tile row (64 bytes) is one line, so no tile
/// load straddles two (measured: 2.4 times slower when they do).
pub(super) struct Lines(Vec<Line>);

impl Lines {
    /// `len` zeros, rounded up to whole lines.
    pub(super) fn zeros(len: usize) -> Self {
        Self(vec![Line([0; 32]); len.div_ceil(32)])
    }

    /// Room for at least `len` values.
    pub(super) fn ensure(&mut self, len: usize) {
        if self.0.len() * 32 < len {
            self.0.resize(len.div_ceil(32), Line([0; 32]));
        }
    }

    pub(super) fn as_slice(&self) -> &[u16] {
        // SAFETY: `Line` is `repr(C)` around `[u16; 32]` with no padding (64 bytes), so the
        // lines are `32 × len` contiguous, initialised `u16`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u16>(), self.0.len() * 32) }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [u16] {
        // SAFETY: as in `as_slice`, borrowed mutably once.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u16>(), self.0.len() * 32) }
    }
}

/// Points as the `A` operand of AMX tiles.
pub(super) struct Bf16 {
    /// Rows of `kp` bfloat16 coordinates, zero beyond the dimension and beyond the points.
    pub(super) rows: Lines,
    /// Coordinates per point, a multiple of 32.
    pub(super) kp: usize,
}

/// Some consecutive points of a [`Bf16`] as the `B` operand: groups of 16 points, for each
/// pair `p` of coordinates 16 points × 2 bfloat16 (64 bytes, one row of a `B` tile).
pub(super) struct Groups {
    lines: Lines,
    /// The first point held (a multiple of [`STEP`]) and how many (a multiple of [`STEP`]).
    start: usize,
    len: usize,
}

impl Groups {
    pub(super) fn new() -> Self {
        Self { lines: Lines::zeros(0), start: 0, len: 0 }
    }
}

/// Points per step of the kernel on each side.
pub(super) const STEP: usize = 32;

impl Bf16 {
    /// Room for `n` points (rounded up to [`STEP`]) of dimension `d`, all zero.
    pub(super) fn zeros(n: usize, d: usize) -> Self {
        let kp = d.div_ceil(STEP) * STEP;
        let np = n.div_ceil(STEP) * STEP;
        Self { rows: Lines::zeros(np * kp), kp }
    }

    /// The points `a` (from a multiple of [`STEP`], rounded up to one; the rows past the
    /// points are zeros) packed as groups into `out`.
    ///
    /// # Panics
    /// Where `a` starts off a multiple of [`STEP`] or runs past the rows (a bug of the
    /// caller, never the data's).
    pub(super) fn groups_into(&self, a: Range<usize>, out: &mut Groups) {
        let (kp, len) = (self.kp, a.len().div_ceil(STEP) * STEP);
        let src = self.rows.as_slice();
        assert!(a.start.is_multiple_of(STEP) && src.len() >= (a.start + len) * kp);
        out.lines.ensure(len * kp);
        (out.start, out.len) = (a.start, len);
        let dst = out.lines.as_mut_slice();
        for g in 0..len / 16 {
            let rows = &src[(a.start + g * 16) * kp..(a.start + g * 16 + 16) * kp];
            transpose_pairs(rows, kp, &mut dst[g * 16 * kp..(g + 1) * 16 * kp]);
        }
    }

    /// [`Bf16::groups_into`] a new [`Groups`].
    pub(super) fn groups(&self, a: Range<usize>) -> Groups {
        let mut g = Groups::new();
        self.groups_into(a, &mut g);
        g
    }

    /// The rows of the points `picks`, in that order (no groups).
    pub(super) fn gather(&self, picks: &[usize]) -> Self {
        let kp = self.kp;
        let mut rows = Lines::zeros(picks.len().div_ceil(STEP) * STEP * kp);
        let src = self.rows.as_slice();
        for (&i, dst) in picks.iter().zip(rows.as_mut_slice().chunks_mut(kp)) {
            dst.copy_from_slice(&src[i * kp..(i + 1) * kp]);
        }
        Self { rows, kp }
    }
}

/// The 16 rows of `kp` bfloat16 in `rows` (`16 kp` values) as one group in `out`: pair `p`
/// of point `n` (two bfloat16, one `u32`) at `u32` position `16 p + n`, a 16 × `kp/2`
/// transposition of `u32`s.
pub(super) fn transpose_pairs(rows: &[u16], kp: usize, out: &mut [u16]) {
    debug_assert!(rows.len() == 16 * kp && out.len() == 16 * kp && kp.is_multiple_of(32));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was detected; the lengths are as asserted.
        return unsafe { transpose_pairs_avx512(rows, kp, out) };
    }
    transpose_pairs_portable(rows, kp, out);
}

/// [`transpose_pairs`] element by element (the fallback, and the definition).
fn transpose_pairs_portable(rows: &[u16], kp: usize, out: &mut [u16]) {
    for n in 0..16 {
        for p in 0..kp / 2 {
            out[32 * p + 2 * n] = rows[n * kp + 2 * p];
            out[32 * p + 2 * n + 1] = rows[n * kp + 2 * p + 1];
        }
    }
}

/// [`transpose_pairs`] in blocks of 16 × 16 `u32` (sixteen loads, four shuffle stages,
/// sixteen stores).
///
/// # Safety
/// avx512f must be available; `rows` and `out` hold `16 kp` values, `kp` a multiple of 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_pairs_avx512(rows: &[u16], kp: usize, out: &mut [u16]) {
    use std::arch::x86_64::{
        _mm512_loadu_si512, _mm512_setzero_si512, _mm512_shuffle_i32x4, _mm512_storeu_si512, _mm512_unpackhi_epi32,
        _mm512_unpackhi_epi64, _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
    };
    assert!(rows.len() >= 16 * kp && out.len() >= 16 * kp && kp.is_multiple_of(32));
    let zero = _mm512_setzero_si512();
    for p0 in (0..kp / 2).step_by(16) {
        let mut r = [zero; 16];
        for (n, v) in r.iter_mut().enumerate() {
            // SAFETY: row `n`'s pairs `p0 .. p0 + 16` are 64 bytes inside `rows` (asserted).
            *v = unsafe { _mm512_loadu_si512(rows[n * kp + 2 * p0..].as_ptr().cast()) };
        }
        // Per 128-bit lane: pairs of rows interleaved, then quadruples of rows.
        let mut t = [zero; 16];
        for i in (0..16).step_by(2) {
            t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
        }
        // u[4g + c], lane L: rows 4g .. 4g + 4 at column 4L + c.
        let mut u = [zero; 16];
        for g in 0..4 {
            u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
            u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
            u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
            u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
        }
        for c in 0..4 {
            let v0 = _mm512_shuffle_i32x4::<0x88>(u[c], u[4 + c]);
            let v1 = _mm512_shuffle_i32x4::<0xdd>(u[c], u[4 + c]);
            let v2 = _mm512_shuffle_i32x4::<0x88>(u[8 + c], u[12 + c]);
            let v3 = _mm512_shuffle_i32x4::<0xdd>(u[8 + c], u[12 + c]);
            // Columns c, c + 8, c + 4, c + 12 of this block of pairs.
            let cols = [
                (c, _mm512_shuffle_i32x4::<0x88>(v0, v2)),
                (c + 8, _mm512_shuffle_i32x4::<0xdd>(v0, v2)),
                (c + 4, _mm512_shuffle_i32x4::<0x88>(v1, v3)),
                (c + 12, _mm512_shuffle_i32x4::<0xdd>(v1, v3)),
            ];
            for (j, v) in cols {
                // SAFETY: pair `p0 + j` of the group is 64 bytes inside `out` (asserted).
                unsafe { _mm512_storeu_si512(out[32 * (p0 + j)..].as_mut_ptr().cast(), v) };
            }
        }
    }
}

/// `x` rounded to bfloat16 (through `f32`, to nearest, ties to even; finite `x`).
pub(super) fn bf16(x: f64) -> u16 {
    let b = (x as f32).to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Writes the points `c` (`d × cnt`, one per column) into their rows `rows` (the part of a
/// [`Bf16`] that holds them).
pub(super) fn pack(c: faer::MatRef<'_, f64>, kp: usize, rows: &mut [u16]) {
    for (t, col) in c.col_iter().enumerate() {
        for (l, &v) in col.iter().enumerate() {
            rows[t * kp + l] = bf16(v);
        }
    }
}

/// The relative error of one product of two points (`u` of `super::screen::key`).
pub(super) fn pair_error(kp: usize) -> f64 {
    let ub = 2f64.powi(-8) * (1.0 + 2f64.powi(-15));
    let gamma = 1.1 * kp as f64 * 2f64.powi(-24);
    2.0 * ub + ub * ub + gamma * (1.0 + ub).powi(2)
}

/// The absolute error of one product from flushed subnormals (coordinates at most 1).
pub(super) fn flush_error(kp: usize) -> f64 {
    3.0 * kp as f64 * 2f64.powi(-126)
}

/// Whether AMX tiles run here: the CPU has them, the system saves their state, this process
/// was allowed to use them, and a small product comes out right. Asked once per process.
pub(super) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| std::env::var_os("GEOMEM_NO_AMX").is_none() && imp::detect() && self_test())
}

/// A product of two small point sets against the same product in double precision.
fn self_test() -> bool {
    let d = 40;
    let pt = |i: usize, l: usize| ((i * 7 + l * 3) % 11) as f64 / 8.0 - 0.5;
    let c = faer::Mat::from_fn(d, 64, |l, i| pt(i, l));
    let mut x = Bf16::zeros(64, d);
    pack(c.as_ref(), x.kp, x.rows.as_mut_slice());
    let mut buf = vec![0f32; 64 * 64];
    tile(&mut buf, 64, &x.groups(0..64), 0..64, &x, 0..64);
    (0..64).all(|a| {
        (0..64).all(|b| {
            let exact: f64 = (0..d).map(|l| pt(a, l) * pt(b, l)).sum();
            (f64::from(buf[b * 64 + a]) - exact).abs() <= 1e-5 * (1.0 + exact.abs())
        })
    })
}

/// `g[a_i, b_j] = x_{a.start + i} · y_{b.start + j}` into `buf` (column-major, leading
/// dimension `ld`): rows from the groups `x` (which hold the points `a`), columns from the
/// rows of `y`, both ranges starting at multiples of [`STEP`]; entries past the ranges up to
/// the next multiple of [`STEP`] are written too.
///
/// # Panics
/// Where a range or `buf` is too short for that (a bug of the caller, never the data's).
pub(super) fn tile(buf: &mut [f32], ld: usize, x: &Groups, a: Range<usize>, y: &Bf16, b: Range<usize>) {
    let (ma, mb, kp) = (a.len().div_ceil(STEP) * STEP, b.len().div_ceil(STEP) * STEP, y.kp);
    assert!(a.start.is_multiple_of(STEP) && b.start.is_multiple_of(STEP) && ma <= ld);
    assert!(a.start >= x.start && a.start + ma <= x.start + x.len && x.lines.as_slice().len() >= x.len * kp);
    assert!(y.rows.as_slice().len() >= (b.start + mb) * kp);
    assert!(buf.len() >= (mb.max(1) - 1) * ld + ma || mb == 0);
    imp::tile(buf, ld, x.lines.as_slice(), a.start - x.start, ma, y, b.start, mb);
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::{Bf16, STEP};
    use std::arch::asm;

    /// The tile configuration: palette 1, eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    const CONFIG: Config = Config {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
    };

    pub(super) fn detect() -> bool {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // SAFETY: `cpuid` exists on every x86-64 processor; leaf 7 is read only when the
        // processor reports it.
        #[allow(unused_unsafe)] // safe since Rust 1.89, unsafe before
        let (max, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
        if max < 7 || leaf1.ecx & (1 << 27) == 0 {
            return false;
        }
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { __cpuid_count(7, 0) };
        let (amx_bf16, amx_tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
        if !(amx_bf16 && amx_tile) {
            return false;
        }
        let (lo, _hi): (u32, u32);
        // SAFETY: `xgetbv` with ecx = 0 reads XCR0, allowed since OSXSAVE is set (checked).
        unsafe {
            asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nomem, nostack, preserves_flags))
        };
        // XCR0 bits 17 and 18: the system saves the tile configuration and data.
        lo & (0b11 << 17) == (0b11 << 17) && permission()
    }

    /// Linux's `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: the tile data state may
    /// be used by every thread of the process from now on.
    fn permission() -> bool {
        const SYS_ARCH_PRCTL: usize = 158;
        const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
        const XFEATURE_XTILEDATA: usize = 18;
        let ret: isize;
        // SAFETY: the system call reads no memory of ours; it clobbers rcx and r11.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            )
        };
        ret == 0
    }

    /// See [`super::tile`]; the bounds were checked there.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile(buf: &mut [f32], ld: usize, x: &[u16], a0: usize, ma: usize, y: &Bf16, b0: usize, mb: usize) {
        let kp = y.kp;
        // SAFETY: AMX was detected and allowed ([`super::available`] runs before any tile);
        // the configuration is a valid palette-1 layout.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
        for bb in (0..mb).step_by(STEP) {
            for aa in (0..ma).step_by(STEP) {
                let rows = y.rows.as_slice()[(b0 + bb) * kp..].as_ptr();
                let group = x[(a0 + aa) * kp..].as_ptr();
                let out = buf[bb * ld + aa..].as_mut_ptr();
                // SAFETY: [`super::tile`] checked that rows `b0 + bb .. + 32` of `y`, groups
                // of points `a0 + aa .. + 32` of `x` and the 32 × 32 block of `buf` at
                // `(aa, bb)` with leading dimension `ld` lie inside the slices.
                unsafe { block(rows, group, kp, out, ld) };
            }
        }
        // SAFETY: releases the tile state taken by `ldtilecfg` above.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// One 32 × 32 block: rows `rows[0..32]` (32 points as `A` rows) against the two groups
    /// at `group` (32 points as `B`), written to `out` (row `r` of the AMX result, point `r`
    /// of `rows`, is column `r` of the column-major output).
    ///
    /// # Safety
    /// As checked by [`super::tile`]: 32 rows of `kp` bfloat16 at `rows`, two groups of
    /// `16 kp` at `group`, and 32 columns of 32 floats at `out` with leading dimension `ld`;
    /// the tile configuration loaded.
    unsafe fn block(rows: *const u16, group: *const u16, kp: usize, out: *mut f32, ld: usize) {
        let row_stride = kp * 2;
        // SAFETY: see the function's contract; every pointer moves inside its region.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 64",
                "add {a1}, 64",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c} + {sc}*1], tmm0",
                "lea {a0}, [{c} + 64]",
                "tilestored [{a0} + {sc}*1], tmm1",
                "mov {a1}, {sc}",
                "shl {a1}, 4",
                "add {a1}, {c}",
                "tilestored [{a1} + {sc}*1], tmm2",
                "add {a1}, 64",
                "tilestored [{a1} + {sc}*1], tmm3",
                a0 = inout(reg) rows => _,
                a1 = inout(reg) rows.add(16 * kp) => _,
                b0 = inout(reg) group => _,
                b1 = inout(reg) group.add(16 * kp) => _,
                n = inout(reg) kp / STEP => _,
                sa = in(reg) row_stride,
                sb = in(reg) 64usize,
                c = in(reg) out,
                sc = in(reg) ld * 4,
                options(nostack)
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Bf16;

    pub(super) fn detect() -> bool {
        false
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile(_: &mut [f32], _: usize, _: &[u16], _: usize, _: usize, _: &Bf16, _: usize, _: usize) {
        unreachable!("AMX is never detected here")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Products of random points in tiles at offsets, against double precision within the
    /// stated bound (and not far inside it: the bound is what the screen may use).
    #[test]
    fn tiles_equal_double_precision_within_the_bound() {
        if !available() {
            eprintln!("no AMX here: nothing to test");
            return;
        }
        let (n, d) = (200, 77);
        let mut s = 0x1234_5678u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let c = faer::Mat::from_fn(d, n, |_, _| next());
        let mut x = Bf16::zeros(n, d);
        let kp = x.kp;
        for (b, rows) in x.rows.as_mut_slice().chunks_mut(64 * kp).enumerate() {
            let cnt = (n - b * 64).min(64);
            pack(c.subcols(b * 64, cnt), kp, rows);
        }
        let u = pair_error(x.kp);
        let len = |i: usize| c.col(i).norm_l2();
        let mut worst: f64 = 0.0;
        for (a, b) in [(0..64, 0..64), (32..200, 96..131), (160..200, 0..200)] {
            let (ma, mb) = (a.len().div_ceil(32) * 32, b.len().div_ceil(32) * 32);
            let mut buf = vec![f32::NAN; mb * 256];
            tile(&mut buf, 256, &x.groups(a.clone()), a.clone(), &x, b.clone());
            for (j, bj) in b.clone().enumerate() {
                for (i, ai) in a.clone().enumerate() {
                    let exact: f64 = (0..d).map(|l| c[(l, ai)] * c[(l, bj)]).sum();
                    let err = (f64::from(buf[j * 256 + i]) - exact).abs();
                    assert!(err <= u * len(ai) * len(bj) + flush_error(x.kp), "({ai}, {bj}): {err}");
                    worst = worst.max(err / (len(ai) * len(bj)));
                }
                assert!(ma <= 256);
            }
        }
        assert!(worst > u / 64.0, "the bound is not vacuous: worst relative error {worst:e}, bound {u:e}");
    }

    /// The packed groups hold pair `p` of point `n` of each group at `u32` position `16 p + n`
    /// (the vectorised transposition against the definition).
    #[test]
    fn groups_interleave_the_pairs_of_sixteen_points() {
        let (n, d) = (80, 100);
        let c = faer::Mat::from_fn(d, n, |l, i| (l * 131 + i * 7) as f64);
        let mut x = Bf16::zeros(n, d);
        let kp = x.kp;
        pack(c.as_ref(), kp, x.rows.as_mut_slice());
        let g = x.groups(32..80);
        let (rows, lines) = (x.rows.as_slice(), g.lines.as_slice());
        for t in 0..64 {
            let (group, lane) = (t / 16, t % 16);
            for l in 0..kp {
                assert_eq!(lines[group * kp * 16 + (l / 2) * 32 + lane * 2 + l % 2], rows[(32 + t) * kp + l]);
            }
        }
        // The portable path (the fallback where AVX-512 is missing) against the same layout.
        let mut plain = vec![0u16; 16 * kp];
        transpose_pairs_portable(&rows[32 * kp..48 * kp], kp, &mut plain);
        assert_eq!(&lines[..16 * kp], &plain[..]);
    }

    /// Coordinates that all round the same way (just above 1 and its halves, by 3/8 of a
    /// bfloat16 step): the product errs by three quarters of the bound, and stays within it.
    #[test]
    fn aligned_roundings_come_near_the_bound() {
        if !available() {
            return eprintln!("no AMX here: nothing to test");
        }
        let (n, d) = (32, 96);
        let v = 1.0 + 3.0 * 2f64.powi(-10);
        let c = faer::Mat::from_fn(d, n, |_, i| v * 2f64.powi(-((i % 4) as i32) - 1));
        let mut x = Bf16::zeros(n, d);
        let kp = x.kp;
        pack(c.as_ref(), kp, x.rows.as_mut_slice());
        let mut buf = vec![0f32; 32 * 32];
        tile(&mut buf, 32, &x.groups(0..32), 0..32, &x, 0..32);
        let u = pair_error(kp);
        let rel = |a: usize, b: usize| {
            let exact: f64 = (0..d).map(|l| c[(l, a)] * c[(l, b)]).sum();
            (f64::from(buf[b * 32 + a]) - exact).abs() / (c.col(a).norm_l2() * c.col(b).norm_l2())
        };
        let worst = (0..32).flat_map(|a| (0..32).map(move |b| (a, b))).map(|(a, b)| rel(a, b)).fold(0.0, f64::max);
        assert!(worst <= u && worst > 0.7 * u, "worst relative error {worst:e}, bound {u:e}");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Tiles of 256 × 256 points (d = 784) cycling over 1, 2 and 4 blocks of points (0.8, 1.6
    /// and 3.2 MB of operands): prints GFLOP/s by process CPU time (`cargo test --release -p
    /// geomem-lid --lib tile_speed -- --ignored --nocapture`). Asserts nothing about speed.
    #[test]
    #[ignore]
    fn tile_speed() {
        if !available() {
            return eprintln!("no AMX here");
        }
        let (n, d) = (1024, 784);
        let c = faer::Mat::from_fn(d, n, |l, i| ((l * 7 + i * 3) % 13) as f64 / 13.0 - 0.5);
        let mut x = Bf16::zeros(n, d);
        let kp = x.kp;
        for (b, rows) in x.rows.as_mut_slice().chunks_mut(64 * kp).enumerate() {
            pack(c.subcols(b * 64, 64), kp, rows);
        }
        let mut g = Groups::new();
        let mut buf = vec![0f32; 256 * 256];
        let cpu = || {
            let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            let f: Vec<f64> =
                s.rsplit(')').next().unwrap_or("").split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
            (f[11] + f[12]) / 100.0
        };
        for cycle in [1, 2, 4] {
            let range = |r: usize| (r % cycle) * 256..(r % cycle) * 256 + 256;
            let (reps, t0) = (2000, cpu());
            for r in 0..reps {
                x.groups_into(range(r), &mut g);
                tile(&mut buf, 256, &g, range(r), &x, range(r + cycle / 2));
            }
            let flops = 2.0 * 256.0 * 256.0 * kp as f64 * reps as f64;
            eprintln!("{cycle} block(s): {:.0} GFLOP/s", flops / (cpu() - t0) / 1e9);
        }
    }
}
