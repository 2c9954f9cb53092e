//! Memorized samples: the nearest-neighbour label, the two kinds of Ross et al. (seed 004,
//! Sec. 2), and the AUROC of a score that should separate memorized from novel samples.

use crate::error::{check_width, param, LidError, Result};
use crate::knn::knn;
use faer::MatRef;

/// Nearest-neighbour memorization report of generated samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Memorization {
    /// For each sample, `‖x - y_(1)‖ / ‖x - y_(2)‖` (nearest over second-nearest training
    /// point); `0` means an exact copy.
    pub ratios: Vec<f64>,
    /// Index of each sample's nearest training point.
    pub nearest: Vec<usize>,
    /// Threshold used.
    pub threshold: f64,
    /// Fraction of samples with ratio below the threshold.
    pub fraction_memorized: f64,
}

impl Memorization {
    /// Whether each sample is memorized (`ratio < threshold`).
    pub fn labels(&self) -> Vec<bool> {
        self.ratios.iter().map(|&r| r < self.threshold).collect()
    }

    /// A per-training-point quantity (`per_train[j]` for training point `j`: the data's LID,
    /// say) read at the nearest training point of every memorized sample.
    ///
    /// # Errors
    /// [`LidError::Data`] when `per_train` is shorter than a nearest index.
    pub fn at_memorized(&self, per_train: &[f64]) -> Result<Vec<f64>> {
        self.ratios
            .iter()
            .zip(&self.nearest)
            .filter(|(&r, _)| r < self.threshold)
            .map(|(_, &j)| per_train.get(j).copied())
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| LidError::Data {
                what: "per-training-point values",
                reason: "shorter than the training set".into(),
            })
    }
}

/// The memorization measure: a sample counts as memorized when its nearest training point
/// is closer than `threshold` times the second nearest (1/3 is the common choice). The
/// neighbours come from the exact search of [`knn`].
///
/// # Errors
/// [`LidError::InvalidParameter`] when fewer than two training points are given or the
/// threshold is not in (0, 1]; [`LidError::Data`] for no samples, different dimensions, or
/// a sample or training point with a NaN or infinite coordinate (a diverged sampler must not
/// count as memorizing).
pub fn memorization(samples: MatRef<'_, f64>, train: MatRef<'_, f64>, threshold: f64) -> Result<Memorization> {
    param("training points", train.nrows(), train.nrows() >= 2, "need at least two")?;
    param("threshold", threshold, threshold > 0.0 && threshold <= 1.0, "must lie in (0, 1]")?;
    check_width("samples", samples.ncols(), train.ncols())?;
    let nb = knn(samples, train, 2)?;
    let ratios: Vec<f64> = (0..nb.len())
        .map(|i| {
            let r = nb.distances(i);
            if r[1] > 0.0 {
                r[0] / r[1]
            } else {
                0.0
            }
        })
        .collect();
    let nearest = (0..nb.len()).map(|i| nb.indices(i)[0]).collect();
    let fraction_memorized = ratios.iter().filter(|&&r| r < threshold).count() as f64 / ratios.len() as f64;
    Ok(Memorization { ratios, nearest, threshold, fraction_memorized })
}

/// The area under the ROC curve of `score` for telling `positive` samples from the others:
/// the probability that a random positive scores higher than a random negative, ties counted
/// one half (the Mann–Whitney statistic, by mid-ranks). `None` when either class is empty.
///
/// # Errors
/// [`LidError::Data`] for different lengths or a NaN score.
pub fn auroc(score: &[f64], positive: &[bool]) -> Result<Option<f64>> {
    if score.len() != positive.len() {
        return Err(LidError::Data {
            what: "labels",
            reason: format!("{} labels for {} scores", positive.len(), score.len()),
        });
    }
    if let Some(i) = score.iter().position(|s| s.is_nan()) {
        return Err(LidError::Data { what: "scores", reason: format!("score {i} is NaN") });
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_unstable_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&o| positive[o]).count() as f64 * mid;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Ok(Some(u / (n_pos as f64 * n_neg as f64)))
}

/// The kind of a sample in Ross et al.'s framework (seed 004, Sec. 2, "Two Types of
/// Memorization").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MemKind {
    /// Not memorized by the nearest-neighbour label.
    Novel,
    /// Overfitting-driven memorization: memorized where the model's LID is below the data's,
    /// `LID_θ(x) < LID_*(x) - margin` (a modelling failure: the model does not generalise).
    OdMem,
    /// Data-driven memorization: memorized where the model's LID equals the data's to within
    /// the margin, `|LID_θ(x) - LID_*(x)| <= margin`: the model generalises, and the data
    /// themselves have the low LID the memorized sample shows (duplicates: `LID_* = 0`).
    DdMem,
    /// Memorized although the model's LID lies above the data's, `LID_θ(x) > LID_*(x) +
    /// margin`: neither of the seed's kinds (its LID reading is that of underfitting).
    AboveData,
}

