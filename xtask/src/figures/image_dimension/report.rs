//! The image figure's files: CSV tables, `summary.md`, and the plot.

use super::measure::{SizeOut, SpectraSet};
use super::Plan;
use crate::out::FigureDir;
use crate::plot::{palette, ColorBar, Figure, Panel, Series};
use anyhow::Result;
use geomem_spectral::{soft_count, stiffness, Reading, SecondDerivativeRule};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Algorithm 3 over the points of one spectra set.
pub struct Dims {
    /// The notebook form (spikes pooled over points): mean and std of the spike dimensions,
    /// their number; NaN without spikes (the notebook reads nothing there).
    pub notebook: (f64, f64, usize),
    /// Points read as spike / no spike, stiff / no spike, soft.
    pub counts: [usize; 3],
    /// Mean over points of the paper form with flat spectra read as 0 (stiff) or d (soft).
    pub reading: f64,
    /// Mean over points of `t · s_median`.
    pub stiffness: f64,
    /// Mean over points of the soft count (directions with `t · s_i < 1/2`).
    pub soft: f64,
}

pub fn dims(rule: &SecondDerivativeRule, spectra: &[Vec<f64>], t: f64) -> Result<Dims> {
    let pooled = rule.pooled(spectra)?;
    let d = spectra[0].len();
    let mut counts = [0; 3];
    let (mut sum, mut stiff, mut soft) = (0.0, 0.0, 0.0);
    for s in spectra {
        let r = rule.read(s, t)?;
        counts[match r {
            Reading::Spike(_) => 0,
            Reading::NoSpikeStiff => 1,
            Reading::NoSpikeSoft => 2,
        }] += 1;
        sum += r.dimension(d) as f64;
        stiff += stiffness(s, t)?;
        soft += soft_count(s, t)? as f64;
    }
    let k = spectra.len() as f64;
    Ok(Dims {
        notebook: (pooled.mean().unwrap_or(f64::NAN), pooled.std().unwrap_or(f64::NAN), pooled.spikes.len()),
        counts,
        reading: sum / k,
        stiffness: stiff / k,
        soft: soft / k,
    })
}

fn find<'a>(r: &'a SizeOut, points: &str) -> Option<&'a SpectraSet> {
    r.spectra.iter().find(|s| s.points == points && s.perturbation == "per-channel orthogonal")
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or("–".into(), |x| format!("{x:.digits$}"))
}

pub fn report(out: &FigureDir, pl: &Plan<'_>, res: &[SizeOut]) -> Result<String> {
    let all = write_dimension_csv(out, pl, res)?;
    write_training_csv(out, res)?;
    let mut md = header(pl);
    md.push_str("| N | seed | Algorithm 3, train | Algorithm 3, held-out | soft count, train | soft count, held-out | memorized | held-out / train loss |\n|---|---|---|---|---|---|---|---|\n");
    for r in res {
        let get = |p: &str| all.get(&(r.n, r.seed, p.to_string()));
        let alg3 = |p: &str| {
            get(p).map_or("–".into(), |d: &Dims| {
                format!("{:.1} ({}/{}/{})", d.reading, d.counts[0], d.counts[1], d.counts[2])
            })
        };
        let soft = |p: &str| fmt_opt(get(p).map(|d| d.soft), 1);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.seed,
            alg3("train"),
            alg3("held-out"),
            soft("train"),
            soft("held-out"),
            fmt_opt(r.memorized.map(|m| m.0), 2),
            fmt_opt(r.loss_train_heldout.map(|(a, b)| b / a), 3),
        )?;
    }
    md.push_str("\nAlgorithm 3: the mean over points of the paper form, a flat spectrum read as 0 when stiff and d when soft (t·s_median against 1/2); in brackets the points with a spike / no spike, stiff / no spike, soft. Soft count: the mean number of directions with t·s_i < 1/2. The empirical score of each training set (the memorizing limit), t·s_median and the notebook form are in `dimension.csv`; losses, memorization and timings in `training.csv`; FLIPD in `flipd.csv`; the readings of the net's exact Jacobian at the same points (`jacobian_spectra`) in the rows `exact jacobian` of `dimension.csv`.\n");
    flipd_table(&mut md, out, res)?;
    out.write_text("summary.md", &md)?;
    plot(out, pl, res, &all)?;
    Ok(md)
}

fn header(pl: &Plan<'_>) -> String {
    format!(
        "## {}\n\n{} ({} training images, {} held-out from the {} split, d = {}), DDPM U-Net {} parameters, {} steps per size (batch {}, lr {}), spectra at step k = {} with K = 4d, {} points of each kind; Algorithm 3 d̄ = {}, c = {}; {} samples per size ({} sampler steps).{}\n\n",
        pl.st.name,
        pl.set.source,
        pl.split.max_train(),
        pl.held.nrows(),
        match pl.st.held_out_from {
            super::HeldOutFrom::Train => "training",
            super::HeldOutFrom::Test => "test",
        },
        pl.set.dim(),
        pl.unet.parameter_count().unwrap_or(0),
        pl.st.steps,
        pl.st.batch,
        pl.st.lr,
        pl.st.step_k,
        pl.st.points,
        pl.st.rule.discard,
        pl.st.rule.threshold,
        pl.st.samples,
        pl.st.sampling_steps,
        if pl.set.source == "uci-digits" { " Embedded 8×8 digits: not the paper's data." } else { "" },
    )
}

