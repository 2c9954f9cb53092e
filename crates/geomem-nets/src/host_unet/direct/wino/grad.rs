//! The weight gradient of Winograd's F(2×2, 3×3) convolution ([`super`]).
//!
//! With `y_t = Aᵀ (U ⊙ V_t) A` for every tile `t`, the gradient of `U` is
//! `Σ_t (A dy_t Aᵀ) ⊙ V_t`, and that of the 3×3 kernel `g` is `Gᵀ (∂U) G`. So the gradient is
//! 16 matrix products (one per position of the 4 × 4 transform) of `cin` by the tiles by
//! `cout`, between the inputs' transforms `V` (as in the forward pass) and the output
//! gradients' transforms `Z = A dy_t Aᵀ`, summed over the tiles, then one small transform
//! per kernel. `Z` is laid out tile by tile with the output channels in the lanes, so that
//! the products need no sums across lanes.

use super::{slab, Block, Grid, BLOCK};
use crate::host_unet::ops::pool;
use std::arch::x86_64::*;

/// Register tile of the products: input channels × vectors of 16 output channels.
const TILE: (usize, usize) = (6, 4);

/// Tiles per chunk of the products: a chunk's `Z` for one tile of output channels
/// (`64 × 4 × 16` floats, 16 KiB) stays in L1 while every tile of input channels passes.
const CHUNK: usize = 64;

/// `g[co][ci][q] += ∂L/∂w` (burn's `[co][ci][3][3]` layout) of the 3×3 stride-1 "same"
/// convolution of `x` (`cin` channels of `b` images of side `h`, see [`super::fits`]) given the gradient
/// `dy` of its output (`cout` channels). The CPU must have AVX-512F.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad(b: usize, h: usize, x: &[f32], cin: usize, dy: &[f32], cout: usize, g: &mut [f32]) {
    let n = b * h * h;
    assert!(super::fits(h) && x.len() >= cin * n && dy.len() >= cout * n && g.len() == 9 * cin * cout);
    assert!(std::arch::is_x86_feature_detected!("avx512f"), "Winograd's kernels need AVX-512F");
    let grid = Grid::new(b, h);
    let cp = cout.div_ceil(16) * 16;
    let mut parts = pool::take(4 * slab(cin, grid.tp));
    grid.split(x, cin, &mut parts);
    let dt = grid.split_t(dy, cout, cp);
    let mut v = pool::take(16 * slab(cin, 16 * BLOCK));
    let mut z = pool::take(16 * slab(cp, 16 * BLOCK));
    let mut gw = pool::take(16 * cin * cp);
    gw.fill(0.0);
    for blk in grid.blocks() {
        // SAFETY: AVX-512F was checked above; the buffers' lengths bound every access.
        unsafe {
            blk.inputs(&parts, cin, &mut v);
            transforms(&blk, &dt, cp, &mut z);
            products(&blk, &v, cin, &z, cp, &mut gw);
        }
    }
    untransform(&gw, cin, cout, cp, g);
    for buf in [parts, dt, v, z, gw] {
        pool::give(buf);
    }
}

impl Grid {
    /// `out[(2a + b)][t][o]` = `dy[o]`'s pixel at row `2ty + a`, column `2tx + b` of tile
    /// `t`'s image: the four components of the output gradient, tile by tile, `cp` channels
    /// to a tile (zeros past `c`, and for the tiles of the last vector past the grid).
    fn split_t(&self, dy: &[f32], c: usize, cp: usize) -> Vec<f32> {
        let (h, w, tp) = (self.h, self.w, self.tp);
        let mut out = pool::take(4 * tp * cp);
        out.fill(0.0);
        for o in 0..c {
            for (img, map) in dy[o * self.b * h * h..][..self.b * h * h].chunks_exact(h * h).enumerate() {
                for (row, line) in map.chunks_exact(h).enumerate() {
                    let t = img * w * w + (row / 2) * w;
                    let k = 2 * (row % 2);
                    for (col, &v) in line.iter().enumerate() {
                        out[((k + col % 2) * tp + t + col / 2) * cp + o] = v;
                    }
                }
            }
        }
        out
    }
}

/// `z[pos][t][o] = (A dy_t Aᵀ)[pos]` for the block's tiles, 16 output channels at a time,
/// from [`Grid::split_t`]'s components: `A = [1 0; 1 1; 1 -1; 0 -1]`.
#[target_feature(enable = "avx512f")]
unsafe fn transforms(blk: &Block, dt: &[f32], cp: usize, z: &mut [f32]) {
    let bs = 16 * blk.nb;
    let zs = slab(cp, bs);
    for t in 0..bs {
        let tg = 16 * blk.v0 + t;
        for o in (0..cp).step_by(16) {
            let d: [__m512; 4] = std::array::from_fn(|k| _mm512_loadu_ps(dt.as_ptr().add((k * blk.tp + tg) * cp + o)));
            // A on the rows (components a = 0, 1 for each b), then on the columns.
            let a = |d0: __m512, d1: __m512| {
                [d0, _mm512_add_ps(d0, d1), _mm512_sub_ps(d0, d1), _mm512_sub_ps(_mm512_setzero_ps(), d1)]
            };
            let (r0, r1) = (a(d[0], d[2]), a(d[1], d[3]));
            let dst = z.as_mut_ptr().add(t * cp + o);
            for k in 0..4 {
                for (l, v) in a(r0[k], r1[k]).into_iter().enumerate() {
                    _mm512_storeu_ps(dst.add((4 * k + l) * zs), v);
                }
            }
        }
    }
}

