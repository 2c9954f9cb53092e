//! Image readers: IDX (raw and gzip) and CIFAR-10 batches written here byte by byte read back
//! to the pixels that were written; every malformed file is a typed error; random bytes never
//! panic; nested splits are nested and disjoint from the held-out points.
use geomem_data::{read_cifar10, read_idx_images, read_mnist, DataError, ImageSet, NestedSplit, Split};
use proptest::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-images-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx(ndims: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, ndims];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Three 2×3 images with pixels `0, 1, …, 17` and labels 7, 0, 9.
fn write_mnist(dir: &Path, gzip: bool) {
    let body: Vec<u8> = (0..18).collect();
    let (i, l) = (idx(3, &[3, 2, 3], &body), idx(1, &[3], &[7, 0, 9]));
    let (i, l, s) = if gzip { (gz(&i), gz(&l), ".gz") } else { (i, l, "") };
    std::fs::write(dir.join(format!("train-images-idx3-ubyte{s}")), i).unwrap();
    std::fs::write(dir.join(format!("train-labels-idx1-ubyte{s}")), l).unwrap();
}

#[test]
fn idx_raw_and_gzip_read_the_written_pixels() {
    for gzip in [false, true] {
        let dir = tmpdir(&format!("mnist-{gzip}"));
        write_mnist(&dir, gzip);
        let set = read_mnist(&dir, Split::Train).unwrap();
        assert_eq!((set.len(), set.height, set.width, set.channels, set.dim()), (3, 2, 3, 1, 6));
        assert_eq!(set.labels, vec![7, 0, 9]);
        for i in 0..3 {
            for j in 0..6 {
                let want = (6 * i + j) as f64 / 127.5 - 1.0;
                assert_eq!(set.images[(i, j)], want);
            }
        }
        assert!(read_mnist(&dir, Split::Test).is_err(), "no t10k files: an error");
    }
}

#[test]
fn pixel_range_is_minus_one_to_one() {
    let dir = tmpdir("range");
    std::fs::write(dir.join("a"), idx(3, &[1, 1, 2], &[0, 255])).unwrap();
    let (m, _, _) = read_idx_images(dir.join("a")).unwrap();
    assert_eq!((m[(0, 0)], m[(0, 1)]), (-1.0, 1.0));
}

fn format_err(r: Result<impl std::fmt::Debug, DataError>) -> String {
    match r {
        Err(DataError::Format { reason, .. }) => reason,
        other => panic!("expected Format, got {other:?}"),
    }
}

#[test]
fn malformed_idx_files_are_errors() {
    let dir = tmpdir("bad-idx");
    let p = dir.join("x");
    // Wrong magic: the labels' magic where images are expected.
    std::fs::write(&p, idx(1, &[4], &[0; 4])).unwrap();
    assert!(format_err(read_idx_images(&p)).contains("magic"));
    // Wrong element type (0x0d = float).
    let mut f = idx(3, &[1, 1, 1], &[0]);
    f[2] = 0x0d;
    std::fs::write(&p, f).unwrap();
    assert!(format_err(read_idx_images(&p)).contains("magic"));
    // Truncated, over-long, header only, a hostile 2^32-ish shape.
    for (dims, body) in [([2u32, 2, 2], 7usize), ([2, 2, 2], 9), ([1, 1, 1], 0), ([u32::MAX, u32::MAX, u32::MAX], 3)] {
        std::fs::write(&p, idx(3, &dims, &vec![1; body])).unwrap();
        assert!(matches!(read_idx_images(&p), Err(DataError::LengthMismatch { .. })), "{dims:?} {body}");
    }
    std::fs::write(&p, [0u8, 0, 8]).unwrap();
    assert!(format_err(read_idx_images(&p)).contains("shorter"));
    // Empty set.
    std::fs::write(&p, idx(3, &[0, 28, 28], &[])).unwrap();
    assert!(matches!(read_idx_images(&p), Err(DataError::EmptyDataset)));
    // Corrupt gzip.
    let mut g = gz(&idx(3, &[1, 2, 2], &[1; 4]));
    let n = g.len();
    g.truncate(n - 12);
    std::fs::write(&p, g).unwrap();
    assert!(format_err(read_idx_images(&p)).contains("gzip"));
    assert!(matches!(read_idx_images(dir.join("missing")), Err(DataError::Io { .. })));
}

#[test]
fn mnist_label_mismatch_and_bad_labels_are_errors() {
    let dir = tmpdir("bad-labels");
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx(3, &[2, 1, 1], &[0, 1])).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(1, &[3], &[0, 1, 2])).unwrap();
    assert!(format_err(read_mnist(&dir, Split::Train)).contains("3 labels for 2 images"));
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(1, &[2], &[0, 10])).unwrap();
    assert!(format_err(read_mnist(&dir, Split::Train)).contains("label 10"));
}

fn cifar_record(label: u8, fill: impl Fn(usize) -> u8) -> Vec<u8> {
    std::iter::once(label).chain((0..3072).map(fill)).collect()
}

