//! FLIPD (Kamkari, Ross, Hosseinzadeh, Cresswell and Loaiza-Ganem 2024): the local intrinsic
//! dimension a diffusion model assigns to a point, from the rate at which its noised density
//! changes.
//!
//! For the variance-exploding process `x_t = x_0 + √t ε` the Fokker–Planck equation gives
//! `∂_t log p_t = ½(tr ∇s + |s|²)`, and `log p_t(x) ≈ const + (m - d)/2 · ln t` near a
//! manifold of dimension `m`, so
//!
//! ```text
//! FLIPD(x, t0) = d + t0 · (tr ∇s(x, t0) + |s(x, t0)|²)                     (VE form)
//! ```
//!
//! For a DDPM noise predictor at step `k` (`x_k = √ᾱ_k x_0 + σ_k ε`, `σ_k² = 1 - ᾱ_k`,
//! `s = -ε̂/σ_k`) the same quantity is
//!
//! ```text
//! FLIPD(x, k) = d - σ_k tr ∇ε̂(√ᾱ_k x, k) + |ε̂(√ᾱ_k x, k)|²                 (VP form)
//! ```
//!
//! which equals the VE form of the adapted field at `t_k = (1 - ᾱ_k)/ᾱ_k` (`tests/flipd.rs`
//! checks both against each other). The trace is exact below a dimension threshold and
//! Hutchinson's seeded estimate above ([`DivergenceParams`]).
//!
//! Closed forms used by the tests: on a Gaussian linear manifold with variances `λ_i`,
//! `FLIPD = d - Σ_i t/(λ_i + t) + t Σ_i x_i²/(λ_i + t)²`, which tends to `m` at points of the
//! manifold as `t → 0`; on the empirical score of points `y_μ` with posterior weights `w_μ`,
//! `FLIPD = Σ_μ w_μ |x - y_μ|² / t`, which tends to 0 at a training point.

use crate::error::{check_points, param, Result};
use faer::{Mat, MatRef};
use geomem_score::{
    rademacher_probes, DdpmSchedule, DivergenceParams, ScoreError, ScoreField, ScoreFieldExt, VpEpsModel, VpTime,
};

/// Rows per call of the field in [`Flipd::estimate`].
pub const FLIPD_BATCH: usize = 64;

/// FLIPD settings: the time `t0` and how the trace is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Flipd {
    /// The VE time at which the score is read.
    pub t0: f64,
    /// Exact trace threshold, Hutchinson probes, seed.
    pub divergence: DivergenceParams,
}

impl Flipd {
    /// At time `t0` with the default trace settings (exact up to `d = 1024`).
    ///
    /// # Errors
    /// [`crate::LidError::InvalidParameter`] unless `t0` is finite and `> 0`.
    pub fn new(t0: f64) -> Result<Self> {
        param("t0", t0, t0.is_finite() && t0 > 0.0, "must be finite and > 0")?;
        Ok(Self { t0, divergence: DivergenceParams::default() })
    }

    /// With other trace settings.
    pub fn divergence(mut self, p: DivergenceParams) -> Self {
        self.divergence = p;
        self
    }

    /// FLIPD of every row of `x` under `field` (VE form).
    ///
    /// # Errors
    /// The field's validation ([`ScoreError`] for a wrong width, NaN) and its own errors.
    ///
    /// Points go to the field in batches of [`FLIPD_BATCH`] rows, so that a field whose
    /// divergence holds a Jacobian per point (a trained net by autodiff) never holds all of
    /// them at once.
    pub fn estimate<F: ScoreField + ?Sized>(&self, field: &F, x: MatRef<'_, f64>) -> Result<Vec<f64>> {
        let d = field.dim() as f64;
        let mut out = Vec::with_capacity(x.nrows());
        for i0 in (0..x.nrows()).step_by(FLIPD_BATCH) {
            let xb = x.subrows(i0, FLIPD_BATCH.min(x.nrows() - i0));
            let s = field.score_batch(xb, self.t0)?;
            // Point i keeps the probe stream seed + i of an unbatched call.
            let p = self.divergence.seed(self.divergence.seed.wrapping_add(i0 as u64));
            let div = field.divergence_batch(xb, self.t0, &p)?;
            out.extend((0..xb.nrows()).map(|i| {
                let s2: f64 = s.row(i).iter().map(|v| v * v).sum();
                d + self.t0 * (div[i] + s2)
            }));
        }
        Ok(out)
    }
}

