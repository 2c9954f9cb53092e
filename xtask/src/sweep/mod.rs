//! Trained-network sweeps: a list of jobs (data model, N, seed) derived deterministically
//! from one spec (a TOML file under `experiments/`), each trained in its own resumable run
//! directory and measured at a list of training steps; a job whose `result.json` exists is
//! skipped, so a sweep survives preemption and splits into shards (`--shard i/n`, or the
//! index of a SLURM array task / Kubernetes Indexed Job) that `aggregate` joins.
//!
//! Jobs run one per worker thread (by default one per core): on this 2-core CPU that
//! measured faster than stacking nets into one model (docs/BENCHMARKS.md); each job's
//! numbers depend only on the job, never on which worker or shard ran it.

pub mod measure;
pub mod report;

use crate::backend;
use anyhow::{bail, Context, Result};
use geomem_data::{Block, Embedding, LinearManifold, NestedSubsets, NoisyLinear};
use geomem_nets::{ResidualMlpConfig, TrainConfig};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One data model: a linear manifold of variance blocks in `d` dimensions, optionally with
/// noise off the manifold and normalised onto the unit sphere (the authors' data,
/// `geomem_data::NoisyLinear`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub label: String,
    pub d: usize,
    /// (dimension, variance) per block, in the order of the basis columns.
    pub blocks: Vec<(usize, f64)>,
    /// Variance on the normal axes (default 0: points on the manifold).
    #[serde(default)]
    pub off_variance: f64,
    /// Rescale every sample to the unit sphere (default false).
    #[serde(default)]
    pub sphere: bool,
    /// Marked gap counts at which block weights are measured (default
    /// `LinearManifold::gap_positions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks: Option<Vec<usize>>,
}

/// A sweep: every variant × size × seed is one job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub variants: Vec<Variant>,
    pub sizes: Vec<usize>,
    /// Realisations per size (training subset and network seed).
    #[serde(default = "one")]
    pub seeds: u64,
    /// Training steps at which every net is measured (increasing; the last is the total).
    pub snapshots: Vec<u64>,
    #[serde(default = "lr")]
    pub lr: f64,
    #[serde(default = "ema")]
    pub ema_decay: f64,
    /// Parts of each training batch computed in parallel (`TrainConfig::batch_split`;
    /// default 1). With more cores than jobs, k > 1 puts the spare cores to work; each k is
    /// its own run (other numbers), the same on any machine.
    #[serde(default = "one_part")]
    pub batch_split: usize,
    /// Times `t` of the Jacobian spectra.
    pub times: Vec<f64>,
    /// Reverse-SDE samples per net for the memorization check.
    #[serde(default = "samples")]
    pub samples: usize,
    #[serde(default = "samples")]
    pub sample_steps: usize,
    /// Held-out points drawn from the manifold (never in any training set).
    #[serde(default = "heldout")]
    pub heldout: usize,
    #[serde(default)]
    pub base_seed: u64,
    /// Times `t0` at which FLIPD of every sample is measured (memorization detection).
    #[serde(default = "flipd_times")]
    pub flipd_times: Vec<f64>,
    /// The green-gap analysis of the final nets (`experiments/green_nets.toml`): its
    /// log-spaced times, `green_times = { from = 1e-3, to = 1.0, points = 25 }` (to which
    /// t = 0.02 and 0.05 of the compact table are added). A sweep without it gets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_times: Option<crate::figures::common::LogGrid>,
}

fn flipd_times() -> Vec<f64> {
    vec![1e-3, 1e-2]
}

fn one() -> u64 {
    1
}
fn one_part() -> usize {
    1
}
fn lr() -> f64 {
    1e-3
}
fn ema() -> f64 {
    0.999
}
fn samples() -> usize {
    200
}
fn heldout() -> usize {
    1000
}

impl Variant {
    pub fn manifold(&self) -> Result<LinearManifold> {
        let b: Vec<Block> = self.blocks.iter().map(|&(dim, variance)| Block { dim, variance }).collect();
        Ok(LinearManifold::new(self.d, &b, Embedding::Aligned)?)
    }
    /// The data model: the manifold plus its noise and sphere.
    pub fn data(&self) -> Result<NoisyLinear> {
        Ok(NoisyLinear::new(self.manifold()?, self.off_variance, self.sphere.then_some(1.0))?)
    }
    pub fn m(&self) -> usize {
        self.blocks.iter().map(|b| b.0).sum()
    }
    /// Column ranges of the blocks, then the normal block.
    pub fn ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = 0;
        let mut r: Vec<_> = self.blocks.iter().map(|b| (start..start + b.0, start += b.0).0).collect();
        r.push(self.m()..self.d);
        r
    }
    /// The marked gap positions: the variant's own, else `LinearManifold::gap_positions`
    /// (`d - m`, then `d - m + m_low`, …). Empty for a variant that `Spec::check` would refuse.
    pub fn marks(&self) -> Vec<usize> {
        match &self.marks {
            Some(m) => m.clone(),
            None => self.manifold().map(|m| m.gap_positions()).unwrap_or_default(),
        }
    }
}

