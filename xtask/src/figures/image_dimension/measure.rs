//! One size of the image figure: train (or resume) a U-Net, then measure it.

use super::Plan;
use crate::backend::{self, Inner, UNetNoise};
use anyhow::{Context, Result};
use faer::Mat;
use geomem_lid::{auroc, median, memorization, FlipdVp};
use geomem_nets::{ddpm_loss, sample_ddpm, DdpmSampling, DdpmTrainConfig};
use geomem_score::{DdpmSchedule, EmpiricalScore, ScoreField, VpScore};
use geomem_spectral::{normal_bundle_spectrum, spectrum, NormalBundleParams, Perturbation, SpectrumParams};
use std::ops::ControlFlow;

/// The spectra of one kind of point under one field and perturbation.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SpectraSet {
    /// `train`, `held-out`, `train, empirical score`, `held-out, empirical score`.
    pub points: String,
    /// `per-channel orthogonal` or `gaussian`.
    pub perturbation: String,
    pub spectra: Vec<Vec<f64>>,
}

/// FLIPD of the samples at one DDPM step.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FlipdOut {
    pub step: usize,
    /// The VE time `t0` of that step.
    pub t0: f64,
    /// AUROC of `-FLIPD`, memorized against novel samples (`None`: one class empty).
    pub auroc: Option<f64>,
    /// Median FLIPD of the memorized and of the novel samples (`None`: no such sample).
    pub median_memorized: Option<f64>,
    pub median_novel: Option<f64>,
}

/// What one size's net gave.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SizeOut {
    pub n: usize,
    pub seed: u64,
    /// The VE time of the step the spectra are taken at.
    pub t: f64,
    /// `(step, loss of the batch, smoothed loss)` rows of the training run.
    pub curve: Vec<(u64, f64, f64)>,
    /// The smoothed loss at the end of training.
    pub loss: f64,
    /// DDPM loss of the EMA net on fixed draws: training images, held-out images.
    pub loss_train_heldout: Option<(f64, f64)>,
    /// Fraction of generated samples whose nearest training image is nearer than 1/3 of the
    /// second nearest, and the median of that ratio (`None` without samples).
    pub memorized: Option<(f64, f64)>,
    pub flipd: Vec<FlipdOut>,
    pub spectra: Vec<SpectraSet>,
    /// Wall-clock seconds of training, the two losses, sampling and FLIPD, the spectra.
    pub seconds: [f64; 4],
}

fn spectra_at<F: ScoreField>(f: &F, pts: &Mat<f64>, t: f64, p: &NormalBundleParams) -> Result<Vec<Vec<f64>>> {
    (0..pts.nrows())
        .map(|i| {
            let x: Vec<f64> = (0..pts.ncols()).map(|j| pts[(i, j)]).collect();
            Ok(normal_bundle_spectrum(f, &x, t, &p.seed(i as u64))?)
        })
        .collect()
}

/// The singular values of `f`'s exact Jacobian at each row of `pts`
/// (`SpectrumParams::pointwise`: the field's own Jacobian, or its JVPs along `e_1 … e_d`).
fn jacobian_spectra_at<F: ScoreField>(f: &F, pts: &Mat<f64>, t: f64) -> Result<Vec<Vec<f64>>> {
    (0..pts.nrows())
        .map(|i| {
            let x: Vec<f64> = (0..pts.ncols()).map(|j| pts[(i, j)]).collect();
            Ok(spectrum(f, &x, t, &SpectrumParams::pointwise())?.into_values())
        })
        .collect()
}

/// `(step, loss of the batch, smoothed loss)` rows of a training run.
type Curve = Vec<(u64, f64, f64)>;
/// A trained net's EMA weights, its schedule and its loss curve.
type Trained = (geomem_nets::UNet<Inner>, DdpmSchedule, Curve);
/// The memorized fraction and median ratio (`None` without samples), and FLIPD per step.
type SamplesOut = (Option<(f64, f64)>, Vec<FlipdOut>);

