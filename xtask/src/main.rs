//! `cargo xtask`: runners of the geomem project.
//!
//! `cargo xtask reproduce` regenerates the figures of seed 001 that need no trained network
//! (quick settings by default, `--full` for the paper's). Each figure writes its config,
//! CSV data, PNG/SVG plots and a `summary.md` under `results/<figure>/`.

mod backend;
mod figures;
mod out;
mod plot;
mod train_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use figures::common::{Scale, Setup};
use figures::spectra_n::Source;
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
    },
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
    /// Fig. 5: networks trained on d = 30, 2 + 5, N = 250, 500, 1000 and a large N.
    Fig5,
    /// Fig. 16: networks trained on d = 30, 5 + 10, same sizes.
    Fig16,
    /// Fig. 15: networks on d = 100, m = 40: variance order (1 vs 0.01, swapped, uniform).
    Fig15,
}

/// Steps per network: the paper trains 2 000 000; the quick default is sized so that the
/// three trained-network figures together take about 15 minutes on 2 CPU cores.
fn trained_figure(f: Figure, scale: Scale, out: &std::path::Path) -> Result<String> {
    use figures::trained::{run, Variant};
    let sizes = [250, 500, 1000, 10_000];
    match f {
        Figure::Fig5 => run(
            "fig5",
            &[Variant::two_blocks("2+5", 30, (2, 1.0), (5, 0.3))],
            &sizes,
            &[1.0, 0.1, 0.01, 1e-5],
            if scale.full { 2_000_000 } else { 25_000 },
            scale,
            out,
        ),
        Figure::Fig16 => run(
            "fig16",
            &[Variant::two_blocks("5+10", 30, (5, 1.0), (10, 0.3))],
            &sizes,
            &[1.0, 0.1, 0.01, 1e-5],
            if scale.full { 2_000_000 } else { 25_000 },
            scale,
            out,
        ),
        _ => {
            let uniform: Vec<(usize, f64)> = (0..40).map(|k| (1, 0.025 * (k as f64 + 0.5))).collect();
            let mut u = Variant {
                label: "uniform".into(),
                d: 100,
                blocks: uniform,
                marks: vec![(60, "manifold d-m = 60".into())],
            };
            u.blocks.sort_by(|a, b| b.1.total_cmp(&a.1));
            run(
                "fig15",
                &[
                    Variant::two_blocks("1 vs 0.01", 100, (10, 1.0), (30, 0.01)),
                    Variant::two_blocks("0.01 vs 1", 100, (10, 0.01), (30, 1.0)),
                    u,
                ],
                &[200, 1000, 5000],
                &[0.6, 0.4, 0.2],
                if scale.full { 2_000_000 } else { 8_000 },
                scale,
                out,
            )
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Train(a) => train_cmd::run(&a)?,
        Cmd::Reproduce { figures, full, out, seed } => {
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
                    Figure::Fig3 => figures::fig3::run(scale, &out)?,
                    Figure::Fig4 => figures::spectra_t::run("fig4", &Setup::two_five(), scale, &out)?,
                    Figure::Fig12 => figures::spectra_t::run("fig12", &Setup::five_ten(), scale, &out)?,
                    Figure::Fig9 => figures::spectra_n::run("fig9", &Setup::two_five(), Source::Measured, scale, &out)?,
                    Figure::Fig10 => {
                        figures::spectra_n::run("fig10", &Setup::five_ten(), Source::Measured, scale, &out)?
                    }
                    Figure::Fig13 => {
                        figures::spectra_n::run("fig13", &Setup::two_five(), Source::ClosedForm, scale, &out)?
                    }
                    Figure::Fig14 => {
                        figures::spectra_n::run("fig14", &Setup::five_ten(), Source::RandomMatrix, scale, &out)?
                    }
                    Figure::Fig8 => figures::fig8::run(scale, &out)?,
                    Figure::Neff => figures::neff::run(scale, &out)?,
                    Figure::Fig5 | Figure::Fig16 | Figure::Fig15 => trained_figure(f, scale, &out)?,
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
