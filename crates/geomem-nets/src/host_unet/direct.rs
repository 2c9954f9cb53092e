//! Direct 3×3 stride-1 convolutions (padding 1) on channel-major maps, in AVX-512.
//!
//! The im2col path ([`super::ops::Conv`]) writes each input channel nine times, shifted,
//! and multiplies that matrix; here the nine shifts are loads at an offset from the input
//! itself, masked where a pixel's neighbour lies outside its image (the padding's zeros),
//! so no column matrix is written. A register tile of `C` output channels × `P` vectors of
//! 16 pixels accumulates over the input channels and the nine offsets.
//!
//! Three passes use it: the forward convolution; the input's gradient, which for a 3×3
//! stride-1 "same" convolution is the same convolution of the output's gradient by the
//! flipped, transposed kernel; and the weight's gradient, a tile of `I` input × `O` output
//! channels whose 16-lane partial sums run over the pixels. The sums run in another order
//! than the GEMM's, so results differ from the im2col path by `f32` rounding only (tested in
//! `host_unet::tests`); each part of the batch still gives the same numbers on any thread.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Whether this CPU runs the direct kernels.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// [`Shifts`] for `b` images of side `h`, built once per thread and shape.
pub(crate) fn shifts(b: usize, h: usize) -> std::rc::Rc<Shifts> {
    use std::{cell::RefCell, collections::HashMap, rc::Rc};
    thread_local! {
        static MADE: RefCell<HashMap<(usize, usize), Rc<Shifts>>> = RefCell::new(HashMap::new());
    }
    MADE.with(|m| m.borrow_mut().entry((b, h)).or_insert_with(|| Rc::new(Shifts::new(b, h))).clone())
}

/// The nine offsets of a 3×3 kernel on `b` images of side `h`, with their masks: bit `j` of
/// `masks[q·nv + v]` is set when pixel `16v + j` exists and its neighbour at offset `q`
/// lies inside the same image.
pub(crate) struct Shifts {
    off: [isize; 9],
    masks: Vec<u16>,
    nv: usize,
    n: usize,
    /// The largest `|off|`: `h + 1`.
    reach: usize,
}

impl Shifts {
    pub fn new(b: usize, h: usize) -> Self {
        let (hw, n) = (h * h, b * h * h);
        let nv = n.div_ceil(16);
        let mut masks = vec![0u16; 9 * nv];
        let mut off = [0isize; 9];
        let side = h as isize;
        for (q, o) in off.iter_mut().enumerate() {
            let (dy, dx) = (q as isize / 3 - 1, q as isize % 3 - 1);
            *o = dy * side + dx;
            for p in 0..n {
                let (y, x) = (((p % hw) / h) as isize + dy, (p % h) as isize + dx);
                if (0..side).contains(&y) && (0..side).contains(&x) {
                    masks[q * nv + p / 16] |= 1 << (p % 16);
                }
            }
        }
        Self { off, masks, nv, n, reach: h + 1 }
    }
    #[inline(always)]
    fn mask(&self, q: usize, v: usize) -> u16 {
        self.masks[q * self.nv + v]
    }
    /// The lanes of vector `v` that are pixels (all but the last vector's tail).
    #[inline(always)]
    fn live(&self, v: usize) -> u16 {
        let left = self.n - 16 * v;
        if left >= 16 {
            u16::MAX
        } else {
            (1u16 << left) - 1
        }
    }
}

/// A 3×3 kernel laid out `[q][i][o]` for [`conv`], in a pool buffer (give it back): burn's
/// `[co][ci][3][3]` as a convolution from `i = ci` to `o = co` (`flip = false`), or, for the
/// input's gradient, its flipped transposed kernel, a convolution from `i = co` to `o = ci`
/// (`flip = true`).
pub(crate) fn arrange(w: &[f32], cin: usize, cout: usize, flip: bool) -> Vec<f32> {
    let (a, b) = if flip { (cout, cin) } else { (cin, cout) };
    // From the pool: a fresh vector of this size (above 128 KiB) would be new pages each
    // call, which cost more than a small convolution. Every entry is written below, in
    // order; the reads jump instead.
    let mut t = super::ops::pool::take(9 * a * b);
    let mut dst = t.iter_mut();
    for qq in 0..9 {
        for i in 0..a {
            for o in 0..b {
                let (co, ci, q) = if flip { (i, o, 8 - qq) } else { (o, i, qq) };
                *dst.next().expect("9·a·b entries") = w[(co * cin + ci) * 9 + q];
            }
        }
    }
    t
}

