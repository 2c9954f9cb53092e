//! The exponential moving average of the weights (`ema ← δ_k ema + (1 - δ_k) θ`,
//! `δ_k = min(decay, (1 + k)/(10 + k))`, the same warm-up for every trainer) and loading the
//! EMA weights of a checkpoint, one signature for either network ([`EmaNet`]).

use crate::error::Result;
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use std::path::Path;

/// Every float parameter of a module, flattened, in visiting order.
pub(crate) struct Flatten<B: Backend> {
    pub(crate) out: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.out.push(t.reshape([n]));
    }
}

/// Blends each parameter with the next flattened source tensor.
pub(crate) struct EmaMapper<B: Backend> {
    pub(crate) src: std::vec::IntoIter<Tensor<B, 1>>,
    pub(crate) decay: f64,
}

impl<B: Backend> ModuleMapper<B> for EmaMapper<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(src) = self.src.next() else { return param };
        let decay = self.decay;
        param.map(|e| {
            let dims = e.dims();
            e.mul_scalar(decay) + src.reshape(dims).mul_scalar(1.0 - decay)
        })
    }
}

/// The decay at step `step`: `min(decay, (1 + step)/(10 + step))`.
pub(crate) fn decay_at(decay: f64, step: u64) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

/// The EMA after step `step` of `model`: `δ ema + (1 - δ) model`, `δ` = [`decay_at`].
pub(crate) fn update<B: AutodiffBackend, M: AutodiffModule<B>>(
    ema: M::InnerModule,
    model: &M,
    decay: f64,
    step: u64,
) -> M::InnerModule {
    let mut flat = Flatten { out: Vec::new() };
    model.valid().visit(&mut flat);
    ema.map(&mut EmaMapper { src: flat.out.into_iter(), decay: decay_at(decay, step) })
}

/// A network whose EMA weights a checkpoint holds, with the training settings saved beside
/// them: the toy [`crate::ResidualMlp`] ([`crate::TrainConfig`]) and the [`crate::UNet`]
/// ([`crate::DdpmTrainConfig`]).
pub trait EmaNet<B: Backend>: Module<B> + Sized {
    /// The training settings of the run.
    type Config;
    /// The EMA weights of the checkpoint at `path`, on `device` (any backend), with the
    /// settings of the run that wrote it (checked).
    ///
    /// # Errors
    /// [`crate::NetsError::Io`] when unreadable; [`crate::NetsError::CorruptCheckpoint`] for
    /// a damaged file, one of the other network or records of other shapes;
    /// [`crate::NetsError::InvalidParameter`] for stored settings that do not pass their
    /// checks.
    fn load_ema(path: &Path, device: &B::Device) -> Result<(Self, Self::Config)>;
}

/// The EMA weights of the checkpoint at `path` and the settings of its run, for either
/// network ([`EmaNet`]):
///
/// ```no_run
/// # use burn::backend::Flex;
/// use geomem_nets::{load_ema, ResidualMlp, TrainConfig};
/// let (net, cfg): (ResidualMlp<Flex>, TrainConfig) =
///     load_ema(std::path::Path::new("run/checkpoint.bin"), &Default::default()).unwrap();
/// ```
///
/// # Errors
/// As [`EmaNet::load_ema`].
pub fn load_ema<B: Backend, N: EmaNet<B>>(path: &Path, device: &B::Device) -> Result<(N, N::Config)> {
    N::load_ema(path, device)
}
