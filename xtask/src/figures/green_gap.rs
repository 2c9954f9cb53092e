//! `green-gap`: where the paper's gap at d - m2 = 25 ("the high-variance subspace is lost
//! first") comes from. Closed forms ([`super::green_theory`]) and the empirical score on
//! the paper's linear data and on the authors' sphere data, at the centre, at training and
//! at held-out points, each beside its isotropic control, with the signed eigenvalues of
//! the Jacobian and the weight of each variance block among the stiff directions.

use super::common::LogGrid;
use super::green_theory::{self as theory, TheoryRun};
use crate::out::{bar, FigureDir};
use crate::plot::{ColorBar, Figure, Panel, Series, VLine, GAP_COLORS};
use anyhow::Result;
use faer::Mat;
use geomem_data::{Block, Embedding, LinearManifold, NoisyLinear};
use geomem_score::{EmpiricalScore, ScoreField};
use geomem_spectral::{
    authors_spectrum, block_weights_in_top, format_intervals, intervals_where, marked_gaps, normalize, sign_split,
    signed_spectrum, OrthonormalBasis, SpectrumEstimator, SpectrumParams, OPEN_LOG_GAP,
};
use std::fmt::Write;
use std::path::Path;

const D: usize = 30;

/// A data variant: the paper's linear data or the authors' sphere data, or a control.
struct Variant {
    name: &'static str,
    data: NoisyLinear,
    sphere: bool,
    control: bool,
}

fn variants() -> Result<Vec<Variant>> {
    let lin = LinearManifold::new(
        D,
        &[Block { dim: 2, variance: 1.0 }, Block { dim: 5, variance: 0.3 }],
        Embedding::Aligned,
    )?;
    let linear = NoisyLinear::new(lin, 0.0, None)?;
    let sphere = NoisyLinear::authors(D, 2, 5)?;
    Ok(vec![
        Variant { name: "linear", data: linear.isotropic_control()?, sphere: false, control: true },
        Variant { name: "linear", data: linear, sphere: false, control: false },
        Variant { name: "sphere", data: sphere.isotropic_control()?, sphere: true, control: true },
        Variant { name: "sphere", data: sphere, sphere: true, control: false },
    ])
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Point {
    Centre,
    Train,
    HeldOut,
}

impl Point {
    pub(super) fn name(self) -> &'static str {
        match self {
            Point::Centre => "centre",
            Point::Train => "train",
            Point::HeldOut => "held_out",
        }
    }
}

/// Marked positions (d - m, green d - m2, red d - m1). On the sphere, away from its centre,
/// the radial direction is normal: it leaves the high-variance block at a typical point
/// (`docs/THEORY.md` §8), so d - (m - 1), d - m2, d - (m1 - 1).
pub(super) fn marks(sphere: bool, p: Point) -> [usize; 3] {
    if sphere && p != Point::Centre {
        [24, 25, 29]
    } else {
        theory::MARKS
    }
}

