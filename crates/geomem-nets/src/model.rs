//! The toy score network of seed 001, Supp. A: a residual MLP (hidden size 128, two residual
//! blocks of two linear layers with SiLU) conditioned on the noise level, predicting the
//! noise `ε` of `x_t = x_0 + σ ε`; the score is `-ε̂/σ`.
//!
//! Conditioning: `[sin(f_k ln σ), cos(f_k ln σ)]` for `K = emb_dim/2` frequencies `f_k`
//! log-spaced from 0.1 to 10 (a fixed Fourier embedding of `ln σ`), concatenated to the
//! input. The input is scaled by `c_in = 1/√(σ_data² + σ²)` so that it has unit scale at every
//! noise level up to `σ_max = 50` (the preconditioning of Karras et al. 2022).

use crate::error::param;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The embedding `[sin(f_k ln σ)]_k ++ [cos(f_k ln σ)]_k`, `f_k` log-spaced in [0.1, 10].
pub(crate) fn fourier_embedding(emb_dim: usize, sigma: f64) -> impl Iterator<Item = f32> {
    let k = emb_dim / 2;
    let ls = sigma.ln();
    let f = move |j: usize| {
        if k > 1 {
            (0.1f64.ln() + (10f64.ln() - 0.1f64.ln()) * j as f64 / (k - 1) as f64).exp()
        } else {
            1.0
        }
    };
    (0..k).map(move |j| (f(j) * ls).sin() as f32).chain((0..k).map(move |j| (f(j) * ls).cos() as f32))
}

/// Input scales `c_in = 1/√(σ_data² + σ²)` (one per noise level) and embeddings
/// (`emb_dim` per noise level, row-major), computed on the host in `f64`.
pub(crate) fn host_conditioning(emb_dim: usize, sigma_data: f64, sigma: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let sd2 = sigma_data.powi(2);
    let mut emb = Vec::with_capacity(sigma.len() * emb_dim);
    for &s in sigma {
        emb.extend(fourier_embedding(emb_dim, f64::from(s)));
    }
    let cin = sigma.iter().map(|&s| (1.0 / (sd2 + f64::from(s).powi(2)).sqrt()) as f32).collect();
    (cin, emb)
}

/// Settings of [`ResidualMlp`].
#[derive(Config, Debug, PartialEq)]
pub struct ResidualMlpConfig {
    /// Data dimension `d`.
    pub d: usize,
    /// Hidden width.
    #[config(default = 128)]
    pub hidden: usize,
    /// Number of residual blocks.
    #[config(default = 2)]
    pub blocks: usize,
    /// Size of the Fourier embedding of `ln σ` (even).
    #[config(default = 32)]
    pub emb_dim: usize,
    /// `σ_data` of the input scaling `1/√(σ_data² + σ²)`.
    #[config(default = 1.0)]
    pub sigma_data: f64,
}

/// One residual block: `h + W₂ silu(W₁ silu(h))`.
#[derive(Module, Debug)]
pub struct ResidualBlock<B: Backend> {
    /// First linear layer.
    pub l1: Linear<B>,
    /// Second linear layer.
    pub l2: Linear<B>,
}

/// The residual MLP noise predictor.
#[derive(Module, Debug)]
pub struct ResidualMlp<B: Backend> {
    /// `[x c_in, emb(ln σ)] → hidden`.
    pub input: Linear<B>,
    /// Residual blocks.
    pub blocks: Vec<ResidualBlock<B>>,
    /// `hidden → d`.
    pub output: Linear<B>,
    /// Data dimension.
    pub d: usize,
    /// Embedding size.
    pub emb_dim: usize,
    /// `σ_data · 1e6`, stored as an integer constant of the module.
    pub sigma_data_micro: usize,
}

/// Replaces every float parameter with host draws `U(-1/√fan_in, 1/√fan_in)` (PyTorch's
/// `nn.Linear` default), in visiting order (a layer's weight, then its bias).
struct HostInit {
    rng: rand::rngs::StdRng,
    fan_in: usize,
}

impl<B: Backend> burn::module::ModuleMapper<B> for HostInit {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<B, D>>,
    ) -> burn::module::Param<Tensor<B, D>> {
        use rand::Rng;
        let rng = &mut self.rng;
        let fan_in = &mut self.fan_in;
        param.map(|t| {
            let dims = t.dims();
            if D == 2 {
                *fan_in = dims[0];
            }
            let bound = 1.0 / (*fan_in).max(1) as f64;
            let bound = bound.sqrt() as f32;
            let n: usize = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            Tensor::from_data(TensorData::new(v, dims), &t.device()).require_grad()
        })
    }
}

