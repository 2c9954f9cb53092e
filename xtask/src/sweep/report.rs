//! `aggregate`: joins whatever job results exist into CSVs, plots and a summary.

use super::measure::{JobResult, PointResult, Snapshot};
use super::{result_path, Spec, Variant};
use crate::out::FigureDir;
use crate::plot::{palette, save_panels, ColorBar, Figure, Panel, Series, VLine, GAP_COLORS};
use anyhow::Result;
use geomem_spectral::{isotropic_tangent_weight, marked_gaps, normalize, stiffening};
use std::fmt::Write;

/// Results present on disk, in job order (missing jobs are skipped and counted).
pub fn load(spec: &Spec, dir: &FigureDir) -> Result<(Vec<JobResult>, usize)> {
    let mut out = Vec::new();
    let mut missing = 0;
    for j in spec.jobs() {
        match std::fs::read_to_string(result_path(spec, &dir.dir, &j)) {
            Ok(t) => out.push(serde_json::from_str(&t)?),
            Err(_) => missing += 1,
        }
    }
    Ok((out, missing))
}

fn fmt_list(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" / ")
}

/// Per-block stiffening of the net and of the empirical score (0 = exact, 1 = normal `1/t`).
fn stiffenings(p: &PointResult, blocks: usize) -> (Vec<f64>, Vec<f64>) {
    let [net, exact, emp] = &p.stiffness;
    let f = |s: &[f64]| (0..blocks).map(|b| stiffening(s[b], exact[b], 1.0 / p.t)).collect();
    (f(net), f(emp))
}

fn write_csvs(spec: &Spec, dir: &FigureDir, res: &[JobResult]) -> Result<()> {
    let mut runs = dir.csv(
        "runs.csv",
        &["variant", "n", "seed", "step", "memorized_fraction", "train_loss", "heldout_loss", "loss_gap", "seconds"],
    )?;
    let mut spectra =
        dir.csv("spectra.csv", &["variant", "n", "seed", "step", "point", "t", "field", "index", "value"])?;
    let mut blocks = dir.csv(
        "blocks.csv",
        &[
            "variant",
            "n",
            "seed",
            "step",
            "point",
            "t",
            "block",
            "stiff_net",
            "stiff_exact",
            "stiff_empirical",
            "stiffening_net",
            "stiffening_empirical",
        ],
    )?;
    let mut weights = dir.csv(
        "weights.csv",
        &["variant", "n", "seed", "step", "point", "t", "k", "block", "weight_net", "weight_empirical", "isotropic"],
    )?;
    for r in res {
        let v = &spec.variants[r.job.variant];
        let key = [v.label.clone(), r.job.n.to_string(), r.job.seed.to_string()];
        for s in &r.snapshots {
            let gap = s.heldout_loss - s.train_loss;
            let row = [
                s.step.to_string(),
                s.memorized_fraction.to_string(),
                s.train_loss.to_string(),
                s.heldout_loss.to_string(),
                gap.to_string(),
                r.seconds.to_string(),
            ];
            runs.write_record(key.iter().chain(&row))?;
            for p in &s.points {
                let at = [s.step.to_string(), p.point.clone(), p.t.to_string()];
                for (field, vals) in [
                    ("net", &p.net),
                    ("net_nb", &p.net_nb),
                    ("net_authors", &p.net_authors),
                    ("exact", &p.exact),
                    ("empirical", &p.empirical),
                    ("net_signed", &p.net_signed),
                    ("empirical_signed", &p.empirical_signed),
                ] {
                    for (i, x) in vals.iter().enumerate() {
                        let rest = [field.to_string(), (i + 1).to_string(), format!("{x:e}")];
                        spectra.write_record(key.iter().chain(&at).chain(&rest))?;
                    }
                }
                // Stiffening is defined for the tangent blocks (the normal block is the reference).
                let (sn, se) = stiffenings(p, v.blocks.len());
                let cell = |x: &[f64], b: usize| x.get(b).map_or(String::new(), |v| v.to_string());
                for b in 0..=v.blocks.len() {
                    let rest = [
                        b.to_string(),
                        p.stiffness[0][b].to_string(),
                        p.stiffness[1][b].to_string(),
                        p.stiffness[2][b].to_string(),
                        cell(&sn, b),
                        cell(&se, b),
                    ];
                    blocks.write_record(key.iter().chain(&at).chain(&rest))?;
                }
                for (ki, &k) in v.marks().iter().enumerate() {
                    let iso = isotropic_tangent_weight(v.d, v.m(), k);
                    for b in 0..=v.blocks.len() {
                        let rest = [
                            k.to_string(),
                            b.to_string(),
                            p.weights[ki][b].to_string(),
                            p.weights_empirical[ki][b].to_string(),
                            iso.to_string(),
                        ];
                        weights.write_record(key.iter().chain(&at).chain(&rest))?;
                    }
                }
            }
        }
    }
    runs.flush()?;
    spectra.flush()?;
    blocks.flush()?;
    weights.flush()?;
    Ok(())
}

