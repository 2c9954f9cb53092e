//! `green-nets`: the trained-network row of the green-gap table. The toy network of the
//! memorization sweeps (`experiments/green_nets.toml`) trained on the paper's linear data and
//! on the authors' sphere data, each beside its isotropic control; every final net measured
//! like the empirical score in [`super::green_gap`] (centre, training and held-out points,
//! autodiff Jacobian with signed eigenvalues and block weights, and the authors' procedure),
//! beside the empirical score of the net's own training set.

use super::green_gap::{
    cell, empirical_n_eff, marks, measured_panels, measured_summary, time_bar, write_measured_files, Cell, Measured,
    Point, Procedure,
};
use crate::backend::{self, Inner, Train};
use crate::out::{bar, FigureDir};
use crate::plot::Figure;
use crate::sweep::{self, Spec, Variant};
use anyhow::Result;
use geomem_nets::{load_ema, ResidualMlp, TrainConfig, TrainedScore, CHECKPOINT_FILE};
use geomem_score::{EmpiricalScore, ScoreField};
use std::fmt::Write;

/// Points of each kind per net (training and held-out; the centre is one point).
const POINTS: usize = 5;

/// Whether a variant is an isotropic control: every manifold variance equal.
fn is_control(v: &Variant) -> bool {
    v.blocks.windows(2).all(|w| w[0].1 == w[1].1)
}

fn data_name(v: &Variant) -> &'static str {
    if v.sphere {
        "sphere"
    } else {
        "linear"
    }
}

/// The (field, point) pairs of one point kind for one field.
fn pairs<'a, F>(f: &'a F, p: Point, data: &sweep::JobData, d: usize) -> Vec<(&'a F, Vec<f64>)> {
    let rows = |m: &faer::Mat<f64>| -> Vec<Vec<f64>> {
        (0..POINTS.min(m.nrows())).map(|i| m.row(i).iter().copied().collect()).collect()
    };
    let xs = match p {
        Point::Centre => vec![vec![0.0; d]],
        Point::Train => rows(&data.train),
        Point::HeldOut => rows(&data.heldout),
    };
    xs.into_iter().map(|x| (f, x)).collect()
}

/// One trained job: its variant, size, data, and the seed of the authors' procedure.
struct JobView<'a> {
    v: &'a Variant,
    n: usize,
    data: &'a sweep::JobData,
    seed: u64,
}

/// Every (point kind, procedure) family of one field over the times.
fn families<F: ScoreField>(
    f: &F,
    field: &'static str,
    job: &JobView<'_>,
    times: &[f64],
    n_eff: super::green_gap::NEff<'_, F>,
) -> Result<Vec<Measured>> {
    let (v, n, seed) = (job.v, job.n, job.seed);
    let mut out = Vec::new();
    for p in [Point::Centre, Point::Train, Point::HeldOut] {
        let pts = pairs(f, p, job.data, v.d);
        let mk = marks(v.sphere, p);
        for procedure in Procedure::ALL {
            let cells =
                times.iter().map(|&t| cell(procedure, &pts, t, mk, n_eff, seed)).collect::<Result<Vec<Cell>>>()?;
            let (variant, control) = (data_name(v), is_control(v));
            out.push(Measured { variant, control, n, point: p, field, procedure, marks: mk, cells });
        }
    }
    Ok(out)
}

/// Measures the final EMA net of every job of `spec` (trained under `dir`) and the empirical
/// score of its training set.
fn measure_all(spec: &Spec, dir: &FigureDir, times: &[f64]) -> Result<Vec<Measured>> {
    let jobs = spec.jobs();
    let pb = bar(jobs.len() as u64, "green-nets: measuring");
    let mut all = Vec::new();
    for j in &jobs {
        let v = &spec.variants[j.variant];
        let data = sweep::job_data(spec, j)?;
        let path = sweep::job_dir(spec, &dir.dir, j).join(CHECKPOINT_FILE);
        let (ema, stored): (ResidualMlp<Inner>, TrainConfig) = load_ema(&path, &backend::device())?;
        anyhow::ensure!(stored.model == spec.train_config(v, j).model, "{}: another network", path.display());
        let net = TrainedScore::<Train>::new(ema, backend::device());
        let emp = EmpiricalScore::new(data.train.clone())?;
        let job = JobView { v, n: j.n, data: &data, seed: spec.base_seed + 7 };
        all.extend(families(&net, "net", &job, times, &|_, _, _| Ok(f64::NAN))?);
        all.extend(families(&emp, "empirical", &job, times, &empirical_n_eff)?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(all)
}

/// Memorized fraction and held-out/train loss ratio of every net at its last step.
fn memorization_table(spec: &Spec, dir: &FigureDir) -> Result<String> {
    let mut s = String::from("| data | control | N | memorized | held-out / train DSM loss |\n|---|---|---|---|---|\n");
    for j in spec.jobs() {
        let v = &spec.variants[j.variant];
        let text = std::fs::read_to_string(sweep::result_path(spec, &dir.dir, &j))?;
        let r: sweep::measure::JobResult = serde_json::from_str(&text)?;
        let last = r.snapshots.last().ok_or_else(|| anyhow::anyhow!("{}: no snapshot", r.id))?;
        writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} |",
            data_name(v),
            is_control(v),
            j.n,
            last.memorized_fraction,
            last.heldout_loss / last.train_loss
        )?;
    }
    Ok(s)
}

