//! `cargo xtask`: runners of the geomem project.
//!
//! `cargo xtask reproduce` regenerates the figures of seed 001 that need no trained network
//! (quick settings by default, `--full` for the paper's). Each figure writes its config,
//! CSV data, PNG/SVG plots and a `summary.md` under `results/<figure>/`.

mod figures;
mod out;
mod plot;

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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Reproduce { figures, full, out, seed } => {
            let figs = if figures.is_empty() { Figure::value_variants().to_vec() } else { figures };
            let scale = Scale { full, seed };
            std::fs::create_dir_all(&out)?;
            println!("geomem reproduce: {} figure(s), {} settings, results in {}", figs.len(), if full { "full (paper)" } else { "quick" }, out.display());
            let mut all = String::from("# geomem reproduce: summaries\n\n");
            for f in figs {
                let start = Instant::now();
                let s = match f {
                    Figure::Fig3 => figures::fig3::run(scale, &out)?,
                    Figure::Fig4 => figures::spectra_t::run("fig4", &Setup::two_five(), scale, &out)?,
                    Figure::Fig12 => figures::spectra_t::run("fig12", &Setup::five_ten(), scale, &out)?,
                    Figure::Fig9 => figures::spectra_n::run("fig9", &Setup::two_five(), Source::Measured, scale, &out)?,
                    Figure::Fig10 => figures::spectra_n::run("fig10", &Setup::five_ten(), Source::Measured, scale, &out)?,
                    Figure::Fig13 => figures::spectra_n::run("fig13", &Setup::two_five(), Source::ClosedForm, scale, &out)?,
                    Figure::Fig14 => figures::spectra_n::run("fig14", &Setup::five_ten(), Source::RandomMatrix, scale, &out)?,
                    Figure::Fig8 => figures::fig8::run(scale, &out)?,
                    Figure::Neff => figures::neff::run(scale, &out)?,
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
