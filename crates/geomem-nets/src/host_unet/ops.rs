//! The layers of the host U-Net, forward and backward, on channel-major feature maps.
//!
//! A feature map of `b` images is stored channel by channel over the whole batch: channel
//! `c`, image `i`, pixel `p` at `v[c·n + i·hw + p]`, `n = b·hw`. As a faer matrix it is
//! `n × c`, column-major, so a convolution is one GEMM of the im2col matrix (`n × c·k²`)
//! by the weight (`c·k² × o`, burn's `[o, c, k, k]` row-major read column-major), and a
//! concatenation along channels is two blocks one after the other.

use faer::{Accum, MatMut, MatRef};

#[cfg(target_arch = "x86_64")]
use super::direct;

/// Feature maps of `b` square images of side `h` with `c` channels (the module doc's layout).
/// Their buffers come from and go back to this thread's [`pool`], so that a training step
/// reuses the previous step's memory instead of faulting in fresh pages.
#[derive(Debug, Default)]
pub(crate) struct Act {
    pub c: usize,
    pub b: usize,
    pub h: usize,
    pub v: Vec<f32>,
}

impl Clone for Act {
    fn clone(&self) -> Self {
        let mut a = Act::scratch(self.c, self.b, self.h);
        a.v.copy_from_slice(&self.v);
        a
    }
}

impl Drop for Act {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.v));
    }
}

impl Act {
    pub fn zeros(c: usize, b: usize, h: usize) -> Self {
        let mut a = Act::scratch(c, b, h);
        a.v.fill(0.0);
        a
    }
    /// A map whose values are left over from an earlier use: for outputs written in full.
    pub fn scratch(c: usize, b: usize, h: usize) -> Self {
        Self { c, b, h, v: pool::take(c * b * h * h) }
    }
    pub fn hw(&self) -> usize {
        self.h * self.h
    }
    /// Pixels of all images, the row count of [`Act::mat`].
    pub fn n(&self) -> usize {
        self.b * self.hw()
    }
    pub fn mat(&self) -> MatRef<'_, f32> {
        MatRef::from_column_major_slice(&self.v, self.n(), self.c)
    }
    pub fn mat_mut(&mut self) -> MatMut<'_, f32> {
        let (n, c) = (self.n(), self.c);
        MatMut::from_column_major_slice_mut(&mut self.v, n, c)
    }
    /// The channels of `a` followed by those of `b` (the U-Net's skip concatenation).
    pub fn cat(a: &Act, b: &Act) -> Act {
        let mut out = Act::scratch(a.c + b.c, a.b, a.h);
        out.v[..a.v.len()].copy_from_slice(&a.v);
        out.v[a.v.len()..].copy_from_slice(&b.v);
        out
    }
    /// Splits a gradient of [`Act::cat`] back into its two parts.
    pub fn split(&self, first: usize) -> (Act, Act) {
        let mut a = Act::scratch(first, self.b, self.h);
        let mut b = Act::scratch(self.c - first, self.b, self.h);
        let k = a.v.len();
        a.v.copy_from_slice(&self.v[..k]);
        b.v.copy_from_slice(&self.v[k..]);
        (a, b)
    }
    /// The shape of `m` copies of `self` without their values: what a convolution's input
    /// stands for in the input's reverse pass, which reads its shape alone.
    pub fn shape(&self, m: usize) -> Act {
        Act { c: self.c, b: m, h: self.h, v: Vec::new() }
    }
    /// `m` copies of the one image of `self` (a batch of 1), as a batch of `m`.
    pub fn expand(&self, m: usize) -> Act {
        debug_assert_eq!(self.b, 1, "only a batch of one image is expanded");
        let hw = self.hw();
        let mut out = Act::scratch(self.c, m, self.h);
        for (src, dst) in self.v.chunks_exact(hw).zip(out.v.chunks_exact_mut(m * hw)) {
            dst.chunks_exact_mut(hw).for_each(|d| d.copy_from_slice(src));
        }
        out
    }
    pub fn add(&mut self, o: &Act) {
        self.v.iter_mut().zip(&o.v).for_each(|(a, b)| *a += b);
    }
}

/// A per-thread pool of `f32` buffers by length: a step's activations and gradients have
/// the lengths of the step before, so after the first step no buffer is allocated. A thread
/// keeps at most [`pool::KEEP_BYTES`]; beyond, returned buffers are freed.
pub(crate) mod pool {
    use std::cell::{Cell, RefCell};

    /// Bytes a thread's pool holds at most.
    pub const KEEP_BYTES: usize = 512 << 20;

    thread_local! {
        static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
        static HELD: Cell<usize> = const { Cell::new(0) };
    }

    /// A buffer of length `n` (values left over from its last use, or zeros when new).
    pub fn take(n: usize) -> Vec<f32> {
        let found = FREE.with(|f| {
            let mut f = f.borrow_mut();
            let i = f.iter().rposition(|v| v.len() == n)?;
            Some(f.swap_remove(i))
        });
        match found {
            Some(v) => {
                HELD.with(|h| h.set(h.get() - 4 * v.len()));
                v
            }
            None => vec![0.0; n],
        }
    }

