//! Which subspace a score field loses, read from its Jacobian rather than from marked gaps
//! alone.
//!
//! A data manifold with variance blocks (seed 001, Sec. 4: `m_1` directions of variance
//! `σ_1²`, `m_2` of `σ_2²`, `d - m` normal ones) has an orthonormal basis whose column
//! ranges are the blocks. For a Jacobian `J` at a point:
//!
//! - [`block_stiffness`]: the RMS gain of `J` on each block, `√(‖J Q_B‖²_F / dim B)`. For the
//!   exact Gaussian score at `x0 = 0` it is `1/(σ_B² + t)`; a block that a memorizing field
//!   has *lost* stiffens toward the normal value `1/t`.
//! - [`stiffening`]: where a block's stiffness lies between the reference field's (0) and
//!   the normal stiffness (1), on a log scale.
//! - [`block_weights_in_top`]: how much of each block lies in the span of the `k` stiffest
//!   right singular vectors of `J` (1 = inside, 0 = orthogonal). Control: a uniformly
//!   random choice of the `k - (d - m)` stiff tangent directions gives every tangent block
//!   the weight `(k - (d - m))/m` on average ([`isotropic_tangent_weight`]).
//! - [`block_weights_of_values`]: the same for a closed form given per axis.
//! - [`log_spectrum_distance`]: the RMS difference of two log singular-value spectra, to
//!   say whether a trained net is nearer the exact or the empirical score.

use crate::error::{param, Result, SpectralError};
use faer::MatRef;
use std::ops::Range;

fn check_blocks(j: MatRef<'_, f64>, basis: MatRef<'_, f64>, ranges: &[Range<usize>]) -> Result<()> {
    let d = j.nrows();
    param("jacobian", format!("{}x{}", j.nrows(), j.ncols()), j.ncols() == d && d > 0, "must be square")?;
    let shape = format!("{}x{}", basis.nrows(), basis.ncols());
    param("basis", shape, basis.nrows() == d && basis.ncols() == d, "must be d x d")?;
    for r in ranges {
        param("block range", format!("{r:?}"), r.start < r.end && r.end <= d, "non-empty, within 0..d")?;
    }
    Ok(())
}

/// RMS gain `√(‖J Q_B‖²_F / dim B)` of the `d × d` Jacobian `j` on each block `B`, the block
/// being the columns `ranges[b]` of the orthonormal `basis`.
///
/// # Errors
/// [`SpectralError::InvalidParameter`] for shapes that do not match or empty ranges.
pub fn block_stiffness(j: MatRef<'_, f64>, basis: MatRef<'_, f64>, ranges: &[Range<usize>]) -> Result<Vec<f64>> {
    check_blocks(j, basis, ranges)?;
    Ok(ranges
        .iter()
        .map(|r| {
            let q = basis.subcols(r.start, r.len());
            let jq = j * q;
            (jq.squared_norm_l2() / r.len() as f64).sqrt()
        })
        .collect())
}

/// Weight `‖Q_Bᵀ V_k‖²_F / dim B` of each block in the span of the `k` right singular vectors
/// of `j` with the largest singular values, for every `k` of `ks` (one SVD for all):
/// `out[i][b]` is block `b`'s weight for `ks[i]`.
///
/// # Errors
/// As [`block_stiffness`]; [`SpectralError::InvalidParameter`] for a `k = 0` or `k > d`;
/// [`SpectralError::SvdNoConvergence`].
pub fn block_weights_in_top(
    j: MatRef<'_, f64>,
    basis: MatRef<'_, f64>,
    ranges: &[Range<usize>],
    ks: &[usize],
) -> Result<Vec<Vec<f64>>> {
    check_blocks(j, basis, ranges)?;
    for &k in ks {
        param("k", k, k >= 1 && k <= j.nrows(), "must lie in 1..=d")?;
    }
    let svd = j.svd().map_err(|_| SpectralError::SvdNoConvergence)?;
    // faer sorts singular values in decreasing order; Q_Bᵀ V once, then prefix sums of
    // squared columns give every k.
    let qtv: Vec<_> = ranges.iter().map(|r| basis.subcols(r.start, r.len()).transpose() * svd.V()).collect();
    Ok(ks
        .iter()
        .map(|&k| ranges.iter().zip(&qtv).map(|(r, m)| m.subcols(0, k).squared_norm_l2() / r.len() as f64).collect())
        .collect())
}

