//! DDPM training of the U-Net on the host: [`crate::train_ddpm`]'s step (the same draws,
//! the ε-MSE, global-norm clipping, burn's Adam with `ε = 10⁻⁸`, the EMA) on
//! [`super::HostUNet`]'s forward and backward passes. Checkpoints are burn's records, so
//! either trainer resumes the other's run directory.

use super::ops::Act;
use super::state::{moments, params, AdamRecs, Records, WriteFlat};
use super::HostUNet;
use crate::ddpm::{open_ddpm_run, save, DdpmState, DdpmTrainConfig, Draw};
use crate::draws::HostData;
use crate::error::NetsError;
use crate::host_train::adam_ema;
use crate::train_loop::{run_loop, Trainer};
use crate::{LogRow, UNet};
use burn::module::Module;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use faer::MatRef;
use std::ops::ControlFlow;
use std::path::Path;

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
/// `DdpmTrainConfig::adam`'s `ε` (PyTorch's).
const EPSILON: f32 = 1e-8;

/// Images per part of a batch (see [`HostDdpm::loss_and_grads`]).
pub(crate) const PART: usize = 16;

/// Weights, EMA weights, Adam moments and steps of a host DDPM run.
#[derive(Clone)]
pub(crate) struct HostDdpm {
    pub net: HostUNet,
    pub w: Vec<Vec<f32>>,
    pub ema: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    adam_time: usize,
    pub step: u64,
}

impl HostDdpm {
    /// The host copy of a burn run's state.
    ///
    /// # Errors
    /// [`NetsError::Record`] when the module's parameters are not the plan of `cfg`.
    pub fn from_burn<B: AutodiffBackend>(cfg: &DdpmTrainConfig, s: &DdpmState<B>) -> crate::error::Result<Self> {
        let (dims, w) = params(&s.model);
        let net = HostUNet::new(&cfg.model, &dims).map_err(NetsError::Record)?;
        let (_, ema) = params(&s.ema);
        let recs: AdamRecs<B, UNet<B>> = s.optim.to_record();
        let (m, v, adam_time) = moments(&s.model, &recs)?;
        Ok(Self { net, w, ema, m, v, adam_time, step: s.step })
    }

    /// The burn state holding these numbers (`skeleton` gives the modules and their ids).
    pub fn to_burn<B: AutodiffBackend>(&self, cfg: &DdpmTrainConfig, skeleton: &DdpmState<B>) -> DdpmState<B> {
        let model = skeleton.model.clone().map(&mut WriteFlat { src: self.w.iter(), grad: true });
        let ema = skeleton.ema.clone().map(&mut WriteFlat { src: self.ema.iter(), grad: false });
        let mut rec = Records::<B, UNet<B>> {
            m: self.m.iter(),
            v: self.v.iter(),
            time: self.adam_time,
            out: AdamRecs::<B, UNet<B>>::default(),
        };
        model.visit(&mut rec);
        let optim = cfg.adam().init();
        let optim = if self.adam_time > 0 { optim.load_record(rec.out) } else { optim };
        DdpmState { model, ema, optim, step: self.step }
    }

    /// The ε-MSE of a draw (mean over the batch and the pixels) and its gradients: the
    /// batch in parts of at most [`PART`] images on rayon tasks, their gradients summed in
    /// part order, so that the numbers do not depend on the number of threads.
    pub fn loss_and_grads(&self, draw: &Draw) -> (f32, Vec<Vec<f32>>) {
        use rayon::prelude::*;
        let (b, d) = (draw.steps.len(), self.net.dim());
        let count = (b * d) as f64;
        let parts: Vec<(usize, usize)> = (0..b).step_by(PART).map(|s| (s, (s + PART).min(b))).collect();
        let done: Vec<(f64, Vec<Vec<f32>>)> =
            parts.par_iter().map(|&(lo, hi)| self.part_grads(draw, lo, hi, count)).collect();
        let mut it = done.into_iter();
        let Some((mut sum, mut g)) = it.next() else { return (0.0, Vec::new()) };
        for (s, gp) in it {
            sum += s;
            g.iter_mut().zip(&gp).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y));
        }
        ((sum / count) as f32, g)
    }

    /// Rows `lo..hi` of the draw: their sum of squared errors and their share of the
    /// gradients of the mean over `count` entries.
    fn part_grads(&self, draw: &Draw, lo: usize, hi: usize, count: f64) -> (f64, Vec<Vec<f32>>) {
        let d = self.net.dim();
        let (out, tape) = self.net.forward(&self.w, &draw.xk[lo * d..hi * d], &draw.steps[lo..hi]);
        let (b, hw, n) = (out.b, out.hw(), out.n());
        let mut dout = Act::scratch(out.c, out.b, out.h);
        let mut sum = 0f64;
        for c in 0..out.c {
            for i in 0..b {
                let (o, e) = (&out.v[c * n + i * hw..][..hw], &draw.eps[((lo + i) * out.c + c) * hw..][..hw]);
                let dv = &mut dout.v[c * n + i * hw..][..hw];
                for ((dv, &ov), &ev) in dv.iter_mut().zip(o).zip(e) {
                    let diff = ov - ev;
                    sum += f64::from(diff) * f64::from(diff);
                    *dv = (2.0 * f64::from(diff) / count) as f32;
                }
            }
        }
        let mut g: Vec<Vec<f32>> = self.w[..self.net.params()].iter().map(|p| vec![0.0; p.len()]).collect();
        self.net.backward(&self.w, &tape, &dout, &mut g);
        (sum, g)
    }

    /// One step of [`crate::train_ddpm`]'s loop on these draws; the loss.
    pub fn step(&mut self, draw: &Draw, cfg: &DdpmTrainConfig) -> f32 {
        // The 3×3 kernels arranged once for every part of the batch, dropped before Adam.
        self.w = self.net.with_kernels(std::mem::take(&mut self.w));
        let (loss, mut g) = self.loss_and_grads(draw);
        self.w.drain(self.net.params()..).for_each(super::ops::pool::give);
        if cfg.clip_grad > 0.0 {
            let total: f64 = g.iter().flatten().map(|&x| f64::from(x) * f64::from(x)).sum();
            let coef = (cfg.clip_grad / (total.sqrt() + 1e-6)).min(1.0) as f32;
            g.iter_mut().flatten().for_each(|x| *x *= coef);
        }
        self.adam_time += 1;
        let t = self.adam_time as i32;
        let c2 = (1.0 - BETA_2.powi(t)).sqrt();
        let factor = c2 / (1.0 - BETA_1.powi(t));
        let decay = crate::ema::decay_at(cfg.run.ema_decay, self.step);
        let k = [factor, cfg.run.lr as f32, EPSILON * c2, decay as f32, (1.0 - decay) as f32];
        for (i, gi) in g.iter().enumerate() {
            adam_ema(&mut self.w[i], gi, &mut self.m[i], &mut self.v[i], &mut self.ema[i], &k);
        }
        self.step += 1;
        loss
    }
}