    /// Returns a buffer to the pool (or frees it when the pool is full).
    pub fn give(v: Vec<f32>) {
        let bytes = 4 * v.len();
        if bytes == 0 || HELD.with(|h| h.get()) + bytes > KEEP_BYTES {
            return;
        }
        HELD.with(|h| h.set(h.get() + bytes));
        FREE.with(|f| f.borrow_mut().push(v));
    }
}

/// `dst (+)= a b` on this thread (the threads share the work by parts of the batch).
pub(crate) use crate::host_train::mm;

/// A convolution's shape: the indices of its weight and bias in the parameter list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv {
    pub w: usize,
    pub b: usize,
    /// Where the kernel arranged for the direct forward pass may follow the parameters
    /// (`HostUNet::with_kernels`); past the end of `p`, it is arranged at each call.
    pub wt: usize,
    pub cin: usize,
    pub cout: usize,
    /// Kernel side: 1 or 3.
    pub k: usize,
    pub stride: usize,
    /// Padding at the top and left (the bottom and right follow from the output size).
    pub pad: usize,
}

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Forward,
    Input,
    Weight,
}

/// How a convolution's pass runs ([`Conv::path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Winograd's F(2×2, 3×3) on AVX-512 ([`direct::wino`]).
    #[cfg(target_arch = "x86_64")]
    Winograd,
    /// Winograd's F(4×4, 3×3) on AVX-512 ([`direct::wino::four`]): the forward pass and the
    /// input's gradient only.
    #[cfg(target_arch = "x86_64")]
    Winograd4,
    /// The direct 3×3 kernels ([`direct`]).
    #[cfg(target_arch = "x86_64")]
    Direct(direct::Isa),
    /// im2col (or the matrix itself for 1×1) and a GEMM.
    Gemm,
}

/// A 3×3 stride-1 convolution's kernel `w` (`cin → cout`) arranged for the path that
/// [`Conv`] takes at maps of side `side` for its forward pass, or for its input's gradient
/// (`flip`); empty where that is im2col (which reads the weights as they are).
pub(crate) fn arranged_for(w: &[f32], cin: usize, cout: usize, side: usize, flip: bool) -> Vec<f32> {
    let conv = Conv { w: 0, b: 1, wt: usize::MAX, cin, cout, k: 3, stride: 1, pad: 1 };
    conv.arrange(w, conv.path(side, if flip { Pass::Input } else { Pass::Forward }), flip)
}

