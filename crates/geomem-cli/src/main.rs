//! `geomem`: geometric memorization on one's own data and models, from the shell.
//!
//! * `geomem lid`: local intrinsic dimension of points (MLE, TwoNN from data; FLIPD and the
//!   Normal Bundle dimension from a run directory's network).
//! * `geomem spectrum`: Jacobian spectra and the dimension readings of a run directory's
//!   network or of the empirical score of a data file, at given times and points.
//! * `geomem train`: train the paper's toy score network on a data file (resumable).
//! * `geomem sample`: draw samples from a run directory's network.
//! * `geomem inspect`: what a run directory holds.
//!
//! Outputs are `.npy`, CSV and JSON; errors are one message and exit status 1.

mod backend;
mod inspect;
mod lid;
mod output;
mod sample;
mod spectrum;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "geomem", version, about = "Geometric memorization in diffusion models: LID, spectra, training")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Local intrinsic dimension of points: MLE / TwoNN from data, FLIPD / NB from a run directory.
    Lid(lid::LidArgs),
    /// Jacobian spectra and dimension readings of a run directory's net or of a data file's
    /// empirical score, at given times and points.
    Spectrum(spectrum::SpectrumArgs),
    /// Train the paper's toy score network on a data file (rerun to resume a run directory).
    Train(train::TrainArgs),
    /// Draw samples from a run directory's EMA network.
    Sample(sample::SampleArgs),
    /// Show what a run directory holds: settings, progress, losses.
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with 1 as every other error does (clap's own status is 2); help and
    // version print and succeed.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.cmd {
        Cmd::Lid(a) => lid::run(&a),
        Cmd::Spectrum(a) => spectrum::run(&a),
        Cmd::Train(a) => train::run(&a),
        Cmd::Sample(a) => sample::run(&a),
        Cmd::Inspect(a) => inspect::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
