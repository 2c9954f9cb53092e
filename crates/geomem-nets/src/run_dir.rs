//! A run directory opened by the library: its settings, its metrics and its EMA network as a
//! [`ScoreField`], for either trainer ([`crate::train`]: the toy network; [`crate::train_ddpm`]:
//! the U-Net).
//!
//! A run directory holds `config.json` (the run's settings), `metrics.csv`
//! ([`crate::read_metrics`]) and `checkpoint.bin` (weights, EMA weights, optimizer state).
//!
//! ```no_run
//! # use burn::backend::{Autodiff, Flex};
//! use geomem_nets::RunDir;
//! use geomem_score::ScoreFieldExt;
//! let run = RunDir::open("runs/my-run").unwrap();
//! println!("{} steps logged", run.metrics().len());
//! let t = run.config().field_time(0.01).unwrap(); // a U-Net: the nearest step of its schedule
//! let field = run.score_field::<Autodiff<Flex>>(&Default::default()).unwrap();
//! let s = field.score(&vec![0.0; run.config().dim()], t).unwrap();
//! ```

use crate::checkpoint;
use crate::ddpm::DdpmTrainConfig;
use crate::ema::load_ema;
use crate::error::{io, NetsError, Result};
use crate::field::TrainedScore;
use crate::metrics::{read_metrics, LogRow, METRICS_FILE};
use crate::model::ResidualMlp;
use crate::sampling::{sample, sample_ddpm, DdpmSampling, SamplingParams};
use crate::train::TrainConfig;
use crate::train_loop::config_from_json;
use crate::unet::{UNet, UNetEps};
use burn::tensor::backend::AutodiffBackend;
use faer::{Mat, MatMut, MatRef};
use geomem_score::{DivergenceParams, Precision, ScoreField, VpScore};
use std::path::{Path, PathBuf};

/// File name of a run's settings inside its directory.
pub const CONFIG_FILE: &str = "config.json";

/// The settings of a run, by trainer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunConfig {
    /// The toy residual MLP of seed 001 ([`crate::train`]).
    Toy(TrainConfig),
    /// A DDPM U-Net ([`crate::train_ddpm`]).
    Ddpm(DdpmTrainConfig),
}