/// `y[o] (=|+=) Σ_{i,q} wt[q][i][o] · shift_q(x[i])`, plus `bias[o]` when given; `x` has
/// `cin` channels and `y` `cout`, both of `s.n` pixels.
pub(crate) fn conv(s: &Shifts, x: &[f32], cin: usize, wt: &[f32], bias: Option<&[f32]>, y: &mut [f32], add: bool) {
    let cout = wt.len() / (9 * cin).max(1);
    assert!(x.len() >= cin * s.n && y.len() >= cout * s.n && wt.len() == 9 * cin * cout);
    assert!(bias.is_none_or(|b| b.len() == cout));
    assert!(available(), "the direct kernels need AVX-512 (Conv checks before choosing them)");
    // SAFETY: avx512f was checked just above, and the lengths bound every unmasked access.
    unsafe { conv_all(s, x, cin, cout, wt, bias, y, add) }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn conv_all(
    s: &Shifts,
    x: &[f32],
    cin: usize,
    cout: usize,
    wt: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    add: bool,
) {
    const P: usize = 6;
    // Each block of P vectors reads its pixels and their neighbours from a copy, channel
    // rows an odd number of cache lines apart, so that the rows of all channels fall on
    // different L1 sets: rows of the maps themselves lie a multiple of 1-4 KiB apart at
    // some sides (4 × 4, 8 × 8 and 28 × 28 by 16 images) and then evict each other.
    let lines = (16 * P + 2 * s.reach).div_ceil(16);
    let xs = 16 * (lines | 1);
    let mut buf = super::ops::pool::take(cin * xs);
    let mut v0 = 0;
    while v0 < s.nv {
        let pv = (s.nv - v0).min(P);
        let start = (16 * v0) as isize - s.reach as isize;
        let (lo, hi) = (start.max(0) as usize, ((start + xs as isize) as usize).min(s.n));
        for (i, row) in buf.chunks_exact_mut(xs).enumerate() {
            row[(lo as isize - start) as usize..][..hi - lo].copy_from_slice(&x[i * s.n + lo..i * s.n + hi]);
        }
        let mut co = 0;
        while co < cout {
            let c = (cout - co).min(4);
            let t = Tile { s, x: &buf, xs, x0: -start, cin, cout, wt, co, v0 };
            macro_rules! run {
                ($($cc:literal),*) => {
                    match (c, pv) {
                        $(($cc, 6) => t.fwd::<$cc, 6>(bias, y, add),
                          ($cc, 5) => t.fwd::<$cc, 5>(bias, y, add),
                          ($cc, 4) => t.fwd::<$cc, 4>(bias, y, add),
                          ($cc, 3) => t.fwd::<$cc, 3>(bias, y, add),
                          ($cc, 2) => t.fwd::<$cc, 2>(bias, y, add),
                          ($cc, 1) => t.fwd::<$cc, 1>(bias, y, add),)*
                        _ => unreachable!("tiles are at most 4 channels × 6 vectors"),
                    }
                };
            }
            run!(1, 2, 3, 4);
            co += c;
        }
        v0 += pv;
    }
    super::ops::pool::give(buf);
}

/// One register tile of [`conv`]: output channels `co..co + C`, vectors `v0..v0 + P`.
#[derive(Clone, Copy)]
struct Tile<'a> {
    s: &'a Shifts,
    /// The input: channel `i`'s pixel `p` at `x[i·xs + x0 + p]` (pixels a tile may read).
    x: &'a [f32],
    xs: usize,
    x0: isize,
    cin: usize,
    cout: usize,
    wt: &'a [f32],
    co: usize,
    v0: usize,
}

impl Tile<'_> {
    #[inline(always)]
    unsafe fn fwd<const C: usize, const P: usize>(self, bias: Option<&[f32]>, y: &mut [f32], add: bool) {
        let s = self.s;
        let mut acc = [[_mm512_setzero_ps(); P]; C];
        let xp = self.x.as_ptr();
        for q in 0..9 {
            let m: [u16; P] = std::array::from_fn(|j| s.mask(q, self.v0 + j));
            let shift = self.x0 + s.off[q] + 16 * self.v0 as isize;
            let wq = self.wt.as_ptr().add(q * self.cin * self.cout + self.co);
            for i in 0..self.cin {
                // Masked-off lanes are not read, so the shifted pointer may leave the slice.
                let base = xp.add(i * self.xs).wrapping_offset(shift);
                let xv: [__m512; P] = std::array::from_fn(|j| _mm512_maskz_loadu_ps(m[j], base.wrapping_add(16 * j)));
                let wi = wq.add(i * self.cout);
                for (c, row) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*wi.add(c));
                    for (a, &xj) in row.iter_mut().zip(&xv) {
                        *a = _mm512_fmadd_ps(wv, xj, *a);
                    }
                }
            }
        }
        for (c, row) in acc.iter().enumerate() {
            let o = self.co + c;
            let b = _mm512_set1_ps(bias.map_or(0.0, |b| b[o]));
            for (j, &a) in row.iter().enumerate() {
                let v = self.v0 + j;
                let live = s.live(v);
                let dst = y.as_mut_ptr().add(o * s.n + 16 * v);
                let old = if add { _mm512_maskz_loadu_ps(live, dst) } else { b };
                _mm512_mask_storeu_ps(dst, live, _mm512_add_ps(a, old));
            }
        }
    }
}