#[cfg(test)]
thread_local! {
    /// Kernels this thread arranged at a call because `p` did not hold them (tests: a map
    /// side recorded wrong by `HostUNet::with_kernels` would show here, not as a wrong number).
    pub(crate) static ARRANGED_AT_CALL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// im2col chunks are kept below this many floats (whole images at a time).
const COLS_CAP: usize = 1 << 23;

impl Conv {
    pub fn out_side(&self, h: usize) -> usize {
        if self.stride == 1 {
            h
        } else {
            h / 2
        }
    }
    fn kk(&self) -> usize {
        self.k * self.k
    }
    fn weight<'a>(&self, p: &'a [Vec<f32>]) -> MatRef<'a, f32> {
        MatRef::from_column_major_slice(&p[self.w], self.cin * self.kk(), self.cout)
    }
    /// Images per im2col chunk.
    fn chunk(&self, b: usize, ho: usize) -> usize {
        (COLS_CAP / (ho * ho * self.cin * self.kk()).max(1)).clamp(1, b.max(1))
    }

    /// The instruction set on which this convolution's `pass` runs [`direct`]'s kernels (3×3,
    /// stride 1, padding 1) instead of im2col and GEMMs, for maps of side `h`; `None` for
    /// im2col. The rules are the crossovers of `conv_paths_timed` on this project's 2-core
    /// machines (docs/BENCHMARKS.md); on the Intel Xeon and the Zen 3 the GEMM wins every
    /// pass at 256 channels, so there they stop at 128:
    /// - AVX-512 on AMD's CPUs (measured on Zen 4): the forward pass and the input's gradient
    ///   at sides of 7 and more whatever the channel count (at 256-384 channels in they take
    ///   up to 28 % less time than im2col, at 512 → 256 about the same), and at 4 × 4 up to
    ///   128 channels (beyond, im2col's forward pass is faster and its input gradient about
    ///   as fast); the weight's gradient as elsewhere;
    /// - AVX-512 elsewhere (measured on the Intel Xeon), up to 128 channels: every pass at
    ///   sides of 7 and more; at 4 × 4 the input's gradient only;
    /// - AVX2: the forward pass and the input's gradient at sides 7 to 16; the weight's
    ///   gradient never (its tiles are too small in 16 registers to beat the GEMM).
    #[cfg(target_arch = "x86_64")]
    fn direct(&self, h: usize, pass: Pass) -> Option<direct::Isa> {
        let shape = self.k == 3 && self.stride == 1 && self.pad == 1;
        let fits = shape && self.cin.max(self.cout) <= 128;
        direct::best().filter(|isa| match (isa, pass) {
            (direct::Isa::Avx512, Pass::Forward | Pass::Input) if direct::amd() => {
                shape && (h >= 7 || (h >= 4 && fits))
            }
            _ if !fits => false,
            (direct::Isa::Avx512, Pass::Input) => h >= 4,
            (direct::Isa::Avx512, _) => h >= 7,
            (direct::Isa::Avx2, Pass::Weight) => false,
            (direct::Isa::Avx2, _) => (7..=16).contains(&h),
        })
    }

    /// How this convolution's `pass` runs on maps of side `h`: Winograd's F(2×2, 3×3)
    /// ([`direct::wino`]) for all three passes on AVX-512 at even sides from 4 with at
    /// least 16 channels on each side and 48 in all (at 14 × 14 and 16 → 16, timed with its
    /// kernel arranged at each call, it is as fast as the direct kernel, at 48 → 16 faster), and at odd sides from 128 channels on each
    /// side (at 7 × 7 and 32 → 32 the direct kernel is faster, at 128 → 128 Winograd);
    /// measured on Zen 4 by `conv_paths_timed` (docs/BENCHMARKS.md); else
    /// [`Conv::direct`]'s choice. Before any of them, with at least 16 channels on each
    /// side, F(4×4, 3×3) ([`direct::wino::four`]) takes the forward pass and the input's
    /// gradient at every side from 4: with the kernels arranged beforehand (as
    /// [`super::HostUNet::with_kernels`] does), both passes took 0.54-0.84 of F(2×2)'s time
    /// in the run of docs/BENCHMARKS.md's table at every shape timed (4 × 4 to 28 × 28, 16 to
    /// 512 channels) but one, 4 × 4 and 512 → 256, where the forward pass took 0.90 and 1.07
    /// in two runs (before and after a refactoring of the driver), and 0.29-0.73 of the
    /// direct kernel's.
    fn path(&self, h: usize, pass: Pass) -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            let shape = self.k == 3 && self.stride == 1 && self.pad == 1;
            let wide = self.cin.min(self.cout) >= 16 && self.cin + self.cout >= 48;
            // At odd sides a quarter or more of the tiles' work falls past the image.
            let side = h >= 4 && (h.is_multiple_of(2) || self.cin.min(self.cout) >= 128);
            let avx512 = direct::Isa::Avx512.on_this_cpu();
            let four = shape && pass != Pass::Weight && self.cin.min(self.cout) >= 16 && direct::wino::four::fits(h);
            if four && avx512 {
                return Path::Winograd4;
            }
            let wino = shape && wide && side && direct::wino::fits(h);
            if wino && avx512 {
                return Path::Winograd;
            }
            if let Some(isa) = self.direct(h, pass) {
                return Path::Direct(isa);
            }
        }
        let _ = (h, pass);
        Path::Gemm
    }

    /// The kernel arranged for `path` (`flip`: for the input's gradient) where
    /// [`super::HostUNet::with_kernels`] put it, or arranged now (give it back to the pool).
    #[cfg(target_arch = "x86_64")]
    fn kernel<'a>(&self, p: &'a [Vec<f32>], path: Path, flip: bool) -> std::borrow::Cow<'a, [f32]> {
        let per = match path {
            Path::Winograd4 => 36,
            Path::Winograd => 16,
            _ => 9,
        };
        let at = self.wt.checked_add(usize::from(flip));
        match at.and_then(|i| p.get(i)).filter(|k| k.len() == per * self.cin * self.cout) {
            Some(k) => std::borrow::Cow::Borrowed(k),
            None => {
                #[cfg(test)]
                ARRANGED_AT_CALL.with(|n| n.set(n.get() + 1));
                std::borrow::Cow::Owned(self.arrange(&p[self.w], path, flip))
            }
        }
    }

    /// The 3×3 kernel `w` arranged for `path` (`flip`: for the input's gradient), in a pool
    /// buffer; empty for im2col.
    fn arrange(&self, w: &[f32], path: Path, flip: bool) -> Vec<f32> {
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Winograd => direct::wino::arrange(w, self.cin, self.cout, flip),
            #[cfg(target_arch = "x86_64")]
            Path::Winograd4 => direct::wino::four::arrange(w, self.cin, self.cout, flip),
            #[cfg(target_arch = "x86_64")]
            Path::Direct(_) => direct::arrange(w, self.cin, self.cout, flip),
            Path::Gemm => Vec::new(),
        }
    }

    /// `y (+)= ` the convolution of `x` by the kernel (`flip`: the input's gradient, from
    /// `dy` to `dx`) on a fast `path`, plus `bias`.
    #[cfg(target_arch = "x86_64")]
    fn fast(&self, p: &[Vec<f32>], path: Path, x: &Act, bias: Option<&[f32]>, y: &mut Act, flip: bool) {
        let k = self.kernel(p, path, flip);
        let cin = if flip { self.cout } else { self.cin };
        match path {
            Path::Winograd | Path::Winograd4 => {
                let tile = if path == Path::Winograd { direct::wino::Tile::Two } else { direct::wino::Tile::Four };
                direct::wino::conv(tile, x.b, x.h, &x.v, cin, &k, bias, &mut y.v, flip);
            }
            Path::Direct(isa) => direct::conv(isa, &direct::shifts(x.b, x.h), &x.v, cin, &k, bias, &mut y.v, flip),
            Path::Gemm => unreachable!("only the fast paths"),
        }
        if let std::borrow::Cow::Owned(k) = k {
            pool::give(k);
        }
    }

    /// The convolution of `x` (with bias).
    pub fn forward(&self, p: &[Vec<f32>], x: &Act) -> Act {
        let ho = self.out_side(x.h);
        let y = Act::scratch(self.cout, x.b, ho);
        match self.path(x.h, Pass::Forward) {
            Path::Gemm => self.forward_gemm(p, x, y),
            #[cfg(target_arch = "x86_64")]
            path => {
                let mut y = y;
                self.fast(p, path, x, Some(&p[self.b]), &mut y, false);
                y
            }
        }
    }

    /// [`Conv::forward`] by im2col and a GEMM, into `y` (the output's shape).
    pub(super) fn forward_gemm(&self, p: &[Vec<f32>], x: &Act, mut y: Act) -> Act {
        let ho = y.h;
        let w = self.weight(p);
        if self.k == 1 {
            mm(y.mat_mut(), Accum::Replace, x.mat(), w);
        } else {
            let (per, rows_img) = (self.chunk(x.b, ho), ho * ho);
            let mut b0 = 0;
            while b0 < x.b {
                let b1 = (b0 + per).min(x.b);
                let rows = (b1 - b0) * rows_img;
                let mut cols = pool::take(rows * self.cin * self.kk());
                self.im2col(x, ho, b0, b1, &mut cols);
                let c = MatRef::from_column_major_slice(&cols, rows, self.cin * self.kk());
                mm(y.mat_mut().subrows_mut(b0 * rows_img, rows), Accum::Replace, c, w);
                pool::give(cols);
                b0 = b1;
            }
        }
        let n = y.n();
        for (col, &bias) in y.v.chunks_exact_mut(n).zip(&p[self.b]) {
            col.iter_mut().for_each(|v| *v += bias);
        }
        y
    }

    /// Adds the weight and bias gradients to `g` and, with `dx`, the input's gradient. With
    /// an empty `g` only the input's gradient ([`super::HostUNet::vjp`]: `x` then gives
    /// only the shape).
    pub fn backward(&self, p: &[Vec<f32>], x: &Act, dy: &Act, g: &mut [Vec<f32>], dx: Option<&mut Act>) {
        if g.is_empty() {
            if let Some(dx) = dx {
                self.input_grad(p, x, dy, dx);
            }
            return;
        }
        let n = dy.n();
        for (col, gb) in dy.v.chunks_exact(n).zip(g[self.b].iter_mut()) {
            *gb += sum(col);
        }
        if self.path(x.h, Pass::Input) == Path::Gemm {
            self.backward_gemm(p, x, dy, g, dx);
            return;
        }
        if let Some(dx) = dx {
            self.input_grad(p, x, dy, dx);
        }
        match self.path(x.h, Pass::Weight) {
            #[cfg(target_arch = "x86_64")]
            Path::Winograd => {
                direct::wino::grad::weight_grad(x.b, x.h, &x.v, self.cin, &dy.v, self.cout, &mut g[self.w]);
            }
            #[cfg(target_arch = "x86_64")]
            Path::Direct(isa) => {
                direct::weight_grad(isa, &direct::shifts(x.b, x.h), &x.v, self.cin, &dy.v, self.cout, &mut g[self.w]);
            }
            _ => self.backward_gemm(p, x, dy, g, None),
        }
    }

    /// Adds the input's gradient alone to `dx` (`x` gives the shape): Winograd's or the
    /// direct kernel where [`Conv::path`] picks them, otherwise a GEMM and col2im.
    fn input_grad(&self, p: &[Vec<f32>], x: &Act, dy: &Act, dx: &mut Act) {
        match self.path(x.h, Pass::Input) {
            Path::Gemm => {}
            #[cfg(target_arch = "x86_64")]
            path => return self.fast(p, path, dy, None, dx, true),
        }
        let w = self.weight(p);
        if self.k == 1 {
            mm(dx.mat_mut(), Accum::Add, dy.mat(), w.transpose());
            return;
        }
        let ck = self.cin * self.kk();
        let (ho, per) = (dy.h, self.chunk(x.b, dy.h));
        let rows_img = ho * ho;
        let mut b0 = 0;
        while b0 < x.b {
            let b1 = (b0 + per).min(x.b);
            let rows = (b1 - b0) * rows_img;
            let mut cols = pool::take(rows * ck);
            let dc = MatMut::from_column_major_slice_mut(&mut cols, rows, ck);
            mm(dc, Accum::Replace, dy.mat().subrows(b0 * rows_img, rows), w.transpose());
            self.col2im(&mut cols, ho, b0, b1, dx);
            pool::give(cols);
            b0 = b1;
        }
    }

    /// [`Conv::backward`]'s weight and input gradients by im2col and GEMMs.
    pub(super) fn backward_gemm(&self, p: &[Vec<f32>], x: &Act, dy: &Act, g: &mut [Vec<f32>], dx: Option<&mut Act>) {
        let w = self.weight(p);
        let (ck, cout) = (self.cin * self.kk(), self.cout);
        let mut gw = std::mem::take(&mut g[self.w]);
        let mut gwm = MatMut::from_column_major_slice_mut(&mut gw, ck, cout);
        if self.k == 1 {
            mm(gwm.as_mut(), Accum::Add, x.mat().transpose(), dy.mat());
            if let Some(dx) = dx {
                mm(dx.mat_mut(), Accum::Add, dy.mat(), w.transpose());
            }
        } else {
            let ho = dy.h;
            let (per, rows_img) = (self.chunk(x.b, ho), ho * ho);
            let mut dx = dx;
            let mut b0 = 0;
            while b0 < x.b {
                let b1 = (b0 + per).min(x.b);
                let rows = (b1 - b0) * rows_img;
                let dyc = dy.mat().subrows(b0 * rows_img, rows);
                let mut cols = pool::take(rows * ck);
                self.im2col(x, ho, b0, b1, &mut cols);
                let c = MatRef::from_column_major_slice(&cols, rows, ck);
                mm(gwm.as_mut(), Accum::Add, c.transpose(), dyc);
                if let Some(dx) = dx.as_deref_mut() {
                    // The GEMM overwrites the whole buffer: cols' old values do not matter.
                    let dc = MatMut::from_column_major_slice_mut(&mut cols, rows, ck);
                    mm(dc, Accum::Replace, dyc, w.transpose());
                    self.col2im(&mut cols, ho, b0, b1, dx);
                }
                pool::give(cols);
                b0 = b1;
            }
        }
        g[self.w] = gw;
    }

    /// For output row `o` and kernel offset `q`, the input row (or `None`: padding).
    #[inline]
    fn src(&self, o: usize, q: usize, h: usize) -> Option<usize> {
        (self.stride * o + q).checked_sub(self.pad).filter(|&i| i < h)
    }

    /// For kernel column `q`: the output columns `lo..hi` that read inside the image, and
    /// the input column of `lo`.
    fn span(&self, q: usize, h: usize, ho: usize) -> (usize, usize, usize) {
        let lo = (0..ho).find(|&o| self.src(o, q, h).is_some()).unwrap_or(ho);
        let hi = (lo..ho).find(|&o| self.src(o, q, h).is_none()).unwrap_or(ho);
        (lo, hi, self.src(lo, q, h).unwrap_or(0))
    }

    /// The im2col matrix of images `b0..b1` (column-major, `(b1-b0)·ho² × cin·k²`); padding
    /// reads as 0.
    fn im2col(&self, x: &Act, ho: usize, b0: usize, b1: usize, cols: &mut Vec<f32>) {
        if self.stride == 1 {
            return self.im2col_same(x, b0, b1, cols);
        }
        let (h, hw, n, kk, s) = (x.h, x.hw(), x.n(), self.kk(), self.stride);
        let rows = (b1 - b0) * ho * ho;
        cols.clear();
        cols.resize(rows * self.cin * kk, 0.0);
        for q in 0..kk {
            let (qy, qx) = (q / self.k, q % self.k);
            let (lo, hi, ix0) = self.span(qx, h, ho);
            for c in 0..self.cin {
                let dst = &mut cols[(c * kk + q) * rows..][..rows];
                for (bi, b) in (b0..b1).enumerate() {
                    let img = &x.v[c * n + b * hw..][..hw];
                    for oy in 0..ho {
                        let Some(iy) = self.src(oy, qy, h) else { continue };
                        let row = &img[iy * h..][..h];
                        let out = &mut dst[(bi * ho + oy) * ho..][lo..hi];
                        if s == 1 {
                            out.copy_from_slice(&row[ix0..ix0 + (hi - lo)]);
                        } else {
                            out.iter_mut().zip(row[ix0..].iter().step_by(s)).for_each(|(o, &v)| *o = v);
                        }
                    }
                }
            }
        }
    }

    /// Adds the im2col gradient `dcols` of images `b0..b1` back onto the input's gradient.
    fn col2im(&self, dcols: &mut [f32], ho: usize, b0: usize, b1: usize, dx: &mut Act) {
        if self.stride == 1 {
            return self.col2im_same(dcols, b0, b1, dx);
        }
        let (h, hw, n, kk, s) = (dx.h, dx.hw(), dx.n(), self.kk(), self.stride);
        let rows = (b1 - b0) * ho * ho;
        for q in 0..kk {
            let (qy, qx) = (q / self.k, q % self.k);
            let (lo, hi, ix0) = self.span(qx, h, ho);
            for c in 0..self.cin {
                let src = &dcols[(c * kk + q) * rows..][..rows];
                for (bi, b) in (b0..b1).enumerate() {
                    let img = &mut dx.v[c * n + b * hw..][..hw];
                    for oy in 0..ho {
                        let Some(iy) = self.src(oy, qy, h) else { continue };
                        let row = &mut img[iy * h..][..h];
                        let from = &src[(bi * ho + oy) * ho..][lo..hi];
                        if s == 1 {
                            row[ix0..ix0 + (hi - lo)].iter_mut().zip(from).for_each(|(r, &v)| *r += v);
                        } else {
                            row[ix0..].iter_mut().step_by(s).zip(from).for_each(|(r, &v)| *r += v);
                        }
                    }
                }
            }
        }
    }
}

