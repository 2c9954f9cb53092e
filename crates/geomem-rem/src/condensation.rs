//! The positional Random Energy Model and its condensation time (seed 001, Supp. C).
//!
//! Data `y_i ~ N(0, σ_i²)` independently in each coordinate, `N = e^{α d}` points. At the
//! position `x` and time `t` the Boltzmann weights of Eq. 13 are `z_μ = exp(-(‖y^μ‖²/2 -
//! x·y^μ)/t)`, and their moment generating function (Eq. 25-27) is
//!
//! ```text
//! ζ(λ) = (1/d) Σ_i [ -½ ln(1 + λ a_i) + λ² x_i² a_i / (2t (1 + λ a_i)) ],   a_i = σ_i²/t.
//! ```
//!
//! The levels that dominate `Z` have entropy density `α + ζ(1) - ζ'(1)`; condensation
//! happens where it vanishes. With `ζ'` from Eq. 28 this reduces to `α = G(t)`,
//!
//! ```text
//! G(t) = (1/d) Σ_i [ ½ ln(1 + a_i) - a_i / (2(1 + a_i)) + x_i² σ_i² / (2 (t + σ_i²)²) ],
//! ```
//!
//! which decreases strictly from `+∞` (`t → 0`) to `0` (`t → ∞`) whenever some `σ_i > 0`, so
//! `t_c(x)` is its unique root. Expanding to second order in `a_i` (large `t`, small `α`):
//! `G ≈ (r_4/4 + ω²/2)/t²`, hence
//!
//! ```text
//! t_c(x) ≈ √( (r_4/2 + ω²(x)) / (2α) ) = √( d/(2 ln N) · (r_4/2 + ω²(x)) )      (Eq. 15)
//! ```
//!
//! Eq. 15 of the main text is right; Eq. 34 of Supp. C, `√((r_4 + ω²)/(2α))`, drops the
//! factor ½ on `r_4` (see `docs/THEORY.md`).

use crate::error::{check_time, check_variances, param, RemError, Result};

/// `r_{2,σ} = (1/d) Σ σ_i²` (Eq. 31).
pub fn r2(sigma2: &[f64]) -> f64 {
    sigma2.iter().sum::<f64>() / sigma2.len().max(1) as f64
}

/// `r_{4,σ} = (1/d) Σ σ_i⁴` (Eq. 32).
pub fn r4(sigma2: &[f64]) -> f64 {
    sigma2.iter().map(|s| s * s).sum::<f64>() / sigma2.len().max(1) as f64
}

/// `ω²(x) = (1/d) Σ x_i² σ_i²`, the variance density along `x` (Eq. 33).
pub fn omega2(sigma2: &[f64], x: &[f64]) -> f64 {
    sigma2.iter().zip(x).map(|(s, xi)| s * xi * xi).sum::<f64>() / sigma2.len().max(1) as f64
}

/// Below this `a` [`entropy_term`] uses its series.
const SERIES_BELOW: f64 = 1e-2;

/// `½ ln(1 + a) - a/(2(1 + a))` for `a >= 0`.
///
/// Below `a = 1e-2` the direct form cancels (relative error `≈ 2ε/a`, `4e-14` at the
/// switch), so the series `½ Σ_{k>=2} (-1)^k (k-1)/k a^k` is summed to `k = 10` (truncation
/// `≈ 1.8 a^9 < 2e-18` relative at the switch). `a/(1+a)` is written `1/(1 + 1/a)` so
/// that `a = ∞` (a time far below the variance) gives `∞`, not `∞/∞`.
pub(crate) fn entropy_term(a: f64) -> f64 {
    if a < SERIES_BELOW {
        // Horner on c_k = ½ (-1)^k (k-1)/k, k = 2 … 10.
        let c = |k: i32| 0.5 * f64::from(k - 1) / f64::from(k) * if k % 2 == 0 { 1.0 } else { -1.0 };
        let poly = (2..=10).rev().fold(0.0, |acc, k| acc * a + c(k));
        a * a * poly
    } else {
        0.5 * a.ln_1p() - 0.5 / (1.0 + 1.0 / a)
    }
}

/// The positional REM at one position `x`, for coordinate variances `σ_i²` and
/// `α = ln N / d`.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionalRem {
    sigma2: Vec<f64>,
    x: Vec<f64>,
    alpha: f64,
}

