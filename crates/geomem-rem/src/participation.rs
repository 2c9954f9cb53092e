//! Participation ratio and effective number of samples (seed 001, Eq. 16, 35-37).
//!
//! Below the condensation time the Boltzmann weights near the lowest energy form a Poisson
//! process of index `m = β_c/β = t/t_c`, whose participation ratio has mean `1 - m`:
//!
//! ```text
//! E[Y] = 1 - t/t_c            (t < t_c, Eq. 36)
//! N_eff = 1/E[Y] = t_c/(t_c - t) = β/(β - β_c)      (Eq. 37)
//! ```
//!
//! and above `t_c` exponentially many points contribute, capped at `N` (the heuristic
//! minimum of Eq. 16). Eq. 16 as printed, `t/(1 - t_c⁻¹)`, is not equal to Eq. 37 and is not
//! dimensionally consistent; Eq. 37 is the derived form (`docs/THEORY.md`).

use crate::error::{check_time, param, Result};

/// Mean participation ratio `E[Y] = max(1 - t/t_c, 1/N)`: `1 - t/t_c` in the condensed
/// phase (Eq. 36), floored at `1/N` (every point equally weighted).
///
/// # Errors
/// [`crate::RemError::InvalidTime`] for a bad `t`; [`crate::RemError::InvalidParameter`]
/// for `t_c < 0` or `n < 1`.
pub fn participation_ratio(t: f64, t_c: f64, n: f64) -> Result<f64> {
    Ok(1.0 / n_eff(t, t_c, n)?)
}

/// Effective number of samples `N_eff(t, x) = min(N, t_c/(t_c - t))` for `t < t_c`, and `N`
/// for `t >= t_c` (Eq. 37 with the cap of Eq. 16). Lies in `[1, N]`; tends to 1 as `t → 0`.
///
/// # Errors
/// As [`participation_ratio`].
pub fn n_eff(t: f64, t_c: f64, n: f64) -> Result<f64> {
    check_time(t)?;
    param("t_c", t_c, t_c.is_finite() && t_c >= 0.0, "must be finite and >= 0")?;
    param("n", n, n.is_finite() && n >= 1.0, "must be finite and >= 1")?;
    if t >= t_c {
        return Ok(n);
    }
    Ok((t_c / (t_c - t)).min(n))
}
