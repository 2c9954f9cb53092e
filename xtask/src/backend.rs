//! The one place that names a burn backend: Flex (CPU) by default, CUDA with `--features cuda`.

/// Backend for evaluation.
#[cfg(not(feature = "cuda"))]
pub type Inner = burn::backend::Flex;
/// Backend for evaluation.
#[cfg(feature = "cuda")]
pub type Inner = burn::backend::Cuda;
/// Backend for training.
pub type Train = burn::backend::Autodiff<Inner>;

/// The default device of the backend.
pub fn device() -> burn::tensor::Device<Inner> {
    Default::default()
}

/// Human-readable backend name.
pub fn name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "flex (CPU)"
    }
}

/// Trains the toy network with `geomem_nets::train_toy`: the host step on the CPU build
/// (3× burn Flex's step on this network, the same checkpoints), burn's step on CUDA or when a
/// batch split is asked for.
///
/// # Errors
/// As `geomem_nets::train`.
pub fn train_toy(
    data: faer::MatRef<'_, f64>,
    cfg: &geomem_nets::TrainConfig,
    run_dir: Option<&std::path::Path>,
    on_log: &mut dyn FnMut(&geomem_nets::LogRow) -> std::ops::ControlFlow<()>,
) -> geomem_nets::Result<geomem_nets::TrainState<Train>> {
    geomem_nets::train_toy::<Train>(data, cfg, run_dir, &device(), !cfg!(feature = "cuda"), on_log)
}

/// Trains a DDPM U-Net with `geomem_nets::train_unet`: the host step on the CPU build
/// (several times burn Flex's step, the same checkpoints), burn's step on CUDA.
///
/// # Errors
/// As `geomem_nets::train_ddpm`.
pub fn train_unet(
    images: faer::MatRef<'_, f64>,
    cfg: &geomem_nets::DdpmTrainConfig,
    run_dir: Option<&std::path::Path>,
    on_log: &mut dyn FnMut(&geomem_nets::LogRow) -> std::ops::ControlFlow<()>,
) -> geomem_nets::Result<geomem_nets::DdpmState<Train>> {
    geomem_nets::train_unet::<Train>(images, cfg, run_dir, &device(), !cfg!(feature = "cuda"), on_log)
}

/// A trained U-Net as a noise predictor: evaluated on the host on the CPU build
/// (`geomem_nets::HostUNetEps`), by burn on CUDA (`geomem_nets::UNetEps`, batches of
/// `batch`, `parallel` at a time).
pub enum UNetNoise {
    /// The host forward pass.
    Host(Box<geomem_nets::HostUNetEps>),
    /// burn's forward pass on the device.
    Burn(Box<geomem_nets::UNetEps<Inner>>),
}

impl UNetNoise {
    /// The noise predictor of `net` (a network of `cfg`) for this build.
    ///
    /// # Errors
    /// As `geomem_nets::HostUNetEps::new`.
    pub fn new(
        net: geomem_nets::UNet<Inner>,
        cfg: &geomem_nets::UNetConfig,
        batch: usize,
        parallel: usize,
    ) -> geomem_nets::Result<Self> {
        if cfg!(feature = "cuda") {
            Ok(Self::Burn(Box::new(geomem_nets::UNetEps::new(net, device(), batch).with_parallel_batches(parallel))))
        } else {
            Ok(Self::Host(Box::new(geomem_nets::HostUNetEps::new(&net, cfg)?)))
        }
    }
}

impl geomem_score::VpEpsModel for UNetNoise {
    fn dim(&self) -> usize {
        match self {
            Self::Host(m) => m.dim(),
            Self::Burn(m) => m.dim(),
        }
    }
    fn precision(&self) -> geomem_score::Precision {
        geomem_score::Precision::F32
    }
    fn eps_into(
        &self,
        x: faer::MatRef<'_, f64>,
        time: geomem_score::VpTime,
        out: faer::MatMut<'_, f64>,
    ) -> geomem_score::Result<()> {
        match self {
            Self::Host(m) => m.eps_into(x, time, out),
            Self::Burn(m) => m.eps_into(x, time, out),
        }
    }
    /// The host's reverse pass; burn's forward-only evaluator has none.
    fn eps_vjp(
        &self,
        x: &[f64],
        time: geomem_score::VpTime,
        u: faer::MatRef<'_, f64>,
    ) -> geomem_score::Result<Option<faer::Mat<f64>>> {
        match self {
            Self::Host(m) => m.eps_vjp(x, time, u),
            Self::Burn(_) => Ok(None),
        }
    }
}
