//! `cargo xtask lid`: "what dimension does my data / my trained net give these points".
//!
//! Reads points from `.npy`/`.csv`, runs the chosen estimators (data-based: MLE, TwoNN among
//! the points themselves or against `--reference`; model-based: FLIPD and the Normal Bundle
//! dimension of the EMA net of a run directory: the toy network of `cargo xtask train`, or a
//! DDPM U-Net of the image figure's `runs/`, evaluated at the step of its schedule nearest to
//! `--t0`), and writes one column per estimator to `lid.csv` and `lid.npy`, and
//! `summary.json` with the spread of each.

use crate::backend::{self, Inner, Train};
use crate::train_cmd::read_data;
use anyhow::{bail, Context, Result};
use faer::Mat;
use geomem_lid::{DataEstimator, DataLid, Flipd, FlipdLid, Mle, NormalBundleLid, PointwiseLid, Summary, TwoNn};
use geomem_nets::{load_ddpm_ema, load_ema, TrainConfig, TrainedScore, UNetEps, CHECKPOINT_FILE};
use geomem_score::{ScoreField, VpScore};
use geomem_spectral::GapScale;
use std::path::{Path, PathBuf};

/// Which estimators `lid` runs.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum Estimator {
    /// Levina–Bickel MLE (k neighbours).
    Mle,
    /// TwoNN on the k nearest points of each point.
    Twonn,
    /// FLIPD of the trained net at t0 (needs --run-dir).
    Flipd,
    /// Normal Bundle dimension of the trained net at t0 (needs --run-dir).
    Nb,
}

#[derive(clap::Args)]
pub struct LidArgs {
    /// Points (`.npy`, `.csv`, `.csv.gz`), one per row.
    #[arg(long)]
    pub data: PathBuf,
    /// Reference set for the data estimators (the training set, for generated samples);
    /// without it each point's neighbours are the other points.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// A run directory (`cargo xtask train`, or a U-Net's of the image figure's `runs/`): its
    /// EMA net gives FLIPD and the NB dimension.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Estimators (repeat the flag); default: MLE and TwoNN, plus FLIPD with --run-dir.
    #[arg(long, value_enum)]
    pub estimator: Vec<Estimator>,
    /// Neighbours of MLE (scikit-dimension: 20).
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Neighbourhood size of pointwise TwoNN (scikit-dimension: 100).
    #[arg(long, default_value_t = 100)]
    pub twonn_neighbors: usize,
    /// VE time of FLIPD and of the NB Jacobian (a U-Net: the nearest step of its schedule).
    #[arg(long, default_value_t = 0.01)]
    pub t0: f64,
    /// FLIPD's trace is exact (d autodiff rows per point) up to this dimension, Hutchinson's
    /// estimate above.
    #[arg(long, default_value_t = 1024)]
    pub exact_below: usize,
    /// Hutchinson probes of FLIPD above `--exact-below`.
    #[arg(long, default_value_t = 64)]
    pub probes: usize,
    /// Output folder.
    #[arg(long, default_value = "results/lid")]
    pub out: PathBuf,
}

/// The estimator `e` (FLIPD or NB) of `field` at VE time `t`.
fn boxed<F: ScoreField + 'static>(field: F, e: Estimator, t: f64, a: &LidArgs) -> Result<Box<dyn PointwiseLid>> {
    Ok(if e == Estimator::Flipd {
        let p = geomem_score::DivergenceParams::default().exact_below(a.exact_below).probes(a.probes);
        Box::new(FlipdLid { field, flipd: Flipd::new(t)?.divergence(p) })
    } else {
        Box::new(NormalBundleLid { field, t, scale: GapScale::Log, skip: 0 })
    })
}

/// The EMA net of a run directory: the toy network or a DDPM U-Net.
enum Net {
    Toy(Box<TrainedScore<Train>>),
    Unet(Box<VpScore<UNetEps<Inner>>>),
}