/// One job of a sweep.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Job {
    pub variant: usize,
    pub n: usize,
    pub seed: u64,
}

impl Spec {
    /// Reads and checks a spec file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let spec: Spec = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        spec.check()?;
        Ok(spec)
    }

    pub fn check(&self) -> Result<()> {
        crate::out::check_name(&self.name)?;
        if self.variants.is_empty() || self.sizes.is_empty() || self.snapshots.is_empty() || self.times.is_empty() {
            bail!("{}: variants, sizes, snapshots and times must not be empty", self.name);
        }
        if self.snapshots.windows(2).any(|w| w[0] >= w[1]) || self.snapshots[0] == 0 {
            bail!("{}: snapshots must increase from >= 1", self.name);
        }
        let batch = TrainConfig::new(ResidualMlpConfig::new(1)).run.batch_size;
        if !(1..=batch).contains(&self.batch_split) {
            bail!("{}: batch_split must lie in 1..={batch} (the batch size)", self.name);
        }
        if self.sizes.contains(&0) || self.seeds == 0 || self.samples < 2 || self.heldout == 0 {
            bail!("{}: sizes, seeds, samples (>= 2) and heldout must be positive", self.name);
        }
        if let Some(g) = &self.green_times {
            g.check(&format!("{}: green_times", self.name))?;
        }
        for v in &self.variants {
            let n = self.sizes.iter().max().unwrap_or(&0);
            let what = format!("{}: variant {} (d = {}, sizes up to {n}): one job", self.name, v.label, v.d);
            geomem_data::check_memory(&what, self.job_bytes(v))?;
            v.data().with_context(|| format!("variant {}", v.label))?;
            if v.marks.as_ref().is_some_and(|m| m.is_empty() || m.iter().any(|&k| k == 0 || k >= v.d)) {
                bail!("{}: variant {}: marks must be non-empty and lie in 1..d", self.name, v.label);
            }
        }
        Ok(())
    }

    /// What one job of variant `v` holds at once, as far as the spec decides it: its largest
    /// training set (and its `f32` copy), the held-out points and samples, and one `d × d`
    /// Jacobian.
    fn job_bytes(&self, v: &Variant) -> u128 {
        use geomem_data::matrix_bytes;
        let n = self.sizes.iter().copied().max().unwrap_or(0);
        matrix_bytes(n, v.d) * 3 / 2
            + matrix_bytes(self.heldout.saturating_add(self.samples), v.d)
            + matrix_bytes(v.d, v.d)
    }

    /// Every job, in a fixed order (variant, size, seed).
    pub fn jobs(&self) -> Vec<Job> {
        let mut out = Vec::new();
        for variant in 0..self.variants.len() {
            for &n in &self.sizes {
                out.extend((0..self.seeds).map(|seed| Job { variant, n, seed }));
            }
        }
        out
    }

    pub fn job_id(&self, j: &Job) -> String {
        let label: String =
            self.variants[j.variant].label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("{label}_N{}_s{}", j.n, j.seed)
    }

    pub fn total(&self) -> u64 {
        *self.snapshots.last().expect("checked")
    }

    /// Training settings of a job (its own network seed).
    pub fn train_config(&self, v: &Variant, j: &Job) -> TrainConfig {
        TrainConfig::new(ResidualMlpConfig::new(v.d))
            .with_lr(self.lr)
            .with_ema_decay(self.ema_decay)
            .with_batch_split(self.batch_split)
            .with_seed(self.base_seed + 1000 * j.seed + j.n as u64)
            .with_checkpoint_every(5000)
            .with_log_every(500)
    }
}

