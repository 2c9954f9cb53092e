//! `geomem spectrum`: the singular values of the score's Jacobian (seed 001 Eq. 5-7, from
//! the field's own derivatives: autodiff for a net, the closed form for the empirical
//! score) at given times and points, with the dimension readings of each spectrum: the
//! largest log gap (the NB dimension), Algorithm 3 with its flat cases told apart, the soft
//! count and the stiffness. For a data file, also the REM condensation time of its
//! empirical score at the data's mean (seed 001, Supp. C).
//!
//! Writes `spectra.npy` (one row per (time, point), singular values largest first),
//! `readings.csv` and `summary.json`.

use crate::backend;
use crate::output::{bar, create_dir, read_points, write_json};
use anyhow::{ensure, Context, Result};
use faer::Mat;
use geomem_data::{check_memory, matrix_bytes};
use geomem_nets::RunDir;
use geomem_rem::PositionalRem;
use geomem_score::{EmpiricalScore, ScoreField};
use geomem_spectral::{soft_count, spectrum, stiffness, GapScale, SecondDerivativeRule, Spectrum, SpectrumParams};
use std::path::PathBuf;

/// Arguments of `geomem spectrum`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("field").required(true).args(["run_dir", "data"])))]
pub struct SpectrumArgs {
    /// A run directory: the spectra of its EMA network.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// A data file (`.npy`, `.csv`, `.csv.gz`): the spectra of its empirical score.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The points (a file of rows); default with --data: its first --n-points rows.
    #[arg(long)]
    pub points: Option<PathBuf>,
    /// How many data rows to take as points when --points is absent.
    #[arg(long, default_value_t = 5)]
    pub n_points: usize,
    /// VE times (repeat the flag; a U-Net: the nearest steps of its schedule).
    #[arg(long = "t", default_values_t = [0.01])]
    pub times: Vec<f64>,
    /// Algorithm 3: values discarded at the top of the spectrum.
    #[arg(long, default_value_t = 1)]
    pub discard: usize,
    /// Algorithm 3: spike threshold in units of the median second derivative.
    #[arg(long, default_value_t = 10.0)]
    pub threshold: f64,
    /// Output folder.
    #[arg(long, default_value = "results/spectrum")]
    pub out: PathBuf,
}

/// The field and what it says about itself.
struct Source {
    field: Box<dyn ScoreField + Send + Sync>,
    /// The VE time the field is evaluated at for each requested time.
    times: Vec<f64>,
    /// Points of the data file (for the default points).
    data: Option<Mat<f64>>,
    rem: Option<serde_json::Value>,
}

fn open_source(a: &SpectrumArgs) -> Result<Source> {
    for &t in &a.times {
        ensure!(t.is_finite() && t > 0.0, "--t {t}: times must be finite and > 0");
    }
    if let Some(dir) = &a.run_dir {
        let run = RunDir::open(dir).with_context(|| format!("run directory {}", dir.display()))?;
        let times = a.times.iter().map(|&t| run.config().field_time(t)).collect::<Result<Vec<_>, _>>()?;
        let field = backend::score_field(&run).with_context(|| format!("run directory {}", dir.display()))?;
        return Ok(Source { field: Box::new(field), times, data: None, rem: None });
    }
    let path = a.data.as_ref().context("--run-dir or --data is needed")?;
    let x = read_points(path)?;
    let rem = PositionalRem::of_data(x.as_ref()).with_context(|| format!("the REM of {}", path.display()))?;
    let rem = serde_json::json!({ "n": x.nrows(), "alpha": rem.alpha(), "t_c_at_mean": rem.condensation_time() });
    let field = EmpiricalScore::new(x.clone()).with_context(|| format!("the empirical score of {}", path.display()))?;
    Ok(Source { field: Box::new(field), times: a.times.clone(), data: Some(x), rem: Some(rem) })
}