fn point<'a>(s: &'a Snapshot, name: &str, t: f64) -> Option<&'a PointResult> {
    s.points.iter().find(|p| p.point == name && p.t == t)
}

/// `ln(s_k / s_{k+1})` of a sorted spectrum at the count `k` (the size of a marked gap).
fn log_gap(s: &[f64], k: usize) -> f64 {
    if k == 0 || k >= s.len() {
        return f64::NAN;
    }
    (s[k - 1] / s[k]).ln()
}

/// Repulsive directions (λ > 0 of the symmetrised Jacobian) of the net and of the empirical
/// score at a point, as `net / emp`; `–` for results written before signs were measured.
fn repulsive(p: &PointResult) -> String {
    let pos = |s: &[f64]| s.iter().filter(|x| **x > 0.0).count();
    if p.net_signed.is_empty() {
        return "–".into();
    }
    format!("{} / {}", pos(&p.net_signed), pos(&p.empirical_signed))
}

/// Open marked gaps of a spectrum, as text.
fn open_gaps(v: &Variant, s: &[f64]) -> Result<String> {
    let marks = v.marks();
    let open: Vec<String> = marked_gaps(s, &marks)?.open(&marks).iter().map(|p| p.to_string()).collect();
    Ok(if open.is_empty() { "none".into() } else { open.join(", ") })
}

/// The final-step table of one variant.
fn variant_table(spec: &Spec, v: &Variant, res: &[&JobResult], t: f64) -> Result<String> {
    let mut out = format!(
        "### {} (d = {}, blocks (dim, variance) {:?}; marks {:?}; t = {t}, after {} steps)\n\n",
        v.label,
        v.d,
        v.blocks,
        v.marks(),
        spec.total()
    );
    if v.sphere {
        out.push_str("Data on the unit sphere: \"exact\" is the Gaussian score of the same per-axis variances, not the data's score.\n\n");
    }
    const HEAD: [&str; 16] = [
        "N",
        "seed",
        "memorized",
        "train loss",
        "held-out loss",
        "gap",
        "open marks at 0",
        "log gap at d-m at 0: net / exact",
        "d(net, exact) / d(net, emp) at 0",
        "at train pt",
        "at held-out pt",
        "repulsive net / emp at 0, train pt, held-out pt",
        "stiffening net at 0 (blocks)",
        "stiffening emp at 0",
        "stiffening net at train pt",
        "emp at train pt",
    ];
    let mut rows = Vec::new();
    for r in res {
        let s = r.snapshots.last().expect("a result has snapshots");
        let (o, tr, h) = (point(s, "origin", t), point(s, "train", t), point(s, "heldout", t));
        let (Some(o), Some(tr), Some(h)) = (o, tr, h) else { continue };
        let (sn0, se0) = stiffenings(o, v.blocks.len());
        let (snt, set) = stiffenings(tr, v.blocks.len());
        let pair = |a: f64, b: f64| format!("{a:.2} / {b:.2}");
        rows.push(vec![
            r.job.n.to_string(),
            r.job.seed.to_string(),
            format!("{:.2}", s.memorized_fraction),
            format!("{:.4}", s.train_loss),
            format!("{:.4}", s.heldout_loss),
            format!("{:.4}", s.heldout_loss - s.train_loss),
            open_gaps(v, &normalize(&o.net))?,
            pair(log_gap(&o.net, v.d - v.m()), log_gap(&o.exact, v.d - v.m())),
            pair(o.dist_exact, o.dist_empirical),
            pair(tr.dist_exact, tr.dist_empirical),
            pair(h.dist_exact, h.dist_empirical),
            [o, tr, h].map(repulsive).join(", "),
            fmt_list(&sn0),
            fmt_list(&se0),
            fmt_list(&snt),
            fmt_list(&set),
        ]);
    }
    let groups =
        [("Training and memorization:", 6), ("Distances of the net's spectrum:", 4), ("Stiffening by block:", 4)];
    out.push_str(&crate::out::split_tables(&HEAD, 2, &groups, &rows));
    Ok(out)
}

