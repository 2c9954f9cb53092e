//! Bad experiment files and image sets reach the user as an error message and a non-zero
//! exit status, never as a panic (the user commands' cases: `crates/geomem-cli/tests/cli.rs`).
use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `xtask run` on a spec file with `text`: a clean failure (exit 1, no panic) whose stderr
/// contains `says`, and nothing written outside the results folder.
fn run_fails(text: &str, says: &str) {
    let dir = tmp("run");
    let spec = dir.join("spec.toml");
    std::fs::write(&spec, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run", spec.to_str().unwrap(), "--out"])
        .arg(dir.join("results"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text} succeeded");
    assert!(!err.contains("panicked") && out.status.code() == Some(1), "{text}: not a clean error: {err}");
    assert!(err.contains(says), "{text}: expected '{says}' in: {err}");
    assert!(!dir.join("escaped").exists(), "{text}: wrote outside the results folder");
}

/// The experiment files of the issue: sizes beyond memory in a figure spec and in a sweep
/// (a size and a dimension), and a name that leaves the results folder, are each one error
/// message, before anything is allocated or written.
#[test]
fn experiment_files_with_impossible_sizes_or_names() {
    let figure = |sizes: &str, name: &str| {
        format!("figure = \"spectra-size\"\nname = \"{name}\"\nsetup = {{ d = 30, high = [2, 1.0], low = [5, 0.3] }}\nsource = \"measured\"\nsizes = {sizes}\ntimes = [0.01]\nrealizations = 1\n")
    };
    run_fails(&figure("[10000000000]", "huge"), "sizes up to 10000000000 of dimension 30 needs");
    run_fails(&figure("[100]", "../escaped"), "one folder name");
    let sweep = |sizes: &str, d: usize, name: &str| {
        format!("name = \"{name}\"\nsizes = {sizes}\nsnapshots = [10]\ntimes = [0.1]\n[[variants]]\nlabel = \"v\"\nd = {d}\nblocks = [[2, 1.0]]\n")
    };
    run_fails(&sweep("[2000000000]", 30, "big"), "(d = 30, sizes up to 2000000000): one job needs");
    run_fails(&sweep("[10]", 30_000_000, "wide"), "(d = 30000000, sizes up to 10): one job needs");
    run_fails(&sweep("[10]", 30, "../escaped"), "one folder name");
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
