//! Fig. 4 (= Fig. 11 of the supplement) and Fig. 12: ordered singular values of the
//! empirical-score Jacobian against the diffusion time, from the closed form (Eq. 19), the
//! random-matrix model (Eq. 18) and the measured empirical score (improved Normal Bundle,
//! NB Alg. 2 and the analytic Jacobian), each theory with the exact and the Eq. 15
//! condensation time, next to the exact score and the printed Eq. 19. The printed Eq. 43 is
//! in the CSV only.

use super::common::{gap_stats, LogGrid, Setup};
use crate::out::{bar, FigureDir};
use crate::plot::{ColorBar, Figure, Panel, Series};
use anyhow::Result;
use geomem_rem::{exact_spectrum, ClosedForm, CondensationMethod, EmpiricalJacobianModel};
use geomem_score::{EmpiricalScore, ScoreFieldExt};
use geomem_spectral::{
    format_intervals as fmt_intervals, intervals_where as intervals, mean_spectrum as mean_of, normalize, OPEN_LOG_GAP,
};
use geomem_spectral::{normal_bundle_spectrum, spectrum, NormalBundleParams, SpectrumParams};
use geomem_spectral::{sign_split, signed_spectrum};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// Settings of a spectra-against-t figure (Fig. 4, 12; `figure = "spectra-time"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// The data model.
    pub setup: Setup,
    /// Training-set size.
    pub n: usize,
    /// Base grid of t (refined by 9 points within ±10 % of every onset of φ).
    pub times: LogGrid,
    /// Draws of the random matrix per t.
    pub draws: usize,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        self.setup.check()?;
        self.times.check("times")?;
        anyhow::ensure!(self.n >= 2 && self.draws >= 1, "{}: n >= 2 and draws >= 1", self.name);
        Ok(())
    }
}

#[derive(Serialize)]
struct Config<'a> {
    settings: &'a Settings,
    times: &'a [f64],
    normal_bundle_k: usize,
    normal_bundle_variant: &'a str,
    point: &'a str,
}

const METHODS: [&str; 9] = [
    "closed_form_derived",
    "closed_form_derived_eq15_tc",
    "random_matrix_eq18",
    "empirical_improved_nb",
    "empirical_normal_bundle_alg2",
    "empirical_analytic_jacobian",
    "closed_form_eq19_as_printed",
    "random_matrix_eq18_eq15_tc",
    "exact_score",
];
const TITLES: [&str; 9] = [
    "Eq. 19, derived form, exact t_c",
    "Eq. 19, derived form, Eq. 15 t_c",
    "random matrix Eq. 18, exact t_c",
    "empirical score: improved NB (Eq. 5)",
    "empirical score: NB Alg. 2, K = 4d",
    "empirical score: analytic Jacobian",
    "Eq. 19 as printed, exact t_c",
    "random matrix Eq. 18, Eq. 15 t_c",
    "exact score (Eq. 8)",
];

type Csv = csv::Writer<std::fs::File>;

/// The nine spectra of [`METHODS`] at x0 = 0 for every time, normalised:
/// `spectra[method][time]`; and the signed eigenvalues (times t) of the empirical score's
/// Jacobian at x0 = 0, by decreasing |λ|, one list per time.
type Computed = (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>);

fn compute(setup: &Setup, n: usize, times: &[f64], draws: usize, seed: u64, name: &str) -> Result<Computed> {
    let d = setup.d;
    let lm = setup.manifold();
    let sigma2 = lm.principal_variances();
    let field = EmpiricalScore::new(lm.sample(n, seed))?;
    let model = EmpiricalJacobianModel::new(&sigma2, n as f64)?;
    let model15 = model.clone().with_condensation(CondensationMethod::LargeT);
    let nb = NormalBundleParams::default().seed(seed + 1);
    let inb = SpectrumParams::improved_normal_bundle(seed + 2);
    let x0 = vec![0.0; d];
    let mut spectra: Vec<Vec<Vec<f64>>> = vec![Vec::new(); METHODS.len()];
    let mut signed = Vec::with_capacity(times.len());
    let pb = bar(times.len() as u64, name);
    for &t in times {
        let j = field.jacobian(&x0, t)?.ok_or_else(|| anyhow::anyhow!("the empirical score has a Jacobian"))?;
        signed.push(signed_spectrum(j.as_ref())?.into_iter().map(|v| v * t).collect());
        let rm = |m: &EmpiricalJacobianModel| -> Result<Vec<f64>> {
            let draws: Vec<Vec<f64>> = (0..draws)
                .map(|k| m.sample_spectrum(t, seed * 1000 + k as u64).map(|s| normalize(&s)))
                .collect::<Result<_, _>>()?;
            Ok(mean_of(&draws))
        };
        let all = [
            model.closed_form_spectrum(t, ClosedForm::Derived)?,
            model15.closed_form_spectrum(t, ClosedForm::Derived)?,
            rm(&model)?,
            spectrum(&field, &x0, t, &inb)?.into_values(),
            normal_bundle_spectrum(&field, &x0, t, &nb)?,
            field.jacobian_spectrum(&x0, t)?,
            model.closed_form_spectrum(t, ClosedForm::Eq19AsPrinted)?,
            rm(&model15)?,
            exact_spectrum(&sigma2, t)?,
        ];
        for (m, s) in all.into_iter().enumerate() {
            spectra[m].push(normalize(&s));
        }
        pb.inc(1);
    }
    pb.finish_and_clear();

    Ok((spectra, signed))
}

