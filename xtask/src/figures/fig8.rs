//! Fig. 8: exact condensation time against the large-t closed form as α varies (left), and
//! the exact t_c against ω²(x) for random positions (right). d = 100, m = 50, F with i.i.d.
//! N(0, 1) entries, positions x ~ N(0, I).

use super::common::Scale;
use crate::out::{bar, logspace, FigureDir};
use crate::plot::{palette, save_panels, Panel, Series};
use anyhow::{anyhow, Result};
use faer::{Mat, Side};
use geomem_data::gaussian_matrix;
use geomem_rem::{omega2, PositionalRem};
use std::fmt::Write;
use std::path::Path;

pub fn run(scale: Scale, root: &Path) -> Result<String> {
    let dir = FigureDir::new(root, "fig8")?;
    let (d, m) = (100, 50);
    let f = gaussian_matrix(d, m, scale.seed);
    let cov = f.as_ref() * f.transpose();
    let evd = cov.self_adjoint_eigen(Side::Lower).map_err(|_| anyhow!("eigendecomposition failed"))?;
    let sigma2: Vec<f64> = (0..d).map(|k| evd.S().column_vector()[k].max(0.0)).collect();
    let u = evd.U().to_owned();
    let rotate = |x: &Mat<f64>, row: usize| -> Vec<f64> { (0..d).map(|k| (0..d).map(|i| u[(i, k)] * x[(row, i)]).sum()).collect() };
    let x = gaussian_matrix(1, d, scale.seed + 1);
    let x0 = rotate(&x, 0);
    let alphas = logspace(1e-3, 2.0, 40);
    dir.write_json("config.json", &serde_json::json!({ "d": d, "m": m, "alphas": alphas, "alpha_right": 0.15, "positions": if scale.full { 2000 } else { 500 }, "seed": scale.seed }))?;
    let mut w = dir.csv("tc_vs_alpha.csv", &["alpha", "tc_exact", "tc_eq15", "tc_eq34_as_printed"])?;
    let (mut ex, mut ap, mut pr) = (Vec::new(), Vec::new(), Vec::new());
    for &a in &alphas {
        let rem = PositionalRem::new(&sigma2, &x0, a)?;
        let v = [rem.condensation_time(), rem.condensation_time_large_t(), rem.condensation_time_eq34_as_printed()];
        w.write_record([a, v[0], v[1], v[2]].map(|v| format!("{v:e}")))?;
        ex.push((a, v[0]));
        ap.push((a, v[1]));
        pr.push((a, v[2]));
    }
    w.flush()?;
    let mut summary = format!("## fig8: condensation time, d = {d}, m = {m}\n\nRatio Eq. 15 / exact and Eq. 34 (as printed) / exact:\n\n| α | exact t_c | Eq. 15 / exact | Eq. 34 / exact |\n|---|---|---|---|\n");
    for i in [0, 13, 26, 39] {
        writeln!(summary, "| {:.3e} | {:.4} | {:.3} | {:.3} |", alphas[i], ex[i].1, ap[i].1 / ex[i].1, pr[i].1 / ex[i].1)?;
    }
    // Right panel: random positions at α = 0.15.
    let npos = if scale.full { 2000 } else { 500 };
    let xs = gaussian_matrix(npos, d, scale.seed + 2);
    let alpha = 0.15;
    let mut w = dir.csv("tc_vs_omega2.csv", &["omega2", "tc_exact", "tc_eq15"])?;
    let (mut pts, mut line, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let pb = bar(npos as u64, "fig8 positions");
    for r in 0..npos {
        let xr = rotate(&xs, r);
        let rem = PositionalRem::new(&sigma2, &xr, alpha)?;
        let w2 = omega2(&sigma2, &xr);
        let (te, ta) = (rem.condensation_time(), rem.condensation_time_large_t());
        w.write_record([w2, te, ta].map(|v| format!("{v:e}")))?;
        pts.push((w2, te));
        ratios.push(ta / te);
        line.push((w2, ta));
        pb.inc(1);
    }
    pb.finish_and_clear();
    w.flush()?;
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    let corr = pearson(&pts);
    let mean_ratio = pts.iter().zip(&ratios).map(|(_, r)| r).sum::<f64>() / npos as f64;
    writeln!(summary, "\nRight panel (α = {alpha}, {npos} positions): Pearson correlation of exact t_c with ω²(x) = {corr:.4}; mean Eq. 15 / exact = {mean_ratio:.3}.")?;
    let panels = vec![
        Panel {
            title: "t_c against α (one x, one F)".into(),
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
        },
        Panel {
            title: format!("t_c against ω²(x), α = {alpha}"),
            x_label: "ω²(x)".into(),
            y_label: "t_c".into(),
            series: vec![Series::line(pts, palette(0)).labeled("exact").scatter(), Series::line(line, palette(1)).labeled("Eq. 15")],
            ..Panel::default()
        },
    ];
    save_panels(&dir.path("condensation"), "fig8: positional condensation time (d = 100, m = 50)", &panels, 2)?;
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
