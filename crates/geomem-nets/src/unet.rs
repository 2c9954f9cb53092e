//! The DDPM U-Net of Ho et al. (2020) as the authors of seed 000 configure it (Table 1;
//! their `image_experiments/src/models/ddpm.py`): a wide-ResNet U-Net predicting the noise
//! `ε` of `x_k = √ᾱ_k x₀ + √(1-ᾱ_k) ε` at a discrete step `k`.
//!
//! * time: sinusoidal embedding of `k` (size `base`, `max_positions = 10⁴`) through
//!   `Linear(base, 4 base)`, SiLU, `Linear(4 base, 4 base)`;
//! * input `conv3x3(c, base)`; per level `ℓ` with width `base·mults[ℓ]`, `res_blocks`
//!   residual blocks (GroupNorm, SiLU, conv3x3, + `Linear(SiLU(temb))`, GroupNorm, SiLU,
//!   dropout, conv3x3 initialised to zero; a 1×1 projection of the skip when the width
//!   changes), self-attention after each block at the resolutions in `attn_resolutions`,
//!   and a learned stride-2 conv3x3 (padding right and bottom only, TensorFlow's `SAME`)
//!   between levels;
//! * middle: residual block, attention, residual block;
//! * up path: `res_blocks + 1` blocks per level on the concatenation with the stored
//!   activations, nearest 2× upsampling plus conv3x3 between levels;
//! * output GroupNorm, SiLU, conv3x3 to `c` channels initialised to zero.
//!
//! GroupNorm has `groups` groups (32 in the paper) and `ε = 10⁻⁶`. Weights are drawn on the
//! host from a seed with the DDPM initialisation (uniform variance scaling, fan-average,
//! biases zero), so the same seed gives the same network on every backend.

use crate::error::param;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Settings of [`UNet`]. The paper's configurations ship as files in `experiments/unet/`.
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Image height = width (divisible by `2^(levels - 1)`).
    pub image_size: usize,
    /// Image channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Base width (the paper's "latent dimension", 128).
    #[config(default = 128)]
    pub base: usize,
    /// Width multiplier of each level.
    #[config(default = "vec![1, 2, 2, 2]")]
    pub mults: Vec<usize>,
    /// Resolutions (image sizes of a level) with self-attention after each block.
    #[config(default = "vec![16]")]
    pub attn_resolutions: Vec<usize>,
    /// Residual blocks per level on the way down (`+ 1` on the way up).
    #[config(default = 2)]
    pub res_blocks: usize,
    /// Dropout probability inside the residual blocks.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// GroupNorm groups (every width must be a multiple).
    #[config(default = 32)]
    pub groups: usize,
}

/// A residual block with time conditioning.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    norm0: GroupNorm<B>,
    conv0: Conv2d<B>,
    temb: Linear<B>,
    norm1: GroupNorm<B>,
    dropout: Dropout,
    conv1: Conv2d<B>,
    skip: Option<Conv2d<B>>,
}

/// Self-attention over the pixels of a feature map (one head).
#[derive(Module, Debug)]
pub struct AttnBlock<B: Backend> {
    norm: GroupNorm<B>,
    q: Conv2d<B>,
    k: Conv2d<B>,
    v: Conv2d<B>,
    out: Conv2d<B>,
}

/// A residual block, followed by attention at the chosen resolutions.
#[derive(Module, Debug)]
pub struct Stage<B: Backend> {
    res: ResBlock<B>,
    attn: Option<AttnBlock<B>>,
}

/// The noise-prediction U-Net.
#[derive(Module, Debug)]
pub struct UNet<B: Backend> {
    temb0: Linear<B>,
    temb1: Linear<B>,
    conv_in: Conv2d<B>,
    down: Vec<Stage<B>>,
    downsample: Vec<Conv2d<B>>,
    mid0: ResBlock<B>,
    mid_attn: AttnBlock<B>,
    mid1: ResBlock<B>,
    up: Vec<Stage<B>>,
    upsample: Vec<Conv2d<B>>,
    norm_out: GroupNorm<B>,
    conv_out: Conv2d<B>,
    base: usize,
    levels: usize,
    res_blocks: usize,
    channels: usize,
    image_size: usize,
}