/// `gw[pos][i][o] += Σ_t v[pos][i][t] · z[pos][t][o]` over the block's tiles, in chunks of
/// [`CHUNK`] tiles and register tiles of at most [`TILE`].
#[target_feature(enable = "avx512f")]
unsafe fn products(blk: &Block, v: &[f32], cin: usize, z: &[f32], cp: usize, gw: &mut [f32]) {
    let bs = 16 * blk.nb;
    let (im, om) = TILE;
    for pos in 0..16 {
        let vp = v.as_ptr().add(pos * slab(cin, bs));
        let zp = z.as_ptr().add(pos * slab(cp, bs));
        let gp = gw.as_mut_ptr().add(pos * cin * cp);
        for t0 in (0..bs).step_by(CHUNK) {
            let t1 = (t0 + CHUNK).min(bs);
            for o in (0..cp).step_by(16 * om) {
                let no = ((cp - o) / 16).min(om);
                let mut i = 0;
                while i < cin {
                    let ni = (cin - i).min(im);
                    let t = GTile { v: vp, bs, z: zp, cp, g: gp, i, o, t0, t1 };
                    macro_rules! run {
                        ($($ii:literal),*) => {
                            match (ni, no) {
                                $(($ii, 4) => t.run::<$ii, 4>(),
                                  ($ii, 3) => t.run::<$ii, 3>(),
                                  ($ii, 2) => t.run::<$ii, 2>(),
                                  ($ii, 1) => t.run::<$ii, 1>(),)*
                                _ => unreachable!("tiles are at most TILE"),
                            }
                        };
                    }
                    run!(1, 2, 3, 4, 5, 6);
                    i += ni;
                }
            }
        }
    }
}

/// One register tile of [`products`]: input channels `i..i + I`, output channels
/// `o..o + 16 O`, tiles `t0..t1`, at one position.
#[derive(Clone, Copy)]
struct GTile {
    v: *const f32,
    bs: usize,
    z: *const f32,
    cp: usize,
    g: *mut f32,
    i: usize,
    o: usize,
    t0: usize,
    t1: usize,
}

impl GTile {
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const I: usize, const O: usize>(self) {
        let at = |r: usize, k: usize| self.g.add((self.i + r) * self.cp + self.o + 16 * k);
        let mut acc: [[__m512; O]; I] = std::array::from_fn(|r| std::array::from_fn(|k| _mm512_loadu_ps(at(r, k))));
        for t in self.t0..self.t1 {
            let zt = self.z.add(t * self.cp + self.o);
            let zv: [__m512; O] = std::array::from_fn(|k| _mm512_loadu_ps(zt.add(16 * k)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*self.v.add((self.i + r) * self.bs + t));
                for (a, &zk) in acc.iter_mut().zip(&zv) {
                    *a = _mm512_fmadd_ps(x, zk, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(at(r, k), a);
            }
        }
    }
}

/// `g[o][i] += Gᵀ gw[·][i][o] G` (3 × 3 from 4 × 4), `Gᵀ = [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1]`,
/// sixteen output channels at a time, lane by lane (the compiler's vectors).
fn untransform(gw: &[f32], cin: usize, cout: usize, cp: usize, g: &mut [f32]) {
    for i in 0..cin {
        for o0 in (0..cout).step_by(16) {
            let lanes = (cout - o0).min(16);
            let m: [&[f32]; 16] = std::array::from_fn(|pos| &gw[(pos * cin + i) * cp + o0..][..16]);
            let mut out = [[0f32; 16]; 9];
            for l in 0..16 {
                // `Gᵀ c` of a column of four.
                let gt = |c: [f32; 4]| [c[0] + 0.5 * (c[1] + c[2]), 0.5 * (c[1] - c[2]), 0.5 * (c[1] + c[2]) + c[3]];
                // Columns first (Gᵀ on each column: 3 × 4), then rows (· G: 3 × 3).
                let cols: [[f32; 3]; 4] =
                    std::array::from_fn(|c| gt([m[c][l], m[4 + c][l], m[8 + c][l], m[12 + c][l]]));
                for r in 0..3 {
                    for (s, v) in gt([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]).into_iter().enumerate() {
                        out[3 * r + s][l] = v;
                    }
                }
            }
            for l in 0..lanes {
                let dst = &mut g[((o0 + l) * cin + i) * 9..][..9];
                for (q, d) in dst.iter_mut().enumerate() {
                    *d += out[q][l];
                }
            }
        }
    }
}
