//! The latent dimension of an image diffusion model against its training-set size (seed 000
//! Fig. 2; seed 001 Fig. 6, 7): a DDPM U-Net trained on nested subsets, the authors' image
//! estimator at training and held-out images, Algorithm 3 in the paper's and the notebook's
//! forms with flat spectra read as stiff or soft (`geomem_spectral::Reading`), and beside
//! the dimension what tells memorization from undertraining: the loss against steps, the
//! held-out / training loss ratio, the memorized fraction of generated samples, FLIPD and its
//! AUROC, the empirical score of each training set (the memorizing limit).
//!
//! Data in: the embedded UCI 8×8 digits by default (not the paper's data), Fashion-MNIST
//! from Debian's `dataset-fashion-mnist` (`fashion`), or MNIST / Fashion-MNIST / CIFAR-10
//! from a local directory (`mnist:DIR`, `fashion:DIR`, `cifar10:DIR`), optionally
//! mean-pooled (`pool`). Training sets are prefixes of one seeded permutation; the held-out
//! images come from the training split (`NestedSplit`) or from the test split.

mod measure;
mod report;

use crate::out::FigureDir;
use anyhow::{bail, Context, Result};
use faer::Mat;
use geomem_data::{read_cifar10, read_fashion_mnist, read_mnist, ImageSet, NestedSplit, NestedSubsets, Split};
use geomem_nets::UNetConfig;
use geomem_spectral::SecondDerivativeRule;

/// Training-set sizes: a list, or seed 000's rule for an image set
/// ([`Sizes::resolve`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Sizes {
    List(Vec<usize>),
    Transition { low: usize, high: usize },
}

