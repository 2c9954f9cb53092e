//! The DDPM [`crate::UNet`] on the host (issue 23): its forward pass and a hand-written
//! backward pass, convolutions as im2col and faer GEMMs, direct 3×3 kernels or Winograd's
//! F(2×2, 3×3) (`ops::Conv::path` picks per pass, map side and CPU), GroupNorm,
//! SiLU (AVX-512 or AVX2 where the CPU has it), attention and the time embedding written out. A batch is cut into parts of
//! 16 images computed on rayon tasks, each part on one thread (one-thread GEMMs), so the
//! numbers do not depend on the number of threads. The parameters are the burn module's,
//! flat and in burn's own layouts and visiting order, so a host step reads and writes
//! burn's records as they are.
//!
//! The function is [`crate::UNet::forward`]'s up to `f32` rounding (the GEMMs' sums run in
//! another order, GroupNorm's statistics in 16 `f32` lanes, the exponentials of the SiLU and
//! of the attention's softmax are `HostMlp`'s `fast_exp`, within 1e-6 relative, its argument
//! clamped at -87); the tests hold the outputs and every gradient to burn's and its
//! autodiff's.

mod attn;
mod direct;
pub(crate) mod eval;
mod expand;
mod ops;
pub(crate) mod state;
pub(crate) mod train;

use crate::host_train::{silu_grad, silu_into};
use crate::unet::{timestep_embedding, UNetConfig};
use attn::{Attn, AttnTape};
use ops::{upsample2, upsample2_back, Act, Conv, Linear, Norm, NormStats};
use std::sync::Arc;

/// The U-Net's layers as indices into the flat parameter list (burn's visiting order).
#[derive(Clone, Debug)]
pub(crate) struct HostUNet {
    temb0: Linear,
    temb1: Linear,
    conv_in: Conv,
    down: Vec<StageL>,
    downsample: Vec<Conv>,
    mid0: Res,
    mid_attn: Attn,
    mid1: Res,
    up: Vec<StageL>,
    upsample: Vec<Conv>,
    norm_out: Norm,
    conv_out: Conv,
    base: usize,
    levels: usize,
    res_blocks: usize,
    channels: usize,
    image_size: usize,
    /// The 3×3 stride-1 convolutions' weight indices, channels and map sides, in the order
    /// of their `Conv::wt` (the kernels [`HostUNet::with_kernels`] appends, two each).
    kernels: Vec<Kernel>,
    /// Parameters: the entries of `p` past these are arranged kernels.
    params: usize,
}

/// A 3×3 stride-1 convolution's weight index, channels in and out, and map side.
#[derive(Clone, Copy, Debug)]
struct Kernel {
    w: usize,
    cin: usize,
    cout: usize,
    side: usize,
}

#[derive(Clone, Debug)]
struct Res {
    norm0: Norm,
    conv0: Conv,
    temb: Linear,
    norm1: Norm,
    conv1: Conv,
    skip: Option<Conv>,
}

#[derive(Clone, Debug)]
struct StageL {
    res: Res,
    attn: Option<Attn>,
}

/// Hands out parameter indices in visiting order, checking each one's shape, and the
/// places past the parameters of the 3×3 stride-1 convolutions' arranged kernels (two
/// each: the forward pass's and the input gradient's), for maps of side `side`.
struct Builder<'a> {
    dims: &'a [Vec<usize>],
    next: usize,
    groups: usize,
    kernels: Vec<Kernel>,
    side: usize,
}

