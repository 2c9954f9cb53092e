//! A direct test of the REM prediction for the participation ratio (seed 001, Eq. 36-37):
//! the measured mean `Y = Σ w²` of the empirical score against `1 - t/t_c(x)`, at the
//! origin and at points along the high- and the low-variance subspace.

use super::common::{LogGrid, Setup};
use crate::out::{bar, FigureDir};
use crate::plot::{palette, save_panels, Panel, Series};
use anyhow::Result;
use geomem_rem::{participation_ratio, PositionalRem};
use geomem_score::EmpiricalScore;
use std::path::Path;

type Csv = csv::Writer<std::fs::File>;

/// Settings of the participation-ratio figure (`figure = "participation"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// The data model.
    pub setup: Setup,
    /// Training-set size.
    pub n: usize,
    /// The times.
    pub times: LogGrid,
    /// Independent training sets.
    pub realizations: usize,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        self.setup.check()?;
        self.times.check("times")?;
        anyhow::ensure!(self.n >= 2 && self.realizations >= 1, "{}: n >= 2 and realizations >= 1", self.name);
        Ok(())
    }
}

/// The three positions: the origin and two standard deviations along a high- and a
/// low-variance axis.
fn positions(setup: &Setup) -> Vec<(String, Vec<f64>)> {
    let d = setup.d;
    let mut hi = vec![0.0; d];
    hi[0] = 2.0 * setup.high.1.sqrt();
    let mut lo = vec![0.0; d];
    lo[setup.high.0] = 2.0 * setup.low.1.sqrt();
    vec![
        ("x = 0".into(), vec![0.0; d]),
        ("x = 2 sd along high-var axis".into(), hi),
        ("x = 2 sd along low-var axis".into(), lo),
    ]
}

/// Measured mean participation ratio at `x` over the datasets against the REM, one CSV row
/// per time; returns the summary row and the panel.
fn one_position(
    (label, x): &(String, Vec<f64>),
    fields: &[EmpiricalScore],
    sigma2: &[f64],
    times: &[f64],
    w: &mut Csv,
    pb: &indicatif::ProgressBar,
) -> Result<(String, Panel)> {
    let (n, reps) = (fields[0].n(), fields.len());
    let rem = PositionalRem::with_n(sigma2, x, n as f64)?;
    let (tce, tca) = (rem.condensation_time(), rem.condensation_time_large_t());
    let (mut meas, mut th, mut th15) = (Vec::new(), Vec::new(), Vec::new());
    for &t in times {
        let (mut y, mut ne) = (0.0, 0.0);
        for f in fields {
            let p = f.posterior(x, t)?;
            y += p.participation_ratio / reps as f64;
            ne += p.n_eff / reps as f64;
        }
        let (ye, ya) = (participation_ratio(t, tce, n as f64)?, participation_ratio(t, tca, n as f64)?);
        let row = [t, y, ne, ye, ya, tce, tca].map(|v| format!("{v:e}"));
        w.write_record(std::iter::once(label.clone()).chain(row))?;
        meas.push((t, y));
        th.push((t, ye));
        th15.push((t, ya));
        pb.inc(1);
    }
    // Crossing of the measured curve through 1/2 (log-linear interpolation).
    let cross = meas.windows(2).find(|w| w[0].1 >= 0.5 && w[1].1 < 0.5).map(|w| {
        let f = (w[0].1 - 0.5) / (w[0].1 - w[1].1);
        (w[0].0.ln() + f * (w[1].0.ln() - w[0].0.ln())).exp()
    });
    let crossed = cross.map_or("not crossed".into(), |c| format!("{c:.4}"));
    let row = format!("| {label} | {tce:.4} | {tca:.4} | {crossed} | {:.4} |\n", tce / 2.0);
    let panel = Panel {
        title: label.clone(),
        x_label: "t".into(),
        y_label: "participation ratio Y".into(),
        log_x: true,
        log_y: true,
        series: vec![
            Series::line(meas, palette(0)).labeled("measured mean Σw²").scatter(),
            Series::line(th, palette(1)).labeled("REM 1 - t/t_c (exact t_c)"),
            Series::line(th15, palette(3)).labeled("REM with Eq. 15 t_c").dashed(),
        ],
        ..Panel::default()
    };
    Ok((row, panel))
}

pub fn run(st: &Settings, root: &Path) -> Result<String> {
    st.check()?;
    let dir = FigureDir::new(root, &st.name)?;
    let (setup, n, reps) = (&st.setup, st.n, st.realizations);
    let lm = setup.manifold();
    let sigma2 = lm.principal_variances();
    let positions = positions(setup);
    let times = st.times.values();
    dir.write_json("config.json", &serde_json::json!({ "settings": st, "times": times, "positions": positions }))?;
    let fields: Vec<EmpiricalScore> =
        (0..reps).map(|r| EmpiricalScore::new(lm.sample(n, st.seed + r as u64))).collect::<Result<_, _>>()?;
    let header = [
        "position",
        "t",
        "mean_Y_measured",
        "mean_neff_measured",
        "Y_rem_exact_tc",
        "Y_rem_eq15_tc",
        "tc_exact",
        "tc_eq15",
    ];
    let mut w = dir.csv("participation.csv", &header)?;
    let mut summary = format!("## neff: participation ratio of the empirical score against the REM ({}, N = {n}, {reps} datasets)\n\n| position | t_c exact | t_c Eq. 15 | t where measured mean Y = 1/2 | REM: t_c/2 (exact) |\n|---|---|---|---|---|\n", setup.label());
    let mut panels = Vec::new();
    let pb = bar((positions.len() * times.len()) as u64, "neff");
    for p in &positions {
        let (row, panel) = one_position(p, &fields, &sigma2, &times, &mut w, &pb)?;
        summary.push_str(&row);
        panels.push(panel);
    }
    pb.finish_and_clear();
    w.flush()?;
    save_panels(
        &dir.path("participation"),
        &format!("neff: participation ratio vs REM ({}, N = {n})", setup.label()),
        &panels,
        3,
    )?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