/// Times of the centre-support table.
const SUPPORT_TIMES: [f64; 7] = [AUTHORS_LAST_T, 1e-3, 1e-2, 0.05, 0.1, 0.3, 1.0];

/// The smallest time of the authors' network panel (`plots_synthetic_theory.ipynb`: index 98
/// of `analyze_spectrum.py`'s VE times, σ = 0.0107, t = σ²).
const AUTHORS_LAST_T: f64 = 1.15e-4;

/// How typical the centre is for the inputs the net was trained on at noise level t: the
/// share of noised data `x = y + √t z` whose density `p_t(x)` lies below `p_t(0)` (`p_t`
/// estimated by the Gaussian mixture of 2 000 reference points, `EmpiricalScore::log_density`;
/// 2 000 other points noised). Near 1 the centre is a high-density point of `p_t` (the linear
/// data's mode); near 0 the DSM loss put almost no weight there and the net's Jacobian is
/// extrapolation. One set of draws serves every t.
fn centre_quantiles(v: &Variant, times: &[f64], seed: u64) -> Result<Vec<f64>> {
    const M: usize = 2000;
    let data = v.data()?;
    let (reference, y) = (data.sample(M, seed), data.sample(M, seed + 1));
    let z = geomem_data::gaussian_matrix(M, v.d, seed ^ 0x6365_6e74);
    let density = EmpiricalScore::new(reference)?;
    let origin = faer::Mat::<f64>::zeros(1, v.d);
    times
        .iter()
        .map(|&t| {
            let x = &y + &z * t.sqrt();
            let at_x = density.log_density(x.as_ref(), t)?;
            let at_0 = density.log_density(origin.as_ref(), t)?[0];
            Ok(at_x.iter().filter(|&&l| l < at_0).count() as f64 / M as f64)
        })
        .collect()
}

fn support_table(spec: &Spec) -> Result<String> {
    let mut s = String::from(
        "Density quantile of the centre among the noised training inputs (share of x = y + √t z with p_t(x) < p_t(0); ~0: the DSM loss puts no weight near the centre and a net's Jacobian there is extrapolation):\n\n| data | control |",
    );
    for t in SUPPORT_TIMES {
        write!(s, " t = {t} |")?;
    }
    s.push_str(&format!("\n|---|---|{}\n", "---|".repeat(SUPPORT_TIMES.len())));
    for v in &spec.variants {
        write!(s, "| {} | {} |", data_name(v), is_control(v))?;
        for q in centre_quantiles(v, &SUPPORT_TIMES, spec.base_seed + 31)? {
            write!(s, " {q:.3} |")?;
        }
        s.push('\n');
    }
    Ok(s)
}

/// The times of the compact table: the authors' smallest t, small t (where the sphere's
/// centre is a density hole) and t = 0.05 (inside the empirical score's green window at the
/// sphere's centre).
const CLAIM_TIMES: [f64; 3] = [AUTHORS_LAST_T, 1e-3, 0.05];

fn family<'a>(
    all: &'a [Measured],
    m: &Measured,
    control: bool,
    field: &str,
    procedure: Procedure,
) -> Option<&'a Measured> {
    all.iter().find(|c| {
        c.variant == m.variant
            && c.n == m.n
            && c.point == m.point
            && c.control == control
            && c.field == field
            && c.procedure == procedure
    })
}

