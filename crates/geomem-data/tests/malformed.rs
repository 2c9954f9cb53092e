//! Every malformed input to the readers is a typed error, never a panic or an allocation of
//! what a header merely claims; random bytes and random headers never panic.
use geomem_data::{parse_csv, parse_npy, read_csv, read_npy, DataError, NestedSubsets};
use proptest::prelude::*;

/// A `.npy` file (version 1.0) with the given header dict and body.
fn npy(dict: &str, body: &[u8]) -> Vec<u8> {
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out
}

fn f8(vals: &[f64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn dict(descr: &str, fortran: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
}

fn header_err(r: Result<faer::Mat<f64>, DataError>) -> String {
    match r {
        Err(DataError::NpyHeader { reason, .. }) => reason,
        other => panic!("expected NpyHeader, got {other:?}"),
    }
}

#[test]
fn well_formed_npy_in_every_layout_reads() {
    let c = parse_npy(&npy(&dict("<f8", "False", "(2, 3)"), &f8(&[1., 2., 3., 4., 5., 6.]))).unwrap();
    let f = parse_npy(&npy(&dict("<f8", "True", "(2, 3)"), &f8(&[1., 4., 2., 5., 3., 6.]))).unwrap();
    assert_eq!(c, f);
    assert_eq!(c[(1, 0)], 4.0);
    let be: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    let m = parse_npy(&npy(&dict(">f4", "False", "(2,)"), &be)).unwrap();
    assert_eq!((m.nrows(), m.ncols(), m[(1, 0)]), (2, 1, -2.0));
    let u = parse_npy(&npy(&dict("|u1", "False", "(1, 3)"), &[0, 7, 255])).unwrap();
    assert_eq!(u[(0, 2)], 255.0);
}

#[test]
fn npy_shape_overflow_is_an_error_not_an_allocation() {
    // The case of the issue: (2^32, 2^32) overflows 64 bits of elements.
    let r = parse_npy(&npy(&dict("<f8", "False", "(4294967296, 4294967296)"), &f8(&[1.0])));
    assert!(matches!(r, Err(DataError::ShapeOverflow { ref shape, .. }) if shape == &[1 << 32, 1 << 32]));
    // Elements fit in 64 bits, bytes do not.
    let r = parse_npy(&npy(&dict("<f8", "False", "(4294967296, 2147483648)"), &[]));
    assert!(matches!(r, Err(DataError::ShapeOverflow { .. })));
    // Fits in 64 bits but not in the file: checked against the length before allocating.
    let r = parse_npy(&npy(&dict("<f8", "False", "(1048576, 1048576)"), &f8(&[1.0])));
    assert!(matches!(r, Err(DataError::LengthMismatch { expected_bytes: 8_796_093_022_208, got_bytes: 8, .. })));
}

#[test]
fn npy_body_shorter_or_longer_than_the_shape() {
    let r = parse_npy(&npy(&dict("<f8", "False", "(2, 3)"), &f8(&[1.0; 5])));
    assert!(matches!(r, Err(DataError::LengthMismatch { expected_bytes: 48, got_bytes: 40, .. })));
    let mut cut = npy(&dict("<f8", "False", "(2, 3)"), &f8(&[1.0; 6]));
    cut.truncate(cut.len() - 3);
    assert!(matches!(parse_npy(&cut), Err(DataError::LengthMismatch { got_bytes: 45, .. })));
    let r = parse_npy(&npy(&dict("<f8", "False", "(2, 3)"), &f8(&[1.0; 7])));
    assert!(matches!(r, Err(DataError::LengthMismatch { expected_bytes: 48, got_bytes: 56, .. })));
}

#[test]
fn npy_truncated_or_foreign_headers() {
    let full = npy(&dict("<f8", "False", "(1, 1)"), &f8(&[1.0]));
    assert!(header_err(parse_npy(&full[..40])).contains("truncated header"));
    assert!(header_err(parse_npy(&full[..7])).contains("magic"));
    assert!(header_err(parse_npy(&[])).contains("magic"));
    assert!(header_err(parse_npy(b"PK\x03\x04 this is a zip file, not npy")).contains("magic"));
    let mut v4 = full.clone();
    v4[6] = 4;
    assert!(header_err(parse_npy(&v4)).contains("version 4"));
    let mut v2 = b"\x93NUMPY\x02\x00\xff\xff".to_vec();
    assert!(header_err(parse_npy(&v2)).contains("truncated header length"));
    v2.extend_from_slice(&[0xff, 0x7f]);
    assert!(header_err(parse_npy(&v2)).contains("truncated header"));
}

#[test]
fn npy_header_dict_errors() {
    let missing = "{'descr': '<f8', 'shape': (1, 1), }";
    assert!(header_err(parse_npy(&npy(missing, &f8(&[1.0])))).contains("lacks"));
    let unknown = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}";
    assert!(header_err(parse_npy(&npy(unknown, &f8(&[1.0])))).contains("unknown header key"));
    let fortran = dict("<f8", "maybe", "(1,)");
    assert!(header_err(parse_npy(&npy(&fortran, &f8(&[1.0])))).contains("True or False"));
    let negative = dict("<f8", "False", "(-1, 2)");
    assert!(header_err(parse_npy(&npy(&negative, &f8(&[1.0])))).contains("bad shape entry"));
    let mut latin = npy(&dict("<f8", "False", "(1,)"), &f8(&[1.0]));
    latin[12] = 0xff;
    assert!(header_err(parse_npy(&latin)).contains("UTF-8"));
}

#[test]
fn npy_wrong_dtype_and_rank() {
    for descr in ["<c16", "<U8", "|O", "<f2", "<i2", "", "f8"] {
        let r = parse_npy(&npy(&dict(descr, "False", "(1,)"), &[0; 16]));
        assert!(matches!(r, Err(DataError::UnsupportedDtype { .. })), "{descr}: {r:?}");
    }
    let zero_d = parse_npy(&npy(&dict("<f8", "False", "()"), &f8(&[1.0])));
    assert!(matches!(zero_d, Err(DataError::UnsupportedShape { ref shape, .. }) if shape.is_empty()));
    let three_d = parse_npy(&npy(&dict("<f8", "False", "(1, 1, 1)"), &f8(&[1.0])));
    assert!(matches!(three_d, Err(DataError::UnsupportedShape { ref shape, .. }) if shape == &[1, 1, 1]));
}

#[test]
fn npy_non_finite_values_and_empty_arrays() {
    let nan = parse_npy(&npy(&dict("<f8", "False", "(2, 2)"), &f8(&[0.0, 1.0, f64::NAN, 2.0])));
    assert!(matches!(nan, Err(DataError::NonFinite { row: 1, col: 0, .. })));
    let inf = parse_npy(&npy(
        &dict("<f4", "True", "(2, 2)"),
        &[0.0f32, 1.0, 2.0, f32::INFINITY].map(f32::to_le_bytes).concat(),
    ));
    assert!(matches!(inf, Err(DataError::NonFinite { row: 1, col: 1, .. })));
    let empty = parse_npy(&npy(&dict("<f8", "False", "(0, 3)"), &[]));
    assert!(matches!(empty, Err(DataError::EmptyDataset)));
    let empty1 = parse_npy(&npy(&dict("<f8", "False", "(0,)"), &[]));
    assert!(matches!(empty1, Err(DataError::EmptyDataset)));
}

#[test]
fn file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("geomem-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.npy");
    std::fs::write(&p, npy(&dict("<f8", "False", "(4294967296, 4294967296)"), &[])).unwrap();
    match read_npy(&p) {
        Err(e @ DataError::ShapeOverflow { .. }) => assert!(e.to_string().contains("bad.npy")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(read_npy(dir.join("missing.npy")), Err(DataError::Io { .. })));
    assert!(matches!(read_csv(dir.join("missing.csv")), Err(DataError::Io { .. })));
    let gz = dir.join("not.csv.gz");
    std::fs::write(&gz, b"plain text, not gzip").unwrap();
    assert!(matches!(read_csv(&gz), Err(DataError::Format { .. })));
}

#[test]
fn csv_malformed_inputs() {
    let ragged = parse_csv(&b"a,b,c\n1,2,3\n4,5\n"[..]);
    assert!(matches!(ragged, Err(DataError::RaggedRow { line: 3, expected: 3, got: 2, .. })));
    let text = parse_csv(&b"1,2\n3,four\n"[..]);
    assert!(matches!(text, Err(DataError::NotNumeric { line: 2, ref field, .. }) if field == "four"));
    assert!(matches!(parse_csv(&b""[..]), Err(DataError::EmptyDataset)));
    assert!(matches!(parse_csv(&b"x,y,z\n"[..]), Err(DataError::EmptyDataset)));
    let nan = parse_csv(&b"1,2\nnan,3\n"[..]);
    assert!(matches!(nan, Err(DataError::NonFinite { row: 1, col: 0, .. })));
    let inf = parse_csv(&b"1,inf\n"[..]);
    assert!(matches!(inf, Err(DataError::NonFinite { row: 0, col: 1, .. })));
    let ok = parse_csv(&b"x,y\n1,2\n3,4\n"[..]).unwrap();
    assert_eq!((ok.nrows(), ok.ncols(), ok[(1, 1)]), (2, 2, 4.0));
}

#[test]
fn subset_larger_than_the_dataset() {
    let s = NestedSubsets::new(10, 0);
    assert!(matches!(s.indices(11), Err(DataError::SubsetTooLarge { requested: 11, available: 10 })));
    let data = faer::Mat::<f64>::zeros(9, 2);
    assert!(matches!(s.subset(data.as_ref(), 5), Err(DataError::InvalidParameter { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(21), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_npy(&bytes);
        let _ = parse_csv(&bytes[..]);
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_npy(&with_magic);
    }

    #[test]
    fn random_headers_never_panic(
        descr in "[<>|=]?[fiuUcOb]?[0-9]{0,3}",
        fortran in prop_oneof![Just("True".to_string()), Just("False".to_string()), "[a-z]{0,5}"],
        dims in proptest::collection::vec(any::<u64>(), 0..5),
        small in proptest::collection::vec(0u64..6, 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        use_small in any::<bool>(),
    ) {
        let d = if use_small { &small } else { &dims };
        let shape = format!("({})", d.iter().map(|v| format!("{v},")).collect::<String>());
        match parse_npy(&npy(&dict(&descr, &fortran, &shape), &body)) {
            Ok(m) => prop_assert!((0..m.nrows()).all(|i| (0..m.ncols()).all(|j| m[(i, j)].is_finite()))),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn random_header_text_never_panics(text in "[ -~]{0,120}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_npy(&npy(&text, &body));
    }

    #[test]
    fn random_csv_text_never_panics(text in "[0-9a-z,.\\-+e\n ]{0,200}") {
        if let Ok(m) = parse_csv(text.as_bytes()) {
            prop_assert!(m.nrows() >= 1 && m.ncols() >= 1);
        }
    }
}
