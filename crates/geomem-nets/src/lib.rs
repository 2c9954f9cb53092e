//! Score networks with burn (pinned `=0.21.0`): the toy residual MLP of seed 001 (Supp. A),
//! denoising score matching for the VE process with an EMA of the weights, atomic
//! checkpoints with exact resumption, safetensors export, and sampling.
//!
//! Library code is generic over `B: Backend` (`B: AutodiffBackend` for training); no
//! backend is named here. Binaries choose `burn::backend::Flex` (CPU) or, with a `cuda`
//! feature, `burn::backend::Cuda`.
//!
//! Any burn module that predicts noise implements [`NoiseModel`] (VE or VP form) and
//! becomes a [`geomem_score::ScoreField`] through [`NetScore`], with its Jacobian, VJPs and
//! divergence by automatic differentiation; the toy net ([`TrainedScore`]) and the U-Net
//! are two such modules. Every estimator of `geomem-spectral` runs on them unchanged.
//!
//! A run directory written by [`train`] or [`train_ddpm`] opens with [`RunDir::open`]: its
//! settings, its metrics ([`read_metrics`]) and its EMA network as a field
//! ([`RunDir::score_field`]); [`load_ema`] reads the EMA weights of either network.

mod checkpoint;
mod cost;
mod ddpm;
mod draws;
mod ema;
mod error;
mod eval;
mod export;
mod field;
mod host;
mod host_train;
mod host_unet;
mod metrics;
mod model;
mod noise;
mod run_dir;
mod sampling;
mod split;
mod stacked;
mod train;
mod train_loop;
mod unet;
mod wide;

pub use checkpoint::FILE as CHECKPOINT_FILE;
pub use cost::{ConvShape, MultiplyAdds};
pub use ddpm::{load_ddpm, train_ddpm, DdpmState, DdpmTrainConfig};
pub use ema::{load_ema, EmaNet};
pub use error::{NetsError, Result};
pub use eval::{ddpm_loss, dsm_loss, LossDraws};
pub use export::{named_parameters, save_safetensors, NamedParameters};
pub use field::{JvpMethod, NetScore, TrainedScore, EXACT_JVP_BELOW};
pub use host::HostMlp;
pub use host_train::{train_host, train_toy};
pub use host_unet::eval::HostUNetEps;
pub use host_unet::train::{train_ddpm_host, train_unet};
pub use metrics::{read_metrics, LogRow, METRICS_FILE};
pub use model::{ResidualBlock, ResidualMlp, ResidualMlpConfig};
pub use noise::{NoiseForm, NoiseModel};
pub use run_dir::{RunConfig, RunDir, RunScore};
pub use sampling::{sample, sample_ddpm, DdpmSampling, Sampler, SamplingParams};
pub use stacked::{
    check_stack, train_stacked, StackedBlock, StackedLinear, StackedLogRow, StackedMlp, StackedTrainState,
};
pub use train::{
    decode as decode_checkpoint, encode as encode_checkpoint, load as load_checkpoint, save as save_checkpoint, train,
    TrainConfig, TrainState,
};
pub use train_loop::LoopConfig;
pub use unet::{timestep_embedding, AttnBlock, ResBlock, Stage, UNet, UNetConfig, UNetEps};