/// Which jobs this process runs: `i/n` takes every job whose index is `i mod n`; `auto`
/// reads `SLURM_ARRAY_TASK_ID`/`SLURM_ARRAY_TASK_COUNT` or `JOB_COMPLETION_INDEX` with
/// `GEOMEM_SHARDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Shard::from_env();
        }
        let (i, n) = s.split_once('/').ok_or("expected i/n or auto")?;
        let (index, count) = (i.parse().map_err(|_| "bad i")?, n.parse().map_err(|_| "bad n")?);
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    fn from_env() -> std::result::Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
        let (index, count) = if let Some(i) = var("SLURM_ARRAY_TASK_ID") {
            let min = var("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
            (i - min.min(i), var("SLURM_ARRAY_TASK_COUNT").ok_or("SLURM_ARRAY_TASK_COUNT unset")?)
        } else if let Some(i) = var("JOB_COMPLETION_INDEX") {
            (i, var("GEOMEM_SHARDS").ok_or("GEOMEM_SHARDS unset (set it to the Indexed Job's completions)")?)
        } else {
            return Err("--shard auto needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX".into());
        };
        format!("{index}/{count}").parse()
    }
    pub fn takes(&self, job_index: usize) -> bool {
        job_index % self.count == self.index
    }
}

/// The data of one job: its nested training subset and the shared held-out points.
pub struct JobData {
    pub train: faer::Mat<f64>,
    pub heldout: faer::Mat<f64>,
}

pub fn job_data(spec: &Spec, j: &Job) -> Result<JobData> {
    let v = &spec.variants[j.variant];
    let nmax = *spec.sizes.iter().max().expect("checked");
    let pool = v.data()?.sample(nmax + spec.heldout, spec.base_seed + 17 * j.variant as u64);
    let train = NestedSubsets::new(nmax, spec.base_seed + 1 + j.seed).subset(pool.as_ref().subrows(0, nmax), j.n)?;
    let heldout = pool.as_ref().subrows(nmax, spec.heldout).to_owned();
    Ok(JobData { train, heldout })
}

/// Trains and measures every job of `spec` this shard owns (skipping complete ones), on
/// `workers` threads; results under `dir/jobs/<id>/result.json`.
pub fn run_jobs(spec: &Spec, dir: &Path, shard: Option<Shard>, workers: usize) -> Result<()> {
    let jobs: Vec<(usize, Job)> =
        spec.jobs().into_iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| s.takes(*i))).collect();
    let todo: Vec<Job> = jobs.into_iter().map(|x| x.1).filter(|j| !result_path(spec, dir, j).exists()).collect();
    let pb = crate::out::bar(todo.len() as u64 * spec.total(), &format!("{} ({} jobs)", spec.name, todo.len()));
    let next = AtomicUsize::new(0);
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                while let Some(j) = todo.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let run = || run_job(spec, dir, j, &pb);
                    let res =
                        if workers > 1 { crate::figures::common::on_this_thread(run).and_then(|r| r) } else { run() };
                    if let Err(e) = res {
                        *failure.lock().expect("lock") = Some(e.context(format!("job {}", spec.job_id(j))));
                        next.store(todo.len(), Ordering::SeqCst);
                    }
                }
            });
        }
    });
    pb.finish_and_clear();
    match failure.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn job_dir(spec: &Spec, dir: &Path, j: &Job) -> PathBuf {
    dir.join("jobs").join(spec.job_id(j))
}

pub fn result_path(spec: &Spec, dir: &Path, j: &Job) -> PathBuf {
    job_dir(spec, dir, j).join("result.json")
}

/// Trains one job through its snapshots, measuring after each; writes `result.json` last.
fn run_job(spec: &Spec, dir: &Path, j: &Job, pb: &indicatif::ProgressBar) -> Result<()> {
    let v = &spec.variants[j.variant];
    let data = job_data(spec, j)?;
    let run_dir = job_dir(spec, dir, j);
    let base = spec.train_config(v, j);
    let start = std::time::Instant::now();
    // Snapshots measured before an interruption are kept; training resumes from the checkpoint.
    let partial = run_dir.join("snapshots.partial.json");
    let mut snaps: Vec<measure::Snapshot> = match std::fs::read_to_string(&partial) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut done = snaps.last().map_or(0, |x| x.step);
    pb.inc(done);
    let todo: Vec<u64> = spec.snapshots.iter().copied().filter(|&s| s > done).collect();
    for s in todo {
        let cfg = base.clone().with_steps(s);
        let state = backend::train_toy(data.train.as_ref(), &cfg, Some(&run_dir), &mut |r| {
            pb.inc(r.step.saturating_sub(done));
            done = r.step;
            ControlFlow::Continue(())
        })?;
        snaps.push(measure::snapshot(spec, v, j, &data, state.ema, s)?);
        std::fs::write(&partial, serde_json::to_string(&snaps)?)?;
    }
    let res =
        measure::JobResult { job: *j, id: spec.job_id(j), seconds: start.elapsed().as_secs_f64(), snapshots: snaps };
    let path = result_path(spec, dir, j);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string(&res)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}
