//! A sweep split into shards, run in any order, gives the results of one unsharded run; a
//! finished job is not run again; `aggregate` joins the shards.
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = r#"
name = "tiny"
sizes = [3, 6]
seeds = 2
snapshots = [20, 40]
lr = 3e-3
times = [0.1]
samples = 4
sample_steps = 5
heldout = 3

[[variants]]
label = "1+2"
d = 6
blocks = [[1, 1.0], [2, 0.3]]
"#;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn xtask(args: &[&str], out: &Path) {
    xtask_env(args, out, &[]);
}

fn xtask_env(args: &[&str], out: &Path, env: &[(&str, &str)]) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(args).arg("--out").arg(out);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Every job's snapshots (the measured numbers, without the wall time).
fn results(out: &Path) -> Vec<(String, serde_json::Value)> {
    let mut v: Vec<_> = std::fs::read_dir(out.join("tiny/jobs"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let j: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p.join("result.json")).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), j["snapshots"].clone())
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Whether `xtask run spec` fails with `needle` in its error.
fn refused(spec: &Path, out: &Path, needle: &str) -> bool {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run", spec.to_str().unwrap()])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    !o.status.success() && String::from_utf8_lossy(&o.stderr).contains(needle)
}

#[test]
fn shards_in_any_order_equal_one_run() {
    let root = tmp("shards");
    let spec = root.join("tiny.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let s = spec.to_str().unwrap();
    let (one, split) = (root.join("one"), root.join("split"));
    xtask(&["run", s, "--workers", "2"], &one);
    // Shard 1 of 2 as the second task of a SLURM array 4-5 (`--shard auto`), then shard 0.
    let slurm = [("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_COUNT", "2")];
    xtask_env(&["run", s, "--shard", "auto", "--workers", "1"], &split, &slurm);
    let names: Vec<String> = results(&split).into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["1_2_N3_s1", "1_2_N6_s1"], "shard 1/2 runs jobs 1 and 3 of 4");
    xtask(&["run", s, "--shard", "0/2", "--workers", "1"], &split);
    xtask(&["aggregate", s], &split);
    let (a, b) = (results(&one), results(&split));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    // The aggregate tables agree too (runs.csv without its wall-time column).
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("tiny/runs.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(strip(&one), strip(&split));
    // A split batch is another run: its own numbers, the same in one run and in shards.
    let spec2 = root.join("tiny2.toml");
    std::fs::write(&spec2, SPEC.replace("lr = 3e-3", "lr = 3e-3\nbatch_split = 2")).unwrap();
    let (two, two_split) = (root.join("two"), root.join("two-split"));
    xtask(&["run", spec2.to_str().unwrap(), "--workers", "2"], &two);
    xtask(&["run", spec2.to_str().unwrap(), "--shard", "1/2", "--workers", "1"], &two_split);
    xtask(&["run", spec2.to_str().unwrap(), "--shard", "0/2", "--workers", "1"], &two_split);
    assert_eq!(results(&two), results(&two_split));
    assert_ne!(results(&two), a, "batch_split = 2 gave the numbers of the plain step");
    // A finished job is skipped: running again leaves its result untouched.
    let r = split.join("tiny/jobs/1_2_N3_s0/result.json");
    let before = std::fs::metadata(&r).unwrap().modified().unwrap();
    xtask(&["run", s, "--shard", "0/2"], &split);
    assert_eq!(std::fs::metadata(&r).unwrap().modified().unwrap(), before);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_specs_and_shards_fail_cleanly() {
    let root = tmp("bad");
    let spec = root.join("bad.toml");
    std::fs::write(&spec, SPEC.replace("snapshots = [20, 40]", "snapshots = [40, 20]")).unwrap();
    for args in [vec!["run", spec.to_str().unwrap()], vec!["run", "missing.toml"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_xtask")).args(&args).arg("--out").arg(&root).output().unwrap();
        assert!(!o.status.success() && o.status.code() != Some(101), "{args:?}");
    }
    // A misspelt key is an error, not a silently ignored setting.
    std::fs::write(&spec, SPEC.replace("snapshots = [20, 40]", "snapshots = [20, 40]\nflipd_time = [0.01]")).unwrap();
    assert!(refused(&spec, &root, "flipd_time"), "unknown key accepted");
    std::fs::write(&spec, SPEC.replace("lr = 3e-3", "lr = 3e-3\nbatch_split = 0")).unwrap();
    assert!(refused(&spec, &root, "batch_split"), "batch_split = 0 accepted");
    std::fs::write(&spec, SPEC).unwrap();
    for shard in ["2/2", "x", "auto"] {
        let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["run", spec.to_str().unwrap(), "--shard", shard])
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert!(!o.status.success() && o.status.code() != Some(101), "--shard {shard}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// A variant of the authors' data (noise off the manifold, samples on the unit sphere) runs
/// and records signed spectra: the empirical score's Jacobian is symmetric, so its |signed
/// eigenvalues| are its singular values; the authors' procedure returns `d` values.
#[test]
fn sphere_variant_records_signed_spectra() {
    let root = tmp("sphere");
    let spec = root.join("tiny.toml");
    let text = SPEC.replace("seeds = 2", "seeds = 1").replace("sizes = [3, 6]", "sizes = [6]").replace(
        "blocks = [[1, 1.0], [2, 0.3]]",
        "blocks = [[1, 1.0], [2, 0.09]]\noff_variance = 1e-4\nsphere = true\nmarks = [3, 4, 5]",
    );
    std::fs::write(&spec, &text).unwrap();
    xtask(&["run", spec.to_str().unwrap(), "--workers", "1"], &root);
    let (_, snaps) = results(&root).pop().unwrap();
    let points = snaps.as_array().unwrap().last().unwrap()["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 3);
    let vec = |p: &serde_json::Value, k: &str| -> Vec<f64> {
        p[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    for p in &points {
        let (sv, signed) = (vec(p, "empirical"), vec(p, "empirical_signed"));
        assert_eq!((sv.len(), signed.len(), vec(p, "net_signed").len(), vec(p, "net_authors").len()), (6, 6, 6, 6));
        for (a, b) in sv.iter().zip(&signed) {
            assert!((a - b.abs()).abs() <= 1e-8 * a.max(1.0), "{sv:?} vs {signed:?}");
        }
        assert_eq!(p["weights"].as_array().unwrap().len(), 3, "one weight row per mark");
    }
    // Marks outside 1..d are refused.
    std::fs::write(&spec, text.replace("marks = [3, 4, 5]", "marks = [6]")).unwrap();
    assert!(refused(&spec, &root, "marks"), "mark 6 of d = 6 accepted");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A user's sweep with `green_times` gets the green-gap analysis of its final nets at those
/// times (plus t = 0.02 and 0.05), as `reproduce green-nets` does for the shipped one; a
/// sharded run leaves it out (it needs every net); a bad grid is refused.
#[test]
fn green_times_run_the_green_gap_analysis() {
    let root = tmp("green");
    let spec = root.join("tiny.toml");
    let text = SPEC
        .replace("seeds = 2", "seeds = 1")
        .replace("d = 6", "d = 30")
        .replace("heldout = 3", "heldout = 6\ngreen_times = { from = 1e-2, to = 0.1, points = 3 }")
        .replace("blocks = [[1, 1.0], [2, 0.3]]", "blocks = [[2, 1.0], [5, 0.3]]\nmarks = [23, 24, 25, 28, 29]")
        + "\n[[variants]]\nlabel = \"control\"\nd = 30\nblocks = [[2, 0.5], [5, 0.5]]\nmarks = [23, 24, 25, 28, 29]\n";
    std::fs::write(&spec, &text).unwrap();
    let s = spec.to_str().unwrap();
    let sharded = root.join("sharded");
    xtask(&["run", s, "--shard", "0/1", "--workers", "1"], &sharded);
    assert!(!sharded.join("tiny/green").exists(), "a sharded run measured the nets");
    xtask(&["run", s, "--workers", "1"], &root);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tiny/green/config.json")).unwrap()).unwrap();
    let times: Vec<f64> = cfg["times"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    let want = [0.01, 0.02, 10f64.powf(-1.5), 0.05, 0.1];
    assert_eq!(times.len(), want.len(), "{times:?}");
    for (t, w) in times.iter().zip(want) {
        assert!((t / w - 1.0).abs() < 1e-12, "{times:?}");
    }
    assert!(root.join("tiny/green/table.md").exists());
    std::fs::write(&spec, text.replace("points = 3", "points = 0")).unwrap();
    assert!(refused(&spec, &root, "green_times"), "an empty time grid accepted");
    std::fs::remove_dir_all(&root).unwrap();
}
