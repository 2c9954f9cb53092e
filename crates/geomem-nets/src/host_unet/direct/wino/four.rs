//! Winograd's F(4×4, 3×3) convolution (Lavin & Gray, "Fast algorithms for convolutional
//! neural networks", 2016): the forward pass and the input's gradient of [`super`]'s
//! convolutions with 36 multiplications for every 4 × 4 outputs, where F(2×2, 3×3) takes 64
//! and the direct kernel 144. The weight's gradient is not computed here (`ops::Conv::path`
//! gives it F(2×2, 3×3), [`super::grad`], or another path).
//!
//! Each 4 × 4 block of outputs is a tile; its 6 × 6 input patch `d` becomes `V = Bᵀ d B`, the
//! kernel `g` becomes `U = G g Gᵀ`, and the outputs are `Aᵀ (U ⊙ V) A`, with
//!
//! ```text
//! Bᵀ = [4  0 -5  0 1 0;      G = [ 1/4     0    0 ;      Aᵀ = [1 1  1 1  1 0;
//!       0 -4 -4  1 1 0;           -1/6  -1/6 -1/6 ;            0 1 -1 2 -2 0;
//!       0  4 -4 -1 1 0;           -1/6   1/6 -1/6 ;            0 1  1 4  4 0;
//!       0 -2 -1  2 1 0;            1/24  1/12 1/6 ;            0 1 -1 8 -8 1]
//!       0  2 -1 -2 1 0;            1/24 -1/12 1/6 ;
//!       0  4  0 -5 0 1]            0     0    1   ]
//! ```
//!
//! The input is split into its sixteen polyphase components (rows `4ty + p`, columns
//! `4tx + q`), each a map of one pixel per tile, so that a patch's rows are component row 3
//! of the tile row above, rows 0 to 3 of its own and row 0 of the row below (its columns
//! likewise): 36 masked loads at tile offsets of at most one, as in [`super`]. Sides that
//! are not multiples of 4 are tiled as the next multiple, with zeros past the image.
//!
//! The transforms' larger coefficients cost `f32` accuracy: the results differ from the
//! direct kernel's by a few times F(2×2, 3×3)'s rounding (tested in `host_unet::tests`).

use super::super::live;
use super::{slab, Grid, Scheme};
use crate::host_unet::ops::pool;
use std::arch::x86_64::*;

/// Positions of the 6 × 6 transform.
const POS: usize = 36;

/// Vectors of 16 tiles per block: each tile is four times F(2×2, 3×3)'s outputs and its
/// transform has 36 positions, so a third of [`super::BLOCK`]. At 28 × 28, 128 → 128 and
/// 14 × 14, 256 → 256 (16 images, one thread, three alternating rounds) blocks of 3 and 4
/// took 12.0-12.3 and 14.6-15.1 ms, of 6 12.6-12.9 and 15.6-16.2, of 12 13.2-13.5 and
/// 16.4-16.9, of 2 13.0-13.4 and 14.9-15.0.
const BLOCK: usize = 4;

/// Each patch row or column `r` of a tile: the component row (or column) and the tile
/// offset it comes from.
const FROM: [(usize, isize); 6] = [(3, -1), (0, 0), (1, 0), (2, 0), (3, 0), (0, 1)];

/// `U = G g Gᵀ` for every kernel, laid out `[pos][i][o]` (36 positions) in a pool buffer, as
/// [`super::arrange`] lays out its 16 (`flip` for the input's gradient). The transform runs
/// in double precision, then rounds once.
pub(crate) fn arrange(w: &[f32], cin: usize, cout: usize, flip: bool) -> Vec<f32> {
    super::arrange_by(w, cin, cout, flip, POS, transform_kernel)
}

/// `G c` of a column of three (multiplied by the reciprocals, rounded in double
/// precision: far below the single-precision rounding that follows).
#[inline(always)]
fn gcol(c: [f64; 3]) -> [f64; 6] {
    const SIXTH: f64 = 1.0 / 6.0;
    let (a, b, e) = (c[0], c[1], c[2]);
    let (outer, inner) = (0.25 * a + e, 0.5 * b);
    [0.25 * a, -(a + b + e) * SIXTH, -(a - b + e) * SIXTH, (outer + inner) * SIXTH, (outer - inner) * SIXTH, e]
}

