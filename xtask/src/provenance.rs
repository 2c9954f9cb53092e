//! Which run made each PNG in `docs/figures/`, and how a stale one is caught.
//!
//! `cargo xtask publish --from results --note "…"` copies the PNGs listed in [`PUBLISHED`]
//! from a `reproduce` output folder into `docs/figures/`, each beside a `<stem>.toml`: a
//! header (the note, the source file, the settings' hash) and the settings the run wrote,
//! verbatim. The test below recomputes the hash from the shipped settings files: change a
//! shipped file without regenerating its figures and the test names the stale PNGs.

use crate::figures::common::Scale;
use crate::figures::{Figure, Shipment};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// One published figure: the PNG's name in `docs/figures/`, the `reproduce` figure that
/// makes it (with the image data, for the image figure), and the file of that run.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub stem: &'static str,
    pub figure: Figure,
    pub image_data: Option<&'static str>,
    /// Path of the PNG under the `reproduce` output folder.
    pub source: &'static str,
}

const fn entry(stem: &'static str, figure: Figure, source: &'static str) -> Published {
    Published { stem, figure, image_data: None, source }
}

/// Every PNG of `docs/figures/`, from a quick `cargo xtask reproduce` with seed 0 (the
/// Fashion-MNIST figure from `--image-data fashion`).
pub const PUBLISHED: &[Published] = &[
    entry("fig3_fields", Figure::Fig3, "fig3/fields.png"),
    entry("fig4_spectra", Figure::Fig4, "fig4/spectra.png"),
    entry("fig12_spectra", Figure::Fig12, "fig12/spectra.png"),
    entry("fig9_spectra", Figure::Fig9, "fig9/spectra.png"),
    entry("fig10_spectra", Figure::Fig10, "fig10/spectra.png"),
    entry("fig13_spectra", Figure::Fig13, "fig13/spectra.png"),
    entry("fig14_spectra", Figure::Fig14, "fig14/spectra.png"),
    entry("fig8_condensation", Figure::Fig8, "fig8/condensation.png"),
    entry("neff_participation", Figure::Neff, "neff/participation.png"),
    entry("green_gap_theory", Figure::GreenGap, "green-gap/theory.png"),
    entry("green_gap_theory_manifold", Figure::GreenGap, "green-gap/theory_manifold.png"),
    entry("green_gap_measured", Figure::GreenGap, "green-gap/measured.png"),
    entry("fig5_spectra", Figure::Fig5, "fig5/spectra.png"),
    entry("fig5_transition", Figure::Fig5, "fig5/transition.png"),
    entry("fig5_detection", Figure::Fig5, "fig5/detection.png"),
    entry("fig16_spectra", Figure::Fig16, "fig16/spectra.png"),
    entry("fig15_spectra", Figure::Fig15, "fig15/spectra.png"),
    entry("green_nets_N8", Figure::GreenNets, "green_nets/green/nets_N8.png"),
    entry("green_nets_N1024", Figure::GreenNets, "green_nets/green/nets_N1024.png"),
    entry("vonmises", Figure::VonMises, "vonmises/vonmises.png"),
    entry("digits_detection", Figure::DetectionDigits, "detection_digits/detection.png"),
    entry("image_dimension", Figure::ImageDimension, "image_dimension/image_dimension.png"),
    Published {
        stem: "image_dimension_fashion",
        figure: Figure::ImageDimension,
        image_data: Some("fashion"),
        source: "image_dimension_fashion/image_dimension.png",
    },
];

