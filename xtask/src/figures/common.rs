//! Settings shared by the spectrum figures.
use crate::plot::{VLine, GAP_COLORS};
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_spectral::{GapScale, Spectrum};
use serde::Serialize;

/// Quick (default, CI-sized) or full (paper-sized) runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    pub full: bool,
    pub seed: u64,
}

/// The linear-manifold setups of Fig. 4/9/11/13 (2 + 5) and Fig. 10/12/14 (5 + 10).
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub d: usize,
    /// (dimension, variance) of the high- then the low-variance block.
    pub high: (usize, f64),
    pub low: (usize, f64),
}

impl Setup {
    pub fn two_five() -> Self {
        Self { d: 30, high: (2, 1.0), low: (5, 0.3) }
    }
    pub fn five_ten() -> Self {
        Self { d: 30, high: (5, 1.0), low: (10, 0.3) }
    }
    pub fn manifold(&self) -> LinearManifold {
        LinearManifold::new(
            self.d,
            &[Block { dim: self.high.0, variance: self.high.1 }, Block { dim: self.low.0, variance: self.low.1 }],
            Embedding::Aligned,
        )
        .expect("valid setup")
    }
    pub fn m(&self) -> usize {
        self.high.0 + self.low.0
    }
    /// Gap positions as 1-based counts of large singular values: black `d - m` (whole
    /// manifold), green `d - m_low` (only the low-variance block left: geometric
    /// memorisation), red `d - m_high` (only the high-variance block).
    pub fn gap_positions(&self) -> [(usize, &'static str); 3] {
        [(self.d - self.m(), "manifold d-m"), (self.d - self.low.0, "low-var d-m2"), (self.d - self.high.0, "high-var d-m1")]
    }
    pub fn vlines(&self) -> Vec<VLine> {
        self.gap_positions()
            .iter()
            .zip(GAP_COLORS)
            .map(|(&(p, l), c)| VLine { x: p as f64 + 0.5, color: c, label: format!("{l} = {p}") })
            .collect()
    }
    pub fn label(&self) -> String {
        format!("d={}, m1={} (var {}), m2={} (var {})", self.d, self.high.0, self.high.1, self.low.0, self.low.1)
    }
}

/// Position (1-based) of the largest log gap of a spectrum, and the log gaps at the three
/// marked positions.
pub fn gap_stats(values: &[f64], setup: &Setup) -> (usize, [f64; 3]) {
    let s = Spectrum::new(values.to_vec()).expect("finite spectrum");
    let (k, _) = s.largest_gap(GapScale::Log, 0).expect("d >= 2");
    let g = s.gaps(GapScale::Log);
    let pos = setup.gap_positions();
    (k, [g[pos[0].0 - 1], g[pos[1].0 - 1], g[pos[2].0 - 1]])
}

/// A gap counts as open when the spectrum jumps by at least 25% across it
/// (log gap >= ln 1.25); a convention of this crate, stated in docs/REPRODUCTION.md.
pub const OPEN_LOG_GAP: f64 = 0.223_143_551_314_209_76;

/// Intervals of the sweep variable where `argmax == p`.
pub fn intervals(xs: &[f64], argmax: &[usize], p: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut start: Option<f64> = None;
    let mut last = 0.0;
    for (&x, &k) in xs.iter().zip(argmax) {
        if k == p {
            if start.is_none() {
                start = Some(x);
            }
            last = x;
        } else if let Some(s) = start.take() {
            out.push((s, last));
        }
    }
    if let Some(s) = start {
        out.push((s, last));
    }
    out
}

pub fn fmt_intervals(iv: &[(f64, f64)]) -> String {
    if iv.is_empty() {
        return "never".into();
    }
    iv.iter().map(|(a, b)| format!("[{a:.3e}, {b:.3e}]")).collect::<Vec<_>>().join(" ∪ ")
}

/// Normalises by the largest value.
pub fn normalize(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(0.0, f64::max);
    v.iter().map(|x| if m > 0.0 { x / m } else { *x }).collect()
}

/// Element-wise mean of equally long vectors.
pub fn mean_of(vs: &[Vec<f64>]) -> Vec<f64> {
    let n = vs.len() as f64;
    (0..vs[0].len()).map(|i| vs.iter().map(|v| v[i]).sum::<f64>() / n).collect()
}
