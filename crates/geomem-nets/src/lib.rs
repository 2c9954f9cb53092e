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

mod checkpoint;
mod ddpm;
mod error;
mod eval;
mod export;
mod field;
mod host;
mod model;
mod noise;
mod sampling;
mod stacked;
mod train;
mod unet;

pub use checkpoint::{
    decode as decode_checkpoint, encode as encode_checkpoint, load as load_checkpoint, load_ema,
    save as save_checkpoint, FILE as CHECKPOINT_FILE,
};
pub use ddpm::{load_ddpm, load_ddpm_ema, train_ddpm, DdpmState, DdpmTrainConfig};
pub use error::{NetsError, Result};
pub use eval::{ddpm_loss, dsm_loss, LossDraws};
pub use export::{named_parameters, save_safetensors, NamedParameters};
pub use field::{JvpMethod, NetScore, TrainedScore, EXACT_JVP_BELOW};
pub use host::HostMlp;
pub use model::{ResidualBlock, ResidualMlp, ResidualMlpConfig};
pub use noise::{NoiseForm, NoiseModel};
pub use sampling::{sample, sample_ddpm, DdpmSampling, Sampler, SamplingParams};
pub use stacked::{
    check_stack, train_stacked, StackedBlock, StackedLinear, StackedLogRow, StackedMlp, StackedTrainState,
};
pub use train::{train, LogRow, TrainConfig, TrainState};
pub use unet::{timestep_embedding, AttnBlock, ResBlock, Stage, UNet, UNetConfig, UNetEps};
