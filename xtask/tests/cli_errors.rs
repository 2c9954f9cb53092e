//! Bad command-line values and bad files reach the user as an error message and a non-zero
//! exit status, never as a panic.
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `xtask train` with `args` and returns its stderr, asserting a clean failure.
fn fails(data: &Path, run_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("train")
        .arg("--data")
        .arg(data)
        .arg("--run-dir")
        .arg(run_dir)
        .args(["--hidden", "8", "--log-every", "1", "--checkpoint-every", "1"])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_ne!(out.status.code(), Some(101), "{args:?}: exit 101 is Rust's panic status");
    err
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

#[test]
fn bad_values_and_files_are_errors() {
    let dir = tmp("cli");
    let huge = dir.join("huge.npy");
    // The report of the issue: a header claiming shape (2^32, 2^32).
    write_npy(&huge, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", &[0; 8]);
    assert!(fails(&huge, &dir.join("r0"), &[]).contains("too large"));
    let good = dir.join("good.csv");
    std::fs::write(&good, (0..12).map(|i| format!("{},{}\n", i, i % 3)).collect::<String>()).unwrap();
    assert!(fails(&good, &dir.join("r1"), &["--steps", "0"]).contains("steps"));
    assert!(fails(&good, &dir.join("r2"), &["--sigma-min", "0"]).contains("sigma_min"));
    assert!(fails(&good, &dir.join("r3"), &["--sigma-min=-1"]).contains("sigma_min"));
    assert!(fails(&good, &dir.join("r4"), &["--n", "13"]).contains("13"));
    assert!(fails(&good, &dir.join("r5"), &["--lr", "nan"]).contains("lr"));
    let nan = dir.join("nan.csv");
    std::fs::write(&nan, "1,2\nNaN,3\n").unwrap();
    assert!(fails(&nan, &dir.join("r6"), &[]).contains("non-finite"));
    let edited = dir.join("r7");
    std::fs::create_dir_all(&edited).unwrap();
    std::fs::write(edited.join("config.json"), r#"{"model":{"d":2,"hidden":0,"blocks":2,"emb_dim":32,"sigma_data":1.0},"steps":2,"batch_size":128,"lr":0.001,"sigma_min":0.01,"sigma_max":50.0,"ema_decay":0.9999,"seed":0,"checkpoint_every":1000,"log_every":100}"#).unwrap();
    assert!(fails(&good, &edited, &["--steps", "2"]).contains("model.hidden"));
    assert!(fails(&dir.join("missing.npy"), &dir.join("r8"), &[]).contains("missing.npy"));
}

/// `xtask lid` on good points writes one column per estimator; bad requests fail cleanly.
#[test]
fn lid_command() {
    let d = tmp("lid");
    let mut csv = String::new();
    for i in 0..120 {
        let (a, b) = ((i as f64 * 0.7).sin(), (i as f64 * 1.3).cos());
        csv.push_str(&format!("{a},{b},{},0\n", a * b));
    }
    let data = d.join("points.csv");
    std::fs::write(&data, csv).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["lid", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(d.join("out"))
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&["--k", "10", "--twonn-neighbors", "30"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let table = std::fs::read_to_string(d.join("out/lid.csv")).unwrap();
    assert_eq!(table.lines().next(), Some("mle,twonn"));
    assert_eq!(table.lines().count(), 121);
    assert!(d.join("out/lid.npy").exists() && d.join("out/summary.json").exists());
    for (args, says) in [
        (&["--estimator", "flipd"][..], "needs --run-dir"),
        (&["--k", "1"][..], "k"),
        (&["--k", "500"][..], "k"),
        (&["--run-dir", "/nonexistent/run", "--estimator", "nb"][..], "run directory"),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked") && out.status.code() != Some(101), "{args:?} panicked: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn image_data_errors_are_clear() {
    let run = |spec: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["reproduce", "image-dimension", "--out"])
            .arg(tmp("imgdim"))
            .args(["--image-data", spec])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{spec} must fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run("svhn:/tmp").contains("unknown image data 'svhn'"));
    assert!(run("mnist").contains("KIND:DIR"));
    let empty = tmp("imgdim-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = run(&format!("mnist:{}", empty.display()));
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    assert!(run(&format!("cifar10:{}", empty.display())).contains("data_batch_1.bin"));
}