#[test]
fn cifar_batches_read_in_order_channel_major() {
    let dir = tmpdir("cifar");
    for k in 1..=5u8 {
        let mut b = cifar_record(k, |j| (j % 251) as u8);
        b.extend(cifar_record(9 - k, |j| if j < 1024 { k } else { 255 }));
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), b).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), gz(&cifar_record(3, |_| 0))).unwrap();
    let train = read_cifar10(&dir, Split::Train).unwrap();
    assert_eq!((train.len(), train.dim(), train.channels), (10, 3072, 3));
    assert_eq!(train.labels, vec![1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    assert_eq!(train.images[(0, 300)], (300 % 251) as f64 / 127.5 - 1.0);
    assert_eq!(train.images[(3, 5)], 2.0 / 127.5 - 1.0, "red channel of image 3");
    assert_eq!(train.images[(3, 1024)], 1.0, "green channel first");
    let test = read_cifar10(&dir, Split::Test).unwrap();
    assert_eq!((test.len(), test.images[(0, 0)]), (1, -1.0));
}

#[test]
fn malformed_cifar_batches_are_errors() {
    let dir = tmpdir("cifar-bad");
    let p = dir.join("test_batch.bin");
    std::fs::write(&p, vec![0u8; 3072]).unwrap();
    assert!(format_err(read_cifar10(&dir, Split::Test)).contains("3073"));
    std::fs::write(&p, cifar_record(10, |_| 0)).unwrap();
    assert!(format_err(read_cifar10(&dir, Split::Test)).contains("label 10"));
    std::fs::write(&p, []).unwrap();
    assert!(format_err(read_cifar10(&dir, Split::Test)).contains("3073"));
    assert!(matches!(read_cifar10(&dir, Split::Train), Err(DataError::Io { .. })), "missing batches");
}

#[test]
fn embedded_digits_as_an_image_set() {
    let d = ImageSet::digits().unwrap();
    assert_eq!((d.len(), d.height, d.width, d.dim()), (1797, 8, 8, 64));
    let rows = d.rows(&[5, 0]).unwrap();
    assert_eq!(rows[(1, 10)], d.images[(0, 10)]);
    assert!(matches!(d.rows(&[1797]), Err(DataError::SubsetTooLarge { .. })));
}

#[test]
fn nested_split_is_nested_and_disjoint_from_held_out() {
    let s = NestedSplit::new(100, 20, 3).unwrap();
    assert_eq!(s.max_train(), 80);
    let (a, b) = (s.train(10).unwrap(), s.train(80).unwrap());
    assert_eq!(a, &b[..10]);
    assert!(s.held_out().iter().all(|h| !b.contains(h)));
    let mut all: Vec<usize> = b.iter().chain(s.held_out()).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert!(matches!(s.train(81), Err(DataError::SubsetTooLarge { requested: 81, available: 80 })));
    assert!(NestedSplit::new(5, 5, 0).is_err());
    assert_ne!(NestedSplit::new(100, 20, 4).unwrap().train(10).unwrap(), a, "the seed matters");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), head in 0u8..4) {
        let dir = tmpdir("prop");
        let mut b = bytes;
        if head > 0 && b.len() >= 4 { b[..4].copy_from_slice(&[0, 0, 8, head]); }
        std::fs::write(dir.join("x"), &b).unwrap();
        let _ = read_idx_images(dir.join("x"));
        std::fs::write(dir.join("test_batch.bin"), &b).unwrap();
        let _ = read_cifar10(&dir, Split::Test);
    }
}

#[test]
fn mean_pool_averages_blocks_and_refuses_bad_factors() {
    // One 2-channel 4×4 image with pixel value = its flat index / 31 (all within [0, 1]).
    let images = faer::Mat::from_fn(1, 32, |_, j| j as f64 / 31.0);
    let set = ImageSet { images, labels: vec![3], channels: 2, height: 4, width: 4, source: "t".into() };
    let p = set.mean_pool(2).unwrap();
    assert_eq!((p.channels, p.height, p.width, p.dim()), (2, 2, 2, 8));
    // Block (channel 1, y 1, x 0) holds flat indices 16 + {8, 9, 12, 13}.
    let want = (24.0 + 25.0 + 28.0 + 29.0) / 4.0 / 31.0;
    assert!((p.images[(0, 4 + 2)] - want).abs() < 1e-15);
    assert_eq!(p.labels, vec![3]);
    assert_eq!(set.mean_pool(1).unwrap().images, set.images);
    for bad in [0, 3, 8] {
        assert!(matches!(set.mean_pool(bad), Err(DataError::InvalidParameter { name: "factor", .. })), "{bad}");
    }
}

/// The real Fashion-MNIST of Debian's `dataset-fashion-mnist` where it is installed; where it
/// is not, the reader's error names the package and the install command (and the test says
/// on stderr that the real-file checks did not run).
#[test]
fn fashion_mnist_from_the_debian_package() {
    match geomem_data::read_fashion_mnist(Split::Train) {
        Ok(set) => {
            assert_eq!((set.len(), set.height, set.width, set.channels), (60_000, 28, 28, 1));
            let mut per_class = [0usize; 10];
            set.labels.iter().for_each(|&l| per_class[l as usize] += 1);
            assert_eq!(per_class, [6000; 10], "Fashion-MNIST's training set has 6000 images per class");
            // The first training image is an ankle boot (class 9) in every copy of the data set.
            assert_eq!(set.labels[0], 9);
            let (lo, hi) = set
                .images
                .col_iter()
                .flat_map(|c| c.iter().copied().collect::<Vec<_>>())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            assert_eq!((lo, hi), (-1.0, 1.0));
            let test = geomem_data::read_fashion_mnist(Split::Test).unwrap();
            assert_eq!(test.len(), 10_000);
            let small = set.mean_pool(2).unwrap();
            assert_eq!(small.dim(), 196);
        }
        Err(e) => {
            assert!(matches!(e, DataError::NotInstalled { package: "dataset-fashion-mnist", .. }), "{e}");
            assert!(e.to_string().contains("apt-get install dataset-fashion-mnist"), "{e}");
            eprintln!("NOT RUN: the real Fashion-MNIST checks need Debian's dataset-fashion-mnist ({e})");
        }
    }
}
