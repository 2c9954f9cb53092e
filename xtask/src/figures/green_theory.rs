//! The closed forms of the green-gap question (issue: "Where the paper's green gap comes
//! from"): Eq. 19 as printed and derived, with the exact and the Eq. 15 condensation time,
//! and the authors' notebook form on linear and on sphere data, each beside its isotropic
//! control, on a `t`-grid refined around every onset time of `φ`.

use crate::out::logspace;
use anyhow::Result;
use geomem_rem::{refine_around, ClosedForm, CondensationMethod, EmpiricalJacobianModel, NotebookTheory};
use geomem_spectral::{intervals_where, marked_gaps, normalize, OPEN_LOG_GAP};

/// The marked positions at `x0 = 0` for 2 + 5 in d = 30: d - m, d - m2 (green), d - m1.
pub const MARKS: [usize; 3] = [23, 25, 28];

/// Binds a form to variances.
type Bind = Box<dyn Fn(&[f64]) -> Result<Evaluator>>;

/// One closed form: its name and how to evaluate it for given variances.
pub struct Form {
    pub name: &'static str,
    /// Variances of the 2 + 5 data the form is evaluated on.
    pub sigma2: Vec<f64>,
    eval: Bind,
}

/// A form bound to variances: its spectrum at `t` and the times where its `φ` switch on.
pub struct Evaluator {
    spectrum: Box<dyn Fn(f64) -> Result<Vec<f64>>>,
    pub onsets: Vec<f64>,
}

fn blocks(v1: f64, v2: f64, off: f64) -> Vec<f64> {
    [vec![v1; 2], vec![v2; 5], vec![off; 23]].concat()
}

/// The isotropic control of `sigma2`: the seven manifold variances replaced by their mean.
pub fn isotropic(sigma2: &[f64]) -> Vec<f64> {
    let mean = sigma2[..7].iter().sum::<f64>() / 7.0;
    blocks(mean, mean, sigma2[7])
}

fn eq18(form: ClosedForm, method: CondensationMethod, n: f64) -> Bind {
    Box::new(move |s: &[f64]| {
        let m = EmpiricalJacobianModel::new(s, n)?.with_condensation(method);
        let onsets = m.onset_times()?;
        Ok(Evaluator { spectrum: Box::new(move |t| Ok(m.closed_form_spectrum(t, form)?)), onsets })
    })
}

fn notebook(n: f64, sphere: bool) -> Bind {
    Box::new(move |s: &[f64]| {
        let m = NotebookTheory::new(s, n, sphere)?;
        let onsets = m.onset_times();
        Ok(Evaluator { spectrum: Box::new(move |t| Ok(m.spectrum(t)?)), onsets })
    })
}

/// The forms, at `n` points: linear data are the paper's (variances 1 and 0.3), sphere data
/// the authors' notebook's (standard deviations 1, 0.3 and 1e-6 off the manifold).
pub fn forms(n: f64) -> Vec<Form> {
    let lin = blocks(1.0, 0.3, 0.0);
    let nb = blocks(1.0, 0.09, 1e-12);
    let (p, d) = (ClosedForm::Eq19AsPrinted, ClosedForm::Derived);
    let (ex, lt) = (CondensationMethod::Exact, CondensationMethod::LargeT);
    vec![
        Form { name: "eq19_printed_eq15_tc", sigma2: lin.clone(), eval: eq18(p, lt, n) },
        Form { name: "eq19_printed_exact_tc", sigma2: lin.clone(), eval: eq18(p, ex, n) },
        Form { name: "derived_exact_tc", sigma2: lin.clone(), eval: eq18(d, ex, n) },
        Form { name: "derived_eq15_tc", sigma2: lin.clone(), eval: eq18(d, lt, n) },
        Form { name: "notebook_linear", sigma2: lin, eval: notebook(n, false) },
        Form { name: "notebook_sphere", sigma2: nb, eval: notebook(n, true) },
    ]
}

/// A form's spectra on its refined grid, for the 2 + 5 variances or their control.
pub struct TheoryRun {
    pub form: &'static str,
    pub control: bool,
    pub times: Vec<f64>,
    /// Normalised spectra, one per time.
    pub spectra: Vec<Vec<f64>>,
    /// Log gaps at [`MARKS`], one triple per time.
    pub gaps: Vec<[f64; 3]>,
    pub onsets: Vec<f64>,
}

impl TheoryRun {
    /// The `t`-intervals where the gap at `MARKS[j]` is open.
    pub fn open(&self, j: usize) -> Vec<(f64, f64)> {
        let labels: Vec<usize> = self.gaps.iter().map(|g| if g[j] >= OPEN_LOG_GAP { MARKS[j] } else { 0 }).collect();
        intervals_where(&self.times, &labels, MARKS[j])
    }
}

/// Evaluates `form` (or its control) on `logspace(1e-3, 10, base)` refined by 21 points
/// within ±10 % of every onset time.
pub fn run_form(form: &Form, control: bool, base: usize) -> Result<TheoryRun> {
    let sigma2 = if control { isotropic(&form.sigma2) } else { form.sigma2.clone() };
    let mut ev = (form.eval)(&sigma2)?;
    ev.onsets.sort_by(f64::total_cmp);
    ev.onsets.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
    let times = refine_around(&logspace(1e-3, 10.0, base), &ev.onsets, 0.1, 21)?;
    let mut spectra = Vec::with_capacity(times.len());
    let mut gaps = Vec::with_capacity(times.len());
    for &t in &times {
        let s = (ev.spectrum)(t)?;
        let g = marked_gaps(&s, &MARKS)?;
        gaps.push([0, 1, 2].map(|j| g.at_marks[j].unwrap_or(f64::NAN)));
        spectra.push(normalize(&s));
    }
    Ok(TheoryRun { form: form.name, control, times, spectra, gaps, onsets: ev.onsets })
}
