//! Fig. 4 (= Fig. 11 of the supplement) and Fig. 12: ordered singular values of the
//! empirical-score Jacobian against the diffusion time, from the closed form (Eq. 19), the
//! random-matrix model (Eq. 18) and the measured empirical score (Normal Bundle, Alg. 2),
//! next to the exact score and the two printed closed forms.

use super::common::{fmt_intervals, gap_stats, intervals, mean_of, normalize, Scale, Setup};
use crate::out::{bar, logspace, FigureDir};
use crate::plot::{save_panels, viridis, Panel, Series};
use anyhow::Result;
use geomem_rem::{exact_spectrum, ClosedForm, EmpiricalJacobianModel};
use geomem_score::EmpiricalScore;
use geomem_spectral::{normal_bundle_spectrum, NormalBundleParams};
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

#[derive(Serialize)]
struct Config<'a> {
    figure: &'a str,
    setup: &'a Setup,
    n: usize,
    times: &'a [f64],
    normal_bundle_k: usize,
    normal_bundle_variant: &'a str,
    random_matrix_draws: usize,
    point: &'a str,
    scale: Scale,
}

const METHODS: [&str; 6] = ["closed_form_derived", "random_matrix_eq18", "empirical_normal_bundle", "closed_form_eq19_as_printed", "closed_form_eq43_as_printed", "exact_score"];
const TITLES: [&str; 6] = [
    "Eq. 19 (derived form)",
    "random matrix, Eq. 18",
    "empirical score, NB Alg. 2",
    "Eq. 19 as printed",
    "Eq. 43 as printed",
    "exact score (Eq. 8)",
];

/// Runs one spectra-vs-time figure and returns the lines of its summary.
pub fn run(name: &str, setup: &Setup, scale: Scale, root: &Path) -> Result<String> {
    let dir = FigureDir::new(root, name)?;
    let n = 1000;
    let times = logspace(1e-3, 10.0, if scale.full { 60 } else { 30 });
    let draws = if scale.full { 30 } else { 8 };
    let d = setup.d;
    let lm = setup.manifold();
    let sigma2 = lm.principal_variances();
    let field = EmpiricalScore::new(lm.sample(n, scale.seed))?;
    let model = EmpiricalJacobianModel::new(&sigma2, n as f64)?;
    let nb = NormalBundleParams::default().seed(scale.seed + 1);
    dir.write_json("config.json", &Config { figure: name, setup, n, times: &times, normal_bundle_k: 4 * d, normal_bundle_variant: "central difference (Alg. 2)", random_matrix_draws: draws, point: "x0 = 0", scale })?;

    let x0 = vec![0.0; d];
    let mut spectra: Vec<Vec<Vec<f64>>> = vec![Vec::new(); METHODS.len()];
    let pb = bar(times.len() as u64, name);
    for &t in &times {
        let rm: Vec<Vec<f64>> = (0..draws).map(|k| model.sample_spectrum(t, scale.seed * 1000 + k as u64)).collect::<Result<_, _>>()?;
        let all = [
            model.closed_form_spectrum(t, ClosedForm::Derived)?,
            mean_of(&rm.iter().map(|s| normalize(s)).collect::<Vec<_>>()),
            normal_bundle_spectrum(&field, &x0, t, &nb)?,
            model.closed_form_spectrum(t, ClosedForm::Eq19AsPrinted)?,
            model.closed_form_spectrum(t, ClosedForm::Eq43AsPrinted)?,
            exact_spectrum(&sigma2, t)?,
        ];
        for (m, s) in all.into_iter().enumerate() {
            spectra[m].push(normalize(&s));
        }
        pb.inc(1);
    }
    pb.finish_and_clear();

    let mut w = dir.csv("spectra.csv", &["method", "t", "index", "normalized_singular_value"])?;
    for (m, per_t) in spectra.iter().enumerate() {
        for (ti, s) in per_t.iter().enumerate() {
            for (i, v) in s.iter().enumerate() {
                w.write_record([METHODS[m].to_string(), format!("{:e}", times[ti]), (i + 1).to_string(), format!("{v:e}")])?;
            }
        }
    }
    w.flush()?;

    let mut g = dir.csv("gaps.csv", &["method", "t", "largest_log_gap_position", "log_gap_manifold", "log_gap_low_var", "log_gap_high_var"])?;
    let mut summary = String::new();
    let pos = setup.gap_positions();
    writeln!(summary, "## {name}: spectra against t ({}, N = {n})\n", setup.label())?;
    writeln!(summary, "Largest log-gap position against t (marked positions: {} = {}, {} = {}, {} = {}):\n", pos[0].1, pos[0].0, pos[1].1, pos[1].0, pos[2].1, pos[2].0)?;
    for (m, per_t) in spectra.iter().enumerate() {
        let mut argmax = Vec::new();
        for (ti, s) in per_t.iter().enumerate() {
            let (k, gl) = gap_stats(s, setup);
            argmax.push(k);
            g.write_record([METHODS[m].to_string(), format!("{:e}", times[ti]), k.to_string(), format!("{:.4}", gl[0]), format!("{:.4}", gl[1]), format!("{:.4}", gl[2])])?;
        }
        let mut line = format!("- **{}**:", METHODS[m]);
        for (p, label) in pos {
            write!(line, " gap at {p} ({label}) largest for t ∈ {};", fmt_intervals(&intervals(&times, &argmax, p)))?;
        }
        let others: Vec<usize> = argmax.iter().copied().filter(|k| pos.iter().all(|(p, _)| p != k)).collect();
        if !others.is_empty() {
            let mut o = others.clone();
            o.sort_unstable();
            o.dedup();
            write!(line, " elsewhere ({o:?}) at {} of {} times", others.len(), times.len())?;
        }
        writeln!(summary, "{line}")?;
    }
    g.flush()?;

    let tmin = times[0].ln();
    let tmax = times[times.len() - 1].ln();
    let panels: Vec<Panel> = spectra
        .iter()
        .enumerate()
        .map(|(m, per_t)| Panel {
            title: TITLES[m].into(),
            x_label: "index k".into(),
            y_label: "s_k / s_1".into(),
            log_y: true,
            series: per_t
                .iter()
                .zip(&times)
                .map(|(s, &t)| Series::line(s.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect(), viridis((t.ln() - tmin) / (tmax - tmin))))
                .collect(),
            vlines: setup.vlines(),
            ..Panel::default()
        })
        .collect();
    save_panels(&dir.path("spectra"), &format!("{name}: {} , N = {n}; colour: t from 1e-3 (dark) to 10 (light)", setup.label()), &panels, 3)?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
