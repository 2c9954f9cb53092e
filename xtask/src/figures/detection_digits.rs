//! Seed 004's memorization detection on real images: the toy network trained on nested
//! subsets of the embedded 8×8 digits, FLIPD of its samples against the nearest-neighbour
//! memorization label, AUROC against the training-set size, OD-Mem against DD-Mem.
//!
//! Data in: `geomem_data::digits()` (1797 images, d = 64, in [-1, 1]); training sets are
//! prefixes of one seeded permutation (`NestedSubsets`). Analysis: `geomem_lid::{memorization,
//! detect}`, with the data's LID at a training image taken as the MLE LID (k = 20) of that
//! image within all 1797 digits. The network is the residual MLP of the toy experiments, not
//! the paper's U-Net (issue 8): this figure tests the detection, not the image model.

use crate::backend::{self, Train};
use crate::out::FigureDir;
use crate::plot::{palette, save_panels, Panel, Series};
use anyhow::Result;
use geomem_data::{digits, NestedSubsets};
use geomem_lid::{detect, median, memorization, Detection, MemKind, Mle};
use geomem_nets::{sample, ResidualMlpConfig, SamplingParams, TrainConfig, TrainedScore};
use std::fmt::Write;
use std::ops::ControlFlow;

const T0S: [f64; 2] = [1e-3, 1e-2];

/// Settings of the digits detection figure (`figure = "detection-digits"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// Training-set sizes (nested prefixes of one permutation of the 1797 digits).
    pub sizes: Vec<usize>,
    /// Training steps per net (Adam 3e-3, EMA 0.999, batch 128).
    pub steps: u64,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        let ok = !self.sizes.is_empty() && self.sizes.iter().all(|n| (2..=1797).contains(n));
        anyhow::ensure!(ok && self.steps >= 1, "{}: sizes in 2..=1797 and steps >= 1", self.name);
        Ok(())
    }
}

struct JobOut {
    n: usize,
    memorized_fraction: f64,
    data_lid_memorized: f64,
    det: Vec<Detection>,
}

fn job(n: usize, images: &faer::Mat<f64>, data_lid: &[f64], steps: u64, seed: u64) -> Result<JobOut> {
    let subsets = NestedSubsets::new(images.nrows(), seed);
    let idx = subsets.indices(n)?.to_vec();
    let train_set = subsets.subset(images.as_ref(), n)?;
    let cfg = TrainConfig::new(ResidualMlpConfig::new(64))
        .with_steps(steps)
        .with_lr(3e-3)
        .with_ema_decay(0.999)
        .with_seed(seed + n as u64)
        .with_checkpoint_every(0)
        .with_log_every(steps);
    let state = backend::train_toy(train_set.as_ref(), &cfg, None, &mut |_| ControlFlow::Continue(()))?;
    let net = TrainedScore::<Train>::new(state.ema, backend::device());
    let samples = sample(&net, 200, &SamplingParams::default().seed(seed + 17))?;
    let mem = memorization(samples.as_ref(), train_set.as_ref(), 1.0 / 3.0)?;
    // The data's LID at training image j is that of the image within all digits.
    let lid_train: Vec<f64> = idx.iter().map(|&g| data_lid[g]).collect();
    let det = detect(&net, samples.as_ref(), &mem, Some(&lid_train), &T0S, 0.5)?;
    let at_mem: Vec<f64> =
        mem.labels().iter().zip(&mem.nearest).filter(|(l, _)| **l).map(|(_, &j)| lid_train[j]).collect();
    Ok(JobOut { n, memorized_fraction: mem.fraction_memorized, data_lid_memorized: median(&at_mem), det })
}

