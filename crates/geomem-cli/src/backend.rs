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
