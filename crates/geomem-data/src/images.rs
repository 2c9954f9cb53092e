//! Image sets: MNIST and Fashion-MNIST from their IDX files (raw or gzip), CIFAR-10 from
//! its binary batches, and the embedded UCI 8×8 digits, all as rows of `c·h·w` pixels in
//! channel-major (`C, H, W`) order scaled to `[-1, 1]`.
//!
//! Nothing downloads: every reader takes local paths. The readers never allocate what a
//! header merely claims: the pixels are read first (their count bounded by the header, a
//! gzip stream decompressed only that far) and checked against the header before the
//! matrix is built; a wrong magic number, a truncated or over-long file, a label out of
//! range each are a [`DataError`].

use crate::error::{DataError, Result};
use faer::Mat;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Images as rows of a matrix, with their labels and shape.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// `n × (channels·height·width)`, channel-major, scaled to `[-1, 1]`.
    pub images: Mat<f64>,
    /// Class of each image.
    pub labels: Vec<u8>,
    /// Channels (1 for grey images, 3 for CIFAR-10).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Where the images come from (`"uci-digits"`, a file path, …).
    pub source: String,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.nrows()
    }
    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.images.nrows() == 0
    }
    /// Pixels per image, `d = c·h·w`.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// The images of rows `idx`, in that order.
    ///
    /// # Errors
    /// [`DataError::SubsetTooLarge`] for an index past the last image.
    pub fn rows(&self, idx: &[usize]) -> Result<Mat<f64>> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::SubsetTooLarge { requested: bad + 1, available: self.len() });
        }
        Ok(Mat::from_fn(idx.len(), self.dim(), |i, j| self.images[(idx[i], j)]))
    }
    /// Every image shrunk by `factor` in height and width, each new pixel the mean of a
    /// `factor × factor` block (2 turns 28×28 Fashion-MNIST into 14×14, `d` 784 → 196).
    /// Pixels stay in `[-1, 1]`; labels and channels are kept; the source says `pooled k×k`.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] for `factor = 0` or one that divides neither side.
    pub fn mean_pool(&self, factor: usize) -> Result<Self> {
        let ok = factor >= 1 && self.height.is_multiple_of(factor) && self.width.is_multiple_of(factor);
        crate::error::param("factor", factor, ok, "must be >= 1 and divide the image height and width")?;
        let (h, w) = (self.height / factor, self.width / factor);
        let (c, f2) = (self.channels, (factor * factor) as f64);
        let images = Mat::from_fn(self.len(), c * h * w, |i, j| {
            let (ch, y, x) = (j / (h * w), (j / w) % h, j % w);
            let mut sum = 0.0;
            for dy in 0..factor {
                for dx in 0..factor {
                    sum += self.images
                        [(i, ch * self.height * self.width + (y * factor + dy) * self.width + x * factor + dx)];
                }
            }
            sum / f2
        });
        let source = format!("{} (mean-pooled {factor}×{factor})", self.source);
        Ok(Self { images, labels: self.labels.clone(), channels: c, height: h, width: w, source })
    }
    /// The embedded UCI 8×8 digits (1797 grey 8×8 images) as an image set.
    ///
    /// # Errors
    /// As [`crate::digits`].
    pub fn digits() -> Result<Self> {
        let d = crate::digits()?;
        Ok(Self { images: d.images, labels: d.labels, channels: 1, height: 8, width: 8, source: "uci-digits".into() })
    }
}

fn fmt_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format { path: path.to_path_buf(), reason: reason.into() }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

/// Largest image file accepted after decompression (1 GiB, the cap of `.csv.gz` too;
/// MNIST's training images take 47 MB, CIFAR-10's five batches 154 MB).
const MAX_BYTES: u64 = crate::io::MAX_DECOMPRESSED;

/// The bytes of a raw or gzip file (recognised by its first two bytes `1f 8b`), reading at
/// most `MAX_BYTES + 1` decompressed bytes.
fn maybe_gunzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if bytes.len() < 2 || bytes[..2] != [0x1f, 0x8b] {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(MAX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| fmt_err(path, format!("bad gzip stream: {e}")))?;
    if out.len() as u64 > MAX_BYTES {
        return Err(fmt_err(path, "decompresses to more than 1 GiB"));
    }
    Ok(out)
}