type DimsMap = BTreeMap<(usize, u64, String), Dims>;

fn write_dimension_csv(out: &FigureDir, pl: &Plan<'_>, res: &[SizeOut]) -> Result<DimsMap> {
    let d = pl.set.dim();
    let mut w = out.csv(
        "dimension.csv",
        &[
            "n",
            "seed",
            "points",
            "perturbation",
            "notebook_mean",
            "notebook_std",
            "spikes",
            "points_spike",
            "points_no_spike_stiff",
            "points_no_spike_soft",
            "reading_mean",
            "stiffness_mean",
            "soft_count_mean",
        ],
    )?;
    let mut sp = out.csv("spectra.csv", &["n", "seed", "points", "perturbation", "index", "mean_normalised"])?;
    let mut all = DimsMap::new();
    for r in res {
        for s in &r.spectra {
            let dm = dims(&pl.st.rule, &s.spectra, r.t)?;
            let (nm, ns, spikes) = dm.notebook;
            let mut row = vec![r.n.to_string(), r.seed.to_string(), s.points.clone(), s.perturbation.clone()];
            row.extend([nm, ns].map(|v| v.to_string()));
            row.push(spikes.to_string());
            row.extend(dm.counts.map(|c| c.to_string()));
            row.extend([dm.reading, dm.stiffness, dm.soft].map(|v| v.to_string()));
            w.write_record(&row)?;
            for i in 0..d {
                let v = s.spectra.iter().map(|x| x[i] / x[0]).sum::<f64>() / s.spectra.len() as f64;
                let rec =
                    [r.n.to_string(), r.seed.to_string(), s.points.clone(), s.perturbation.clone(), i.to_string()];
                sp.write_record(rec.iter().map(String::as_str).chain([v.to_string().as_str()]))?;
            }
            if s.perturbation == "per-channel orthogonal" {
                all.insert((r.n, r.seed, s.points.to_string()), dm);
            }
        }
    }
    w.flush()?;
    sp.flush()?;
    Ok(all)
}

fn write_training_csv(out: &FigureDir, res: &[SizeOut]) -> Result<()> {
    let mut w = out.csv(
        "training.csv",
        &[
            "n",
            "seed",
            "final_loss_ema",
            "loss_train",
            "loss_heldout",
            "heldout_over_train",
            "memorized_fraction",
            "median_nn_ratio",
            "seconds_training",
            "seconds_losses",
            "seconds_samples_flipd",
            "seconds_spectra",
        ],
    )?;
    let mut c = out.csv("loss_curves.csv", &["n", "seed", "step", "loss", "loss_ema"])?;
    for r in res {
        let (lt, lh) = r.loss_train_heldout.unwrap_or((f64::NAN, f64::NAN));
        let (mf, mr) = r.memorized.unwrap_or((f64::NAN, f64::NAN));
        w.write_record(
            [r.n.to_string(), r.seed.to_string()]
                .into_iter()
                .chain([r.loss, lt, lh, lh / lt, mf, mr].into_iter().chain(r.seconds).map(|v| v.to_string())),
        )?;
        for (step, l, le) in &r.curve {
            c.write_record([r.n.to_string(), r.seed.to_string(), step.to_string(), l.to_string(), le.to_string()])?;
        }
    }
    w.flush()?;
    c.flush()?;
    Ok(())
}

fn flipd_table(md: &mut String, out: &FigureDir, res: &[SizeOut]) -> Result<()> {
    let mut w = out.csv("flipd.csv", &["n", "seed", "step", "t0", "auroc", "median_memorized", "median_novel"])?;
    let any = res.iter().any(|r| !r.flipd.is_empty());
    if any {
        md.push_str("\n| N | seed | FLIPD step (t0) | AUROC of -FLIPD | median FLIPD memorized / novel |\n|---|---|---|---|---|\n");
    }
    for r in res {
        for f in &r.flipd {
            w.write_record(
                [r.n.to_string(), r.seed.to_string(), f.step.to_string(), f.t0.to_string()]
                    .into_iter()
                    .chain([f.auroc, f.median_memorized, f.median_novel].map(|v| v.unwrap_or(f64::NAN).to_string())),
            )?;
            writeln!(
                md,
                "| {} | {} | {} ({:.2e}) | {} | {} / {} |",
                r.n,
                r.seed,
                f.step,
                f.t0,
                fmt_opt(f.auroc, 3),
                fmt_opt(f.median_memorized, 1),
                fmt_opt(f.median_novel, 1)
            )?;
        }
    }
    w.flush()?;
    Ok(())
}

