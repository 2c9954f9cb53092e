//! Fig. 9, 10 (measured empirical score), 13 (closed form) and 14 (random matrix):
//! ordered spectra at fixed times for growing training-set sizes.

use super::common::{gap_stats, Setup};
use crate::out::{bar, FigureDir};
use crate::plot::{ColorBar, Figure, Panel, Series};
use anyhow::Result;
use geomem_data::NestedSubsets;
use geomem_rem::{ClosedForm, EmpiricalJacobianModel};
use geomem_score::{EmpiricalScore, ScoreFieldExt};
use geomem_spectral::{mean_spectrum as mean_of, normalize, OPEN_LOG_GAP};
use geomem_spectral::{sign_split, signed_spectrum, spectrum, SpectrumParams};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// What produces the spectra (`source = "measured" | "closed-form" | "random-matrix"`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Empirical score of nested subsets, improved Normal Bundle (Eq. 5 along random
    /// orthonormal directions) at x0 = 0.
    Measured,
    /// Closed form (derived Eq. 19).
    ClosedForm,
    /// Random matrix of Eq. 18.
    RandomMatrix,
}

impl Source {
    /// How the spectra were obtained, for a figure's title.
    fn describe(self) -> &'static str {
        match self {
            Self::Measured => "empirical score (improved NB, x0 = 0)",
            Self::ClosedForm => "closed form (Eq. 19, derived)",
            Self::RandomMatrix => "random matrix (Eq. 18)",
        }
    }
}

/// Settings of a spectra-against-N figure (Fig. 9, 10, 13, 14; `figure = "spectra-size"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// The data model.
    pub setup: Setup,
    /// What produces the spectra.
    pub source: Source,
    /// Training-set sizes, increasing (nested subsets of one draw).
    pub sizes: Vec<usize>,
    /// The times of the panels.
    pub times: Vec<f64>,
    /// Independent draws of the data (or of the random matrix); the closed form uses 1.
    pub realizations: usize,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        self.setup.check()?;
        let sizes_ok = !self.sizes.is_empty() && self.sizes[0] >= 2 && self.sizes.windows(2).all(|w| w[0] < w[1]);
        anyhow::ensure!(sizes_ok, "{}: sizes must increase from >= 2", self.name);
        let times_ok = !self.times.is_empty() && self.times.iter().all(|t| t.is_finite() && *t > 0.0);
        anyhow::ensure!(times_ok, "{}: times must be finite and > 0", self.name);
        anyhow::ensure!(self.realizations >= 1, "{}: realizations >= 1", self.name);
        Ok(())
    }
}

#[derive(Serialize)]
struct Config<'a> {
    settings: &'a Settings,
    realizations_used: usize,
    method: &'a str,
}

/// Normalised spectra at x0 = 0: `acc[time][size]` holds one spectrum per realisation; and
/// for measured spectra `signs[time][size]`, per realisation, the repulsive directions
/// (λ > 0) of the empirical score's Jacobian: in all, and above each marked gap.
type Computed = (Vec<Vec<Vec<Vec<f64>>>>, Vec<Vec<Vec<[usize; 4]>>>);

