//! The authors' synthetic Normal Bundle procedure (their `analyze_spectrum.py`,
//! `compute_singular_values_orthg`): the scores at `x + √t n_i` for the `K = d` rows `n_i`
//! of one Haar orthogonal matrix, divided by `√t` (Algorithm 1 of seed 001, Supp. B.1, with
//! [`Perturbation::UnitOrthonormal`]), and how much of its largest singular value the mean
//! score accounts for.

use crate::error::{singular_values, Result};
use crate::normal_bundle::{normal_bundle_matrix, NormalBundleParams, NormalBundleVariant, Perturbation};
use geomem_score::ScoreField;

/// The spectrum of the authors' procedure at one point.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuthorsSpectrum {
    /// All `d` singular values, largest first (the authors drop the first before
    /// normalising: `drop_first=True`).
    pub values: Vec<f64>,
    /// The share of the largest singular value due to the mean score, a rank-one part of
    /// the matrix `M`: `√K |m̄| / s_1` with `m̄ = (1/K) Σ_i M e_i` the mean column. At most
    /// 1 (`s_1 ≥ |M 1| / √K`), and 1 exactly when the mean direction is a top singular
    /// direction.
    pub mean_share: f64,
}

/// The authors' procedure at `x` and time `t`, the Haar matrix drawn from `seed`.
///
/// # Formula
/// `M = [s(x + √t n_1, t), …, s(x + √t n_d, t)] / √t` (`d × d`, the rows `n_i` of a Haar
/// orthogonal matrix), its singular values `s_1 ≥ … ≥ s_d`, and `√d |M 1 / d| / s_1`.
///
/// ```
/// use geomem_score::GaussianScore;
/// use geomem_spectral::authors_spectrum;
/// // The isotropic field of N(0, v I): at its centre M = -N/(v + t), every value 1/(v + t)
/// // and the mean score's share 1.
/// let (v, t) = (2.0, 0.5);
/// let f = GaussianScore::from_variances(&[v; 6]).unwrap();
/// let a = authors_spectrum(&f, &[0.0; 6], t, 3).unwrap();
/// assert!(a.values.iter().all(|s| (s - 1.0 / (v + t)).abs() < 1e-12));
/// assert!((a.mean_share - 1.0).abs() < 1e-12);
/// ```
///
/// # Errors
/// As [`normal_bundle_matrix`], plus [`crate::SpectralError::SvdNoConvergence`].
pub fn authors_spectrum<F: ScoreField + ?Sized>(field: &F, x: &[f64], t: f64, seed: u64) -> Result<AuthorsSpectrum> {
    let d = field.dim();
    let p = NormalBundleParams::default()
        .k(d)
        .variant(NormalBundleVariant::Scores)
        .perturbation(Perturbation::UnitOrthonormal)
        .seed(seed);
    let m = normal_bundle_matrix(field, x, t, &p)?;
    let values = singular_values(m.as_ref())?;
    let k = m.ncols() as f64;
    let mean_sq: f64 = (0..m.nrows()).map(|r| (m.row(r).iter().sum::<f64>() / k).powi(2)).sum();
    let mean_share = (mean_sq * k).sqrt() / values[0];
    Ok(AuthorsSpectrum { values, mean_share })
}

#[cfg(test)]
mod tests {
    use super::*;
    use geomem_score::GaussianScore;

    /// Away from the centre of an anisotropic field the share stays in (0, 1], and the
    /// values are those of the general Normal Bundle matrix with the same settings.
    #[test]
    fn share_is_at_most_one_and_values_match_the_matrix() {
        let f = GaussianScore::from_variances(&[1.0, 0.3, 0.3, 0.01, 0.0, 0.0]).unwrap();
        for (i, t) in [1e-3, 0.02, 0.5, 4.0].into_iter().enumerate() {
            let x = [0.4, -0.2, 0.1, 0.0, 0.0, 0.0];
            let a = authors_spectrum(&f, &x, t, i as u64).unwrap();
            assert!(a.mean_share > 0.0 && a.mean_share <= 1.0 + 1e-12, "t = {t}: {}", a.mean_share);
            let p = NormalBundleParams::default()
                .k(6)
                .variant(NormalBundleVariant::Scores)
                .perturbation(Perturbation::UnitOrthonormal)
                .seed(i as u64);
            assert_eq!(a.values, crate::normal_bundle_spectrum(&f, &x, t, &p).unwrap());
        }
        assert!(authors_spectrum(&f, &[0.0; 5], 0.1, 0).is_err(), "a point of the wrong dimension");
        assert!(authors_spectrum(&f, &[0.0; 6], 0.0, 0).is_err(), "t = 0");
    }
}