/// `signed.csv` and the summary line of the signs: where the empirical score's Jacobian at
/// x0 = 0 has repulsive directions (λ > 0), and how many sit above each marked gap at the
/// times where that gap is open in its analytic singular values.
fn sign_summary(
    mut w: Csv,
    signed: &[Vec<f64>],
    analytic: &[Vec<f64>],
    times: &[f64],
    setup: &Setup,
) -> Result<String> {
    let pos = setup.gap_positions();
    let (mut any, mut max) = (Vec::with_capacity(times.len()), 0);
    let mut above = [0usize; 3];
    let mut separated = [(0usize, 0usize); 3];
    for ((ev, s), &t) in signed.iter().zip(analytic).zip(times) {
        for (i, v) in ev.iter().enumerate() {
            w.write_record([format!("{t:e}"), (i + 1).to_string(), format!("{v:e}")])?;
        }
        let count = ev.iter().filter(|v| **v > 0.0).count();
        any.push(usize::from(count > 0));
        max = max.max(count);
        let (_, gl) = gap_stats(s, setup)?;
        for j in 0..3 {
            if gl[j] >= OPEN_LOG_GAP {
                let split = sign_split(ev, pos[j].0)?;
                above[j] = above[j].max(split.repulsive_above);
                separated[j].1 += 1;
                separated[j].0 += usize::from(split.repulsive_above == 0);
            }
        }
    }
    w.flush()?;
    let mut line = format!(
        "- **signs** (signed eigenvalues of the empirical score's Jacobian at x0 = 0, `signed.csv`): repulsive directions (λ > 0) at t in {} (at most {max});",
        fmt_intervals(&intervals(times, &any, 1))
    );
    for j in 0..3 {
        write!(
            line,
            " where {} is open in the analytic spectrum, every direction above it is attractive at {} of {} times (at most {} repulsive);",
            pos[j].0, separated[j].0, separated[j].1, above[j]
        )?;
    }
    Ok(line + "\n")
}

/// `spectra.csv`: one row per (method, t, index).
fn write_spectra(mut w: Csv, spectra: &[Vec<Vec<f64>>], times: &[f64]) -> Result<()> {
    for (m, per_t) in spectra.iter().enumerate() {
        for (ti, s) in per_t.iter().enumerate() {
            for (i, v) in s.iter().enumerate() {
                w.write_record([
                    METHODS[m].to_string(),
                    format!("{:e}", times[ti]),
                    (i + 1).to_string(),
                    format!("{v:e}"),
                ])?;
            }
        }
    }
    w.flush()?;

    Ok(())
}

