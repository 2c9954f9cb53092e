//! `cargo xtask`: runners of the geomem project.
//!
//! `cargo xtask reproduce` regenerates the figures of seed 001 that need no trained network
//! (quick settings by default, `--full` for the paper's). Each figure writes its config,
//! CSV data, PNG/SVG plots and a `summary.md` under `results/<figure>/`.

mod backend;
mod figures;
mod gpu_check;
mod lid_cmd;
mod out;
mod plot;
mod provenance;
mod sweep;
mod train_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use figures::common::Scale;
use figures::FigureSpec;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "xtask", about = "geomem runners")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train the paper's score network on a dataset file (resumes an existing run directory).
    Train(train_cmd::TrainArgs),
    /// Run an experiment from a TOML file: a network-free figure (a file with a `figure` key,
    /// see experiments/figures/) or a trained-network sweep (see experiments/): train and
    /// measure the jobs this shard owns (complete ones are skipped), then aggregate.
    Run(RunArgs),
    /// Make the figures of a sweep from whatever job results exist (after sharded runs).
    Aggregate {
        /// The sweep's spec file.
        spec: PathBuf,
        /// Results folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Local intrinsic dimension of points: MLE / TwoNN from data, FLIPD / NB from a trained net.
    Lid(lid_cmd::LidArgs),
    /// Train and time on the device backend (CUDA with `--features cuda`) against the CPU
    /// from one seed; one JSON report.
    GpuCheck(gpu_check::GpuCheckArgs),
    /// Copy the PNGs of a `reproduce` output folder into docs/figures, each beside a TOML
    /// file saying which run made it (the settings and their hash, checked by a test).
    Publish {
        /// The `reproduce` output folder.
        #[arg(long, default_value = "results")]
        from: PathBuf,
        /// Which run made the figures (command, commit, machine, date): written into each
        /// figure's provenance file.
        #[arg(long)]
        note: String,
    },
    /// Regenerate the paper's figures (all by default).
    Reproduce {
        /// Figures to run; all when none is given.
        #[arg(value_enum)]
        figures: Vec<Figure>,
        /// Paper-sized runs (more times, sizes and realisations) instead of the quick default.
        #[arg(long)]
        full: bool,
        /// Results folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Base seed of every random draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Image set of `image-dimension`: `fashion` (Debian's dataset-fashion-mnist, in
        /// /usr/share/datasets/fashion-mnist), `mnist:DIR`, `fashion:DIR` (IDX files, raw or
        /// gzip) or `cifar10:DIR` (binary batches); the embedded 8×8 digits when absent.
        #[arg(long)]
        image_data: Option<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The sweep's spec file (TOML).
    spec: PathBuf,
    /// Results folder (the sweep writes `<out>/<name>/`).
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Run only the jobs of shard `i/n` (job index mod n == i), or `auto` (SLURM array task
    /// id, or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with GEOMEM_SHARDS).
    #[arg(long)]
    shard: Option<sweep::Shard>,
    /// Worker threads, one job each (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

/// Runs a sweep spec: the jobs of this shard, then (unsharded) the aggregate.
fn run_sweep(
    spec: &sweep::Spec,
    out: &std::path::Path,
    shard: Option<sweep::Shard>,
    workers: Option<usize>,
) -> Result<String> {
    let dir = out::FigureDir::new(out, &spec.name)?;
    dir.write_text("spec.toml", &toml::to_string(spec)?)?;
    let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    sweep::run_jobs(spec, &dir.dir, shard, workers)?;
    if shard.is_some() {
        return Ok(format!("{}: shard done; run `cargo xtask aggregate` once every shard has finished\n", spec.name));
    }
    let header = format!("## {}: trained networks (backend {}, {} workers)", spec.name, backend::name(), workers);
    sweep::report::aggregate(spec, &dir, &header)
}

/// A figure's settings when the TOML file has a top-level `figure` key; `None` for a
/// trained-network sweep (read by `sweep::Spec::read`).
fn figure_file(path: &std::path::Path) -> Result<Option<FigureSpec>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
    if value.get("figure").is_none() {
        return Ok(None);
    }
    FigureSpec::parse(&text, &path.display().to_string()).map(Some)
}

/// The figures `reproduce` knows (numbers of seed 001).
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Figure {
    /// Fig. 3: empirical score field of bivariate data at β = 1, 10, 100.
    Fig3,
    /// Fig. 4 (= Fig. 11): spectra against t, d = 30, 2 + 5, N = 1000 (Eq. 19, Eq. 18, measured).
    Fig4,
    /// Fig. 12: spectra against t, d = 30, 5 + 10, N = 1000.
    Fig12,
    /// Fig. 9: measured empirical-score spectra against N, 2 + 5.
    Fig9,
    /// Fig. 10: measured empirical-score spectra against N, 5 + 10.
    Fig10,
    /// Fig. 13: closed-form (Eq. 19) spectra against N, 2 + 5.
    Fig13,
    /// Fig. 14: random-matrix (Eq. 18) spectra against N, 5 + 10.
    Fig14,
    /// Fig. 8: exact vs approximate condensation time; t_c against ω².
    Fig8,
    /// Extra: measured participation ratio against the REM prediction (Eq. 36).
    Neff,
    /// Where the gap at d - m2 comes from: closed forms (printed, derived, the authors'
    /// notebook), the empirical score on linear and sphere data, signed spectra, controls.
    GreenGap,
    /// Fig. 5: networks trained on d = 30, 2 + 5, sizes from memorizing to generalizing.
    Fig5,
    /// Fig. 16: networks trained on d = 30, 5 + 10, same sizes.
    Fig16,
    /// Fig. 15: networks on d = 100, m = 40: the order of the variances (1 vs 0.01, swapped).
    Fig15,
    /// The trained-network row of green-gap: nets on linear and sphere data beside isotropic
    /// controls, signed spectra, block weights, the authors' procedure.
    GreenNets,
    /// Seed 004, Fig. 3: a net on 100 von Mises points with one isolated; FLIPD of its samples.
    VonMises,
    /// Seed 004: memorization detection by FLIPD (AUROC against N) on the embedded 8×8 digits.
    DetectionDigits,
    /// Seed 000 Fig. 2 / seed 001 Fig. 6-7: a DDPM U-Net's image dimension against N.
    ImageDimension,
}

/// The shipped sweep specs (`experiments/`, embedded so that `reproduce` runs anywhere).
fn shipped_spec(f: Figure, full: bool) -> Result<sweep::Spec> {
    let text = match (f, full) {
        (Figure::Fig5, false) => include_str!("../../experiments/fig5.toml"),
        (Figure::Fig16, false) => include_str!("../../experiments/fig16.toml"),
        (Figure::Fig15, false) => include_str!("../../experiments/fig15.toml"),
        (Figure::Fig5, true) => include_str!("../../experiments/full/fig5.toml"),
        (Figure::Fig16, true) => include_str!("../../experiments/full/fig16.toml"),
        (Figure::Fig15, true) => include_str!("../../experiments/full/fig15.toml"),
        (Figure::GreenNets, false) => include_str!("../../experiments/green_nets.toml"),
        (Figure::GreenNets, true) => include_str!("../../experiments/full/green_nets.toml"),
        _ => anyhow::bail!("{f:?} is not a trained-network sweep"),
    };
    let spec: sweep::Spec = toml::from_str(text)?;
    spec.check()?;
    Ok(spec)
}

/// The shipped settings of a figure that is not a sweep (`experiments/figures/`, or
/// `experiments/full/figures/` with `--full`; embedded so that `reproduce` runs anywhere).
/// The image figure's file follows the kind of `--image-data` (digits when absent).
fn shipped_figure(f: Figure, full: bool, image_data: Option<&str>) -> Result<FigureSpec> {
    macro_rules! pick {
        ($file:literal) => {
            if full {
                (
                    include_str!(concat!("../../experiments/full/figures/", $file)),
                    concat!("experiments/full/figures/", $file),
                )
            } else {
                (include_str!(concat!("../../experiments/figures/", $file)), concat!("experiments/figures/", $file))
            }
        };
    }
    let (text, what) = match f {
        Figure::Fig3 => pick!("fig3.toml"),
        Figure::Fig4 => pick!("fig4.toml"),
        Figure::Fig12 => pick!("fig12.toml"),
        Figure::Fig9 => pick!("fig9.toml"),
        Figure::Fig10 => pick!("fig10.toml"),
        Figure::Fig13 => pick!("fig13.toml"),
        Figure::Fig14 => pick!("fig14.toml"),
        Figure::Fig8 => pick!("fig8.toml"),
        Figure::Neff => pick!("neff.toml"),
        Figure::GreenGap => pick!("green_gap.toml"),
        Figure::VonMises => pick!("von_mises.toml"),
        Figure::DetectionDigits => pick!("detection_digits.toml"),
        Figure::ImageDimension => match image_data.map(figures::image_dimension::image_kind) {
            None | Some("digits") => pick!("image_dimension.toml"),
            Some("fashion") => pick!("image_dimension_fashion.toml"),
            Some("mnist") => pick!("image_dimension_mnist.toml"),
            Some("cifar10") => pick!("image_dimension_cifar10.toml"),
            Some(other) => anyhow::bail!("unknown image data '{other}' (digits, fashion, mnist, cifar10)"),
        },
        _ => anyhow::bail!("{f:?} has no shipped figure settings"),
    };
    FigureSpec::parse(text, what)
}

/// A trained-network figure: its shipped spec with the base seed of the command line.
fn trained_figure(f: Figure, scale: Scale, out: &std::path::Path) -> Result<String> {
    let mut spec = shipped_spec(f, scale.full)?;
    spec.base_seed = scale.seed;
    let report = run_sweep(&spec, out, None, None)?;
    if spec.green_times.is_some() {
        return Ok(report + "\n" + &figures::green_nets::run(&spec, out)?);
    }
    Ok(report)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Train(a) => train_cmd::run(&a)?,
        Cmd::Lid(a) => lid_cmd::run(&a)?,
        Cmd::GpuCheck(a) => gpu_check::run(&a)?,
        Cmd::Publish { from, note } => {
            let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/figures");
            let done = provenance::publish(&from, &docs, &note)?;
            println!("published {} figure(s) to {}: {}", done.len(), docs.display(), done.join(", "));
        }
        Cmd::Run(a) => {
            if let Some(figure) = figure_file(&a.spec)? {
                std::fs::create_dir_all(&a.out)?;
                print!("{}", figure.run_shard(&a.out, a.shard)?);
            } else {
                let spec = sweep::Spec::read(&a.spec)?;
                print!("{}", run_sweep(&spec, &a.out, a.shard, a.workers)?);
                // A sharded job trains its share only; the analysis of the final nets needs them all.
                if spec.green_times.is_some() && a.shard.is_none() {
                    print!("\n{}", figures::green_nets::run(&spec, &a.out)?);
                }
            }
        }
        Cmd::Aggregate { spec, out } => {
            let spec = sweep::Spec::read(&spec)?;
            let dir = out::FigureDir::new(&out, &spec.name)?;
            print!("{}", sweep::report::aggregate(&spec, &dir, &format!("## {}: trained networks", spec.name))?);
        }
        Cmd::Reproduce { figures, full, out, seed, image_data } => {
            let figs = if figures.is_empty() { Figure::value_variants().to_vec() } else { figures };
            println!("backend for trained networks: {}", backend::name());
            let scale = Scale { full, seed };
            std::fs::create_dir_all(&out)?;
            println!(
                "geomem reproduce: {} figure(s), {} settings, results in {}",
                figs.len(),
                if full { "full (paper)" } else { "quick" },
                out.display()
            );
            let mut all = String::from("# geomem reproduce: summaries\n\n");
            for f in figs {
                let start = Instant::now();
                let s = match f {
                    Figure::Fig3
                    | Figure::Fig4
                    | Figure::Fig12
                    | Figure::Fig9
                    | Figure::Fig10
                    | Figure::Fig13
                    | Figure::Fig14
                    | Figure::Fig8
                    | Figure::Neff
                    | Figure::GreenGap
                    | Figure::VonMises
                    | Figure::DetectionDigits => shipped_figure(f, full, None)?.with_seed(seed).run(&out)?,
                    Figure::ImageDimension => {
                        let spec = shipped_figure(f, full, image_data.as_deref())?.with_seed(seed);
                        match image_data.as_deref() {
                            Some(d) => spec.with_image_data(d),
                            None => spec,
                        }
                        .run(&out)?
                    }
                    Figure::Fig5 | Figure::Fig16 | Figure::Fig15 | Figure::GreenNets => trained_figure(f, scale, &out)?,
                };
                println!("{f:?} done in {:.1} s", start.elapsed().as_secs_f64());
                all.push_str(&s);
                all.push('\n');
            }
            std::fs::write(out.join("summary.md"), &all)?;
            println!("summary: {}", out.join("summary.md").display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped settings file, quick and full (the full ones never run in CI), parses and
    /// passes its checks, and a figure's quick and full files write to the same folder (the
    /// one the docs refer to, `results/<name>/`).
    #[test]
    fn every_shipped_figure_file_parses() {
        for f in Figure::value_variants() {
            for full in [false, true] {
                let images: &[Option<&str>] = if *f == Figure::ImageDimension {
                    &[None, Some("mnist:D"), Some("fashion"), Some("fashion:D"), Some("cifar10:D")]
                } else {
                    &[None]
                };
                for image in images {
                    match f {
                        Figure::Fig5 | Figure::Fig16 | Figure::Fig15 | Figure::GreenNets => {
                            assert!(shipped_spec(*f, full).is_ok(), "{f:?} full={full}");
                        }
                        _ => {
                            let spec =
                                shipped_figure(*f, full, *image).unwrap_or_else(|e| panic!("{f:?} {full}: {e:#}"));
                            let quick = shipped_figure(*f, false, *image).unwrap();
                            assert_eq!(spec.name(), quick.name(), "{f:?} full={full} {image:?}");
                        }
                    }
                }
            }
        }
        assert!(shipped_figure(Figure::ImageDimension, false, Some("svhn:D")).is_err());
    }
}
