//! Winograd's F(2×2, 3×3) convolution (Lavin & Gray, "Fast algorithms for convolutional
//! neural networks", 2016) on channel-major maps of any side from 2, in AVX-512: the same 3×3
//! stride-1 "same" convolutions as [`super::conv`], with 16 multiplications for every 2 × 2
//! outputs instead of 36.
//!
//! Each 2 × 2 block of outputs is a tile; its 4 × 4 input patch `d` (the pixels one step
//! around it, zeros outside the image) becomes `V = Bᵀ d B`, the kernel `g` becomes
//! `U = G g Gᵀ`, and the outputs are `Aᵀ (U ⊙ V) A`, with
//! `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`, `G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]`,
//! `Aᵀ = [1 1 1 0; 0 1 -1 -1]`. Summed over the input channels, `U ⊙ V` is 16 matrix
//! products (one per position of the 4 × 4 transform) of `cin` by `cout` by the tiles.
//!
//! The input is first split into its four polyphase components (even or odd rows by even or
//! odd columns), each a map of one pixel per tile. A patch's rows are then the odd component
//! of the tile row above, the even and odd ones of its own and the even one of the row
//! below, and its columns likewise: every entry of `V` for 16 tiles is a few masked loads of
//! the components at tile offsets of at most one row and column (the masks of
//! [`Shifts`] on the grid of tiles) and additions, vector by vector, with no gather. The
//! outputs come back through the same four components.
//!
//! The sums run in another order than the direct kernel's and the transforms add up to 16
//! terms, so the results differ from it by `f32` rounding (tested in `host_unet::tests`);
//! each part of the batch still gives the same numbers on any thread.

pub(crate) mod four;
pub(crate) mod grad;

use super::{live, shifts, Shifts};
use crate::host_unet::ops::pool;
use std::arch::x86_64::*;

/// Vectors of 16 tiles per block: a block's transformed inputs and products are made and
/// used while they are in cache.
const BLOCK: usize = 12;

/// Register tile of the products: output channels × vectors of 16 tiles.
const TILE: (usize, usize) = (4, 6);

/// Bytes of a chunk of input channels in the products: its rows of one tile's inputs and
/// of the kernels (half of a 32 KiB L1).
const CHUNK_BYTES: usize = 16 << 10;

/// `U = G g Gᵀ` for every kernel, laid out `[pos][i][o]` (16 positions) in a pool buffer
/// (give it back): from burn's `[co][ci][3][3]` as a convolution from `i = ci` to `o = co`
/// (`flip = false`), or, for the input's gradient, from its flipped transposed kernel, from
/// `i = co` to `o = ci` (`flip = true`), as [`super::arrange`].
pub(crate) fn arrange(w: &[f32], cin: usize, cout: usize, flip: bool) -> Vec<f32> {
    arrange_by(w, cin, cout, flip, 16, |g, out| out.copy_from_slice(&transform_kernel(g)))
}

/// The kernels of `w` (as [`arrange`] reads them) transformed by `transform` (16 kernels at
/// once, into `positions` lines of 16 lanes), laid out `[pos][i][o]` in a pool buffer.
fn arrange_by(
    w: &[f32],
    cin: usize,
    cout: usize,
    flip: bool,
    positions: usize,
    transform: impl Fn(&[[f32; 16]; 9], &mut [[f32; 16]]),
) -> Vec<f32> {
    let (a, b) = if flip { (cout, cin) } else { (cin, cout) };
    let mut u = pool::take(positions * a * b);
    let mut t = vec![[0f32; 16]; positions];
    // Sixteen outputs at a time, lane by lane (the compiler's vectors): each of the 16
    // destination lines is written whole.
    for i in 0..a {
        for o0 in (0..b).step_by(16) {
            let os = o0..(o0 + 16).min(b);
            let mut g = [[0f32; 16]; 9];
            for (l, o) in os.clone().enumerate() {
                let (co, ci) = if flip { (i, o) } else { (o, i) };
                let k = &w[(co * cin + ci) * 9..][..9];
                for (q, g) in g.iter_mut().enumerate() {
                    g[l] = if flip { k[8 - q] } else { k[q] };
                }
            }
            transform(&g, &mut t);
            for (pos, t) in t.iter().enumerate() {
                u[(pos * a + i) * b..][os.clone()].copy_from_slice(&t[..os.len()]);
            }
        }
    }
    u
}

