//! What a sweep measures on one net at one snapshot: memorized samples, the train/held-out
//! loss gap, and Jacobian spectra at x0 = 0, a training point and a held-out point, beside
//! the exact score's and the empirical score of the net's own training set.

use super::{Job, JobData, Spec, Variant};
use crate::backend::{self, Inner, Train};
use anyhow::Result;
use faer::Mat;
use geomem_lid::{median, memorization, MemKind, Mle};
use geomem_nets::{dsm_loss, sample, LossDraws, ResidualMlp, SamplingParams, TrainedScore};
use geomem_score::{EmpiricalScore, GaussianScore, ScoreField};
use geomem_spectral::{
    authors_spectrum, block_stiffness, block_weights_in_top, log_spectrum_distance, signed_spectrum, singular_values,
    spectrum, OrthonormalBasis, SpectrumEstimator, SpectrumParams,
};
use serde::{Deserialize, Serialize};

/// Spectra and block analysis of the three fields at one point and time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointResult {
    /// `origin`, `train` (the first training point) or `heldout` (a fresh manifold point).
    pub point: String,
    pub t: f64,
    /// Singular values of the net's Jacobian (exact, by automatic differentiation).
    pub net: Vec<f64>,
    /// The improved Normal Bundle spectrum of the net (random orthonormal perturbations of
    /// size √t, one-sided differences).
    pub net_nb: Vec<f64>,
    /// The authors' synthetic procedure on the net: scores at `x + √t n_i` for the `d` rows
    /// of one Haar orthogonal matrix, divided by `√t` (Normal Bundle, `K = d`).
    #[serde(default)]
    pub net_authors: Vec<f64>,
    /// Eigenvalues of the symmetric part of the net's Jacobian and of the empirical score's,
    /// by decreasing |λ| (`geomem_spectral::signed_spectrum`; λ > 0 is repulsive).
    #[serde(default)]
    pub net_signed: Vec<f64>,
    #[serde(default)]
    pub empirical_signed: Vec<f64>,
    /// The Gaussian score of the data's per-axis variances: the exact score, except for
    /// data on the sphere, where it is only the Gaussian of the same axes.
    pub exact: Vec<f64>,
    pub empirical: Vec<f64>,
    /// RMS distance of the net's log spectrum to the exact and to the empirical one.
    pub dist_exact: f64,
    pub dist_empirical: f64,
    /// RMS gain per block (the variant's blocks, then the normal block): net, exact, empirical.
    pub stiffness: [Vec<f64>; 3],
    /// Per marked count k (`Variant::marks`): weight of each block in the net's k stiffest
    /// right singular vectors; then the same for the empirical score.
    pub weights: Vec<Vec<f64>>,
    pub weights_empirical: Vec<Vec<f64>>,
}

/// JSON writes NaN as `null`; read it back as NaN.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nan() -> f64 {
    f64::NAN
}

/// Memorization detection at one `t0` (seed 004): FLIPD of the net at every sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    pub t0: f64,
    /// AUROC of `-FLIPD` for memorized against novel samples (`None`: one class is empty).
    pub auroc: Option<f64>,
    #[serde(deserialize_with = "nan_from_null")]
    pub flipd_median_memorized: f64,
    #[serde(deserialize_with = "nan_from_null")]
    pub flipd_median_novel: f64,
    /// Memorized samples whose FLIPD lies more than 0.5 below the data's MLE LID at their
    /// nearest training point (OD-Mem), and the others (DD-Mem); `None` below N = 3.
    pub od_mem: Option<usize>,
    pub dd_mem: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub step: u64,
    pub memorized_fraction: f64,
    /// Median MLE LID of the training set (k = min(20, N - 1)) at the memorized samples'
    /// nearest training points; NaN below N = 3 or without memorized samples.
    #[serde(default = "nan", deserialize_with = "nan_from_null")]
    pub data_lid_memorized: f64,
    #[serde(default)]
    pub detection: Vec<Detection>,
    pub train_loss: f64,
    pub heldout_loss: f64,
    pub points: Vec<PointResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub job: Job,
    pub id: String,
    pub seconds: f64,
    pub snapshots: Vec<Snapshot>,
}