/// Per job: the first snapshot at which the samples are mostly memorized, and the first at
/// which the net's spectrum at a training point is nearer the empirical than the exact one.
fn onset_table(v: &Variant, res: &[&JobResult], t: f64) -> Result<String> {
    let mut out = format!("Onsets for {} at t = {t} (first measured step; `-` = not within the run):\n\n| N | seed | memorized >= 0.5 | spectrum at train pt nearer empirical | spectrum at 0 nearer empirical | log gap at d-m = {} at 0 below half the exact score's |\n|---|---|---|---|---|---|\n", v.label, v.d - v.m());
    let first = |r: &JobResult, f: &dyn Fn(&Snapshot) -> bool| {
        r.snapshots.iter().find(|s| f(s)).map_or("-".to_string(), |s| s.step.to_string())
    };
    let k = v.d - v.m();
    for r in res {
        let near =
            |name: &'static str| move |s: &Snapshot| point(s, name, t).is_some_and(|p| p.dist_empirical < p.dist_exact);
        let gap = |s: &Snapshot| point(s, "origin", t).is_some_and(|p| log_gap(&p.net, k) < 0.5 * log_gap(&p.exact, k));
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.job.n,
            r.job.seed,
            first(r, &|s| s.memorized_fraction >= 0.5),
            first(r, &near("train")),
            first(r, &near("origin")),
            first(r, &gap)
        )?;
    }
    Ok(out)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |x| x.to_string())
}

/// Memorization detection (seed 004) at the last snapshot: one row per job and `t0`.
fn detection_table(v: &Variant, res: &[&JobResult]) -> Result<String> {
    let mut out = format!("Memorization detection for {} (last snapshot; FLIPD of the net at each sample, AUROC of -FLIPD for memorized vs novel; OD-Mem: FLIPD more than 0.5 below the data's MLE LID at the nearest training point):\n\n| N | seed | memorized | t0 | AUROC | median FLIPD memorized / novel | data MLE LID at memorized | OD-Mem / DD-Mem |\n|---|---|---|---|---|---|---|---|\n", v.label);
    for r in res {
        let s = r.snapshots.last().expect("a result has snapshots");
        for d in &s.detection {
            writeln!(
                out,
                "| {} | {} | {:.2} | {} | {} | {:.2} / {:.2} | {:.2} | {} / {} |",
                r.job.n,
                r.job.seed,
                s.memorized_fraction,
                d.t0,
                d.auroc.map_or("-".into(), |a| format!("{a:.3}")),
                d.flipd_median_memorized,
                d.flipd_median_novel,
                s.data_lid_memorized,
                opt(d.od_mem),
                opt(d.dd_mem)
            )?;
        }
    }
    Ok(out)
}

