//! Direct 3×3 stride-1 convolutions (padding 1) on channel-major maps, in AVX-512 or AVX2.
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

pub(crate) mod lanes;
pub(crate) mod wino;

use lanes::{Lanes, Y, Z};

/// The instruction set the direct kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F: a register tile of 4 output channels × 6 vectors.
    Avx512,
    /// AVX2 and FMA: pairs of 8-lane registers, smaller tiles; the lanes summed in the same
    /// order, so the same numbers (checked where a CPU has both). `Conv` never takes its
    /// weight gradient (slower than the GEMM on AVX2); the tests and `conv_paths_timed` do.
    Avx2,
}

impl Isa {
    /// Whether this CPU has it.
    pub fn on_this_cpu(self) -> bool {
        match self {
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        }
    }
}

/// The widest instruction set of this CPU that runs the direct kernels, if any.
pub(crate) fn best() -> Option<Isa> {
    [Isa::Avx512, Isa::Avx2].into_iter().find(|i| i.on_this_cpu())
}

/// Whether this CPU is AMD's (the `cpuid` vendor string `AuthenticAMD`; read once). On the
/// AMD EPYC with AVX-512 measured (Zen 4) the direct forward kernel beats im2col at 4 × 4,
/// and the forward and input kernels at 256-384 channels from 7 × 7, where on the Intel Xeon
/// (timed at 256) they lose (docs/BENCHMARKS.md), so `Conv`'s rule asks.
pub(crate) fn amd() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        // SAFETY: `cpuid` exists on every x86-64 CPU.
        #[allow(unused_unsafe)]
        let v = unsafe { std::arch::x86_64::__cpuid(0) };
        [v.ebx, v.edx, v.ecx].iter().flat_map(|r| r.to_le_bytes()).eq(*b"AuthenticAMD")
    })
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
        live(self.n - 16 * v)
    }
}

/// The first `left` lanes of a vector (all 16 from 16 on).
fn live(left: usize) -> u16 {
    if left >= 16 {
        u16::MAX
    } else {
        (1u16 << left) - 1
    }
}

/// A 3×3 kernel laid out `[q][i][o]` for [`conv`], in a pool buffer (give it back): burn's
/// `[co][ci][3][3]` as a convolution from `i = ci` to `o = co` (`flip = false`), or, for the
/// input's gradient, its flipped transposed kernel, a convolution from `i = co` to `o = ci`
/// (`flip = true`).
pub(crate) fn arrange(w: &[f32], cin: usize, cout: usize, flip: bool) -> Vec<f32> {
    let (a, b) = if flip { (cout, cin) } else { (cin, cout) };
    // From the pool: a fresh vector of this size (above 128 KiB) would be new pages each
    // call, which cost more than a small convolution. Every entry is written below.
    let mut t = super::ops::pool::take(9 * a * b);
    // Sixteen outputs at a time: each destination line written whole, and the sixteen
    // source rows it reads (9 a floats each) stay in cache across `i` and `q`.
    for o0 in (0..b).step_by(16) {
        let os = o0..(o0 + 16).min(b);
        for qq in 0..9 {
            for i in 0..a {
                let dst = &mut t[(qq * a + i) * b..][os.clone()];
                for (v, o) in dst.iter_mut().zip(os.clone()) {
                    let (co, ci, q) = if flip { (i, o, 8 - qq) } else { (o, i, qq) };
                    *v = w[(co * cin + ci) * 9 + q];
                }
            }
        }
    }
    t
}

/// `y[o] (=|+=) Σ_{i,q} wt[q][i][o] · shift_q(x[i])`, plus `bias[o]` when given; `x` has
/// `cin` channels and `y` `cout`, both of `s.n` pixels; on `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    isa: Isa,
    s: &Shifts,
    x: &[f32],
    cin: usize,
    wt: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    add: bool,
) {
    let cout = wt.len() / (9 * cin).max(1);
    assert!(x.len() >= cin * s.n && y.len() >= cout * s.n && wt.len() == 9 * cin * cout);
    assert!(bias.is_none_or(|b| b.len() == cout));
    assert!(isa.on_this_cpu(), "{isa:?} is not on this CPU (Conv checks before choosing the direct kernels)");
    let f = Fwd { s, x, cin, cout, wt, bias };
    // SAFETY: the instruction set was checked just above, and the lengths bound every
    // unmasked access.
    unsafe {
        match isa {
            Isa::Avx512 => f.all_z(y, add),
            Isa::Avx2 => f.all_y(y, add),
        }
    }
}

/// The operands of one [`conv`].
#[derive(Clone, Copy)]
struct Fwd<'a> {
    s: &'a Shifts,
    x: &'a [f32],
    cin: usize,
    cout: usize,
    wt: &'a [f32],
    bias: Option<&'a [f32]>,
}

