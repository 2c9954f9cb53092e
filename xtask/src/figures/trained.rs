//! Trained-network figures: Fig. 5 / 16 (d = 30, 2 + 5 and 5 + 10, a sweep of dataset sizes)
//! and Fig. 15 (d = 100, m = 40, the order of the variances). Each network is trained by
//! denoising score matching (geomem-nets) in its own run directory; its EMA weights become a
//! `ScoreField` and the improved Normal Bundle measures its spectrum at x0 = 0.

use super::common::Scale;
use crate::backend::{self, Train};
use crate::out::{bar, FigureDir};
use crate::plot::{save_panels, viridis, Panel, Series, VLine, GAP_COLORS};
use anyhow::Result;
use geomem_data::{Block, Embedding, LinearManifold, NestedSubsets};
use geomem_nets::{
    memorization, sample, save_safetensors, train, ResidualMlpConfig, SamplingParams, TrainConfig, TrainedScore,
};
use geomem_spectral::normalize;
use geomem_spectral::{smoothed_jacobian_spectrum, SmoothedJacobianParams};
use serde::Serialize;
use std::fmt::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

/// One data model of a trained-network figure.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    pub label: String,
    pub d: usize,
    pub blocks: Vec<(usize, f64)>,
    /// Marked gap positions (count of large values) with labels.
    pub marks: Vec<(usize, String)>,
}

impl Variant {
    fn manifold(&self) -> Result<LinearManifold> {
        let b: Vec<Block> = self.blocks.iter().map(|&(dim, variance)| Block { dim, variance }).collect();
        Ok(LinearManifold::new(self.d, &b, Embedding::Aligned)?)
    }
    /// Paper's markers for two blocks: black d - m, green d - m_low, red d - m_high.
    pub fn two_blocks(label: &str, d: usize, first: (usize, f64), second: (usize, f64)) -> Self {
        let m = first.0 + second.0;
        let (high, low) = if first.1 >= second.1 { (first, second) } else { (second, first) };
        Self {
            label: label.into(),
            d,
            blocks: vec![first, second],
            marks: vec![
                (d - m, format!("manifold d-m = {}", d - m)),
                (d - low.0, format!("low-var d-m2 = {}", d - low.0)),
                (d - high.0, format!("high-var d-m1 = {}", d - high.0)),
            ],
        }
    }
}

#[derive(Serialize)]
struct RunSummary {
    variant: String,
    n: usize,
    steps: u64,
    seconds: f64,
    steps_per_sec: f64,
    final_loss_ema: f64,
    memorized_fraction: f64,
}

type Csv = csv::Writer<std::fs::File>;

/// Trains one net on `data` in its run directory, measures its spectra at `times` (rows of
/// `spectra.csv`) and its memorised fraction; returns the spectra and the run summary.
#[allow(clippy::too_many_arguments)]
fn train_one(
    v: &Variant,
    n: usize,
    data: &faer::Mat<f64>,
    times: &[f64],
    steps: u64,
    scale: Scale,
    dir: &FigureDir,
    w: &mut Csv,
) -> Result<(Vec<Vec<f64>>, RunSummary)> {
    let cfg = TrainConfig::new(ResidualMlpConfig::new(v.d))
        .with_steps(steps)
        .with_seed(scale.seed + n as u64)
        .with_checkpoint_every((steps / 4).max(1))
        .with_log_every((steps / 200).max(1))
        .with_ema_decay(if scale.full { 0.9999 } else { 0.999 });
    let run_dir = dir.dir.join("runs").join(format!("{}_N{n}", v.label.replace(' ', "_")));
    let pb = bar(steps, &format!("{} N={n}", v.label));
    let start = Instant::now();
    let mut last = None;
    let state = train::<Train>(data.as_ref(), &cfg, Some(&run_dir), &backend::device(), &mut |r| {
        pb.set_position(r.step);
        pb.set_message(format!("{} N={n} loss {:.3}", v.label, r.loss_ema));
        last = Some(*r);
        ControlFlow::Continue(())
    })?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    crate::train_cmd::loss_plot(&run_dir, &format!("{} N = {n}", v.label))?;
    save_safetensors(&state.ema, &run_dir.join("ema.safetensors"))?;
    let field = TrainedScore::<Train>::new(state.ema, backend::device());
    let mut spectra = Vec::new();
    for &t in times {
        let params = SmoothedJacobianParams::improved_normal_bundle(scale.seed + 5);
        let s = normalize(&smoothed_jacobian_spectrum(&field, &vec![0.0; v.d], t, &params)?);
        for (i, x) in s.iter().enumerate() {
            w.write_record([v.label.clone(), n.to_string(), format!("{t}"), (i + 1).to_string(), format!("{x:e}")])?;
        }
        spectra.push(s);
    }
    let samples = sample(&field, 200, &SamplingParams::default().steps(200).seed(scale.seed + 9))?;
    let mem = memorization(samples.as_ref(), data.as_ref(), 1.0 / 3.0)?;
    let run = RunSummary {
        variant: v.label.clone(),
        n,
        steps,
        seconds: secs,
        steps_per_sec: steps as f64 / secs,
        final_loss_ema: last.map_or(f64::NAN, |r| r.loss_ema),
        memorized_fraction: mem.fraction_memorized,
    };
    Ok((spectra, run))
}

