//! Fig. 8: exact condensation time against the large-t closed form as α varies (left), and
//! the exact t_c against ω²(x) for random positions (right). d = 100, m = 50, positions
//! x ~ N(0, I). The paper draws F with i.i.d. N(0, 1) entries; the second row repeats the
//! figure with N(0, 1/m) entries, where r₄ and ω² are of the same order.

use super::common::LogGrid;
use crate::out::{bar, FigureDir};
use crate::plot::{palette, save_panels, Panel, Series};
use anyhow::{anyhow, Result};
use faer::{Mat, Side};
use geomem_data::gaussian_matrix;
use geomem_rem::{omega2, r4, PositionalRem};
use std::fmt::Write;
use std::path::Path;

type Csv = csv::Writer<std::fs::File>;

/// Settings of Fig. 8 (`figure = "condensation"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// Ambient dimension.
    pub d: usize,
    /// Columns of the factor F (latent dimension).
    pub m: usize,
    /// The α of the left panels.
    pub alphas: LogGrid,
    /// The α of the right panels.
    pub alpha_right: f64,
    /// Random positions of the right panels.
    pub positions: usize,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(self.m >= 1 && self.m <= self.d, "{}: need 1 <= m <= d", self.name);
        self.alphas.check("alphas")?;
        let ok = self.alpha_right.is_finite() && self.alpha_right > 0.0 && self.positions >= 2;
        anyhow::ensure!(ok, "{}: alpha_right > 0 and positions >= 2", self.name);
        Ok(())
    }
}

/// Variances of `F Fᵀ` (F: `d × m`, entries `N(0, fscale²)`) and its eigenvectors.
fn spectrum_of_factor(d: usize, m: usize, fscale: f64, seed: u64) -> Result<(Vec<f64>, Mat<f64>)> {
    let mut f = gaussian_matrix(d, m, seed);
    for j in 0..m {
        for i in 0..d {
            f[(i, j)] *= fscale;
        }
    }
    let cov = f.as_ref() * f.transpose();
    let evd = cov.self_adjoint_eigen(Side::Lower).map_err(|_| anyhow!("eigendecomposition failed"))?;
    let sigma2: Vec<f64> = (0..d).map(|k| evd.S().column_vector()[k].max(0.0)).collect();
    Ok((sigma2, evd.U().to_owned()))
}

/// Coordinates of row `row` of `x` in the eigenbasis `u` (Supp. C works there).
fn rotate(u: &Mat<f64>, x: &Mat<f64>, row: usize) -> Vec<f64> {
    (0..u.nrows()).map(|k| (0..u.nrows()).map(|i| u[(i, k)] * x[(row, i)]).sum()).collect()
}

/// Left panel: exact, Eq. 15 and Eq. 34 t_c against α at one position.
fn alpha_sweep(sigma2: &[f64], x0: &[f64], alphas: &[f64], label: &str, wa: &mut Csv) -> Result<(String, Panel)> {
    let (mut ex, mut ap, mut pr) = (Vec::new(), Vec::new(), Vec::new());
    for &a in alphas {
        let rem = PositionalRem::new(sigma2, x0, a)?;
        let v = [rem.condensation_time(), rem.condensation_time_large_t(), rem.condensation_time_eq34_as_printed()];
        wa.write_record([
            label.to_string(),
            format!("{a:e}"),
            format!("{:e}", v[0]),
            format!("{:e}", v[1]),
            format!("{:e}", v[2]),
        ])?;
        ex.push((a, v[0]));
        ap.push((a, v[1]));
        pr.push((a, v[2]));
    }
    let mut summary = format!(
        "### F entries {label} (r₄ = {:.4})\n\n| α | exact t_c | Eq. 15 / exact | Eq. 34 as printed / exact |\n|---|---|---|---|\n",
        r4(sigma2)
    );
    for i in [0, 13, 26, 39] {
        let (a, e) = (alphas[i], ex[i].1);
        writeln!(summary, "| {a:.3e} | {e:.4e} | {:.3} | {:.3} |", ap[i].1 / e, pr[i].1 / e)?;
    }
    let panel = Panel {
        title: format!("t_c against α, F ~ {label}"),
        x_label: "α = ln N / d".into(),
        y_label: "t_c".into(),
        log_x: true,
        log_y: true,
        series: vec![
            Series::line(ex, palette(0)).labeled("exact (Supp. C)"),
            Series::line(ap, palette(1)).labeled("Eq. 15").dashed(),
            Series::line(pr, palette(3)).labeled("Eq. 34 as printed").dashed(),
        ],
        ..Panel::default()
    };
    Ok((summary, panel))
}

