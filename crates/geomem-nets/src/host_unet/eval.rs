//! A trained U-Net evaluated on the host ([`HostUNetEps`]): [`crate::UNetEps`]'s contract
//! with [`super::HostUNet`]'s forward pass.

use super::state::params;
use super::train::PART;
use super::{to_rows, HostUNet};
use crate::error::NetsError;
use crate::unet::{checked_step, UNet, UNetConfig};
use burn::tensor::backend::Backend;
use geomem_score::{Precision, VpEpsModel, VpTime};
use std::sync::{OnceLock, RwLock, RwLockReadGuard};

/// A trained [`UNet`] (usually the EMA weights) as a noise predictor of the VP process at
/// its discrete steps, evaluated on the host: the function of [`crate::UNetEps`] up to
/// `f32` rounding (the module doc of `host_unet` says what rounds differently), several
/// times faster on a CPU. Rows are evaluated in parts of 16 images on rayon tasks (each part
/// on one thread: 16 rows or fewer use one core), so the numbers do not depend on the
/// number of threads.
///
/// It differentiates itself in reverse mode ([`VpEpsModel::eps_vjp`]), so through
/// [`geomem_score::VpScore`] the spectrum estimators of `geomem-spectral` get its exact
/// Jacobian (`SpectrumParams::pointwise()`, or the matrix-free products) for about the work
/// of `d` forward images, against `8d` for the Normal Bundle matrix:
///
/// ```
/// use burn::backend::Flex;
/// use geomem_nets::{HostUNetEps, UNetConfig};
/// use geomem_score::{DdpmSchedule, VpScore};
/// use geomem_spectral::{spectrum, SpectrumParams};
/// let cfg = UNetConfig::new(8, 1).with_base(8).with_mults(vec![1, 2]).with_attn_resolutions(vec![]).with_groups(4);
/// let net = cfg.init_seeded::<Flex>(&Default::default(), 0)?; // a trained net's EMA weights, say
/// let sched = DdpmSchedule::linear(1e-4, 2e-2, 1000)?;
/// let field = VpScore::discrete(HostUNetEps::new(&net, &cfg)?, sched.clone());
/// let s = spectrum(&field, &[0.1; 64], sched.ve_time(10)?, &SpectrumParams::pointwise())?;
/// assert_eq!(s.values().len(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It keeps its 3×3 kernels arranged for the forward pass; those of the reverse pass are
/// arranged at its first VJP and kept from then on (on the paper's MNIST U-Net the Winograd
/// kernels take as much memory again).
#[derive(Debug)]
pub struct HostUNetEps {
    net: HostUNet,
    w: RwLock<Vec<Vec<f32>>>,
    /// Set once the reverse pass's kernels are in `w`.
    flipped: OnceLock<()>,
}

impl Clone for HostUNetEps {
    fn clone(&self) -> Self {
        Self { net: self.net.clone(), w: RwLock::new(self.weights().clone()), flipped: self.flipped.clone() }
    }
}

impl HostUNetEps {
    /// The host copy of `model`, a network of `cfg`.
    ///
    /// # Errors
    /// [`NetsError::InvalidParameter`] for a `cfg` that does not pass its checks;
    /// [`NetsError::Record`] when `model`'s parameters, image size, channels or groups are
    /// not those of `cfg`.
    pub fn new<B: Backend>(model: &UNet<B>, cfg: &UNetConfig) -> crate::error::Result<Self> {
        cfg.check()?;
        let same = (model.image_size(), model.channels(), model.groups()) == (cfg.image_size, cfg.channels, cfg.groups);
        if !same {
            return Err(NetsError::Record(format!(
                "the network has images of {}, {} channel(s), {} groups; the settings say {}, {}, {}",
                model.image_size(),
                model.channels(),
                model.groups(),
                cfg.image_size,
                cfg.channels,
                cfg.groups
            )));
        }
        let (dims, w) = params(model);
        let net = HostUNet::new(cfg, &dims).map_err(NetsError::Record)?;
        // The parameters stay fixed: the kernels are arranged once, not per pass (those of
        // the reverse pass at the first VJP).
        let w = RwLock::new(net.with_forward_kernels(w));
        Ok(Self { net, w, flipped: OnceLock::new() })
    }