/// A residual block's (input width, output width, attention after it).
pub(crate) type Block = (usize, usize, bool);

/// Host-seeded DDPM initialisation: `U(±√(3 s / fan_avg))`, biases zero.
struct Init<'a, B: Backend> {
    rng: StdRng,
    device: &'a B::Device,
    groups: usize,
    dropout: f64,
}

impl<B: Backend> Init<'_, B> {
    fn uniform<const D: usize>(&mut self, dims: [usize; D], fan_avg: f64, scale: f64) -> Tensor<B, D> {
        let bound = (3.0 * scale / fan_avg).sqrt() as f32;
        let n = dims.iter().product();
        let v: Vec<f32> =
            if scale == 0.0 { vec![0.0; n] } else { (0..n).map(|_| self.rng.random_range(-bound..=bound)).collect() };
        Tensor::from_data(TensorData::new(v, dims), self.device).require_grad()
    }
    fn zero_bias(&self, b: Option<Param<Tensor<B, 1>>>) -> Option<Param<Tensor<B, 1>>> {
        b.map(|p| p.map(|t| t.zeros_like().require_grad()))
    }
    fn linear(&mut self, i: usize, o: usize, scale: f64) -> Linear<B> {
        let mut l = LinearConfig::new(i, o).init(self.device);
        let w = self.uniform([i, o], (i + o) as f64 / 2.0, scale);
        l.weight = l.weight.map(|_| w);
        l.bias = self.zero_bias(l.bias);
        l
    }
    /// A 1×1 convolution (the DDPM code's `NIN`, a linear map over channels per pixel).
    fn conv1x1(&mut self, i: usize, o: usize, scale: f64) -> Conv2d<B> {
        let mut c = Conv2dConfig::new([i, o], [1, 1]).init(self.device);
        let w = self.uniform([o, i, 1, 1], (i + o) as f64 / 2.0, scale);
        c.weight = c.weight.map(|_| w);
        c.bias = self.zero_bias(c.bias);
        c
    }
    fn conv(&mut self, i: usize, o: usize, stride: usize, scale: f64) -> Conv2d<B> {
        let pad =
            if stride == 1 { PaddingConfig2d::Explicit(1, 1, 1, 1) } else { PaddingConfig2d::Explicit(0, 0, 1, 1) };
        let mut c = Conv2dConfig::new([i, o], [3, 3]).with_stride([stride; 2]).with_padding(pad).init(self.device);
        let w = self.uniform([o, i, 3, 3], 9.0 * (i + o) as f64 / 2.0, scale);
        c.weight = c.weight.map(|_| w);
        c.bias = self.zero_bias(c.bias);
        c
    }
    fn norm(&self, ch: usize) -> GroupNorm<B> {
        GroupNormConfig::new(self.groups, ch).with_epsilon(1e-6).init(self.device)
    }
    fn res(&mut self, i: usize, o: usize, temb: usize) -> ResBlock<B> {
        ResBlock {
            norm0: self.norm(i),
            conv0: self.conv(i, o, 1, 1.0),
            temb: self.linear(temb, o, 1.0),
            norm1: self.norm(o),
            dropout: DropoutConfig::new(self.dropout).init(),
            conv1: self.conv(o, o, 1, 0.0),
            skip: (i != o).then(|| self.conv1x1(i, o, 0.1)),
        }
    }
    fn attn(&mut self, ch: usize) -> AttnBlock<B> {
        AttnBlock {
            norm: self.norm(ch),
            q: self.conv1x1(ch, ch, 0.1),
            k: self.conv1x1(ch, ch, 0.1),
            v: self.conv1x1(ch, ch, 0.1),
            out: self.conv1x1(ch, ch, 0.0),
        }
    }
}