/// What one (variant, N, point kind, procedure, t) measures, averaged over the points.
pub(super) struct Cell {
    pub(super) gaps: [f64; 3],
    /// How often each mark is the largest log gap (fraction of points).
    pub(super) largest: [f64; 3],
    /// Mean number of repulsive directions above each mark (analytic only).
    pub(super) repulsive_above: [f64; 3],
    /// Mean weight of the high and low block among the stiff directions above the green and
    /// the red mark: `[high@green, low@green, high@red, low@red]` (analytic only).
    pub(super) weights: [f64; 4],
    pub(super) n_eff: f64,
    /// Authors' procedure: share of its largest singular value due to the mean score
    /// (`√K |mean column| / s_1`; NaN for the analytic Jacobian).
    pub(super) mean_share: f64,
    pub(super) spectrum: Vec<f64>,
    /// Signed eigenvalues times t, by decreasing |λ| (analytic only).
    pub(super) signed: Vec<f64>,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

fn mean_vec(vs: &[Vec<f64>]) -> Vec<f64> {
    (0..vs[0].len()).map(|i| mean(vs.iter().map(|v| v[i]))).collect()
}

/// Per point: marked gaps, largest-gap hits, repulsive counts, block weights, N_eff.
type PointRow = ([f64; 3], [f64; 3], [f64; 3], [f64; 4], f64);

/// N_eff of a field at a point and time (NaN where the field has no posterior weights).
pub(super) type NEff<'a, F> = &'a dyn Fn(&F, &[f64], f64) -> Result<f64>;

/// N_eff of the empirical score's posterior weights.
pub(super) fn empirical_n_eff(f: &EmpiricalScore, x: &[f64], t: f64) -> Result<f64> {
    Ok(f.posterior(x, t)?.n_eff)
}

/// The analytic Jacobian at every point: singular values, signs, block weights, N_eff.
pub(super) fn analytic<F: ScoreField>(
    pts: &[(&F, Vec<f64>)],
    t: f64,
    mk: [usize; 3],
    n_eff: NEff<'_, F>,
) -> Result<Cell> {
    let basis = OrthonormalBasis::from_directions(geomem_spectral::Directions::Canonical, D);
    let ranges = [0..2, 2..7];
    let (mut spectra, mut signed, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for (field, x) in pts {
        let j = SpectrumEstimator::in_basis(SpectrumParams::pointwise(), &basis).jacobian(*field, x, t)?;
        let ev = signed_spectrum(j.as_ref())?;
        let s: Vec<f64> = ev.iter().map(|v| v.abs()).collect();
        let g = marked_gaps(&s, &mk)?;
        let w = block_weights_in_top(j.as_ref(), basis.as_mat(), &ranges, &[mk[1], mk[2]])?;
        let rep = [0, 1, 2].map(|k| sign_split(&ev, mk[k]).map(|x| x.repulsive_above as f64).unwrap_or(f64::NAN));
        let gaps = [0, 1, 2].map(|k| g.at_marks[k].unwrap_or(f64::NAN));
        let largest = [0, 1, 2].map(|k| f64::from(u8::from(g.largest_at == mk[k])));
        rows.push((gaps, largest, rep, [w[0][0], w[0][1], w[1][0], w[1][1]], n_eff(field, x, t)?));
        spectra.push(normalize(&s));
        signed.push(ev.iter().map(|v| v * t).collect());
    }
    let col3 = |f: &dyn Fn(&PointRow) -> [f64; 3]| [0, 1, 2].map(|k| mean(rows.iter().map(|r| f(r)[k])));
    Ok(Cell {
        gaps: col3(&|r| r.0),
        largest: col3(&|r| r.1),
        repulsive_above: col3(&|r| r.2),
        weights: [0, 1, 2, 3].map(|k| mean(rows.iter().map(|r| r.3[k]))),
        n_eff: mean(rows.iter().map(|r| r.4)),
        mean_share: f64::NAN,
        spectrum: mean_vec(&spectra),
        signed: mean_vec(&signed),
    })
}

/// The procedures of every measured family: the analytic Jacobian; the authors' synthetic
/// procedure with all `d` singular values; and the same with the largest dropped, as the
/// authors' `analyze_spectrum.py` does by default (`drop_first=True`), marks read on the
/// remaining `d - 1` values by their own index. The authors' notebook plots the dropped
/// spectrum's 0-based index `j` at `x = j + 2`, the rank among all `d` values, so the gaps
/// their figure shows at its marks are those of `authors`, not of `authors_drop1`
/// (`docs/THEORY.md` §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Procedure {
    /// The field's own Jacobian (`pointwise_jacobian`).
    Analytic,
    /// The authors' procedure (`geomem_spectral::authors_spectrum`), all `d` values.
    Authors,
    /// The same without its largest value.
    AuthorsDrop1,
}

impl Procedure {
    /// Every procedure, in table order.
    pub(super) const ALL: [Procedure; 3] = [Procedure::Analytic, Procedure::Authors, Procedure::AuthorsDrop1];

    /// The name in tables and CSV files.
    pub(super) fn name(self) -> &'static str {
        match self {
            Procedure::Analytic => "analytic",
            Procedure::Authors => "authors",
            Procedure::AuthorsDrop1 => "authors_drop1",
        }
    }
}

