//! Output helpers: one folder per figure with CSV data, JSON config/summary and plots.
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The folder of one figure.
pub struct FigureDir {
    pub dir: PathBuf,
}

/// Checks that a figure's or sweep's `name` is one path component (not empty, `.` or `..`,
/// no separator), so that its results stay inside the results folder.
pub fn check_name(name: &str) -> Result<()> {
    let mut parts = Path::new(name).components();
    let one = matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None));
    anyhow::ensure!(
        one && !name.contains(['/', '\\']),
        "name = {name:?}: a name is one folder name (no '/', '\\', '..' or empty name), the folder of the results under the results folder"
    );
    Ok(())
}

impl FigureDir {
    /// The folder `root/name`, created; `name` must be one path component ([`check_name`]).
    pub fn new(root: &Path, name: &str) -> Result<Self> {
        check_name(name)?;
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
    pub fn write_json<T: Serialize>(&self, file: &str, v: &T) -> Result<()> {
        let p = self.path(file);
        std::fs::write(&p, serde_json::to_string_pretty(v)?).with_context(|| format!("writing {}", p.display()))
    }
    pub fn write_text(&self, file: &str, s: &str) -> Result<()> {
        let p = self.path(file);
        std::fs::write(&p, s).with_context(|| format!("writing {}", p.display()))
    }
    pub fn csv(&self, file: &str, header: &[&str]) -> Result<csv::Writer<std::fs::File>> {
        let p = self.path(file);
        let mut w = csv::Writer::from_path(&p).with_context(|| format!("writing {}", p.display()))?;
        w.write_record(header)?;
        Ok(w)
    }
}

/// A progress bar for `len` steps.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed_precise}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// `n` points log-spaced from `a` to `b`.
pub fn logspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n).map(|i| (a.ln() + (b.ln() - a.ln()) * i as f64 / (n - 1) as f64).exp()).collect()
}

/// Markdown tables of at most `key.len() + group width` columns: the `key` columns (the first
/// of every row) are repeated in front of each group of value columns, so that a wide result
/// reads as several narrow tables. `groups` are (caption, number of value columns) in order.
pub fn split_tables(header: &[&str], key: usize, groups: &[(&str, usize)], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let mut start = key;
    for (caption, width) in groups {
        let cols: Vec<usize> = (0..key).chain(start..(start + width).min(header.len())).collect();
        start += width;
        if !caption.is_empty() {
            out.push_str(&format!("{caption}\n\n"));
        }
        let line = |cells: Vec<&str>| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(cols.iter().map(|&c| header[c]).collect()));
        out.push_str(&format!("|{}\n", "---|".repeat(cols.len())));
        for r in rows {
            out.push_str(&line(cols.iter().map(|&c| r.get(c).map_or("", String::as_str)).collect()));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_tables_repeat_the_key_and_keep_every_value_once() {
        let header = ["N", "seed", "a", "b", "c"];
        let rows = vec![vec!["8".into(), "0".into(), "1".into(), "2".into(), "3".into()]];
        let md = super::split_tables(&header, 2, &[("first", 2), ("second", 1)], &rows);
        assert_eq!(
            md,
            "first\n\n| N | seed | a | b |\n|---|---|---|---|\n| 8 | 0 | 1 | 2 |\n\nsecond\n\n| N | seed | c |\n|---|---|---|\n| 8 | 0 | 3 |\n\n"
        );
    }
}