impl Builder<'_> {
    fn take(&mut self, want: &[usize]) -> Result<usize, String> {
        let i = self.next;
        match self.dims.get(i) {
            Some(d) if d.as_slice() == want => {
                self.next += 1;
                Ok(i)
            }
            got => Err(format!("parameter {i}: shape {got:?}, the plan wants {want:?}")),
        }
    }
    fn linear(&mut self, cin: usize, cout: usize) -> Result<Linear, String> {
        Ok(Linear { w: self.take(&[cin, cout])?, b: self.take(&[cout])?, cin, cout })
    }
    fn conv(&mut self, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv, String> {
        let (w, b) = (self.take(&[cout, cin, k, k])?, self.take(&[cout])?);
        let wt = if k == 3 && stride == 1 {
            self.kernels.push(Kernel { w, cin, cout, side: self.side });
            self.dims.len() + 2 * (self.kernels.len() - 1)
        } else {
            usize::MAX
        };
        Ok(Conv { w, b, wt, cin, cout, k, stride, pad: usize::from(k == 3 && stride == 1) })
    }
    fn norm(&mut self, c: usize) -> Result<Norm, String> {
        Ok(Norm { gamma: self.take(&[c])?, beta: self.take(&[c])?, c, groups: self.groups })
    }
    fn res(&mut self, i: usize, o: usize, temb: usize) -> Result<Res, String> {
        Ok(Res {
            norm0: self.norm(i)?,
            conv0: self.conv(i, o, 3, 1)?,
            temb: self.linear(temb, o)?,
            norm1: self.norm(o)?,
            conv1: self.conv(o, o, 3, 1)?,
            skip: if i == o { None } else { Some(self.conv(i, o, 1, 1)?) },
        })
    }
    fn attn(&mut self, c: usize) -> Result<Attn, String> {
        let norm = self.norm(c)?;
        let mut c1 = || self.conv(c, c, 1, 1);
        Ok(Attn { norm, q: c1()?, k: c1()?, v: c1()?, out: c1()? })
    }
    fn stage(&mut self, (i, o, a): (usize, usize, bool), temb: usize) -> Result<StageL, String> {
        let res = self.res(i, o, temb)?;
        Ok(StageL { res, attn: if a { Some(self.attn(o)?) } else { None } })
    }
}

/// What the backward pass of a residual block needs.
struct ResTape {
    /// The input, shared with the list of stored activations (no copy).
    x: Arc<Act>,
    s0: NormStats,
    n0: Act,
    a0: Act,
    h0: Act,
    s1: NormStats,
    n1: Act,
    a1: Act,
}

struct StageTape {
    res: ResTape,
    attn: Option<AttnTape>,
}

/// What produced `hs[i + 1]` from `hs[i]` on the way down.
enum Producer {
    Stage(usize, Box<StageTape>),
    Down(usize, Arc<Act>),
}

/// One level of the up path: its stages' tapes with the width of `h` before the
/// concatenation, then the upsampled input of its upsampling conv.
type UpLevel = (Vec<(StageTape, usize)>, Option<Act>);

/// Everything the backward pass reads, kept by [`HostUNet::forward`].
pub(crate) struct Tape {
    b: usize,
    emb: Vec<f32>,
    t0: Vec<f32>,
    s0: Vec<f32>,
    temb: Vec<f32>,
    st: Vec<f32>,
    x: Act,
    down: Vec<Producer>,
    /// The middle blocks' tapes (`None` when the pass kept no tape).
    mid: Option<Box<(ResTape, AttnTape, ResTape)>>,
    up: Vec<UpLevel>,
    on: Act,
    so: NormStats,
    no: Act,
    ao: Act,
}

fn silu(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    silu_into(x, &mut y);
    y
}

fn silu_act(x: &Act) -> Act {
    let mut y = Act::scratch(x.c, x.b, x.h);
    silu_into(&x.v, &mut y.v);
    y
}

/// `dy ⊙ silu'(x)` of feature maps.
///
/// `x` may hold one image and `dy` a batch of `m`: then every image of `dy` is taken at
/// that one `x` (the reverse pass of [`HostUNet::vjp`], whose cotangents share one point).
fn silu_grad_act(x: &Act, dy: &Act) -> Act {
    let mut d = Act::scratch(dy.c, dy.b, dy.h);
    if x.b == dy.b {
        silu_grad(&x.v, &dy.v, &mut d.v, false);
    } else {
        debug_assert_eq!((x.b, x.c, x.h), (1, dy.c, dy.h), "one image broadcast over the batch");
        let hw = x.hw();
        for ((xc, dyc), dc) in x.v.chunks_exact(hw).zip(dy.v.chunks_exact(dy.n())).zip(d.v.chunks_exact_mut(dy.n())) {
            for (g, o) in dyc.chunks_exact(hw).zip(dc.chunks_exact_mut(hw)) {
                silu_grad(xc, g, o, false);
            }
        }
    }
    d
}