impl Conv {
    /// Kernel offset `q` of a stride-1 "same" convolution: the shift of the input index
    /// (`dy·h + dx`) and whether output pixel `(oy, ox)` reads padding.
    fn offset(&self, q: usize, h: usize) -> (isize, impl Fn(usize, usize) -> bool) {
        let (dy, dx) = ((q / self.k) as isize - self.pad as isize, (q % self.k) as isize - self.pad as isize);
        let out = move |oy: usize, ox: usize| {
            let (y, x) = (oy as isize + dy, ox as isize + dx);
            y < 0 || y >= h as isize || x < 0 || x >= h as isize
        };
        (dy * h as isize + dx, out)
    }

    /// Pixels (as offsets within an image) that read padding at kernel offset `q`.
    fn padded(&self, q: usize, h: usize) -> Vec<usize> {
        let (_, out) = self.offset(q, h);
        (0..h * h).filter(|&p| out(p / h, p % h)).collect()
    }

    /// Sets the pixels of `run` (whole images of `hw` pixels) listed in `pads` to 0.
    fn zero_pads(run: &mut [f32], hw: usize, pads: &[usize]) {
        for img in run.chunks_exact_mut(hw) {
            for &p in pads {
                if let Some(v) = img.get_mut(p) {
                    *v = 0.0;
                }
            }
        }
    }