/// `G g Gᵀ` of 16 kernels at once (lane `l` of `g[3r + s]` is kernel `l`'s `g(r, s)`),
/// row-major 4 × 4.
fn transform_kernel(g: &[[f32; 16]; 9]) -> [[f32; 16]; 16] {
    let mut out = [[0f32; 16]; 16];
    // One kernel per iteration; the iterations are independent and read and write lane `l`
    // of each line, so the compiler runs them as vectors.
    for l in 0..16 {
        // `G c` of a column of three.
        let gcol = |c: [f32; 3]| [c[0], 0.5 * (c[0] + c[1] + c[2]), 0.5 * (c[0] - c[1] + c[2]), c[2]];
        // Rows first (G g: 4 × 3), then columns ((G g) Gᵀ: 4 × 4).
        let cols: [[f32; 4]; 3] = std::array::from_fn(|s| gcol([g[s][l], g[3 + s][l], g[6 + s][l]]));
        for k in 0..4 {
            for (j, v) in gcol([cols[0][k], cols[1][k], cols[2][k]]).into_iter().enumerate() {
                out[4 * k + j][l] = v;
            }
        }
    }
    out
}

/// Whether [`conv`] takes maps of side `h`: from 2 (an odd side is tiled as the next even
/// one, its last row and column of tiles reaching one pixel of zeros past the image).
pub(crate) fn fits(h: usize) -> bool {
    h >= 2
}

/// The tile of a Winograd convolution: F(2×2, 3×3) or F(4×4, 3×3) ([`four`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tile {
    Two,
    Four,
}

/// `y[o] (=|+=) Σ_i conv3×3(x[i], kernel i → o)` plus `bias[o]` when given, for `b` images of
/// side `h` (see [`fits`] and [`four::fits`]) by the Winograd convolution of `tile`: `x` has
/// `cin` channels of `b·h²` pixels, `u` is [`arrange`]'s (or [`four::arrange`]'s), `y` has
/// `u.len() / (16 cin)` (or `36 cin`) channels. The CPU must have AVX-512F.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    tile: Tile,
    b: usize,
    h: usize,
    x: &[f32],
    cin: usize,
    u: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    add: bool,
) {
    match tile {
        Tile::Two => {
            assert!(fits(h), "a side F(2×2, 3×3) takes");
            run(&Grid::new(b, h), x, cin, u, bias, y, add);
        }
        Tile::Four => {
            assert!(four::fits(h), "a side F(4×4, 3×3) takes");
            run(&four::Four::new(b, h), x, cin, u, bias, y, add);
        }
    }
}

/// The steps of a Winograd convolution on a [`Grid`] of tiles: F(2×2, 3×3) (the grid itself)
/// or F(4×4, 3×3) ([`four::Four`]).
pub(super) trait Scheme {
    /// Polyphase components (a tile's output pixels), positions of the transform, vectors
    /// of tiles per block.
    const PARTS: usize;
    const POS: usize;
    const BLOCK: usize;
    fn grid(&self) -> &Grid;
    /// The input's components, `PARTS` slabs of `c` channels.
    fn split(&self, x: &[f32], c: usize, parts: &mut [f32]);
    /// The output from its components (replacing or adding).
    fn merge(&self, parts: &[f32], c: usize, y: &mut [f32], add: bool);
    /// The transformed inputs of the tiles of vectors `v0..v0 + nb`, `POS` slabs.
    ///
    /// # Safety
    /// AVX-512F; the buffers as [`run`] sizes them.
    unsafe fn inputs(&self, v0: usize, nb: usize, parts: &[f32], c: usize, v: &mut [f32]);
    /// The outputs' components of those tiles from the products (plus `bias`).
    ///
    /// # Safety
    /// As [`Scheme::inputs`].
    unsafe fn outputs(&self, v0: usize, nb: usize, m: &[f32], c: usize, bias: Option<&[f32]>, out: &mut [f32]);
}

