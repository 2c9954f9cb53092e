//! Tests of the score network, training, checkpoints, export and sampling (CPU backend).
use burn::backend::{Autodiff, Flex};
use faer::Mat;
use geomem_data::{Block, Embedding, LinearManifold};
use geomem_nets::*;
use geomem_score::{GaussianScore, ScoreField, ScoreFieldExt};
use geomem_spectral::{spectrum, SpectrumParams};
use std::ops::ControlFlow;
use std::path::PathBuf;

mod common;

type B = Autodiff<Flex>;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("geomem-nets-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn gaussian_data(var: &[f64], n: usize, seed: u64) -> Mat<f64> {
    let blocks: Vec<Block> = var.iter().map(|&v| Block { dim: 1, variance: v }).collect();
    LinearManifold::new(var.len(), &blocks, Embedding::Aligned).unwrap().sample(n, seed)
}

fn cfg(d: usize, steps: u64) -> TrainConfig {
    TrainConfig::new(ResidualMlpConfig::new(d).with_hidden(64))
        .with_steps(steps)
        .with_log_every(10)
        .with_checkpoint_every(0)
        .with_sigma_max(10.0)
}

fn params(m: &ResidualMlp<impl burn::tensor::backend::Backend>) -> Vec<(String, Vec<f32>)> {
    named_parameters(m).unwrap().into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// Largest absolute difference between the parameters of two networks (0 when identical).
fn max_diff(
    a: &ResidualMlp<impl burn::tensor::backend::Backend>,
    b: &ResidualMlp<impl burn::tensor::backend::Backend>,
) -> f32 {
    params(a)
        .iter()
        .zip(params(b))
        .flat_map(|((ka, va), (kb, vb))| {
            assert_eq!(ka, &kb);
            va.iter().zip(vb).map(|(x, y)| (x - y).abs()).collect::<Vec<_>>()
        })
        .fold(0.0, f32::max)
}

#[test]
fn short_training_lowers_the_loss() {
    let data = gaussian_data(&[1.0, 0.3, 0.1, 0.0], 2000, 1);
    let mut rows = Vec::new();
    train::<B>(data.as_ref(), &cfg(4, 400), None, &dev(), &mut |r| {
        rows.push(*r);
        ControlFlow::Continue(())
    })
    .unwrap();
    let first: f64 = rows[..3].iter().map(|r| r.loss).sum::<f64>() / 3.0;
    let last: f64 = rows[rows.len() - 3..].iter().map(|r| r.loss).sum::<f64>() / 3.0;
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    assert!(rows.iter().all(|r| r.loss.is_finite() && r.steps_per_sec > 0.0));
}

/// A net trained on Gaussian data approaches the exact Jacobian spectrum 1/(t + σ²): every
/// singular value within 25 % at t = 0.5, which the untrained net misses.
#[test]
fn trained_spectrum_approaches_exact_on_gaussian_data() {
    let var = [1.0, 0.3, 0.0];
    let data = gaussian_data(&var, 4000, 2);
    let c = cfg(3, 2500).with_lr(2e-3).with_ema_decay(0.99);
    let state = train::<B>(data.as_ref(), &c, None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let t = 0.5;
    let exact = GaussianScore::from_variances(&var).unwrap().spectrum(t).unwrap();
    let err = |f: &dyn ScoreField| {
        let s = spectrum(f, &[0.0; 3], t, &SpectrumParams::improved_normal_bundle(3)).unwrap().into_values();
        s.iter().zip(&exact).map(|(a, b)| (a / b - 1.0).abs()).fold(0.0, f64::max)
    };
    let trained = TrainedScore::<B>::new(state.ema, dev());
    let untrained = TrainedScore::<B>::new(TrainState::<B>::new(&c.clone().with_seed(9), &dev()).unwrap().ema, dev());
    let (et, eu) = (err(&trained), err(&untrained));
    assert!(et < 0.25, "trained max rel. error {et}");
    assert!(eu > 0.25, "untrained max rel. error {eu}");
}

#[test]
fn checkpoint_round_trip() {
    let data = gaussian_data(&[1.0, 0.5], 100, 3);
    let c = cfg(2, 15);
    let state = train::<B>(data.as_ref(), &c, None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let bytes = encode_checkpoint(&state, &c).unwrap();
    let back = decode_checkpoint::<B>(std::path::Path::new("mem"), &bytes, &c, &dev()).unwrap();
    assert_eq!(back.step, 15);
    assert_eq!(max_diff(&back.model, &state.model), 0.0);
    assert_eq!(max_diff(&back.ema, &state.ema), 0.0);
    // Another run's settings are refused.
    assert!(matches!(
        decode_checkpoint::<B>(std::path::Path::new("mem"), &bytes, &c.clone().with_seed(5), &dev()),
        Err(NetsError::CorruptCheckpoint { .. })
    ));
}

/// A run stopped mid-way (no checkpoint after the last periodic one, as after kill -9) and
/// resumed ends with exactly the weights of a run that never stopped.
#[test]
fn resume_after_interruption_gives_identical_weights() {
    let data = gaussian_data(&[1.0, 0.3, 0.0], 500, 4);
    let c = cfg(3, 40).with_checkpoint_every(10).with_log_every(5);
    let straight_dir = tmpdir("straight");
    let straight =
        train::<B>(data.as_ref(), &c, Some(&straight_dir), &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let dir = tmpdir("interrupted");
    let stopped = train::<B>(data.as_ref(), &c, Some(&dir), &dev(), &mut |r| {
        if r.step >= 25 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(stopped.step, 25);
    // A half-written temporary file from the crash must not matter.
    std::fs::write(dir.join("checkpoint.bin.tmp"), b"partial").unwrap();
    let resumed = train::<B>(data.as_ref(), &c, Some(&dir), &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(resumed.step, 40);
    assert_eq!(max_diff(&resumed.model, &straight.model), 0.0, "weights differ");
    assert_eq!(max_diff(&resumed.ema, &straight.ema), 0.0, "EMA weights differ");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let steps: Vec<u64> = metrics.lines().skip(1).map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(steps, (1..=8).map(|k| 5 * k).collect::<Vec<_>>(), "no duplicated rows after resume");
    // The metrics (all but the speed column) equal the uninterrupted run's: the smoothed loss
    // continues across the interruption.
    let columns = |p: PathBuf| -> Vec<String> {
        let t = std::fs::read_to_string(p).unwrap();
        t.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(columns(dir.join("metrics.csv")), columns(straight_dir.join("metrics.csv")));
    assert!(dir.join("config.json").exists());
}

/// Decoding a checkpoint and continuing equals continuing the original state.
#[test]
fn decoded_state_continues_like_the_original() {
    let data = gaussian_data(&[1.0, 0.3], 200, 4);
    let c = cfg(2, 10);
    let a = train::<B>(data.as_ref(), &c, None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let bytes = encode_checkpoint(&a, &c).unwrap();
    let b = decode_checkpoint::<B>(std::path::Path::new("mem"), &bytes, &c, &dev()).unwrap();
    let dir_a = tmpdir("cont-a");
    let dir_b = tmpdir("cont-b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    save_checkpoint(&dir_a.join(CHECKPOINT_FILE), &a, &c).unwrap();
    save_checkpoint(&dir_b.join(CHECKPOINT_FILE), &b, &c).unwrap();
    let c2 = c.clone().with_steps(20);
    let a2 = train::<B>(data.as_ref(), &c2, Some(&dir_a), &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let b2 = train::<B>(data.as_ref(), &c2, Some(&dir_b), &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(
        max_diff(&a2.model, &b2.model),
        0.0,
        "two resumptions of the same checkpoint differ: kernels are not deterministic"
    );
}

#[test]
fn corrupt_checkpoints_are_rejected() {
    let data = gaussian_data(&[1.0, 0.3], 100, 5);
    let c = cfg(2, 10).with_checkpoint_every(5);
    let dir = tmpdir("corrupt");
    train::<B>(data.as_ref(), &c, Some(&dir), &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let ck = dir.join(CHECKPOINT_FILE);
    let good = std::fs::read(&ck).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(&ck, &flipped).unwrap();
    assert!(matches!(load_checkpoint::<B>(&ck, &c, &dev()), Err(NetsError::CorruptCheckpoint { .. })));
    // Training on a corrupt checkpoint is an error, not a silent restart.
    assert!(matches!(
        train::<B>(data.as_ref(), &c.clone().with_steps(20), Some(&dir), &dev(), &mut |_| ControlFlow::Continue(())),
        Err(NetsError::CorruptCheckpoint { .. })
    ));
    std::fs::write(&ck, &good[..good.len() / 3]).unwrap();
    assert!(matches!(load_checkpoint::<B>(&ck, &c, &dev()), Err(NetsError::CorruptCheckpoint { .. })));
    std::fs::write(&ck, b"").unwrap();
    assert!(matches!(load_checkpoint::<B>(&ck, &c, &dev()), Err(NetsError::CorruptCheckpoint { .. })));
    assert!(matches!(load_checkpoint::<B>(&dir.join("missing.bin"), &c, &dev()), Err(NetsError::Io { .. })));
}

#[test]
fn bad_settings_and_data_get_errors() {
    let data = gaussian_data(&[1.0, 0.3], 10, 6);
    let run =
        |c: &TrainConfig, d: &Mat<f64>| train::<B>(d.as_ref(), c, None, &dev(), &mut |_| ControlFlow::Continue(()));
    assert!(matches!(run(&cfg(3, 1), &data), Err(NetsError::Data(_))));
    assert!(matches!(run(&cfg(2, 1), &Mat::zeros(0, 2)), Err(NetsError::Data(_))));
    assert!(matches!(run(&cfg(2, 1).with_lr(-1.0), &data), Err(NetsError::InvalidParameter { .. })));
    assert!(matches!(run(&cfg(2, 1).with_sigma_min(0.0), &data), Err(NetsError::InvalidParameter { .. })));
    let mut nan = data.clone();
    nan[(0, 0)] = f64::NAN;
    assert!(matches!(run(&cfg(2, 1), &nan), Err(NetsError::Data(_))));
}

#[test]
fn trained_score_is_a_batched_score_field() {
    let c = cfg(3, 1);
    let f = TrainedScore::<B>::new(TrainState::<B>::new(&c, &dev()).unwrap().ema, dev());
    let x = Mat::from_fn(5000, 3, |i, j| ((i * 3 + j) % 17) as f64 / 17.0 - 0.5);
    let s = f.score_batch(x.as_ref(), 0.3).unwrap();
    for i in [0usize, 4097, 4999] {
        let si = f.score(&[x[(i, 0)], x[(i, 1)], x[(i, 2)]], 0.3).unwrap();
        for j in 0..3 {
            assert!((si[j] - s[(i, j)]).abs() < 1e-6 * (1.0 + si[j].abs()));
        }
    }
    assert!(f.score(&[0.0; 2], 0.3).is_err());
    assert!(f.score(&[0.0; 3], 0.0).is_err());
}

/// The faer copy of a trained net computes the same scores as the burn network.
#[test]
fn host_copy_matches_the_network() {
    let data = gaussian_data(&[1.0, 0.3, 0.1], 300, 10);
    let state = train::<B>(data.as_ref(), &cfg(3, 50), None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let net = TrainedScore::<B>::new(state.ema.clone(), dev());
    let host = HostMlp::from_model(&state.ema).unwrap();
    let x = Mat::from_fn(2500, 3, |i, j| ((i * 5 + j) % 23) as f64 / 5.0 - 2.3);
    for &t in &[1e-4, 0.3, 20.0] {
        let a = net.score_batch(x.as_ref(), t).unwrap();
        let b = host.score_batch(x.as_ref(), t).unwrap();
        let scale = (0..2500).map(|i| a[(i, 0)].abs()).fold(0.0, f64::max);
        for i in 0..2500 {
            for j in 0..3 {
                assert!(
                    (a[(i, j)] - b[(i, j)]).abs() < 1e-4 * scale,
                    "t={t} ({i},{j}): {} vs {}",
                    a[(i, j)],
                    b[(i, j)]
                );
            }
        }
    }
    assert!(host.score(&[0.0; 2], 0.1).is_err());
}

/// The faer copy's numbers do not depend on the number of threads (blocks of rows, each
/// block's products on one thread): one thread and two give the same bits, on a batch that
/// is not a multiple of the block.
#[test]
fn host_copy_is_the_same_on_one_thread_and_two() {
    let data = gaussian_data(&[1.0, 0.3, 0.1], 300, 12);
    let state = train::<B>(data.as_ref(), &cfg(3, 20), None, &dev(), &mut |_| ControlFlow::Continue(())).unwrap();
    let host = HostMlp::from_model(&state.ema).unwrap();
    let x = Mat::from_fn(1000, 3, |i, j| ((i * 3 + j * 5) % 17) as f64 / 4.0 - 2.0);
    let one = common::on_threads(1, || host.score_batch(x.as_ref(), 0.2).unwrap());
    let two = common::on_threads(2, || host.score_batch(x.as_ref(), 0.2).unwrap());
    assert!((0..1000).all(|i| (0..3).all(|j| one[(i, j)].to_bits() == two[(i, j)].to_bits())));
}

#[test]
fn safetensors_export_in_torch_layout() {
    let c = cfg(3, 1);
    let m = TrainState::<B>::new(&c, &dev()).unwrap().ema;
    let p = tmpdir("st").with_extension("safetensors");
    save_safetensors(&m, &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    assert_eq!(header["input.weight"]["shape"], serde_json::json!([64, 3 + 32]));
    assert_eq!(header["blocks.1.l2.bias"]["shape"], serde_json::json!([64]));
    assert_eq!(header["output.weight"]["shape"], serde_json::json!([3, 64]));
    // Transposition: element [o, i] of the file is element [i, o] of burn's weight.
    let named = named_parameters(&m).unwrap();
    let (shape, data) = &named["output.weight"];
    let off = header["output.weight"]["data_offsets"][0].as_u64().unwrap() as usize + 8 + hlen;
    let at = |k: usize| f32::from_le_bytes(bytes[off + 4 * k..off + 4 * k + 4].try_into().unwrap());
    assert_eq!(shape, &vec![3, 64]);
    assert_eq!(at(64 + 5), data[64 + 5]);
    let w = m.output.weight.val().into_data().to_vec::<f32>().unwrap(); // burn: [64, 3]
    assert_eq!(at(64 + 5), w[5 * 3 + 1]);
}

#[test]
fn samplers_reproduce_a_gaussian() {
    let var = [1.0, 0.2];
    let g = GaussianScore::from_variances(&var).unwrap();
    for sampler in [Sampler::ReverseSde, Sampler::ProbabilityFlow] {
        let p = SamplingParams::default().sampler(sampler).steps(400).sigma_range(0.01, 20.0).seed(3);
        let x = sample(&g, 4000, &p).unwrap();
        for (j, v) in var.iter().enumerate() {
            let m2 = (0..4000).map(|i| x[(i, j)].powi(2)).sum::<f64>() / 4000.0;
            assert!((m2 / (v + 1e-4) - 1.0).abs() < 0.1, "{sampler:?} coordinate {j}: {m2}");
        }
    }
    assert!(sample(&g, 1, &SamplingParams::default().steps(0)).is_err());
}

/// A split batch gives the same weights bit for bit on 1 and on 4 threads, resumes after an
/// interruption to the weights of a run that never stopped, and refuses to resume a run
/// made with another split.
#[test]
fn split_batches_are_deterministic_and_resumable() {
    let data = gaussian_data(&[1.0, 0.3, 0.0], 300, 8);
    let c = cfg(3, 30).with_batch_size(50).with_batch_split(3).with_checkpoint_every(10);
    let run_on = |threads: usize, dir: Option<&std::path::Path>, stop: u64| {
        let mut seen = Vec::new();
        let state = common::on_threads(threads, || {
            train::<B>(data.as_ref(), &c, dir, &dev(), &mut common::stop_at(stop, &mut seen)).unwrap()
        });
        (state, seen)
    };
    let (one, _) = run_on(1, None, u64::MAX);
    let (four, _) = run_on(4, None, u64::MAX);
    assert_eq!(one.step, 30);
    assert_eq!(max_diff(&one.model, &four.model), 0.0, "weights depend on the thread count");
    assert_eq!(max_diff(&one.ema, &four.ema), 0.0);
    // The split changes the rounding, not the run: another run, but close to the plain one.
    let plain =
        train::<B>(data.as_ref(), &c.clone().with_batch_split(1), None, &dev(), &mut |_| ControlFlow::Continue(()))
            .unwrap();
    assert!(max_diff(&one.model, &plain.model) > 0.0);
    let dir = tmpdir("split-resume");
    assert_eq!(run_on(2, Some(&dir), 20).0.step, 20);
    let (resumed, seen) = run_on(2, Some(&dir), u64::MAX);
    assert_eq!(seen, [30], "the second run did not start from the checkpoint of step 20");
    assert_eq!(max_diff(&resumed.model, &one.model), 0.0, "resumed split run differs");
    assert_eq!(max_diff(&resumed.ema, &one.ema), 0.0);
    let other = c.clone().with_batch_split(2).with_steps(40);
    assert!(matches!(
        train::<B>(data.as_ref(), &other, Some(&dir), &dev(), &mut |_| ControlFlow::Continue(())),
        Err(NetsError::CorruptCheckpoint { .. })
    ));
}

#[test]
fn batch_split_is_checked_and_defaults_to_one() {
    let data = gaussian_data(&[1.0, 0.3], 10, 6);
    let run = |c: &TrainConfig| train::<B>(data.as_ref(), c, None, &dev(), &mut |_| ControlFlow::Continue(()));
    let c = cfg(2, 1).with_batch_size(8);
    assert!(matches!(run(&c.clone().with_batch_split(0)), Err(NetsError::InvalidParameter { .. })));
    assert!(matches!(run(&c.clone().with_batch_split(9)), Err(NetsError::InvalidParameter { .. })));
    assert!(run(&c.clone().with_batch_split(8)).is_ok());
    // A config.json written before the setting existed (and before the loop settings were
    // nested as `run`: flat keys) reads as the plain step, every other setting kept.
    let mut json: serde_json::Value = serde_json::to_value(c.clone().with_batch_split(4)).unwrap();
    let obj = json.as_object_mut().unwrap();
    let run = obj.remove("run").unwrap();
    obj.extend(run.as_object().unwrap().clone());
    obj.remove("batch_split");
    let path = tmpdir("old-config").join("config.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, json.to_string()).unwrap();
    assert_eq!(TrainConfig::read(&path).unwrap(), c.clone().with_batch_split(1));
}
