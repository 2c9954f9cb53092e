//! The latent dimension of an image diffusion model against its training-set size (seed 000
//! Fig. 2; seed 001 Fig. 6, 7): a DDPM U-Net trained on nested subsets, the authors' image
//! estimator at training and held-out images, Algorithm 3 in the paper's and the notebook's
//! forms.
//!
//! Data in: the embedded UCI 8×8 digits by default (not the paper's data), or MNIST /
//! Fashion-MNIST / CIFAR-10 from a local directory (`--image-data mnist:DIR`). Training sets
//! are prefixes of one seeded permutation, a held-out split beside them (`NestedSplit`).
//! Analysis: `geomem_spectral::{normal_bundle_spectrum, SecondDerivativeRule}` on the trained
//! net through `VpScore`, and on the empirical score of the same training set (the
//! memorizing limit) as a reference.

use crate::backend::{self, Inner, Train};
use crate::out::FigureDir;
use crate::plot::{palette, save_panels, viridis, LegendAt, Panel, Series};
use anyhow::{bail, Context, Result};
use faer::Mat;
use geomem_data::{read_cifar10, read_mnist, ImageSet, NestedSplit, Split};
use geomem_nets::{train_ddpm, DdpmTrainConfig, UNetConfig, UNetEps};
use geomem_score::{EmpiricalScore, ScoreField, VpScore};
use geomem_spectral::{normal_bundle_spectrum, NormalBundleParams, Perturbation, SecondDerivativeRule};
use std::fmt::Write;
use std::ops::ControlFlow;

/// Training-set sizes: a list, or seed 000's rule for an image set: 30 sizes between the two
/// transition points `low` and `high`, 5 below `low` and 5 from `high` up to the set's size
/// less 1000 held-out images.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Sizes {
    List(Vec<usize>),
    Transition { low: usize, high: usize },
}

/// Settings of the image figure (`figure = "image-dimension"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// `digits` (embedded), or `mnist:DIR`, `fashion:DIR`, `cifar10:DIR`; `reproduce
    /// --image-data` replaces it.
    pub data: String,
    /// The U-Net: a shipped config (`smoke`, `digits`, `mnist`, `cifar10`, from
    /// `experiments/unet/`) or the path of a JSON file.
    pub unet: String,
    pub sizes: Sizes,
    /// Held-out images (never trained on).
    pub held_out: usize,
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    /// Training and held-out images per size at which spectra are taken.
    pub points: usize,
    /// The DDPM step of the spectra (the authors: 0 for MNIST, 15 for CIFAR-10).
    pub step_k: usize,
    /// Algorithm 3's `d̄` and `c`.
    pub rule: SecondDerivativeRule,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
    /// Parts each training batch is split into, computed in parallel (`DdpmTrainConfig::
    /// batch_split`; default 1, the plain step). The figure already trains two nets side by
    /// side; on more than 2 cores k > 1 spreads each net further (other numbers: each value
    /// is its own run).
    #[serde(default = "one")]
    pub batch_split: usize,
    /// Evaluation batches of 512 images run side by side when measuring spectra
    /// (`UNetEps::with_parallel_batches`; default 1; the same numbers for every value).
    #[serde(default = "one")]
    pub parallel_batches: usize,
    /// Steps between checkpoints of each size's net (default 0: train in memory). With
    /// k > 0 every size trains in its own run directory `<name>/runs/N<n>_s<seed>/`, and
    /// running the same command again resumes each net from its last checkpoint to the
    /// weights of an uninterrupted run (the paper's sweeps: 40 sizes of 400 000 or 500 000
    /// steps).
    #[serde(default)]
    pub checkpoint_every: u64,
}

fn one() -> usize {
    1
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        let ok = self.held_out >= 1 && self.steps >= 1 && self.batch >= 1 && self.points >= 1;
        anyhow::ensure!(ok, "{}: held_out, steps, batch and points must be >= 1", self.name);
        anyhow::ensure!(self.lr.is_finite() && self.lr > 0.0, "{}: lr must be > 0", self.name);
        anyhow::ensure!(
            (1..=self.batch).contains(&self.batch_split) && self.parallel_batches >= 1,
            "{}: batch_split must lie in 1..=batch and parallel_batches be >= 1",
            self.name
        );
        match &self.sizes {
            Sizes::List(v) => anyhow::ensure!(!v.is_empty() && v.iter().all(|n| *n >= 1), "{}: sizes >= 1", self.name),
            Sizes::Transition { low, high } => {
                anyhow::ensure!(6 <= *low && low < high, "{}: 6 <= low < high", self.name)
            }
        }
        Ok(())
    }
}