impl UNetConfig {
    /// Checks every setting: sizes `>= 1`, the image divisible by `2^(levels - 1)`, `base`
    /// and every width multiples of `groups`, dropout in `[0, 1)`, fewer than `2^31` parameters.
    ///
    /// # Errors
    /// [`crate::NetsError::InvalidParameter`] naming the first bad setting.
    pub fn check(&self) -> crate::error::Result<()> {
        param("unet.channels", self.channels, self.channels >= 1, "must be >= 1")?;
        param("unet.base", self.base, self.base >= 2 && self.base.is_multiple_of(2), "must be even and >= 2")?;
        param(
            "unet.mults",
            format!("{:?}", self.mults),
            !self.mults.is_empty() && self.mults.iter().all(|&m| m >= 1),
            "at least one level, every multiplier >= 1",
        )?;
        param("unet.res_blocks", self.res_blocks, self.res_blocks >= 1, "must be >= 1")?;
        let div = 1usize.checked_shl(self.mults.len() as u32 - 1).unwrap_or(0);
        param(
            "unet.image_size",
            self.image_size,
            self.image_size >= 1 && div > 0 && self.image_size.is_multiple_of(div),
            "must be >= 1 and divisible by 2^(levels - 1)",
        )?;
        let widths_ok = self.groups >= 1
            && self.base.is_multiple_of(self.groups)
            && self.mults.iter().all(|&m| (self.base * m).is_multiple_of(self.groups));
        param("unet.groups", self.groups, widths_ok, "base and every width base·mult must be multiples of groups")?;
        param("unet.dropout", self.dropout, (0.0..1.0).contains(&self.dropout), "must lie in [0, 1)")?;
        let count = self.parameter_count();
        param("unet size", count.unwrap_or(u128::MAX), count.is_some_and(|c| c < 1 << 31), "fewer than 2^31 parameters")
    }

    /// The image size of level `l`.
    fn resolution(&self, l: usize) -> usize {
        self.image_size >> l
    }

    /// The (input, output) widths of every residual block, down then middle then up, and
    /// whether attention follows it (the channel bookkeeping of the DDPM code).
    pub(crate) fn plan(&self) -> (Vec<Block>, Vec<Block>) {
        let (nf, levels) = (self.base, self.mults.len());
        let attn = |l: usize| self.attn_resolutions.contains(&self.resolution(l));
        let (mut down, mut up, mut hs, mut ch) = (Vec::new(), Vec::new(), vec![nf], nf);
        for l in 0..levels {
            for _ in 0..self.res_blocks {
                down.push((ch, nf * self.mults[l], attn(l)));
                ch = nf * self.mults[l];
                hs.push(ch);
            }
            if l + 1 < levels {
                hs.push(ch);
            }
        }
        for l in (0..levels).rev() {
            for _ in 0..=self.res_blocks {
                let skip = hs.pop().unwrap_or(0);
                up.push((ch + skip, nf * self.mults[l], attn(l)));
                ch = nf * self.mults[l];
            }
        }
        (down, up)
    }

    /// Number of parameters, counted from the plan (`None` on overflow). The paper's
    /// configurations: 24.5M (MNIST), 35.7M (CIFAR-10), seed 000 Table 1.
    pub fn parameter_count(&self) -> Option<u128> {
        let (nf, c) = (self.base as u128, self.channels as u128);
        let lin = |i: u128, o: u128| i.checked_mul(o)?.checked_add(o);
        let conv = |i: u128, o: u128| i.checked_mul(o)?.checked_mul(9)?.checked_add(o);
        let res = |i: u128, o: u128| {
            let skip = if i == o { 0 } else { lin(i, o)? };
            Some(2 * i + conv(i, o)? + lin(4 * nf, o)? + 2 * o + conv(o, o)? + skip)
        };
        let attn = |ch: u128| Some(2 * ch + 4 * lin(ch, ch)?);
        let mut total = lin(nf, 4 * nf)? + lin(4 * nf, 4 * nf)? + conv(c, nf)?;
        let (down, up) = self.plan();
        for &(i, o, a) in down.iter().chain(&up) {
            total = total.checked_add(res(i as u128, o as u128)?)?;
            if a {
                total = total.checked_add(attn(o as u128)?)?;
            }
        }
        let levels = self.mults.len();
        for l in 0..levels.saturating_sub(1) {
            total += conv(nf * self.mults[l] as u128, nf * self.mults[l] as u128)?;
            total += conv(nf * self.mults[l + 1] as u128, nf * self.mults[l + 1] as u128)?;
        }
        let top = nf * *self.mults.last()? as u128;
        total = total.checked_add(2 * res(top, top)? + attn(top)?)?;
        total.checked_add(2 * nf * self.mults[0] as u128 + conv(nf * self.mults[0] as u128, c)?)
    }

