//! Outputs: named columns as CSV and `.npy`, JSON summaries, matrices by file name, and the
//! progress bars of long work (drawn on stderr, hidden when it is not a terminal).
use anyhow::{Context, Result};
use faer::{Mat, MatRef};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// Writes `cols` (name, one value per row) to `<dir>/<stem>.csv` (with a header) and to
/// `<dir>/<stem>.npy` (the columns in that order).
pub fn write_columns(dir: &Path, stem: &str, cols: &[(String, Vec<f64>)]) -> Result<()> {
    let rows = cols.first().map_or(0, |c| c.1.len());
    let m = Mat::from_fn(rows, cols.len(), |i, j| cols[j].1[i]);
    let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    geomem_data::write_csv(dir.join(format!("{stem}.csv")), m.as_ref(), Some(&names))?;
    geomem_data::write_npy(dir.join(format!("{stem}.npy")), m.as_ref())?;
    Ok(())
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

/// Writes a matrix to `path`: `.csv` (no header) or `.npy`, by its name.
pub fn write_matrix(path: &Path, m: MatRef<'_, f64>) -> Result<()> {
    match geomem_data::PointsFormat::of(path)? {
        geomem_data::PointsFormat::Csv if path.extension().is_some_and(|e| e == "gz") => {
            anyhow::bail!("{}: write .npy or .csv (not .csv.gz)", path.display())
        }
        geomem_data::PointsFormat::Csv => geomem_data::write_csv(path, m, None)?,
        _ => geomem_data::write_npy(path, m)?,
    }
    Ok(())
}

/// Creates the folder `dir`.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A progress bar of `len` steps.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
        .expect("a valid template")
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(msg.to_string());
    pb
}

/// A spinner for work of unknown length.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Reads points (`.npy`, `.csv`, `.csv.gz`) with the file named in the error.
pub fn read_points(path: &Path) -> Result<Mat<f64>> {
    geomem_data::read_points(path).with_context(|| format!("reading {}", path.display()))
}