/// One convolution by the scheme `s`, block by block: `x` has `cin` channels of the grid's
/// maps, `u` is arranged for the scheme, `y` has `u.len() / (POS cin)` channels.
///
/// # Panics
/// Where the buffers are too short for that, or the CPU lacks AVX-512F.
#[allow(clippy::too_many_arguments)]
fn run<S: Scheme>(s: &S, x: &[f32], cin: usize, u: &[f32], bias: Option<&[f32]>, y: &mut [f32], add: bool) {
    let g = s.grid();
    let (tp, nv, cout, n) = (g.tp, g.ts.nv, u.len() / (S::POS * cin).max(1), g.b * g.h * g.h);
    assert!(x.len() >= cin * n && y.len() >= cout * n && u.len() == S::POS * cin * cout);
    assert!(bias.is_none_or(|b| b.len() == cout));
    assert!(std::arch::is_x86_feature_detected!("avx512f"), "Winograd's kernels need AVX-512F");
    let mut parts = pool::take(S::PARTS * slab(cin, tp));
    s.split(x, cin, &mut parts);
    let mut out = pool::take(S::PARTS * slab(cout, tp));
    let mut v = pool::take(S::POS * slab(cin, 16 * S::BLOCK));
    let mut m = pool::take(S::POS * slab(cout, 16 * S::BLOCK));
    for v0 in (0..nv).step_by(S::BLOCK) {
        let nb = (nv - v0).min(S::BLOCK);
        // SAFETY: AVX-512F (the caller's check); the buffers' lengths bound every unmasked
        // access (masked-off lanes are not read).
        unsafe {
            s.inputs(v0, nb, &parts, cin, &mut v);
            products(nb, S::POS, &v, cin, u, cout, &mut m);
            s.outputs(v0, nb, &m, cout, bias, &mut out);
        }
    }
    s.merge(&out, cout, y, add);
    for buf in [parts, out, v, m] {
        pool::give(buf);
    }
}

impl Scheme for Grid {
    const PARTS: usize = 4;
    const POS: usize = 16;
    const BLOCK: usize = BLOCK;
    fn grid(&self) -> &Grid {
        self
    }
    fn split(&self, x: &[f32], c: usize, parts: &mut [f32]) {
        Grid::split(self, x, c, parts);
    }
    fn merge(&self, parts: &[f32], c: usize, y: &mut [f32], add: bool) {
        Grid::merge(self, parts, c, y, add);
    }
    unsafe fn inputs(&self, v0: usize, nb: usize, parts: &[f32], c: usize, v: &mut [f32]) {
        self.block(v0, nb).inputs(parts, c, v);
    }
    unsafe fn outputs(&self, v0: usize, nb: usize, m: &[f32], c: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        self.block(v0, nb).outputs(m, c, bias, out);
    }
}

/// The tiles of `b` images of side `h`: `w × w` per image, numbered image by image and row
/// by row; `ts` holds their neighbours' masks on that grid; each of the components (four
/// for tiles of two pixels a side, sixteen for four) takes `tp` floats per channel (whole
/// vectors).
pub(super) struct Grid {
    b: usize,
    h: usize,
    w: usize,
    tp: usize,
    ts: std::rc::Rc<Shifts>,
}

impl Grid {
    /// The grid of tiles of two pixels a side.
    fn new(b: usize, h: usize) -> Self {
        Self::tiled(b, h, 2)
    }

    /// The grid of tiles of `side` pixels a side (`w = ⌈h / side⌉`).
    fn tiled(b: usize, h: usize, side: usize) -> Self {
        let w = h.div_ceil(side);
        let ts = shifts(b, w);
        Self { b, h, w, tp: 16 * ts.nv, ts }
    }