    /// Builds the network on `device`, weights drawn on the host from `seed`.
    ///
    /// # Errors
    /// As [`UNetConfig::check`].
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> crate::error::Result<UNet<B>> {
        self.check()?;
        let nf = self.base;
        let mut ini =
            Init::<B> { rng: StdRng::seed_from_u64(seed), device, groups: self.groups, dropout: self.dropout };
        let (temb0, temb1) = (ini.linear(nf, 4 * nf, 1.0), ini.linear(4 * nf, 4 * nf, 1.0));
        let conv_in = ini.conv(self.channels, nf, 1, 1.0);
        let (down_plan, up_plan) = self.plan();
        let stage = |ini: &mut Init<B>, (i, o, a): (usize, usize, bool)| Stage {
            res: ini.res(i, o, 4 * nf),
            attn: a.then(|| ini.attn(o)),
        };
        let levels = self.mults.len();
        let (mut down, mut downsample) = (Vec::new(), Vec::new());
        for l in 0..levels {
            for b in 0..self.res_blocks {
                down.push(stage(&mut ini, down_plan[l * self.res_blocks + b]));
            }
            if l + 1 < levels {
                downsample.push(ini.conv(nf * self.mults[l], nf * self.mults[l], 2, 1.0));
            }
        }
        let top = nf * self.mults[levels - 1];
        let (mid0, mid_attn, mid1) = (ini.res(top, top, 4 * nf), ini.attn(top), ini.res(top, top, 4 * nf));
        let (mut up, mut upsample) = (Vec::new(), Vec::new());
        for (n, l) in (0..levels).rev().enumerate() {
            for b in 0..=self.res_blocks {
                up.push(stage(&mut ini, up_plan[n * (self.res_blocks + 1) + b]));
            }
            if l > 0 {
                upsample.push(ini.conv(nf * self.mults[l], nf * self.mults[l], 1, 1.0));
            }
        }
        let w0 = nf * self.mults[0];
        Ok(UNet {
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
            norm_out: ini.norm(w0),
            conv_out: ini.conv(w0, self.channels, 1, 0.0),
            base: nf,
            levels,
            res_blocks: self.res_blocks,
            channels: self.channels,
            image_size: self.image_size,
        })
    }
}

/// The sinusoidal embedding of DDPM steps (`[sin(k f_i)] ++ [cos(k f_i)]`,
/// `f_i = 10000^{-i/(half-1)}`), row-major `steps.len() × dim`, computed in `f64`.
pub fn timestep_embedding(steps: &[f32], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let rate = if half > 1 { 10000f64.ln() / (half - 1) as f64 } else { 0.0 };
    let mut out = Vec::with_capacity(steps.len() * dim);
    for &k in steps {
        let arg = |i: usize| f64::from(k) * (-rate * i as f64).exp();
        out.extend((0..half).map(|i| arg(i).sin() as f32));
        out.extend((0..half).map(|i| arg(i).cos() as f32));
        out.extend(std::iter::repeat_n(0.0, dim - 2 * half));
    }
    out
}

/// `x + v` with one value of `v` (`b × c`) per channel map of `x` (`b × c × h × w`),
/// computed as a 2-D broadcast (burn's CPU backend has a fast path for 2-D broadcasts and
/// walks 4-D ones element by element).
fn add_per_map<B: Backend>(x: Tensor<B, 4>, v: Tensor<B, 2>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    (x.reshape([b * c, h * w]) + v.reshape([b * c, 1])).reshape([b, c, h, w])
}

