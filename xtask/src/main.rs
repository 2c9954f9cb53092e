//! `cargo xtask`: the project's own runners (the user commands, `lid`, `spectrum`, `train`,
//! `sample`, `inspect`, are the `geomem` binary of `crates/geomem-cli`).
//!
//! `cargo xtask reproduce` regenerates the paper's figures (quick settings by default,
//! `--full` for the paper's); `run` runs one figure or sweep from its TOML file, `aggregate`
//! joins a sharded sweep, `gpu-check` compares CUDA with the CPU. Each figure writes its
//! config, CSV data, PNG/SVG plots and a `summary.md` under `results/<figure>/`.

mod backend;
mod figures;
mod gpu_check;
mod out;
mod plot;
mod provenance;
mod sweep;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use figures::common::Scale;
use figures::{Figure, FigureSpec, Shipment};
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

/// A trained-network figure: its sweep, then (with `green_times`) the green-gap analysis of
/// its nets.
fn trained_figure(spec: &sweep::Spec, out: &std::path::Path) -> Result<String> {
    let report = run_sweep(spec, out, None, None)?;
    if spec.green_times.is_some() {
        return Ok(report + "\n" + &figures::green_nets::run(spec, out)?);
    }
    Ok(report)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
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
                let s = match f.settings(scale, image_data.as_deref())? {
                    Shipment::Figure(spec) => spec.run(&out)?,
                    Shipment::Sweep(spec) => trained_figure(&spec, &out)?,
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
        let name = |s: &Shipment| match s {
            Shipment::Figure(f) => f.name().to_string(),
            Shipment::Sweep(s) => s.name.clone(),
        };
        for f in Figure::value_variants() {
            let images: &[Option<&str>] = if *f == Figure::ImageDimension {
                &[None, Some("mnist:D"), Some("fashion"), Some("fashion:D"), Some("cifar10:D")]
            } else {
                &[None]
            };
            for image in images {
                let quick =
                    f.settings(Scale { full: false, seed: 0 }, *image).unwrap_or_else(|e| panic!("{f:?}: {e:#}"));
                let full =
                    f.settings(Scale { full: true, seed: 3 }, *image).unwrap_or_else(|e| panic!("{f:?} full: {e:#}"));
                assert_eq!(name(&quick), name(&full), "{f:?} {image:?}");
            }
        }
        let svhn = Figure::ImageDimension.settings(Scale { full: false, seed: 0 }, Some("svhn:D"));
        assert!(svhn.is_err());
    }
}