    /// [`Conv::im2col`] for stride 1: every column is the batch's channel run shifted by a
    /// constant (one copy over all images), with the pixels that read padding set to 0.
    fn im2col_same(&self, x: &Act, b0: usize, b1: usize, cols: &mut Vec<f32>) {
        let (h, hw, n, kk) = (x.h, x.hw(), x.n(), self.kk());
        let rows = (b1 - b0) * hw;
        cols.resize(rows * self.cin * kk, 0.0);
        for q in 0..kk {
            let (off, _) = self.offset(q, h);
            let pads = self.padded(q, h);
            for c in 0..self.cin {
                let src = &x.v[c * n + b0 * hw..][..rows];
                let dst = &mut cols[(c * kk + q) * rows..][..rows];
                shift_copy(src, dst, off);
                Self::zero_pads(dst, hw, &pads);
            }
        }
    }

    /// [`Conv::col2im`] for stride 1: zeroes the padding reads, then adds each column back
    /// shifted (one pass over all images).
    fn col2im_same(&self, dcols: &mut [f32], b0: usize, b1: usize, dx: &mut Act) {
        let (h, hw, n, kk) = (dx.h, dx.hw(), dx.n(), self.kk());
        let rows = (b1 - b0) * hw;
        for q in 0..kk {
            let (off, _) = self.offset(q, h);
            let pads = self.padded(q, h);
            for c in 0..self.cin {
                let src = &mut dcols[(c * kk + q) * rows..][..rows];
                Self::zero_pads(src, hw, &pads);
                let dst = &mut dx.v[c * n + b0 * hw..][..rows];
                shift_add(src, dst, -off);
            }
        }
    }
}

