//! [`NoiseModel`]: the one trait a burn module implements to become a score field
//! ([`crate::NetScore`]), and its implementations for the toy net and the U-Net.
//!
//! A model predicts the noise `ε̂` of a noisy input at a noise level, in one of two forms
//! ([`NoiseForm`]):
//!
//! ```text
//! VE:  input x,            level σ = √t,            s(x, t) = -ε̂(x, σ)/σ
//! VP:  input x/√(1 + t),   level k (step) or τ,     s(x, t) = -ε̂(x/√(1+t), k)/√t   (ᾱ_k = 1/(1+t))
//! ```
//!
//! (the VP form is `geomem_score::VpScore`'s conversion, seed 001 Supp. A).

use crate::model::ResidualMlp;
use crate::unet::UNet;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use geomem_score::{Result, VpGrid, VpTime};

/// A burn module that predicts noise: implement it once, generically over the backend, and
/// [`crate::NetScore`] makes the module a [`geomem_score::ScoreField`] with autodiff
/// Jacobian, VJPs and divergence.
pub trait NoiseModel<B: Backend> {
    /// The data dimension `d` (for images, `c·h·w` pixels, channel-major).
    fn dim(&self) -> usize;

    /// `ε̂` for the rows of `x` (`n × d`) at noise `level`: `σ = √t` in the VE form, the
    /// step `k` (as a float) or `τ` in the VP form ([`NoiseForm::level`]).
    fn predict_noise(&self, x: Tensor<B, 2>, level: f64) -> Tensor<B, 2>;

    /// The module as it should be differentiated (default: itself). burn applies dropout
    /// whenever the backend records gradients, which the derivatives of a score field do, so
    /// a module with dropout returns a copy with every dropout off.
    fn for_inference(self) -> Self
    where
        Self: Sized,
    {
        self
    }
}

/// How a noise prediction becomes a score (module doc).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NoiseForm {
    /// Variance exploding: the model sees `x` and `σ = √t`.
    Ve,
    /// Variance preserving: the model sees `x/√(1+t)` and the step (or `τ`) of `t` on the grid.
    Vp(VpGrid),
}

impl NoiseForm {
    /// `(c_in, level, c_out)` at VE time `t`: the model sees `c_in x` at `level`, and
    /// `s = c_out ε̂`.
    ///
    /// # Errors
    /// For the VP form, a `t` off the grid or outside its range
    /// ([`geomem_score::ScoreError::OffGrid`], [`geomem_score::ScoreError::TimeOutOfRange`]).
    pub fn level(&self, t: f64) -> Result<(f64, f64, f64)> {
        let c_out = -1.0 / t.sqrt();
        match self {
            Self::Ve => Ok((1.0, t.sqrt(), c_out)),
            Self::Vp(grid) => {
                let level = match grid.vp_time(t)? {
                    VpTime::Step(k) => k as f64,
                    VpTime::Continuous(tau) => tau,
                };
                Ok(((-0.5 * t.ln_1p()).exp(), level, c_out))
            }
        }
    }
}

impl<B: Backend> NoiseModel<B> for ResidualMlp<B> {
    fn dim(&self) -> usize {
        self.d
    }
    /// VE form: `level` is `σ`, through the net's own conditioning (`c_in(σ)`, Fourier
    /// embedding).
    fn predict_noise(&self, x: Tensor<B, 2>, level: f64) -> Tensor<B, 2> {
        let n = x.dims()[0];
        let (cin, emb) = self.conditioning(&[level as f32], &x.device());
        self.forward(x, cin.repeat_dim(0, n), emb.repeat_dim(0, n))
    }
}

impl<B: Backend> NoiseModel<B> for UNet<B> {
    fn dim(&self) -> usize {
        UNet::dim(self)
    }
    /// VP form: `level` is the DDPM step `k`; rows are images `c × h × w`.
    fn predict_noise(&self, x: Tensor<B, 2>, level: f64) -> Tensor<B, 2> {
        let (n, c, h) = (x.dims()[0], self.channels(), self.image_size());
        let emb = self.embed_steps(&vec![level as f32; n], &x.device());
        self.forward(x.reshape([n, c, h, h]), emb).reshape([n, c * h * h])
    }
    fn for_inference(self) -> Self {
        self.without_dropout()
    }
}
