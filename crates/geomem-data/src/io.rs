//! `.npy` and CSV input-output of matrices (points as rows).
//!
//! Readers never panic and never allocate what a header merely claims: every malformed
//! input is a typed [`DataError`] (`tests/malformed.rs` holds one case per kind).
use crate::error::{DataError, Result};
use faer::{Mat, MatRef};
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

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
/// (either byte order, C or Fortran order) into a matrix; a 1-D array becomes one column.
///
/// The header is parsed here, checked against the file length before anything is
/// allocated, and every value must be finite: a hostile header (a shape of `2^32 × 2^32`,
/// say) is an error, never an allocation.
///
/// # Errors
/// [`DataError::Io`] for an unreadable file; [`DataError::NpyHeader`] for a bad magic
/// string, version or header; [`DataError::UnsupportedDtype`]; [`DataError::UnsupportedShape`]
/// for 0-d or 3-d and higher arrays; [`DataError::ShapeOverflow`] when the shape's size
/// overflows; [`DataError::LengthMismatch`] when the body is shorter or longer than the
/// shape says; [`DataError::EmptyDataset`] for zero rows or columns;
/// [`DataError::NonFinite`] for a NaN or infinite value.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Mat<f64>> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_err(path, e))?;
    parse_npy(&bytes).map_err(|e| e.at(path))
}

/// Parses the bytes of a `.npy` file (as [`read_npy`]; errors carry an empty path).
///
/// # Errors
/// As [`read_npy`].
pub fn parse_npy(bytes: &[u8]) -> Result<Mat<f64>> {
    let header = crate::npy::Header::parse(bytes)?;
    let (rows, cols) = match header.shape.as_slice() {
        [n] => (*n, 1),
        [r, c] => (*r, *c),
        _ => return Err(DataError::UnsupportedShape { path: PathBuf::new(), shape: header.shape.clone() }),
    };
    let overflow = || DataError::ShapeOverflow { path: PathBuf::new(), shape: header.shape.clone() };
    let count = rows.checked_mul(cols).ok_or_else(overflow)?;
    let expected = count.checked_mul(header.dtype.size as u64).ok_or_else(overflow)?;
    let body = &bytes[header.body_start..];
    if body.len() as u64 != expected {
        return Err(DataError::LengthMismatch {
            path: PathBuf::new(),
            expected_bytes: expected,
            got_bytes: body.len() as u64,
        });
    }
    if count == 0 {
        return Err(DataError::EmptyDataset);
    }
    let (rows, cols) = (rows as usize, cols as usize);
    let values: Vec<f64> = body.chunks_exact(header.dtype.size).map(|c| header.dtype.decode(c)).collect();
    let at = |i: usize, j: usize| if header.fortran_order { values[j * rows + i] } else { values[i * cols + j] };
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        let (row, col) = if header.fortran_order { (k % rows, k / rows) } else { (k / cols, k % cols) };
        return Err(DataError::NonFinite { path: PathBuf::new(), row, col });
    }
    Ok(Mat::from_fn(rows, cols, at))
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

/// Largest decompressed size of a gzip file (1 GiB), the same cap for images and for
/// `.csv.gz`: a small file that claims or inflates to more is an error, not an allocation.
pub(crate) const MAX_DECOMPRESSED: u64 = 1 << 30;

/// A reader that fails once more than `left` bytes have come through it (a gzip bomb stops
/// at the cap instead of filling memory).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "decompresses to more than 1 GiB"))?;
        Ok(n)
    }
}

/// Reads a numeric CSV file (optionally gzip-compressed when the name ends in `.gz`, at
/// most 1 GiB once decompressed, the cap of the image readers) into a matrix. A first row
/// that does not parse as numbers is taken as a header and skipped.
///
/// # Errors
/// [`DataError::Io`] for an unreadable file; [`DataError::NotNumeric`] for a field that is
/// not a number (after the header); [`DataError::RaggedRow`] for rows of unequal length;
/// [`DataError::NonFinite`] for `nan` or `inf`; [`DataError::EmptyDataset`] for no data
/// rows; [`DataError::Format`] for a file the CSV or gzip decoder rejects, or a `.gz` file
/// that decompresses to more than 1 GiB.
pub fn read_csv(path: impl AsRef<Path>) -> Result<Mat<f64>> {
    read_csv_capped(path.as_ref(), MAX_DECOMPRESSED)
}