/// GroupNorm (`ε` of the module, affine) on 2-D views: the same function as
/// `burn::nn::GroupNorm::forward`, several times faster on the CPU backend.
fn group_norm<B: Backend>(n: &GroupNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let g = n.num_groups;
    let x = x.reshape([b * g, (c / g) * h * w]);
    let xc = x.clone() - x.mean_dim(1);
    let inv = xc.clone().square().mean_dim(1).add_scalar(n.epsilon).sqrt().recip();
    let xn = (xc * inv).reshape([b * c, h * w]);
    let (Some(gamma), Some(beta)) = (&n.gamma, &n.beta) else { return xn.reshape([b, c, h, w]) };
    let col = |p: &Param<Tensor<B, 1>>| p.val().reshape([1, c]).repeat_dim(0, b).reshape([b * c, 1]);
    (xn * col(gamma) + col(beta)).reshape([b, c, h, w])
}

impl<B: Backend> ResBlock<B> {
    fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        let h = self.conv0.forward(silu(group_norm(&self.norm0, x.clone())));
        let h = add_per_map(h, self.temb.forward(silu(temb)));
        let h = self.conv1.forward(self.dropout.forward(silu(group_norm(&self.norm1, h))));
        let x = match &self.skip {
            Some(p) => p.forward(x),
            None => x,
        };
        x + h
    }
}

impl<B: Backend> AttnBlock<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let t = group_norm(&self.norm, x.clone());
        let flat = |m: &Conv2d<B>| m.forward(t.clone()).reshape([b, c, h * w]);
        let (q, k, v) = (flat(&self.q), flat(&self.k), flat(&self.v));
        // a[p, p'] = softmax_p'(q_p · k_p' / √c); out_p = Σ_p' a[p, p'] v_p'.
        let a = softmax(q.swap_dims(1, 2).matmul(k).mul_scalar((c as f64).powf(-0.5)), 2);
        let y = v.matmul(a.swap_dims(1, 2)).reshape([b, c, h, w]);
        x + self.out.forward(y)
    }
}

impl<B: Backend> Stage<B> {
    fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        let h = self.res.forward(x, temb);
        match &self.attn {
            Some(a) => a.forward(h),
            None => h,
        }
    }
}

/// Nearest-neighbour 2× upsampling.
fn upsample2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w])
}

impl<B: Backend> UNet<B> {
    /// Image channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Image height = width.
    pub fn image_size(&self) -> usize {
        self.image_size
    }
    /// GroupNorm groups.
    pub(crate) fn groups(&self) -> usize {
        self.norm_out.num_groups
    }
    /// Pixels per image `d = c·h·w`.
    pub fn dim(&self) -> usize {
        self.channels * self.image_size * self.image_size
    }

    /// The same network with every dropout off: burn applies dropout whenever the backend
    /// records gradients, so a net differentiated as a score field must have none
    /// ([`crate::NoiseModel::for_inference`]).
    pub fn without_dropout(mut self) -> Self {
        let blocks = self.down.iter_mut().chain(self.up.iter_mut()).map(|s| &mut s.res);
        for r in blocks.chain([&mut self.mid0, &mut self.mid1]) {
            r.dropout = Dropout { prob: 0.0 };
        }
        self
    }

