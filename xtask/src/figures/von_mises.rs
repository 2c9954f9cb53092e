//! Seed 004, Fig. 3: a diffusion model on 100 points of a von Mises distribution on the unit
//! circle, one of them isolated; FLIPD of every generated sample.
//!
//! Data in: 99 angles from VM(0, κ = 4) and one point placed at angle π, where the density is
//! e^{-8} ≈ 3·10⁻⁴ of its peak (Ross et al. found theirs by chance; here it is placed, so the
//! figure does not depend on a lucky seed). Analysis: the toy network (`ResidualMlp`, d = 2)
//! trained by DSM, reverse-SDE samples, the nearest-neighbour memorization label
//! (`geomem_lid::memorization`) and FLIPD (`geomem_lid::Flipd`, exact trace) of the net and,
//! as the control of a model that memorizes everything, of the empirical score of the same 100
//! points. `t0` is the knee of the median FLIPD curve of the samples (`geomem_lid::knee`), not a
//! value picked to make the figure look right; the summary also reports fixed `t0`.

use crate::backend::{self, Train};
use crate::out::{bar, logspace, FigureDir};
use crate::plot::{ColorBar, Figure, Panel, Series};

/// FLIPD at which the colour of a sample saturates (the circle has dimension 1).
const FLIPD_TOP: f64 = 1.5;
use anyhow::Result;
use faer::Mat;
use geomem_data::VonMisesCircle;
use geomem_lid::{flipd_curve, knee, median, memorization};
use geomem_nets::{sample, ResidualMlpConfig, SamplingParams, TrainConfig, TrainedScore};
use geomem_score::{DivergenceParams, EmpiricalScore};
use std::ops::ControlFlow;

/// Settings of the von Mises figure (`figure = "von-mises"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// Concentration κ of the 99 von Mises draws (the isolated point sits at angle π).
    pub kappa: f64,
    /// Training steps of the toy network (Adam 1e-3, EMA 0.999, batch 128).
    pub steps: u64,
    /// Reverse-SDE samples.
    pub samples: usize,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        let ok = self.kappa.is_finite() && self.kappa > 0.0 && self.steps >= 1 && self.samples >= 2;
        anyhow::ensure!(ok, "{}: kappa > 0, steps >= 1, samples >= 2", self.name);
        Ok(())
    }
}

/// The 100 training points: 99 von Mises draws and the isolated point (last row).
pub fn training_set(kappa: f64, seed: u64) -> Result<Mat<f64>> {
    let a = VonMisesCircle::new(0.0, kappa, 1.0)?.sample(99, seed);
    Ok(Mat::from_fn(100, 2, |i, j| if i < 99 { a[(i, j)] } else { [-1.0, 0.0][j] }))
}

struct Measured {
    samples: Mat<f64>,
    ts: Vec<f64>,
    net_curve: Mat<f64>,
    emp_curve: Mat<f64>,
    ratios: Vec<f64>,
    nearest: Vec<usize>,
}

pub fn run(st: &Settings, root: &std::path::Path) -> Result<String> {
    st.check()?;
    let out = FigureDir::new(root, &st.name)?;
    // Measured: at 20 000 steps the isolated point is not yet memorized (its samples read
    // FLIPD 1.5 at t0 = 0.01); at 100 000 it is (about 0), in 3 min on 2 cores.
    let steps = st.steps;
    let data = training_set(st.kappa, st.seed + 4)?;
    let cfg = TrainConfig::new(ResidualMlpConfig::new(2))
        .with_steps(steps)
        .with_ema_decay(0.999)
        .with_seed(st.seed)
        .with_checkpoint_every(0)
        .with_log_every(1000);
    out.write_json(
        "config.json",
        &serde_json::json!({ "settings": st, "isolated_angle": std::f64::consts::PI, "train": cfg.to_string() }),
    )?;
    let pb = bar(steps, "von Mises: training");
    let state = backend::train_toy(data.as_ref(), &cfg, None, &mut |row| {
        pb.set_position(row.step);
        ControlFlow::Continue(())
    })?;
    pb.finish_and_clear();
    let net = TrainedScore::<Train>::new(state.ema, backend::device());
    let m = measure(&net, &data, st.samples, st.seed)?;
    report(&out, &data, &m)?;
    Ok(format!("## {}\n\n{}", st.name, std::fs::read_to_string(out.path("summary.md"))?))
}

fn measure(net: &TrainedScore<Train>, data: &Mat<f64>, count: usize, seed: u64) -> Result<Measured> {
    let samples = sample(net, count, &SamplingParams::default().seed(seed + 11))?;
    let mem = memorization(samples.as_ref(), data.as_ref(), 1.0 / 3.0)?;
    // The net is trained for σ >= 0.01 (t >= 1e-4) only; below, its score is extrapolation.
    let ts = logspace(1e-4, 1.0, 21);
    let exact = DivergenceParams::default();
    let net_curve = flipd_curve(net, samples.as_ref(), &ts, exact)?;
    let emp = EmpiricalScore::new(data.clone())?;
    let emp_curve = flipd_curve(&emp, samples.as_ref(), &ts, exact)?;
    Ok(Measured { samples, ts, net_curve, emp_curve, ratios: mem.ratios, nearest: mem.nearest })
}

fn column_median(c: &Mat<f64>, rows: &[usize]) -> Vec<f64> {
    (0..c.ncols()).map(|k| median(&rows.iter().map(|&i| c[(i, k)]).collect::<Vec<_>>())).collect()
}