/// `dy ⊙ silu'(x)`.
fn silu_back(x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut d = vec![0.0; x.len()];
    silu_grad(x, dy, &mut d, false);
    d
}

impl Res {
    fn forward(&self, p: &[Vec<f32>], x: Arc<Act>, st: &[f32]) -> (Act, ResTape) {
        let (n0, s0) = self.norm0.forward(p, &x);
        let a0 = silu_act(&n0);
        let mut h0 = self.conv0.forward(p, &a0);
        let (b, hw) = (x.b, x.hw());
        let z = self.temb.forward(p, st, b);
        for (o, maps) in h0.v.chunks_exact_mut(b * hw).enumerate() {
            for (i, map) in maps.chunks_exact_mut(hw).enumerate() {
                let zv = z[o * b + i];
                map.iter_mut().for_each(|v| *v += zv);
            }
        }
        let (n1, s1) = self.norm1.forward(p, &h0);
        let a1 = silu_act(&n1);
        let h1 = self.conv1.forward(p, &a1);
        let mut out = h1;
        match &self.skip {
            Some(s) => out.add(&s.forward(p, &x)),
            None => out.add(&x),
        }
        (out, ResTape { x, s0, n0, a0, h0, s1, n1, a1 })
    }

    /// The input's gradient; adds the weights' to `g` and `d silu(temb)` to `dst` (neither
    /// when `g` is empty).
    fn backward(
        &self,
        p: &[Vec<f32>],
        t: &ResTape,
        dout: &Act,
        st: &[f32],
        dst: &mut [f32],
        g: &mut [Vec<f32>],
    ) -> Act {
        let mut da1 = Act::zeros(t.a1.c, t.a1.b, t.a1.h);
        self.conv1.backward(p, &t.a1, dout, g, Some(&mut da1));
        let dn1 = silu_grad_act(&t.n1, &da1);
        let dh0 = self.norm1.backward(p, &t.h0, &t.s1, &dn1, g);
        if !g.is_empty() {
            let dz: Vec<f32> = dh0.v.chunks_exact(dh0.hw()).map(|m| m.iter().sum::<f32>()).collect();
            let dsti = self.temb.backward(p, st, &dz, dh0.b, g);
            dst.iter_mut().zip(&dsti).for_each(|(a, v)| *a += v);
        }
        let mut da0 = Act::zeros(t.a0.c, t.a0.b, t.a0.h);
        self.conv0.backward(p, &t.a0, &dh0, g, Some(&mut da0));
        let dn0 = silu_grad_act(&t.n0, &da0);
        let mut dx = self.norm0.backward(p, &t.x, &t.s0, &dn0, g);
        match &self.skip {
            // A shared tape's input is one image; the skip's input gradient reads its shape.
            Some(s) if t.x.b != dout.b => s.backward(p, &t.x.shape(dout.b), dout, g, Some(&mut dx)),
            Some(s) => s.backward(p, &t.x, dout, g, Some(&mut dx)),
            None => dx.add(dout),
        }
        dx
    }
}

impl StageL {
    fn forward(&self, p: &[Vec<f32>], x: Arc<Act>, st: &[f32]) -> (Act, StageTape) {
        let (h, res) = self.res.forward(p, x, st);
        match &self.attn {
            Some(a) => {
                let (h, at) = a.forward(p, h);
                (h, StageTape { res, attn: Some(at) })
            }
            None => (h, StageTape { res, attn: None }),
        }
    }
    fn backward(
        &self,
        p: &[Vec<f32>],
        t: &StageTape,
        dout: Act,
        st: &[f32],
        dst: &mut [f32],
        g: &mut [Vec<f32>],
    ) -> Act {
        let d = match (&self.attn, &t.attn) {
            (Some(a), Some(at)) => a.backward(p, at, &dout, g),
            _ => dout,
        };
        self.res.backward(p, &t.res, &d, st, dst, g)
    }
}