    /// Vectors `v0..v0 + nb` of the tiles.
    fn block(&self, v0: usize, nb: usize) -> Block<'_> {
        Block { ts: &self.ts, tp: self.tp, w: self.w, v0, nb }
    }

    /// The blocks of at most [`BLOCK`] vectors of tiles, in order.
    fn blocks(&self) -> impl Iterator<Item = Block<'_>> {
        let nv = self.ts.nv;
        (0..nv).step_by(BLOCK).map(move |v0| self.block(v0, (nv - v0).min(BLOCK)))
    }

    /// Where [`Grid::split`] and [`Grid::merge`] run as permutations of registers: when
    /// `w` divides 16, a vector of 16 tiles is whole rows of tiles (or whole images) and its
    /// pixels are the 64 floats at `64 v` of a channel. Lane `l` of component `k = 2p + q`
    /// takes float `at[k][l]` of them.
    fn lanes(&self) -> Option<[[u32; 16]; 4]> {
        if !16usize.is_multiple_of(self.w) || !self.h.is_multiple_of(2) {
            return None;
        }
        let (h, w) = (self.h, self.w);
        Some(std::array::from_fn(|k| {
            std::array::from_fn(|t| {
                let (img, ty, tx) = (t / (w * w), t % (w * w) / w, t % w);
                (img * h * h + (2 * ty + k / 2) * h + 2 * tx + k % 2) as u32
            })
        }))
    }

    /// `parts[(2p + q)·c + i][t]` = `x[i]`'s pixel at row `2ty + p`, column `2tx + q` of
    /// tile `t`'s image.
    fn split(&self, x: &[f32], c: usize, parts: &mut [f32]) {
        if let Some(at) = self.lanes() {
            // SAFETY: AVX-512F (checked by `conv`); the loads and stores are masked to the
            // channel's pixels and the components' vectors.
            unsafe { self.split_z(&at, x, c, parts) };
            return;
        }
        let (h, w, tp) = (self.h, self.w, self.tp);
        if !h.is_multiple_of(2) {
            // The last row and column of tiles reach one pixel past the image: zeros there.
            parts.fill(0.0);
        }
        for i in 0..c {
            for (img, map) in x[i * self.b * h * h..][..self.b * h * h].chunks_exact(h * h).enumerate() {
                for (row, line) in map.chunks_exact(h).enumerate() {
                    let t = img * w * w + (row / 2) * w;
                    let at = |q: usize| (2 * (row % 2) + q) * slab(c, tp) + i * tp + t;
                    for (col, &v) in line.iter().enumerate() {
                        parts[at(col % 2) + col / 2] = v;
                    }
                }
            }
        }
    }

    /// The inverse of [`Grid::split`] into `y` (replacing or adding).
    fn merge(&self, parts: &[f32], c: usize, y: &mut [f32], add: bool) {
        if let Some(at) = self.lanes() {
            // SAFETY: as in `split`.
            unsafe { self.merge_z(&at, parts, c, y, add) };
            return;
        }
        let (h, w, tp) = (self.h, self.w, self.tp);
        for i in 0..c {
            for (img, map) in y[i * self.b * h * h..][..self.b * h * h].chunks_exact_mut(h * h).enumerate() {
                for (row, line) in map.chunks_exact_mut(h).enumerate() {
                    let t = img * w * w + (row / 2) * w;
                    let at = |q: usize| (2 * (row % 2) + q) * slab(c, tp) + i * tp + t;
                    for (col, y) in line.iter_mut().enumerate() {
                        let v = parts[at(col % 2) + col / 2];
                        *y = if add { *y + v } else { v };
                    }
                }
            }
        }
    }
}