pub fn run(st: &Settings, root: &std::path::Path) -> Result<String> {
    st.check()?;
    let out = FigureDir::new(root, &st.name)?;
    let (sizes, steps) = (&st.sizes, st.steps);
    let d = digits()?;
    let data_lid = Mle::default().pointwise(d.images.as_ref())?;
    out.write_json(
        "config.json",
        &serde_json::json!({ "sizes": sizes, "steps": steps, "lr": 3e-3, "ema": 0.999, "samples": 200, "t0": T0S, "data_lid": "MLE k = 20 within all 1797 digits", "margin": 0.5, "seed": st.seed }),
    )?;
    let pb = crate::out::bar(sizes.len() as u64, "digits detection: nets");
    let mut res =
        super::common::on_two_workers(sizes.clone(), |n| job(n, &d.images, &data_lid, steps, st.seed), || pb.inc(1))?;
    pb.finish_and_clear();
    res.sort_by_key(|r| r.n);
    report(&out, &res, &data_lid)
}

fn report(out: &FigureDir, res: &[JobOut], data_lid: &[f64]) -> Result<String> {
    let mut w = out.csv(
        "detection.csv",
        &[
            "n",
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
    let mut md = format!(
        "## detection_digits\n\nToy residual MLP on nested subsets of the 8×8 digits; 200 samples per net. Data LID (MLE k = 20 within all 1797 digits): median {:.2}.\n\n| N | memorized | t0 | AUROC of -FLIPD | median FLIPD memorized / novel | data LID at memorized | OD-Mem / DD-Mem |\n|---|---|---|---|---|---|---|\n",
        median(data_lid)
    );
    for r in res {
        for d in &r.det {
            let auc = d.auroc.map_or("-".into(), |a| format!("{a:.3}"));
            let (od, dd) = (d.count(MemKind::OdMem), d.count(MemKind::DdMem));
            w.write_record([
                r.n.to_string(),
                r.memorized_fraction.to_string(),
                d.t0.to_string(),
                auc.clone(),
                d.median_memorized.to_string(),
                d.median_novel.to_string(),
                r.data_lid_memorized.to_string(),
                od.to_string(),
                dd.to_string(),
            ])?;
            writeln!(
                md,
                "| {} | {:.2} | {} | {auc} | {:.2} / {:.2} | {:.2} | {od} / {dd} |",
                r.n, r.memorized_fraction, d.t0, d.median_memorized, d.median_novel, r.data_lid_memorized
            )?;
        }
    }
    w.flush()?;
    out.write_text("summary.md", &md)?;
    let mut auc = Panel {
        title: "AUROC of -FLIPD, memorized vs novel".into(),
        x_label: "N".into(),
        y_label: "AUROC / fraction".into(),
        log_x: true,
        ..Default::default()
    };
    let mut med = Panel {
        title: "median FLIPD of the samples".into(),
        x_label: "N".into(),
        y_label: "FLIPD".into(),
        log_x: true,
        ..Default::default()
    };
    for (i, &t0) in T0S.iter().enumerate() {
        let pick = |f: &dyn Fn(&Detection) -> Option<f64>| -> Vec<(f64, f64)> {
            res.iter()
                .filter_map(|r| Some((r.n as f64, f(r.det.iter().find(|d| d.t0 == t0)?)?)))
                .filter(|p| p.1.is_finite())
                .collect()
        };
        auc.series.push(Series::line(pick(&|d| d.auroc), palette(i)).labeled(format!("AUROC, t0 = {t0}")));
        med.series.push(
            Series::line(pick(&|d| Some(d.median_memorized)), palette(i)).labeled(format!("memorized, t0 = {t0}")),
        );
        med.series.push(
            Series::line(pick(&|d| Some(d.median_novel)), palette(i)).dashed().labeled(format!("novel, t0 = {t0}")),
        );
    }
    auc.series.push(
        Series::line(res.iter().map(|r| (r.n as f64, r.memorized_fraction)).collect(), palette(5))
            .dashed()
            .labeled("memorized fraction"),
    );
    save_panels(&out.path("detection"), "Memorization detection by FLIPD on the 8×8 digits (toy MLP)", &[auc, med], 2)?;
    Ok(md)
}