impl HostUNet {
    /// The layout of a network of `cfg` whose parameters have the shapes `dims`, in burn's
    /// visiting order of [`crate::UNet`].
    ///
    /// # Errors
    /// A message naming the first parameter whose shape is not the plan's.
    pub fn new(cfg: &UNetConfig, dims: &[Vec<usize>]) -> Result<Self, String> {
        let nf = cfg.base;
        let mut bd = Builder { dims, next: 0, groups: cfg.groups, kernels: Vec::new(), side: cfg.image_size };
        let (temb0, temb1) = (bd.linear(nf, 4 * nf)?, bd.linear(4 * nf, 4 * nf)?);
        let conv_in = bd.conv(cfg.channels, nf, 3, 1)?;
        let (down_plan, up_plan) = cfg.plan();
        let levels = cfg.mults.len();
        // burn visits a struct's fields in order: every down stage, then every downsampling
        // conv, the middle, every up stage, every upsampling conv.
        let side = |l: usize| cfg.image_size >> l;
        let rb = cfg.res_blocks.max(1);
        let down = (down_plan.iter().enumerate())
            .map(|(i, &s)| {
                bd.side = side(i / rb);
                bd.stage(s, 4 * nf)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let downsample = (0..levels - 1)
            .map(|l| bd.conv(nf * cfg.mults[l], nf * cfg.mults[l], 3, 2))
            .collect::<Result<Vec<_>, _>>()?;
        let top = nf * cfg.mults[levels - 1];
        bd.side = side(levels - 1);
        let (mid0, mid_attn, mid1) = (bd.res(top, top, 4 * nf)?, bd.attn(top)?, bd.res(top, top, 4 * nf)?);
        let up = (up_plan.iter().enumerate())
            .map(|(i, &s)| {
                bd.side = side(levels - 1 - i / (cfg.res_blocks + 1));
                bd.stage(s, 4 * nf)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let upsample = (1..levels)
            .rev()
            .map(|l| {
                // After the nearest-neighbour upsampling to the level above.
                bd.side = side(l - 1);
                bd.conv(nf * cfg.mults[l], nf * cfg.mults[l], 3, 1)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let w0 = nf * cfg.mults[0];
        bd.side = cfg.image_size;
        let (norm_out, conv_out) = (bd.norm(w0)?, bd.conv(w0, cfg.channels, 3, 1)?);
        if bd.next != dims.len() {
            return Err(format!("{} parameters, the plan uses {}", dims.len(), bd.next));
        }
        let (res_blocks, channels, image_size) = (cfg.res_blocks, cfg.channels, cfg.image_size);
        Ok(Self {
            temb0,
            temb1,
            conv_in,
            down,
            downsample,
            mid0,
            mid_attn,
            mid1,
            up,
            upsample,
            norm_out,
            conv_out,
            base: nf,
            levels,
            res_blocks,
            channels,
            image_size,
            kernels: bd.kernels,
            params: dims.len(),
        })
    }

    /// The parameters `p` followed by every 3×3 stride-1 convolution's kernels arranged
    /// for its forward pass and its input gradient (direct or Winograd, as [`Conv`]'s rule
    /// picks at its map side; empty where it picks im2col), where [`Conv`] finds them
    /// (`Conv::wt`) instead of arranging them at each call: for parameters that stay fixed
    /// over many passes (evaluation, or the parts of one training step). The extra entries
    /// are not parameters: no gradient is kept for them.
    pub fn with_kernels(&self, p: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        let mut p = self.with_forward_kernels(p);
        self.add_flipped_kernels(&mut p);
        p
    }

    /// [`HostUNet::with_kernels`] for the forward passes only: the input gradients' entries
    /// are left empty (a reverse pass would arrange those kernels at each call), so callers
    /// that only evaluate the net (sampling, Normal Bundle spectra) hold half the arranged
    /// kernels. [`HostUNet::add_flipped_kernels`] adds the rest.
    pub fn with_forward_kernels(&self, mut p: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        p.truncate(self.params);
        let kernels: Vec<Vec<f32>> = (self.kernels.iter())
            .flat_map(|k| [ops::arranged_for(&p[k.w], k.cin, k.cout, k.side, false), Vec::new()])
            .collect();
        p.extend(kernels);
        p
    }

    /// Arranges the input gradients' kernels that `p` (from
    /// [`HostUNet::with_forward_kernels`]) leaves empty.
    ///
    /// # Panics
    /// If `p` does not hold this net's parameters and its forward kernels' entries.
    pub fn add_flipped_kernels(&self, p: &mut [Vec<f32>]) {
        assert!(p.len() == self.params + 2 * self.kernels.len(), "the parameters and the kernels' entries");
        for (t, k) in self.kernels.iter().enumerate() {
            if p[self.params + 2 * t + 1].is_empty() {
                p[self.params + 2 * t + 1] = ops::arranged_for(&p[k.w], k.cin, k.cout, k.side, true);
            }
        }
    }

    /// The number of parameters (entries of `p` before any arranged kernels).
    pub fn params(&self) -> usize {
        self.params
    }

    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.channels * self.image_size * self.image_size
    }

    /// `ε̂` of `b` images (rows of `x`, channel-major pixels) at `steps`, and the tape.
    pub fn forward(&self, p: &[Vec<f32>], x: &[f32], steps: &[f32]) -> (Act, Tape) {
        self.pass(p, x, steps, true)
    }

    /// `ε̂` of `b` images without a tape: each block's intermediate maps go back to the
    /// buffer pool as soon as the block is done (the same numbers as [`HostUNet::forward`]).
    pub fn infer(&self, p: &[Vec<f32>], x: &[f32], steps: &[f32]) -> Act {
        self.pass(p, x, steps, false).0
    }

    /// The forward pass; with `keep`, the tape of the backward pass.
    fn pass(&self, p: &[Vec<f32>], x: &[f32], steps: &[f32], keep: bool) -> (Act, Tape) {
        let (b, d, hw) = (steps.len(), self.dim(), self.image_size * self.image_size);
        let mut xa = Act::scratch(self.channels, b, self.image_size);
        for i in 0..b {
            for c in 0..self.channels {
                xa.v[c * b * hw + i * hw..][..hw].copy_from_slice(&x[i * d + c * hw..][..hw]);
            }
        }
        let rows = timestep_embedding(steps, self.base);
        let emb: Vec<f32> = (0..b * self.base).map(|k| rows[(k % b) * self.base + k / b]).collect();
        let t0 = self.temb0.forward(p, &emb, b);
        let s0 = silu(&t0);
        let temb = self.temb1.forward(p, &s0, b);
        let st = silu(&temb);
        let mut hs = vec![Arc::new(self.conv_in.forward(p, &xa))];
        let mut down = Vec::new();
        for l in 0..self.levels {
            for r in 0..self.res_blocks {
                let i = l * self.res_blocks + r;
                let (h, t) = self.down[i].forward(p, Arc::clone(&hs[hs.len() - 1]), &st);
                if keep {
                    down.push(Producer::Stage(i, Box::new(t)));
                }
                hs.push(Arc::new(h));
            }
            if l + 1 < self.levels {
                let x = Arc::clone(&hs[hs.len() - 1]);
                hs.push(Arc::new(self.downsample[l].forward(p, &x)));
                if keep {
                    down.push(Producer::Down(l, x));
                }
            }
        }
        let (h, mid0) = self.mid0.forward(p, Arc::clone(&hs[hs.len() - 1]), &st);
        let (h, mid_attn) = self.mid_attn.forward(p, h);
        let (mut h, mid1) = self.mid1.forward(p, Arc::new(h), &st);
        let mid = keep.then(|| Box::new((mid0, mid_attn, mid1)));
        let (mut stages, mut ups, mut up) = (self.up.iter(), self.upsample.iter(), Vec::new());
        for l in (0..self.levels).rev() {
            let mut tapes = Vec::new();
            for _ in 0..=self.res_blocks {
                let (Some(s), Some(skip)) = (stages.next(), hs.pop()) else { break };
                let c = h.c;
                let (hn, t) = s.forward(p, Arc::new(Act::cat(&h, &skip)), &st);
                if keep {
                    tapes.push((t, c));
                }
                h = hn;
            }
            let mut upx = None;
            if l > 0 {
                if let Some(u) = ups.next() {
                    let x = upsample2(&h);
                    h = u.forward(p, &x);
                    upx = Some(x);
                }
            }
            if keep {
                up.push((tapes, upx));
            }
        }
        let (no, so) = self.norm_out.forward(p, &h);
        let ao = silu_act(&no);
        let out = self.conv_out.forward(p, &ao);
        let tape = Tape { b, emb, t0, s0, temb, st, x: xa, down, mid, up, on: h, so, no, ao };
        (out, tape)
    }

    /// Adds the gradient of every parameter to `g` (zeroed by the caller), for the output
    /// gradient `dout` of the forward pass that kept `t`.
    pub fn backward(&self, p: &[Vec<f32>], t: &Tape, dout: &Act, g: &mut [Vec<f32>]) {
        if !g.is_empty() {
            self.back(p, t, dout, g);
        }
    }

    /// Vector-Jacobian products `u_iᵀ ∂ε̂(x)/∂x` of one image `x` at one step for the rows
    /// `u_i` of `u` (`m × d`, row-major; the rows of [`HostUNet::dim`] pixels): the reverse
    /// pass of the input alone (no parameter gradients) for every cotangent. The forward
    /// pass is run once and kept (`tape`, of one image); each part of at most `part`
    /// cotangents goes back through the layers as a batch, on the rayon pool, reading the
    /// one image's GroupNorm and SiLU inputs for every cotangent (the attention's tape alone
    /// is copied per cotangent; `expand.rs`). Returns the `m × d` products, row-major.
    ///
    /// The numbers are the input gradient of the reverse pass for a batch of the part's
    /// copies of `x` (the training step's kernels on the same values): they depend on how
    /// the cotangents fall into parts (`f32` rounding), not on the number of threads.
    pub fn vjp(&self, p: &[Vec<f32>], tape: &Tape, u: &[f32], part: usize) -> Vec<f32> {
        use rayon::prelude::*;
        let d = self.dim();
        let m = u.len() / d;
        let starts: Vec<usize> = (0..m).step_by(part.max(1)).collect();
        let done: Vec<Vec<f32>> = starts
            .par_iter()
            .map(|&s| {
                let rows = &u[s * d..(s + part.max(1)).min(m) * d];
                let k = rows.len() / d;
                let mut dout = Act::scratch(self.channels, k, self.image_size);
                let hw = self.image_size * self.image_size;
                for (r, row) in rows.chunks_exact(d).enumerate() {
                    for c in 0..self.channels {
                        dout.v[c * k * hw + r * hw..][..hw].copy_from_slice(&row[c * hw..][..hw]);
                    }
                }
                let wide = tape.expand(k);
                let dx = self.back(p, &wide, &dout, &mut []);
                dx.map_or_else(|| vec![0.0; k * d], |a| to_rows(&a))
            })
            .collect();
        done.concat()
    }

    /// The reverse pass: with a non-empty `g`, adds every parameter's gradient to it and
    /// returns `None`; with an empty one, returns the input's gradient alone.
    fn back(&self, p: &[Vec<f32>], t: &Tape, dout: &Act, g: &mut [Vec<f32>]) -> Option<Act> {
        // A pass without a tape ([`HostUNet::infer`]) has nothing to differentiate.
        let mid = t.mid.as_deref()?;
        let mut dao = Act::zeros(t.ao.c, t.ao.b, t.ao.h);
        self.conv_out.backward(p, &t.ao, dout, g, Some(&mut dao));
        let dno = silu_grad_act(&t.no, &dao);
        let mut dh = self.norm_out.backward(p, &t.on, &t.so, &dno, g);
        let mut dst = vec![0.0; t.st.len()];
        let n_hs = t.down.len() + 1;
        let mut dhs: Vec<Option<Act>> = (0..n_hs).map(|_| None).collect();
        let mut stage_ix = self.up.len();
        let mut up_ix = self.upsample.len();
        for (tapes, upx) in t.up.iter().rev() {
            if let Some(x) = upx {
                up_ix -= 1;
                let mut dx = Act::zeros(x.c, x.b, x.h);
                self.upsample[up_ix].backward(p, x, &dh, g, Some(&mut dx));
                dh = upsample2_back(&dx);
            }
            for (st, c) in tapes.iter().rev() {
                // Up stage `j` (in forward order) took `hs[n_hs - 1 - j]` as its skip.
                stage_ix -= 1;
                let dcat = self.up[stage_ix].backward(p, st, dh, &t.st, &mut dst, g);
                let (dprev, dskip) = dcat.split(*c);
                accumulate(&mut dhs[n_hs - 1 - stage_ix], dskip);
                dh = dprev;
            }
        }
        dh = self.mid1.backward(p, &mid.2, &dh, &t.st, &mut dst, g);
        dh = self.mid_attn.backward(p, &mid.1, &dh, g);
        dh = self.mid0.backward(p, &mid.0, &dh, &t.st, &mut dst, g);
        accumulate(&mut dhs[n_hs - 1], dh);
        for (i, prod) in t.down.iter().enumerate().rev() {
            let Some(dy) = dhs[i + 1].take() else { continue };
            let dx = match prod {
                Producer::Stage(s, st) => self.down[*s].backward(p, st, dy, &t.st, &mut dst, g),
                Producer::Down(l, x) => {
                    let mut dx = Act::zeros(x.c, x.b, x.h);
                    self.downsample[*l].backward(p, x, &dy, g, Some(&mut dx));
                    dx
                }
            };
            accumulate(&mut dhs[i], dx);
        }
        let d0 = dhs[0].take();
        if g.is_empty() {
            return d0.map(|d0| {
                let mut dx = Act::zeros(t.x.c, t.x.b, t.x.h);
                self.conv_in.backward(p, &t.x, &d0, g, Some(&mut dx));
                dx
            });
        }
        if let Some(d0) = d0 {
            self.conv_in.backward(p, &t.x, &d0, g, None);
        }
        self.embedding_backward(p, t, &dst, g);
        None
    }

    /// From `d silu(temb)` through the two embedding layers.
    fn embedding_backward(&self, p: &[Vec<f32>], t: &Tape, dst: &[f32], g: &mut [Vec<f32>]) {
        let dtemb = silu_back(&t.temb, dst);
        let ds0 = self.temb1.backward(p, &t.s0, &dtemb, t.b, g);
        let dt0 = silu_back(&t.t0, &ds0);
        self.temb0.backward(p, &t.emb, &dt0, t.b, g);
    }
}

/// A feature map as rows of channel-major pixels, one row per image.
pub(crate) fn to_rows(a: &Act) -> Vec<f32> {
    let (b, hw, n) = (a.b, a.hw(), a.n());
    let mut rows = vec![0.0; a.v.len()];
    for i in 0..b {
        for c in 0..a.c {
            rows[(i * a.c + c) * hw..][..hw].copy_from_slice(&a.v[c * n + i * hw..][..hw]);
        }
    }
    rows
}

fn accumulate(slot: &mut Option<Act>, d: Act) {
    match slot {
        Some(a) => a.add(&d),
        None => *slot = Some(d),
    }
}

#[cfg(test)]
mod tests;