/// Measures the EMA net `ema` of job `j` after `step` steps.
pub fn snapshot(
    spec: &Spec,
    v: &Variant,
    j: &Job,
    data: &JobData,
    ema: ResidualMlp<Inner>,
    step: u64,
) -> Result<Snapshot> {
    let dev = backend::device();
    let draws = LossDraws { draws: 8192, sigma_min: 0.01, sigma_max: 50.0, seed: spec.base_seed + 99 };
    let train_loss = dsm_loss(&ema, data.train.as_ref(), &draws, &dev)?;
    let heldout_loss = dsm_loss(&ema, data.heldout.as_ref(), &draws, &dev)?;
    let net = TrainedScore::<Train>::new(ema, dev);
    let params = SamplingParams::default().steps(spec.sample_steps).seed(spec.base_seed + 9 + j.seed);
    let samples = sample(&net, spec.samples, &params)?;
    let mem = memorization(samples.as_ref(), data.train.as_ref(), 1.0 / 3.0)?;
    let memorized_fraction = mem.fraction_memorized;
    let (data_lid_memorized, detection) = detect(spec, &net, &samples, data, &mem)?;
    let fields = Fields {
        net: &net,
        exact: GaussianScore::from_variances(&v.data()?.principal_variances())?,
        empirical: EmpiricalScore::new(data.train.clone())?,
        identity: OrthonormalBasis::new(Mat::identity(v.d, v.d))?,
    };
    let at: [(&str, Vec<f64>); 3] = [
        ("origin", vec![0.0; v.d]),
        ("train", data.train.row(0).iter().copied().collect()),
        ("heldout", data.heldout.row(0).iter().copied().collect()),
    ];
    let mut points = Vec::new();
    for (name, x) in &at {
        for &t in &spec.times {
            points.push(fields.point(v, name, x, t, spec.base_seed + 5)?);
        }
    }
    Ok(Snapshot { step, memorized_fraction, data_lid_memorized, detection, train_loss, heldout_loss, points })
}

/// FLIPD of the net at every sample against the nearest-neighbour labels
/// (`geomem_lid::detect`), with the data's MLE LID (the training set's own, k = min(20, N - 1))
/// at the nearest training point.
fn detect(
    spec: &Spec,
    net: &TrainedScore<Train>,
    samples: &Mat<f64>,
    data: &JobData,
    mem: &geomem_lid::Memorization,
) -> Result<(f64, Vec<Detection>)> {
    let n = data.train.nrows();
    let data_lid = if n >= 3 { Some(Mle::new((n - 1).min(20), false)?.pointwise(data.train.as_ref())?) } else { None };
    let found = geomem_lid::detect(net, samples.as_ref(), mem, data_lid.as_deref(), &spec.flipd_times, 0.5)?;
    let memorized = data_lid.as_deref().map(|dl| mem.at_memorized(dl)).transpose()?.unwrap_or_default();
    let out = found
        .iter()
        .map(|d| Detection {
            t0: d.t0,
            auroc: d.auroc,
            flipd_median_memorized: d.median_memorized,
            flipd_median_novel: d.median_novel,
            od_mem: d.kinds.as_ref().map(|_| d.count(MemKind::OdMem)),
            dd_mem: d.kinds.as_ref().map(|_| d.count(MemKind::DdMem)),
        })
        .collect();
    Ok((median(&memorized), out))
}

struct Fields<'a> {
    net: &'a TrainedScore<Train>,
    exact: GaussianScore,
    empirical: EmpiricalScore,
    identity: OrthonormalBasis,
}

impl Fields<'_> {
    fn jacobian<F: ScoreField>(&self, f: &F, x: &[f64], t: f64) -> Result<Mat<f64>> {
        Ok(SpectrumEstimator::in_basis(SpectrumParams::pointwise(), &self.identity).jacobian(f, x, t)?)
    }

    fn point(&self, v: &Variant, name: &str, x: &[f64], t: f64, seed: u64) -> Result<PointResult> {
        let jn = self.jacobian(self.net, x, t)?;
        let je = self.jacobian(&self.exact, x, t)?;
        let jm = self.jacobian(&self.empirical, x, t)?;
        let (net, exact, empirical) =
            (singular_values(jn.as_ref())?, singular_values(je.as_ref())?, singular_values(jm.as_ref())?);
        let nb = spectrum(self.net, x, t, &SpectrumParams::improved_normal_bundle(seed))?.into_values();
        let net_authors = authors_spectrum(self.net, x, t, seed + 1)?.values;
        let (basis, ranges, marks) = (self.identity.as_mat(), v.ranges(), v.marks());
        let stiff = |j: &Mat<f64>| block_stiffness(j.as_ref(), basis, &ranges);
        let weights = |j: &Mat<f64>| block_weights_in_top(j.as_ref(), basis, &ranges, &marks);
        Ok(PointResult {
            point: name.into(),
            t,
            dist_exact: log_spectrum_distance(&net, &exact)?,
            dist_empirical: log_spectrum_distance(&net, &empirical)?,
            stiffness: [stiff(&jn)?, stiff(&je)?, stiff(&jm)?],
            weights: weights(&jn)?,
            weights_empirical: weights(&jm)?,
            net,
            net_nb: nb,
            net_authors,
            net_signed: signed_spectrum(jn.as_ref())?,
            empirical_signed: signed_spectrum(jm.as_ref())?,
            exact,
            empirical,
        })
    }
}