impl std::fmt::Display for Procedure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One cell of `procedure`.
pub(super) fn cell<F: ScoreField>(
    procedure: Procedure,
    pts: &[(&F, Vec<f64>)],
    t: f64,
    mk: [usize; 3],
    n_eff: NEff<'_, F>,
    seed: u64,
) -> Result<Cell> {
    match procedure {
        Procedure::Analytic => analytic(pts, t, mk, n_eff),
        Procedure::Authors => authors(pts, t, mk, seed, false),
        Procedure::AuthorsDrop1 => authors(pts, t, mk, seed, true),
    }
}

/// The authors' synthetic procedure at every point (`geomem_spectral::authors_spectrum`,
/// the Haar matrix of point `i` from `seed + i`), optionally without the largest singular
/// value; `mean_share` is the mean over the points of the mean score's share of the top value.
fn authors<F: ScoreField>(pts: &[(&F, Vec<f64>)], t: f64, mk: [usize; 3], seed: u64, drop: bool) -> Result<Cell> {
    let (mut spectra, mut rows) = (Vec::new(), Vec::new());
    for (i, (field, x)) in pts.iter().enumerate() {
        let a = authors_spectrum(*field, x, t, seed + i as u64)?;
        let s = if drop { a.values[1..].to_vec() } else { a.values };
        let g = marked_gaps(&s, &mk)?;
        rows.push((
            [0, 1, 2].map(|k| g.at_marks[k].unwrap_or(f64::NAN)),
            [0, 1, 2].map(|k| f64::from(u8::from(g.largest_at == mk[k]))),
            a.mean_share,
        ));
        spectra.push(normalize(&s));
    }
    Ok(Cell {
        gaps: [0, 1, 2].map(|k| mean(rows.iter().map(|r| r.0[k]))),
        largest: [0, 1, 2].map(|k| mean(rows.iter().map(|r| r.1[k]))),
        repulsive_above: [f64::NAN; 3],
        weights: [f64::NAN; 4],
        n_eff: f64::NAN,
        mean_share: mean(rows.iter().map(|r| r.2)),
        spectrum: mean_vec(&spectra),
        signed: Vec::new(),
    })
}

/// One measured curve family: (variant, N, point kind, field, procedure) over the times.
pub(super) struct Measured {
    pub(super) variant: &'static str,
    pub(super) control: bool,
    pub(super) n: usize,
    pub(super) point: Point,
    /// `empirical` or `net` (a trained network).
    pub(super) field: &'static str,
    pub(super) procedure: Procedure,
    pub(super) marks: [usize; 3],
    pub(super) cells: Vec<Cell>,
}

/// The (field, point) pairs of a point kind: the centre of `count` independent training
/// sets (one point per set says nothing about a set), or `count` training or held-out
/// points of the first set.
fn points<'a>(
    v: &Variant,
    fields: &'a [EmpiricalScore],
    p: Point,
    count: usize,
    seed: u64,
) -> Vec<(&'a EmpiricalScore, Vec<f64>)> {
    let row = |m: &Mat<f64>, i: usize| m.row(i).iter().copied().collect::<Vec<f64>>();
    match p {
        Point::Centre => fields.iter().map(|f| (f, vec![0.0; D])).collect(),
        Point::Train => (0..count).map(|i| (&fields[0], fields[0].data().row(i).iter().copied().collect())).collect(),
        Point::HeldOut => {
            let h = v.data.sample(count, seed ^ 0x68656c64);
            (0..count).map(|i| (&fields[0], row(&h, i))).collect()
        }
    }
}

