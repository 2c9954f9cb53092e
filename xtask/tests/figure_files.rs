//! Network-free figures as TOML files: `cargo xtask run my.toml` runs a user's own settings
//! and gives the same numbers as `reproduce` for the shipped ones; bad files are clear errors.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-fig-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().unwrap()
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// The shipped quick file of Fig. 13 run by `xtask run` writes the same CSV as `reproduce
/// fig13`; a user's edit (other sizes) changes it, and the resolved settings are saved.
#[test]
fn run_takes_a_figure_file_and_matches_reproduce() {
    let (a, b, c) = (tmp("reproduce"), tmp("run"), tmp("edited"));
    let out = xtask(&["reproduce", "fig13", "--out", a.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = repo("experiments/figures/fig13.toml");
    let out = xtask(&["run", file.to_str().unwrap(), "--out", b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gaps = |d: &Path| std::fs::read_to_string(d.join("fig13/gaps.csv")).unwrap();
    assert_eq!(gaps(&a), gaps(&b));
    let saved = std::fs::read_to_string(b.join("fig13/settings.toml")).unwrap();
    assert!(saved.contains("figure = \"spectra-size\"") && saved.contains("source = \"closed-form\""), "{saved}");
    let edited =
        std::fs::read_to_string(&file).unwrap().replace("sizes = [100, 300, 1000, 3000, 10000]", "sizes = [50, 500]");
    let mine = c.join("mine.toml");
    std::fs::write(&mine, edited).unwrap();
    let out = xtask(&["run", mine.to_str().unwrap(), "--out", c.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g = gaps(&c);
    assert!(g.contains(",50,") && g.contains(",500,") && !g.contains(",10000,"), "{g}");
}

/// Unknown keys, bad values and an unknown kind fail with a message naming the problem.
#[test]
fn bad_figure_files_are_clear_errors() {
    let d = tmp("bad");
    let base = std::fs::read_to_string(repo("experiments/figures/fig9.toml")).unwrap();
    let cases = [
        (base.replace("realizations = 5", "realizations = 5\ncolour = \"red\""), "colour"),
        (base.replace("sizes = [100, 300, 1000, 3000, 10000]", "sizes = [300, 100]"), "sizes must increase"),
        (base.replace("high = [2, 1.0]", "high = [40, 1.0]"), "setup"),
        (base.replace("times = [0.005, 0.02, 0.08, 0.3]", "times = [0.0]"), "times"),
        (base.replace("\"spectra-size\"", "\"spectra-sideways\""), "spectra-sideways"),
    ];
    let image = std::fs::read_to_string(repo("experiments/figures/image_dimension.toml")).unwrap();
    let cases = cases.into_iter().chain([
        (image.replace("batch = 64", "batch = 64\nbatch_split = 0"), "batch_split"),
        (image.replace("batch = 64", "batch = 64\nbatch_split = 65"), "batch_split"),
        (image.replace("batch = 64", "batch = 64\nparallel_batches = 0"), "parallel_batches"),
    ]);
    for (i, (text, want)) in cases.enumerate() {
        let f = d.join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let out = xtask(&["run", f.to_str().unwrap(), "--out", d.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} succeeded");
        assert!(!err.contains("panicked"), "case {i} panicked: {err}");
        assert!(err.contains(want), "case {i}: {err}");
    }
}

/// The image figure with `checkpoint_every`: each size trains in its own run directory, a
/// run stopped at step 20 (here: a first command with `steps = 20`) and continued to 40
/// gives the spectra and dimensions of a straight 40-step run (not its `final_loss`, the
/// smoothed loss of the logged rows: the shorter first command logs one more row, at its
/// end), and a finished run is not trained again and gives the same numbers.
#[test]
fn image_figure_resumes_from_its_run_directories() {
    let d = tmp("image-resume");
    let base = std::fs::read_to_string(repo("experiments/figures/image_dimension.toml"))
        .unwrap()
        .replace("sizes = [2, 16, 128, 1700]", "sizes = [2, 16]")
        .replace("points = 6", "points = 2")
        .replace("steps = 1500", "steps = 40\ncheckpoint_every = 20\nlog_every = 20");
    let run = |text: &str, out: &Path| {
        let f = out.join("settings_in.toml");
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(&f, text).unwrap();
        let o = xtask(&["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out.join("image_dimension/dimension.csv")).unwrap()
    };
    let straight = run(&base, &d.join("straight"));
    // Each size has the exact Jacobian's readings beside the Normal Bundle's, at training and
    // held-out digits (`jacobian_spectra`, on by default).
    for n in ["2", "16"] {
        for points in ["train", "held-out"] {
            let row = format!("{n},0,{points},exact jacobian,");
            assert!(straight.lines().any(|l| l.starts_with(&row)), "no row {row} in {straight}");
        }
    }
    let resumed_dir = d.join("resumed");
    run(&base.replace("steps = 40", "steps = 20"), &resumed_dir);
    let ck = resumed_dir.join("image_dimension/runs/N16_s0/checkpoint.bin");
    assert!(ck.exists(), "no run directory");
    let resumed = run(&base, &resumed_dir);
    assert_eq!(resumed, straight, "stopped at 20 and resumed differs from straight");
    // The same sizes as two shards (a SLURM array of 2): the first leaves a size without a
    // result and draws nothing, the second completes the set and draws the same figure.
    let sharded = d.join("sharded");
    let f = sharded.join("settings_in.toml");
    std::fs::create_dir_all(&sharded).unwrap();
    std::fs::write(&f, &base).unwrap();
    let shard = |s: &str| xtask(&["run", f.to_str().unwrap(), "--out", sharded.to_str().unwrap(), "--shard", s]);
    let o = shard("0/2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 of 2 sizes still without a result"));
    assert!(!sharded.join("image_dimension/dimension.csv").exists());
    assert!(shard("1/2").status.success());
    let csv = std::fs::read_to_string(sharded.join("image_dimension/dimension.csv")).unwrap();
    assert_eq!(csv, straight, "two shards differ from one run");
    // The run directory kept the first command's row (step 20) and added the second's (40):
    // the second command resumed; it did not train again from step 0.
    let metrics_path = resumed_dir.join("image_dimension/runs/N16_s0/metrics.csv");
    let before = std::fs::read_to_string(&metrics_path).unwrap();
    let steps: Vec<&str> = before.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["20", "40"], "{before}");
    assert_eq!(run(&base, &resumed_dir), straight, "a finished run gave other numbers");
    let after = std::fs::read_to_string(&metrics_path).unwrap();
    assert_eq!(before, after, "a finished run was trained again");
    // The library opens the figure's U-Net run directory (as `geomem lid --run-dir` does):
    // FLIPD and the NB dimension of 6 digits at the schedule's step nearest to the asked t0.
    use geomem_lid::{Flipd, NormalBundleLid, PointwiseLid};
    type B = burn::backend::Autodiff<burn::backend::Flex>;
    let digits = geomem_data::ImageSet::digits().unwrap().rows(&[0, 1, 2, 3, 4, 5]).unwrap();
    let run_dir = geomem_nets::RunDir::open(resumed_dir.join("image_dimension/runs/N16_s0")).unwrap();
    assert_eq!(run_dir.config().kind(), "ddpm");
    assert_eq!(run_dir.metrics().iter().map(|r| r.step).collect::<Vec<_>>(), [20, 40]);
    let t = run_dir.config().field_time(1e-3).unwrap();
    let (_, nearest) = geomem_score::DdpmSchedule::linear(1e-4, 2e-2, 1000).unwrap().nearest_step(1e-3).unwrap();
    assert_eq!(t, nearest, "the U-Net's time is the grid time nearest to t0");
    let field = run_dir.score_field::<B>(&Default::default()).unwrap();
    let flipd = Flipd::new(t).unwrap().estimate(&field, digits.as_ref()).unwrap();
    let nb = NormalBundleLid { field: &field, t, scale: geomem_spectral::GapScale::Log, skip: 0 };
    let nb = nb.lid(digits.as_ref()).unwrap();
    assert!(flipd.len() == 6 && flipd.iter().all(|v| v.is_finite()), "{flipd:?}");
    assert!(nb.iter().all(|v| (0.0..=64.0).contains(v)), "NB dimension outside 0..=d: {nb:?}");
}
