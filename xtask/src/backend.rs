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

/// Trains the toy network: on the CPU with the host step (`geomem_nets::train_host`, 3× burn
/// Flex's step on this network, the same checkpoints), on CUDA with burn's step. A batch split
/// above 1 (one net on several cores) keeps burn's step, which is what splits.
///
/// # Errors
/// As `geomem_nets::train`.
pub fn train_toy(
    data: faer::MatRef<'_, f64>,
    cfg: &geomem_nets::TrainConfig,
    run_dir: Option<&std::path::Path>,
    on_log: &mut dyn FnMut(&geomem_nets::LogRow) -> std::ops::ControlFlow<()>,
) -> geomem_nets::Result<geomem_nets::TrainState<Train>> {
    if cfg!(feature = "cuda") || cfg.run.batch_split > 1 {
        geomem_nets::train::<Train>(data, cfg, run_dir, &device(), on_log)
    } else {
        geomem_nets::train_host::<Train>(data, cfg, run_dir, &device(), on_log)
    }
}