/// One line per (data, N, point, t): the green gap of the net (autodiff Jacobian and the
/// authors' procedure) against its isotropic control and against the empirical score of its
/// own training set, the repulsive directions above the green mark and the high-variance
/// block's weight among the directions above it.
fn claims(all: &[Measured], times: &[f64]) -> Result<String> {
    const HEAD: [&str; 12] = [
        "data",
        "N",
        "point",
        "t",
        "gap at 25, net: analytic vs control",
        "net analytic at the d-m mark (24 on sphere points, 23 else) vs control",
        "empirical score of the net's set vs its control",
        "authors' procedure at 25 as their notebook plots it (x = rank in all d values) vs control",
        "authors' procedure, top value dropped, read by its own index, vs control",
        "mean-score share of the authors' top value",
        "repulsive above 25: net / control",
        "high-block weight above 25: net vs control (isotropic 0.29)",
    ];
    let mut rows = Vec::new();
    for m in all.iter().filter(|m| m.field == "net" && m.procedure == Procedure::Analytic && !m.control) {
        let (Some(mc), Some(a), Some(ac), Some(a1), Some(a1c), Some(e), Some(ec)) = (
            family(all, m, true, "net", Procedure::Analytic),
            family(all, m, false, "net", Procedure::Authors),
            family(all, m, true, "net", Procedure::Authors),
            family(all, m, false, "net", Procedure::AuthorsDrop1),
            family(all, m, true, "net", Procedure::AuthorsDrop1),
            family(all, m, false, "empirical", Procedure::Analytic),
            family(all, m, true, "empirical", Procedure::Analytic),
        ) else {
            continue;
        };
        for t in CLAIM_TIMES {
            let i = (0..times.len()).min_by(|&a, &b| (times[a] / t).ln().abs().total_cmp(&(times[b] / t).ln().abs()));
            let Some(i) = i else { continue };
            let g = |x: &Measured| x.cells[i].gaps[1];
            let g0 = |x: &Measured| x.cells[i].gaps[0];
            let vs = |a: f64, b: f64| format!("{a:.2} vs {b:.2}");
            rows.push(vec![
                m.variant.to_string(),
                m.n.to_string(),
                m.point.name().to_string(),
                format!("{:.2e}", times[i]),
                vs(g(m), g(mc)),
                vs(g0(m), g0(mc)),
                vs(g(e), g(ec)),
                vs(g(a), g(ac)),
                vs(g(a1), g(a1c)),
                format!("{:.2}", a.cells[i].mean_share),
                format!("{:.1} / {:.1}", m.cells[i].repulsive_above[1], mc.cells[i].repulsive_above[1]),
                vs(m.cells[i].weights[0], mc.cells[i].weights[0]),
            ]);
        }
    }
    let groups = [
        ("The gaps of the nets (autodiff Jacobian) and of the empirical score, beside the controls:", 3),
        ("The authors' procedure:", 3),
        ("Directions above the green mark:", 2),
    ];
    Ok(crate::out::split_tables(&HEAD, 4, &groups, &rows))
}

/// Runs the analysis on a sweep already trained under `root/<spec.name>`, at the times of
/// its `green_times`; returns its summary.
pub fn run(spec: &Spec, root: &std::path::Path) -> Result<String> {
    let Some(grid) = spec.green_times else {
        anyhow::bail!("{}: the green-gap analysis needs green_times in the sweep's settings", spec.name)
    };
    let dir = FigureDir::new(root, &spec.name)?;
    let times = geomem_rem::refine_around(&grid.values(), &[0.02, 0.05], 0.01, 1)?;
    let all = measure_all(spec, &dir, &times)?;
    let green = FigureDir::new(&dir.dir, "green")?;
    green.write_json("config.json", &serde_json::json!({"spec": spec, "times": times, "points_per_kind": POINTS}))?;
    write_measured_files(&green, &all, &times)?;
    for &n in &[spec.sizes[0], *spec.sizes.last().expect("checked")] {
        Figure::new(format!("Trained nets, N = {n}, autodiff Jacobian"), 4)
            .colorbar(time_bar(&times))
            .save(&green.path(&format!("nets_N{n}")), &measured_panels(&all, &times, n, "net"))?;
    }
    // The whole table (nets and the empirical score of their training sets) goes to a file;
    // the summary keeps the nets' rows.
    let title = "Trained nets and the empirical score of their own training sets";
    green.write_text("table.md", &measured_summary(title, &all, &times)?)?;
    Ok(format!(
        "## green-nets: trained networks on linear and sphere data beside isotropic controls\n\n{}\n{}\n### The green gap (25) of the nets beside their controls (marks on the sphere away from its centre: 24/25/29)\n\n{}\n(Intervals in t, all marks, both procedures, and the empirical score of every net's training set: `green/table.md`.)\n",
        memorization_table(spec, &dir)?,
        support_table(spec)?,
        claims(&all, &times)?
    ))
}
