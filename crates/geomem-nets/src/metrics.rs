//! The metrics of a run directory: `metrics.csv`, one row per logged step
//! (`step,loss,loss_ema,steps_per_sec`), written by the training loop and read back by
//! [`read_metrics`], the one parser of the file (resumption, `RunDir`, the CLI and the
//! figures all read it here).

use crate::error::{NetsError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File name of the metrics inside a run directory.
pub const METRICS_FILE: &str = "metrics.csv";

/// The header of a single run's metrics (a stacked run writes one loss column per net).
const HEAD: [&str; 4] = ["step", "loss", "loss_ema", "steps_per_sec"];

/// One row of the metrics CSV.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LogRow {
    /// Steps done.
    pub step: u64,
    /// Loss of the last batch.
    pub loss: f64,
    /// Exponential moving average (0.9 per logged row) of the logged losses.
    pub loss_ema: f64,
    /// Steps per second since the previous row.
    pub steps_per_sec: f64,
}

/// Reads the metrics of a single (not stacked) run: one [`LogRow`] per data row, in file
/// order. A last line without its newline (a run killed while writing it) is left out;
/// every other line must be a complete row.
///
/// # Errors
/// [`NetsError::Io`] when unreadable; [`NetsError::Metrics`] for another header (a stacked
/// run's, say) or a row that does not parse, with its line number.
pub fn read_metrics(path: &Path) -> Result<Vec<LogRow>> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
    let bad = |line: usize, reason: String| NetsError::Metrics { path: path.to_path_buf(), line, reason };
    let mut lines = text.split_inclusive('\n').enumerate();
    let head = lines.next().map(|(_, l)| l.trim_end()).unwrap_or_default();
    if head.split(',').collect::<Vec<_>>() != HEAD {
        return Err(bad(1, format!("header '{head}', expected '{}'", HEAD.join(","))));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        match parse_row(line.trim_end()) {
            Ok(row) => rows.push(row),
            Err(_) if !line.ends_with('\n') => break,
            Err(reason) => return Err(bad(i + 1, reason)),
        }
    }
    Ok(rows)
}

/// One data row of a metrics file.
fn parse_row(line: &str) -> std::result::Result<LogRow, String> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != HEAD.len() {
        return Err(format!("'{line}' has {} fields, expected {}", f.len(), HEAD.len()));
    }
    let num = |k: usize| f[k].trim().parse::<f64>().map_err(|_| format!("{} '{}' is not a number", HEAD[k], f[k]));
    let step = f[0].trim().parse::<u64>().map_err(|_| format!("step '{}' is not a whole number", f[0]))?;
    Ok(LogRow { step, loss: num(1)?, loss_ema: num(2)?, steps_per_sec: num(3)? })
}

/// The smoothed loss and the timing of the metric rows.
pub(crate) struct LogState {
    /// Exponential moving average of the logged losses; `None` before the first row.
    pub(crate) loss_ema: Option<f64>,
    pub(crate) last: Instant,
    pub(crate) last_step: u64,
    /// Last step whose loss (and, at checkpoints, weights) were seen finite.
    pub(crate) last_finite: u64,
}

impl LogState {
    pub(crate) fn row(&mut self, step: u64, loss: f64) -> LogRow {
        let ema = self.loss_ema.map_or(loss, |e| 0.9 * e + 0.1 * loss);
        self.loss_ema = Some(ema);
        let rate = (step - self.last_step) as f64 / self.last.elapsed().as_secs_f64().max(1e-9);
        (self.last, self.last_step) = (Instant::now(), step);
        LogRow { step, loss, loss_ema: ema, steps_per_sec: rate }
    }
}

/// The `loss_ema` of the last row at or before `step` of a metrics file (`None` without one).
pub(crate) fn loss_ema_at(path: &Path, step: u64) -> Option<f64> {
    read_metrics(path).ok()?.iter().rev().find(|r| r.step <= step).map(|r| r.loss_ema)
}

/// Opens `metrics.csv` for appending, keeping the complete rows (as many fields as `head`)
/// up to `step` and dropping those past it (written after the checkpoint a resumed run
/// starts from) or cut short by a kill.
pub(crate) fn open_metrics(path: &Path, step: u64, head: &str) -> Result<(std::io::BufWriter<std::fs::File>, PathBuf)> {
    let fields = head.split(',').count();
    let complete = |l: &str| l.split(',').count() == fields && l.split(',').all(|f| f.trim().parse::<f64>().is_ok());
    let keep: Vec<String> = match std::fs::read_to_string(path) {
        Ok(s) => s
            .lines()
            .skip(1)
            .filter(|l| complete(l))
            .filter(|l| l.split(',').next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|k| k <= step))
            .map(String::from)
            .collect(),
        Err(_) => Vec::new(),
    };
    let f = std::fs::File::create(path).map_err(crate::error::io(path))?;
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "{head}").map_err(crate::error::io(path))?;
    for l in keep {
        writeln!(w, "{l}").map_err(crate::error::io(path))?;
    }
    Ok((w, path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("geomem-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Rows read back as written; a last line cut short is left out; a bad middle row, a
    /// stacked run's header or a missing file is an error naming the line.
    #[test]
    fn metrics_parse_and_errors() {
        let ok = file("ok.csv", "step,loss,loss_ema,steps_per_sec\n10,0.5,0.5,100\n20,0.25,0.475,99.5\n30,0.");
        let rows = read_metrics(&ok).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], LogRow { step: 20, loss: 0.25, loss_ema: 0.475, steps_per_sec: 99.5 });
        assert_eq!(loss_ema_at(&ok, 15), Some(0.5));
        assert_eq!(loss_ema_at(&ok, 5), None);
        let bad = file("bad.csv", "step,loss,loss_ema,steps_per_sec\n10,0.5,0.5,100\n20,x,0.4,9\n30,1,1,1\n");
        match read_metrics(&bad) {
            Err(NetsError::Metrics { line, reason, .. }) => assert!(line == 3 && reason.contains("loss"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let stacked = file("stacked.csv", "step,loss_0,loss_1,net_steps_per_sec\n1,1,1,1\n");
        assert!(matches!(read_metrics(&stacked), Err(NetsError::Metrics { line: 1, .. })));
        let short = file("short.csv", "step,loss,loss_ema,steps_per_sec\n10,0.5\n20,1,1,1\n");
        assert!(matches!(read_metrics(&short), Err(NetsError::Metrics { line: 2, .. })));
        assert!(matches!(read_metrics(&ok.with_file_name("none.csv")), Err(NetsError::Io { .. })));
    }

    /// Reopening for a resume at step 20 keeps the complete rows up to 20 only.
    #[test]
    fn reopening_drops_later_and_partial_rows() {
        let p = file("reopen.csv", "step,loss,loss_ema,steps_per_sec\n10,1,1,1\n20,2,2,2\n20,2\n30,3,3,3\n");
        drop(open_metrics(&p, 20, "step,loss,loss_ema,steps_per_sec").unwrap());
        let rows = read_metrics(&p).unwrap();
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), vec![10, 20]);
    }
}
