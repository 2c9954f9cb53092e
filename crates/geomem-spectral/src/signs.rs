//! Signed spectra: singular values discard the sign of a direction's response. A
//! *repulsive* direction (positive eigenvalue of the symmetric part of the Jacobian: the
//! score points away from `x` along it, as at a density minimum) can be as large as a stiff
//! attractive normal direction and sort among them, so a gap in the singular values is a
//! loss of dimension only when the directions above it are attractive.
//!
//! The Jacobian of an exact or empirical score is a covariance over `t²` minus `I/t`, hence
//! symmetric, and its singular values are the absolute eigenvalues; for a trained network
//! the symmetric part `(J + Jᵀ)/2` is used.

use crate::error::{param, Result, SpectralError};
use faer::{MatRef, Side};

/// Eigenvalues of `(J + Jᵀ)/2`, sorted by decreasing absolute value (the order of the
/// singular values of a symmetric `J`).
///
/// # Errors
/// [`SpectralError::InvalidParameter`] for a non-square, empty or non-finite `j`;
/// [`SpectralError::SvdNoConvergence`] when the eigen-solver fails.
pub fn signed_spectrum(j: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let d = j.nrows();
    param("jacobian", format!("{}x{}", d, j.ncols()), d == j.ncols() && d > 0, "must be square and non-empty")?;
    let finite = (0..d).all(|c| j.col(c).iter().all(|v| v.is_finite()));
    param("jacobian", "non-finite entry", finite, "entries must be finite")?;
    let sym = faer::Mat::from_fn(d, d, |r, c| 0.5 * (j[(r, c)] + j[(c, r)]));
    let mut ev = sym.self_adjoint_eigenvalues(Side::Lower).map_err(|_| SpectralError::SvdNoConvergence)?;
    ev.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
    Ok(ev)
}

/// How many repulsive (positive) eigenvalues lie on each side of the gap after the `k`
/// largest in absolute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SignSplit {
    /// Repulsive directions among the `k` largest.
    pub repulsive_above: usize,
    /// `k`.
    pub above: usize,
    /// Repulsive directions among the rest.
    pub repulsive_below: usize,
    /// `d - k`.
    pub below: usize,
}

impl SignSplit {
    /// Whether the gap separates signs: every direction above it repulsive and every one below
    /// attractive, or the reverse.
    pub fn separates(&self) -> bool {
        let all_up = self.repulsive_above == self.above && self.repulsive_below == 0;
        let all_down = self.repulsive_above == 0 && self.repulsive_below == self.below;
        all_up || all_down
    }

    /// Whether every direction above the gap is attractive (a gap that can be read as lost
    /// dimensions: the stiff side pulls toward the data).
    pub fn stiff_side_attractive(&self) -> bool {
        self.repulsive_above == 0
    }
}

/// The [`SignSplit`] of a signed spectrum (as [`signed_spectrum`] sorts it) at position `k`.
///
/// # Errors
/// [`SpectralError::InvalidParameter`] unless `1 <= k < len`.
pub fn sign_split(signed: &[f64], k: usize) -> Result<SignSplit> {
    param("k", k, k >= 1 && k < signed.len(), "must lie in 1..len")?;
    let pos = |s: &[f64]| s.iter().filter(|v| **v > 0.0).count();
    Ok(SignSplit {
        repulsive_above: pos(&signed[..k]),
        above: k,
        repulsive_below: pos(&signed[k..]),
        below: signed.len() - k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn signs_and_order_of_a_diagonal() {
        let j = Mat::from_fn(4, 4, |r, c| if r == c { [3.0, -5.0, 0.5, -1.0][r] } else { 0.0 });
        let s = signed_spectrum(j.as_ref()).unwrap();
        for (u, v) in s.iter().zip([-5.0, 3.0, -1.0, 0.5]) {
            assert!((u - v).abs() < 1e-12, "{s:?}");
        }
        let split = sign_split(&s, 2).unwrap();
        assert_eq!(split, SignSplit { repulsive_above: 1, above: 2, repulsive_below: 1, below: 2 });
        assert!(!split.separates() && !split.stiff_side_attractive());
        assert!(sign_split(&s, 0).is_err() && sign_split(&s, 4).is_err());
    }

    #[test]
    fn the_antisymmetric_part_is_ignored() {
        // J = S + A with A antisymmetric: same signed spectrum as S.
        let s = Mat::from_fn(3, 3, |r, c| if r == c { -(r as f64 + 1.0) } else { 0.1 });
        let a = Mat::from_fn(3, 3, |r, c| (r as f64 - c as f64) * 0.7);
        let (x, y) = (signed_spectrum(s.as_ref()).unwrap(), signed_spectrum((&s + &a).as_ref()).unwrap());
        for (u, v) in x.iter().zip(&y) {
            assert!((u - v).abs() < 1e-12);
        }
        // Gershgorin: every eigenvalue of S is negative, so no split separates signs.
        assert!(x.iter().all(|v| *v < 0.0));
        let split = sign_split(&x, 1).unwrap();
        assert!(!split.separates() && split.stiff_side_attractive());
    }
}