/// FLIPD of every row of `x` at each time of `ts`: an `n × ts.len()` matrix (the FLIPD
/// curve of each point, whose knee [`knee`] picks a `t0`).
///
/// # Errors
/// As [`Flipd::estimate`]; [`crate::LidError::InvalidParameter`] for a time that is not
/// finite and positive.
pub fn flipd_curve<F: ScoreField + ?Sized>(
    field: &F,
    x: MatRef<'_, f64>,
    ts: &[f64],
    divergence: DivergenceParams,
) -> Result<Mat<f64>> {
    let mut out = Mat::zeros(x.nrows(), ts.len());
    for (c, &t) in ts.iter().enumerate() {
        let v = Flipd::new(t)?.divergence(divergence).estimate(field, x)?;
        for (i, vi) in v.into_iter().enumerate() {
            out[(i, c)] = vi;
        }
    }
    Ok(out)
}

/// The knee of a curve `(ln t_i, y_i)`: where it leaves its small-`t` plateau. By the
/// Kneedle rule (Satopää et al. 2011): with both coordinates scaled to `[0, 1]`, the point
/// farthest from the chord between the first and last point on the plateau's side (above
/// the chord for a curve that falls, below for one that rises). `None` for fewer than three
/// points, a non-finite value, a flat curve or no point on that side.
pub fn knee(ts: &[f64], y: &[f64]) -> Option<usize> {
    let n = ts.len();
    if n < 3 || y.len() != n || ts.iter().chain(y).any(|v| !v.is_finite()) || ts.iter().any(|&t| t <= 0.0) {
        return None;
    }
    let x: Vec<f64> = ts.iter().map(|t| t.ln()).collect();
    let scaled = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &u| (a.min(u), b.max(u)));
        (hi > lo).then(|| v.iter().map(|u| (u - lo) / (hi - lo)).collect::<Vec<f64>>())
    };
    let (xs, ys) = (scaled(&x)?, scaled(y)?);
    let side = if ys[n - 1] <= ys[0] { 1.0 } else { -1.0 };
    let slope = (ys[n - 1] - ys[0]) / (xs[n - 1] - xs[0]);
    let height = |i: usize| side * (ys[i] - ys[0] - slope * (xs[i] - xs[0]));
    let best = (1..n - 1).max_by(|&a, &b| height(a).total_cmp(&height(b)))?;
    (height(best) > 0.0).then_some(best)
}

/// FLIPD of a DDPM noise predictor at step `k` (VP form).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FlipdVp {
    /// The model's schedule.
    pub schedule: DdpmSchedule,
    /// The step `k` at which the noise prediction is read.
    pub step: usize,
    /// Exact trace threshold, Hutchinson probes, seed.
    pub divergence: DivergenceParams,
}

impl FlipdVp {
    /// At step `k` of `schedule`.
    ///
    /// # Errors
    /// [`crate::LidError::Score`] for a step outside the schedule.
    pub fn new(schedule: DdpmSchedule, step: usize) -> Result<Self> {
        schedule.alpha_bar(step)?;
        Ok(Self { schedule, step, divergence: DivergenceParams::default() })
    }

    /// With other trace settings.
    pub fn divergence(mut self, p: DivergenceParams) -> Self {
        self.divergence = p;
        self
    }