impl RunConfig {
    /// Reads and checks a `config.json`: a U-Net's when its `model` has an `image_size`,
    /// otherwise the toy network's.
    ///
    /// # Errors
    /// [`NetsError::Io`], [`NetsError::Config`], [`NetsError::InvalidParameter`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let bad = |e: serde_json::Error| NetsError::Config { path: path.to_path_buf(), reason: e.to_string() };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
        let cfg = if value.get("model").and_then(|m| m.get("image_size")).is_some() {
            Self::Ddpm(config_from_json(value).map_err(bad)?)
        } else {
            Self::Toy(config_from_json(value).map_err(bad)?)
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`].
    pub fn check(&self) -> Result<()> {
        match self {
            Self::Toy(c) => c.check(),
            Self::Ddpm(c) => c.check(),
        }
    }

    /// `toy` or `ddpm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Toy(_) => "toy",
            Self::Ddpm(_) => "ddpm",
        }
    }

    /// The data dimension `d` (`c · h · w` for images).
    pub fn dim(&self) -> usize {
        match self {
            Self::Toy(c) => c.model.d,
            Self::Ddpm(c) => c.model.channels * c.model.image_size * c.model.image_size,
        }
    }

    /// The number of steps the run is set to reach.
    pub fn steps(&self) -> u64 {
        match self {
            Self::Toy(c) => c.run.steps,
            Self::Ddpm(c) => c.run.steps,
        }
    }

    /// The VE time at which the run's field is evaluated for a requested `t`: `t` itself for
    /// the toy network (trained on every `t`), the time of the nearest step of the schedule
    /// for a DDPM U-Net (whose score exists at its steps only; seed 001's VP ↔ VE map
    /// `ᾱ = 1/(1 + t)`).
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`] for `t` not finite and > 0.
    pub fn field_time(&self, t: f64) -> Result<f64> {
        crate::error::param("t", t, t.is_finite() && t > 0.0, "must be finite and > 0")?;
        match self {
            Self::Toy(_) => Ok(t),
            Self::Ddpm(c) => Ok(c.schedule()?.nearest_step(t)?.1),
        }
    }
}

/// A run directory: settings, metrics, and the path of its checkpoint.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    config: RunConfig,
    metrics: Vec<LogRow>,
}

impl RunDir {
    /// Opens the run directory `path`: reads and checks `config.json` and reads
    /// `metrics.csv` (no rows when the run has not logged yet). The checkpoint is read only
    /// by [`RunDir::score_field`], [`RunDir::sample`] and [`RunDir::checkpoint_step`].
    ///
    /// # Errors
    /// [`NetsError::Io`] when `path` or its `config.json` cannot be read, as
    /// [`RunConfig::read`] for bad settings, as [`crate::read_metrics`] for a bad metrics
    /// file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        std::fs::read_dir(&path).map_err(io(&path))?;
        let config = RunConfig::read(&path.join(CONFIG_FILE))?;
        let metrics_path = path.join(METRICS_FILE);
        let metrics = if metrics_path.exists() { read_metrics(&metrics_path)? } else { Vec::new() };
        Ok(Self { path, config, metrics })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The run's settings.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }
    /// The logged rows, in step order.
    pub fn metrics(&self) -> &[LogRow] {
        &self.metrics
    }
    /// The checkpoint's path (it may not exist yet).
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join(checkpoint::FILE)
    }

    /// The step the checkpoint was written at (the whole file is read and its checksum
    /// verified).
    ///
    /// # Errors
    /// [`NetsError::Io`] without a checkpoint; [`NetsError::CorruptCheckpoint`].
    pub fn checkpoint_step(&self) -> Result<u64> {
        let path = self.checkpoint_path();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        Ok(checkpoint::sections(&path, &bytes)?.0)
    }

    /// The EMA network of the checkpoint as a score field on `device`: the toy network with
    /// autodiff derivatives ([`TrainedScore`]), or a U-Net through [`VpScore`] on its
    /// schedule (evaluated at the steps of the schedule only: see
    /// [`RunConfig::field_time`]).
    ///
    /// # Errors
    /// [`NetsError::Io`] without a checkpoint; [`NetsError::CorruptCheckpoint`] for a damaged
    /// one or one that holds another network than `config.json` describes.
    pub fn score_field<B: AutodiffBackend>(&self, device: &B::Device) -> Result<RunScore<B>> {
        self.score_field_on(device, false)
    }

    /// [`RunDir::score_field`], with a U-Net evaluated on the host when `on_cpu`
    /// ([`RunScore::HostUnet`]: forward passes several times faster than burn's on a CPU, and
    /// its exact Jacobian and VJPs in reverse mode, [`crate::HostUNetEps`]). The binaries
    /// call it with `on_cpu = !cfg!(feature = "cuda")`.
    ///
    /// # Errors
    /// As [`RunDir::score_field`].
    pub fn score_field_on<B: AutodiffBackend>(&self, device: &B::Device, on_cpu: bool) -> Result<RunScore<B>> {
        let path = self.checkpoint_path();
        let other = || NetsError::CorruptCheckpoint {
            path: path.clone(),
            reason: format!("it holds another network than {CONFIG_FILE} describes"),
        };
        match &self.config {
            RunConfig::Toy(cfg) => {
                let (net, stored): (ResidualMlp<B::InnerBackend>, TrainConfig) = load_ema(&path, device)?;
                if stored.model != cfg.model {
                    return Err(other());
                }
                Ok(RunScore::Toy(Box::new(TrainedScore::new(net, device.clone()))))
            }
            RunConfig::Ddpm(cfg) => {
                let (net, stored): (UNet<B::InnerBackend>, DdpmTrainConfig) = load_ema(&path, device)?;
                if stored.model != cfg.model || stored.timesteps != cfg.timesteps {
                    return Err(other());
                }
                if on_cpu {
                    let eps = crate::HostUNetEps::new(&net, &cfg.model)?;
                    return Ok(RunScore::HostUnet(Box::new(VpScore::discrete(eps, cfg.schedule()?))));
                }
                let eps = UNetEps::new(net, device.clone(), 256);
                Ok(RunScore::Unet(Box::new(VpScore::discrete(eps, cfg.schedule()?))))
            }
        }
    }

    /// `n` samples of the run's EMA network: the reverse SDE over the run's training noise
    /// levels (toy network) or ancestral DDPM sampling (U-Net), `steps` steps, seed `seed`.
    ///
    /// # Errors
    /// As [`RunDir::score_field`], [`crate::sample`] and [`crate::sample_ddpm`].
    pub fn sample<B: AutodiffBackend>(
        &self,
        n: usize,
        steps: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<Mat<f64>> {
        match (&self.config, self.score_field::<B>(device)?) {
            (RunConfig::Toy(c), RunScore::Toy(f)) => {
                let p = SamplingParams::default().steps(steps).sigma_range(c.sigma_min, c.sigma_max).seed(seed);
                sample(f.as_ref(), n, &p)
            }
            (RunConfig::Ddpm(c), RunScore::Unet(f)) => {
                sample_ddpm(f.model(), &c.schedule()?, n, &DdpmSampling::new(steps, seed))
            }
            _ => Err(NetsError::Data("the network does not match its settings".into())),
        }
    }
}

/// The EMA network of a run directory as a [`ScoreField`] ([`RunDir::score_field`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RunScore<B: AutodiffBackend> {
    /// The toy network, with autodiff derivatives.
    Toy(Box<TrainedScore<B>>),
    /// A DDPM U-Net on its schedule.
    Unet(Box<VpScore<UNetEps<B::InnerBackend>>>),
    /// A DDPM U-Net on its schedule, evaluated and differentiated on the host
    /// ([`RunDir::score_field_on`]).
    HostUnet(Box<VpScore<crate::HostUNetEps>>),
}

/// Calls `$body` with `$f` bound to the field of any variant.
macro_rules! either {
    ($self:expr, $f:ident => $body:expr) => {
        match $self {
            RunScore::Toy($f) => $body,
            RunScore::Unet($f) => $body,
            RunScore::HostUnet($f) => $body,
        }
    };
}

impl<B: AutodiffBackend> ScoreField for RunScore<B> {
    fn dim(&self) -> usize {
        either!(self, f => f.dim())
    }
    fn precision(&self) -> Precision {
        either!(self, f => f.precision())
    }
    fn eval(&self, x: MatRef<'_, f64>, t: f64, out: MatMut<'_, f64>) -> geomem_score::Result<()> {
        either!(self, f => f.eval(x, t, out))
    }
    fn eval_jacobian(&self, x: &[f64], t: f64) -> geomem_score::Result<Option<Mat<f64>>> {
        either!(self, f => f.eval_jacobian(x, t))
    }
    fn eval_jvp(&self, x: &[f64], t: f64, v: MatRef<'_, f64>) -> geomem_score::Result<Mat<f64>> {
        either!(self, f => f.eval_jvp(x, t, v))
    }
    fn eval_vjp(&self, x: &[f64], t: f64, u: MatRef<'_, f64>) -> geomem_score::Result<Mat<f64>> {
        either!(self, f => f.eval_vjp(x, t, u))
    }
    fn eval_divergence(&self, x: MatRef<'_, f64>, t: f64, p: &DivergenceParams) -> geomem_score::Result<Vec<f64>> {
        either!(self, f => f.eval_divergence(x, t, p))
    }
}