/// Trains the net of size `n` with seed `seed` (resuming its run directory when the settings
/// checkpoint), returning its EMA weights, the loss curve and the last smoothed loss.
fn train_one(pl: &Plan<'_>, train_set: &Mat<f64>, n: usize, seed: u64, runs: &std::path::Path) -> Result<Trained> {
    let cfg = DdpmTrainConfig::new(pl.unet.clone())
        .with_steps(pl.st.steps)
        .with_batch_size(pl.st.batch)
        .with_batch_split(pl.st.batch_split)
        .with_lr(pl.st.lr)
        .with_seed(seed + n as u64)
        .with_checkpoint_every(pl.st.checkpoint_every)
        .with_log_every(pl.st.log_every());
    let run_dir = (pl.st.checkpoint_every > 0).then(|| runs.join(format!("N{n}_s{seed}")));
    let mut curve = Vec::new();
    let state = backend::train_unet(train_set.as_ref(), &cfg, run_dir.as_deref(), &mut |r| {
        curve.push((r.step, r.loss, r.loss_ema));
        ControlFlow::Continue(())
    })
    .with_context(|| match &run_dir {
        Some(d) => format!("training N = {n} in {}", d.display()),
        None => format!("training N = {n}"),
    })?;
    if let Some(dir) = run_dir.as_deref() {
        // A resumed run logs only the steps it ran: the whole curve is in its metrics.csv.
        curve = logged_curve(dir)?;
    }
    Ok((state.ema, cfg.schedule()?, curve))
}