fn write_detection(dir: &FigureDir, spec: &Spec, res: &[JobResult]) -> Result<()> {
    let mut w = dir.csv(
        "detection.csv",
        &[
            "variant",
            "n",
            "seed",
            "step",
            "memorized_fraction",
            "t0",
            "auroc",
            "flipd_median_memorized",
            "flipd_median_novel",
            "data_lid_memorized",
            "od_mem",
            "dd_mem",
        ],
    )?;
    for r in res {
        for s in &r.snapshots {
            for d in &s.detection {
                w.write_record([
                    spec.variants[r.job.variant].label.clone(),
                    r.job.n.to_string(),
                    r.job.seed.to_string(),
                    s.step.to_string(),
                    s.memorized_fraction.to_string(),
                    d.t0.to_string(),
                    opt(d.auroc),
                    d.flipd_median_memorized.to_string(),
                    d.flipd_median_novel.to_string(),
                    s.data_lid_memorized.to_string(),
                    opt(d.od_mem),
                    opt(d.dd_mem),
                ])?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

fn detection_panel(spec: &Spec, v: &Variant, res: &[&JobResult]) -> Panel {
    let mut p = Panel {
        title: format!("{}: AUROC of -FLIPD (memorized vs novel)", v.label),
        x_label: "N".into(),
        y_label: "AUROC / memorized fraction".into(),
        log_x: true,
        ..Default::default()
    };
    for (i, &t0) in spec.flipd_times.iter().enumerate() {
        let pts: Vec<(f64, f64)> = res
            .iter()
            .filter_map(|r| {
                let s = r.snapshots.last()?;
                let a = s.detection.iter().find(|d| d.t0 == t0)?.auroc?;
                Some((r.job.n as f64, a))
            })
            .collect();
        p.series.push(Series::line(pts, palette(i)).labeled(format!("AUROC, t0 = {t0}")));
    }
    let mem: Vec<(f64, f64)> =
        res.iter().filter_map(|r| Some((r.job.n as f64, r.snapshots.last()?.memorized_fraction))).collect();
    p.series.push(Series::line(mem, palette(5)).dashed().labeled("memorized fraction"));
    p
}

fn transition_panels(spec: &Spec, v: &Variant, res: &[&JobResult], t: f64) -> Vec<Panel> {
    let final_pts = |f: &dyn Fn(&Snapshot) -> f64| -> Vec<(f64, f64)> {
        res.iter().map(|r| (r.job.n as f64, f(r.snapshots.last().expect("snapshots")))).collect()
    };
    let dist = |name: &'static str, emp: bool| {
        move |s: &Snapshot| point(s, name, t).map_or(f64::NAN, |p| if emp { p.dist_empirical } else { p.dist_exact })
    };
    let by_n = |f: &dyn Fn(&Snapshot) -> f64| -> Vec<Series> {
        let bar = size_bar(res);
        res.iter()
            .map(|r| {
                Series::line(r.snapshots.iter().map(|s| (s.step as f64, f(s))).collect(), bar.color(r.job.n as f64))
            })
            .collect()
    };
    let panel = |title: String, x: &str, y: &str, log_x: bool, series: Vec<Series>| Panel {
        title,
        x_label: x.into(),
        y_label: y.into(),
        log_x,
        series,
        ..Panel::default()
    };
    let ratio = |s: &Snapshot| s.heldout_loss / s.train_loss;
    let mem = |s: &Snapshot| s.memorized_fraction;
    let log_y = |mut p: Panel| {
        p.log_y = true;
        p
    };
    vec![
        panel(
            format!("{}: memorized fraction, {} steps", v.label, spec.total()),
            "N",
            "fraction",
            true,
            vec![Series::line(final_pts(&mem), GAP_COLORS[2]).labeled("memorized (ratio < 1/3)")],
        ),
        log_y(panel(
            format!("{}: held-out / train DSM loss", v.label),
            "N",
            "loss ratio",
            true,
            vec![Series::line(final_pts(&ratio), GAP_COLORS[0]).labeled(format!("after {} steps", spec.total()))],
        )),
        panel(format!("{}: memorized fraction", v.label), "training steps", "fraction", true, by_n(&mem)),
        log_y(panel(
            format!("{}: held-out / train DSM loss", v.label),
            "training steps",
            "loss ratio",
            true,
            by_n(&ratio),
        )),
        panel(
            format!("{}: log-spectrum distance, t = {t}", v.label),
            "N",
            "RMS log distance",
            true,
            vec![
                Series::line(final_pts(&dist("train", false)), GAP_COLORS[0]).labeled("to exact, training pt"),
                Series::line(final_pts(&dist("train", true)), GAP_COLORS[2]).labeled("to empirical, training pt"),
                Series::line(final_pts(&dist("origin", false)), GAP_COLORS[0]).dashed().labeled("to exact, x0 = 0"),
                Series::line(final_pts(&dist("origin", true)), GAP_COLORS[2]).dashed().labeled("to empirical, x0 = 0"),
            ],
        ),
    ]
}

/// The colour scale of the training-set size shared by the per-N panels.
fn size_bar(res: &[&JobResult]) -> ColorBar {
    ColorBar::log_over("N", res.iter().map(|r| r.job.n as f64)).up_to(0.9)
}

fn spectra_panels(v: &Variant, res: &[&JobResult], t: f64) -> Vec<Panel> {
    let bar = size_bar(res);
    ["origin", "train", "heldout"]
        .iter()
        .map(|&name| {
            let mut series: Vec<Series> = res
                .iter()
                .filter_map(|r| {
                    let p = point(r.snapshots.last()?, name, t)?;
                    let pts = normalize(&p.net).iter().enumerate().map(|(k, &x)| ((k + 1) as f64, x)).collect();
                    Some(Series::line(pts, bar.color(r.job.n as f64)))
                })
                .collect();
            if let Some(p) = res.first().and_then(|r| point(r.snapshots.last()?, name, t)) {
                let pts = normalize(&p.exact).iter().enumerate().map(|(k, &x)| ((k + 1) as f64, x)).collect();
                series.push(Series::line(pts, GAP_COLORS[0]).dashed().labeled("exact score"));
            }
            let vlines = v
                .marks()
                .iter()
                .zip(GAP_COLORS)
                .map(|(&k, c)| VLine { x: k as f64 + 0.5, color: c, label: format!("{k}") })
                .collect();
            Panel {
                title: format!("{} at {name}, t = {t}", v.label),
                x_label: "index k".into(),
                y_label: "s_k / s_1".into(),
                log_y: true,
                series,
                vlines,
                ..Panel::default()
            }
        })
        .collect()
}

/// Writes CSVs, plots and `summary.md` from the results present; returns the summary.
pub fn aggregate(spec: &Spec, dir: &FigureDir, header: &str) -> Result<String> {
    let (res, missing) = load(spec, dir)?;
    write_csvs(spec, dir, &res)?;
    let t = spec.times.iter().copied().fold(f64::INFINITY, f64::min);
    let mut summary = format!(
        "{header}\n\n{} of {} jobs present{}.\n\n",
        res.len(),
        res.len() + missing,
        if missing > 0 { " (the others have not run: aggregate again when they have)" } else { "" }
    );
    write_detection(dir, spec, &res)?;
    let (mut trans, mut spectra, mut detect) = (Vec::new(), Vec::new(), Vec::new());
    for (vi, v) in spec.variants.iter().enumerate() {
        let mine: Vec<&JobResult> = res.iter().filter(|r| r.job.variant == vi).collect();
        if mine.is_empty() {
            continue;
        }
        for &tt in &spec.times {
            summary.push_str(&variant_table(spec, v, &mine, tt)?);
            summary.push('\n');
            summary.push_str(&onset_table(v, &mine, tt)?);
            summary.push('\n');
        }
        summary.push_str(&detection_table(v, &mine)?);
        summary.push('\n');
        detect.push(detection_panel(spec, v, &mine));
        trans.extend(transition_panels(spec, v, &mine, t));
        spectra.extend(spectra_panels(v, &mine, t));
    }
    if !trans.is_empty() {
        let all: Vec<&JobResult> = res.iter().collect();
        Figure::new(format!("{}: memorization against N and training steps", spec.name), 4)
            .colorbar(size_bar(&all))
            .save(&dir.path("transition"), &trans)?;
        save_panels(&dir.path("detection"), &format!("{}: memorization detection by FLIPD", spec.name), &detect, 2)?;
        Figure::new(format!("{}: trained-net Jacobian spectra (autodiff), t = {t}", spec.name), 3)
            .colorbar(size_bar(&all))
            .save(&dir.path("spectra"), &spectra)?;
    }
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