/// `gaps.csv` and the summary lines: where each marked gap is open and where it is the largest.
fn gap_summary(
    mut g: Csv,
    spectra: &[Vec<Vec<f64>>],
    times: &[f64],
    setup: &Setup,
    name: &str,
    n: usize,
) -> Result<String> {
    let mut summary = String::new();
    let pos = setup.gap_positions();
    writeln!(summary, "## {name}: spectra against t ({}, N = {n})\n", setup.label())?;
    writeln!(summary, "For each method: the t-intervals where the gap at each marked position is open (spectrum jumps by >= 25% across it), then where it is the largest log gap. Marked positions: {} = {}, {} = {}, {} = {}.\n", pos[0].1, pos[0].0, pos[1].1, pos[1].0, pos[2].1, pos[2].0)?;
    for (m, per_t) in spectra.iter().enumerate() {
        let mut argmax = Vec::new();
        let mut open: [Vec<usize>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for (ti, s) in per_t.iter().enumerate() {
            let (k, gl) = gap_stats(s, setup)?;
            argmax.push(k);
            for (j, o) in open.iter_mut().enumerate() {
                // Marker p where open, 0 otherwise, so `intervals` can reuse the same code.
                o.push(if gl[j] >= OPEN_LOG_GAP { pos[j].0 } else { 0 });
            }
            g.write_record([
                METHODS[m].to_string(),
                format!("{:e}", times[ti]),
                k.to_string(),
                format!("{:.4}", gl[0]),
                format!("{:.4}", gl[1]),
                format!("{:.4}", gl[2]),
            ])?;
        }
        let mut line = format!("- **{}**: open (jump >= 25%):", METHODS[m]);
        for (j, (p, _)) in pos.iter().enumerate() {
            write!(line, " {p}: {};", fmt_intervals(&intervals(times, &open[j], *p)))?;
        }
        write!(line, " largest:")?;
        for (p, _) in pos {
            write!(line, " {p}: {};", fmt_intervals(&intervals(times, &argmax, p)))?;
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

    Ok(summary)
}

/// One panel per method, one line per time coloured by `ln t`.
fn spectra_panels(spectra: &[Vec<Vec<f64>>], times: &[f64], bar: &ColorBar, setup: &Setup) -> Vec<Panel> {
    spectra
        .iter()
        .enumerate()
        .map(|(m, per_t)| Panel {
            title: TITLES[m].into(),
            x_label: "index k".into(),
            y_label: "s_k / s_1".into(),
            log_y: true,
            series: per_t
                .iter()
                .zip(times)
                .map(|(s, &t)| {
                    Series::line(s.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect(), bar.color(t))
                })
                .collect(),
            vlines: setup.vlines(),
            ..Panel::default()
        })
        .collect()
}

/// Runs one spectra-vs-time figure and returns the lines of its summary.
pub fn run(st: &Settings, root: &Path) -> Result<String> {
    st.check()?;
    let (name, setup, n) = (st.name.as_str(), &st.setup, st.n);
    let dir = FigureDir::new(root, name)?;
    // Refined within ±10 % of every onset of φ (exact and Eq. 15 t_c): a coarse grid steps
    // over gaps that open only there (Eq. 19 printed with Eq. 15's t_c opens 25 within a few
    // per cent of t_c(0)).
    let sigma2 = setup.manifold().principal_variances();
    let model = EmpiricalJacobianModel::new(&sigma2, n as f64)?;
    let mut onsets = model.onset_times()?;
    onsets.extend(model.with_condensation(CondensationMethod::LargeT).onset_times()?);
    let times = geomem_rem::refine_around(&st.times.values(), &onsets, 0.1, 9)?;
    dir.write_json("config.json", &Config { settings: st, times: &times, normal_bundle_k: 4 * setup.d, normal_bundle_variant: "improved NB (forward differences of step sqrt(t) along random orthonormal directions) and NB Alg. 2 (central difference)", point: "x0 = 0" })?;
    let (spectra, signed) = compute(setup, n, &times, st.draws, st.seed, name)?;
    write_spectra(dir.csv("spectra.csv", &["method", "t", "index", "normalized_singular_value"])?, &spectra, &times)?;
    let header = ["method", "t", "largest_log_gap_position", "log_gap_manifold", "log_gap_low_var", "log_gap_high_var"];
    let mut summary = gap_summary(dir.csv("gaps.csv", &header)?, &spectra, &times, setup, name, n)?;
    let analytic = METHODS.iter().position(|m| *m == "empirical_analytic_jacobian").map(|i| &spectra[i]);
    let analytic = analytic.ok_or_else(|| anyhow::anyhow!("METHODS lists the analytic Jacobian"))?;
    let signs = dir.csv("signed.csv", &["t", "index", "signed_eigenvalue_times_t"])?;
    summary.push_str(&sign_summary(signs, &signed, analytic, &times, setup)?);
    let bar = ColorBar::log_over("t", times.iter().copied());
    let panels = spectra_panels(&spectra, &times, &bar, setup);
    Figure::new(format!("{name}: {}, N = {n}", setup.label()), 3).colorbar(bar).save(&dir.path("spectra"), &panels)?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