/// Everything one figure run needs: the settings, and what they resolve to (the image set,
/// the U-Net config, the sizes).
struct Plan<'a> {
    st: &'a Settings,
    set: ImageSet,
    unet: UNetConfig,
    sizes: Vec<usize>,
}

fn unet_config(name: &str) -> Result<UNetConfig> {
    let text = match name {
        "smoke" => include_str!("../../../experiments/unet/smoke.json").to_string(),
        "digits" => include_str!("../../../experiments/unet/digits.json").to_string(),
        "mnist" => include_str!("../../../experiments/unet/mnist.json").to_string(),
        "cifar10" => include_str!("../../../experiments/unet/cifar10.json").to_string(),
        path => std::fs::read_to_string(path).with_context(|| format!("reading the U-Net config {path}"))?,
    };
    serde_json::from_str(&text).with_context(|| format!("parsing the U-Net config {name}"))
}

fn image_set(data: &str) -> Result<ImageSet> {
    if data == "digits" {
        return Ok(ImageSet::digits()?);
    }
    let (kind, dir) =
        data.split_once(':').context("image data is `digits` or KIND:DIR, KIND = mnist | fashion | cifar10")?;
    Ok(match kind {
        "mnist" | "fashion" => read_mnist(dir, Split::Train)?,
        "cifar10" => read_cifar10(dir, Split::Train)?,
        other => bail!("unknown image data '{other}' (mnist, fashion, cifar10)"),
    })
}

fn plan(st: &Settings) -> Result<Plan<'_>> {
    st.check()?;
    let set = image_set(&st.data)?;
    let sizes = match st.sizes {
        Sizes::List(ref v) => v.clone(),
        Sizes::Transition { low: lo, high: hi } => {
            let top = set.len().saturating_sub(1000).max(hi);
            let mut v: Vec<usize> = (0..30).map(|i| lo + (hi - lo) * i / 29).collect();
            v.extend((1..=5).map(|i| lo * i / 6));
            v.extend((1..=5).map(|i| hi + (top - hi) * i / 5));
            v.sort_unstable();
            v.dedup();
            v
        }
    };
    Ok(Plan { st, set, unet: unet_config(&st.unet)?, sizes })
}

/// Spectra of one size: the net's at training and held-out images, and the empirical score's.
struct SizeOut {
    n: usize,
    loss: f64,
    /// The VE time of the step the spectra are taken at.
    t: f64,
    /// (which points, perturbation, spectra)
    spectra: Vec<(&'static str, &'static str, Vec<Vec<f64>>)>,
}

fn spectra_at<F: ScoreField>(f: &F, pts: &Mat<f64>, t: f64, p: &NormalBundleParams) -> Result<Vec<Vec<f64>>> {
    (0..pts.nrows())
        .map(|i| {
            let x: Vec<f64> = (0..pts.ncols()).map(|j| pts[(i, j)]).collect();
            Ok(normal_bundle_spectrum(f, &x, t, &p.seed(i as u64))?)
        })
        .collect()
}

fn one_size(pl: &Plan<'_>, split: &NestedSplit, n: usize, seed: u64, runs: &std::path::Path) -> Result<SizeOut> {
    let idx = split.train(n)?;
    let train_set = pl.set.rows(idx)?;
    let cfg = DdpmTrainConfig::new(pl.unet.clone())
        .with_steps(pl.st.steps)
        .with_batch_size(pl.st.batch)
        .with_batch_split(pl.st.batch_split)
        .with_lr(pl.st.lr)
        .with_seed(seed + n as u64)
        .with_checkpoint_every(pl.st.checkpoint_every)
        .with_log_every(pl.st.steps.min(100));
    let run_dir = (pl.st.checkpoint_every > 0).then(|| runs.join(format!("N{n}_s{seed}")));
    let mut loss = f64::NAN;
    let state = train_ddpm::<Train>(train_set.as_ref(), &cfg, run_dir.as_deref(), &backend::device(), &mut |r| {
        loss = r.loss_ema;
        ControlFlow::Continue(())
    })
    .with_context(|| match &run_dir {
        Some(d) => format!("training N = {n} in {}", d.display()),
        None => format!("training N = {n}"),
    })?;
    if loss.is_nan() {
        // Resumed from the final checkpoint: no step ran, so the last logged loss is the run's.
        loss = last_logged_loss(run_dir.as_deref())?;
    }
    let sched = cfg.schedule()?;
    let t = sched.ve_time(pl.st.step_k)?;
    let eps = UNetEps::<Inner>::new(state.ema, backend::device(), 512).with_parallel_batches(pl.st.parallel_batches);
    let net = VpScore::discrete(eps, sched);
    let at_train = pl.set.rows(&idx[..pl.st.points.min(n)])?;
    let held = split.held_out();
    let at_held = pl.set.rows(&held[..pl.st.points.min(held.len())])?;
    let authors = Perturbation::PerChannelOrthogonal { channels: pl.set.channels, size: pl.set.height };
    let base = NormalBundleParams::default();
    let emp = EmpiricalScore::new(train_set)?;
    let mut spectra = Vec::new();
    for (name, pert) in [("per-channel orthogonal", authors), ("gaussian", Perturbation::Gaussian)] {
        let p = base.perturbation(pert);
        spectra.push(("train", name, spectra_at(&net, &at_train, t, &p)?));
        spectra.push(("held-out", name, spectra_at(&net, &at_held, t, &p)?));
    }
    let p = base.perturbation(authors);
    spectra.push(("train, empirical score", "per-channel orthogonal", spectra_at(&emp, &at_train, t, &p)?));
    spectra.push(("held-out, empirical score", "per-channel orthogonal", spectra_at(&emp, &at_held, t, &p)?));
    Ok(SizeOut { n, loss, t, spectra })
}