impl Sizes {
    /// The sizes for a set of `top` training images. Seed 000's rule: 5 sizes linearly
    /// spaced from 2 up to (not including) `low`, 30 from `low` to `high`, 5 from `high` up
    /// to `top` (the whole set), each rounded down, duplicates removed.
    pub fn resolve(&self, top: usize) -> Vec<usize> {
        match self {
            Self::List(v) => v.clone(),
            Self::Transition { low: lo, high: hi } => {
                let (lo, hi) = (*lo, *hi);
                let top = top.max(hi);
                let mut v: Vec<usize> = (0..5).map(|i| 2 + (lo - 2) * i / 5).collect();
                v.extend((0..30).map(|i| lo + (hi - lo) * i / 29));
                v.extend((1..=5).map(|i| hi + (top - hi) * i / 5));
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }
}

/// Where the held-out images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeldOutFrom {
    /// The last images of the training split's permutation (never trained on).
    #[default]
    Train,
    /// A seeded choice from the test split, so that training sizes reach the whole set.
    Test,
}

/// Settings of the image figure (`figure = "image-dimension"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Output folder under the results folder.
    pub name: String,
    /// `digits` (embedded), `fashion` (Debian's `dataset-fashion-mnist`), or `mnist:DIR`,
    /// `fashion:DIR`, `cifar10:DIR`; `reproduce --image-data` replaces it.
    pub data: String,
    /// Mean-pooling factor of the images (1: full resolution; 2: 28×28 → 14×14).
    #[serde(default = "one")]
    pub pool: usize,
    /// The U-Net: a shipped config (`smoke`, `digits`, `fashion14`, `mnist`, `cifar10`, from
    /// `experiments/unet/`) or the path of a JSON file.
    pub unet: String,
    pub sizes: Sizes,
    /// Held-out images (never trained on).
    pub held_out: usize,
    /// Where the held-out images come from (default: the training split).
    #[serde(default)]
    pub held_out_from: HeldOutFrom,
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    /// Training and held-out images per size at which spectra are taken.
    pub points: usize,
    /// The DDPM step of the spectra (seed 001: 0 for MNIST and CelebA, 15 for CIFAR-10;
    /// seed 000: one step for every data set, its value stripped; `run_svd.py`'s default 15).
    pub step_k: usize,
    /// Algorithm 3's `d̄` and `c` (the papers' and the authors' code's per data set:
    /// `SecondDerivativeRule::PAPER_*`, `CODE_*`).
    pub rule: SecondDerivativeRule,
    /// Also take the spectra with Gaussian perturbations (a control of the authors'
    /// per-channel orthogonal ones; default true).
    #[serde(default = "yes")]
    pub gaussian_control: bool,
    /// Also take the spectra of the net's exact Jacobian at the same points (rows
    /// `exact jacobian` of `dimension.csv` and `spectra.csv`; by the host's reverse pass on
    /// the CPU build, about `d` forward images' work against the Normal Bundle's `8d`, by
    /// central differences on CUDA; default true). Not drawn: the figure is the authors'
    /// estimator's, so the setting is written out only when false and the published
    /// figures' settings hashes (`provenance.rs`) stay those of the PNGs, which it does not
    /// change. A size whose `result.json` was written before this setting existed keeps its
    /// rows without the Jacobian's (delete the file to measure them).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub jacobian_spectra: bool,
    /// Generated samples per size for the memorized fraction and FLIPD (0: none).
    #[serde(default)]
    pub samples: usize,
    /// Denoising steps of the ancestral sampler (respaced DDPM; default 1000, the plain one).
    #[serde(default = "thousand")]
    pub sampling_steps: usize,
    /// DDPM steps at which FLIPD of the samples is read (seed 004's `t0`).
    #[serde(default)]
    pub flipd_steps: Vec<usize>,
    /// Fixed draws of the training and held-out DDPM loss of each final net (0: none).
    #[serde(default)]
    pub loss_draws: usize,
    /// Sizes trained once more with a second seed (`seed + 1`).
    #[serde(default)]
    pub second_seed_at: Vec<usize>,
    /// Steps between rows of each net's loss curve (default: `steps / 20`).
    #[serde(default)]
    pub log_every: u64,
    /// Base seed (`reproduce --seed` overrides it).
    #[serde(default)]
    pub seed: u64,
    /// Parts each training batch is split into, computed in parallel (`DdpmTrainConfig::
    /// batch_split`; default 1, the plain step). The figure already trains two nets side by
    /// side; on more than 2 cores k > 1 spreads each net further (other numbers: each value
    /// is its own run).
    #[serde(default = "one")]
    pub batch_split: usize,
    /// Evaluation batches of 512 images run side by side when measuring spectra
    /// (`UNetEps::with_parallel_batches`; default 1; the same numbers for every value).
    #[serde(default = "one")]
    pub parallel_batches: usize,
    /// Steps between checkpoints of each size's net (default 0: train in memory). With
    /// k > 0 every size trains in its own run directory `<name>/runs/N<n>_s<seed>/`, and
    /// running the same command again resumes each net from its last checkpoint to the
    /// weights of an uninterrupted run (the paper's sweeps: 40 sizes of 400 000 or 500 000
    /// steps).
    #[serde(default)]
    pub checkpoint_every: u64,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn thousand() -> usize {
    1000
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        let ok = self.held_out >= 2 && self.steps >= 1 && self.batch >= 1 && self.points >= 1 && self.pool >= 1;
        anyhow::ensure!(ok, "{}: held_out >= 2, steps, batch, points and pool >= 1", self.name);
        anyhow::ensure!(self.lr.is_finite() && self.lr > 0.0, "{}: lr must be > 0", self.name);
        anyhow::ensure!(
            (1..=self.batch).contains(&self.batch_split) && self.parallel_batches >= 1,
            "{}: batch_split must lie in 1..=batch and parallel_batches be >= 1",
            self.name
        );
        anyhow::ensure!(
            self.samples == 0 || (1..=1000).contains(&self.sampling_steps),
            "{}: sampling_steps must lie in 1..=1000",
            self.name
        );
        anyhow::ensure!(self.flipd_steps.is_empty() || self.samples >= 2, "{}: FLIPD needs samples >= 2", self.name);
        match &self.sizes {
            Sizes::List(v) => anyhow::ensure!(!v.is_empty() && v.iter().all(|n| *n >= 1), "{}: sizes >= 1", self.name),
            Sizes::Transition { low, high } => {
                anyhow::ensure!(7 <= *low && low < high, "{}: 7 <= low < high", self.name)
            }
        }
        Ok(())
    }

    fn log_every(&self) -> u64 {
        if self.log_every > 0 {
            self.log_every
        } else {
            (self.steps / 20).max(1)
        }
    }
}

/// Everything one figure run needs: the settings, and what they resolve to (the image set,
/// its held-out images, the U-Net config, the sizes).
struct Plan<'a> {
    st: &'a Settings,
    set: ImageSet,
    split: NestedSplit,
    held: Mat<f64>,
    unet: UNetConfig,
    sizes: Vec<usize>,
}

/// A shipped U-Net config by name, or a JSON file.
pub fn unet_config(name: &str) -> Result<UNetConfig> {
    let text = match name {
        "smoke" => include_str!("../../../../experiments/unet/smoke.json").to_string(),
        "digits" => include_str!("../../../../experiments/unet/digits.json").to_string(),
        "fashion14" => include_str!("../../../../experiments/unet/fashion14.json").to_string(),
        "mnist" => include_str!("../../../../experiments/unet/mnist.json").to_string(),
        "cifar10" => include_str!("../../../../experiments/unet/cifar10.json").to_string(),
        path => std::fs::read_to_string(path).with_context(|| format!("reading the U-Net config {path}"))?,
    };
    serde_json::from_str(&text).with_context(|| format!("parsing the U-Net config {name}"))
}