/// Classifies every sample by seed 004's definitions: `Novel` unless memorized; a memorized
/// sample is OD-Mem when the model's LID at it is more than `margin` below the data's LID at
/// its nearest training point, DD-Mem when the two agree to within `margin`, and
/// [`MemKind::AboveData`] when the model's is more than `margin` above.
///
/// # Errors
/// [`LidError::Data`] for slices of different lengths; [`LidError::InvalidParameter`] for a
/// negative or non-finite margin.
pub fn classify(memorized: &[bool], model_lid: &[f64], data_lid: &[f64], margin: f64) -> Result<Vec<MemKind>> {
    param("margin", margin, margin.is_finite() && margin >= 0.0, "must be finite and >= 0")?;
    if model_lid.len() != memorized.len() || data_lid.len() != memorized.len() {
        return Err(LidError::Data { what: "LID values", reason: "one model and one data LID per sample".into() });
    }
    Ok((0..memorized.len())
        .map(|i| {
            let (model, data) = (model_lid[i], data_lid[i]);
            if !memorized[i] {
                MemKind::Novel
            } else if model < data - margin {
                MemKind::OdMem
            } else if model > data + margin {
                MemKind::AboveData
            } else {
                MemKind::DdMem
            }
        })
        .collect())
}

/// Memorization detection by a model's LID at one `t0` (seed 004, Sec. 3).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Detection {
    /// The FLIPD time.
    pub t0: f64,
    /// FLIPD of the model at every sample.
    pub flipd: Vec<f64>,
    /// AUROC of `-FLIPD` for memorized against novel samples (low LID flags memorization);
    /// `None` when one class is empty.
    pub auroc: Option<f64>,
    /// Median FLIPD of the memorized samples (NaN if none).
    pub median_memorized: f64,
    /// Median FLIPD of the novel samples (NaN if none).
    pub median_novel: f64,
    /// The kind of every sample, when the data's LID was given.
    pub kinds: Option<Vec<MemKind>>,
}

impl Detection {
    /// The number of samples of a kind (0 without kinds).
    pub fn count(&self, kind: MemKind) -> usize {
        self.kinds.as_ref().map_or(0, |k| k.iter().filter(|&&c| c == kind).count())
    }
}

/// FLIPD of `field` at every sample for each `t0`, against the nearest-neighbour labels of
/// `mem`: the AUROC, the medians per class and, given the data's LID at every training point
/// (`data_lid[j]` for training point `j`), the kinds with `margin` ([`classify`]).
///
/// # Errors
/// As [`crate::Flipd::estimate`]; [`LidError::Data`] when `mem` and `samples` differ in
/// length or `data_lid` is shorter than a nearest index.
pub fn detect<F: geomem_score::ScoreField + ?Sized>(
    field: &F,
    samples: MatRef<'_, f64>,
    mem: &Memorization,
    data_lid: Option<&[f64]>,
    t0s: &[f64],
    margin: f64,
) -> Result<Vec<Detection>> {
    let labels = mem.labels();
    if labels.len() != samples.nrows() {
        return Err(LidError::Data { what: "memorization", reason: "one label per sample".into() });
    }
    let at_nearest =
        match data_lid {
            Some(dl) => {
                Some(mem.nearest.iter().map(|&j| dl.get(j).copied()).collect::<Option<Vec<f64>>>().ok_or_else(
                    || LidError::Data { what: "data LID", reason: "shorter than the training set".into() },
                )?)
            }
            None => None,
        };
    let class_median = |v: &[f64], want: bool| {
        crate::median(&v.iter().zip(&labels).filter(|(_, &l)| l == want).map(|(x, _)| *x).collect::<Vec<_>>())
    };
    t0s.iter()
        .map(|&t0| {
            let flipd = crate::Flipd::new(t0)?.estimate(field, samples)?;
            let neg: Vec<f64> = flipd.iter().map(|v| -v).collect();
            let kinds = at_nearest.as_ref().map(|dl| classify(&labels, &flipd, dl, margin)).transpose()?;
            Ok(Detection {
                t0,
                auroc: auroc(&neg, &labels)?,
                median_memorized: class_median(&flipd, true),
                median_novel: class_median(&flipd, false),
                kinds,
                flipd,
            })
        })
        .collect()
}