fn measure(v: &Variant, n: usize, times: &[f64], st: &Settings) -> Result<Vec<Measured>> {
    let count = st.points_per_kind;
    let fields = (0..count as u64)
        .map(|r| EmpiricalScore::new(v.data.sample(n, st.seed + 1000 * r)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for p in [Point::Centre, Point::Train, Point::HeldOut] {
        let pts = points(v, &fields, p, count, st.seed + 1);
        let mk = marks(v.sphere, p);
        for procedure in Procedure::ALL {
            let cells = times
                .iter()
                .map(|&t| cell(procedure, &pts, t, mk, &empirical_n_eff, st.seed + 7))
                .collect::<Result<Vec<_>>>()?;
            let field = "empirical";
            out.push(Measured { variant: v.name, control: v.control, n, point: p, field, procedure, marks: mk, cells });
        }
    }
    Ok(out)
}

fn open_intervals(times: &[f64], gaps: impl Iterator<Item = f64>, mark: usize) -> Vec<(f64, f64)> {
    let labels: Vec<usize> = gaps.map(|g| if g >= OPEN_LOG_GAP { mark } else { 0 }).collect();
    intervals_where(times, &labels, mark)
}

type Csv = csv::Writer<std::fs::File>;

fn write_measured(mut w: Csv, mut s: Csv, all: &[Measured], times: &[f64]) -> Result<()> {
    for m in all {
        for (c, &t) in m.cells.iter().zip(times) {
            let id = [
                m.variant.to_string(),
                m.control.to_string(),
                m.n.to_string(),
                m.point.name().into(),
                m.field.into(),
                m.procedure.name().into(),
                format!("{t:e}"),
            ];
            let mut row = id.to_vec();
            row.extend(m.marks.iter().map(|v| v.to_string()));
            row.extend(
                c.gaps.iter().chain(&c.largest).chain(&c.repulsive_above).chain(&c.weights).map(|v| format!("{v:.4}")),
            );
            row.push(format!("{:.4}", c.n_eff));
            row.push(format!("{:.4}", c.mean_share));
            w.write_record(&row)?;
            for (i, v) in c.spectrum.iter().enumerate() {
                let signed = c.signed.get(i).map_or(String::new(), |x| format!("{x:e}"));
                let mut r = id.to_vec();
                r.extend([(i + 1).to_string(), format!("{v:e}"), signed]);
                s.write_record(&r)?;
            }
        }
    }
    w.flush()?;
    s.flush()?;
    Ok(())
}

fn write_theory(mut w: Csv, mut g: Csv, runs: &[TheoryRun]) -> Result<()> {
    for r in runs {
        let id = [r.form.to_string(), r.control.to_string(), r.position.name().to_string()];
        for (((t, s), gaps), ab) in r.times.iter().zip(&r.spectra).zip(&r.gaps).zip(&r.above_green) {
            for (i, v) in s.iter().enumerate() {
                let mut row = id.to_vec();
                row.extend([format!("{t:e}"), (i + 1).to_string(), format!("{v:e}")]);
                w.write_record(&row)?;
            }
            let mut row = id.to_vec();
            row.push(format!("{t:e}"));
            row.extend(gaps.iter().chain(ab).map(|v| format!("{v:.4}")));
            g.write_record(&row)?;
        }
    }
    w.flush()?;
    g.flush()?;
    Ok(())
}

/// The table of the closed forms at one position: where each mark is open (form and
/// control), and at the `t` where the green gap is largest, its size and how many high and
/// low directions lie above it.
fn theory_summary(runs: &[TheoryRun], position: theory::Position, title: &str) -> Result<String> {
    let mut s = format!("### {title}\n\n| form | onsets of φ (t) | 23 open | 25 open | 28 open | control: 23 | 25 | 28 | max gap 25 at t (control) | weights high / low above 25 there (control) | points with 25 open at some t (control) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    let runs: Vec<&TheoryRun> = runs.iter().filter(|r| r.position == position).collect();
    for pair in runs.chunks(2) {
        let (main, ctrl) = (pair[0], pair[1]);
        let on: Vec<String> = main.onsets.iter().take(8).map(|t| format!("{t:.3}")).collect();
        let more = if main.onsets.len() > 8 { format!(" … ({} in all)", main.onsets.len()) } else { String::new() };
        write!(s, "| {} | {}{more} |", main.form, on.join(", "))?;
        for r in [main, ctrl] {
            for j in 0..3 {
                write!(s, " {} |", format_intervals(&r.open(j)))?;
            }
        }
        let k = (0..main.times.len()).max_by(|&a, &b| main.gaps[a][1].total_cmp(&main.gaps[b][1])).unwrap_or(0);
        // The control has its own grid: its nearest time in ln t.
        let near = |t: f64| (t / main.times[k]).ln().abs();
        let kc =
            (0..ctrl.times.len()).min_by(|&a, &b| near(ctrl.times[a]).total_cmp(&near(ctrl.times[b]))).unwrap_or(0);
        let (m, c) = (main.above_green[k], ctrl.above_green[kc]);
        writeln!(
            s,
            " {:.2} at {:.4} ({:.2}) | {:.2} / {:.2} ({:.2} / {:.2}) | {} ({}) |",
            main.gaps[k][1],
            main.times[k],
            ctrl.gaps[kc][1],
            m[0],
            m[1],
            c[0],
            c[1],
            open_points(main),
            open_points(ctrl)
        )?;
    }
    Ok(s)
}

/// `j of n` points whose green gap is open at some time, the largest such gap, and the
/// mean high / low block weights above the green mark at each open point's largest gap.
fn open_points(r: &TheoryRun) -> String {
    let open: Vec<&theory::PointGreen> = r.point_green.iter().filter(|p| p.gap >= OPEN_LOG_GAP).collect();
    if open.is_empty() {
        return format!("0 of {}", r.point_green.len());
    }
    let top = open.iter().map(|p| p.gap).fold(f64::NAN, f64::max);
    let (h, l) = (mean(open.iter().map(|p| p.above[0])), mean(open.iter().map(|p| p.above[1])));
    let lo = open.iter().map(|p| p.t).fold(f64::INFINITY, f64::min);
    let hi = open.iter().map(|p| p.t).fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{} of {}, max {top:.2}, at t {lo:.3} to {hi:.3}, weights high / low above {h:.2} / {l:.2}",
        open.len(),
        r.point_green.len()
    )
}

fn fmt3(v: [f64; 3]) -> String {
    format!("{:.2} / {:.2} / {:.2}", v[0], v[1], v[2])
}

/// The table row of one measured family: where each mark opens, and at the t where the
/// green gap is largest, its size, signs and block weights beside the control's.
fn measured_row(m: &Measured, ctrl: &Measured, times: &[f64]) -> Result<String> {
    let mut s = format!("| {} | {} | {} | {} | {} |", m.variant, m.n, m.point.name(), m.field, m.procedure);
    for j in 0..3 {
        let iv = open_intervals(times, m.cells.iter().map(|c| c.gaps[j]), m.marks[j]);
        let ic = open_intervals(times, ctrl.cells.iter().map(|c| c.gaps[j]), m.marks[j]);
        write!(s, " {} (control {}) |", format_intervals(&iv), format_intervals(&ic))?;
    }
    let best = (0..times.len()).max_by(|&a, &b| m.cells[a].gaps[1].total_cmp(&m.cells[b].gaps[1])).unwrap_or(0);
    let (c, k) = (&m.cells[best], &ctrl.cells[best]);
    write!(s, " {:.3}: {:.2} vs {:.2} |", times[best], c.gaps[1], k.gaps[1])?;
    if m.procedure == Procedure::Analytic {
        let w = |c: &Cell, i: usize| format!("{:.2}/{:.2}", c.weights[i], c.weights[i + 1]);
        write!(
            s,
            " {} | {} vs {} | {} vs {} | {:.0} |",
            fmt3(c.repulsive_above),
            w(c, 0),
            w(k, 0),
            w(c, 2),
            w(k, 2),
            c.n_eff
        )?;
    } else {
        s.push_str(" – | – | – | – |");
    }
    s.push('\n');
    Ok(s)
}

/// The table of measured families against their controls, under `title`.
pub(super) fn measured_summary(title: &str, all: &[Measured], times: &[f64]) -> Result<String> {
    let mut s = format!("### {title} (marks: centre and linear data 23/25/28; sphere points 24/25/29)\n\nColumns: t-intervals where each marked gap is open, with the isotropic control's in brackets; the t where the green gap (25) is largest, its log gap against the control's at that t; repulsive directions above the three marks (analytic Jacobian); block weights high/low among the stiff directions above the green and above the red mark, against the control's (1 = inside); mean N_eff (empirical score only); all at the t of the green column.\n\n| data | N | point | field | procedure | d-m open | green open | red open | green largest at t: gap vs control | repulsive above marks | weights high/low above green vs control | above red vs control | N_eff |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for m in all.iter().filter(|m| !m.control) {
        let ctrl = all
            .iter()
            .find(|c| {
                c.control
                    && c.variant == m.variant
                    && c.n == m.n
                    && c.point == m.point
                    && c.field == m.field
                    && c.procedure == m.procedure
            })
            .ok_or_else(|| anyhow::anyhow!("no control for {}", m.variant))?;
        s.push_str(&measured_row(m, ctrl, times)?);
    }
    Ok(s)
}

fn find<'a>(
    all: &'a [Measured],
    data: &str,
    control: bool,
    n: usize,
    p: Point,
    proc_: Procedure,
) -> Option<&'a Measured> {
    all.iter().find(|m| m.variant == data && m.control == control && m.n == n && m.point == p && m.procedure == proc_)
}