impl Grid {
    /// [`Grid::split`] by permutations: each component's vector from the 64 floats of its
    /// tiles, two permutations of pairs of registers and a blend.
    #[target_feature(enable = "avx512f")]
    unsafe fn split_z(&self, at: &[[u32; 16]; 4], x: &[f32], c: usize, parts: &mut [f32]) {
        let n = self.b * self.h * self.h;
        let idx: [__m512i; 4] = std::array::from_fn(|k| _mm512_loadu_si512(at[k].as_ptr().cast()));
        let high: [u16; 4] = std::array::from_fn(|k| (0..16).fold(0, |m, l| m | (u16::from(at[k][l] >= 32) << l)));
        for i in 0..c {
            let src = x.as_ptr().add(i * n);
            for v in 0..self.ts.nv {
                let r: [__m512; 4] = std::array::from_fn(|j| {
                    let f = 64 * v + 16 * j;
                    _mm512_maskz_loadu_ps(live(n.saturating_sub(f)), src.add(f.min(n)))
                });
                for k in 0..4 {
                    let lo = _mm512_permutex2var_ps(r[0], idx[k], r[1]);
                    let hi = _mm512_permutex2var_ps(r[2], idx[k], r[3]);
                    let dst = parts.as_mut_ptr().add(k * slab(c, self.tp) + i * self.tp + 16 * v);
                    _mm512_storeu_ps(dst, _mm512_mask_blend_ps(high[k], lo, hi));
                }
            }
        }
    }

    /// [`Grid::merge`] by permutations: each register of 16 pixels from the four
    /// components' vectors of their tiles.
    #[target_feature(enable = "avx512f")]
    unsafe fn merge_z(&self, at: &[[u32; 16]; 4], parts: &[f32], c: usize, y: &mut [f32], add: bool) {
        let n = self.b * self.h * self.h;
        // Float `f` of the 64 is lane `from[f] % 16` of component `from[f] / 16`.
        let mut from = [0u32; 64];
        for (k, at) in at.iter().enumerate() {
            for (l, &f) in at.iter().enumerate() {
                from[f as usize] = (16 * k + l) as u32;
            }
        }
        // Components 0 and 1 in one permutation, 2 and 3 in the other.
        let idx: [__m512i; 4] = std::array::from_fn(|j| {
            let lanes: [u32; 16] = std::array::from_fn(|l| from[16 * j + l] % 32);
            _mm512_loadu_si512(lanes.as_ptr().cast())
        });
        let high: [u16; 4] =
            std::array::from_fn(|j| (0..16).fold(0, |m, l| m | (u16::from(from[16 * j + l] >= 32) << l)));
        for i in 0..c {
            let dst = y.as_mut_ptr().add(i * n);
            for v in 0..self.ts.nv {
                let comp: [__m512; 4] = std::array::from_fn(|k| {
                    _mm512_loadu_ps(parts.as_ptr().add(k * slab(c, self.tp) + i * self.tp + 16 * v))
                });
                for (j, &idx) in idx.iter().enumerate() {
                    let f = 64 * v + 16 * j;
                    let m = live(n.saturating_sub(f));
                    let lo = _mm512_permutex2var_ps(comp[0], idx, comp[1]);
                    let hi = _mm512_permutex2var_ps(comp[2], idx, comp[3]);
                    let mut out = _mm512_mask_blend_ps(high[j], lo, hi);
                    let p = dst.add(f.min(n));
                    if add {
                        out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(m, p));
                    }
                    _mm512_mask_storeu_ps(p, m, out);
                }
            }
        }
    }
}

/// Floats from one component or position of a buffer to the next: `c` channels of `len`,
/// and one cache line more, so that the 4 or 16 lines read or written together do not fall
/// on the same L1 set (at 8 × 8 and 32 channels the slabs are 32 KiB apart without it).
fn slab(c: usize, len: usize) -> usize {
    c * len + 16
}

/// Vectors `v0..v0 + nb` of the tiles: their transformed inputs and products live in
/// buffers of `16·nb` floats per position and channel.
struct Block<'a> {
    ts: &'a Shifts,
    tp: usize,
    w: usize,
    v0: usize,
    nb: usize,
}

