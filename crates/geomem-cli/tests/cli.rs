//! The `geomem` command from the shell: each subcommand on good input writes what it says,
//! and every bad value or file reaches the user as one error message and exit status 1,
//! never a panic.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn geomem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geomem")).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a clean failure (exit status 1, no panic) whose stderr contains `says`.
fn fails_with(out: &Output, says: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    assert_eq!(out.status.code(), Some(1), "{what}: exit status (101 is Rust's panic status): {err}");
    assert!(err.contains(says), "{what}: expected '{says}' in: {err}");
}

fn succeeds(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_npy(path: &Path, header: &str, body: &[u8]) {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(body);
    std::fs::write(path, b).unwrap();
}

/// `n` points of a curved surface in R^4 (the fourth coordinate 0).
fn points(path: &Path, n: usize) {
    let mut csv = String::new();
    for i in 0..n {
        let (a, b) = ((i as f64 * 0.7).sin(), (i as f64 * 1.3).cos());
        csv.push_str(&format!("{a},{b},{},0\n", a * b));
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn train_rejects_bad_values_and_files() {
    let dir = tmp("train");
    let fails = |data: &Path, run: &str, args: &[&str], says: &str| {
        let mut all = vec!["train", "--data", s(data), "--run-dir"];
        let run_dir = dir.join(run);
        all.push(s(&run_dir));
        all.extend(["--hidden", "8", "--log-every", "1", "--checkpoint-every", "1"]);
        all.extend(args);
        fails_with(&geomem(&all), says, &format!("train {args:?}"));
    };
    let huge = dir.join("huge.npy");
    // A header claiming shape (2^32, 2^32).
    write_npy(&huge, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", &[0; 8]);
    fails(&huge, "r0", &[], "too large");
    let good = dir.join("good.csv");
    std::fs::write(&good, (0..12).map(|i| format!("{},{}\n", i, i % 3)).collect::<String>()).unwrap();
    fails(&good, "r1", &["--steps", "0"], "steps");
    fails(&good, "r2", &["--sigma-min", "0"], "sigma_min");
    fails(&good, "r3", &["--sigma-min=-1"], "sigma_min");
    fails(&good, "r4", &["--n", "13"], "13");
    fails(&good, "r5", &["--lr", "nan"], "lr");
    let nan = dir.join("nan.csv");
    std::fs::write(&nan, "1,2\nNaN,3\n").unwrap();
    fails(&nan, "r6", &[], "non-finite");
    let edited = dir.join("r7");
    std::fs::create_dir_all(&edited).unwrap();
    std::fs::write(edited.join("config.json"), r#"{"model":{"d":2,"hidden":0,"blocks":2,"emb_dim":32,"sigma_data":1.0},"steps":2,"batch_size":128,"lr":0.001,"sigma_min":0.01,"sigma_max":50.0,"ema_decay":0.9999,"seed":0,"checkpoint_every":1000,"log_every":100}"#).unwrap();
    fails(&good, "r7", &["--steps", "2"], "model.hidden");
    fails(&dir.join("missing.npy"), "r8", &[], "missing.npy");
    let txt = dir.join("points.txt");
    std::fs::write(&txt, "1,2\n").unwrap();
    fails(&txt, "r9", &[], "unknown file type");
}

/// `geomem lid` on good points writes one column per estimator; on 100 points the default
/// TwoNN neighbourhood is clamped with a note; a setting that does not fit the data fails
/// before any estimator runs; bad requests fail cleanly.
#[test]
fn lid_command() {
    let d = tmp("lid");
    let data = d.join("points.csv");
    points(&data, 120);
    let out = d.join("out");
    let lid = |args: &[&str]| {
        let mut all = vec!["lid", "--data", s(&data), "--out", s(&out)];
        all.extend(args);
        geomem(&all)
    };
    succeeds(&lid(&["--k", "10", "--twonn-neighbors", "30"]), "lid");
    let table = std::fs::read_to_string(out.join("lid.csv")).unwrap();
    assert_eq!(table.lines().next(), Some("mle,twonn"));
    assert_eq!(table.lines().count(), 121);
    assert!(out.join("lid.npy").exists() && out.join("summary.json").exists());
    for (args, says) in [
        (&["--estimator", "flipd"][..], "need --run-dir"),
        (&["--k", "1"][..], "k"),
        (&["--k", "500"][..], "--k 500"),
        (&["--twonn-neighbors", "2"][..], "at least 3"),
        (&["--run-dir", "/nonexistent/run", "--estimator", "nb"][..], "run directory"),
        (&["--reference", "/nonexistent/ref.npy"][..], "ref.npy"),
    ] {
        fails_with(&lid(args), says, &format!("lid {args:?}"));
    }
    // 100 points: MLE runs, TwoNN's default neighbourhood (100) is clamped to 99 with a note.
    let small = d.join("small.csv");
    points(&small, 100);
    let small_out = d.join("small-out");
    let ok = geomem(&["lid", "--data", s(&small), "--out", s(&small_out)]);
    succeeds(&ok, "lid on 100 points");
    assert!(String::from_utf8_lossy(&ok.stderr).contains("clamped from its default 100 to 99"));
    let summary = std::fs::read_to_string(small_out.join("summary.json")).unwrap();
    assert!(summary.contains("\"twonn_neighbors\": 99"), "{summary}");
    // A neighbourhood given too large fails before MLE runs: nothing is printed or written.
    let none = d.join("none-out");
    let bad = geomem(&["lid", "--data", s(&small), "--out", s(&none), "--twonn-neighbors", "100"]);
    fails_with(&bad, "--twonn-neighbors 100", "explicit neighbourhood above the data");
    assert!(!String::from_utf8_lossy(&bad.stdout).contains("mle"), "MLE ran before the check");
    assert!(!none.exists(), "output written before the check");
    // One point has no neighbours among the others.
    let one = d.join("one.csv");
    std::fs::write(&one, "1,2,3,4\n").unwrap();
    fails_with(&geomem(&["lid", "--data", s(&one), "--out", s(&none)]), "MLE needs k <= 0", "one point");
    // A reference of another dimension.
    let other = d.join("other.csv");
    std::fs::write(&other, "1,2\n3,4\n5,6\n").unwrap();
    fails_with(&lid(&["--reference", s(&other)]), "columns", "reference of another dimension");
}

/// `geomem spectrum` of a data file's empirical score: one spectrum row per (time, point),
/// readings for each, the REM condensation time; bad requests fail cleanly.
#[test]
fn spectrum_of_the_empirical_score() {
    let d = tmp("spectrum");
    let data = d.join("points.csv");
    points(&data, 40);
    let out = d.join("out");
    let ok = geomem(&["spectrum", "--data", s(&data), "--n-points", "3", "--t", "0.001", "--t", "1", "--out", s(&out)]);
    let stdout = succeeds(&ok, "spectrum");
    assert!(stdout.contains("t_c"), "{stdout}");
    let readings = std::fs::read_to_string(out.join("readings.csv")).unwrap();
    assert_eq!(readings.lines().count(), 1 + 2 * 3);
    // At t = 0.001 each training point dominates its own posterior: stiff in every direction
    // (t · s = 1), soft count 0.
    let first: Vec<&str> = readings.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((first[0], first[6], first[7]), ("0.001", "no_spike_stiff", "0"), "{readings}");
    assert!((first[8].parse::<f64>().unwrap() - 1.0).abs() < 1e-6, "{readings}");
    let spectra = geomem_data::read_npy(out.join("spectra.npy")).unwrap();
    assert_eq!((spectra.nrows(), spectra.ncols()), (6, 4));
    let sp = |args: &[&str]| {
        let mut all = vec!["spectrum", "--out", s(&out)];
        all.extend(args);
        geomem(&all)
    };
    fails_with(&sp(&["--data", s(&data), "--t", "0"]), "--t 0", "t = 0");
    fails_with(&sp(&["--data", s(&data), "--t=-1"]), "--t -1", "t < 0");
    fails_with(&sp(&["--data", s(&data), "--n-points", "0"]), "--n-points", "no points");
    let pts = d.join("pts.csv");
    std::fs::write(&pts, "1,2\n").unwrap();
    fails_with(&sp(&["--data", s(&data), "--points", s(&pts)]), "dimension 2", "points of another dimension");
    fails_with(&sp(&[]), "--run-dir", "no field");
    fails_with(&sp(&["--run-dir", "/nonexistent/run", "--points", s(&pts)]), "run directory", "missing run dir");
    fails_with(&sp(&["--data", s(&data), "--threshold", "0"]), "threshold", "bad Algorithm 3 threshold");
}

/// A tiny run trained, then inspected, sampled, its spectra and its FLIPD / NB dimension
/// read through the run directory; bad requests on it fail cleanly.
#[test]
fn train_inspect_sample_and_model_lid() {
    let d = tmp("run");
    let data = d.join("points.csv");
    points(&data, 60);
    let run = d.join("run");
    let args =
        ["--hidden", "8", "--steps", "30", "--log-every", "10", "--checkpoint-every", "10", "--batch-size", "16"];
    let mut train = vec!["train", "--data", s(&data), "--run-dir", s(&run)];
    train.extend(args);
    succeeds(&geomem(&train), "train");
    let json = d.join("run.json");
    let shown = succeeds(&geomem(&["inspect", "--run-dir", s(&run), "--json", s(&json)]), "inspect");
    assert!(shown.contains("checkpoint at step 30 of 30"), "{shown}");
    let desc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        (desc["kind"].as_str(), desc["dim"].as_u64(), desc["logged_rows"].as_u64()),
        (Some("toy"), Some(4), Some(3))
    );
    assert!(desc.get("cost").is_some_and(|c| c.is_null()), "a toy net has no U-Net cost: {desc}");
    let samples = d.join("samples.csv");
    succeeds(&geomem(&["sample", "--run-dir", s(&run), "--n", "7", "--steps", "20", "--out", s(&samples)]), "sample");
    let x = geomem_data::read_csv(&samples).unwrap();
    assert_eq!((x.nrows(), x.ncols()), (7, 4));
    let lid_out = d.join("lid");
    let lid = ["lid", "--data", s(&samples), "--reference", s(&data), "--run-dir", s(&run), "--out", s(&lid_out)];
    succeeds(
        &geomem(&[&lid[..], &["--k", "5", "--estimator", "mle", "--estimator", "flipd", "--estimator", "nb"]].concat()),
        "lid",
    );
    let table = std::fs::read_to_string(lid_out.join("lid.csv")).unwrap();
    assert_eq!((table.lines().next(), table.lines().count()), (Some("mle,flipd,nb"), 8));
    let sp_out = d.join("spectrum");
    let sp = ["spectrum", "--run-dir", s(&run), "--points", s(&samples), "--out", s(&sp_out)];
    succeeds(&geomem(&sp), "spectrum of the net");
    assert_eq!(geomem_data::read_npy(sp_out.join("spectra.npy")).unwrap().nrows(), 7);
    fails_with(&geomem(&["spectrum", "--run-dir", s(&run), "--out", s(&sp_out)]), "--points", "net without points");
    let wrong = d.join("wrong.csv");
    std::fs::write(&wrong, "1,2\n3,4\n5,6\n").unwrap();
    fails_with(
        &geomem(&["lid", "--data", s(&wrong), "--run-dir", s(&run), "--estimator", "flipd", "--out", s(&lid_out)]),
        "dimension 4",
        "points of another dimension",
    );
    let sample = |args: &[&str]| geomem(&[&["sample", "--run-dir", s(&run)][..], args].concat());
    fails_with(&sample(&["--n", "0", "--out", s(&samples)]), "--n", "no samples");
    fails_with(&sample(&["--n", "10000000000000", "--out", s(&samples)]), "memory", "more samples than memory");
    fails_with(&sample(&["--steps", "0", "--out", s(&samples)]), "steps", "no steps");
    fails_with(&sample(&["--out", s(&d.join("x.txt"))]), "unknown file type", "unknown output type");
    fails_with(&geomem(&["inspect", "--run-dir", s(&d.join("none"))]), "run directory", "missing run dir");
    std::fs::write(run.join("metrics.csv"), "step,loss\n1,2\n").unwrap();
    fails_with(&geomem(&["inspect", "--run-dir", s(&run)]), "metrics", "malformed metrics");
}

/// `geomem spectrum` on a DDPM U-Net run directory (the image figure's kind of run): on the
/// CPU build its spectra are the exact Jacobian's from the host's reverse pass, the same
/// numbers as the library's `RunDir::score_field_on(.., true)` with `SpectrumParams::pointwise`
/// (burn's field has no Jacobian; with it the spectra are central differences, 4e-6 of the
/// largest value off when this test was written, and the test fails).
#[test]
fn spectrum_of_a_unet_run() {
    use geomem_nets::{train_ddpm, DdpmTrainConfig, RunDir, UNetConfig};
    use geomem_spectral::{spectrum, SpectrumParams};
    type B = burn::backend::Autodiff<burn::backend::Flex>;
    let d = tmp("unet");
    let run = d.join("run");
    let model = UNetConfig::new(8, 1).with_base(8).with_mults(vec![1, 2]).with_attn_resolutions(vec![4]).with_groups(4);
    let cfg = DdpmTrainConfig::new(model).with_batch_size(8).with_steps(20).with_seed(1).with_checkpoint_every(20);
    let images = geomem_data::ImageSet::digits().unwrap().rows(&(0..8).collect::<Vec<_>>()).unwrap();
    let dev = Default::default();
    train_ddpm::<B>(images.as_ref(), &cfg, Some(&run), &dev, &mut |_| std::ops::ControlFlow::Continue(())).unwrap();
    // `inspect` prints what a spectrum of it costs: the library's count.
    let json = d.join("inspect.json");
    let shown = succeeds(&geomem(&["inspect", "--run-dir", s(&run), "--json", s(&json)]), "inspect a U-Net run");
    assert!(shown.contains("multiply-adds"), "{shown}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let per = cfg.model.multiply_adds().unwrap().total() as f64;
    assert_eq!(v["cost"]["multiply_adds_per_image"].as_f64(), Some(per));
    assert_eq!(v["cost"]["normal_bundle"].as_f64(), Some(8.0 * 64.0 * per));
    assert_eq!(v["cost"]["exact_jacobian"].as_f64(), Some(65.0 * per));
    assert_eq!(v["cost"]["conv3x3_per_image"].as_f64(), Some(cfg.model.multiply_adds().unwrap().conv3x3 as f64));
    assert!(shown.contains(&format!("{per:.3e} per forward image")), "{shown}");
    let pts = d.join("pts.npy");
    geomem_data::write_npy(&pts, images.as_ref().subrows(0, 2)).unwrap();
    let out = d.join("out");
    let sp = ["spectrum", "--run-dir", s(&run), "--points", s(&pts), "--t", "0.01", "--out", s(&out)];
    succeeds(&geomem(&sp), "spectrum of a U-Net run");
    let got = geomem_data::read_npy(out.join("spectra.npy")).unwrap();
    assert_eq!((got.nrows(), got.ncols()), (2, 64));
    let dir = RunDir::open(&run).unwrap();
    let field = dir.score_field_on::<B>(&dev, true).unwrap();
    let t = dir.config().field_time(0.01).unwrap();
    for i in 0..2 {
        let x: Vec<f64> = images.row(i).iter().copied().collect();
        let want = spectrum(&field, &x, t, &SpectrumParams::pointwise()).unwrap().into_values();
        assert!(want[0] > 0.0, "a trained net has a non-zero Jacobian");
        for (j, w) in want.iter().enumerate() {
            assert!((got[(i, j)] - w).abs() <= 1e-9 * want[0], "point {i}, value {j}: {} against {w}", got[(i, j)]);
        }
    }
}