pub fn run(st: &Settings, root: &std::path::Path) -> Result<String> {
    let pl = plan(st)?;
    let out = FigureDir::new(root, &st.name)?;
    let split = NestedSplit::new(pl.set.len(), pl.st.held_out, st.seed)?;
    out.write_json(
        "config.json",
        &serde_json::json!({
            "data": pl.set.source, "images": pl.set.len(), "held_out": pl.st.held_out, "sizes": pl.sizes,
            "unet": pl.unet, "parameters": pl.unet.parameter_count().map(|c| c as u64), "steps": pl.st.steps,
            "batch": pl.st.batch, "batch_split": pl.st.batch_split, "parallel_batches": pl.st.parallel_batches, "checkpoint_every": pl.st.checkpoint_every, "lr": pl.st.lr, "points_per_set": pl.st.points, "step_k": pl.st.step_k,
            "K": "4d, central differences", "rule": pl.st.rule, "seed": st.seed, "backend": backend::name(),
        }),
    )?;
    let pb = crate::out::bar(pl.sizes.len() as u64, "image dimension: U-Nets");
    // burn's CPU backend runs these convolutions on one core: two nets train side by side,
    // largest sizes first so that the longest spectra do not start last.
    let sizes: Vec<usize> = pl.sizes.iter().rev().copied().collect();
    let runs = out.dir.join("runs");
    let mut res = super::common::on_two_workers(sizes, |n| one_size(&pl, &split, n, st.seed, &runs), || pb.inc(1))?;
    pb.finish_and_clear();
    res.sort_by_key(|r| r.n);
    report(&out, &pl, &res)
}

/// The smoothed loss of the last row of a run directory's `metrics.csv` (NaN without one).
fn last_logged_loss(run_dir: Option<&std::path::Path>) -> Result<f64> {
    let Some(dir) = run_dir else { return Ok(f64::NAN) };
    let text = std::fs::read_to_string(dir.join("metrics.csv"))?;
    let last = text.lines().skip(1).last().context("metrics.csv has no rows")?;
    Ok(last.split(',').nth(2).context("metrics.csv row without loss_ema")?.parse()?)
}

/// `(mean, std, spikes)` of the notebook form, and the paper form's mean over points.
fn dims(rule: &SecondDerivativeRule, spectra: &[Vec<f64>]) -> Result<(f64, f64, usize, f64)> {
    let pooled = rule.pooled(spectra)?;
    let d = spectra[0].len() as f64;
    let paper: Vec<f64> =
        spectra.iter().map(|s| Ok(rule.dimension(s)?.map_or(d, |v| v as f64))).collect::<Result<_>>()?;
    Ok((
        pooled.mean().unwrap_or(d),
        pooled.std().unwrap_or(0.0),
        pooled.spikes.len(),
        paper.iter().sum::<f64>() / paper.len() as f64,
    ))
}