/// The claims of the docs and the paper, each beside its control, at the times they were
/// made.
fn claims(all: &[Measured], times: &[f64], sizes: &[usize]) -> Result<String> {
    let at = |t: f64| {
        (0..times.len()).min_by(|&a, &b| (times[a] / t).ln().abs().total_cmp(&(times[b] / t).ln().abs())).unwrap_or(0)
    };
    let mut s = String::from(
        "\n### Claims beside their controls\n\n| claim | N | t | 2 + 5 | isotropic control |\n|---|---|---|---|---|\n",
    );
    for &n in sizes {
        let (Some(m), Some(c)) = (
            find(all, "linear", false, n, Point::Centre, Procedure::Analytic),
            find(all, "linear", true, n, Point::Centre, Procedure::Analytic),
        ) else {
            continue;
        };
        let i = at(0.02);
        let f = |x: &Measured| {
            let k = &x.cells[i];
            format!(
                "gap 28 = {:.2}, high/low weight above 28 = {:.2}/{:.2}, N_eff = {:.1}",
                k.gaps[2], k.weights[2], k.weights[3], k.n_eff
            )
        };
        writeln!(
            s,
            "| linear data, x0 = 0: \"low-variance block lost first\" (gap at 28) | {n} | {:.3} | {} | {} |",
            times[i],
            f(m),
            f(c)
        )?;
    }
    for &n in sizes {
        let i = at(0.05);
        for proc_ in Procedure::ALL {
            let (Some(m), Some(c)) = (
                find(all, "sphere", false, n, Point::Centre, proc_),
                find(all, "sphere", true, n, Point::Centre, proc_),
            ) else {
                continue;
            };
            let f = |x: &Measured| {
                let k = &x.cells[i];
                if proc_ == Procedure::Analytic {
                    format!(
                        "gap 25 = {:.2}, repulsive above 25 = {:.0}, N_eff/N = {:.2}",
                        k.gaps[1],
                        k.repulsive_above[1],
                        k.n_eff / n as f64
                    )
                } else {
                    format!("gap 25 = {:.2}", k.gaps[1])
                }
            };
            writeln!(s, "| sphere data, centre ({proc_}): \"high-variance block lost first\" (gap at 25) | {n} | {:.3} | {} | {} |", times[i], f(m), f(c))?;
        }
    }
    Ok(s)
}