/// The kind of an image-data string: `digits`, `fashion`, `mnist`, `cifar10`.
pub fn image_kind(data: &str) -> &str {
    data.split_once(':').map_or(data, |(k, _)| k)
}

/// The training or test split of an image set (`None` for the test split of the digits).
fn image_set(data: &str, split: Split) -> Result<Option<ImageSet>> {
    if data == "digits" {
        return Ok((split == Split::Train).then(ImageSet::digits).transpose()?);
    }
    if data == "fashion" {
        return Ok(Some(read_fashion_mnist(split)?));
    }
    let (kind, dir) = data
        .split_once(':')
        .context("image data is `digits`, `fashion` or KIND:DIR, KIND = mnist | fashion | cifar10")?;
    Ok(Some(match kind {
        "mnist" | "fashion" => read_mnist(dir, split)?,
        "cifar10" => read_cifar10(dir, split)?,
        other => bail!("unknown image data '{other}' (mnist, fashion, cifar10)"),
    }))
}

fn pooled(set: ImageSet, pool: usize) -> Result<ImageSet> {
    Ok(if pool > 1 { set.mean_pool(pool)? } else { set })
}

fn plan(st: &Settings) -> Result<Plan<'_>> {
    st.check()?;
    let set = pooled(image_set(&st.data, Split::Train)?.context("no training split")?, st.pool)?;
    let (split, held) = match st.held_out_from {
        HeldOutFrom::Train => {
            let split = NestedSplit::new(set.len(), st.held_out, st.seed)?;
            let held = set.rows(split.held_out())?;
            (split, held)
        }
        HeldOutFrom::Test => {
            let test = image_set(&st.data, Split::Test)?.context("this image set has no test split")?;
            let test = pooled(test, st.pool)?;
            let pick = NestedSubsets::new(test.len(), st.seed ^ 0x7E57);
            (NestedSplit::new(set.len(), 0, st.seed)?, test.rows(pick.indices(st.held_out)?)?)
        }
    };
    let sizes = st.sizes.resolve(split.max_train());
    if let Some(&n) = sizes.iter().find(|&&n| n > split.max_train()) {
        bail!("{}: size {n} exceeds the {} training images", st.name, split.max_train());
    }
    let unet = unet_config(&st.unet)?;
    anyhow::ensure!(
        unet.image_size == set.height && unet.channels == set.channels,
        "{}: the U-Net takes {}×{} images with {} channel(s), the data are {}×{} with {}",
        st.name,
        unet.image_size,
        unet.image_size,
        unet.channels,
        set.height,
        set.width,
        set.channels
    );
    Ok(Plan { st, set, split, held, unet, sizes })
}

/// The jobs: every size with the base seed, the sizes of `second_seed_at` with `seed + 1`;
/// largest first, so that the longest measurements do not start last.
fn jobs(pl: &Plan<'_>) -> Vec<(usize, u64)> {
    let mut v: Vec<(usize, u64)> = pl.sizes.iter().map(|&n| (n, pl.st.seed)).collect();
    v.extend(pl.st.second_seed_at.iter().filter(|n| pl.sizes.contains(n)).map(|&n| (n, pl.st.seed + 1)));
    v.sort_by_key(|&(n, s)| (std::cmp::Reverse(n), s));
    v
}