/// `G g Gᵀ` of 16 kernels at once (lane `l` of `g[3r + s]` is kernel `l`'s `g(r, s)`) into
/// `out` (36 lines, row-major 6 × 6).
fn transform_kernel(g: &[[f32; 16]; 9], out: &mut [[f32; 16]]) {
    for l in 0..16 {
        let at = |q: usize| f64::from(g[q][l]);
        let cols: [[f64; 6]; 3] = std::array::from_fn(|s| gcol([at(s), at(3 + s), at(6 + s)]));
        for k in 0..6 {
            for (j, v) in gcol([cols[0][k], cols[1][k], cols[2][k]]).into_iter().enumerate() {
                out[6 * k + j][l] = v as f32;
            }
        }
    }
}

/// Whether [`conv`] takes maps of side `h`: from 4.
pub(crate) fn fits(h: usize) -> bool {
    h >= 4
}

/// [`Grid`] of tiles of four pixels a side: sixteen components ([`super::conv`] with
/// [`super::Tile::Four`]).
pub(super) struct Four(Grid);

impl Four {
    /// The tiles of `b` images of side `h`.
    pub(super) fn new(b: usize, h: usize) -> Self {
        Self(Grid::tiled(b, h, 4))
    }
}

impl std::ops::Deref for Four {
    type Target = Grid;
    fn deref(&self) -> &Grid {
        &self.0
    }
}

impl Scheme for Four {
    const PARTS: usize = 16;
    const POS: usize = POS;
    const BLOCK: usize = BLOCK;
    fn grid(&self) -> &Grid {
        &self.0
    }
    fn split(&self, x: &[f32], c: usize, parts: &mut [f32]) {
        Four::split(self, x, c, parts);
    }
    fn merge(&self, parts: &[f32], c: usize, y: &mut [f32], add: bool) {
        Four::merge(self, parts, c, y, add);
    }
    unsafe fn inputs(&self, v0: usize, nb: usize, parts: &[f32], c: usize, v: &mut [f32]) {
        Four::inputs(self, v0, nb, parts, c, v);
    }
    unsafe fn outputs(&self, v0: usize, nb: usize, m: &[f32], c: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        Four::outputs(self, v0, nb, m, c, bias, out);
    }
}

impl Four {
    /// Where pixel `(row, col)` of image `img` lies in the components, relative to channel
    /// `i`'s start of component 0 (`c` channels).
    #[inline(always)]
    fn at(&self, c: usize, img: usize, row: usize, col: usize) -> usize {
        let t = img * self.w * self.w + (row / 4) * self.w + col / 4;
        (4 * (row % 4) + col % 4) * slab(c, self.tp) + t
    }

    /// `parts[(4p + q)·c + i][t]` = `x[i]`'s pixel at row `4ty + p`, column `4tx + q` of tile
    /// `t`'s image (zeros past the image).
    fn split(&self, x: &[f32], c: usize, parts: &mut [f32]) {
        let h = self.h;
        if !h.is_multiple_of(4) {
            parts.fill(0.0);
        }
        if h <= 32 {
            // SAFETY: AVX-512F (checked by `conv`); the loads and stores are masked to the
            // rows' pixels and the components' tiles.
            return unsafe { self.split_z(x, c, parts) };
        }
        for i in 0..c {
            let dst = &mut parts[i * self.tp..];
            for (img, map) in x[i * self.b * h * h..][..self.b * h * h].chunks_exact(h * h).enumerate() {
                for (row, line) in map.chunks_exact(h).enumerate() {
                    for (col, &v) in line.iter().enumerate() {
                        dst[self.at(c, img, row, col)] = v;
                    }
                }
            }
        }
    }

    /// The inverse of [`Four::split`] into `y` (replacing or adding).
    fn merge(&self, parts: &[f32], c: usize, y: &mut [f32], add: bool) {
        let h = self.h;
        if h <= 32 && add {
            // Into a scratch map, then added whole: reading each row of `y` right after the
            // masked store of the row before it (within the same 64 bytes) stalls on the
            // store (at 4 × 4, 64 → 64 the convolution that added took 0.024 ms, 30 %, more
            // than the one that replaced; timed at sides 4 and 8 only).
            let n = c * self.b * h * h;
            let mut fresh = pool::take(n);
            self.merge(parts, c, &mut fresh, false);
            y[..n].iter_mut().zip(&fresh).for_each(|(y, v)| *y += v);
            return pool::give(fresh);
        }
        if h <= 32 {
            // SAFETY: as in `split`.
            return unsafe { self.merge_z(parts, c, y) };
        }
        for i in 0..c {
            let src = &parts[i * self.tp..];
            for (img, map) in y[i * self.b * h * h..][..self.b * h * h].chunks_exact_mut(h * h).enumerate() {
                for (row, line) in map.chunks_exact_mut(h).enumerate() {
                    for (col, y) in line.iter_mut().enumerate() {
                        let v = src[self.at(c, img, row, col)];
                        *y = if add { *y + v } else { v };
                    }
                }
            }
        }
    }