impl Block<'_> {
    /// `v[pos][i][·] = (Bᵀ d B)[pos]` for every tile of the block and input channel.
    #[target_feature(enable = "avx512f")]
    unsafe fn inputs(&self, parts: &[f32], c: usize, v: &mut [f32]) {
        let bs = 16 * self.nb;
        for i in 0..c {
            for j in 0..self.nb {
                let d = self.patch(parts, c, i, self.v0 + j);
                let dst = v.as_mut_ptr().add(i * bs + 16 * j);
                for (pos, r) in d.iter().enumerate() {
                    _mm512_storeu_ps(dst.add(pos * slab(c, bs)), *r);
                }
            }
        }
    }

    /// `Bᵀ d B` for the 16 tiles of vector `vv`, channel `i`, position by position.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn patch(&self, parts: &[f32], c: usize, i: usize, vv: usize) -> [__m512; 16] {
        let (ts, w) = (self.ts, self.w as isize);
        let comp = |p: usize, q: usize| parts.as_ptr().add((2 * p + q) * slab(c, self.tp) + i * self.tp + 16 * vv);
        // The masked load of component (p, q) at tile offset (dy, dx): zeros off the grid.
        let at = |p, q, dy: isize, dx: isize| {
            let m = ts.mask(((dy + 1) * 3 + dx + 1) as usize, vv);
            _mm512_maskz_loadu_ps(m, comp(p, q).wrapping_offset(dy * w + dx))
        };
        // Bᵀ on the rows of the patch's columns from component column `q` at tile column
        // offset `dx`: rows 2ty-1, 2ty, 2ty+1, 2ty+2 are (odd, -1), (even, 0), (odd, 0),
        // (even, +1).
        let rows = |q, dx| {
            let (a, b, c, d) = (at(1, q, -1, dx), at(0, q, 0, dx), at(1, q, 0, dx), at(0, q, 1, dx));
            [_mm512_sub_ps(a, c), _mm512_add_ps(b, c), _mm512_sub_ps(c, b), _mm512_sub_ps(b, d)]
        };
        // The patch's columns 2tx-1, 2tx, 2tx+1, 2tx+2, then B on them.
        let (c0, c1, c2, c3) = (rows(1, -1), rows(0, 0), rows(1, 0), rows(0, 1));
        let mut out = [_mm512_setzero_ps(); 16];
        for k in 0..4 {
            out[4 * k] = _mm512_sub_ps(c0[k], c2[k]);
            out[4 * k + 1] = _mm512_add_ps(c1[k], c2[k]);
            out[4 * k + 2] = _mm512_sub_ps(c2[k], c1[k]);
            out[4 * k + 3] = _mm512_sub_ps(c1[k], c3[k]);
        }
        out
    }

    /// `out[(2a + b)·c + o][t] = (Aᵀ m A)[a][b]` (+ `bias[o]`) for the block's tiles.
    #[target_feature(enable = "avx512f")]
    unsafe fn outputs(&self, m: &[f32], c: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        let bs = 16 * self.nb;
        for o in 0..c {
            let b = _mm512_set1_ps(bias.map_or(0.0, |b| b[o]));
            for j in 0..self.nb {
                let src = m.as_ptr().add(o * bs + 16 * j);
                let mv: [__m512; 16] = std::array::from_fn(|pos| _mm512_loadu_ps(src.add(pos * slab(c, bs))));
                // Aᵀ on the rows, then A on the columns.
                let r0: [__m512; 4] =
                    std::array::from_fn(|l| _mm512_add_ps(_mm512_add_ps(mv[l], mv[4 + l]), mv[8 + l]));
                let r1: [__m512; 4] =
                    std::array::from_fn(|l| _mm512_sub_ps(_mm512_sub_ps(mv[4 + l], mv[8 + l]), mv[12 + l]));
                let dst = out.as_mut_ptr().add(o * self.tp + 16 * (self.v0 + j));
                for (a, r) in [r0, r1].iter().enumerate() {
                    let even = _mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]);
                    let odd = _mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]);
                    _mm512_storeu_ps(dst.add(2 * a * slab(c, self.tp)), _mm512_add_ps(even, b));
                    _mm512_storeu_ps(dst.add((2 * a + 1) * slab(c, self.tp)), _mm512_add_ps(odd, b));
                }
            }
        }
    }
}