/// [`block_weights_in_top`] for a diagonal Jacobian given by its per-axis `values` (a closed
/// form whose directions are the coordinate axes, as seed 001 Eq. 19 treats `JᵀJ`): the
/// share of each block `ranges[b]` among the `k` largest values, for every `k` of `ks`.
/// Ties are broken uniformly at random in expectation: an axis with `g` values above it and
/// `e` equal to it (itself included) counts `clamp((k - g)/e, 0, 1)`.
///
/// # Errors
/// [`SpectralError::InvalidParameter`] for an empty or non-finite `values`, a range outside
/// it, or a `k` outside `1..=d`.
pub fn block_weights_of_values(values: &[f64], ranges: &[Range<usize>], ks: &[usize]) -> Result<Vec<Vec<f64>>> {
    let d = values.len();
    param("values", d, d > 0 && values.iter().all(|v| v.is_finite()), "non-empty and finite")?;
    for r in ranges {
        param("block range", format!("{r:?}"), r.start < r.end && r.end <= d, "non-empty, within 0..d")?;
    }
    for &k in ks {
        param("k", k, k >= 1 && k <= d, "must lie in 1..=d")?;
    }
    let rank: Vec<(usize, usize)> = values
        .iter()
        .map(|v| (values.iter().filter(|u| *u > v).count(), values.iter().filter(|u| *u == v).count()))
        .collect();
    Ok(ks
        .iter()
        .map(|&k| {
            let share = |i: usize| ((k as f64 - rank[i].0 as f64) / rank[i].1 as f64).clamp(0.0, 1.0);
            ranges.iter().map(|r| r.clone().map(share).sum::<f64>() / r.len() as f64).collect()
        })
        .collect())
}

/// The average block weight of [`block_weights_in_top`] when the `d - m` normal directions
/// are stiff and the remaining `k - (d - m)` stiff directions are a uniformly random
/// subspace of the `m`-dimensional tangent space: `(k - (d - m))/m`, clamped to `[0, 1]`.
pub fn isotropic_tangent_weight(d: usize, m: usize, k: usize) -> f64 {
    if m == 0 {
        return 0.0;
    }
    ((k as f64 - (d - m.min(d)) as f64) / m as f64).clamp(0.0, 1.0)
}

/// Where `s` lies between the reference stiffness `reference` (0) and the normal stiffness
/// `stiff` (1), on a log scale: `ln(s/reference) / ln(stiff/reference)`. Negative when the
/// block is softer than the reference, above 1 when stiffer than the normal directions.
/// NaN when `stiff == reference` or any value is not positive.
pub fn stiffening(s: f64, reference: f64, stiff: f64) -> f64 {
    if !(s > 0.0 && reference > 0.0 && stiff > 0.0) || stiff == reference {
        return f64::NAN;
    }
    (s / reference).ln() / (stiff / reference).ln()
}