impl Fwd<'_> {
    #[target_feature(enable = "avx512f")]
    unsafe fn all_z(self, y: &mut [f32], add: bool) {
        self.all::<Z>(y, |t, c, p, y| {
            macro_rules! run {
                ($($cc:literal),*) => {
                    match (c, p) {
                        $(($cc, 6) => t.fwd::<Z, $cc, 6>(y, add),
                          ($cc, 5) => t.fwd::<Z, $cc, 5>(y, add),
                          ($cc, 4) => t.fwd::<Z, $cc, 4>(y, add),
                          ($cc, 3) => t.fwd::<Z, $cc, 3>(y, add),
                          ($cc, 2) => t.fwd::<Z, $cc, 2>(y, add),
                          ($cc, 1) => t.fwd::<Z, $cc, 1>(y, add),)*
                        _ => unreachable!("tiles are at most Z::FWD"),
                    }
                };
            }
            run!(1, 2, 3, 4)
        })
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn all_y(self, y: &mut [f32], add: bool) {
        self.all::<Y>(y, |t, c, p, y| match (c, p) {
            (1, 1) => t.fwd::<Y, 1, 1>(y, add),
            (2, 1) => t.fwd::<Y, 2, 1>(y, add),
            (3, 1) => t.fwd::<Y, 3, 1>(y, add),
            (4, 1) => t.fwd::<Y, 4, 1>(y, add),
            _ => unreachable!("tiles are at most Y::FWD"),
        })
    }

    /// Runs `tile(t, c, p, y)` over tiles of at most `L::FWD` output channels × vectors.
    #[inline(always)]
    unsafe fn all<L: Lanes>(self, y: &mut [f32], tile: impl Fn(Tile, usize, usize, &mut [f32])) {
        let (s, (cm, pm)) = (self.s, L::FWD);
        // Each block of vectors reads its pixels and their neighbours from a copy, channel
        // rows an odd number of cache lines apart, so that the rows of all channels fall on
        // different L1 sets: rows of the maps themselves lie a multiple of 1-4 KiB apart at
        // some sides (4 × 4, 8 × 8 and 28 × 28 by 16 images) and then evict each other.
        let lines = (16 * pm + 2 * s.reach).div_ceil(16);
        let xs = 16 * (lines | 1);
        let mut buf = super::ops::pool::take(self.cin * xs);
        let mut v0 = 0;
        while v0 < s.nv {
            let pv = (s.nv - v0).min(pm);
            let start = (16 * v0) as isize - s.reach as isize;
            let (lo, hi) = (start.max(0) as usize, ((start + xs as isize) as usize).min(s.n));
            for (i, row) in buf.chunks_exact_mut(xs).enumerate() {
                row[(lo as isize - start) as usize..][..hi - lo].copy_from_slice(&self.x[i * s.n + lo..i * s.n + hi]);
            }
            let mut co = 0;
            while co < self.cout {
                let c = (self.cout - co).min(cm);
                let (cin, cout, wt, bias) = (self.cin, self.cout, self.wt, self.bias);
                tile(Tile { s, x: &buf, xs, x0: -start, cin, cout, wt, bias, co, v0 }, c, pv, y);
                co += c;
            }
            v0 += pv;
        }
        super::ops::pool::give(buf);
    }
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
    bias: Option<&'a [f32]>,
    co: usize,
    v0: usize,
}

impl Tile<'_> {
    #[inline(always)]
    unsafe fn fwd<L: Lanes, const C: usize, const P: usize>(self, y: &mut [f32], add: bool) {
        let s = self.s;
        let mut acc = [[L::zero(); P]; C];
        let xp = self.x.as_ptr();
        for q in 0..9 {
            let m: [L::M; P] = std::array::from_fn(|j| L::mask(s.mask(q, self.v0 + j)));
            let shift = self.x0 + s.off[q] + 16 * self.v0 as isize;
            let wq = self.wt.as_ptr().add(q * self.cin * self.cout + self.co);
            for i in 0..self.cin {
                // Every lane read lies in the copy's row (its reach on both sides), whatever
                // the masks; masked-off lanes may hold any bits.
                let base = xp.add(i * self.xs).offset(shift);
                let xv: [L::V; P] = std::array::from_fn(|j| L::load_in(m[j], base.add(16 * j)));
                let wi = wq.add(i * self.cout);
                for (c, row) in acc.iter_mut().enumerate() {
                    let wv = L::splat(*wi.add(c));
                    for (a, &xj) in row.iter_mut().zip(&xv) {
                        *a = L::fma(wv, xj, *a);
                    }
                }
            }
        }
        for (c, row) in acc.iter().enumerate() {
            let o = self.co + c;
            let b = L::splat(self.bias.map_or(0.0, |b| b[o]));
            for (j, &a) in row.iter().enumerate() {
                let v = self.v0 + j;
                let live = L::mask(s.live(v));
                let dst = y.as_mut_ptr().add(o * s.n + 16 * v);
                let old = if add { L::load(live, dst) } else { b };
                L::store(dst, live, L::add(a, old));
            }
        }
    }
}