fn read_csv_capped(path: &Path, cap: u64) -> Result<Mat<f64>> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(Capped { inner: flate2::read::GzDecoder::new(BufReader::new(f)), left: cap })
    } else {
        Box::new(BufReader::new(f))
    };
    parse_csv(reader).map_err(|e| e.at(path))
}

/// The file formats [`read_points`] knows, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PointsFormat {
    /// A `.npy` array ([`read_npy`]).
    Npy,
    /// A `.csv` or `.csv.gz` table ([`read_csv`]).
    Csv,
}

impl PointsFormat {
    /// The format of a file from its name (`.npy`, `.csv`, `.csv.gz`; any letter case).
    ///
    /// # Errors
    /// [`DataError::UnknownFormat`] for any other name.
    pub fn of(path: &Path) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".npy") {
            Ok(Self::Npy)
        } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            Ok(Self::Csv)
        } else {
            Err(DataError::UnknownFormat { path: path.to_path_buf() })
        }
    }
}

/// Reads points, one per row, from a `.npy` (float64, float32 or integer; [`read_npy`]) or
/// a `.csv` / `.csv.gz` file ([`read_csv`]), the reader chosen by the file name.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("geomem-doc-points-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("points.csv");
/// std::fs::write(&path, "x,y\n1,2\n3,4\n").unwrap();
/// let x = geomem_data::read_points(&path).unwrap();
/// assert_eq!((x.nrows(), x.ncols(), x[(1, 0)]), (2, 2, 3.0));
/// assert!(geomem_data::read_points(dir.join("points.txt")).is_err());
/// ```
///
/// # Errors
/// [`DataError::UnknownFormat`] for another file name, then those of [`read_npy`] or
/// [`read_csv`].
pub fn read_points(path: impl AsRef<Path>) -> Result<Mat<f64>> {
    let path = path.as_ref();
    match PointsFormat::of(path)? {
        PointsFormat::Npy => read_npy(path),
        PointsFormat::Csv => read_csv(path),
    }
}

/// Parses CSV text from any reader (as [`read_csv`]; errors carry an empty path).
///
/// # Errors
/// As [`read_csv`].
pub fn parse_csv(reader: impl Read) -> Result<Mat<f64>> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (line, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| fmt_err(Path::new(""), e.to_string()))?;
        let parsed: std::result::Result<Vec<f64>, usize> =
            rec.iter().enumerate().map(|(k, s)| s.trim().parse::<f64>().map_err(|_| k)).collect();
        match parsed {
            Ok(v) => rows.push(v),
            Err(_) if line == 0 => continue,
            Err(k) => {
                let field = rec.get(k).unwrap_or_default().chars().take(40).collect();
                return Err(DataError::NotNumeric { path: PathBuf::new(), line: line + 1, field });
            }
        }
        let (row, last) = (rows.len() - 1, &rows[rows.len() - 1]);
        if let Some(col) = last.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NonFinite { path: PathBuf::new(), row, col });
        }
        if last.len() != rows[0].len() {
            return Err(DataError::RaggedRow {
                path: PathBuf::new(),
                line: line + 1,
                expected: rows[0].len(),
                got: last.len(),
            });
        }
    }
    let cols = rows.first().map(Vec::len).ok_or(DataError::EmptyDataset)?;
    if cols == 0 {
        return Err(DataError::EmptyDataset);
    }
    Ok(Mat::from_fn(rows.len(), cols, |i, j| rows[i][j]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A `.csv.gz` that inflates past the cap is a `Format` error naming the cap, read
    /// through the same path as a real file (a 1 GiB test file would be too slow: the cap is
    /// lowered to 1 kB here); the same file under the cap reads.
    #[test]
    fn gzip_csv_past_the_cap_is_an_error() {
        let dir = std::env::temp_dir().join(format!("geomem-data-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..500 {
            writeln!(gz, "{i},0").unwrap();
        }
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        match read_csv_capped(&path, 1000) {
            Err(DataError::Format { reason, .. }) => assert!(reason.contains("1 GiB"), "{reason}"),
            other => panic!("expected a Format error, got {other:?}"),
        }
        assert_eq!(read_csv_capped(&path, 1 << 20).unwrap().nrows(), 500);
        assert_eq!(read_points(&path).unwrap().nrows(), 500);
    }
}