impl Net {
    /// The net of run directory `dir` (read once, whatever the number of estimators), and
    /// the VE time its estimators use: `t0` for the toy network, the grid time nearest to it
    /// for a DDPM U-Net (whose score exists at its schedule's steps only).
    fn load(dir: &Path, t0: f64) -> Result<(Self, f64)> {
        let text = std::fs::read_to_string(dir.join("config.json"))
            .with_context(|| format!("run directory {}: reading config.json", dir.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}", dir.display()))?;
        if value["model"].get("image_size").is_some() {
            let (unet, cfg) = load_ddpm_ema::<Inner>(&dir.join(CHECKPOINT_FILE), &backend::device())
                .with_context(|| format!("U-Net run directory {}", dir.display()))?;
            let sched = cfg.schedule()?;
            let (k, t) = sched.nearest_step(t0)?;
            println!("U-Net run: t0 = {t0} taken at step k = {k} of its schedule (t = {t:.6e})");
            let field = VpScore::discrete(UNetEps::new(unet, backend::device(), 256), sched);
            return Ok((Self::Unet(Box::new(field)), t));
        }
        let cfg =
            TrainConfig::read(&dir.join("config.json")).with_context(|| format!("run directory {}", dir.display()))?;
        let ema = load_ema(&dir.join(CHECKPOINT_FILE), &cfg, &backend::device())?;
        Ok((Self::Toy(Box::new(TrainedScore::new(ema, backend::device()))), t0))
    }

    fn estimator(&self, e: Estimator, t: f64, a: &LidArgs) -> Result<Box<dyn PointwiseLid>> {
        match self {
            Self::Toy(f) => boxed(f.as_ref().clone(), e, t, a),
            Self::Unet(f) => boxed(f.as_ref().clone(), e, t, a),
        }
    }
}

/// Estimators, and the VE time of the model-based ones (`None` without them).
type Chosen = (Vec<Box<dyn PointwiseLid>>, Option<f64>);

/// The estimators to run.
fn estimators(a: &LidArgs) -> Result<Chosen> {
    let mut which = a.estimator.clone();
    if which.is_empty() {
        which = vec![Estimator::Mle, Estimator::Twonn];
        if a.run_dir.is_some() {
            which.push(Estimator::Flipd);
        }
    }
    let reference = a.reference.as_deref().map(read_data).transpose()?;
    let data_lid = |e: DataEstimator| match &reference {
        Some(r) => DataLid::against(e, r.clone()),
        None => DataLid::itself(e),
    };
    let mut out: Vec<Box<dyn PointwiseLid>> = Vec::new();
    let mut net: Option<(Net, f64)> = None;
    for e in which {
        out.push(match e {
            Estimator::Mle => Box::new(data_lid(DataEstimator::Mle(Mle::new(a.k, false)?))),
            Estimator::Twonn => Box::new(data_lid(DataEstimator::TwoNn(TwoNn::default(), a.twonn_neighbors))),
            Estimator::Flipd | Estimator::Nb => {
                let Some(dir) = &a.run_dir else { bail!("--estimator {e:?} needs --run-dir") };
                if net.is_none() {
                    net = Some(Net::load(dir, a.t0)?);
                }
                let (n, t) = net.as_ref().expect("loaded above");
                n.estimator(e, *t, a)?
            }
        });
    }
    Ok((out, net.map(|(_, t)| t)))
}

pub fn run(a: &LidArgs) -> Result<()> {
    let x = read_data(&a.data).with_context(|| format!("reading {}", a.data.display()))?;
    std::fs::create_dir_all(&a.out)?;
    let (est, t_model) = estimators(a)?;
    let mut cols: Vec<(String, Vec<f64>)> = Vec::new();
    let mut summary = serde_json::Map::new();
    for e in &est {
        let start = std::time::Instant::now();
        let v = e.lid(x.as_ref()).with_context(|| format!("estimator {}", e.name()))?;
        let s = Summary::of(&v);
        println!(
            "{:6} median {:7.3}  mean {:7.3} ± {:.3}  [5 %, 95 %] = [{:.3}, {:.3}]  ({:.2} s)",
            e.name(),
            s.quantiles[2],
            s.mean,
            s.std,
            s.quantiles[0],
            s.quantiles[4],
            start.elapsed().as_secs_f64()
        );
        summary.insert(e.name(), serde_json::to_value(&s)?);
        cols.push((e.name(), v));
    }
    let mut w = csv::Writer::from_path(a.out.join("lid.csv"))?;
    w.write_record(cols.iter().map(|c| c.0.as_str()))?;
    for i in 0..x.nrows() {
        w.write_record(cols.iter().map(|c| c.1[i].to_string()))?;
    }
    w.flush()?;
    let m = Mat::from_fn(x.nrows(), cols.len(), |i, j| cols[j].1[i]);
    geomem_data::write_npy(a.out.join("lid.npy"), m.as_ref())?;
    let meta = serde_json::json!({
        "data": a.data, "reference": a.reference, "run_dir": a.run_dir, "k": a.k,
        "twonn_neighbors": a.twonn_neighbors, "t0": a.t0, "t_model": t_model, "columns": cols.iter().map(|c| &c.0).collect::<Vec<_>>(),
        "summary": summary,
    });
    std::fs::write(a.out.join("summary.json"), serde_json::to_string_pretty(&meta)?)?;
    println!(
        "per-point values: {} (.npy: columns in that order); summary: {}",
        a.out.join("lid.csv").display(),
        a.out.join("summary.json").display()
    );
    Ok(())
}