/// `g[co][ci][q] += Σ_p dy[co][p] · shift_q(x[ci])[p]` (burn's weight layout), for `x` of
/// `cin` and `dy` of `cout` channels; on `isa`.
pub(crate) fn weight_grad(isa: Isa, s: &Shifts, x: &[f32], cin: usize, dy: &[f32], cout: usize, g: &mut [f32]) {
    assert!(x.len() >= cin * s.n && dy.len() >= cout * s.n && g.len() == 9 * cin * cout);
    assert!(isa.on_this_cpu(), "{isa:?} is not on this CPU (Conv checks before choosing the direct kernels)");
    let w = Wgt { s, x, cin, dy, cout };
    // SAFETY: as in `conv`.
    unsafe {
        match isa {
            Isa::Avx512 => w.all_z(g),
            Isa::Avx2 => w.all_y(g),
        }
    }
}

/// Vectors per chunk of the weight gradient: a tile's channels of a chunk stay in L1 while
/// the nine offsets pass over them.
const WG_CHUNK: usize = 32;

/// The operands of one [`weight_grad`].
#[derive(Clone, Copy)]
struct Wgt<'a> {
    s: &'a Shifts,
    x: &'a [f32],
    cin: usize,
    dy: &'a [f32],
    cout: usize,
}

impl Wgt<'_> {
    #[target_feature(enable = "avx512f")]
    unsafe fn all_z(self, g: &mut [f32]) {
        self.all::<Z>(g, |t, ni, no, part| {
            macro_rules! run {
                ($($a:literal),*) => {
                    match (ni, no) {
                        $(($a, 1) => t.run::<Z, $a, 1>(part),
                          ($a, 2) => t.run::<Z, $a, 2>(part),
                          ($a, 3) => t.run::<Z, $a, 3>(part),
                          ($a, 4) => t.run::<Z, $a, 4>(part),)*
                        _ => unreachable!("tiles are at most Z::WGT"),
                    }
                };
            }
            run!(1, 2, 3, 4)
        })
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn all_y(self, g: &mut [f32]) {
        self.all::<Y>(g, |t, ni, no, part| match (ni, no) {
            (1, 1) => t.run::<Y, 1, 1>(part),
            (1, 2) => t.run::<Y, 1, 2>(part),
            (2, 1) => t.run::<Y, 2, 1>(part),
            (2, 2) => t.run::<Y, 2, 2>(part),
            _ => unreachable!("tiles are at most Y::WGT"),
        })
    }

    /// Runs `tile(t, ni, no, part)` over tiles of at most `L::WGT` input × output channels,
    /// chunks of [`WG_CHUNK`] vectors and the nine offsets, then adds each tile's sums to
    /// `g`.
    #[inline(always)]
    unsafe fn all<L: Lanes>(self, g: &mut [f32], tile: impl Fn(WTile, usize, usize, &mut [f32])) {
        let (s, (im, om)) = (self.s, L::WGT);
        let mut ci = 0;
        while ci < self.cin {
            let ni = (self.cin - ci).min(im);
            let mut co = 0;
            while co < self.cout {
                let no = (self.cout - co).min(om);
                // 16-lane partial sums per (q, i, o) of this tile, reduced once at its end.
                let mut part = [0f32; 9 * 16 * 16];
                let mut v0 = 0;
                while v0 < s.nv {
                    let v1 = (v0 + WG_CHUNK).min(s.nv);
                    for q in 0..9 {
                        tile(WTile { s, x: self.x, dy: self.dy, q, ci, co, v0, v1 }, ni, no, &mut part);
                    }
                    v0 = v1;
                }
                for (q, sums) in part.chunks_exact(256).enumerate() {
                    for (k, v) in L::sums(sums).into_iter().enumerate() {
                        let (i, o) = (k / 4, k % 4);
                        if i < ni && o < no {
                            g[((co + o) * self.cin + ci + i) * 9 + q] += v;
                        }
                    }
                }
                co += no;
            }
            ci += ni;
        }
    }
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
    #[inline(always)]
    unsafe fn run<L: Lanes, const I: usize, const O: usize>(self, part: &mut [f32]) {
        let s = self.s;
        let mut acc = [[L::zero(); O]; I];
        let (xp, dp) = (self.x.as_ptr(), self.dy.as_ptr());
        let off = s.off[self.q];
        for v in self.v0..self.v1 {
            // Lanes whose neighbour is padding add nothing: dy is read under the same mask.
            let m = L::mask(s.mask(self.q, v));
            let xv: [L::V; I] =
                std::array::from_fn(|i| L::load(m, xp.add((self.ci + i) * s.n).wrapping_offset(off + 16 * v as isize)));
            let dv: [L::V; O] = std::array::from_fn(|o| L::load(m, dp.add((self.co + o) * s.n + 16 * v)));
            for (row, &xi) in acc.iter_mut().zip(&xv) {
                for (a, &d) in row.iter_mut().zip(&dv) {
                    *a = L::fma(xi, d, *a);
                }
            }
        }
        let (base, all) = (part.as_mut_ptr().add(256 * self.q), L::mask(u16::MAX));
        for (i, row) in acc.iter().enumerate() {
            for (o, &a) in row.iter().enumerate() {
                let dst = base.add(16 * (4 * i + o));
                L::store(dst, all, L::add(L::load(all, dst), a));
            }
        }
    }
}
