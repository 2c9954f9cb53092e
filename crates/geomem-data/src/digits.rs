//! The UCI 8×8 handwritten digits (1797 images), embedded in the crate: the real-image data
//! set that every machine has. Attribution: `data/uci-digits/README.md` (E. Alpaydin and
//! C. Kaynak, UCI Machine Learning Repository, CC BY 4.0).

use crate::error::{DataError, Result};
use crate::io::parse_csv;
use faer::Mat;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/uci-digits/digits.csv.gz");

/// The embedded digits: 1797 rows of 64 pixels scaled from `0..=16` to `[-1, 1]`, and the
/// class labels `0..=9`.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Images as rows (row-major 8×8 pixels), in `[-1, 1]`.
    pub images: Mat<f64>,
    /// Class of each image.
    pub labels: Vec<u8>,
}

/// Loads the embedded UCI digits.
///
/// # Errors
/// [`DataError::Format`] if the embedded file is not what it should be (it is checked by the
/// tests: 1797 rows of 65 integers).
pub fn digits() -> Result<Digits> {
    let raw = parse_csv(flate2::read::GzDecoder::new(DIGITS_CSV_GZ))?;
    let bad = |reason: String| DataError::Format { path: "embedded uci-digits".into(), reason };
    if raw.ncols() != 65 || raw.nrows() != 1797 {
        return Err(bad(format!("{} × {}, expected 1797 × 65", raw.nrows(), raw.ncols())));
    }
    let mut labels = Vec::with_capacity(1797);
    for i in 0..1797 {
        let l = raw[(i, 64)];
        if !(0.0..=9.0).contains(&l) || l.fract() != 0.0 {
            return Err(bad(format!("label {l} in row {i}")));
        }
        labels.push(l as u8);
    }
    let images = Mat::from_fn(1797, 64, |i, j| raw[(i, j)] / 8.0 - 1.0);
    Ok(Digits { images, labels })
}