impl PositionalRem {
    /// The REM of `N = e^{α d}` points with variances `sigma2` at position `x`.
    ///
    /// # Errors
    /// [`RemError::InvalidVariance`], [`RemError::DimensionMismatch`] when `x` and `sigma2`
    /// differ in length, [`RemError::InvalidParameter`] unless `α > 0` is finite or when `x`
    /// is not finite.
    pub fn new(sigma2: &[f64], x: &[f64], alpha: f64) -> Result<Self> {
        check_variances(sigma2)?;
        if x.len() != sigma2.len() {
            return Err(RemError::DimensionMismatch { expected: sigma2.len(), got: x.len() });
        }
        param("alpha", alpha, alpha.is_finite() && alpha > 0.0, "must be finite and > 0")?;
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return Err(RemError::InvalidParameter { name: "x", value: v.to_string(), reason: "must be finite" });
        }
        Ok(Self { sigma2: sigma2.to_vec(), x: x.to_vec(), alpha })
    }

    /// The REM of `n` points: `α = ln n / d`.
    ///
    /// # Errors
    /// As [`PositionalRem::new`]; `n` must exceed 1.
    pub fn with_n(sigma2: &[f64], x: &[f64], n: f64) -> Result<Self> {
        param("n", n, n.is_finite() && n > 1.0, "must be finite and > 1")?;
        Self::new(sigma2, x, n.ln() / sigma2.len() as f64)
    }

    /// `α = ln N / d`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    /// `d`.
    pub fn d(&self) -> usize {
        self.sigma2.len()
    }
    /// `r_{4,σ}`.
    pub fn r4(&self) -> f64 {
        r4(&self.sigma2)
    }
    /// `ω²(x)`.
    pub fn omega2(&self) -> f64 {
        omega2(&self.sigma2, &self.x)
    }

    fn mean(&self, f: impl Fn(f64, f64) -> f64) -> f64 {
        self.sigma2.iter().zip(&self.x).map(|(&s, &x)| f(s, x)).sum::<f64>() / self.d() as f64
    }

    /// `ζ(λ)` at time `t` (Eq. 27, exact at finite `d`).
    ///
    /// # Errors
    /// [`RemError::InvalidTime`].
    pub fn zeta(&self, lambda: f64, t: f64) -> Result<f64> {
        check_time(t)?;
        Ok(self.mean(|s, x| {
            let a = s / t;
            -0.5 * (lambda * a).ln_1p() + lambda * lambda * x * x * a / (2.0 * t * (1.0 + lambda * a))
        }))
    }

    /// `ζ'(λ) = dζ/dλ` at time `t` (Eq. 28).
    ///
    /// # Errors
    /// [`RemError::InvalidTime`].
    pub fn zeta_prime(&self, lambda: f64, t: f64) -> Result<f64> {
        check_time(t)?;
        Ok(self.mean(|s, x| {
            let a = s / t;
            let den = 1.0 + lambda * a;
            -a / (2.0 * den) + x * x * a * (2.0 * lambda + lambda * lambda * a) / (2.0 * t * den * den)
        }))
    }

    /// Large-`t` forms (Eq. 29-30): `ζ ≈ -λ r₂/(2t) + λ² r₄/(4t²) + λ² ω²/(2t²)` and
    /// `ζ' ≈ -r₂/(2t) + λ r₄/(2t²) + λ ω²/t²`. Returns `(ζ, ζ')`.
    ///
    /// Eq. 30 as printed has `λ` in the first term and `λ²` in the others; the derivative of
    /// Eq. 29 has the powers used here (they agree at `λ = 1`, the only value used).
    ///
    /// # Errors
    /// [`RemError::InvalidTime`].
    pub fn zeta_large_t(&self, lambda: f64, t: f64) -> Result<(f64, f64)> {
        check_time(t)?;
        let (r2, r4, w2) = (r2(&self.sigma2), self.r4(), self.omega2());
        let t2 = t * t;
        Ok((
            -lambda * r2 / (2.0 * t) + lambda * lambda * r4 / (4.0 * t2) + lambda * lambda * w2 / (2.0 * t2),
            -r2 / (2.0 * t) + lambda * r4 / (2.0 * t2) + lambda * w2 / t2,
        ))
    }

    /// Entropy density of the dominant levels, `α + ζ(1) - ζ'(1) = α - G(t)`:
    /// positive above `t_c`, negative below.
    ///
    /// # Errors
    /// [`RemError::InvalidTime`].
    pub fn entropy(&self, t: f64) -> Result<f64> {
        check_time(t)?;
        Ok(self.alpha - self.g(t))
    }

    /// `G(t)`; the positional term is `x² r / (2(t + σ²))` with `r = σ²/(t + σ²) ∈ [0, 1]`,
    /// so `(t + σ²)²` is never formed (it underflows to 0 for `t + σ² < 1e-154`, which made
    /// the term `0/0 = NaN` and the bisection keep the wrong half).
    fn g(&self, t: f64) -> f64 {
        self.mean(|s, x| {
            let ts = t + s;
            let positional = if s == 0.0 { 0.0 } else { x * x * (s / ts) / (2.0 * ts) };
            entropy_term(s / t) + positional
        })
    }

    /// The exact condensation time: the root of `α + ζ(1) - ζ'(1) = 0`, found by bisection
    /// in `ln t` until the bracket is `1e-13` wide in `ln t` or one ulp wide (beyond
    /// `|ln t| > 512` the ulp exceeds `1e-13`; at most 200 halvings, so it ends at every
    /// variance). Returns `0` when every `σ_i = 0` (all
    /// points coincide, no condensation at any `t > 0`); a root outside `[e^-708, e^709]` (the
    /// normal doubles) is returned as that bound.
    pub fn condensation_time(&self) -> f64 {
        if self.sigma2.iter().all(|&s| s == 0.0) {
            return 0.0;
        }
        let above = |lt: f64| self.g(lt.exp()) > self.alpha;
        // ln t stays within the normal doubles, [-708, 709].
        let (lo_end, hi_end) = (-708.0f64, 709.0f64);
        let (mut lo, mut hi) = (-60.0f64, 60.0f64); // ln t
        while self.g(lo.exp()) < self.alpha {
            if lo <= lo_end {
                return lo_end.exp();
            }
            lo = (lo - 60.0).max(lo_end);
        }
        while above(hi) {
            if hi >= hi_end {
                return hi_end.exp();
            }
            hi = (hi + 60.0).min(hi_end);
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if hi - lo <= 1e-13 || mid <= lo || mid >= hi {
                break;
            }
            if above(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp()
    }

    /// The large-`t` closed form of the condensation time (Eq. 15):
    /// `t_c ≈ √((r₄/2 + ω²(x)) / (2α))`.
    pub fn condensation_time_large_t(&self) -> f64 {
        ((0.5 * self.r4() + self.omega2()) / (2.0 * self.alpha)).sqrt()
    }

    /// Eq. 34 of seed 001 exactly as printed, `√((r₄ + ω²)/(2α))`, kept to show the
    /// disagreement; it is not the expansion of the exact condition.
    pub fn condensation_time_eq34_as_printed(&self) -> f64 {
        ((self.r4() + self.omega2()) / (2.0 * self.alpha)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `½ Σ_{k>=2} u^k / k` with `u = a/(1+a)`: the same function as a series of positive
    /// terms (`-½ ln(1-u) - ½ u`), free of cancellation, summed to 200 terms.
    fn reference(a: f64) -> f64 {
        let u = a / (1.0 + a);
        let (mut sum, mut p) = (0.0, u);
        for k in 2..200 {
            p *= u;
            sum += p / f64::from(k);
        }
        0.5 * sum
    }

    #[test]
    fn entropy_term_is_accurate_on_both_sides_of_the_switch() {
        // The series is at least as accurate below the switch as the direct form above it
        // (whose cancellation costs up to 2ε/a ≈ 4.4e-14 relative at a = 1e-2).
        let mut a = 1e-7;
        while a < 0.5 {
            let (got, want) = (entropy_term(a), reference(a));
            let tol = if a < SERIES_BELOW { 2e-15 } else { 2.5 * f64::EPSILON / a + 4.0 * f64::EPSILON };
            assert!((got - want).abs() <= tol * want, "a = {a}: {got} vs {want}");
            a *= 1.07;
        }
        let below = entropy_term(SERIES_BELOW * (1.0 - 1e-15));
        let above = entropy_term(SERIES_BELOW);
        assert!((below - above).abs() <= 5e-14 * above, "continuous at the switch");
        assert_eq!(entropy_term(f64::INFINITY), f64::INFINITY);
        assert_eq!(entropy_term(0.0), 0.0);
    }

    #[test]
    fn condensation_time_ends_at_extreme_variances() {
        // |ln t_c| beyond 512, where one ulp of ln t exceeds the old absolute tolerance.
        for (s, alpha) in [(1e250, 1.0), (1e-250, 1.0), (1e300, 1e-3), (1e-300, 5.0)] {
            let rem = PositionalRem::new(&[s, s, 0.0], &[0.0; 3], alpha).unwrap();
            let tc = rem.condensation_time();
            assert!(tc.is_finite() && tc > 0.0, "sigma2 = {s}: t_c = {tc}");
            let (lo, hi) = (rem.entropy(tc * (1.0 - 1e-9)).unwrap(), rem.entropy(tc * (1.0 + 1e-9)).unwrap());
            assert!(lo <= 1e-12 && hi >= -1e-12, "sigma2 = {s}: a root lies at t_c ({lo}, {hi})");
        }
    }

    #[test]
    fn positional_term_survives_underflow_of_the_square() {
        // t + σ² ≈ 1e-200: (t + σ²)² underflows to 0; the term must stay finite and positive.
        let rem = PositionalRem::new(&[1e-200], &[1e-90], 2.0).unwrap();
        let g = rem.g(1e-200);
        assert!(g.is_finite() && g > 0.0, "G = {g}");
        let tc = rem.condensation_time();
        assert!((rem.entropy(tc * 0.999).unwrap() < 0.0) && (rem.entropy(tc * 1.001).unwrap() > 0.0), "t_c = {tc}");
    }
}
