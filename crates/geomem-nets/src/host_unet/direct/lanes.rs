//! The vector operations the direct kernels need, on vectors of 16 pixels: one AVX-512
//! register ([`Z`]) or a pair of AVX2 registers ([`Y`]).
//!
//! Both run every lane's sums in the same order (a lane is a pixel, whatever the register
//! width), and [`Lanes::sums`] adds the 16 lanes of a partial sum in the same tree on both,
//! so the two instruction sets should give the same numbers bit for bit
//! (`host_unet::tests::both_instruction_sets_give_the_same_bits` checks it where a CPU has
//! both; written on a CPU with AVX2 only, it passed on a Zen 4 with AVX-512).
//!
//! Every method is `unsafe`: it needs its instruction set, which the kernels' entry points
//! (`#[target_feature]` functions, after a run-time check) provide; the methods are
//! `#[inline(always)]` so that they compile inside those functions.

use std::arch::x86_64::*;

/// A vector of 16 `f32` lanes with masked loads and stores.
pub(crate) trait Lanes: Copy {
    /// 16 lanes.
    type V: Copy;
    /// A lane mask, made once from a `u16` and used for many loads.
    type M: Copy;
    /// Register tiles of the forward kernel: output channels × vectors, at most.
    const FWD: (usize, usize);
    /// Register tiles of the weight gradient: input × output channels, at most.
    const WGT: (usize, usize);
    unsafe fn mask(m: u16) -> Self::M;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// The lanes of `p[0..16]` under `m`, zeros elsewhere; masked-off lanes are not read.
    unsafe fn load(m: Self::M, p: *const f32) -> Self::V;
    /// [`Lanes::load`] where every lane of `p[0..16]` may be read (masked-off lanes hold any
    /// bits, NaN included): cheaper on AVX2.
    unsafe fn load_in(m: Self::M, p: *const f32) -> Self::V;
    /// Writes the lanes under `m` to `p[0..16]`; the others are not touched.
    unsafe fn store(p: *mut f32, m: Self::M, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`, fused.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The lane sums of 16 vectors stored one after another (`v[16k..16k + 16]` → entry `k`),
    /// each as `((v₀ + v₈) + (v₄ + v₁₂)) + ((v₂ + v₁₀) + (v₆ + v₁₄))` + the same from lane 1:
    /// see [`hsum`].
    unsafe fn sums(v: &[f32]) -> [f32; 16];
}

/// The lane sum of one vector in the order of [`Lanes::sums`] (the reference the tests
/// compare with): `u_e = (v_e + v_{8+e}) + (v_{4+e} + v_{12+e})`, then `(u₀ + u₂) + (u₁ + u₃)`.
#[cfg(test)]
pub(crate) fn hsum(v: &[f32]) -> f32 {
    let u: [f32; 4] = std::array::from_fn(|e| (v[e] + v[8 + e]) + (v[4 + e] + v[12 + e]));
    (u[0] + u[2]) + (u[1] + u[3])
}

/// AVX-512: one register per vector.
#[derive(Clone, Copy)]
pub(crate) struct Z;

impl Lanes for Z {
    type V = __m512;
    type M = u16;
    const FWD: (usize, usize) = (4, 6);
    const WGT: (usize, usize) = (4, 4);
    #[inline(always)]
    unsafe fn mask(m: u16) -> u16 {
        m
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(m: u16, p: *const f32) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[inline(always)]
    unsafe fn load_in(m: u16, p: *const f32) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, m: u16, v: __m512) {
        _mm512_mask_storeu_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    /// A transposing tree of 15 vector additions.
    #[inline(always)]
    unsafe fn sums(v: &[f32]) -> [f32; 16] {
        // Output lane `l` of the tree holds the sum of vector `FROM[l]`.
        const FROM: [usize; 16] = [0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15];
        let ld = |k: usize| _mm512_loadu_ps(v.as_ptr().add(16 * k));
        let a: [__m512; 8] = std::array::from_fn(|k| {
            let (x, y) = (ld(k), ld(k + 8));
            _mm512_add_ps(_mm512_shuffle_f32x4::<0b01_00_01_00>(x, y), _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y))
        });
        let b: [__m512; 4] = std::array::from_fn(|j| {
            let (x, y) = (a[j], a[j + 4]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(x, y), _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y))
        });
        let c: [__m512; 2] = std::array::from_fn(|j| {
            let (x, y) = (b[j], b[j + 2]);
            _mm512_add_ps(_mm512_shuffle_ps::<0b01_00_01_00>(x, y), _mm512_shuffle_ps::<0b11_10_11_10>(x, y))
        });
        let d = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(c[0], c[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(c[0], c[1]),
        );
        let mut lanes = [0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), d);
        let mut out = [0f32; 16];
        for (l, &k) in FROM.iter().enumerate() {
            out[k] = lanes[l];
        }
        out
    }
}

/// AVX2 and FMA: a pair of registers per vector (lanes 0-7, 8-15). With 16 registers, the
/// tiles are smaller than [`Z`]'s.
#[derive(Clone, Copy)]
pub(crate) struct Y;

impl Lanes for Y {
    type V = [__m256; 2];
    type M = [__m256i; 2];
    const FWD: (usize, usize) = (4, 1);
    const WGT: (usize, usize) = (2, 2);
    #[inline(always)]
    unsafe fn mask(m: u16) -> [__m256i; 2] {
        let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let half = |b: u16| _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(i32::from(b)), bits), bits);
        [half(m & 0xff), half(m >> 8)]
    }
    #[inline(always)]
    unsafe fn zero() -> [__m256; 2] {
        [_mm256_setzero_ps(); 2]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> [__m256; 2] {
        [_mm256_set1_ps(x); 2]
    }
    #[inline(always)]
    unsafe fn load(m: [__m256i; 2], p: *const f32) -> [__m256; 2] {
        [_mm256_maskload_ps(p, m[0]), _mm256_maskload_ps(p.wrapping_add(8), m[1])]
    }
    /// A plain load and a bitwise and: one instruction less than a masked load, and any
    /// bits (NaN included) under a zero mask become `+0.0`.
    #[inline(always)]
    unsafe fn load_in(m: [__m256i; 2], p: *const f32) -> [__m256; 2] {
        let and = |v, m| _mm256_and_ps(v, _mm256_castsi256_ps(m));
        [and(_mm256_loadu_ps(p), m[0]), and(_mm256_loadu_ps(p.add(8)), m[1])]
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, m: [__m256i; 2], v: [__m256; 2]) {
        _mm256_maskstore_ps(p, m[0], v[0]);
        _mm256_maskstore_ps(p.wrapping_add(8), m[1], v[1]);
    }
    #[inline(always)]
    unsafe fn add(a: [__m256; 2], b: [__m256; 2]) -> [__m256; 2] {
        [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])]
    }
    #[inline(always)]
    unsafe fn fma(a: [__m256; 2], b: [__m256; 2], c: [__m256; 2]) -> [__m256; 2] {
        [_mm256_fmadd_ps(a[0], b[0], c[0]), _mm256_fmadd_ps(a[1], b[1], c[1])]
    }
    /// Per vector: lanes `e` and `8 + e` added, then the two 128-bit halves, then the
    /// usual two shuffles: [`Z::sums`]' tree, one vector at a time.
    #[inline(always)]
    unsafe fn sums(v: &[f32]) -> [f32; 16] {
        std::array::from_fn(|k| {
            let p = v.as_ptr().add(16 * k);
            let w = _mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            let u = _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps::<1>(w));
            let h = _mm_add_ps(u, _mm_movehl_ps(u, u));
            _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<0b01>(h, h)))
        })
    }
}

/// [`Lanes::sums`] on `isa` (for the tests: it must be on this CPU).
#[cfg(test)]
pub(crate) fn sums(isa: super::Isa, v: &[f32]) -> [f32; 16] {
    #[target_feature(enable = "avx512f")]
    unsafe fn z(v: &[f32]) -> [f32; 16] {
        Z::sums(v)
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn y(v: &[f32]) -> [f32; 16] {
        Y::sums(v)
    }
    assert!(isa.on_this_cpu() && v.len() >= 256);
    // SAFETY: the instruction set was checked just above, and `v` holds 16 vectors.
    unsafe {
        match isa {
            super::Isa::Avx512 => z(v),
            super::Isa::Avx2 => y(v),
        }
    }
}