/// The heading and table head of one variant in the summary.
fn variant_heading(v: &Variant, sizes: &[usize]) -> String {
    let blocks = if v.blocks.len() <= 4 {
        format!("blocks (dim, variance) {:?}", v.blocks)
    } else {
        let (lo, hi) = v.blocks.iter().fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x.1), b.max(x.1)));
        format!("{} one-dimensional blocks, variances evenly spread over [{lo}, {hi}]", v.blocks.len())
    };
    let marks: Vec<usize> = v.marks.iter().map(|m| m.0).collect();
    let cols = sizes.iter().map(|n| format!("N = {n}")).collect::<Vec<_>>().join(" | ");
    format!(
        "### {} (d = {}, {blocks})\n\nOpen marked gaps (jump >= 25%) at x0 = 0; marks {marks:?}:\n\n| t | {cols} |\n|---|{}\n",
        v.label,
        v.d,
        "---|".repeat(sizes.len())
    )
}

/// The summary row (open marked gaps per N) and the panel of one variant at one time.
fn time_row(v: &Variant, t: f64, per_n: &[Vec<f64>], sizes: &[usize]) -> Result<(String, Panel)> {
    let mut row = format!("| {t} |");
    let mut series = Vec::new();
    let marks: Vec<usize> = v.marks.iter().map(|m| m.0).collect();
    for (ni, (s, &n)) in per_n.iter().zip(sizes).enumerate() {
        let open: Vec<String> =
            geomem_spectral::marked_gaps(s, &marks)?.open(&marks).iter().map(|p| p.to_string()).collect();
        write!(row, " {} |", if open.is_empty() { "none".into() } else { open.join(", ") })?;
        let u = ni as f64 / (sizes.len() - 1).max(1) as f64;
        let pts = s.iter().enumerate().map(|(i, &x)| ((i + 1) as f64, x)).collect();
        series.push(Series::line(pts, viridis(0.9 * u)).labeled(format!("N = {n}")));
    }
    let vlines = v
        .marks
        .iter()
        .zip(GAP_COLORS)
        .map(|((p, l), c)| VLine { x: *p as f64 + 0.5, color: c, label: l.clone() })
        .collect();
    let panel = Panel {
        title: format!("{}, t = {t}", v.label),
        x_label: "index k".into(),
        y_label: "s_k / s_1".into(),
        log_y: true,
        series,
        vlines,
        ..Panel::default()
    };
    Ok((row, panel))
}

/// Trains one net per (variant, N) and measures spectra at `times`.
pub fn run(
    name: &str,
    variants: &[Variant],
    sizes: &[usize],
    times: &[f64],
    steps: u64,
    scale: Scale,
    root: &Path,
) -> Result<String> {
    let dir = FigureDir::new(root, name)?;
    let mut summary = format!(
        "## {name}: trained networks ({} steps per net{}, backend {})\n\n",
        steps,
        if scale.full { "" } else { "; quick setting, NOT the paper's 2 000 000 steps" },
        backend::name()
    );
    let (mut panels, mut runs) = (Vec::new(), Vec::new());
    let mut w = dir.csv("spectra.csv", &["variant", "n", "t", "index", "normalized_singular_value"])?;
    for (vi, v) in variants.iter().enumerate() {
        let nmax = *sizes.iter().max().expect("sizes");
        let pool = v.manifold()?.sample(nmax, scale.seed + 17 * vi as u64);
        let subsets = NestedSubsets::new(nmax, scale.seed + 1);
        summary.push_str(&variant_heading(v, sizes));
        // spectra[t][n]
        let mut spectra: Vec<Vec<Vec<f64>>> = vec![Vec::new(); times.len()];
        for &n in sizes {
            let data = subsets.subset(pool.as_ref(), n)?;
            let (per_t, run) = train_one(v, n, &data, times, steps, scale, &dir, &mut w)?;
            for (ti, s) in per_t.into_iter().enumerate() {
                spectra[ti].push(s);
            }
            runs.push(run);
        }
        for (ti, &t) in times.iter().enumerate() {
            let (row, panel) = time_row(v, t, &spectra[ti], sizes)?;
            writeln!(summary, "{row}")?;
            panels.push(panel);
        }
        writeln!(summary)?;
    }
    w.flush()?;
    writeln!(summary, "| variant | N | steps | seconds | steps/s | final EMA loss | memorised fraction of 200 samples (ratio < 1/3) |\n|---|---|---|---|---|---|---|")?;
    for r in &runs {
        writeln!(
            summary,
            "| {} | {} | {} | {:.1} | {:.0} | {:.4} | {:.2} |",
            r.variant, r.n, r.steps, r.seconds, r.steps_per_sec, r.final_loss_ema, r.memorized_fraction
        )?;
    }
    dir.write_json("runs.json", &runs)?;
    save_panels(
        &dir.path("spectra"),
        &format!("{name}: trained networks, {steps} steps, improved NB at x0 = 0"),
        &panels,
        times.len(),
    )?;
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
