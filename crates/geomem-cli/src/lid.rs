//! `geomem lid`: "what dimension does my data, or my trained net, give these points".
//!
//! Reads points from `.npy`/`.csv`, checks the settings of every chosen estimator against
//! the data before any of them runs (a default TwoNN neighbourhood larger than the data is
//! clamped, with a note), runs them (data-based: MLE, TwoNN among the points themselves or
//! against `--reference`; model-based: FLIPD and the Normal Bundle dimension of the EMA net
//! of a run directory, the toy network or a DDPM U-Net evaluated at the step of its schedule
//! nearest to `--t0`), and writes one column per estimator to `lid.csv` and `lid.npy`, and
//! `summary.json` with the spread of each.

use crate::backend::{self, Train};
use crate::output::{bar, create_dir, read_points, spinner, write_columns, write_json};
use anyhow::{bail, ensure, Context, Result};
use faer::{Mat, MatRef};
use geomem_lid::{DataEstimator, DataLid, Flipd, FlipdLid, Mle, NormalBundleLid, PointwiseLid, Summary, TwoNn};
use geomem_nets::{RunDir, RunScore};
use geomem_score::{DivergenceParams, ScoreField};
use geomem_spectral::GapScale;
use std::path::PathBuf;
use std::sync::Arc;

/// Which estimators `lid` runs.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum Estimator {
    /// Levina–Bickel MLE (k neighbours).
    Mle,
    /// TwoNN on the nearest points of each point.
    Twonn,
    /// FLIPD of the trained net at t0 (needs --run-dir).
    Flipd,
    /// Normal Bundle dimension of the trained net at t0 (needs --run-dir).
    Nb,
}