    /// [`Four::split`] of sides up to 32, a row at a time: the row's two registers, then
    /// one permutation per component column (lane `l` of column `q` is pixel `4l + q`).
    #[target_feature(enable = "avx512f")]
    unsafe fn split_z(&self, x: &[f32], c: usize, parts: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let idx: [__m512i; 4] = std::array::from_fn(|q| {
            let lanes: [u32; 16] = std::array::from_fn(|l| ((4 * l + q) % 32) as u32);
            _mm512_loadu_si512(lanes.as_ptr().cast())
        });
        let (m0, m1, mw) = (live(h), live(h.saturating_sub(16)), live(w));
        for i in 0..c {
            let dst = parts.as_mut_ptr().add(i * self.tp);
            for img in 0..self.b {
                for row in 0..h {
                    let src = x.as_ptr().add((i * self.b + img) * h * h + row * h);
                    let r0 = _mm512_maskz_loadu_ps(m0, src);
                    let r1 = _mm512_maskz_loadu_ps(m1, src.add(16.min(h)));
                    let at = self.at(c, img, row, 0);
                    for (q, &idx) in idx.iter().enumerate() {
                        _mm512_mask_storeu_ps(
                            dst.add(at + q * slab(c, self.tp)),
                            mw,
                            _mm512_permutex2var_ps(r0, idx, r1),
                        );
                    }
                }
            }
        }
    }

    /// [`Four::merge`] (replacing) of sides up to 32, a row at a time: the four component columns of the
    /// row's tiles, two permutations and a blend per register of 16 pixels.
    #[target_feature(enable = "avx512f")]
    unsafe fn merge_z(&self, parts: &[f32], c: usize, y: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        // Pixel `col` is lane `col / 4` of component column `col % 4`: columns 0 and 1 in one
        // permutation (the second's lanes from 16), 2 and 3 in the other.
        let idx = |half: usize| {
            let lanes: [u32; 16] = std::array::from_fn(|l| {
                let col = 16 * half + l;
                ((col % 2) * 16 + col / 4) as u32
            });
            _mm512_loadu_si512(lanes.as_ptr().cast())
        };
        let (idx, high) = ([idx(0), idx(1)], 0xCCCCu16);
        let (mw, masks) = (live(w), [live(h), live(h.saturating_sub(16))]);
        for i in 0..c {
            let src = parts.as_ptr().add(i * self.tp);
            for img in 0..self.b {
                for row in 0..h {
                    let at = self.at(c, img, row, 0);
                    let comp: [__m512; 4] =
                        std::array::from_fn(|q| _mm512_maskz_loadu_ps(mw, src.add(at + q * slab(c, self.tp))));
                    let dst = y.as_mut_ptr().add((i * self.b + img) * h * h + row * h);
                    for (half, &m) in masks.iter().enumerate() {
                        if m == 0 {
                            continue;
                        }
                        let lo = _mm512_permutex2var_ps(comp[0], idx[half], comp[1]);
                        let hi = _mm512_permutex2var_ps(comp[2], idx[half], comp[3]);
                        let out = _mm512_mask_blend_ps(high, lo, hi);
                        let p = dst.add(16 * half);
                        _mm512_mask_storeu_ps(p, m, out);
                    }
                }
            }
        }
    }