/// The result of size `n`, seed `seed`: read back from `runs/N<n>_s<seed>/result.json` when
/// that file was written under the same settings; measured (and then written there)
/// otherwise. Every size keeps its result, so the figure can be drawn again (new plotting
/// code, a finished shard) without training again.
pub fn one_size_cached(pl: &Plan<'_>, n: usize, seed: u64, runs: &std::path::Path) -> Result<SizeOut> {
    let path = runs.join(format!("N{n}_s{seed}")).join("result.json");
    let key = serde_json::to_value(pl.st)?;
    if let Ok(text) = std::fs::read_to_string(&path) {
        let saved: serde_json::Value = serde_json::from_str(&text)?;
        if saved.get("settings") == Some(&key) {
            return Ok(serde_json::from_value(saved["result"].clone())?);
        }
    }
    let r = one_size(pl, n, seed, runs)?;
    std::fs::create_dir_all(path.parent().expect("a run directory"))?;
    let doc = serde_json::json!({ "settings": key, "result": r });
    std::fs::write(&path, serde_json::to_string(&doc)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(r)
}

/// Whether size `n`, seed `seed` has a result written under the same settings.
pub fn has_result(pl: &Plan<'_>, n: usize, seed: u64, runs: &std::path::Path) -> bool {
    let path = runs.join(format!("N{n}_s{seed}")).join("result.json");
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let saved: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    saved.and_then(|v| v.get("settings").cloned()) == serde_json::to_value(pl.st).ok()
}

fn one_size(pl: &Plan<'_>, n: usize, seed: u64, runs: &std::path::Path) -> Result<SizeOut> {
    let idx = pl.split.train(n)?;
    let train_set = pl.set.rows(idx)?;
    let mut clock = std::time::Instant::now();
    let (ema, sched, curve) = train_one(pl, &train_set, n, seed, runs)?;
    let t_train = lap(&mut clock);
    let loss = curve.last().map_or(f64::NAN, |c| c.2);
    let loss_train_heldout = match pl.st.loss_draws {
        0 => None,
        k => {
            let dev = backend::device();
            let at = |m: &Mat<f64>| ddpm_loss(&ema, m.as_ref(), &sched, k, pl.st.seed ^ 0x1055, &dev);
            Some((at(&train_set)?, at(&pl.held)?))
        }
    };
    let t_loss = lap(&mut clock);
    let t = sched.ve_time(pl.st.step_k)?;
    let eps = UNetNoise::new(ema, &pl.unet, 512, pl.st.parallel_batches)?;
    let (memorized, flipd) = samples_and_flipd(pl, &eps, &sched, &train_set, seed + n as u64)?;
    let t_samples = lap(&mut clock);
    let net = VpScore::discrete(eps, sched);
    let spectra = spectra(pl, &net, &train_set, t)?;
    let t_spectra = lap(&mut clock);
    let seconds = [t_train, t_loss, t_samples, t_spectra];
    Ok(SizeOut { n, seed, t, curve, loss, loss_train_heldout, memorized, flipd, spectra, seconds })
}

/// Seconds since `clock`, which restarts.
fn lap(clock: &mut std::time::Instant) -> f64 {
    let s = clock.elapsed().as_secs_f64();
    *clock = std::time::Instant::now();
    s
}

fn set(points: &str, perturbation: &str, spectra: Vec<Vec<f64>>) -> SpectraSet {
    SpectraSet { points: points.into(), perturbation: perturbation.into(), spectra }
}

/// The net's spectra at training and held-out images (the authors' perturbations, and
/// Gaussian ones as a control), and the empirical score's (the memorizing limit).
fn spectra<F: ScoreField>(pl: &Plan<'_>, net: &F, train_set: &Mat<f64>, t: f64) -> Result<Vec<SpectraSet>> {
    let first = |m: &Mat<f64>| -> Result<Mat<f64>> {
        let k = pl.st.points.min(m.nrows());
        Ok(Mat::from_fn(k, m.ncols(), |i, j| m[(i, j)]))
    };
    let (at_train, at_held) = (first(train_set)?, first(&pl.held)?);
    let authors = Perturbation::PerChannelOrthogonal { channels: pl.set.channels, size: pl.set.height };
    let base = NormalBundleParams::default();
    let mut perts = vec![("per-channel orthogonal", authors)];
    if pl.st.gaussian_control {
        perts.push(("gaussian", Perturbation::Gaussian));
    }
    let mut out = Vec::new();
    for (name, pert) in perts {
        let p = base.perturbation(pert);
        out.push(set("train", name, spectra_at(net, &at_train, t, &p)?));
        out.push(set("held-out", name, spectra_at(net, &at_held, t, &p)?));
    }
    if pl.st.jacobian_spectra {
        out.push(set("train", "exact jacobian", jacobian_spectra_at(net, &at_train, t)?));
        out.push(set("held-out", "exact jacobian", jacobian_spectra_at(net, &at_held, t)?));
    }
    let emp = EmpiricalScore::new(train_set.clone())?;
    let p = base.perturbation(authors);
    let name = "per-channel orthogonal";
    out.push(set("train, empirical score", name, spectra_at(&emp, &at_train, t, &p)?));
    out.push(set("held-out, empirical score", name, spectra_at(&emp, &at_held, t, &p)?));
    Ok(out)
}

/// Generated samples: the memorized fraction (nearest / second-nearest training image below
/// 1/3) and FLIPD of the samples at each of `flipd_steps` with its AUROC.
fn samples_and_flipd(
    pl: &Plan<'_>,
    eps: &UNetNoise,
    sched: &DdpmSchedule,
    train_set: &Mat<f64>,
    seed: u64,
) -> Result<SamplesOut> {
    // One training image has no second nearest: the ratio is undefined, so N = 1 is skipped.
    if pl.st.samples == 0 || train_set.nrows() < 2 {
        return Ok((None, Vec::new()));
    }
    let p = DdpmSampling::new(pl.st.sampling_steps, seed ^ 0x5A3F);
    let samples = sample_ddpm(eps, sched, pl.st.samples, &p)?;
    let mem = memorization(samples.as_ref(), train_set.as_ref(), 1.0 / 3.0)?;
    let labels = mem.labels();
    let class_median = |v: &[f64], want: bool| {
        let m = median(&v.iter().zip(&labels).filter(|(_, &l)| l == want).map(|(x, _)| *x).collect::<Vec<_>>());
        m.is_finite().then_some(m)
    };
    let mut flipd = Vec::new();
    for &k in &pl.st.flipd_steps {
        let f = FlipdVp::new(sched.clone(), k)?.estimate(eps, samples.as_ref())?;
        let neg: Vec<f64> = f.iter().map(|v| -v).collect();
        flipd.push(FlipdOut {
            step: k,
            t0: sched.ve_time(k)?,
            auroc: auroc(&neg, &labels)?,
            median_memorized: class_median(&f, true),
            median_novel: class_median(&f, false),
        });
    }
    Ok((Some((mem.fraction_memorized, median(&mem.ratios))), flipd))
}

/// `(step, loss, loss_ema)` of every row of a run directory's `metrics.csv`.
fn logged_curve(dir: &std::path::Path) -> Result<Vec<(u64, f64, f64)>> {
    let rows = geomem_nets::read_metrics(&dir.join(geomem_nets::METRICS_FILE))?;
    Ok(rows.iter().map(|r| (r.step, r.loss, r.loss_ema)).collect())
}