    /// The step embedding of a batch (`n × base`), on `device`.
    pub fn embed_steps(&self, steps: &[f32], device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(timestep_embedding(steps, self.base), [steps.len(), self.base]), device)
    }

    /// Predicted noise `ε̂(x, k)` for images `x` (`n × c × h × w`) and step embeddings
    /// from [`UNet::embed_steps`].
    pub fn forward(&self, x: Tensor<B, 4>, step_emb: Tensor<B, 2>) -> Tensor<B, 4> {
        let temb = self.temb1.forward(silu(self.temb0.forward(step_emb)));
        let mut hs = vec![self.conv_in.forward(x)];
        for l in 0..self.levels {
            for b in 0..self.res_blocks {
                let h = self.down[l * self.res_blocks + b].forward(hs[hs.len() - 1].clone(), temb.clone());
                hs.push(h);
            }
            if l + 1 < self.levels {
                let h = self.downsample[l].forward(hs[hs.len() - 1].clone());
                hs.push(h);
            }
        }
        let mut h = hs[hs.len() - 1].clone();
        h = self.mid1.forward(self.mid_attn.forward(self.mid0.forward(h, temb.clone())), temb.clone());
        let mut stages = self.up.iter();
        let mut ups = self.upsample.iter();
        for l in (0..self.levels).rev() {
            for _ in 0..=self.res_blocks {
                let (Some(s), Some(skip)) = (stages.next(), hs.pop()) else { break };
                h = s.forward(Tensor::cat(vec![h, skip], 1), temb.clone());
            }
            if l > 0 {
                if let Some(u) = ups.next() {
                    h = u.forward(upsample2(h));
                }
            }
        }
        self.conv_out.forward(silu(group_norm(&self.norm_out, h)))
    }
}

/// A trained [`UNet`] as a noise predictor of the VP process at discrete steps, hence a
/// [`geomem_score::ScoreField`] through `VpScore::discrete` (`s(x, t) = -ε̂(x/√(1+t), k)/√t`
/// with `t = t_k`): the trait every spectral estimator reads. Images are passed as rows of
/// `c·h·w` pixels (channel-major) and evaluated in batches of `batch` images, `parallel`
/// batches at a time on rayon tasks (1 by default; see [`UNetEps::with_parallel_batches`]).
#[derive(Debug, Clone)]
pub struct UNetEps<B: Backend> {
    model: UNet<B>,
    device: B::Device,
    batch: usize,
    parallel: usize,
}

impl<B: Backend> UNetEps<B> {
    /// Wraps a network living on `device` (usually the EMA weights), evaluated in batches
    /// of `batch` images (at least 1), one batch at a time.
    pub fn new(model: UNet<B>, device: B::Device, batch: usize) -> Self {
        Self { model, device, batch: batch.max(1), parallel: 1 }
    }

    /// Evaluates up to `parallel` batches at once, each on its own rayon task (at least 1).
    /// The batches and hence the numbers are the same for every value; what changes is the
    /// speed and the memory (`parallel` batches of activations at once). Worth it on a CPU
    /// backend that runs one batch on one core (burn's Flex does, for convolutions); on a
    /// GPU one batch usually fills the device.
    pub fn with_parallel_batches(mut self, parallel: usize) -> Self {
        self.parallel = parallel.max(1);
        self
    }

    /// The network.
    pub fn model(&self) -> &UNet<B> {
        &self.model
    }

    /// `ε̂` of rows `start..start + m` of `x` at step `k` (row-major `f32`).
    fn eps_rows(&self, x: faer::MatRef<'_, f64>, start: usize, m: usize, k: usize) -> geomem_score::Result<Vec<f32>> {
        let (c, h, d) = (self.model.channels, self.model.image_size, self.model.dim());
        let rows: Vec<f32> = (start..start + m).flat_map(|i| (0..d).map(move |j| x[(i, j)] as f32)).collect();
        let xt = Tensor::<B, 4>::from_data(TensorData::new(rows, [m, c, h, h]), &self.device);
        let y = self.model.forward(xt, self.model.embed_steps(&vec![k as f32; m], &self.device));
        y.into_data().to_vec().map_err(|e| geomem_score::ScoreError::Backend(format!("{e:?}")))
    }
}

/// The DDPM step of a U-Net evaluation, after checking the call: a discrete time, `x` and
/// `out` of `d` columns and as many rows (shared by [`UNetEps`] and `HostUNetEps`).
///
/// # Errors
/// [`geomem_score::ScoreError::InvalidParameter`] for a continuous time;
/// [`geomem_score::ScoreError::DimensionMismatch`] for other widths or row counts.
pub(crate) fn checked_step(
    time: geomem_score::VpTime,
    x: faer::MatRef<'_, f64>,
    out: faer::MatRef<'_, f64>,
    d: usize,
) -> geomem_score::Result<usize> {
    use geomem_score::ScoreError;
    let geomem_score::VpTime::Step(k) = time else {
        return Err(ScoreError::InvalidParameter {
            name: "time",
            value: format!("{time:?}"),
            reason: "a DDPM U-Net is evaluated at its discrete steps",
        });
    };
    for got in [x.ncols(), out.ncols()] {
        if got != d {
            return Err(ScoreError::DimensionMismatch { expected: d, got });
        }
    }
    if out.nrows() != x.nrows() {
        return Err(ScoreError::DimensionMismatch { expected: x.nrows(), got: out.nrows() });
    }
    Ok(k)
}