    /// `v[pos][i][·] = (Bᵀ d B)[pos]` for the tiles of vectors `v0..v0 + nb` and every input
    /// channel.
    #[target_feature(enable = "avx512f")]
    unsafe fn inputs(&self, v0: usize, nb: usize, parts: &[f32], c: usize, v: &mut [f32]) {
        let bs = 16 * nb;
        for i in 0..c {
            for j in 0..nb {
                let d = self.patch(parts, c, i, v0 + j);
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
    unsafe fn patch(&self, parts: &[f32], c: usize, i: usize, vv: usize) -> [__m512; POS] {
        let (ts, w) = (&*self.ts, self.w as isize);
        let base = parts.as_ptr().add(i * self.tp + 16 * vv);
        // `d[j][r]`: the masked load of the component at patch row `r`, column `j`, at its
        // tile offset (zeros off the grid). Plain loops: the closures this was first written
        // with were not inlined (6 % of the MNIST U-Net's forward pass in calls).
        let mut d = [[_mm512_setzero_ps(); 6]; 6];
        for (j, &(q, dx)) in FROM.iter().enumerate() {
            for (r, &(p, dy)) in FROM.iter().enumerate() {
                let m = ts.mask(((dy + 1) * 3 + dx + 1) as usize, vv);
                let src = base.add((4 * p + q) * slab(c, self.tp)).wrapping_offset(dy * w + dx);
                d[j][r] = _mm512_maskz_loadu_ps(m, src);
            }
        }
        // Bᵀ down each of the patch's six columns, then along each row of the result.
        let cols: [[__m512; 6]; 6] = std::array::from_fn(|j| b_t(d[j]));
        let mut out = [_mm512_setzero_ps(); POS];
        for k in 0..6 {
            for (j, e) in b_t(std::array::from_fn(|j| cols[j][k])).into_iter().enumerate() {
                out[6 * k + j] = e;
            }
        }
        out
    }

    /// `out[(4a + b)·c + o][t] = (Aᵀ m A)[a][b]` (+ `bias[o]`) for the tiles of vectors
    /// `v0..v0 + nb`.
    #[target_feature(enable = "avx512f")]
    unsafe fn outputs(&self, v0: usize, nb: usize, m: &[f32], c: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        let bs = 16 * nb;
        for o in 0..c {
            let b = _mm512_set1_ps(bias.map_or(0.0, |b| b[o]));
            for j in 0..nb {
                let src = m.as_ptr().add(o * bs + 16 * j);
                let mv: [__m512; POS] = std::array::from_fn(|pos| _mm512_loadu_ps(src.add(pos * slab(c, bs))));
                // Aᵀ down the columns (4 × 6), then along the rows (4 × 4).
                let cols: [[__m512; 4]; 6] = std::array::from_fn(|l| a_t(std::array::from_fn(|k| mv[6 * k + l])));
                let y: [[__m512; 4]; 4] = std::array::from_fn(|a| a_t(std::array::from_fn(|l| cols[l][a])));
                let dst = out.as_mut_ptr().add(o * self.tp + 16 * (v0 + j));
                for (a, row) in y.iter().enumerate() {
                    for (bb, &e) in row.iter().enumerate() {
                        _mm512_storeu_ps(dst.add((4 * a + bb) * slab(c, self.tp)), _mm512_add_ps(e, b));
                    }
                }
            }
        }
    }
}

/// `Bᵀ d` of a column of six vectors.
#[target_feature(enable = "avx512f")]
#[inline]
fn b_t(d: [__m512; 6]) -> [__m512; 6] {
    let (two, four, five) = (_mm512_set1_ps(2.0), _mm512_set1_ps(4.0), _mm512_set1_ps(5.0));
    let t1 = _mm512_fnmadd_ps(four, d[2], d[4]);
    let t2 = _mm512_fnmadd_ps(four, d[1], d[3]);
    let t3 = _mm512_sub_ps(d[4], d[2]);
    let t4 = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    [
        _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])),
        _mm512_add_ps(t1, t2),
        _mm512_sub_ps(t1, t2),
        _mm512_add_ps(t3, t4),
        _mm512_sub_ps(t3, t4),
        _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])),
    ]
}

/// `Aᵀ m` of a column of six vectors.
#[target_feature(enable = "avx512f")]
#[inline]
fn a_t(m: [__m512; 6]) -> [__m512; 4] {
    let (two, four, eight) = (_mm512_set1_ps(2.0), _mm512_set1_ps(4.0), _mm512_set1_ps(8.0));
    let (a, b) = (_mm512_add_ps(m[1], m[2]), _mm512_sub_ps(m[1], m[2]));
    let (c, e) = (_mm512_add_ps(m[3], m[4]), _mm512_sub_ps(m[3], m[4]));
    [
        _mm512_add_ps(_mm512_add_ps(m[0], a), c),
        _mm512_fmadd_ps(two, e, b),
        _mm512_fmadd_ps(four, c, a),
        _mm512_add_ps(_mm512_fmadd_ps(eight, e, b), m[5]),
    ]
}