fn vlines(marks: [usize; 3]) -> Vec<VLine> {
    let names = ["d-m", "green d-m2", "red d-m1"];
    marks
        .iter()
        .zip(GAP_COLORS)
        .zip(names)
        .map(|((&p, c), l)| VLine { x: p as f64 + 0.5, color: c, label: format!("{l} = {p}") })
        .collect()
}

/// The colour scale of time shared by the spectra panels.
pub(super) fn time_bar(times: &[f64]) -> ColorBar {
    ColorBar::log_over("t", times.iter().copied())
}

fn curves(values: &[Vec<f64>], times: &[f64], abs: bool) -> Vec<Series> {
    let bar = time_bar(times);
    values
        .iter()
        .zip(times)
        .map(|(v, &t)| {
            let pts = v
                .iter()
                .enumerate()
                .map(|(i, &y)| ((i + 1) as f64, if abs { y.abs().max(1e-12) } else { y }))
                .collect();
            Series::line(pts, bar.color(t))
        })
        .collect()
}

/// Spectra and signed eigenvalues of every analytic family of `field` at size `n`.
pub(super) fn measured_panels(all: &[Measured], times: &[f64], n: usize, field: &str) -> Vec<Panel> {
    let mut panels = Vec::new();
    for m in all.iter().filter(|m| m.n == n && m.procedure == Procedure::Analytic && m.field == field) {
        let tag =
            format!("{}{} {}", m.variant, if m.control { " control" } else { "" }, m.point.name().replace('_', "-"));
        let spectra: Vec<Vec<f64>> = m.cells.iter().map(|c| c.spectrum.clone()).collect();
        let signed: Vec<Vec<f64>> = m.cells.iter().map(|c| c.signed.clone()).collect();
        panels.push(Panel {
            title: format!("{tag}: s_k/s_1"),
            x_label: "k".into(),
            y_label: "s_k / s_1".into(),
            log_y: true,
            series: curves(&spectra, times, true),
            vlines: vlines(m.marks),
            ..Panel::default()
        });
        panels.push(Panel {
            title: format!("{tag}: signed λ_k·t"),
            x_label: "k (by |λ|)".into(),
            y_label: "λ_k t (> 0 repulsive)".into(),
            series: curves(&signed, times, false),
            vlines: vlines(m.marks),
            ..Panel::default()
        });
    }
    panels
}