fn report(out: &FigureDir, data: &Mat<f64>, m: &Measured) -> Result<()> {
    let n = m.samples.nrows();
    let all: Vec<usize> = (0..n).collect();
    let k0 = knee(&m.ts, &column_median(&m.net_curve, &all)).unwrap_or(m.ts.len() / 2);
    let t0 = m.ts[k0];
    let flipd: Vec<f64> = (0..n).map(|i| m.net_curve[(i, k0)]).collect();
    let memorized: Vec<bool> = m.ratios.iter().map(|&r| r < 1.0 / 3.0).collect();
    let iso: Vec<usize> = (0..n).filter(|&i| m.nearest[i] == 99 && memorized[i]).collect();
    let arc: Vec<usize> = (0..n).filter(|&i| m.nearest[i] != 99).collect();
    let mut w = out.csv("samples.csv", &["x", "y", "flipd", "ratio", "memorized", "nearest", "near_isolated"])?;
    for i in 0..n {
        w.write_record(&[
            m.samples[(i, 0)].to_string(),
            m.samples[(i, 1)].to_string(),
            flipd[i].to_string(),
            m.ratios[i].to_string(),
            memorized[i].to_string(),
            m.nearest[i].to_string(),
            (m.nearest[i] == 99).to_string(),
        ])?;
    }
    w.flush()?;
    let mut w = out.csv(
        "flipd_curve.csv",
        &["t", "net_median_arc", "net_median_isolated", "empirical_median_arc", "empirical_median_isolated"],
    )?;
    let (na, ni, ea, ei) = (
        column_median(&m.net_curve, &arc),
        column_median(&m.net_curve, &iso),
        column_median(&m.emp_curve, &arc),
        column_median(&m.emp_curve, &iso),
    );
    for k in 0..m.ts.len() {
        w.write_record([m.ts[k], na[k], ni[k], ea[k], ei[k]].map(|v| v.to_string()))?;
    }
    w.flush()?;
    let mut w = out.csv("train.csv", &["x", "y", "isolated"])?;
    for i in 0..100 {
        w.write_record(&[data[(i, 0)].to_string(), data[(i, 1)].to_string(), (i == 99).to_string()])?;
    }
    w.flush()?;
    let stats = |rows: &[usize], k: usize| median(&rows.iter().map(|&i| m.net_curve[(i, k)]).collect::<Vec<_>>());
    let fixed: Vec<serde_json::Value> = [1e-3, 1e-2, 1e-1]
        .iter()
        .map(|&t| {
            let k = m.ts.iter().position(|&s| (s / t - 1.0).abs() < 1e-6).unwrap_or(k0);
            serde_json::json!({ "t0": m.ts[k], "median_arc": stats(&arc, k), "median_isolated": stats(&iso, k) })
        })
        .collect();
    let summary = serde_json::json!({
        "samples": n, "t0_knee": t0,
        "memorized_fraction": memorized.iter().filter(|&&b| b).count() as f64 / n as f64,
        "samples_on_isolated_point": iso.len(), "samples_near_arc": arc.len(),
        "flipd_median_arc": stats(&arc, k0), "flipd_median_isolated": stats(&iso, k0),
        "flipd_isolated_values": iso.iter().map(|&i| flipd[i]).collect::<Vec<_>>(),
        "empirical_median_arc": ea[k0], "fixed_t0": fixed,
    });
    out.write_json("summary.json", &summary)?;
    out.write_text(
        "summary.md",
        &format!("# von Mises (seed 004, Fig. 3)\n\n```json\n{}\n```\n", serde_json::to_string_pretty(&summary)?),
    )?;
    plot(out, data, m, &flipd, t0, (&na, &ni, &ea))
}

fn plot(
    out: &FigureDir,
    data: &Mat<f64>,
    m: &Measured,
    flipd: &[f64],
    t0: f64,
    curves: (&[f64], &[f64], &[f64]),
) -> Result<()> {
    let mut circle = Panel {
        title: format!("samples coloured by FLIPD at t0 = {t0:.1e}"),
        x_label: "x".into(),
        y_label: "y".into(),
        ..Default::default()
    };
    let ring: Vec<(f64, f64)> =
        (0..=200).map(|k| (k as f64 * 0.0314159).cos()).zip((0..=200).map(|k| (k as f64 * 0.0314159).sin())).collect();
    circle.series.push(Series::line(ring, plotters::style::RGBColor(200, 200, 200)));
    let bar = ColorBar::linear("FLIPD", 0.0, FLIPD_TOP);
    for (i, &f) in flipd.iter().enumerate().take(m.samples.nrows()) {
        let point = vec![(m.samples[(i, 0)], m.samples[(i, 1)])];
        circle.series.push(Series::line(point, bar.color(f)).scatter());
    }
    let train: Vec<(f64, f64)> = (0..100).map(|i| (data[(i, 0)] * 1.08, data[(i, 1)] * 1.08)).collect();
    circle.series.push(
        Series::line(train, plotters::style::RGBColor(220, 30, 30))
            .scatter()
            .labeled("training points (drawn at r = 1.08)"),
    );
    let curve =
        |v: &[f64]| m.ts.iter().zip(v).filter(|(_, y)| y.is_finite()).map(|(&t, &y)| (t, y)).collect::<Vec<_>>();
    let (na, ni, ea) = curves;
    let lines = Panel {
        title: "median FLIPD of the samples against t0".into(),
        x_label: "t0".into(),
        y_label: "FLIPD".into(),
        log_x: true,
        series: vec![
            Series::line(curve(na), crate::plot::palette(0)).labeled("net, samples on the arc"),
            Series::line(curve(ni), crate::plot::palette(1)).labeled("net, samples on the isolated point"),
            Series::line(curve(ea), crate::plot::palette(2)).dashed().labeled("empirical score, arc samples"),
        ],
        ..Default::default()
    };
    Figure::new("Diffusion model on a von Mises circle (seed 004, Fig. 3)", 2)
        .colorbar(bar)
        .save(&out.path("vonmises"), &[circle, lines])
}