/// Right panels: exact and Eq. 15 t_c against ω²(x) over random positions.
fn position_sweep(
    sigma2: &[f64],
    u: &Mat<f64>,
    xs: &Mat<f64>,
    alpha: f64,
    label: &str,
    wo: &mut Csv,
) -> Result<(String, [Panel; 2])> {
    let npos = xs.nrows();
    let (mut pts, mut line, mut ratio) = (Vec::new(), Vec::new(), 0.0);
    let pb = bar(npos as u64, "fig8 positions");
    for r in 0..npos {
        let xr = rotate(u, xs, r);
        let rem = PositionalRem::new(sigma2, &xr, alpha)?;
        let w2 = omega2(sigma2, &xr);
        let (te, ta) = (rem.condensation_time(), rem.condensation_time_large_t());
        wo.write_record([label.to_string(), format!("{w2:e}"), format!("{te:e}"), format!("{ta:e}")])?;
        pts.push((w2, te));
        line.push((w2, ta));
        ratio += ta / te / npos as f64;
        pb.inc(1);
    }
    pb.finish_and_clear();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lo, hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let summary = format!(
        "\nα = {alpha}, {npos} positions: Pearson correlation of exact t_c with ω²(x) = {:.4}; exact t_c spans [{lo:.4}, {hi:.4}] (max/min = {:.3}); mean Eq. 15 / exact = {ratio:.3}.\n\n",
        pearson(&pts),
        hi / lo
    );
    let scatter = Panel {
        title: format!("exact t_c against ω²(x), α = {alpha}"),
        x_label: "ω²(x)".into(),
        y_label: "exact t_c".into(),
        series: vec![Series::line(pts, palette(0)).labeled("exact").scatter()],
        ..Panel::default()
    };
    let closed = Panel {
        title: format!("Eq. 15 t_c against ω²(x), α = {alpha}"),
        x_label: "ω²(x)".into(),
        y_label: "Eq. 15 t_c".into(),
        series: vec![Series::line(line, palette(1)).labeled("Eq. 15")],
        ..Panel::default()
    };
    Ok((summary, [scatter, closed]))
}

pub fn run(st: &Settings, root: &Path) -> Result<String> {
    st.check()?;
    let dir = FigureDir::new(root, &st.name)?;
    let (d, m, alpha, npos, seed) = (st.d, st.m, st.alpha_right, st.positions, st.seed);
    let alphas = st.alphas.values();
    dir.write_json(
        "config.json",
        &serde_json::json!({ "settings": st, "alphas": alphas, "f_scalings": ["N(0,1)", "N(0,1/m)"] }),
    )?;
    let mut summary = format!("## fig8: condensation time, d = {d}, m = {m}\n\n");
    let mut panels = Vec::new();
    let mut wa = dir.csv("tc_vs_alpha.csv", &["f_entries", "alpha", "tc_exact", "tc_eq15", "tc_eq34_as_printed"])?;
    let mut wo = dir.csv("tc_vs_omega2.csv", &["f_entries", "omega2", "tc_exact", "tc_eq15"])?;
    for (label, fscale) in [("N(0,1)", 1.0), ("N(0,1/m)", 1.0 / (m as f64).sqrt())] {
        let (sigma2, u) = spectrum_of_factor(d, m, fscale, seed)?;
        let x0 = rotate(&u, &gaussian_matrix(1, d, seed + 1), 0);
        let (s1, p1) = alpha_sweep(&sigma2, &x0, &alphas, label, &mut wa)?;
        let xs = gaussian_matrix(npos, d, seed + 2);
        let (s2, p2) = position_sweep(&sigma2, &u, &xs, alpha, label, &mut wo)?;
        summary.push_str(&s1);
        summary.push_str(&s2);
        panels.push(p1);
        panels.extend(p2);
    }
    wa.flush()?;
    wo.flush()?;
    save_panels(
        &dir.path("condensation"),
        "fig8: positional condensation time (d = 100, m = 50); top F ~ N(0,1), bottom F ~ N(0,1/m)",
        &panels,
        3,
    )?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}

fn pearson(p: &[(f64, f64)]) -> f64 {
    let n = p.len() as f64;
    let (mx, my) = (p.iter().map(|a| a.0).sum::<f64>() / n, p.iter().map(|a| a.1).sum::<f64>() / n);
    let cov: f64 = p.iter().map(|a| (a.0 - mx) * (a.1 - my)).sum();
    let vx: f64 = p.iter().map(|a| (a.0 - mx).powi(2)).sum();
    let vy: f64 = p.iter().map(|a| (a.1 - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}