/// Runs the figure: every job, or with `shard` only the jobs whose index it takes (needs
/// `checkpoint_every > 0`, so that each job leaves its result in its run directory); the
/// figure is drawn once every job has a result.
pub fn run(st: &Settings, root: &std::path::Path, shard: Option<crate::sweep::Shard>) -> Result<String> {
    let pl = plan(st)?;
    anyhow::ensure!(
        shard.is_none() || st.checkpoint_every > 0,
        "{}: --shard needs checkpoint_every > 0 (each size keeps its run directory and result)",
        st.name
    );
    let out = FigureDir::new(root, &st.name)?;
    out.write_json(
        "config.json",
        &serde_json::json!({
            "data": pl.set.source, "images": pl.set.len(), "held_out": pl.st.held_out, "held_out_from": pl.st.held_out_from,
            "sizes": pl.sizes, "unet": pl.unet, "parameters": pl.unet.parameter_count().map(|c| c as u64),
            "settings": pl.st, "K": "4d, central differences", "backend": crate::backend::name(),
        }),
    )?;
    let all = jobs(&pl);
    let mine: Vec<(usize, u64)> =
        all.iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| s.takes(*i))).map(|(_, j)| *j).collect();
    let pb = crate::out::bar(mine.len() as u64, "image dimension: U-Nets");
    // burn's CPU backend runs these convolutions on one core: two nets train side by side.
    let runs = out.dir.join("runs");
    let mut res =
        super::common::on_two_workers(mine, |(n, s)| measure::one_size_cached(&pl, n, s, &runs), || pb.inc(1))?;
    pb.finish_and_clear();
    if shard.is_some() {
        let missing = all.iter().filter(|(n, s)| !measure::has_result(&pl, *n, *s, &runs)).count();
        if missing > 0 {
            return Ok(format!(
                "{}: shard done; {missing} of {} sizes still without a result; run the same file without --shard once every shard has finished\n",
                st.name,
                all.len()
            ));
        }
        res = all.iter().map(|&(n, s)| measure::one_size_cached(&pl, n, s, &runs)).collect::<Result<_>>()?;
    }
    res.sort_by_key(|r| (r.n, r.seed));
    report::report(&out, &pl, &res)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 000's rule: 5 sizes from 2 below `low`, 30 from `low` to `high`, 5 from `high`
    /// to the whole set, the last one the whole set.
    #[test]
    fn transition_sizes_reach_two_and_the_whole_set() {
        let v = Sizes::Transition { low: 4000, high: 16000 }.resolve(60_000);
        assert_eq!(v.len(), 40);
        assert_eq!((v[0], v[4], v[5], v[34], v[39]), (2, 3200, 4000, 16000, 60_000));
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Sizes::List(vec![3, 5]).resolve(10), vec![3, 5]);
    }

    fn shipped(text: &str) -> Settings {
        match crate::figures::FigureSpec::parse(text, "a shipped file").expect("parses") {
            crate::figures::FigureSpec::ImageDimension(s) => s,
            other => panic!("not the image figure: {}", other.name()),
        }
    }

    fn shipped_rule(text: &str) -> SecondDerivativeRule {
        shipped(text).rule
    }

    /// `jacobian_spectra` is on by default and written out only when off (so the shipped
    /// files' settings, hence the published figures' hashes, do not change), and an
    /// explicit `false` survives writing and reading back.
    #[test]
    fn jacobian_spectra_default_on_and_written_only_when_off() {
        let text = include_str!("../../../../experiments/figures/image_dimension.toml");
        let on = shipped(text);
        assert!(on.jacobian_spectra);
        assert!(!toml::to_string(&on).unwrap().contains("jacobian_spectra"));
        let off = Settings { jacobian_spectra: false, ..on };
        let written = toml::to_string(&off).unwrap();
        assert!(written.contains("jacobian_spectra = false"), "{written}");
        assert!(!toml::from_str::<Settings>(&written).unwrap().jacobian_spectra);
    }

    /// The Algorithm-3 constants the shipped files use are the ones docs/REPRODUCTION.md
    /// names: seed 001's for MNIST and CIFAR-10, the authors' code's for Fashion-MNIST (no
    /// seed prints one), and the quick Fashion-MNIST file the code's `d̄` scaled to 14×14.
    #[test]
    fn shipped_files_use_the_named_algorithm_3_constants() {
        let full_mnist = include_str!("../../../../experiments/full/figures/image_dimension_mnist.toml");
        let full_cifar = include_str!("../../../../experiments/full/figures/image_dimension_cifar10.toml");
        let full_fashion = include_str!("../../../../experiments/full/figures/image_dimension_fashion.toml");
        let quick_fashion = include_str!("../../../../experiments/figures/image_dimension_fashion.toml");
        assert_eq!(shipped_rule(full_mnist), SecondDerivativeRule::PAPER_MNIST);
        assert_ne!(shipped_rule(full_mnist), SecondDerivativeRule::CODE_MNIST);
        assert_eq!(shipped_rule(full_cifar), SecondDerivativeRule::PAPER_CIFAR10);
        assert_eq!(shipped_rule(full_cifar), SecondDerivativeRule::CODE_CIFAR10);
        assert_eq!(shipped_rule(full_fashion), SecondDerivativeRule::CODE_FASHION_MNIST);
        let code = SecondDerivativeRule::CODE_FASHION_MNIST;
        let quick = shipped_rule(quick_fashion);
        assert_eq!((quick.discard, quick.threshold), (code.discard * 196 / 784, code.threshold));
    }
}
