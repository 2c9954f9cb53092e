//! `.npy` and CSV input-output of matrices (points as rows).
use crate::error::{DataError, Result};
use faer::{Mat, MatRef};
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

fn io_err(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io { path: path.to_path_buf(), source }
}
fn fmt_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format { path: path.to_path_buf(), reason: reason.into() }
}

/// Writes `m` as a C-order `float64` `.npy` file of shape `(rows, cols)`.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be written.
pub fn write_npy(path: impl AsRef<Path>, m: MatRef<'_, f64>) -> Result<()> {
    let path = path.as_ref();
    let f = File::create(path).map_err(|e| io_err(path, e))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[m.nrows() as u64, m.ncols() as u64])
        .writer(BufWriter::new(f))
        .begin_nd()
        .map_err(|e| io_err(path, e))?;
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            w.push(&m[(i, j)]).map_err(|e| io_err(path, e))?;
        }
    }
    w.finish().map_err(|e| io_err(path, e))
}

/// Reads a 1-D or 2-D `.npy` array of `float64`, `float32`, `int64`, `int32` or `uint8`
/// (C or Fortran order) into a matrix; a 1-D array becomes one column.
///
/// # Errors
/// [`DataError::Io`] for an unreadable file, [`DataError::Format`] for a corrupt header,
/// an unsupported dtype, more than two dimensions or a truncated body.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Mat<f64>> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_err(path, e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| fmt_err(path, format!("bad .npy header: {e}")))?;
    let shape = npy.shape().to_vec();
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n as usize, 1),
        [r, c] => (*r as usize, *c as usize),
        s => return Err(fmt_err(path, format!("expected a 1-D or 2-D array, found shape {s:?}"))),
    };
    let order = npy.order();
    let descr = npy.dtype().descr();
    let data: Vec<f64> = match descr.trim_matches('\'').trim_start_matches(['<', '>', '|', '=']) {
        "f8" => npy.into_vec::<f64>().map_err(|e| fmt_err(path, e.to_string()))?,
        "f4" => npy.into_vec::<f32>().map_err(|e| fmt_err(path, e.to_string()))?.into_iter().map(f64::from).collect(),
        "i8" => npy.into_vec::<i64>().map_err(|e| fmt_err(path, e.to_string()))?.into_iter().map(|v| v as f64).collect(),
        "i4" => npy.into_vec::<i32>().map_err(|e| fmt_err(path, e.to_string()))?.into_iter().map(f64::from).collect(),
        "u1" => npy.into_vec::<u8>().map_err(|e| fmt_err(path, e.to_string()))?.into_iter().map(f64::from).collect(),
        other => return Err(fmt_err(path, format!("unsupported dtype {other}"))),
    };
    if data.len() != rows * cols {
        return Err(fmt_err(path, format!("truncated: {} values for shape {:?}", data.len(), shape)));
    }
    Ok(match order {
        npyz::Order::C => Mat::from_fn(rows, cols, |i, j| data[i * cols + j]),
        npyz::Order::Fortran => Mat::from_fn(rows, cols, |i, j| data[j * rows + i]),
    })
}

/// Writes `m` as CSV, with an optional header row.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be written.
pub fn write_csv(path: impl AsRef<Path>, m: MatRef<'_, f64>, header: Option<&[&str]>) -> Result<()> {
    let path = path.as_ref();
    let mut w = csv::Writer::from_path(path).map_err(|e| io_err(path, e.into()))?;
    if let Some(h) = header {
        w.write_record(h).map_err(|e| io_err(path, e.into()))?;
    }
    for i in 0..m.nrows() {
        w.write_record((0..m.ncols()).map(|j| format!("{}", m[(i, j)]))).map_err(|e| io_err(path, e.into()))?;
    }
    w.flush().map_err(|e| io_err(path, e))
}

/// Reads a numeric CSV file (optionally gzip-compressed when the name ends in `.gz`) into a
/// matrix. A first row that does not parse as numbers is taken as a header and skipped.
///
/// # Errors
/// [`DataError::Io`] for an unreadable file; [`DataError::Format`] for a non-numeric field,
/// rows of unequal length or no data rows.
pub fn read_csv(path: impl AsRef<Path>) -> Result<Mat<f64>> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(reader);
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (line, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| fmt_err(path, e.to_string()))?;
        let parsed: std::result::Result<Vec<f64>, _> = rec.iter().map(|s| s.trim().parse::<f64>()).collect();
        match parsed {
            Ok(v) => rows.push(v),
            Err(_) if line == 0 => continue,
            Err(e) => return Err(fmt_err(path, format!("line {}: {e}", line + 1))),
        }
    }
    let cols = rows.first().map(Vec::len).ok_or(DataError::EmptyDataset)?;
    if let Some(bad) = rows.iter().position(|r| r.len() != cols) {
        return Err(fmt_err(path, format!("row {} has {} fields, expected {cols}", bad + 1, rows[bad].len())));
    }
    Ok(Mat::from_fn(rows.len(), cols, |i, j| rows[i][j]))
}