/// The sum of `v` in 16 interleaved `f32` partial sums (vectorised; the same order on every
/// machine).
#[inline(always)]
pub(crate) fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &x)| *a += x);
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `Σ (v - mean)²`, in 16 interleaved partial sums.
#[inline(always)]
fn sq_dev(v: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &x)| *a += (x - mean) * (x - mean));
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().map(|&x| (x - mean) * (x - mean)).sum::<f32>()
}

/// `(Σ d (x - mean), Σ d)`, in 16 interleaved partial sums.
#[inline(always)]
fn dot_dev(x: &[f32], d: &[f32], mean: f32) -> (f32, f32) {
    let (mut a, mut b) = ([0f32; 16], [0f32; 16]);
    let (mut xc, mut dc) = (x.chunks_exact(16), d.chunks_exact(16));
    for (xs, ds) in (&mut xc).zip(&mut dc) {
        for i in 0..16 {
            a[i] += ds[i] * (xs[i] - mean);
            b[i] += ds[i];
        }
    }
    let tail = xc.remainder().iter().zip(dc.remainder());
    let (ta, tb) = tail.fold((0f32, 0f32), |(p, q), (&xv, &dv)| (p + dv * (xv - mean), q + dv));
    (a.iter().sum::<f32>() + ta, b.iter().sum::<f32>() + tb)
}

/// `dst[j] = src[j + off]` where that index exists, 0 elsewhere.
fn shift_copy(src: &[f32], dst: &mut [f32], off: isize) {
    let len = dst.len() as isize;
    let (lo, hi) = ((-off).clamp(0, len) as usize, (len - off).clamp(0, len) as usize);
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if lo < hi {
        let s0 = (lo as isize + off) as usize;
        dst[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
    }
}

/// `dst[j] += src[j + off]` where that index exists.
fn shift_add(src: &[f32], dst: &mut [f32], off: isize) {
    let len = dst.len() as isize;
    let (lo, hi) = ((-off).clamp(0, len) as usize, (len - off).clamp(0, len) as usize);
    if lo < hi {
        let s0 = (lo as isize + off) as usize;
        dst[lo..hi].iter_mut().zip(&src[s0..s0 + (hi - lo)]).for_each(|(d, &v)| *d += v);
    }
}

/// A linear layer on rows (`Z = X W + b`, `X` of `b` rows, column-major; burn's weight
/// `[in, out]` row-major).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linear {
    pub w: usize,
    pub b: usize,
    pub cin: usize,
    pub cout: usize,
}

