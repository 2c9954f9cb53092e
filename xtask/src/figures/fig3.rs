//! Fig. 3: the empirical score of a bivariate Gaussian sample with unequal variances at
//! β = 1/t = 1, 10, 100, over a heat map of the smoothed empirical density.

use crate::out::FigureDir;
use crate::plot::{save_fields, FieldPanel};
use anyhow::Result;
use faer::Mat;
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_score::{EmpiricalScore, ScoreFieldExt};
use std::fmt::Write;
use std::path::Path;

/// Settings of Fig. 3 (`figure = "score-field"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// Number of data points.
    pub n: usize,
    /// Variances of the two axes.
    pub variances: [f64; 2],
    /// The panels' β = 1/t.
    pub betas: Vec<f64>,
    /// Half-width of the square shown.
    pub lim: f64,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        let betas_ok = !self.betas.is_empty() && self.betas.iter().all(|b| b.is_finite() && *b > 0.0);
        let ok = self.n >= 1 && betas_ok && self.lim.is_finite() && self.lim > 0.0;
        anyhow::ensure!(ok, "{}: n >= 1, betas finite and > 0, lim > 0", self.name);
        Ok(())
    }
}

pub fn run(st: &Settings, root: &Path) -> Result<String> {
    st.check()?;
    let dir = FigureDir::new(root, &st.name)?;
    let (n, var) = (st.n, st.variances);
    let lm = LinearManifold::new(
        2,
        &[Block { dim: 1, variance: var[0] }, Block { dim: 1, variance: var[1] }],
        Embedding::Aligned,
    )?;
    let data = lm.sample(n, st.seed);
    let field = EmpiricalScore::new(data.clone())?;
    let (betas, lim) = (&st.betas, st.lim);
    let (heat_n, arrow_n) = (90, 17);
    dir.write_json("config.json", &serde_json::json!({ "n": n, "variances": var, "betas": betas, "t": betas.iter().map(|b| 1.0 / b).collect::<Vec<_>>(), "grid": [-lim, lim], "seed": st.seed }))?;
    let mut w = dir.csv("field.csv", &["beta", "x", "y", "score_x", "score_y", "log_density", "n_eff"])?;
    let mut summary = format!("## fig3: empirical score of {n} bivariate Gaussian points (variances {var:?})\n\n| β = 1/t | mean N_eff on the arrow grid | fraction with N_eff < 1.5 | mean |s_x|/|s_y| ratio of RMS components |\n|---|---|---|---|\n");
    let mut panels = Vec::new();
    for &beta in betas {
        let t = 1.0 / beta;
        let hx = |i: usize, k: usize| -lim + 2.0 * lim * (i as f64 + 0.5) / k as f64;
        let hgrid =
            Mat::from_fn(
                heat_n * heat_n,
                2,
                |r, j| if j == 0 { hx(r % heat_n, heat_n) } else { hx(r / heat_n, heat_n) },
            );
        let ld = field.log_density(hgrid.as_ref(), t)?;
        let floor = ld.iter().copied().fold(f64::NEG_INFINITY, f64::max) - 12.0;
        let heat: Vec<Vec<f64>> =
            (0..heat_n).map(|iy| (0..heat_n).map(|ix| ld[iy * heat_n + ix].max(floor)).collect()).collect();
        let agrid = Mat::from_fn(arrow_n * arrow_n, 2, |r, j| {
            if j == 0 {
                hx(r % arrow_n, arrow_n)
            } else {
                hx(r / arrow_n, arrow_n)
            }
        });
        let s = field.score_batch(agrid.as_ref(), t)?;
        let lda = field.log_density(agrid.as_ref(), t)?;
        let smax = (0..agrid.nrows()).map(|r| s[(r, 0)].hypot(s[(r, 1)])).fold(0.0, f64::max);
        let cell = 2.0 * lim / arrow_n as f64;
        let mut arrows = Vec::new();
        let (mut neff_sum, mut condensed, mut sx2, mut sy2) = (0.0, 0usize, 0.0, 0.0);
        for r in 0..agrid.nrows() {
            let (x, y) = (agrid[(r, 0)], agrid[(r, 1)]);
            let p = field.posterior(&[x, y], t)?;
            neff_sum += p.n_eff;
            condensed += usize::from(p.n_eff < 1.5);
            sx2 += s[(r, 0)].powi(2);
            sy2 += s[(r, 1)].powi(2);
            w.write_record([beta, x, y, s[(r, 0)], s[(r, 1)], lda[r], p.n_eff].map(|v| format!("{v:e}")))?;
            let norm = s[(r, 0)].hypot(s[(r, 1)]);
            if norm > 0.0 {
                // Length ∝ sqrt(|s| / max |s|) so weak and strong regions both stay visible.
                let len = 0.9 * cell * (norm / smax).sqrt();
                arrows.push((x, y, s[(r, 0)] / norm * len, s[(r, 1)] / norm * len));
            }
        }
        let cnt = agrid.nrows() as f64;
        writeln!(
            summary,
            "| {beta} | {:.2} | {:.2} | {:.2} |",
            neff_sum / cnt,
            condensed as f64 / cnt,
            (sx2 / sy2).sqrt()
        )?;
        panels.push(FieldPanel {
            title: format!("β = {beta} (t = {t})"),
            heat_label: "log p_t".into(),
            heat,
            arrows,
            points: (0..n).map(|i| (data[(i, 0)], data[(i, 1)])).collect(),
        });
    }
    w.flush()?;
    save_fields(
        &dir.path("fields"),
        &format!("fig3: empirical score of {n} points, variances {var:?}"),
        (-lim, lim, -lim, lim),
        &panels,
    )?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