fn plot(out: &FigureDir, pl: &Plan<'_>, res: &[SizeOut], all: &DimsMap) -> Result<()> {
    let seed = pl.st.seed;
    let base: Vec<&SizeOut> = res.iter().filter(|r| r.seed == seed).collect();
    let xy = |f: &dyn Fn(&SizeOut) -> Option<f64>| -> Vec<(f64, f64)> {
        base.iter().filter_map(|r| Some((r.n as f64, f(r)?))).filter(|p| p.1.is_finite()).collect()
    };
    let mut dim = Panel {
        title: "dimension: Algorithm 3 and the soft count".into(),
        x_label: "N (training images)".into(),
        y_label: "dimension".into(),
        log_x: true,
        ..Default::default()
    };
    let mut stiff = Panel {
        title: "t · median singular value (1: stiff everywhere)".into(),
        x_label: "N (training images)".into(),
        y_label: "t · s_median".into(),
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    for (i, points) in ["train", "held-out", "train, empirical score", "held-out, empirical score"].iter().enumerate() {
        let get = |r: &SizeOut| all.get(&(r.n, r.seed, points.to_string()));
        let s = Series::line(xy(&|r| get(r).map(|d| d.reading)), palette(i)).labeled(*points);
        dim.series.push(if i >= 2 { s.dashed() } else { s });
        let s = Series::line(xy(&|r| get(r).map(|d| d.stiffness)), palette(i)).labeled(*points);
        stiff.series.push(if i >= 2 { s.dashed() } else { s });
        if i < 2 {
            let s =
                Series::line(xy(&|r| get(r).map(|d| d.soft)), palette(i + 4)).labeled(format!("{points}, soft count"));
            dim.series.push(s);
        }
    }
    let second: Vec<(f64, f64)> = res
        .iter()
        .filter(|r| r.seed != seed)
        .filter_map(|r| Some((r.n as f64, all.get(&(r.n, r.seed, "train".to_string()))?.reading)))
        .collect();
    if !second.is_empty() {
        dim.series.push(Series::line(second, palette(0)).scatter().labeled("train, second seed"));
    }
    let mut mem = Panel {
        title: "memorization".into(),
        x_label: "N (training images)".into(),
        y_label: "fraction / ratio".into(),
        log_x: true,
        ..Default::default()
    };
    mem.series.push(Series::line(xy(&|r| r.memorized.map(|m| m.0)), palette(3)).labeled("memorized fraction"));
    mem.series.push(Series::line(xy(&|r| r.memorized.map(|m| m.1)), palette(4)).dashed().labeled("median NN ratio"));
    let mut ratio = Panel {
        title: "held-out / training DDPM loss of the final net".into(),
        x_label: "N (training images)".into(),
        y_label: "loss ratio".into(),
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    ratio
        .series
        .push(Series::line(xy(&|r| r.loss_train_heldout.map(|(a, b)| b / a)), palette(5)).labeled("first seed"));
    let second: Vec<(f64, f64)> = res
        .iter()
        .filter(|r| r.seed != seed)
        .filter_map(|r| r.loss_train_heldout.map(|(a, b)| (r.n as f64, b / a)))
        .collect();
    if !second.is_empty() {
        ratio.series.push(Series::line(second, palette(5)).scatter().labeled("second seed"));
    }
    if let Some(k) = pl.st.flipd_steps.first() {
        let auc = xy(&|r| r.flipd.iter().find(|f| f.step == *k).and_then(|f| f.auroc));
        mem.series.push(Series::line(auc, palette(6)).scatter().labeled(format!("AUROC of −FLIPD, k = {k}")));
    }
    let mut curves = Panel {
        title: "training loss (smoothed) against steps".into(),
        x_label: "step".into(),
        y_label: "ε-MSE".into(),
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    let bar = ColorBar::log_over("N", base.iter().map(|r| r.n as f64)).up_to(0.9);
    for r in &base {
        let pts: Vec<(f64, f64)> = r.curve.iter().map(|c| (c.0 as f64, c.2)).filter(|p| p.1 > 0.0).collect();
        curves.series.push(Series::line(pts, bar.color(r.n as f64)));
    }
    let mut spectra = Panel {
        title: "net spectra at training images".into(),
        x_label: "index".into(),
        y_label: "s_i / s_1".into(),
        log_y: true,
        ..Default::default()
    };
    for r in &base {
        let Some(s) = find(r, "train") else { continue };
        let mean: Vec<(f64, f64)> = (0..pl.set.dim())
            .map(|i| ((i + 1) as f64, s.spectra.iter().map(|x| x[i] / x[0]).sum::<f64>() / s.spectra.len() as f64))
            .collect();
        spectra.series.push(Series::line(mean, bar.color(r.n as f64)));
    }
    // Panels of measurements the settings skip (no samples, no held-out losses) are left out.
    let has_data = |p: &Panel| p.series.iter().any(|s| !s.points.is_empty());
    let panels: Vec<Panel> = [dim, mem, stiff, ratio, curves, spectra].into_iter().filter(has_data).collect();
    Figure::new(format!("Latent dimension against N: {}", pl.set.source), 2)
        .colorbar(bar)
        .save(&out.path("image_dimension"), &panels)
}