/// An IDX array of unsigned bytes (`magic = 00 00 08 ndims`, big-endian `u32` dimensions)
/// with the number of dimensions `ndims` expected; returns the dimensions and the body (a
/// view of `bytes`, not a copy).
fn parse_idx<'a>(bytes: &'a [u8], ndims: usize, path: &Path) -> Result<(Vec<usize>, &'a [u8])> {
    let head = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(fmt_err(path, format!("{} bytes, shorter than the IDX magic number", bytes.len())));
    }
    if bytes[..3] != [0, 0, 8] || usize::from(bytes[3]) != ndims {
        return Err(fmt_err(
            path,
            format!(
                "magic number {:02x}{:02x}{:02x}{:02x}, expected 000008{ndims:02x}",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes.len() < head {
        return Err(fmt_err(path, format!("{} bytes, shorter than the {head}-byte IDX header", bytes.len())));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|k| u32::from_be_bytes([bytes[4 + 4 * k], bytes[5 + 4 * k], bytes[6 + 4 * k], bytes[7 + 4 * k]]) as usize)
        .collect();
    let need = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
    let got = (bytes.len() - head) as u64;
    if need != got {
        return Err(DataError::LengthMismatch { path: path.to_path_buf(), expected_bytes: need, got_bytes: got });
    }
    if need == 0 {
        return Err(DataError::EmptyDataset);
    }
    Ok((dims, &bytes[head..]))
}

/// Reads MNIST-format images (IDX, `magic 0x00000803`, `n × h × w` bytes), raw or gzip,
/// scaled from `0..=255` to `[-1, 1]`. Returns the images and `(h, w)`.
///
/// # Errors
/// [`DataError::Io`], [`DataError::Format`] (bad magic number, bad gzip, too large),
/// [`DataError::LengthMismatch`] (truncated or over-long), [`DataError::EmptyDataset`].
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(Mat<f64>, usize, usize)> {
    let (body, n, h, w) = read_idx_image_bytes(path)?;
    let d = h * w;
    Ok((Mat::from_fn(n, d, |i, j| f64::from(body[i * d + j]) / 127.5 - 1.0), h, w))
}

/// The pixel bytes of MNIST-format images as stored (image after image, `h × w` bytes each,
/// row by row), raw or gzip, with `(n, h, w)`: for callers that scale them themselves
/// without an intermediate `f64` matrix.
///
/// # Errors
/// As [`read_idx_images`].
pub fn read_idx_image_bytes(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize, usize)> {
    let path = path.as_ref();
    let mut bytes = maybe_gunzip(read_file(path)?, path)?;
    let (dims, body) = parse_idx(&bytes, 3, path)?;
    let (n, h, w, head) = (dims[0], dims[1], dims[2], bytes.len() - body.len());
    bytes.drain(..head);
    Ok((bytes, n, h, w))
}

/// Reads MNIST-format labels (IDX, `magic 0x00000801`), raw or gzip.
///
/// # Errors
/// As [`read_idx_images`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = maybe_gunzip(read_file(path)?, path)?;
    Ok(parse_idx(&bytes, 1, path)?.1.to_vec())
}

/// Which part of a dataset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training files (`train-*`, `data_batch_1..5.bin`).
    Train,
    /// The test files (`t10k-*`, `test_batch.bin`).
    Test,
}

/// The first of `names` (and their `.gz` forms) that exists in `dir`.
fn find_in(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    for n in names {
        for cand in [dir.join(n), dir.join(format!("{n}.gz"))] {
            if cand.is_file() {
                return Ok(cand);
            }
        }
    }
    Err(fmt_err(dir, format!("none of {names:?} (or .gz) in this directory")))
}

/// Reads MNIST or Fashion-MNIST (same file names and format) from a directory holding
/// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (or the `t10k-` pair), raw or
/// gzip; the dotted names `train-images.idx3-ubyte` are found too.
///
/// # Errors
/// As [`read_idx_images`]; [`DataError::Format`] when the files are missing or the label
/// count differs from the image count or a label exceeds 9.
pub fn read_mnist(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let dir = dir.as_ref();
    let p = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ipath = find_in(dir, &[&format!("{p}-images-idx3-ubyte"), &format!("{p}-images.idx3-ubyte")])?;
    let lpath = find_in(dir, &[&format!("{p}-labels-idx1-ubyte"), &format!("{p}-labels.idx1-ubyte")])?;
    let (images, height, width) = read_idx_images(&ipath)?;
    let labels = read_idx_labels(&lpath)?;
    if labels.len() != images.nrows() {
        return Err(fmt_err(&lpath, format!("{} labels for {} images", labels.len(), images.nrows())));
    }
    if let Some(l) = labels.iter().find(|&&l| l > 9) {
        return Err(fmt_err(&lpath, format!("label {l} > 9")));
    }
    Ok(ImageSet { images, labels, channels: 1, height, width, source: ipath.display().to_string() })
}

/// Where Debian's package `dataset-fashion-mnist` installs Fashion-MNIST's four IDX gz files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Reads Fashion-MNIST from the folder of Debian's package `dataset-fashion-mnist`
/// ([`FASHION_MNIST_DIR`]; `apt-get install dataset-fashion-mnist`, MIT licence): 60 000
/// training or 10 000 test images, 28×28, in `[-1, 1]`, as [`read_mnist`] reads them.
///
/// # Errors
/// [`DataError::NotInstalled`] when the folder does not exist (the message names the package
/// and the install command); otherwise as [`read_mnist`].
pub fn read_fashion_mnist(split: Split) -> Result<ImageSet> {
    let dir = Path::new(FASHION_MNIST_DIR);
    if !dir.is_dir() {
        return Err(DataError::NotInstalled {
            what: "Fashion-MNIST",
            path: dir.to_path_buf(),
            package: "dataset-fashion-mnist",
            install: "apt-get install dataset-fashion-mnist",
        });
    }
    read_mnist(dir, split)
}

/// Bytes of one CIFAR-10 record: a label byte and 3 × 32 × 32 pixels (channel-major).
const CIFAR_RECORD: usize = 1 + 3 * 1024;

/// Parses one CIFAR-10 binary batch (`k` records of [`CIFAR_RECORD`] bytes) into labels and
/// pixel bytes.
fn parse_cifar(bytes: &[u8], path: &Path, labels: &mut Vec<u8>, pixels: &mut Vec<u8>) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(fmt_err(path, format!("{} bytes, not a positive multiple of the 3073-byte record", bytes.len())));
    }
    for (r, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(fmt_err(path, format!("record {r}: label {} > 9", rec[0])));
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// Reads CIFAR-10 from the directory of its binary version (`cifar-10-batches-bin`):
/// `data_batch_1.bin` … `data_batch_5.bin` for [`Split::Train`], `test_batch.bin` for
/// [`Split::Test`]; 32×32 RGB images, channel-major, scaled to `[-1, 1]`.
///
/// # Errors
/// [`DataError::Io`] (a missing batch), [`DataError::Format`] (a length that is not a whole
/// number of records, a label above 9, a batch that decompresses past 1 GiB).
pub fn read_cifar10(dir: impl AsRef<Path>, split: Split) -> Result<ImageSet> {
    let dir = dir.as_ref();
    let files: Vec<PathBuf> = match split {
        Split::Train => (1..=5).map(|k| dir.join(format!("data_batch_{k}.bin"))).collect(),
        Split::Test => vec![dir.join("test_batch.bin")],
    };
    let (mut labels, mut pixels) = (Vec::new(), Vec::new());
    for f in &files {
        let bytes = maybe_gunzip(read_file(f)?, f)?;
        parse_cifar(&bytes, f, &mut labels, &mut pixels)?;
    }
    let d = 3 * 1024;
    let images = Mat::from_fn(labels.len(), d, |i, j| f64::from(pixels[i * d + j]) / 127.5 - 1.0);
    Ok(ImageSet { images, labels, channels: 3, height: 32, width: 32, source: dir.display().to_string() })
}
