//! The figures of seed 001 that need no trained network, and seed 004's von Mises figure.
pub mod common;
pub mod detection_digits;
pub mod fig3;
pub mod fig8;
pub mod green_gap;
pub mod green_nets;
pub mod green_theory;
pub mod image_dimension;
pub mod neff;
pub mod spectra_n;
pub mod spectra_t;
pub mod von_mises;

use anyhow::{Context, Result};
use std::path::Path;

/// A figure that is not a trained-network sweep, as a TOML file: `figure = "…"` names the kind, the other keys are
/// that kind's `Settings` (unknown keys are refused). The shipped files are under
/// `experiments/figures/` (quick) and `experiments/full/figures/` (the paper's sizes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "figure", rename_all = "kebab-case")]
pub enum FigureSpec {
    /// Fig. 3.
    ScoreField(fig3::Settings),
    /// Fig. 4, 12.
    SpectraTime(spectra_t::Settings),
    /// Fig. 9, 10, 13, 14.
    SpectraSize(spectra_n::Settings),
    /// Fig. 8.
    Condensation(fig8::Settings),
    /// The participation ratio against the REM.
    Participation(neff::Settings),
    /// Where the gap at d - m2 comes from.
    GreenGap(green_gap::Settings),
    /// Seed 004, Fig. 3.
    VonMises(von_mises::Settings),
    /// Seed 004's detection on the 8×8 digits.
    DetectionDigits(detection_digits::Settings),
    /// Seed 000 Fig. 2 / seed 001 Fig. 6-7.
    ImageDimension(image_dimension::Settings),
}

impl FigureSpec {
    /// Parses a figure's TOML (`what` names it in errors) and checks its settings.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let spec: Self = toml::from_str(text).with_context(|| format!("parsing {what}"))?;
        spec.check().with_context(|| format!("checking {what}"))?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        match self {
            Self::ScoreField(s) => s.check(),
            Self::SpectraTime(s) => s.check(),
            Self::SpectraSize(s) => s.check(),
            Self::Condensation(s) => s.check(),
            Self::Participation(s) => s.check(),
            Self::GreenGap(s) => s.check(),
            Self::VonMises(s) => s.check(),
            Self::DetectionDigits(s) => s.check(),
            Self::ImageDimension(s) => s.check(),
        }
    }

    /// The output folder's name.
    pub fn name(&self) -> &str {
        match self {
            Self::ScoreField(s) => &s.name,
            Self::SpectraTime(s) => &s.name,
            Self::SpectraSize(s) => &s.name,
            Self::Condensation(s) => &s.name,
            Self::Participation(s) => &s.name,
            Self::GreenGap(s) => &s.name,
            Self::VonMises(s) => &s.name,
            Self::DetectionDigits(s) => &s.name,
            Self::ImageDimension(s) => &s.name,
        }
    }

    /// The image figure's data replaced (`reproduce --image-data`); other figures unchanged.
    pub fn with_image_data(mut self, data: &str) -> Self {
        if let Self::ImageDimension(s) = &mut self {
            s.data = data.to_string();
        }
        self
    }

    /// The same settings with another base seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        match &mut self {
            Self::ScoreField(s) => s.seed = seed,
            Self::SpectraTime(s) => s.seed = seed,
            Self::SpectraSize(s) => s.seed = seed,
            Self::Condensation(s) => s.seed = seed,
            Self::Participation(s) => s.seed = seed,
            Self::GreenGap(s) => s.seed = seed,
            Self::VonMises(s) => s.seed = seed,
            Self::DetectionDigits(s) => s.seed = seed,
            Self::ImageDimension(s) => s.seed = seed,
        }
        self
    }

    /// Runs the figure into `root/<name>/`, saving the resolved settings there as
    /// `settings.toml`; returns its summary.
    pub fn run(&self, root: &Path) -> Result<String> {
        self.run_shard(root, None)
    }

    /// As [`FigureSpec::run`], with only the jobs of `shard` (the image figure's sizes; the
    /// other figures have no jobs to shard and refuse one).
    pub fn run_shard(&self, root: &Path, shard: Option<crate::sweep::Shard>) -> Result<String> {
        anyhow::ensure!(
            shard.is_none() || matches!(self, Self::ImageDimension(_)),
            "--shard applies to trained-network sweeps and the image figure"
        );
        let summary = match self {
            Self::ScoreField(s) => fig3::run(s, root)?,
            Self::SpectraTime(s) => spectra_t::run(s, root)?,
            Self::SpectraSize(s) => spectra_n::run(s, root)?,
            Self::Condensation(s) => fig8::run(s, root)?,
            Self::Participation(s) => neff::run(s, root)?,
            Self::GreenGap(s) => green_gap::run(s, root)?,
            Self::VonMises(s) => von_mises::run(s, root)?,
            Self::DetectionDigits(s) => detection_digits::run(s, root)?,
            Self::ImageDimension(s) => image_dimension::run(s, root, shard)?,
        };
        crate::out::FigureDir::new(root, self.name())?.write_text("settings.toml", &toml::to_string(self)?)?;
        Ok(summary)
    }
}