/// FNV-1a (64 bit) of the settings text, in hex: stable across platforms and versions.
pub fn settings_hash(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

/// The settings text a quick `reproduce` with seed 0 writes for `p`'s figure
/// (`settings.toml`, or `spec.toml` for a trained-network sweep).
pub fn expected_settings(p: &Published) -> Result<String> {
    match p.figure.settings(Scale { full: false, seed: 0 }, p.image_data)? {
        Shipment::Figure(f) => Ok(toml::to_string(&f)?),
        Shipment::Sweep(s) => Ok(toml::to_string(&s)?),
    }
}

/// The settings file a run wrote beside `source` (its figure folder, or the folder above).
fn run_settings(results: &Path, source: &str) -> Result<String> {
    let top = source.split('/').next().unwrap_or(source);
    for name in ["settings.toml", "spec.toml"] {
        let p = results.join(top).join(name);
        if p.exists() {
            return std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()));
        }
    }
    bail!("no settings.toml or spec.toml in {}", results.join(top).display())
}

/// Copies every listed PNG present under `results` into `docs` with its provenance file;
/// returns the stems copied.
pub fn publish(results: &Path, docs: &Path, note: &str) -> Result<Vec<&'static str>> {
    let mut done = Vec::new();
    for p in PUBLISHED {
        let src = results.join(p.source);
        if !src.exists() {
            continue;
        }
        let settings = run_settings(results, p.source)?;
        if settings_hash(&settings) != settings_hash(&expected_settings(p)?) {
            bail!(
                "{}: the run's settings are not the shipped quick settings with seed 0 (a --full run, another seed, or an edited file); docs/figures holds only those",
                p.source
            );
        }
        let dst = docs.join(format!("{}.png", p.stem));
        std::fs::copy(&src, &dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        let header = format!(
            "# {}.png: {note}\n# source: {}\n# settings-hash: {}\n",
            p.stem,
            p.source,
            settings_hash(&settings)
        );
        std::fs::write(docs.join(format!("{}.toml", p.stem)), header + &settings)?;
        done.push(p.stem);
    }
    Ok(done)
}

#[cfg(test)]
/// The hash recorded in a provenance file, and the settings text below its header.
pub fn read_provenance(text: &str) -> Option<(String, String)> {
    let hash = text.lines().find_map(|l| l.strip_prefix("# settings-hash: "))?.trim().to_string();
    let body: String = text.split_inclusive('\n').skip_while(|l| l.starts_with("# ")).collect();
    Some((hash, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/figures")
    }

    /// Every PNG in docs/figures is listed, has its provenance file, and was made with the
    /// settings shipped now: a changed settings file without regenerated figures fails here.
    #[test]
    fn published_figures_match_the_shipped_settings() {
        let mut stale = Vec::new();
        for f in std::fs::read_dir(docs()).unwrap() {
            let path = f.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("png") {
                continue;
            }
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            let p = PUBLISHED.iter().find(|p| p.stem == stem);
            let p = p.unwrap_or_else(|| panic!("docs/figures/{stem}.png is made by no listed run"));
            let text = std::fs::read_to_string(path.with_extension("toml"))
                .unwrap_or_else(|_| panic!("docs/figures/{stem}.png has no {stem}.toml beside it"));
            let (hash, body) = read_provenance(&text).unwrap_or_else(|| panic!("{stem}.toml has no settings-hash"));
            assert_eq!(hash, settings_hash(&body), "{stem}.toml: the hash is not the hash of the settings below it");
            if hash != settings_hash(&expected_settings(p).unwrap()) {
                stale.push(stem);
            }
        }
        assert!(stale.is_empty(), "stale figures (the shipped settings changed since they were made): {stale:?}");
    }

    #[test]
    fn a_changed_setting_changes_the_hash() {
        let p = &PUBLISHED[1];
        let text = expected_settings(p).unwrap();
        assert_eq!(settings_hash(&text), settings_hash(&text.clone()));
        assert_ne!(settings_hash(&text), settings_hash(&text.replacen("seed = 0", "seed = 1", 1)));
        let file = format!("# x.png: note\n# source: s\n# settings-hash: {}\n{text}", settings_hash(&text));
        assert_eq!(read_provenance(&file), Some((settings_hash(&text), text)));
    }

    #[test]
    fn every_listed_figure_has_shipped_settings() {
        for p in PUBLISHED {
            expected_settings(p).unwrap_or_else(|e| panic!("{}: {e:#}", p.stem));
        }
    }
}
