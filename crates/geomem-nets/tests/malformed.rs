//! Malformed checkpoints and configurations, diverging training and non-finite samples are
//! typed errors; random bytes never panic the checkpoint reader; the autodiff Jacobian,
//! JVPs and divergence of a trained net agree with its own finite differences.
use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_nets::*;
use geomem_score::{DivergenceParams, Precision, ScoreError, ScoreField, ScoreFieldExt};
use proptest::prelude::*;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

type B = Autodiff<Flex>;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-nets-malformed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(d: usize, steps: u64) -> TrainConfig {
    TrainConfig::new(ResidualMlpConfig::new(d).with_hidden(16).with_blocks(1))
        .with_steps(steps)
        .with_log_every(1)
        .with_checkpoint_every(10)
}

fn data(n: usize, d: usize) -> Mat<f64> {
    Mat::from_fn(n, d, |i, j| ((i * 7 + j * 3) % 5) as f64 / 5.0 - 0.4)
}

fn go(data: &Mat<f64>, c: &TrainConfig, dir: Option<&Path>) -> Result<TrainState<B>> {
    train::<B>(data.as_ref(), c, dir, &dev(), &mut |_| ControlFlow::Continue(()))
}

fn corrupt(r: Result<TrainState<B>>) -> String {
    match r {
        Err(NetsError::CorruptCheckpoint { reason, .. }) => reason,
        Err(e) => panic!("expected CorruptCheckpoint, got {e}"),
        Ok(_) => panic!("expected CorruptCheckpoint, got a state"),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Replaces the trailing checksum so that a hand-made change passes it.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() - 8;
    let h = fnv1a(&b[..n]);
    b[n..].copy_from_slice(&h.to_le_bytes());
    b
}

#[test]
fn malformed_checkpoints() {
    let c = cfg(3, 10);
    let state = go(&data(20, 3), &c, None).unwrap();
    let good = encode_checkpoint(&state, &c).unwrap();
    let p = Path::new("ck");
    let dec = |b: &[u8]| decode_checkpoint::<B>(p, b, &c, &dev());
    assert!(corrupt(dec(&good[..good.len() / 2])).contains("checksum"), "truncated");
    let mut flip = good.clone();
    flip[good.len() / 3] ^= 0x10;
    assert!(corrupt(dec(&flip)).contains("checksum"), "bit flip");
    assert!(corrupt(dec(b"PK\x03\x04 a zip file")).contains("not a geomem checkpoint"), "foreign");
    assert!(corrupt(dec(&[])).contains("not a geomem checkpoint"), "empty");
    let mut v2 = good.clone();
    v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(corrupt(dec(&reseal(v2))).contains("format version 2"), "other version");
    let other = TrainConfig { model: ResidualMlpConfig::new(3).with_hidden(8).with_blocks(1), ..c.clone() };
    assert!(corrupt(decode_checkpoint::<B>(p, &good, &other, &dev())).contains("other settings"), "other config");
    assert!(corrupt(decode_checkpoint::<B>(p, &good, &c.clone().with_lr(0.5), &dev())).contains("other settings"));
    // A section length that points past the end, checksum resealed.
    let mut long = good.clone();
    long[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(corrupt(dec(&reseal(long))).contains("truncated section"));
    // load_ema returns the stored settings; a run directory whose config.json describes
    // another network than its checkpoint holds is refused when its field is loaded.
    let dir = tmpdir("ema");
    let ck = dir.join(CHECKPOINT_FILE);
    std::fs::write(&ck, &good).unwrap();
    let (_, stored): (ResidualMlp<Flex>, TrainConfig) = load_ema(&ck, &dev()).unwrap();
    assert_eq!(stored, c);
    std::fs::write(dir.join("config.json"), serde_json::to_string(&other).unwrap()).unwrap();
    let run = RunDir::open(&dir).unwrap();
    assert!(matches!(run.score_field::<B>(&dev()), Err(NetsError::CorruptCheckpoint { .. })));
    let missing = load_ema::<Flex, ResidualMlp<Flex>>(&dir.join("missing.bin"), &dev());
    assert!(matches!(missing, Err(NetsError::Io { .. })));
}

/// A toy run directory opened by the library: its settings, one metrics row per logged
/// step, the checkpoint's step, its EMA net as a field (the trained state's EMA, scores
/// equal) and its samples; a missing directory, a missing or foreign `config.json` and a
/// malformed `metrics.csv` are typed errors.
#[test]
fn run_directories_open_with_their_field_and_errors() {
    let dir = tmpdir("rundir");
    let (x, c) = (data(20, 3), cfg(3, 12).with_checkpoint_every(6).with_log_every(4));
    let state = go(&x, &c, Some(&dir)).unwrap();
    let run = RunDir::open(&dir).unwrap();
    assert_eq!(run.config(), &RunConfig::Toy(c.clone()));
    assert_eq!((run.config().kind(), run.config().dim(), run.config().steps()), ("toy", 3, 12));
    assert_eq!(run.metrics().iter().map(|r| r.step).collect::<Vec<_>>(), vec![4, 8, 12]);
    assert_eq!(run.checkpoint_step().unwrap(), 12);
    assert_eq!(run.config().field_time(0.3).unwrap(), 0.3);
    let field = run.score_field::<B>(&dev()).unwrap();
    let direct = TrainedScore::<B>::new(state.ema.clone(), dev());
    let (a, b) = (field.score_batch(x.as_ref(), 0.3).unwrap(), direct.score_batch(x.as_ref(), 0.3).unwrap());
    assert!(a == b, "the run directory's field is the trained EMA net");
    let s = run.sample::<B>(5, 20, 1, &dev()).unwrap();
    assert_eq!((s.nrows(), s.ncols()), (5, 3));
    assert!(s == run.sample::<B>(5, 20, 1, &dev()).unwrap(), "seeded");
    assert!(matches!(RunDir::open(dir.join("none")), Err(NetsError::Io { .. })));
    let empty = tmpdir("rundir-empty");
    assert!(matches!(RunDir::open(&empty), Err(NetsError::Io { .. })));
    std::fs::write(empty.join("config.json"), "{\"model\": 3}").unwrap();
    assert!(matches!(RunDir::open(&empty), Err(NetsError::Config { .. })));
    std::fs::copy(dir.join("config.json"), empty.join("config.json")).unwrap();
    assert!(matches!(RunDir::open(&empty).unwrap().score_field::<B>(&dev()), Err(NetsError::Io { .. })));
    std::fs::write(empty.join("metrics.csv"), "step,loss\n1,2\n").unwrap();
    assert!(matches!(RunDir::open(&empty), Err(NetsError::Metrics { line: 1, .. })));
}

#[test]
fn records_with_valid_checksum_but_wrong_contents() {
    let c = cfg(3, 10);
    let good = encode_checkpoint(&go(&data(20, 3), &c, None).unwrap(), &c).unwrap();
    // Swap the model record for the EMA record of a larger net (a valid record of the
    // wrong shape), resealed: decoding must fail cleanly.
    let big = TrainConfig { model: ResidualMlpConfig::new(3).with_hidden(32).with_blocks(1), ..c.clone() };
    let other = encode_checkpoint(&go(&data(20, 3), &big, None).unwrap(), &big).unwrap();
    let section = |b: &[u8], k: usize| -> (usize, usize) {
        let mut off = 12;
        for _ in 0..k {
            off += 8 + u64::from_le_bytes(b[off..off + 8].try_into().unwrap()) as usize;
        }
        (off, 8 + u64::from_le_bytes(b[off..off + 8].try_into().unwrap()) as usize)
    };
    let (mo, ml) = section(&good, 1);
    let (oo, ol) = section(&other, 1);
    let mut franken = good[..mo].to_vec();
    franken.extend_from_slice(&other[oo..oo + ol]);
    franken.extend_from_slice(&good[mo + ml..]);
    let r = decode_checkpoint::<B>(Path::new("ck"), &reseal(franken), &c, &dev());
    assert!(corrupt(r).contains("shape"), "a record of another shape");
}

#[test]
fn hand_edited_config_json() {
    let dir = tmpdir("config");
    let base = serde_json::to_value(cfg(4, 10)).unwrap();
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("odd embedding", serde_json::json!(7), "model.emb_dim"),
        ("zero embedding", serde_json::json!(0), "model.emb_dim"),
        ("zero width", serde_json::json!(0), "model.hidden"),
        ("zero steps", serde_json::json!(0), "steps"),
        ("zero sigma_data", serde_json::json!(0.0), "model.sigma_data"),
    ];
    for (k, (what, value, name)) in cases.into_iter().enumerate() {
        let mut v = base.clone();
        match name {
            "model.emb_dim" => v["model"]["emb_dim"] = value,
            "model.hidden" => v["model"]["hidden"] = value,
            "model.sigma_data" => v["model"]["sigma_data"] = value,
            _ => v["run"]["steps"] = value,
        }
        let p = dir.join(format!("config{k}.json"));
        std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        match TrainConfig::read(&p) {
            Err(NetsError::InvalidParameter { name: n, .. }) => assert_eq!(n, name, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A loop setting edited in its place of before `run` existed is refused, not ignored.
    let mut v = base.clone();
    v["steps"] = serde_json::json!(5);
    let p = dir.join("misplaced.json");
    std::fs::write(&p, v.to_string()).unwrap();
    assert!(matches!(TrainConfig::read(&p), Err(NetsError::Config { reason, .. }) if reason.contains("inside `run`")));
    let p = dir.join("garbage.json");
    std::fs::write(&p, "{ not json").unwrap();
    assert!(matches!(TrainConfig::read(&p), Err(NetsError::Config { .. })));
    assert!(matches!(TrainConfig::read(&dir.join("none.json")), Err(NetsError::Io { .. })));
    let p = dir.join("good.json");
    std::fs::write(&p, serde_json::to_string(&base).unwrap()).unwrap();
    assert_eq!(TrainConfig::read(&p).unwrap(), cfg(4, 10));
}

#[test]
fn constructors_check_the_network_settings() {
    let odd = ResidualMlpConfig::new(4).with_emb_dim(7);
    assert!(matches!(odd.init::<Flex>(&dev()), Err(NetsError::InvalidParameter { name: "model.emb_dim", .. })));
    assert!(matches!(odd.init_seeded::<Flex>(&dev(), 0), Err(NetsError::InvalidParameter { .. })));
    assert!(matches!(TrainState::<B>::new(&TrainConfig::new(odd), &dev()), Err(NetsError::InvalidParameter { .. })));
    let huge = ResidualMlpConfig::new(1 << 40);
    assert!(matches!(huge.init::<Flex>(&dev()), Err(NetsError::InvalidParameter { name: "model size", .. })));
    assert!(matches!(go(&data(20, 4), &cfg(4, 0), None), Err(NetsError::InvalidParameter { name: "steps", .. })));
    assert!(matches!(go(&data(20, 3), &cfg(4, 5), None), Err(NetsError::Data(_))));
}

#[test]
fn a_nan_loss_stops_training_and_keeps_the_last_checkpoint() {
    let dir = tmpdir("nan");
    go(&data(20, 3), &cfg(3, 10), Some(&dir)).unwrap();
    let before = std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap();
    // Same run, resumed on data that overflows f32: the first loss is not finite.
    let huge = Mat::from_fn(20, 3, |i, _| if i % 2 == 0 { 1e38 } else { -1e38 });
    match go(&huge, &cfg(3, 30), Some(&dir)) {
        Err(NetsError::NonFiniteLoss { step, last_finite_step, .. }) => assert_eq!((step, last_finite_step), (11, 10)),
        other => panic!("expected NonFiniteLoss, got {:?}", other.map(|s| s.step)),
    }
    assert_eq!(std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap(), before, "checkpoint untouched");
    // The run still resumes from the good checkpoint on good data.
    assert_eq!(go(&data(20, 3), &cfg(3, 12), Some(&dir)).unwrap().step, 12);
}

#[test]
fn trained_field_refuses_bad_points_and_times() {
    let c = cfg(3, 10);
    let f = TrainedScore::<B>::new(go(&data(20, 3), &c, None).unwrap().ema, dev());
    assert_eq!(f.precision(), Precision::F32);
    assert!(matches!(f.score(&[0.0, f64::NAN, 0.0], 0.1), Err(ScoreError::NonFinite(_))));
    assert!(matches!(f.score(&[0.0; 3], -0.1), Err(ScoreError::InvalidTime(_))));
    assert!(matches!(f.score(&[0.0; 4], 0.1), Err(ScoreError::DimensionMismatch { .. })));
}

#[test]
fn autodiff_derivatives_agree_with_finite_differences() {
    let d = 5;
    let c = cfg(d, 60).with_checkpoint_every(0);
    let f = TrainedScore::<B>::new(go(&data(40, d), &c, None).unwrap().ema, dev());
    let x = [0.3, -0.2, 0.1, 0.05, -0.4];
    for t in [0.01, 0.3, 4.0] {
        let j = f.jacobian(&x, t).unwrap().expect("autodiff Jacobian");
        // Central differences of the f32 net at the step its precision allows.
        let h = Precision::F32.central_step(t);
        let fd = Mat::from_fn(d, d, |a, b| {
            let mut xp = x.to_vec();
            let mut xm = x.to_vec();
            xp[b] += h;
            xm[b] -= h;
            (f.score(&xp, t).unwrap()[a] - f.score(&xm, t).unwrap()[a]) / (2.0 * h)
        });
        let scale = (0..d).map(|a| (0..d).map(|b| j[(a, b)].abs()).fold(0.0, f64::max)).fold(0.0, f64::max);
        let err = (0..d)
            .flat_map(|a| (0..d).map(move |b| (a, b)))
            .map(|(a, b)| (j[(a, b)] - fd[(a, b)]).abs())
            .fold(0.0, f64::max);
        assert!(err < 2e-3 * scale, "t = {t}: max error {err} of scale {scale}");
        let v = Mat::from_fn(3, d, |i, k| ((i + 2 * k) % 3) as f64 - 1.0);
        let jv = f.jvp(&x, t, v.as_ref()).unwrap();
        let want = v.as_ref() * j.transpose();
        assert!((0..3).all(|i| (0..d).all(|k| (jv[(i, k)] - want[(i, k)]).abs() <= 1e-12 * scale)));
        let tr: f64 = (0..d).map(|a| j[(a, a)]).sum();
        let exact = f.divergence(&x, t, &DivergenceParams::default()).unwrap();
        assert!((exact - tr).abs() <= 1e-9 * scale, "exact divergence {exact} vs trace {tr}");
        let p = DivergenceParams::default().exact_below(0).probes(2000).seed(1);
        let est = f.divergence(&x, t, &p).unwrap();
        assert!((est - tr).abs() < 0.1 * scale * d as f64, "Hutchinson {est} vs {tr}");
        // A batch shares its backward passes and gives each point its own value.
        let y = [-0.1, 0.2, 0.0, 0.3, 0.1];
        let xy = Mat::from_fn(2, d, |i, k| if i == 0 { y[k] } else { x[k] });
        for q in [DivergenceParams::default(), p] {
            let both = f.divergence_batch(xy.as_ref(), t, &q).unwrap();
            let alone = f.divergence(&y, t, &q).unwrap();
            assert!((both[0] - alone).abs() <= 1e-5 * scale * d as f64, "batched point 0 {} vs {alone}", both[0]);
            assert!((both[1] - f.divergence(&x, t, &q.seed(q.seed + 1)).unwrap()).abs() <= 1e-5 * scale * d as f64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(41), ..ProptestConfig::default() })]

    #[test]
    fn random_checkpoint_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        let c = cfg(3, 10);
        let mut b = if magic { b"GEOMEMCK\x01\x00\x00\x00".to_vec() } else { Vec::new() };
        b.extend_from_slice(&bytes);
        prop_assert!(decode_checkpoint::<B>(Path::new("fuzz"), &b, &c, &dev()).is_err());
        if b.len() >= 20 {
            // Also with a valid checksum, so the section parser and the decoders are reached.
            prop_assert!(decode_checkpoint::<B>(Path::new("fuzz"), &reseal(b), &c, &dev()).is_err());
        }
    }

    #[test]
    fn random_config_json_never_panics(text in "[ -~]{0,200}") {
        let dir = std::env::temp_dir().join(format!("geomem-nets-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(&p, &text).unwrap();
        let _ = TrainConfig::read(&p);
    }
}