fn report(out: &FigureDir, pl: &Plan<'_>, res: &[SizeOut]) -> Result<String> {
    let d = pl.set.dim();
    let mut w = out.csv(
        "dimension.csv",
        &[
            "n",
            "points",
            "perturbation",
            "notebook_mean",
            "notebook_std",
            "spikes",
            "paper_mean",
            "median_sv_t",
            "final_loss",
        ],
    )?;
    let mut sp = out.csv("spectra.csv", &["n", "points", "perturbation", "index", "mean_normalised"])?;
    let mut md = format!(
        "## image_dimension\n\n{} ({} images, d = {d}), DDPM U-Net {} parameters, {} steps per size, step k = {}, K = 4d; Algorithm 3 d̄ = {}, c = {}.{}\n\n| N | points | perturbation | dimension (notebook, mean ± std over spikes) | spikes | dimension (paper form, mean over points) | median singular value × t |\n|---|---|---|---|---|---|---|\n",
        pl.set.source,
        pl.set.len(),
        pl.unet.parameter_count().unwrap_or(0),
        pl.st.steps,
        pl.st.step_k,
        pl.st.rule.discard,
        pl.st.rule.threshold,
        if pl.set.source == "uci-digits" { " Embedded 8×8 digits: not the paper's data." } else { "" },
    );
    let mut curves: std::collections::BTreeMap<String, Vec<(f64, f64, f64)>> = Default::default();
    let mut stiffness: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for r in res {
        for (points, pert, spectra) in &r.spectra {
            let (mean, std, spikes, paper) = dims(&pl.st.rule, spectra)?;
            // Absolute stiffness: a memorizing field has every value near 1/t (s·t ≈ 1), a
            // flat spectrum that Algorithm 3 cannot tell from a flat soft one.
            let stiff = spectra.iter().map(|s| s[s.len() / 2] * r.t).sum::<f64>() / spectra.len() as f64;
            w.write_record([
                r.n.to_string(),
                points.to_string(),
                pert.to_string(),
                mean.to_string(),
                std.to_string(),
                spikes.to_string(),
                paper.to_string(),
                stiff.to_string(),
                r.loss.to_string(),
            ])?;
            writeln!(
                md,
                "| {} | {points} | {pert} | {mean:.1} ± {std:.1} | {spikes} | {paper:.1} | {stiff:.3} |",
                r.n
            )?;
            // Short legend labels: the full names are in the CSV and the summary.
            let key = format!("{points}, {pert}")
                .replace("empirical score", "emp.")
                .replace("per-channel orthogonal", "authors'");
            curves.entry(key.clone()).or_default().push((r.n as f64, mean, std));
            stiffness.entry(key).or_default().push((r.n as f64, stiff));
            for i in 0..d {
                let v = spectra.iter().map(|s| s[i] / s[0]).sum::<f64>() / spectra.len() as f64;
                sp.write_record([r.n.to_string(), points.to_string(), pert.to_string(), i.to_string(), v.to_string()])?;
            }
        }
    }
    w.flush()?;
    sp.flush()?;
    out.write_text("summary.md", &md)?;
    let mut dim = Panel {
        title: "dimension (notebook form) against N".into(),
        x_label: "N (training images)".into(),
        y_label: "dimension".into(),
        log_x: true,
        // Lower left holds the held-out curves of the smallest sets (dimension ≈ 2).
        legend: LegendAt::LowerRight,
        ..Default::default()
    };
    for (i, (name, pts)) in curves.iter().enumerate() {
        let c = palette(i);
        dim.series.push(Series::line(pts.iter().map(|p| (p.0, p.1)).collect(), c).labeled(name.clone()));
        dim.series.push(Series::line(pts.iter().map(|p| (p.0, p.1 + p.2)).collect(), c).dashed());
        dim.series.push(Series::line(pts.iter().map(|p| (p.0, (p.1 - p.2).max(0.0))).collect(), c).dashed());
    }
    let mut stiff_panel = Panel {
        title: "median singular value × t (1: stiff in every direction)".into(),
        x_label: "N (training images)".into(),
        y_label: "s_median · t".into(),
        log_x: true,
        log_y: true,
        legend: LegendAt::MiddleRight,
        ..Default::default()
    };
    for (i, (name, pts)) in stiffness.into_iter().enumerate() {
        stiff_panel.series.push(Series::line(pts, palette(i)).labeled(name));
    }
    let mut panels = vec![dim, stiff_panel];
    for which in ["train", "held-out"] {
        let mut p = Panel {
            title: format!("net spectra at {which} images (authors' perturbations)"),
            x_label: "index".into(),
            y_label: "s_i / s_1".into(),
            log_y: true,
            ..Default::default()
        };
        for (j, r) in res.iter().enumerate() {
            let Some((_, _, spectra)) = r.spectra.iter().find(|s| s.0 == which && s.1 == "per-channel orthogonal")
            else {
                continue;
            };
            let mean: Vec<(f64, f64)> = (0..d)
                .map(|i| ((i + 1) as f64, spectra.iter().map(|s| s[i] / s[0]).sum::<f64>() / spectra.len() as f64))
                .collect();
            let u = j as f64 / (res.len().max(2) - 1) as f64;
            p.series.push(Series::line(mean, viridis(u)).labeled(format!("N = {}", r.n)));
        }
        panels.push(p);
    }
    save_panels(&out.path("image_dimension"), &format!("Latent dimension against N: {}", pl.set.source), &panels, 2)?;
    Ok(md)
}