/// `g[co][ci][q] += Σ_p dy[co][p] · shift_q(x[ci])[p]` (burn's weight layout), for `x` of
/// `cin` and `dy` of `cout` channels.
pub(crate) fn weight_grad(s: &Shifts, x: &[f32], cin: usize, dy: &[f32], cout: usize, g: &mut [f32]) {
    assert!(x.len() >= cin * s.n && dy.len() >= cout * s.n && g.len() == 9 * cin * cout);
    assert!(available(), "the direct kernels need AVX-512 (Conv checks before choosing them)");
    // SAFETY: as in `conv`.
    unsafe { weight_grad_all(s, x, cin, dy, cout, g) }
}

/// Vectors per chunk of the weight gradient: a tile's 4 + 4 channels of a chunk stay in L1
/// while the nine offsets pass over them.
const WG_CHUNK: usize = 32;

#[target_feature(enable = "avx512f")]
unsafe fn weight_grad_all(s: &Shifts, x: &[f32], cin: usize, dy: &[f32], cout: usize, g: &mut [f32]) {
    let mut ci = 0;
    while ci < cin {
        let ni = (cin - ci).min(4);
        let mut co = 0;
        while co < cout {
            let no = (cout - co).min(4);
            // 16-lane partial sums per (q, i, o) of this tile, reduced once at its end.
            let mut part = [0f32; 9 * 16 * 16];
            let mut v0 = 0;
            while v0 < s.nv {
                let v1 = (v0 + WG_CHUNK).min(s.nv);
                for q in 0..9 {
                    WTile { s, x, dy, q, ci, co, v0, v1 }.dispatch(ni, no, &mut part);
                }
                v0 = v1;
            }
            for (q, sums) in part.chunks_exact(256).enumerate() {
                for (k, v) in sum16(sums).into_iter().enumerate() {
                    let (i, o) = (k / 4, k % 4);
                    if i < ni && o < no {
                        g[((co + o) * cin + ci + i) * 9 + q] += v;
                    }
                }
            }
            co += no;
        }
        ci += ni;
    }
}

/// The lane sums of 16 vectors of 16 lanes (`v[16k..16k + 16]` → entry `k`), by a
/// transposing tree of 15 vector additions.
#[target_feature(enable = "avx512f")]
unsafe fn sum16(v: &[f32]) -> [f32; 16] {
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
    let d =
        _mm512_add_ps(_mm512_shuffle_ps::<0b10_00_10_00>(c[0], c[1]), _mm512_shuffle_ps::<0b11_01_11_01>(c[0], c[1]));
    let mut lanes = [0f32; 16];
    _mm512_storeu_ps(lanes.as_mut_ptr(), d);
    let mut out = [0f32; 16];
    for (l, &k) in FROM.iter().enumerate() {
        out[k] = lanes[l];
    }
    out
}

/// One tile of [`weight_grad`]: input channels `ci..ci + I`, output channels
/// `co..co + O`, offset `q`, vectors `v0..v1`; its sums go to `part[q][i][o]`.
#[derive(Clone, Copy)]
struct WTile<'a> {
    s: &'a Shifts,
    x: &'a [f32],
    dy: &'a [f32],
    q: usize,
    ci: usize,
    co: usize,
    v0: usize,
    v1: usize,
}

impl WTile<'_> {
    /// Runs the tile of `ni × no` channels (each at most 4).
    #[inline(always)]
    unsafe fn dispatch(self, ni: usize, no: usize, part: &mut [f32]) {
        macro_rules! run {
            ($($a:literal),*) => {
                match (ni, no) {
                    $(($a, 1) => self.run::<$a, 1>(part),
                      ($a, 2) => self.run::<$a, 2>(part),
                      ($a, 3) => self.run::<$a, 3>(part),
                      ($a, 4) => self.run::<$a, 4>(part),)*
                    _ => unreachable!("tiles are at most 4 × 4"),
                }
            };
        }
        run!(1, 2, 3, 4)
    }

    #[inline(always)]
    unsafe fn run<const I: usize, const O: usize>(self, part: &mut [f32]) {
        let s = self.s;
        let mut acc = [[_mm512_setzero_ps(); O]; I];
        let (xp, dp) = (self.x.as_ptr(), self.dy.as_ptr());
        let off = s.off[self.q];
        for v in self.v0..self.v1 {
            // Lanes whose neighbour is padding add nothing: dy is read under the same mask.
            let m = s.mask(self.q, v);
            let xv: [__m512; I] = std::array::from_fn(|i| {
                _mm512_maskz_loadu_ps(m, xp.add((self.ci + i) * s.n).wrapping_offset(off + 16 * v as isize))
            });
            let dv: [__m512; O] =
                std::array::from_fn(|o| _mm512_maskz_loadu_ps(m, dp.add((self.co + o) * s.n + 16 * v)));
            for (row, &xi) in acc.iter_mut().zip(&xv) {
                for (a, &d) in row.iter_mut().zip(&dv) {
                    *a = _mm512_fmadd_ps(xi, d, *a);
                }
            }
        }
        let base = part.as_mut_ptr().add(256 * self.q);
        for (i, row) in acc.iter().enumerate() {
            for (o, &a) in row.iter().enumerate() {
                let dst = base.add(16 * (4 * i + o));
                _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), a));
            }
        }
    }
}