/// The points: `--points`, or the first `--n-points` rows of the data.
fn points(a: &SpectrumArgs, src: &Source) -> Result<Mat<f64>> {
    let x = match (&a.points, &src.data) {
        (Some(p), _) => read_points(p)?,
        (None, Some(data)) => {
            ensure!(a.n_points >= 1, "--n-points must be >= 1");
            data.subrows(0, a.n_points.min(data.nrows())).to_owned()
        }
        (None, None) => anyhow::bail!("--run-dir needs --points (a file of the points to evaluate at)"),
    };
    let d = src.field.dim();
    ensure!(x.ncols() == d, "the points have dimension {}, the field {d}", x.ncols());
    Ok(x)
}

/// The readings of one spectrum at VE time `t`, as the cells of `readings.csv` after
/// `t, t_field, point`: the NB dimension (`d` minus the position of the largest log gap)
/// and that gap, Algorithm 3's dimension and kind, the soft count and the stiffness.
fn readings(s: &[f64], t: f64, rule: &SecondDerivativeRule) -> Result<Vec<String>> {
    let spec = Spectrum::new(s.to_vec())?;
    let (_, gap) = spec.largest_gap(GapScale::Log, 0)?;
    let nb = spec.dimension_from_largest_gap(GapScale::Log, 0)?;
    let reading = rule.read(s, t)?;
    let alg3 = reading.dimension(s.len());
    Ok(vec![
        nb.to_string(),
        gap.to_string(),
        alg3.to_string(),
        reading.label().replace(", ", "_").replace(' ', "_"), // spike, no_spike_stiff, no_spike_soft
        soft_count(s, t)?.to_string(),
        stiffness(s, t)?.to_string(),
    ])
}

/// Runs `geomem spectrum`.
pub fn run(a: &SpectrumArgs) -> Result<()> {
    let rule = SecondDerivativeRule::new(a.discard, a.threshold).context("--threshold")?;
    let src = open_source(a)?;
    let x = points(a, &src)?;
    let d = src.field.dim();
    let rows = a.times.len() * x.nrows();
    check_memory(&format!("{rows} spectra of dimension {d}"), matrix_bytes(rows, d) + matrix_bytes(d, d))?;
    create_dir(&a.out)?;
    let mut spectra = Mat::zeros(rows, d);
    let path = a.out.join("readings.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["t", "t_field", "point", "nb", "largest_log_gap", "alg3", "alg3_kind", "soft_count", "stiffness"])?;
    let pb = bar(rows as u64, "spectrum");
    for (i, (&t, &tf)) in a.times.iter().zip(&src.times).enumerate() {
        for p in 0..x.nrows() {
            let xp: Vec<f64> = x.row(p).iter().copied().collect();
            let s = spectrum(&src.field, &xp, tf, &SpectrumParams::pointwise())
                .with_context(|| format!("the spectrum at point {p}, t = {tf}"))?
                .into_values();
            spectra.row_mut(i * x.nrows() + p).iter_mut().zip(&s).for_each(|(o, v)| *o = *v);
            let head = [t.to_string(), tf.to_string(), p.to_string()];
            w.write_record(head.into_iter().chain(readings(&s, tf, &rule)?))?;
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    w.flush()?;
    geomem_data::write_npy(a.out.join("spectra.npy"), spectra.as_ref())?;
    let summary = serde_json::json!({
        "run_dir": a.run_dir, "data": a.data, "points": a.points, "n_points": x.nrows(), "d": d,
        "times": a.times, "field_times": src.times, "rows": "spectra.npy row = time index * n_points + point",
        "alg3": { "discard": a.discard, "threshold": a.threshold }, "rem": src.rem,
    });
    write_json(&a.out.join("summary.json"), &summary)?;
    if let Some(rem) = &src.rem {
        println!("REM condensation time of the data at its mean: t_c = {}", rem["t_c_at_mean"]);
    }
    println!("{rows} spectra of dimension {d}: {}, readings: {}", a.out.join("spectra.npy").display(), path.display());
    Ok(())
}
