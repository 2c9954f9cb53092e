//! A training run killed with SIGKILL at an arbitrary moment and restarted ends with exactly
//! the weights of a run that was never interrupted (`geomem train`, CPU backend).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn geomem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_geomem"))
}

fn train(data: &Path, dir: &Path) -> Command {
    let mut c = geomem();
    c.args([
        "train",
        "--steps",
        "1500",
        "--hidden",
        "32",
        "--checkpoint-every",
        "100",
        "--log-every",
        "50",
        "--ema-decay",
        "0.99",
    ]);
    c.arg("--data").arg(data).arg("--run-dir").arg(dir);
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn sigkill_then_resume_gives_identical_weights() {
    let root = tmp("kill");
    std::fs::create_dir_all(&root).unwrap();
    let data = root.join("data.csv");
    let rows: Vec<String> =
        (0..300).map(|i| format!("{},{},{}", (i as f64 * 0.37).sin(), (i as f64 * 0.11).cos() * 0.5, 0.0)).collect();
    std::fs::write(&data, rows.join("\n")).unwrap();

    let straight = root.join("straight");
    assert!(train(&data, &straight).status().unwrap().success());

    let killed = root.join("killed");
    let mut child = train(&data, &killed).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Wait until at least one checkpoint exists, then SIGKILL mid-run.
    let ck = killed.join("checkpoint.bin");
    for _ in 0..600 {
        if ck.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    let finished_anyway = status.success();
    assert!(ck.exists(), "no checkpoint was written before the kill");
    assert!(train(&data, &killed).status().unwrap().success(), "resume failed");

    let a = std::fs::read(straight.join("ema.safetensors")).unwrap();
    let b = std::fs::read(killed.join("ema.safetensors")).unwrap();
    // Byte-identical EMA weights (the checkpoint files themselves may differ in the order
    // burn serialises its optimizer map, so they are not compared byte for byte).
    assert!(a == b, "EMA weights differ after kill and resume (run had finished before the kill: {finished_anyway})");
    assert!(!finished_anyway, "the run finished before the kill; the test did not interrupt it");
}

#[test]
fn corrupt_checkpoint_is_reported_not_restarted() {
    let root = tmp("corrupt");
    std::fs::create_dir_all(&root).unwrap();
    let data = root.join("data.csv");
    std::fs::write(&data, "0.1,0.2\n0.3,-0.1\n-0.2,0.5\n").unwrap();
    let dir = root.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("checkpoint.bin"), b"GEOMEMCK garbage that is not a checkpoint").unwrap();
    let out = train(&data, &dir).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt checkpoint"), "stderr: {err}");
}