    /// The parameters and the kernels arranged so far (a poisoned lock still holds them
    /// whole: they are written only by [`HostUNet::add_flipped_kernels`], which either
    /// finishes or leaves an entry empty).
    fn weights(&self) -> RwLockReadGuard<'_, Vec<Vec<f32>>> {
        self.w.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The weights with the reverse pass's kernels arranged (at the first call).
    fn weights_for_vjps(&self) -> RwLockReadGuard<'_, Vec<Vec<f32>>> {
        self.flipped.get_or_init(|| {
            let mut w = self.w.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.net.add_flipped_kernels(&mut w);
        });
        self.weights()
    }

    /// `ε̂` of `rows.len() / d` images (row-major, channel-major pixels) at DDPM step `k`.
    fn eps_part(&self, w: &[Vec<f32>], rows: &[f32], k: usize) -> Vec<f32> {
        let b = rows.len() / self.net.dim();
        to_rows(&self.net.infer(w, rows, &vec![k as f32; b]))
    }
}

impl VpEpsModel for HostUNetEps {
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn precision(&self) -> Precision {
        Precision::F32
    }
    fn eps_into(
        &self,
        x: faer::MatRef<'_, f64>,
        time: VpTime,
        mut out: faer::MatMut<'_, f64>,
    ) -> geomem_score::Result<()> {
        use rayon::prelude::*;
        let d = self.net.dim();
        let k = checked_step(time, x, out.as_ref(), d)?;
        let starts: Vec<usize> = (0..x.nrows()).step_by(PART).collect();
        let w = self.weights();
        let done: Vec<Vec<f32>> = starts
            .par_iter()
            .map(|&s| {
                let m = PART.min(x.nrows() - s);
                let rows: Vec<f32> = (s..s + m).flat_map(|i| (0..d).map(move |j| x[(i, j)] as f32)).collect();
                self.eps_part(&w, &rows, k)
            })
            .collect();
        for (&s, v) in starts.iter().zip(&done) {
            for (i, row) in v.chunks_exact(d).enumerate() {
                for (j, &e) in row.iter().enumerate() {
                    out[(s + i, j)] = f64::from(e);
                }
            }
        }
        Ok(())
    }

    /// `u_iᵀ ∂ε̂/∂x_vp` in reverse mode on the host (`HostUNet::vjp`): one forward
    /// pass of `x_vp` kept, then the input's reverse pass alone for every cotangent, in
    /// parts of 16 on the rayon pool. The whole Jacobian (`u = I`) costs about as much as
    /// `d` forward images, against the `2K = 8d` of the Normal Bundle matrix.
    fn eps_vjp(
        &self,
        x_vp: &[f64],
        time: VpTime,
        u: faer::MatRef<'_, f64>,
    ) -> geomem_score::Result<Option<faer::Mat<f64>>> {
        let d = self.net.dim();
        let x = faer::MatRef::from_row_major_slice(x_vp, 1, x_vp.len());
        let k = checked_step(time, x, x, d)?;
        if u.ncols() != d {
            return Err(geomem_score::ScoreError::DimensionMismatch { expected: d, got: u.ncols() });
        }
        let xs: Vec<f32> = x_vp.iter().map(|&v| v as f32).collect();
        let w = self.weights_for_vjps();
        let (_, tape) = self.net.forward(&w, &xs, &[k as f32]);
        let us: Vec<f32> = (0..u.nrows()).flat_map(|i| (0..d).map(move |j| u[(i, j)] as f32)).collect();
        let g = self.net.vjp(&w, &tape, &us, PART);
        Ok(Some(faer::Mat::from_fn(u.nrows(), d, |i, j| f64::from(g[i * d + j]))))
    }
}