impl ResidualMlpConfig {
    /// Checks every setting: `d >= 1`, `hidden >= 1`, `emb_dim` even and `>= 2`, `σ_data`
    /// finite and `> 0`, and a parameter count that fits in memory (below `2^31`).
    ///
    /// # Errors
    /// [`crate::NetsError::InvalidParameter`] naming the first bad setting.
    pub fn check(&self) -> crate::error::Result<()> {
        param("model.d", self.d, self.d >= 1, "must be >= 1")?;
        param("model.hidden", self.hidden, self.hidden >= 1, "must be >= 1")?;
        param(
            "model.emb_dim",
            self.emb_dim,
            self.emb_dim >= 2 && self.emb_dim.is_multiple_of(2),
            "must be even and >= 2",
        )?;
        param(
            "model.sigma_data",
            self.sigma_data,
            self.sigma_data.is_finite() && self.sigma_data > 0.0 && self.sigma_data < 1e12,
            "must be finite and in (0, 1e12)",
        )?;
        let count = self.parameter_count();
        param(
            "model size",
            count.unwrap_or(u128::MAX),
            count.is_some_and(|c| c < 1 << 31),
            "fewer than 2^31 parameters",
        )
    }

    /// Number of parameters (`None` on overflow).
    pub fn parameter_count(&self) -> Option<u128> {
        let (d, h, e, b) = (self.d as u128, self.hidden as u128, self.emb_dim as u128, self.blocks as u128);
        let input = (d + e).checked_mul(h)? + h;
        let block = 2 * (h.checked_mul(h)? + h);
        let output = h.checked_mul(d)? + d;
        input.checked_add(b.checked_mul(block)?)?.checked_add(output)
    }

    /// Builds the network on `device` with weights drawn on the host from `seed`
    /// (`U(±1/√fan_in)` as PyTorch's `nn.Linear`): the same seed gives the same network on
    /// every backend, whatever else uses the backend's own generator meanwhile.
    ///
    /// # Errors
    /// As [`ResidualMlpConfig::check`].
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> crate::error::Result<ResidualMlp<B>> {
        use rand::SeedableRng;
        Ok(self.init(device)?.map(&mut HostInit { rng: rand::rngs::StdRng::seed_from_u64(seed), fan_in: 1 }))
    }

    /// Builds the network on `device` with burn's default initialisation (backend RNG);
    /// used as a skeleton before loading a record. Prefer [`ResidualMlpConfig::init_seeded`].
    ///
    /// # Errors
    /// As [`ResidualMlpConfig::check`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::error::Result<ResidualMlp<B>> {
        self.check()?;
        let lin = |a, b| LinearConfig::new(a, b).init(device);
        Ok(ResidualMlp {
            input: lin(self.d + self.emb_dim, self.hidden),
            blocks: (0..self.blocks)
                .map(|_| ResidualBlock { l1: lin(self.hidden, self.hidden), l2: lin(self.hidden, self.hidden) })
                .collect(),
            output: lin(self.hidden, self.d),
            d: self.d,
            emb_dim: self.emb_dim,
            sigma_data_micro: (self.sigma_data * 1e6).round() as usize,
        })
    }
}

impl<B: Backend> ResidualMlp<B> {
    /// `σ_data`.
    pub fn sigma_data(&self) -> f64 {
        self.sigma_data_micro as f64 * 1e-6
    }

    /// Host-side conditioning of a batch: input scales `c_in` (`n × 1`) and embeddings
    /// (`n × emb_dim`), from the noise levels `sigma`.
    pub fn conditioning(&self, sigma: &[f32], device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let n = sigma.len();
        let (cin, emb) = host_conditioning(self.emb_dim, self.sigma_data(), sigma);
        (
            Tensor::from_data(TensorData::new(cin, [n, 1]), device),
            Tensor::from_data(TensorData::new(emb, [n, self.emb_dim]), device),
        )
    }

    /// Predicted noise `ε̂(x, σ)` for a batch `x` (`n × d`) with per-row scales `c_in`
    /// (`n × 1`) and embeddings (`n × emb_dim`) from [`ResidualMlp::conditioning`].
    pub fn forward(&self, x: Tensor<B, 2>, c_in: Tensor<B, 2>, emb: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.input.forward(Tensor::cat(vec![x * c_in, emb], 1));
        let mut h = h;
        for b in &self.blocks {
            h = h.clone() + b.l2.forward(silu(b.l1.forward(silu(h))));
        }
        self.output.forward(silu(h))
    }
}