/// `√(mean_i (ln a_i - ln b_i)²)` of two spectra of equal length (values floored at
/// `1e-300`).
///
/// # Errors
/// [`SpectralError::InvalidParameter`] for lengths that differ or are zero, or values that
/// are negative or not finite.
pub fn log_spectrum_distance(a: &[f64], b: &[f64]) -> Result<f64> {
    param("spectra", format!("{} vs {}", a.len(), b.len()), a.len() == b.len() && !a.is_empty(), "same length > 0")?;
    let ok = a.iter().chain(b).all(|v| v.is_finite() && *v >= 0.0);
    param("spectra", "a value", ok, "finite and >= 0")?;
    let sum: f64 = a.iter().zip(b).map(|(x, y)| (x.max(1e-300).ln() - y.max(1e-300).ln()).powi(2)).sum();
    Ok((sum / a.len() as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    fn rotation(d: usize, seed: u64) -> Mat<f64> {
        // Orthonormal basis from the QR of a fixed pseudo-random matrix.
        let a = Mat::from_fn(d, d, |i, j| ((i * 131 + j * 71 + seed as usize * 7) as f64 * 0.61).sin());
        a.qr().compute_Q()
    }

    #[test]
    fn gaussian_jacobian_has_the_closed_form_block_stiffness() {
        // J = -Q diag(1/(σ²+t)) Qᵀ: stiffness 1/(σ_B² + t) on each block, weights 0/1.
        let (d, t) = (8, 0.01);
        let var = [1.0, 1.0, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0];
        let q = rotation(d, 3);
        let diag = Mat::from_fn(d, d, |i, j| if i == j { -1.0 / (var[i] + t) } else { 0.0 });
        let j = &q * &diag * q.transpose();
        let ranges = [0..2, 2..5, 5..8];
        let s = block_stiffness(j.as_ref(), q.as_ref(), &ranges).unwrap();
        for (got, want) in s.iter().zip([1.0 / 1.01, 1.0 / 0.31, 1.0 / 0.01]) {
            assert!((got - want).abs() < 1e-10 * want, "{got} vs {want}");
        }
        // The 3 stiffest directions are the normal block; the 6 stiffest add the 0.3 block.
        let both = block_weights_in_top(j.as_ref(), q.as_ref(), &ranges, &[3, 6]).unwrap();
        let w = &both[0];
        assert!((w[2] - 1.0).abs() < 1e-10 && w[0] < 1e-10 && w[1] < 1e-10, "{w:?}");
        let w = &both[1];
        assert!((w[1] - 1.0).abs() < 1e-10 && w[0] < 1e-10, "{w:?}");
        assert!((stiffening(s[1], 1.0 / 0.31, 1.0 / 0.01)).abs() < 1e-12);
        assert!((stiffening(s[2], 1.0 / 0.31, 1.0 / 0.01) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn isotropic_jacobian_spreads_weight_evenly() {
        // J = -I: the top-k span is arbitrary, but the total weight over blocks is k.
        let d = 6;
        let q = rotation(d, 1);
        let j = Mat::from_fn(d, d, |i, k| if i == k { -1.0 } else { 0.0 });
        let ranges = [0..2, 2..6];
        let w = &block_weights_in_top(j.as_ref(), q.as_ref(), &ranges, &[3]).unwrap()[0];
        assert!((w[0] * 2.0 + w[1] * 4.0 - 3.0).abs() < 1e-10, "{w:?}");
        assert_eq!(isotropic_tangent_weight(30, 7, 25), 2.0 / 7.0);
        assert_eq!(isotropic_tangent_weight(30, 7, 20), 0.0);
    }

    #[test]
    fn weights_of_values_equal_the_svd_weights_of_their_diagonal_and_split_ties() {
        // Distinct values: the diagonal Jacobian in the canonical basis gives the same weights
        // through its SVD.
        let v = [0.3, 5.0, 0.9, 7.0, 2.0, 0.1, 4.0];
        let j = Mat::from_fn(7, 7, |r, c| if r == c { -v[r] } else { 0.0 });
        let q = Mat::<f64>::identity(7, 7);
        let ranges = [0..2, 2..5, 5..7];
        let ks = [1, 3, 4, 6];
        let by_svd = block_weights_in_top(j.as_ref(), q.as_ref(), &ranges, &ks).unwrap();
        let by_values = block_weights_of_values(&v, &ranges, &ks).unwrap();
        for (a, b) in by_svd.iter().flatten().zip(by_values.iter().flatten()) {
            assert!((a - b).abs() < 1e-10, "{by_svd:?} vs {by_values:?}");
        }
        // Ties: four equal values, two slots among them (k = 3 with one value above): each
        // tied axis counts 1/2.
        let w = block_weights_of_values(&[1.0, 1.0, 9.0, 1.0, 1.0], &[0..2, 2..3, 3..5], &[3]).unwrap();
        assert_eq!(w[0], vec![0.5, 1.0, 0.5]);
        assert!(block_weights_of_values(&[], &[], &[1]).is_err());
        let (first, too_long) = (0..1, 0..3);
        assert!(block_weights_of_values(&[1.0, f64::NAN], std::slice::from_ref(&first), &[1]).is_err());
        assert!(block_weights_of_values(&[1.0, 2.0], std::slice::from_ref(&too_long), &[1]).is_err());
        assert!(block_weights_of_values(&[1.0, 2.0], std::slice::from_ref(&first), &[3]).is_err());
    }

    #[test]
    fn distances_and_bad_input() {
        assert!((log_spectrum_distance(&[1.0, 2.0], &[1.0, 2.0]).unwrap()).abs() < 1e-15);
        let d = log_spectrum_distance(&[1.0, 1.0], &[std::f64::consts::E, 1.0]).unwrap();
        assert!((d - (0.5f64).sqrt()).abs() < 1e-12);
        assert!(log_spectrum_distance(&[1.0], &[1.0, 2.0]).is_err());
        assert!(log_spectrum_distance(&[f64::NAN], &[1.0]).is_err());
        let j = Mat::<f64>::zeros(3, 3);
        let q = Mat::<f64>::identity(3, 3);
        assert!(block_stiffness(j.as_ref(), q.as_ref(), &[0..4, 0..1]).is_err());
        assert!(block_stiffness(j.as_ref(), Mat::<f64>::identity(2, 2).as_ref(), &[0..1, 1..2]).is_err());
        assert!(block_weights_in_top(j.as_ref(), q.as_ref(), &[0..1, 1..2], &[2, 0]).is_err());
        assert!(block_weights_in_top(j.as_ref(), q.as_ref(), &[0..1, 1..2], &[4]).is_err());
        assert!(stiffening(1.0, 2.0, 2.0).is_nan());
    }
}