/// Arguments of `geomem lid`.
#[derive(clap::Args)]
pub struct LidArgs {
    /// Points (`.npy`, `.csv`, `.csv.gz`), one per row.
    #[arg(long)]
    pub data: PathBuf,
    /// Reference set for the data estimators (the training set, for generated samples);
    /// without it each point's neighbours are the other points.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// A run directory (`geomem train`, or a U-Net's): its EMA net gives FLIPD and the NB
    /// dimension.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Estimators (repeat the flag); default: MLE and TwoNN, plus FLIPD with --run-dir.
    #[arg(long, value_enum)]
    pub estimator: Vec<Estimator>,
    /// Neighbours of MLE (scikit-dimension: 20).
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Neighbourhood size of pointwise TwoNN [default: 100 (scikit-dimension), or every
    /// other point when there are fewer]. A value given here must fit the data.
    #[arg(long)]
    pub twonn_neighbors: Option<usize>,
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

/// Points per progress step of the model-based estimators.
const CHUNK: usize = 32;

/// One estimator, its settings checked against the data.
enum Est {
    /// MLE or TwoNN (needs every point at once: no chunks).
    Data(DataLid),
    /// FLIPD of the net at VE time `t`.
    Flipd { field: Arc<RunScore<Train>>, flipd: Flipd, params: DivergenceParams },
    /// NB dimension of the net at VE time `t`.
    Nb { field: Arc<RunScore<Train>>, t: f64 },
}

impl Est {
    fn name(&self) -> String {
        match self {
            Est::Data(e) => e.name(),
            Est::Flipd { .. } => "flipd".into(),
            Est::Nb { .. } => "nb".into(),
        }
    }

    /// The estimates at every row of `x`; model estimators by chunks of points, each point
    /// with the probe seed it would have in one batch (the same numbers as one call).
    fn run(&self, x: MatRef<'_, f64>) -> Result<Vec<f64>> {
        if let Est::Data(e) = self {
            let pb = spinner(&e.name());
            let v = e.lid(x);
            pb.finish_and_clear();
            return Ok(v?);
        }
        let pb = bar(x.nrows() as u64, &self.name());
        let mut out = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(CHUNK) {
            let rows = x.subrows(start, CHUNK.min(x.nrows() - start));
            out.extend(match self {
                Est::Flipd { field, flipd, params } => {
                    let p = params.seed(params.seed.wrapping_add(start as u64));
                    FlipdLid { field: field.clone(), flipd: flipd.divergence(p) }.lid(rows)?
                }
                Est::Nb { field, t } => {
                    NormalBundleLid { field: field.clone(), t: *t, scale: GapScale::Log, skip: 0 }.lid(rows)?
                }
                Est::Data(e) => e.lid(rows)?,
            });
            pb.inc(rows.nrows() as u64);
        }
        pb.finish_and_clear();
        Ok(out)
    }
}

/// The estimators to run, every setting checked, and notes on settings adapted to the data.
struct Plan {
    estimators: Vec<Est>,
    notes: Vec<String>,
    /// The VE time of the model-based estimators.
    t_model: Option<f64>,
    twonn_neighbors: Option<usize>,
}

/// The chosen estimators (MLE and TwoNN, plus FLIPD with a run directory, by default).
fn chosen(a: &LidArgs) -> Vec<Estimator> {
    if !a.estimator.is_empty() {
        return a.estimator.clone();
    }
    let mut which = vec![Estimator::Mle, Estimator::Twonn];
    if a.run_dir.is_some() {
        which.push(Estimator::Flipd);
    }
    which
}

impl Plan {
    /// Checks every estimator's settings against `x` (and the reference) before any runs.
    fn new(a: &LidArgs, x: MatRef<'_, f64>, reference: Option<&Mat<f64>>) -> Result<Self> {
        let which = chosen(a);
        if let Some(r) = reference {
            ensure!(r.ncols() == x.ncols(), "--reference has {} columns, --data has {}", r.ncols(), x.ncols());
        }
        // Neighbours there are: every reference point, or every other point.
        let (available, among) = match reference {
            Some(r) => (r.nrows(), "reference points"),
            None => (x.nrows().saturating_sub(1), "other points"),
        };
        let mut plan = Plan { estimators: Vec::new(), notes: Vec::new(), t_model: None, twonn_neighbors: None };
        let mut net: Option<(Arc<RunScore<Train>>, f64)> = None;
        for e in which {
            let est = match e {
                Estimator::Mle => {
                    let mle = Mle::new(a.k, false)?;
                    ensure!(a.k <= available, "--k {}: MLE needs k <= {available}, the number of {among}", a.k);
                    data_lid(DataEstimator::Mle(mle), reference)
                }
                Estimator::Twonn => {
                    let n = plan.twonn_neighbourhood(a.twonn_neighbors, available, among)?;
                    data_lid(DataEstimator::TwoNn(TwoNn::default(), n), reference)
                }
                Estimator::Flipd | Estimator::Nb => {
                    let (field, t) = match &net {
                        Some(loaded) => loaded.clone(),
                        None => net.insert(plan.load_net(a, x.ncols())?).clone(),
                    };
                    model_estimator(e, field, t, a)?
                }
            };
            plan.estimators.push(est);
        }
        Ok(plan)
    }

    /// TwoNN's neighbourhood: the value given (checked), or 100 clamped to the data.
    fn twonn_neighbourhood(&mut self, given: Option<usize>, available: usize, among: &str) -> Result<usize> {
        let n = match given {
            Some(n) => {
                ensure!(
                    n <= available,
                    "--twonn-neighbors {n}: TwoNN needs at most {available}, the number of {among}"
                );
                n
            }
            None if available < 100 => {
                self.notes.push(format!(
                    "TwoNN neighbourhood clamped from its default 100 to {available}, the number of {among}"
                ));
                available
            }
            None => 100,
        };
        ensure!(n >= 3, "TwoNN needs a neighbourhood of at least 3 points, there are {available} {among}");
        self.twonn_neighbors = Some(n);
        Ok(n)
    }

    /// The EMA net of `--run-dir` and the VE time it is evaluated at.
    fn load_net(&mut self, a: &LidArgs, d: usize) -> Result<(Arc<RunScore<Train>>, f64)> {
        let Some(dir) = &a.run_dir else { bail!("--estimator flipd and --estimator nb need --run-dir") };
        let run = RunDir::open(dir).with_context(|| format!("run directory {}", dir.display()))?;
        ensure!(run.config().dim() == d, "the run's network has dimension {}, the points {d}", run.config().dim());
        let t = run.config().field_time(a.t0).context("--t0")?;
        if t != a.t0 {
            self.notes.push(format!("U-Net run: t0 = {} taken at the nearest step of its schedule, t = {t:.6e}", a.t0));
        }
        self.t_model = Some(t);
        let field = backend::score_field(&run).with_context(|| format!("run directory {}", dir.display()))?;
        Ok((Arc::new(field), t))
    }
}

fn data_lid(e: DataEstimator, reference: Option<&Mat<f64>>) -> Est {
    Est::Data(match reference {
        Some(r) => DataLid::against(e, r.clone()),
        None => DataLid::itself(e),
    })
}

/// FLIPD or NB of `field` at VE time `t`, settings checked.
fn model_estimator(e: Estimator, field: Arc<RunScore<Train>>, t: f64, a: &LidArgs) -> Result<Est> {
    if e == Estimator::Nb {
        return Ok(Est::Nb { field, t });
    }
    ensure!(a.probes >= 1 || field.dim() <= a.exact_below, "--probes must be >= 1 above --exact-below");
    let params = DivergenceParams::default().exact_below(a.exact_below).probes(a.probes);
    Ok(Est::Flipd { field, flipd: Flipd::new(t)?, params })
}

/// Runs `geomem lid`.
pub fn run(a: &LidArgs) -> Result<()> {
    let x = read_points(&a.data)?;
    let reference = a.reference.as_deref().map(read_points).transpose()?;
    let plan = Plan::new(a, x.as_ref(), reference.as_ref())?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    create_dir(&a.out)?;
    let mut cols: Vec<(String, Vec<f64>)> = Vec::new();
    let mut summary = serde_json::Map::new();
    for e in &plan.estimators {
        let start = std::time::Instant::now();
        let v = e.run(x.as_ref()).with_context(|| format!("estimator {}", e.name()))?;
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
    write_columns(&a.out, "lid", &cols)?;
    let meta = serde_json::json!({
        "data": a.data, "reference": a.reference, "run_dir": a.run_dir, "k": a.k,
        "twonn_neighbors": plan.twonn_neighbors, "t0": a.t0, "t_model": plan.t_model,
        "columns": cols.iter().map(|c| &c.0).collect::<Vec<_>>(), "notes": plan.notes, "summary": summary,
    });
    write_json(&a.out.join("summary.json"), &meta)?;
    println!(
        "per-point values: {} (.npy: columns in that order); summary: {}",
        a.out.join("lid.csv").display(),
        a.out.join("summary.json").display()
    );
    Ok(())
}