/// `m[pos][o][·] = Σ_i u[pos][i][o] · v[pos][i][·]`, for `positions` positions (16, or
/// F(4×4, 3×3)'s 36) of a block of `nb` vectors of tiles, position by position, in register
/// tiles of at most [`TILE`], over chunks of input channels whose rows of the
/// transformed inputs and of `u` stay in L1 while every tile passes over them (without
/// the chunks, at 4 × 4 and 128 → 64 channels, the 32 KiB of one position's inputs left
/// L1 at each of the 16 tiles of outputs).
///
/// # Safety
/// AVX-512F; `v`, `u` and `m` hold `positions` slabs of `cin`, `cin·cout` and `cout` rows.
#[target_feature(enable = "avx512f")]
unsafe fn products(nb: usize, positions: usize, v: &[f32], cin: usize, u: &[f32], cout: usize, m: &mut [f32]) {
    let bs = 16 * nb;
    let (cm, pm) = TILE;
    let row = 64 * nb.min(pm) + 4 * cout;
    let kc = (CHUNK_BYTES / row).clamp(8, cin.max(8));
    for pos in 0..positions {
        let (vp, up) = (v.as_ptr().add(pos * slab(cin, bs)), u.as_ptr().add(pos * cin * cout));
        let mp = m.as_mut_ptr().add(pos * slab(cout, bs));
        let mut i0 = 0;
        while i0 < cin {
            let i1 = (i0 + kc).min(cin);
            let mut j = 0;
            while j < nb {
                let p = (nb - j).min(pm);
                // Up to 4 vectors, 6 channels: 24 sums, as many as 4 × 6.
                let cm = if p <= 4 { 6 } else { cm };
                let mut co = 0;
                while co < cout {
                    let nc = (cout - co).min(cm);
                    let t = Prod { v: vp, bs, i0, i1, u: up, cout, m: mp, co, j };
                    macro_rules! run {
                        ($($cc:literal),*) => {
                            match (nc, p) {
                                (6, 4) => t.run::<6, 4>(),
                                (6, 3) => t.run::<6, 3>(),
                                (6, 2) => t.run::<6, 2>(),
                                (6, 1) => t.run::<6, 1>(),
                                (5, 4) => t.run::<5, 4>(),
                                (5, 3) => t.run::<5, 3>(),
                                (5, 2) => t.run::<5, 2>(),
                                (5, 1) => t.run::<5, 1>(),
                                $(($cc, 6) => t.run::<$cc, 6>(),
                                  ($cc, 5) => t.run::<$cc, 5>(),
                                  ($cc, 4) => t.run::<$cc, 4>(),
                                  ($cc, 3) => t.run::<$cc, 3>(),
                                  ($cc, 2) => t.run::<$cc, 2>(),
                                  ($cc, 1) => t.run::<$cc, 1>(),)*
                                _ => unreachable!("tiles are at most TILE"),
                            }
                        };
                    }
                    run!(1, 2, 3, 4);
                    co += nc;
                }
                j += p;
            }
            i0 = i1;
        }
    }
}

/// One register tile of [`products`]: output channels `co..co + C`, vectors
/// `j..j + P` of the block, input channels `i0..i1`, at one position; the first chunk
/// (`i0 = 0`) starts from zero, the others add to the tile's sums so far.
#[derive(Clone, Copy)]
struct Prod {
    v: *const f32,
    bs: usize,
    i0: usize,
    i1: usize,
    u: *const f32,
    cout: usize,
    m: *mut f32,
    co: usize,
    j: usize,
}

impl Prod {
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const C: usize, const P: usize>(self) {
        let out = |c: usize, k: usize| self.m.add((self.co + c) * self.bs + 16 * (self.j + k));
        let mut acc = [[_mm512_setzero_ps(); P]; C];
        if self.i0 > 0 {
            for (c, acc) in acc.iter_mut().enumerate() {
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(out(c, k));
                }
            }
        }
        for i in self.i0..self.i1 {
            let row = self.v.add(i * self.bs + 16 * self.j);
            let xv: [__m512; P] = std::array::from_fn(|k| _mm512_loadu_ps(row.add(16 * k)));
            let wi = self.u.add(i * self.cout + self.co);
            for (c, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*wi.add(c));
                for (a, &x) in acc.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, x, *a);
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out(c, k), a);
            }
        }
    }
}
