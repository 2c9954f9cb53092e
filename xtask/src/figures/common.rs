//! Settings shared by the spectrum figures.
use crate::plot::{VLine, GAP_COLORS};
use geomem_data::{Block, Embedding, LinearManifold};
use serde::{Deserialize, Serialize};

/// Quick (default, CI-sized) or full (paper-sized) runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    pub full: bool,
    pub seed: u64,
}

/// The linear-manifold setups of Fig. 4/9/11/13 (2 + 5) and Fig. 10/12/14 (5 + 10). In a
/// figure's TOML: `setup = { d = 30, high = [2, 1.0], low = [5, 0.3] }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    pub d: usize,
    /// (dimension, variance) of the high- then the low-variance block.
    pub high: (usize, f64),
    pub low: (usize, f64),
}

impl Setup {
    /// Checks that the blocks make a linear manifold in `d` dimensions.
    pub fn check(&self) -> anyhow::Result<()> {
        self.try_manifold().map_err(|e| anyhow::anyhow!("setup: {e}"))?;
        anyhow::ensure!(
            self.m() < self.d,
            "setup: the manifold ({}) must have fewer dimensions than d = {}",
            self.m(),
            self.d
        );
        Ok(())
    }
    fn try_manifold(&self) -> geomem_data::Result<LinearManifold> {
        let blocks =
            [Block { dim: self.high.0, variance: self.high.1 }, Block { dim: self.low.0, variance: self.low.1 }];
        LinearManifold::new(self.d, &blocks, Embedding::Aligned)
    }
    /// The data model (after [`Setup::check`]).
    pub fn manifold(&self) -> LinearManifold {
        self.try_manifold().expect("valid setup")
    }
    pub fn m(&self) -> usize {
        self.high.0 + self.low.0
    }
    /// Gap positions as 1-based counts of large singular values: black `d - m` (whole
    /// manifold), green `d - m_low` (only the low-variance block left: geometric
    /// memorisation), red `d - m_high` (only the high-variance block).
    pub fn gap_positions(&self) -> [(usize, &'static str); 3] {
        [
            (self.d - self.m(), "manifold d-m"),
            (self.d - self.low.0, "low-var d-m2"),
            (self.d - self.high.0, "high-var d-m1"),
        ]
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

/// `points` log-spaced values from `from` to `to`; in a figure's TOML
/// `times = { from = 1e-3, to = 1.0, points = 30 }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogGrid {
    pub from: f64,
    pub to: f64,
    pub points: usize,
}

impl LogGrid {
    pub fn check(&self, what: &str) -> anyhow::Result<()> {
        let ok = self.from.is_finite() && self.to.is_finite() && self.from > 0.0 && self.to >= self.from;
        anyhow::ensure!(ok && self.points >= 1, "{what}: need 0 < from <= to and points >= 1, got {self:?}");
        Ok(())
    }
    pub fn values(&self) -> Vec<f64> {
        crate::out::logspace(self.from, self.to, self.points)
    }
}

/// Position (1-based) of the largest log gap of a spectrum, and the log gaps at the three
/// marked positions of `setup` (the gap analysis of `geomem_spectral::marked_gaps`).
pub fn gap_stats(values: &[f64], setup: &Setup) -> anyhow::Result<(usize, [f64; 3])> {
    let pos = setup.gap_positions().map(|p| p.0);
    let g = geomem_spectral::marked_gaps(values, &pos)?;
    let at = |j: usize| g.at_marks[j].unwrap_or(f64::NAN);
    Ok((g.largest_at, [at(0), at(1), at(2)]))
}

/// Runs `f` on a pool of its own with one thread (the caller waits), so that rayon's work
/// inside it (burn Flex's threaded kernels, `HostMlp`'s row blocks) stays on that thread: a worker of a figure that already runs one job per core would
/// otherwise hand every small kernel to the shared pool and wait for it, the workers'
/// kernels queueing behind each other (the numbers do not change: each is independent of
/// the thread count).
pub fn on_this_thread<R: Send>(f: impl FnOnce() -> R + Send) -> anyhow::Result<R> {
    Ok(rayon::ThreadPoolBuilder::new().num_threads(1).build()?.install(f))
}

/// Runs `job` on every item with two worker threads (burn's CPU backend trains one net per
/// core), taking items in order and releasing the queue before each job; `done` is called
/// after each. Results come back in completion order.
pub fn on_two_workers<T: Send, R: Send>(
    items: Vec<T>,
    job: impl Fn(T) -> anyhow::Result<R> + Sync,
    done: impl Fn() + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = std::sync::Mutex::new(items.into_iter());
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let Some(item) = next.lock().expect("queue").next() else { break };
                        let r = on_this_thread(|| job(item))??;
                        out.lock().expect("results").push(r);
                        done();
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(out.into_inner().expect("results"))
}