impl Linear {
    fn weight<'a>(&self, p: &'a [Vec<f32>]) -> MatRef<'a, f32> {
        MatRef::from_column_major_slice(&p[self.w], self.cout, self.cin).transpose()
    }
    /// `x`: `rows × cin` column-major; returns `rows × cout` column-major.
    pub fn forward(&self, p: &[Vec<f32>], x: &[f32], rows: usize) -> Vec<f32> {
        let mut z = vec![0.0; rows * self.cout];
        let xm = MatRef::from_column_major_slice(x, rows, self.cin);
        mm(MatMut::from_column_major_slice_mut(&mut z, rows, self.cout), Accum::Replace, xm, self.weight(p));
        for (col, &bias) in z.chunks_exact_mut(rows.max(1)).zip(&p[self.b]) {
            col.iter_mut().for_each(|v| *v += bias);
        }
        z
    }
    /// Adds the gradients of the weight and bias to `g` and returns the input's gradient.
    pub fn backward(&self, p: &[Vec<f32>], x: &[f32], dz: &[f32], rows: usize, g: &mut [Vec<f32>]) -> Vec<f32> {
        for (col, gb) in dz.chunks_exact(rows.max(1)).zip(g[self.b].iter_mut()) {
            *gb += col.iter().sum::<f32>();
        }
        let (xm, dzm) =
            (MatRef::from_column_major_slice(x, rows, self.cin), MatRef::from_column_major_slice(dz, rows, self.cout));
        // burn's weight is row-major [in, out]: as a column-major matrix it is Wᵀ (out × in).
        let gw = MatMut::from_column_major_slice_mut(&mut g[self.w], self.cout, self.cin);
        mm(gw, Accum::Add, dzm.transpose(), xm);
        let mut dx = vec![0.0; rows * self.cin];
        mm(
            MatMut::from_column_major_slice_mut(&mut dx, rows, self.cin),
            Accum::Replace,
            dzm,
            self.weight(p).transpose(),
        );
        dx
    }
}

/// GroupNorm with affine parameters (`ε` = 1e-6, the U-Net's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Norm {
    pub gamma: usize,
    pub beta: usize,
    pub c: usize,
    pub groups: usize,
}

/// Per (image, group): mean and `1/√(var + ε)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct NormStats {
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

impl NormStats {
    /// The statistics of `m` copies of one image.
    pub fn expand(&self, m: usize) -> NormStats {
        NormStats { mean: self.mean.repeat(m), rstd: self.rstd.repeat(m) }
    }
}

const GN_EPS: f64 = 1e-6;

crate::wide::wide_fn!(pub(crate) fn norm_forward(n: &Norm, p: &[Vec<f32>], x: &Act) -> (Act, NormStats) => Norm::forward_body);
crate::wide::wide_fn! {
    pub(crate) fn norm_backward(n: &Norm, p: &[Vec<f32>], x: &Act, st: &NormStats, dy: &Act, g: &mut [Vec<f32>]) -> Act
        => Norm::backward_body
}

impl Norm {
    /// `(b, g)` → the slices of image `b`'s channels in group `g`: `(channel, offset)`.
    #[inline(always)]
    fn spans(&self, x: &Act, b: usize, g: usize) -> impl Iterator<Item = (usize, usize)> {
        let (cg, n, hw) = (self.c / self.groups, x.n(), x.hw());
        (g * cg..(g + 1) * cg).map(move |c| (c, c * n + b * hw))
    }

    /// Normalises `x` per image and group, then scales and shifts per channel; compiled for
    /// the widest vectors of the CPU ([`crate::wide`]).
    pub fn forward(&self, p: &[Vec<f32>], x: &Act) -> (Act, NormStats) {
        norm_forward(self, p, x)
    }

    /// [`Norm::forward`] in the baseline build, whatever the CPU (for the tests).
    #[cfg(test)]
    pub fn forward_baseline(&self, p: &[Vec<f32>], x: &Act) -> (Act, NormStats) {
        self.forward_body(p, x)
    }

    /// [`Norm::backward`] in the baseline build, whatever the CPU (for the tests).
    #[cfg(test)]
    pub fn backward_baseline(&self, p: &[Vec<f32>], x: &Act, st: &NormStats, dy: &Act, g: &mut [Vec<f32>]) -> Act {
        self.backward_body(p, x, st, dy, g)
    }