fn compute(
    setup: &Setup,
    source: Source,
    sizes: &[usize],
    times: &[f64],
    reps: usize,
    base_seed: u64,
    name: &str,
) -> Result<Computed> {
    let d = setup.d;
    let lm = setup.manifold();
    let sigma2 = lm.principal_variances();
    let x0 = vec![0.0; d];
    let nmax = *sizes.last().expect("sizes");
    // acc[ti][ni] = list of normalised spectra over realisations
    let mut acc: Vec<Vec<Vec<Vec<f64>>>> = vec![vec![Vec::new(); sizes.len()]; times.len()];
    let mut signs: Vec<Vec<Vec<[usize; 4]>>> = vec![vec![Vec::new(); sizes.len()]; times.len()];
    let marks = setup.gap_positions().map(|p| p.0);
    let pb = bar((reps * sizes.len()) as u64, name);
    for r in 0..reps {
        let seed = base_seed + 100 * r as u64;
        let (data, subsets) = match source {
            Source::Measured => (Some(lm.sample(nmax, seed)), Some(NestedSubsets::new(nmax, seed + 1))),
            _ => (None, None),
        };
        for (ni, &n) in sizes.iter().enumerate() {
            let field = match (&data, &subsets) {
                (Some(data), Some(sub)) => Some(EmpiricalScore::new(sub.subset(data.as_ref(), n)?)?),
                _ => None,
            };
            let model = EmpiricalJacobianModel::new(&sigma2, n as f64)?;
            for (ti, &t) in times.iter().enumerate() {
                let s = match source {
                    Source::Measured => spectrum(
                        field.as_ref().expect("measured"),
                        &x0,
                        t,
                        &SpectrumParams::improved_normal_bundle(seed + 2),
                    )?
                    .into_values(),
                    Source::ClosedForm => model.closed_form_spectrum(t, ClosedForm::Derived)?,
                    Source::RandomMatrix => model.sample_spectrum(t, seed + 3 + ni as u64)?,
                };
                acc[ti][ni].push(normalize(&s));
                if let Some(f) = &field {
                    let j = f.jacobian(&x0, t)?.ok_or_else(|| anyhow::anyhow!("the empirical score has a Jacobian"))?;
                    let ev = signed_spectrum(j.as_ref())?;
                    let above = |k: usize| sign_split(&ev, k).map(|x| x.repulsive_above);
                    let total = ev.iter().filter(|v| **v > 0.0).count();
                    signs[ti][ni].push([total, above(marks[0])?, above(marks[1])?, above(marks[2])?]);
                }
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok((acc, signs))
}

/// `signs.csv` and a table: the mean number of repulsive directions of the empirical
/// score's Jacobian at x0 = 0 (in all / above d - m / d - m2 / d - m1) per t and N.
fn sign_table(mut w: csv::Writer<std::fs::File>, signs: &[Vec<Vec<[usize; 4]>>], st: &Settings) -> Result<String> {
    let pos = st.setup.gap_positions();
    let mut s = format!("\nRepulsive directions (λ > 0) of the empirical score's Jacobian at x0 = 0, mean over realisations: in all / above {} / above {} / above {} (`signs.csv`):\n\n", pos[0].0, pos[1].0, pos[2].0);
    writeln!(s, "| t | {} |", st.sizes.iter().map(|n| format!("N = {n}")).collect::<Vec<_>>().join(" | "))?;
    writeln!(s, "|---|{}", "---|".repeat(st.sizes.len()))?;
    for (per_n, &t) in signs.iter().zip(&st.times) {
        let mut row = format!("| {t} |");
        for (reps, &n) in per_n.iter().zip(&st.sizes) {
            for (r, c) in reps.iter().enumerate() {
                let cols = [t.to_string(), n.to_string(), r.to_string()];
                w.write_record(cols.iter().cloned().chain(c.iter().map(|v| v.to_string())))?;
            }
            let mean = |k: usize| reps.iter().map(|c| c[k] as f64).sum::<f64>() / reps.len().max(1) as f64;
            write!(row, " {:.1} / {:.1} / {:.1} / {:.1} |", mean(0), mean(1), mean(2), mean(3))?;
        }
        writeln!(s, "{row}")?;
    }
    w.flush()?;
    Ok(s)
}

/// Runs one spectra-vs-N figure and returns the lines of its summary.
pub fn run(st: &Settings, root: &Path) -> Result<String> {
    st.check()?;
    let (name, setup, source, sizes, times) = (st.name.as_str(), &st.setup, st.source, &st.sizes, &st.times);
    let dir = FigureDir::new(root, name)?;
    let reps = match source {
        Source::ClosedForm => 1,
        _ => st.realizations,
    };
    dir.write_json(
        "config.json",
        &Config {
            settings: st,
            realizations_used: reps,
            method: "improved NB: forward differences of step sqrt(t) along random orthonormal directions, x0 = 0",
        },
    )?;
    let (acc, signs) = compute(setup, source, sizes, times, reps, st.seed, name)?;
    let mut w = dir.csv("spectra.csv", &["t", "n", "index", "mean_normalized_singular_value"])?;
    let mut g = dir.csv(
        "gaps.csv",
        &["t", "n", "largest_log_gap_position", "log_gap_manifold", "log_gap_low_var", "log_gap_high_var"],
    )?;
    let mut summary = String::new();
    let pos = setup.gap_positions();
    writeln!(summary, "## {name}: spectra against N ({}, {source:?}, {reps} realisation(s))\n", setup.label())?;
    writeln!(summary, "Open gaps among the marked positions ({} = {}, {} = {}, {} = {}; open = the mean spectrum jumps by >= 25%), then the position of the largest log gap in brackets:\n", pos[0].1, pos[0].0, pos[1].1, pos[1].0, pos[2].1, pos[2].0)?;
    writeln!(summary, "| t | {} |", sizes.iter().map(|n| format!("N = {n}")).collect::<Vec<_>>().join(" | "))?;
    writeln!(summary, "|---|{}", "---|".repeat(sizes.len()))?;
    let mut panels = Vec::new();
    let bar = ColorBar::log_over("N", sizes.iter().map(|&n| n as f64)).up_to(0.9);
    for (ti, &t) in times.iter().enumerate() {
        let mut row = format!("| {t} |");
        let mut series = Vec::new();
        for (ni, &n) in sizes.iter().enumerate() {
            let m = mean_of(&acc[ti][ni]);
            for (i, v) in m.iter().enumerate() {
                w.write_record([format!("{t}"), n.to_string(), (i + 1).to_string(), format!("{v:e}")])?;
            }
            let (k, gl) = gap_stats(&m, setup)?;
            g.write_record([
                format!("{t}"),
                n.to_string(),
                k.to_string(),
                format!("{:.4}", gl[0]),
                format!("{:.4}", gl[1]),
                format!("{:.4}", gl[2]),
            ])?;
            let open: Vec<String> = (0..3).filter(|&j| gl[j] >= OPEN_LOG_GAP).map(|j| pos[j].0.to_string()).collect();
            write!(row, " {} ({k}) |", if open.is_empty() { "none".to_string() } else { open.join(", ") })?;
            series.push(Series::line(
                m.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect(),
                bar.color(n as f64),
            ));
        }
        writeln!(summary, "{row}")?;
        panels.push(Panel {
            title: format!("t = {t}"),
            x_label: "index k".into(),
            y_label: "s_k / s_1".into(),
            log_y: true,
            series,
            vlines: setup.vlines(),
            ..Panel::default()
        });
    }
    w.flush()?;
    g.flush()?;
    match source {
        Source::Measured => {
            let head = ["t", "n", "realization", "repulsive", "above_manifold", "above_low_var", "above_high_var"];
            summary.push_str(&sign_table(dir.csv("signs.csv", &head)?, &signs, st)?);
        }
        Source::ClosedForm => summary.push_str("\nSigns: none; the closed form gives magnitudes only.\n"),
        Source::RandomMatrix => summary.push_str(
            "\nSigns: none; the random matrix of Eq. 18 is not symmetric (independent entries), and its mean is attractive.\n",
        ),
    }
    Figure::new(format!("{name}: {}, {}", setup.label(), source.describe()), 2)
        .colorbar(bar)
        .save(&dir.path("spectra"), &panels)?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