    /// FLIPD of every row of `x` (clean-data coordinates) under `model`.
    ///
    /// # Errors
    /// [`crate::LidError::Data`] for empty, non-finite or wrongly sized points; the model's
    /// own errors.
    pub fn estimate<M: VpEpsModel + ?Sized>(&self, model: &M, x: MatRef<'_, f64>) -> Result<Vec<f64>> {
        check_points("points", x, 1)?;
        crate::error::check_width("points", x.ncols(), model.dim())?;
        let ab = self.schedule.alpha_bar(self.step)?;
        let (a, sigma) = (ab.sqrt(), (1.0 - ab).sqrt());
        let xv = Mat::from_fn(x.nrows(), x.ncols(), |i, j| a * x[(i, j)]);
        let time = VpTime::Step(self.step);
        let mut eps = Mat::zeros(x.nrows(), x.ncols());
        model.eps_into(xv.as_ref(), time, eps.as_mut())?;
        let h = model.precision().epsilon().cbrt() * sigma;
        let tr = eps_divergence(model, xv.as_ref(), time, h, &self.divergence)?;
        let d = x.ncols() as f64;
        Ok((0..x.nrows())
            .map(|i| {
                let e2: f64 = eps.row(i).iter().map(|v| v * v).sum();
                d - sigma * tr[i] + e2
            })
            .collect())
    }
}

/// Rows of perturbed points per call of the model in [`eps_divergence`].
const DIVERGENCE_ROWS: usize = 8192;

/// `tr ∇ε̂` at every row of `x` by central differences of step `h`: along `e_1..e_d` when
/// `d <= exact_below`, along seeded Rademacher probes (Hutchinson; point `i` uses the stream
/// `seed + i`, as the VE default does) above. The `2K` perturbations of as many points as fit
/// in [`DIVERGENCE_ROWS`] rows go to the model in one call.
fn eps_divergence<M: VpEpsModel + ?Sized>(
    model: &M,
    x: MatRef<'_, f64>,
    time: VpTime,
    h: f64,
    p: &DivergenceParams,
) -> std::result::Result<Vec<f64>, ScoreError> {
    let (n, d) = (x.nrows(), x.ncols());
    let exact = d <= p.exact_below;
    let k = if exact { d } else { p.probes };
    let per_call = (DIVERGENCE_ROWS / (2 * k)).max(1);
    let mut out = Vec::with_capacity(n);
    for i0 in (0..n).step_by(per_call) {
        let m = per_call.min(n - i0);
        // Hutchinson probes per point; the canonical basis needs no matrix.
        let probes: Vec<Mat<f64>> = if exact {
            Vec::new()
        } else {
            (i0..i0 + m).map(|i| rademacher_probes(k, d, p.seed.wrapping_add(i as u64))).collect()
        };
        let dir = |b: usize, q: usize, j: usize| if exact { f64::from(u8::from(q == j)) } else { probes[b][(q, j)] };
        // Rows 2k·b .. 2k·b + k: point i0 + b plus h·dir; the next k rows: minus h·dir.
        let pts = Mat::from_fn(2 * k * m, d, |r, j| {
            let (b, q) = (r / (2 * k), r % (2 * k));
            x[(i0 + b, j)] + if q < k { h } else { -h } * dir(b, q % k, j)
        });
        let mut e = Mat::zeros(2 * k * m, d);
        model.eps_into(pts.as_ref(), time, e.as_mut())?;
        for b in 0..m {
            let base = 2 * k * b;
            let sum: f64 = if exact {
                (0..d).map(|q| e[(base + q, q)] - e[(base + q + k, q)]).sum()
            } else {
                (0..k)
                    .map(|q| (0..d).map(|j| dir(b, q, j) * (e[(base + q, j)] - e[(base + q + k, j)])).sum::<f64>())
                    .sum()
            };
            out.push(sum / (2.0 * h) / if exact { 1.0 } else { k as f64 });
        }
    }
    Ok(out)
}