    /// [`Norm::forward`], compiled for AVX-512, AVX2 or the baseline by its caller: the same
    /// operations in the same order either way (16 interleaved partial sums; Rust never fuses
    /// a multiply and an add on its own), so the same numbers.
    #[inline(always)]
    fn forward_body(&self, p: &[Vec<f32>], x: &Act) -> (Act, NormStats) {
        let (hw, m) = (x.hw(), (self.c / self.groups * x.hw()) as f64);
        let mut y = Act::scratch(x.c, x.b, x.h);
        let mut st = NormStats::default();
        let (gamma, beta) = (&p[self.gamma], &p[self.beta]);
        for b in 0..x.b {
            for g in 0..self.groups {
                let sum: f64 = self.spans(x, b, g).map(|(_, o)| f64::from(sum(&x.v[o..o + hw]))).sum();
                let mean = sum / m;
                let var: f64 =
                    self.spans(x, b, g).map(|(_, o)| f64::from(sq_dev(&x.v[o..o + hw], mean as f32))).sum::<f64>() / m;
                let (mean, rstd) = (mean as f32, (1.0 / (var + GN_EPS).sqrt()) as f32);
                for (c, o) in self.spans(x, b, g) {
                    let (s, t) = (rstd * gamma[c], beta[c] - mean * rstd * gamma[c]);
                    for (yv, &xv) in y.v[o..o + hw].iter_mut().zip(&x.v[o..o + hw]) {
                        *yv = xv * s + t;
                    }
                }
                st.mean.push(mean);
                st.rstd.push(rstd);
            }
        }
        (y, st)
    }

    /// Adds the γ, β gradients to `g` (none when `g` is empty); returns the input's
    /// gradient. Compiled for the widest vectors of the CPU ([`crate::wide`]). `x` (with
    /// `st`) may hold one image for a batch `dy`: every image of `dy` is then taken at it.
    pub fn backward(&self, p: &[Vec<f32>], x: &Act, st: &NormStats, dy: &Act, g: &mut [Vec<f32>]) -> Act {
        norm_backward(self, p, x, st, dy, g)
    }

    /// [`Norm::backward`], compiled wide or narrow by its caller (as [`Norm::forward_body`]).
    #[inline(always)]
    fn backward_body(&self, p: &[Vec<f32>], x: &Act, st: &NormStats, dy: &Act, g: &mut [Vec<f32>]) -> Act {
        let (hw, m) = (x.hw(), (self.c / self.groups * x.hw()) as f32);
        let mut dx = Act::scratch(dy.c, dy.b, dy.h);
        let (gamma, weights) = (&p[self.gamma], !g.is_empty());
        // One image of `x` (and its statistics) for every image of `dy`, or one each.
        let one = usize::from(x.b == dy.b);
        debug_assert!(one == 1 || (x.b == 1 && st.mean.len() == self.groups), "one image broadcast");
        for b in 0..dy.b {
            for gr in 0..self.groups {
                let i = b * one * self.groups + gr;
                let (mean, rstd) = (st.mean[i], st.rstd[i]);
                let (mut s1, mut s2) = (0f64, 0f64);
                for ((c, xo), (_, o)) in self.spans(x, b * one, gr).zip(self.spans(dy, b, gr)) {
                    let (dxc, db) = dot_dev(&x.v[xo..xo + hw], &dy.v[o..o + hw], mean);
                    let dg = dxc * rstd;
                    if weights {
                        g[self.gamma][c] += dg;
                        g[self.beta][c] += db;
                    }
                    s1 += f64::from(db * gamma[c]);
                    s2 += f64::from(dg * gamma[c]);
                }
                let (a1, a2) = ((s1 as f32) / m, (s2 as f32) / m);
                for ((c, xo), (_, o)) in self.spans(x, b * one, gr).zip(self.spans(dy, b, gr)) {
                    let gc = gamma[c];
                    let it = dx.v[o..o + hw].iter_mut().zip(&x.v[xo..xo + hw]).zip(&dy.v[o..o + hw]);
                    for ((dv, &xv), &d) in it {
                        let xh = (xv - mean) * rstd;
                        *dv = rstd * (d * gc - a1 - xh * a2);
                    }
                }
            }
        }
        dx
    }
}

/// Nearest-neighbour 2× upsampling.
pub(crate) fn upsample2(x: &Act) -> Act {
    let (h, h2) = (x.h, 2 * x.h);
    let mut y = Act::scratch(x.c, x.b, h2);
    for (src, dst) in x.v.chunks_exact(h * h).zip(y.v.chunks_exact_mut(h2 * h2)) {
        for (yy, row) in dst.chunks_exact_mut(h2).enumerate() {
            let s = &src[(yy / 2) * h..][..h];
            for (xx, v) in row.iter_mut().enumerate() {
                *v = s[xx / 2];
            }
        }
    }
    y
}

/// The gradient of [`upsample2`]: each input pixel sums its four copies.
pub(crate) fn upsample2_back(dy: &Act) -> Act {
    let (h2, h) = (dy.h, dy.h / 2);
    let mut dx = Act::zeros(dy.c, dy.b, h);
    for (src, dst) in dy.v.chunks_exact(h2 * h2).zip(dx.v.chunks_exact_mut(h * h)) {
        for (yy, row) in src.chunks_exact(h2).enumerate() {
            let d = &mut dst[(yy / 2) * h..][..h];
            for (xx, &v) in row.iter().enumerate() {
                d[xx / 2] += v;
            }
        }
    }
    dx
}