/// A closed form's name (an identifier in the CSV files) as a panel title.
fn form_title(name: &str) -> &str {
    match name {
        "eq19_printed_eq15_tc" => "Eq. 19 as printed, Eq. 15 t_c",
        "eq19_printed_exact_tc" => "Eq. 19 as printed, exact t_c",
        "derived_exact_tc" => "Eq. 19 derived, exact t_c",
        "derived_eq15_tc" => "Eq. 19 derived, Eq. 15 t_c",
        "notebook_linear" => "authors' notebook, linear data",
        "notebook_linear_own_scales" => "authors' notebook, linear data on its own scales",
        "notebook_sphere" => "authors' notebook, sphere data",
        other => other,
    }
}

fn theory_panels(runs: &[TheoryRun], position: theory::Position) -> Vec<Panel> {
    runs.iter()
        .filter(|r| r.position == position)
        .map(|r| Panel {
            title: format!("{}{}", form_title(r.form), if r.control { " (control)" } else { "" }),
            x_label: "k".into(),
            y_label: "s_k / s_1".into(),
            log_y: true,
            series: curves(&r.spectra, &r.times, true),
            vlines: vlines(theory::MARKS),
            ..Panel::default()
        })
        .collect()
}

/// `measured.csv` (marked gaps, signs, block weights, N_eff per family and t) and
/// `spectra.csv` (mean normalised singular values and signed eigenvalues).
pub(super) fn write_measured_files(dir: &FigureDir, all: &[Measured], times: &[f64]) -> Result<()> {
    const ID: [&str; 7] = ["data", "control", "n", "point", "field", "procedure", "t"];
    let marks = ["manifold", "green", "red"];
    let mut head: Vec<String> = ID.iter().map(|s| s.to_string()).collect();
    for prefix in ["mark", "log_gap", "largest", "repulsive_above"] {
        head.extend(marks.iter().map(|m| format!("{prefix}_{m}")));
    }
    head.extend(
        ["w_high_top_green", "w_low_top_green", "w_high_top_red", "w_low_top_red", "n_eff", "mean_score_share_of_s1"]
            .map(String::from),
    );
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let shead = [&ID[..], &["index", "normalized_singular_value", "signed_eigenvalue_times_t"]].concat();
    write_measured(dir.csv("measured.csv", &head)?, dir.csv("spectra.csv", &shead)?, all, times)
}