/// The host run as the shared loop sees it.
struct HostDdpmRun<'a, B: AutodiffBackend> {
    state: HostDdpm,
    skeleton: DdpmState<B>,
    data: &'a HostData,
    ab: &'a [f64],
    cfg: &'a DdpmTrainConfig,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> Trainer for HostDdpmRun<'_, B> {
    type Inner = B::InnerBackend;
    fn steps_done(&self) -> u64 {
        self.state.step
    }
    fn advance(&mut self) -> Tensor<B::InnerBackend, 1> {
        let d = self.state.net.dim();
        let draw = Draw::new(&self.data.values, self.data.n, d, self.ab, self.cfg, self.state.step);
        let loss = self.state.step(&draw, self.cfg);
        Tensor::from_data(TensorData::new(vec![loss], [1]), self.device)
    }
    fn weights_finite(&self) -> bool {
        self.state.w.iter().flatten().all(|x| x.is_finite())
    }
    fn save(&self, dir: &Path) -> crate::error::Result<()> {
        save(dir, &self.state.to_burn(self.cfg, &self.skeleton), self.cfg)
    }
}

/// [`crate::train_ddpm`] with the step computed on the host (convolutions as im2col GEMMs,
/// GroupNorm, SiLU and attention written out, forward and backward; [`crate::HostUNetEps`]
/// is its forward pass): the same settings, run directory, checkpoints, metrics and
/// resumption, several times faster on a CPU; `B` only holds the returned state and encodes the checkpoints. Each batch is cut
/// into parts of 16 images computed on the current rayon pool's threads (each part on one
/// thread; `batch_split` is not used); `dropout` must be 0 (burn's dropout masks come from
/// the backend's generator, which the host does not have).
///
/// # Errors
/// As [`crate::train_ddpm`]; [`NetsError::InvalidParameter`] for `dropout > 0`.
pub fn train_ddpm_host<B: AutodiffBackend>(
    images: MatRef<'_, f64>,
    cfg: &DdpmTrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<DdpmState<B>> {
    crate::error::param("unet.dropout", cfg.model.dropout, cfg.model.dropout == 0.0, "the host step has no dropout")?;
    let (host, ab, skeleton) = open_ddpm_run::<B>(images, cfg, run_dir, device)?;
    let state = HostDdpm::from_burn(cfg, &skeleton)?;
    let mut run = HostDdpmRun { state, skeleton, data: &host, ab: &ab, cfg, device };
    run_loop(&mut run, &cfg.run, run_dir, on_log)?;
    Ok(run.state.to_burn(cfg, &run.skeleton))
}

/// Trains a DDPM U-Net with the step that suits the device: [`train_ddpm_host`] when
/// `on_cpu` and the net has no dropout, burn's [`crate::train_ddpm`] otherwise. The binaries
/// call it with `on_cpu = !cfg!(feature = "cuda")`.
///
/// # Errors
/// As [`crate::train_ddpm`].
pub fn train_unet<B: AutodiffBackend>(
    images: MatRef<'_, f64>,
    cfg: &DdpmTrainConfig,
    run_dir: Option<&Path>,
    device: &B::Device,
    on_cpu: bool,
    on_log: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> crate::error::Result<DdpmState<B>> {
    if on_cpu && cfg.model.dropout == 0.0 {
        train_ddpm_host::<B>(images, cfg, run_dir, device, on_log)
    } else {
        crate::train_ddpm::<B>(images, cfg, run_dir, device, on_log)
    }
}
