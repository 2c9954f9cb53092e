//! This CPU's peak multiply-add rates per core, the hardware limit the k-NN screens and the
//! host U-Net's kernels are measured against (docs/BENCHMARKS.md): twelve independent chains
//! of single-precision FMA (AVX-512 and AVX2), of bfloat16 dot products (`VDPBF16PS`) and of
//! unsigned × signed byte dot products (`VPDPBUSD`), each on one thread, best of 3.
//!
//! Usage: `cargo run --release -p geomem-benches --bin peak_speed` (prints what this CPU has;
//! skips what it lacks).

use std::time::Instant;

/// Chains run at once: enough independent accumulators to cover the instructions' latency.
const CHAINS: usize = 12;

/// Best of 3 of `f(n)` in multiply-adds per second, `per` multiply-adds per instruction.
fn rate(per: usize, f: impl Fn(usize) -> f32) -> f64 {
    let n = 200_000_000 / CHAINS;
    (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f(n));
            (n * CHAINS * per) as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(n: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(0.999_999_9));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..n {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(n: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(1.000_000_1), _mm256_set1_ps(0.999_999_9));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..n {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let s = acc.iter().fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
        let mut o = [0f32; 8];
        // SAFETY: `o` holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), s) };
        o.iter().sum()
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn bf16(n: usize) -> f32 {
        // SAFETY: 32 bfloat16 ones (0x3f80) are 64 bytes, as a `__m512bh` is.
        let one: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi16(0x3f80)) };
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..n {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, one, one);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)))
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn vnni(n: usize) -> f32 {
        let (u, s) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..n {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, u, s);
            }
        }
        _mm512_reduce_add_epi32(acc.iter().fold(_mm512_setzero_si512(), |s, &v| _mm512_add_epi32(s, v))) as f32
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let g = 1e-9;
        if has!("avx512f") {
            // SAFETY: avx512f was detected.
            println!("f32 FMA, AVX-512: {:.1} GMAC/s", g * rate(16, |n| unsafe { x86::fma512(n) }));
        }
        if has!("avx2") && has!("fma") {
            // SAFETY: avx2 and fma were detected.
            println!("f32 FMA, AVX2: {:.1} GMAC/s", g * rate(8, |n| unsafe { x86::fma256(n) }));
        }
        if has!("avx512f") && has!("avx512bf16") {
            // SAFETY: avx512f and avx512bf16 were detected.
            println!("bfloat16 VDPBF16PS: {:.1} GMAC/s", g * rate(32, |n| unsafe { x86::bf16(n) }));
        }
        if has!("avx512f") && has!("avx512vnni") {
            // SAFETY: avx512f and avx512vnni were detected.
            println!("int8 VPDPBUSD: {:.1} GMAC/s", g * rate(64, |n| unsafe { x86::vnni(n) }));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("no x86-64: nothing measured");
}