impl<B: Backend> geomem_score::VpEpsModel for UNetEps<B> {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn precision(&self) -> geomem_score::Precision {
        geomem_score::Precision::F32
    }
    fn eps_into(
        &self,
        x: faer::MatRef<'_, f64>,
        time: geomem_score::VpTime,
        mut out: faer::MatMut<'_, f64>,
    ) -> geomem_score::Result<()> {
        use rayon::prelude::*;
        let d = self.model.dim();
        let k = checked_step(time, x, out.as_ref(), d)?;
        let starts: Vec<usize> = (0..x.nrows()).step_by(self.batch).collect();
        for group in starts.chunks(self.parallel) {
            let m = |start: usize| self.batch.min(x.nrows() - start);
            let done: Vec<Vec<f32>> =
                group.par_iter().map(|&s| self.eps_rows(x, s, m(s), k)).collect::<geomem_score::Result<_>>()?;
            for (&start, v) in group.iter().zip(&done) {
                for i in 0..m(start) {
                    for j in 0..d {
                        out[(start + i, j)] = f64::from(v[i * d + j]);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    type B = Flex;

    fn input(dims: [usize; 4], phase: f32) -> Tensor<B, 4> {
        let n = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + phase).sin() * (1.0 + (i % 7) as f32)).collect();
        Tensor::from_data(TensorData::new(v, dims), &Default::default())
    }

    fn max_diff(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn group_norm_on_2d_views_equals_burns_group_norm() {
        let dev = Default::default();
        let mut n = GroupNormConfig::new(4, 8).with_epsilon(1e-6).init::<B>(&dev);
        let g: Tensor<B, 1> =
            Tensor::from_data(TensorData::new((0..8).map(|i| 0.5 + i as f32 * 0.3).collect::<Vec<_>>(), [8]), &dev);
        let b: Tensor<B, 1> =
            Tensor::from_data(TensorData::new((0..8).map(|i| i as f32 * -0.2).collect::<Vec<_>>(), [8]), &dev);
        n.gamma = n.gamma.map(|p| p.map(|_| g));
        n.beta = n.beta.map(|p| p.map(|_| b));
        let x = input([3, 8, 5, 4], 0.1);
        assert!(max_diff(group_norm(&n, x.clone()), n.forward(x)) < 1e-5);
    }

    #[test]
    fn attention_equals_the_pixel_major_formula() {
        let dev = Default::default();
        let mut ini = Init::<B> { rng: StdRng::seed_from_u64(2), device: &dev, groups: 4, dropout: 0.0 };
        let mut a = ini.attn(8);
        a.out = ini.conv1x1(8, 8, 1.0); // non-zero, so the attention path shows
        let x = input([2, 8, 3, 3], 0.7);
        let [b, c, h, w] = x.dims();
        // Reference: pixels as rows, a = softmax(Q Kᵀ/√c) over keys, out = a V.
        let t = group_norm(&a.norm, x.clone());
        let rows = |m: &Conv2d<B>| m.forward(t.clone()).reshape([b, c, h * w]).swap_dims(1, 2);
        let (q, k, v) = (rows(&a.q), rows(&a.k), rows(&a.v));
        let att = softmax(q.matmul(k.swap_dims(1, 2)).mul_scalar(1.0 / (c as f64).sqrt()), 2);
        let y = att.matmul(v).swap_dims(1, 2).reshape([b, c, h, w]);
        let want = x.clone() + a.out.forward(y);
        assert!(max_diff(a.forward(x), want) < 1e-5);
    }
}