/// Settings of the green-gap figure (`figure = "green-gap"`; d = 30, 2 + 5, linear and the
/// authors' sphere data, fixed by the question it answers).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// Training-set sizes of the empirical score.
    pub sizes: Vec<usize>,
    /// Times of the measured spectra (0.02 and 0.05 are added: the times of the docs'
    /// earlier claims).
    pub times: LogGrid,
    /// Points per kind (training sets at the centre, training points, held-out points).
    pub points_per_kind: usize,
    /// N of the closed forms.
    pub theory_n: f64,
    /// Points of the closed forms' base grid `logspace(1e-3, 10, ·)`.
    pub theory_base_times: usize,
    /// Points of the manifold where the closed forms are evaluated.
    pub theory_points: usize,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(!self.sizes.is_empty() && self.sizes.iter().all(|n| *n >= 2), "{}: sizes >= 2", self.name);
        self.times.check("times")?;
        let ok = self.points_per_kind >= 1 && self.theory_points >= 1 && self.theory_base_times >= 2;
        anyhow::ensure!(ok, "{}: points_per_kind, theory_points >= 1, theory_base_times >= 2", self.name);
        anyhow::ensure!(self.theory_n.is_finite() && self.theory_n > 1.0, "{}: theory_n > 1", self.name);
        Ok(())
    }
}

/// Runs the figure; returns its summary.
pub fn run(st: &Settings, root: &Path) -> Result<String> {
    st.check()?;
    let dir = FigureDir::new(root, &st.name)?;
    let sizes = &st.sizes;
    // 0.02 and 0.05: the times at which the docs' earlier claims were made (fig9, t = 0.02).
    let times = geomem_rem::refine_around(&st.times.values(), &[0.02, 0.05], 0.01, 1)?;
    let base = st.theory_base_times;
    dir.write_json("config.json", &serde_json::json!({"settings": st, "d": D, "blocks": "2 + 5", "times": times}))?;
    let manifold = theory::Position::Manifold { count: st.theory_points, seed: st.seed + 11 };
    let mut runs = Vec::new();
    for f in theory::forms(st.theory_n) {
        for (position, refine) in [(theory::Position::Centre, 21), (manifold, 7)] {
            runs.push(theory::run_form(&f, false, position, base, refine)?);
            runs.push(theory::run_form(&f, true, position, base, refine)?);
        }
    }
    write_theory(
        dir.csv("theory.csv", &["form", "control", "position", "t", "index", "normalized_value"])?,
        dir.csv(
            "theory_gaps.csv",
            &[
                "form",
                "control",
                "position",
                "t",
                "log_gap_23",
                "log_gap_25",
                "log_gap_28",
                "high_above_25",
                "low_above_25",
            ],
        )?,
        &runs,
    )?;
    let vs = variants()?;
    let pb = bar((vs.len() * sizes.len()) as u64, "green-gap");
    let mut all = Vec::new();
    for v in &vs {
        for &n in sizes {
            all.extend(measure(v, n, &times, st)?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    write_measured_files(&dir, &all, &times)?;
    let theory_times = runs.first().map_or(times.clone(), |r| r.times.clone());
    Figure::new(format!("Green gap: closed forms, N = {}, x0 = 0", st.theory_n), 4)
        .colorbar(time_bar(&theory_times))
        .save(&dir.path("theory"), &theory_panels(&runs, theory::Position::Centre))?;
    Figure::new(format!("Green gap: closed forms, N = {}, mean over points of the manifold", st.theory_n), 4)
        .colorbar(time_bar(&theory_times))
        .save(&dir.path("theory_manifold"), &theory_panels(&runs, manifold))?;
    Figure::new(format!("Green gap: empirical score, N = {}, analytic Jacobian", sizes[0]), 4)
        .colorbar(time_bar(&times))
        .save(&dir.path("measured"), &measured_panels(&all, &times, sizes[0], "empirical"))?;
    let summary = format!(
        "## green-gap: where the gap at d - m2 comes from\n\n{}\n{}\n{}{}",
        theory_summary(&runs, theory::Position::Centre, &format!("Closed forms (N = {}, x0 = 0; t-grid refined within ±10 % of every onset time)", st.theory_n))?,
        theory_summary(&runs, manifold, &format!("Closed forms at points of the manifold (seed 000 Eq. 34-37; N = {}, mean over {} points x ~ N(0, Λ), on the sphere for the sphere form; a point independent of the training set, i.e. held-out)", st.theory_n, st.theory_points))?,
        measured_summary("Empirical score", &all, &times)?,
        claims(&all, &times, sizes)?
    );
    dir.write_text("summary.md", &summary)?;
    Ok(summary)
}
