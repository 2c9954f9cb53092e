//! The backend of the `geomem` command (and the only place in it that names one): Flex (CPU)
//! by default, CUDA with `--features cuda`.

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

/// The EMA network of a run directory as a score field: a U-Net evaluated and
/// differentiated on the host on the CPU build (`geomem_nets::RunDir::score_field_on`), by
/// burn on CUDA.
///
/// # Errors
/// As `geomem_nets::RunDir::score_field`.
pub fn score_field(run: &geomem_nets::RunDir) -> geomem_nets::Result<geomem_nets::RunScore<Train>> {
    run.score_field_on::<Train>(&device(), !cfg!(feature = "cuda"))
}
