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

use crate::figures::common::Scale;
use anyhow::{Context, Result};
use std::path::Path;

/// Declares the figure kinds once: the [`FigureSpec`] enum (a TOML file's `figure = "…"`
/// picks the variant, kebab-case) and every method that dispatches on it. A kind is a
/// module with a `Settings` (fields `name` and `seed`, a `check`) and a `run(settings,
/// root)`, or `run(settings, root, shard)` when marked `sharded`.
macro_rules! figure_kinds {
    ($($(#[$doc:meta])* $kind:ident($module:ident $(, $sharded:ident)?)),* $(,)?) => {
        /// A figure that is not a trained-network sweep, as a TOML file: `figure = "…"` names the
        /// kind, the other keys are that kind's `Settings` (unknown keys are refused). The shipped
        /// files are under `experiments/figures/` (quick) and `experiments/full/figures/` (the
        /// paper's sizes).
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "figure", rename_all = "kebab-case")]
        pub enum FigureSpec {
            $($(#[$doc])* $kind($module::Settings)),*
        }

        impl FigureSpec {
            fn check_kind(&self) -> Result<()> {
                match self {
                    $(Self::$kind(s) => s.check()),*
                }
            }

            /// The output folder's name.
            pub fn name(&self) -> &str {
                match self {
                    $(Self::$kind(s) => &s.name),*
                }
            }

            fn seed_mut(&mut self) -> &mut u64 {
                match self {
                    $(Self::$kind(s) => &mut s.seed),*
                }
            }

            fn run_kind(&self, root: &Path, shard: Option<crate::sweep::Shard>) -> Result<String> {
                match self {
                    $(Self::$kind(s) => run_kind!($module, s, root, shard $(, $sharded)?)),*
                }
            }
        }
    };
}

/// A kind's `run`: with the shard when it takes one, else refusing one.
macro_rules! run_kind {
    ($module:ident, $s:expr, $root:expr, $shard:expr, sharded) => {
        $module::run($s, $root, $shard)
    };
    ($module:ident, $s:expr, $root:expr, $shard:expr) => {{
        anyhow::ensure!($shard.is_none(), "--shard applies to trained-network sweeps and the image figure");
        $module::run($s, $root)
    }};
}

figure_kinds! {
    /// Fig. 3.
    ScoreField(fig3),
    /// Fig. 4, 12.
    SpectraTime(spectra_t),
    /// Fig. 9, 10, 13, 14.
    SpectraSize(spectra_n),
    /// Fig. 8.
    Condensation(fig8),
    /// The participation ratio against the REM.
    Participation(neff),
    /// Where the gap at d - m2 comes from.
    GreenGap(green_gap),
    /// Seed 004, Fig. 3.
    VonMises(von_mises),
    /// Seed 004's detection on the 8×8 digits.
    DetectionDigits(detection_digits),
    /// Seed 000 Fig. 2 / seed 001 Fig. 6-7.
    ImageDimension(image_dimension, sharded),
}

impl FigureSpec {
    /// Parses a figure's TOML (`what` names it in errors) and checks its settings.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let spec: Self = toml::from_str(text).with_context(|| format!("parsing {what}"))?;
        spec.check().with_context(|| format!("checking {what}"))?;
        Ok(spec)
    }

    /// Checks the settings, that the name is one folder name, and that the largest data set
    /// the figure builds fits in memory.
    fn check(&self) -> Result<()> {
        crate::out::check_name(self.name())?;
        self.check_kind()?;
        for (what, bytes) in self.memory_needs() {
            geomem_data::check_memory(&format!("{}: {what}", self.name()), bytes)?;
        }
        Ok(())
    }

    /// What the figure holds in memory at once, as far as its settings decide it: the
    /// largest data set (every empirical score of a size at once for green-gap), in bytes.
    fn memory_needs(&self) -> Vec<(String, u128)> {
        use geomem_data::matrix_bytes;
        let largest = |sizes: &[usize]| sizes.iter().copied().max().unwrap_or(0);
        match self {
            Self::ScoreField(s) => vec![(format!("{} points in 2 dimensions", s.n), matrix_bytes(s.n, 2))],
            Self::SpectraTime(s) => {
                vec![(format!("{} points of dimension {}", s.n, s.setup.d), matrix_bytes(s.n, s.setup.d))]
            }
            Self::Participation(s) => {
                vec![(format!("{} points of dimension {}", s.n, s.setup.d), matrix_bytes(s.n, s.setup.d))]
            }
            Self::SpectraSize(s) => {
                let n = largest(&s.sizes);
                vec![(format!("sizes up to {n} of dimension {}", s.setup.d), matrix_bytes(n, s.setup.d))]
            }
            Self::GreenGap(s) => {
                let n = largest(&s.sizes);
                let what = format!("{} training sets of up to {n} points of dimension 30", s.points_per_kind);
                vec![(what, matrix_bytes(n, 30) * s.points_per_kind as u128)]
            }
            Self::Condensation(s) => vec![(format!("a {0} × {0} covariance", s.d), matrix_bytes(s.d, s.d))],
            Self::VonMises(s) => vec![(format!("{} samples", s.samples), matrix_bytes(s.samples, 2))],
            Self::DetectionDigits(_) | Self::ImageDimension(_) => Vec::new(),
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
        *self.seed_mut() = seed;
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
        self.check()?;
        let summary = self.run_kind(root, shard)?;
        crate::out::FigureDir::new(root, self.name())?.write_text("settings.toml", &toml::to_string(self)?)?;
        Ok(summary)
    }
}

/// Where a figure of `reproduce` takes its shipped settings from (files under
/// `experiments/`, embedded so that `reproduce` runs anywhere).
#[derive(Clone, Copy)]
pub enum Shipped {
    /// A network-free figure: `(quick, full)` files of `experiments/figures/` and
    /// `experiments/full/figures/`, as (text, path).
    Figure([(&'static str, &'static str); 2]),
    /// A trained-network sweep: `(quick, full)` files of `experiments/` and `experiments/full/`.
    Sweep([(&'static str, &'static str); 2]),
    /// The image figure: one file per image set, picked by `--image-data`.
    Images,
}

/// Declares the figures of `reproduce` once: the [`Figure`] enum (its command-line names)
/// and where each takes its shipped settings from.
macro_rules! figures {
    ($($(#[$doc:meta])* $fig:ident => $how:ident $(($file:literal))?),* $(,)?) => {
        /// The figures `reproduce` knows (numbers of seed 001).
        #[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
        pub enum Figure {
            $($(#[$doc])* $fig),*
        }

        impl Figure {
            /// Where the figure's shipped settings are.
            pub fn shipped(self) -> Shipped {
                match self {
                    $(Self::$fig => shipped!($how $(, $file)?)),*
                }
            }
        }
    };
}

/// The embedded files of one figure.
macro_rules! shipped {
    (figure, $file:literal) => {
        Shipped::Figure([
            (include_str!(concat!("../../../experiments/figures/", $file)), concat!("experiments/figures/", $file)),
            (
                include_str!(concat!("../../../experiments/full/figures/", $file)),
                concat!("experiments/full/figures/", $file),
            ),
        ])
    };
    (sweep, $file:literal) => {
        Shipped::Sweep([
            (include_str!(concat!("../../../experiments/", $file)), concat!("experiments/", $file)),
            (include_str!(concat!("../../../experiments/full/", $file)), concat!("experiments/full/", $file)),
        ])
    };
    (images) => {
        Shipped::Images
    };
}

figures! {
    /// Fig. 3: empirical score field of bivariate data at β = 1, 10, 100.
    Fig3 => figure("fig3.toml"),
    /// Fig. 4 (= Fig. 11): spectra against t, d = 30, 2 + 5, N = 1000 (Eq. 19, Eq. 18, measured).
    Fig4 => figure("fig4.toml"),
    /// Fig. 12: spectra against t, d = 30, 5 + 10, N = 1000.
    Fig12 => figure("fig12.toml"),
    /// Fig. 9: measured empirical-score spectra against N, 2 + 5.
    Fig9 => figure("fig9.toml"),
    /// Fig. 10: measured empirical-score spectra against N, 5 + 10.
    Fig10 => figure("fig10.toml"),
    /// Fig. 13: closed-form (Eq. 19) spectra against N, 2 + 5.
    Fig13 => figure("fig13.toml"),
    /// Fig. 14: random-matrix (Eq. 18) spectra against N, 5 + 10.
    Fig14 => figure("fig14.toml"),
    /// Fig. 8: exact vs approximate condensation time; t_c against ω².
    Fig8 => figure("fig8.toml"),
    /// Extra: measured participation ratio against the REM prediction (Eq. 36).
    Neff => figure("neff.toml"),
    /// Where the gap at d - m2 comes from: closed forms (printed, derived, the authors'
    /// notebook), the empirical score on linear and sphere data, signed spectra, controls.
    GreenGap => figure("green_gap.toml"),
    /// Fig. 5: networks trained on d = 30, 2 + 5, sizes from memorizing to generalizing.
    Fig5 => sweep("fig5.toml"),
    /// Fig. 16: networks trained on d = 30, 5 + 10, same sizes.
    Fig16 => sweep("fig16.toml"),
    /// Fig. 15: networks on d = 100, m = 40: the order of the variances (1 vs 0.01, swapped).
    Fig15 => sweep("fig15.toml"),
    /// The trained-network row of green-gap: nets on linear and sphere data beside isotropic
    /// controls, signed spectra, block weights, the authors' procedure.
    GreenNets => sweep("green_nets.toml"),
    /// Seed 004, Fig. 3: a net on 100 von Mises points with one isolated; FLIPD of its samples.
    VonMises => figure("von_mises.toml"),
    /// Seed 004: memorization detection by FLIPD (AUROC against N) on the embedded 8×8 digits.
    DetectionDigits => figure("detection_digits.toml"),
    /// Seed 000 Fig. 2 / seed 001 Fig. 6-7: a DDPM U-Net's image dimension against N.
    ImageDimension => images,
}

/// The image figure's shipped settings for an `--image-data` value (digits when absent).
fn image_settings(full: bool, image_data: Option<&str>) -> Result<(&'static str, &'static str)> {
    macro_rules! pick {
        ($file:literal) => {
            if full {
                (
                    include_str!(concat!("../../../experiments/full/figures/", $file)),
                    concat!("experiments/full/figures/", $file),
                )
            } else {
                (include_str!(concat!("../../../experiments/figures/", $file)), concat!("experiments/figures/", $file))
            }
        };
    }
    Ok(match image_data.map(image_dimension::image_kind) {
        None | Some("digits") => pick!("image_dimension.toml"),
        Some("fashion") => pick!("image_dimension_fashion.toml"),
        Some("mnist") => pick!("image_dimension_mnist.toml"),
        Some("cifar10") => pick!("image_dimension_cifar10.toml"),
        Some(other) => anyhow::bail!("unknown image data '{other}' (digits, fashion, mnist, cifar10)"),
    })
}

/// What `reproduce` runs for one figure.
pub enum Shipment {
    /// A network-free figure's settings (the image figure's with `--image-data` applied).
    Figure(FigureSpec),
    /// A trained-network sweep.
    Sweep(crate::sweep::Spec),
}

impl Figure {
    /// The figure's shipped settings at `scale` (its base seed applied), the image figure's
    /// for `image_data`.
    pub fn settings(self, scale: Scale, image_data: Option<&str>) -> Result<Shipment> {
        let pick = |files: [(&'static str, &'static str); 2]| files[usize::from(scale.full)];
        match self.shipped() {
            Shipped::Figure(files) => {
                let (text, what) = pick(files);
                Ok(Shipment::Figure(FigureSpec::parse(text, what)?.with_seed(scale.seed)))
            }
            Shipped::Images => {
                let (text, what) = image_settings(scale.full, image_data)?;
                let spec = FigureSpec::parse(text, what)?.with_seed(scale.seed);
                Ok(Shipment::Figure(match image_data {
                    Some(d) => spec.with_image_data(d),
                    None => spec,
                }))
            }
            Shipped::Sweep(files) => {
                let (text, what) = pick(files);
                let mut spec: crate::sweep::Spec = toml::from_str(text).with_context(|| format!("parsing {what}"))?;
                spec.check().with_context(|| format!("checking {what}"))?;
                spec.base_seed = scale.seed;
                Ok(Shipment::Sweep(spec))
            }
        }
    }
}
