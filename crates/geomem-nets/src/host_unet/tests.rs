use super::state::{params, WriteFlat};
use super::train::HostDdpm;
use super::*;
use crate::ddpm::{DdpmState, DdpmTrainConfig, Draw};
use crate::split::mse_and_grads;
use crate::unet::UNet;
use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use ops::Conv;

type B = Autodiff<Flex>;

/// The configurations the tests run: attention at the bottom level (the quick image
/// figure's `smoke`), an odd 7×7 bottom level without attention (`fashion14`'s shape), three
/// levels with two blocks each and RGB.
fn configs() -> Vec<UNetConfig> {
    let c = |size, ch, mults: Vec<usize>, attn: Vec<usize>, blocks| {
        UNetConfig::new(size, ch)
            .with_base(8)
            .with_mults(mults)
            .with_attn_resolutions(attn)
            .with_res_blocks(blocks)
            .with_groups(4)
    };
    // The last, the Fashion-MNIST figure's shape, has 16 channels and more at 14 × 14, where
    // the up path's convolutions take Winograd's F(4×4, 3×3) on AVX-512.
    let fashion = c(14, 1, vec![1, 2], vec![], 1).with_base(16);
    vec![
        c(8, 1, vec![1, 2], vec![4], 1),
        c(14, 1, vec![1, 2], vec![], 1),
        c(8, 3, vec![1, 2, 2], vec![8, 2], 2),
        fashion,
    ]
}

/// A seeded net with `0.05 sin(1.3 i)` added to its `i`-th scalar, so that no layer is
/// zero (the DDPM initialisation zeroes the last conv of every block).
fn net(cfg: &UNetConfig) -> UNet<B> {
    let dev = Default::default();
    let model: UNet<B> = cfg.init_seeded(&dev, 3).unwrap();
    let (_, mut w) = params(&model);
    let mut i = 0f32;
    for v in w.iter_mut().flatten() {
        *v += 0.05 * (1.3 * i).sin();
        i += 1.0;
    }
    model.map(&mut WriteFlat { src: w.iter(), grad: true })
}

fn images(b: usize, d: usize, phase: f32) -> Vec<f32> {
    (0..b * d).map(|i| (i as f32 * 0.37 + phase).sin() * 1.3).collect()
}

fn largest(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

#[test]
fn the_host_forward_pass_is_burns() {
    let dev = Default::default();
    for cfg in configs() {
        let model = net(&cfg);
        let (dims, w) = params(&model);
        let host = HostUNet::new(&cfg, &dims).unwrap();
        let (b, d) = (5, host.dim());
        let (x, steps) = (images(b, d, 0.3), [0.0, 3.0, 99.0, 500.0, 999.0]);
        let xt = Tensor::<B, 4>::from_data(
            TensorData::new(x.clone(), [b, cfg.channels, cfg.image_size, cfg.image_size]),
            &dev,
        );
        let want: Vec<f32> = model.forward(xt, model.embed_steps(&steps, &dev)).into_data().to_vec().unwrap();
        let got = to_rows(&host.forward(&w, &x, &steps).0);
        assert_eq!(got, to_rows(&host.infer(&w, &x, &steps)), "{cfg:?}: the pass without a tape differs");
        // The kernels arranged once (evaluation) give the same bits as arranged per call.
        let with = host.with_kernels(w.clone());
        assert!(with.len() > w.len(), "{cfg:?}: no 3×3 kernel arranged");
        assert_eq!(got, to_rows(&host.infer(&with, &x, &steps)), "{cfg:?}: the arranged kernels differ");
        let scale = largest(&want);
        assert!(scale > 0.1, "{cfg:?}: outputs too small to test ({scale})");
        let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 2e-5 * scale, "{cfg:?}: largest difference {err} of {scale}");
    }
}

/// Every gradient in visiting order, from burn's autodiff.
fn burn_grads(model: &UNet<B>, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Get<'a>(&'a GradientsParams, Vec<Vec<f32>>);
    impl ModuleVisitor<B> for Get<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let g = self.0.get::<Flex, D>(p.id).map(|g| g.into_data().to_vec::<f32>().unwrap());
            self.1.push(g.unwrap_or_else(|| vec![0.0; p.val().shape().num_elements()]));
        }
    }
    let mut g = Get(grads, Vec::new());
    model.visit(&mut g);
    g.1
}

#[test]
fn the_host_gradients_are_burns() {
    let dev = Default::default();
    for cfg in configs() {
        let model = net(&cfg);
        let train = DdpmTrainConfig::new(cfg.clone()).with_batch_size(6);
        let state = DdpmState::<B> { model: model.clone(), ema: model.valid(), optim: train.adam().init(), step: 0 };
        let host = HostDdpm::from_burn(&train, &state).unwrap();
        let d = host.net.dim();
        let data = images(9, d, 1.1);
        let ab: Vec<f64> = (0..1000).map(|k| 1.0 - k as f64 / 1001.0).collect();
        let draw = Draw::new(&data, 9, d, &ab, &train, 4);
        let (hl, hg) = host.loss_and_grads(&draw);
        let shape = [6, cfg.channels, cfg.image_size, cfg.image_size];
        let t = |v: &[f32]| Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), shape), &dev);
        // On a pool of its own: see `the_host_vjps_are_burns`.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (bl, grads) = pool.install(|| {
            let pred = model.forward(t(&draw.xk), model.embed_steps(&draw.steps, &dev));
            let (loss, grads) = mse_and_grads(pred, t(&draw.eps), None);
            (loss.into_scalar(), grads)
        });
        assert!((hl - bl).abs() <= 1e-5 * bl, "{cfg:?}: loss {hl} vs {bl}");
        let bg = burn_grads(&model, &GradientsParams::from_grads(grads, &model));
        assert_eq!(bg.len(), hg.len());
        let scale = bg.iter().map(|g| largest(g)).fold(0f32, f32::max);
        for (i, (h, b)) in hg.iter().zip(&bg).enumerate() {
            let err = h.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 2e-5 * scale, "{cfg:?}: parameter {i} ({} values): error {err} of {scale}", h.len());
            let own = largest(b);
            assert!(own < 1e-6 * scale || err <= 1e-3 * own, "{cfg:?}: parameter {i}: error {err} of its {own}");
        }
        // A few parameters have no gradient (the attention keys' biases: softmax ignores a
        // shift shared by one query's logits); nearly all have one to compare.
        let flat = bg.iter().filter(|g| largest(g) <= 1e-6 * scale).count();
        assert!(flat <= bg.len() / 10, "{cfg:?}: {flat} of {} parameters without a gradient", bg.len());
    }
}

#[test]
fn a_misplaced_parameter_list_is_refused() {
    let cfg = &configs()[0];
    let (mut dims, _) = params(&net(cfg));
    assert!(HostUNet::new(cfg, &dims).is_ok());
    dims.swap(0, 1);
    assert!(HostUNet::new(cfg, &dims).unwrap_err().contains("parameter 0"));
    let (mut dims, _) = params(&net(cfg));
    dims.pop();
    assert!(HostUNet::new(cfg, &dims).is_err());
}

fn small_run(steps: u64) -> (DdpmTrainConfig, faer::Mat<f64>) {
    let cfg = DdpmTrainConfig::new(configs()[0].clone())
        .with_batch_size(40)
        .with_lr(1e-3)
        .with_steps(steps)
        .with_log_every(10)
        .with_checkpoint_every(20)
        .with_seed(5);
    let data = faer::Mat::from_fn(30, 64, |i, j| ((i * 7 + j * 3) % 11) as f64 / 5.5 - 1.0);
    (cfg, data)
}

fn all_weights(s: &DdpmState<B>) -> Vec<f32> {
    params(&s.model).1.into_iter().chain(params(&s.ema).1).flatten().collect()
}

fn go(_: &crate::LogRow) -> std::ops::ControlFlow<()> {
    std::ops::ControlFlow::Continue(())
}

/// 40 steps of the host step against burn's (a batch of 40 images: parts of 16, 16 and 8):
/// the same training up to `f32` rounding.
#[test]
fn a_host_run_follows_the_burn_run() {
    let (cfg, data) = small_run(40);
    let dev = Default::default();
    let host = train::train_ddpm_host::<B>(data.as_ref(), &cfg, None, &dev, &mut go).unwrap();
    let burn = crate::train_ddpm::<B>(data.as_ref(), &cfg, None, &dev, &mut go).unwrap();
    let (h, b) = (all_weights(&host), all_weights(&burn));
    let gap = h.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    // Measured 2.4e-7; an EMA decay one step off moves it to 1.3e-4, no clipping to 3.9e-3,
    // Adam's ε at 1e-5 instead of 1e-8 to 3.2e-2.
    assert!(gap < 1e-5, "largest weight gap {gap}");
    // The control: another seed's run is far from both.
    let other = train::train_ddpm_host::<B>(data.as_ref(), &cfg.clone().with_seed(6), None, &dev, &mut go).unwrap();
    let far = all_weights(&other).iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(far > 100.0 * gap.max(1e-6), "another seed differs by only {far}");
}

/// A host run stopped and resumed ends where an unbroken one does, bit for bit, on one
/// thread or two; burn's trainer resumes a host checkpoint and the host resumes burn's.
#[test]
fn host_runs_resume_and_do_not_depend_on_threads() {
    let (cfg, data) = small_run(50);
    let dev = Default::default();
    let root = std::env::temp_dir().join(format!("geomem_host_unet_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let whole = pool(2).install(|| train::train_ddpm_host::<B>(data.as_ref(), &cfg, None, &dev, &mut go)).unwrap();
    let one = pool(1).install(|| train::train_ddpm_host::<B>(data.as_ref(), &cfg, None, &dev, &mut go)).unwrap();
    assert_eq!(all_weights(&whole), all_weights(&one), "one thread and two differ");
    let stop = |r: &crate::LogRow| if r.step >= 20 { std::ops::ControlFlow::Break(()) } else { go(r) };
    for (name, first_host, second_host) in [("hh", true, true), ("hb", true, false), ("bh", false, true)] {
        let dir = root.join(name);
        let run = |host: bool, on_log: &mut dyn FnMut(&crate::LogRow) -> std::ops::ControlFlow<()>| {
            if host {
                train::train_ddpm_host::<B>(data.as_ref(), &cfg, Some(&dir), &dev, on_log)
            } else {
                crate::train_ddpm::<B>(data.as_ref(), &cfg, Some(&dir), &dev, on_log)
            }
        };
        let part = run(first_host, &mut { stop }).unwrap();
        assert!(part.step < 50, "{name}: the first run did not stop early");
        let resumed = run(second_host, &mut go).unwrap();
        assert_eq!(resumed.step, 50);
        let (r, w) = (all_weights(&resumed), all_weights(&whole));
        let gap = r.iter().zip(&w).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        if name == "hh" {
            assert_eq!(r, w, "a resumed host run differs from the unbroken one");
        } else {
            assert!(gap < 1e-5, "{name}: resumed across trainers, largest gap {gap}");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_host_eps_model_is_unet_eps() {
    use geomem_score::{VpEpsModel, VpTime};
    let cfg = &configs()[0];
    let model = net(cfg).valid();
    let host = eval::HostUNetEps::new(&model, cfg).unwrap();
    let burn = crate::UNetEps::new(model, Default::default(), 16);
    let x = faer::Mat::from_fn(37, 64, |i, j| ((i * 5 + j) as f64 * 0.37).sin());
    let (mut a, mut b) = (faer::Mat::zeros(37, 64), faer::Mat::zeros(37, 64));
    host.eps_into(x.as_ref(), VpTime::Step(10), a.as_mut()).unwrap();
    burn.eps_into(x.as_ref(), VpTime::Step(10), b.as_mut()).unwrap();
    let scale = (0..37).flat_map(|i| (0..64).map(move |j| (i, j))).fold(0f64, |m, (i, j)| m.max(b[(i, j)].abs()));
    let err =
        (0..37).flat_map(|i| (0..64).map(move |j| (i, j))).fold(0f64, |m, (i, j)| m.max((a[(i, j)] - b[(i, j)]).abs()));
    assert!(scale > 0.1 && err < 2e-5 * scale, "error {err} of {scale}");
    assert!(host.eps_into(x.as_ref(), VpTime::Continuous(0.1), a.as_mut()).is_err());
    let narrow = faer::Mat::<f64>::zeros(3, 63);
    assert!(host.eps_into(narrow.as_ref(), VpTime::Step(10), a.as_mut()).is_err());
    // The reverse pass refuses what the forward one refuses, and wrong cotangents.
    let (x0, u) = (vec![0.2; 64], faer::Mat::<f64>::zeros(2, 64));
    assert!(host.eps_vjp(&x0[..63], VpTime::Step(10), u.as_ref()).is_err());
    assert!(host.eps_vjp(&x0, VpTime::Step(10), narrow.as_ref()).is_err());
    assert!(host.eps_vjp(&x0, VpTime::Continuous(0.1), u.as_ref()).is_err());
    let none = faer::Mat::<f64>::zeros(0, 64);
    assert_eq!(host.eps_vjp(&x0, VpTime::Step(10), none.as_ref()).unwrap().map(|m| m.nrows()), Some(0));
    for wrong in [
        UNetConfig { base: 16, ..cfg.clone() },
        UNetConfig { groups: 2, ..cfg.clone() },
        UNetConfig { image_size: 16, ..cfg.clone() },
    ] {
        assert!(eval::HostUNetEps::new(&net(cfg).valid(), &wrong).is_err(), "{wrong:?}");
    }
}

/// `base` itself (the width of the first map and of every up-path concatenation's second
/// half) must be a multiple of `groups`: 12 with 8 groups made burn's GroupNorm panic.
#[test]
fn a_base_that_groups_do_not_divide_is_refused() {
    let cfg = UNetConfig::new(8, 1).with_base(12).with_mults(vec![2]).with_attn_resolutions(vec![]).with_groups(8);
    assert!(cfg.check().is_err());
    assert!(cfg.clone().with_base(16).check().is_ok());
}

/// The direct kernels' three passes on `b` images of side `h`, `cin → cout` channels, on
/// `isa`: the forward pass, the weight gradient, and the input gradient added to non-zero
/// values (as `Act`s: `(y, g, dx)`).
#[cfg(target_arch = "x86_64")]
fn direct_passes(isa: direct::Isa, b: usize, h: usize, cin: usize, cout: usize, phase: f32) -> [Vec<f32>; 3] {
    let act = |c, b, h, phase| images(1, c * b * h * h, phase);
    let w = images(1, 9 * cin * cout, 0.1 + phase);
    let (x, s) = (act(cin, b, h, 0.2 + phase), direct::shifts(b, h));
    let mut y = vec![0.0; cout * b * h * h];
    direct::conv(isa, &s, &x, cin, &direct::arrange(&w, cin, cout, false), Some(&images(1, cout, 0.7)), &mut y, false);
    let dy = act(cout, b, h, 0.9);
    let (mut g, mut dx) = (vec![0.0; 9 * cin * cout], act(cin, b, h, 0.4));
    direct::weight_grad(isa, &s, &x, cin, &dy, cout, &mut g);
    direct::conv(isa, &s, &dy, cout, &direct::arrange(&w, cin, cout, true), None, &mut dx, true);
    [y, g, dx]
}

/// `direct::amd` (which picks a convolution rule) reads the vendor the kernel reports.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn the_vendor_is_the_one_linux_reports() {
    let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let vendor = info.lines().find_map(|l| l.strip_prefix("vendor_id")).expect("a vendor_id line");
    let vendor = vendor.trim_start_matches([' ', '\t', ':']).trim();
    assert_eq!(direct::amd(), vendor == "AuthenticAMD", "vendor {vendor}");
}

/// The instruction sets of the direct kernels that this CPU has.
#[cfg(target_arch = "x86_64")]
fn direct_isas() -> Vec<direct::Isa> {
    let isas: Vec<_> = [direct::Isa::Avx512, direct::Isa::Avx2].into_iter().filter(|i| i.on_this_cpu()).collect();
    if isas.is_empty() {
        eprintln!("neither AVX-512 nor AVX2 + FMA on this CPU: the direct kernels do not run here");
    }
    isas
}

/// Checks the direct 3×3 kernels (called directly, whatever `Conv`'s rules pick for the
/// shape) on every instruction set of this CPU against im2col and a GEMM on `b` images of
/// side `h`, `cin → cout` channels: the forward pass, the weight gradient, and the input
/// gradient added to non-zero values.
#[cfg(target_arch = "x86_64")]
fn direct_matches_im2col(b: usize, h: usize, cin: usize, cout: usize, phase: f32) -> Result<(), String> {
    use super::ops::Act;
    let act = |c, b, h, phase| {
        let mut a = Act::scratch(c, b, h);
        a.v.copy_from_slice(&images(1, c * b * h * h, phase));
        a
    };
    // 2e-6 of the largest value, growing as n past sums of n = 256 products, as the bound on
    // another summation order's rounding does (γ_n): each pass sums 9·cin, b·h² or 9·cout
    // products. These smooth test maps add coherently: at 512→256 the forward pass differed
    // by 0.9 of a tolerance growing as √n.
    let close = |got: &[f32], want: &[f32], what: &str, n: usize| {
        let tol = 2e-6 * largest(want).max(1e-3) * (n as f32 / 256.0).max(1.0);
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        match got.len() == want.len() && worst <= tol {
            true => Ok(()),
            false => Err(format!("{b}×{h}² {cin}→{cout} {what}: {worst:e} > {tol:e}")),
        }
    };
    let conv = Conv { w: 0, b: 1, wt: usize::MAX, cin, cout, k: 3, stride: 1, pad: 1 };
    let p = vec![images(1, 9 * cin * cout, 0.1 + phase), images(1, cout, 0.7)];
    let x = act(cin, b, h, 0.2 + phase);
    let want = conv.forward_gemm(&p, &x, Act::scratch(cout, b, h));
    let dy = act(cout, b, h, 0.9);
    let mut g0 = vec![vec![0.0; 9 * cin * cout], vec![0.0; cout]];
    let mut dx0 = act(cin, b, h, 0.4);
    conv.backward_gemm(&p, &x, &dy, &mut g0, Some(&mut dx0));
    for isa in direct_isas() {
        let [y, g, dx] = direct_passes(isa, b, h, cin, cout, phase);
        close(&y, &want.v, &format!("{isa:?} forward"), 9 * cin)?;
        close(&g, &g0[0], &format!("{isa:?} weight gradient"), b * h * h)?;
        close(&dx, &dx0.v, &format!("{isa:?} input gradient"), 9 * cout)?;
    }
    Ok(())
}

/// The direct kernels on shapes whose pixel counts leave a partial vector, with one input
/// or output channel, channel counts that are not multiples of the tiles, sides 3 to 15.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_direct_convolution_is_the_im2col_one() {
    let shapes =
        [(3, 5, 1, 5), (2, 7, 6, 1), (4, 14, 16, 32), (1, 3, 9, 7), (16, 8, 4, 4), (5, 14, 48, 16), (3, 15, 3, 2)];
    // Over 128 channels, which `Conv` gives the direct forward and input passes on AMD's
    // CPUs: the paper's MNIST U-Net's 256→256, 512→256 and 384→256 at 7 × 7 and 14 × 14,
    // odd channel counts at 4 × 4.
    let wide = [(2, 7, 256, 256), (1, 4, 256, 130), (1, 14, 128, 256), (1, 7, 512, 256), (1, 14, 384, 256)];
    for (b, h, cin, cout) in shapes.into_iter().chain(wide) {
        direct_matches_im2col(b, h, cin, cout, 0.0).unwrap();
    }
}

/// Every lane sum of the weight gradient's reduction is [`direct::lanes::hsum`]'s, on each
/// instruction set of this CPU (the order that makes them agree bit for bit).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_lane_sums_are_the_reference_tree() {
    let v: Vec<f32> = images(1, 256, 0.3).iter().enumerate().map(|(k, x)| x * 10f32.powi(k as i32 % 7 - 3)).collect();
    let want: Vec<f32> = v.chunks_exact(16).map(direct::lanes::hsum).collect();
    for isa in direct_isas() {
        assert_eq!(direct::lanes::sums(isa, &v).to_vec(), want, "{isa:?}");
    }
}

/// AVX2 gives AVX-512's numbers bit for bit in all three passes (run where the CPU has both,
/// which the CPU it was written on had not; the shapes give both kernels' partial tiles and
/// partial vectors).
#[cfg(target_arch = "x86_64")]
#[test]
fn both_instruction_sets_give_the_same_bits() {
    if direct_isas().len() < 2 {
        eprintln!("this CPU has not both AVX-512 and AVX2: nothing to compare");
        return;
    }
    for (b, h, cin, cout) in [(3, 5, 1, 5), (2, 7, 6, 1), (4, 14, 16, 32), (5, 14, 48, 16), (16, 4, 13, 9)] {
        let z = direct_passes(direct::Isa::Avx512, b, h, cin, cout, 0.5);
        let y = direct_passes(direct::Isa::Avx2, b, h, cin, cout, 0.5);
        for (pass, (z, y)) in ["forward", "weight gradient", "input gradient"].iter().zip(z.iter().zip(&y)) {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(z), bits(y), "{b}×{h}² {cin}→{cout} {pass}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 48,
        rng_seed: proptest::test_runner::RngSeed::Fixed(23),
        ..Default::default()
    })]
    /// The same on random shapes (seeded by proptest).
    #[test]
    fn the_direct_convolution_is_the_im2col_one_on_any_shape(
        b in 1usize..6, h in 1usize..17, cin in 1usize..12, cout in 1usize..12, phase in 0f32..3.0,
    ) {
        direct_matches_im2col(b, h, cin, cout, phase).map_err(proptest::test_runner::TestCaseError::fail)?;
    }
}

/// Times the direct kernels against im2col and a GEMM per convolution shape (a part of 16
/// images, one thread): `cargo test --release -p geomem-nets conv_paths -- --ignored
/// --nocapture`. Prints; asserts nothing (a measurement, not a test).
#[cfg(target_arch = "x86_64")]
#[test]
#[ignore = "a timing, run by hand"]
fn conv_paths_timed() {
    use super::ops::{pool, Act};
    use std::time::Instant;
    let shapes = [
        (14, 16, 16),
        (14, 48, 16),
        (7, 32, 32),
        (7, 64, 32),
        (8, 32, 32),
        (8, 96, 32),
        (4, 64, 64),
        (4, 128, 64),
        (28, 128, 128),
        (14, 256, 256),
        (7, 128, 128),
        (7, 256, 256),
        (7, 512, 256),
        (14, 384, 256),
        (28, 384, 128),
        (4, 256, 256),
        (4, 512, 256),
    ];
    for (h, cin, cout) in shapes {
        let b = 16;
        let conv = Conv { w: 0, b: 1, wt: usize::MAX, cin, cout, k: 3, stride: 1, pad: 1 };
        let p = vec![images(1, 9 * cin * cout, 0.1), images(1, cout, 0.7)];
        let mut x = Act::scratch(cin, b, h);
        x.v.copy_from_slice(&images(1, cin * b * h * h, 0.2));
        let mut dy = Act::scratch(cout, b, h);
        dy.v.copy_from_slice(&images(1, cout * b * h * h, 0.9));
        let reps = (5e8 / (18.0 * (b * h * h * cin * cout) as f64)).clamp(1.0, 200.0) as usize;
        // The best of 5 rounds (the VM is noisy), in ms per call.
        let time = |f: &mut dyn FnMut()| {
            f();
            let round = |f: &mut dyn FnMut()| {
                let t = Instant::now();
                (0..reps).for_each(|_| f());
                t.elapsed().as_secs_f64() / reps as f64 * 1e3
            };
            (0..5).map(|_| round(f)).fold(f64::INFINITY, f64::min)
        };
        let (s, isa) = (direct::shifts(b, h), direct::best().expect("AVX-512 or AVX2 + FMA"));
        let mut y = Act::scratch(cout, b, h);
        let fd = time(&mut || {
            let wt = direct::arrange(&p[0], cin, cout, false);
            direct::conv(isa, &s, &x.v, cin, &wt, Some(&p[1]), &mut y.v, false);
            pool::give(wt);
        });
        let fg = time(&mut || drop(conv.forward_gemm(&p, &x, Act::scratch(cout, b, h))));
        let mut g = vec![vec![0.0; 9 * cin * cout], vec![0.0; cout]];
        let mut dx = Act::zeros(cin, b, h);
        let wd = time(&mut || direct::weight_grad(isa, &s, &x.v, cin, &dy.v, cout, &mut g[0]));
        let wg = time(&mut || conv.backward_gemm(&p, &x, &dy, &mut g, None));
        let id = time(&mut || {
            let wt = direct::arrange(&p[0], cin, cout, true);
            direct::conv(isa, &s, &dy.v, cout, &wt, None, &mut dx.v, true);
            pool::give(wt);
        });
        let ig = time(&mut || conv.backward_gemm(&p, &x, &dy, &mut g, Some(&mut dx))) - wg;
        let ar = time(&mut || pool::give(direct::arrange(&p[0], cin, cout, true)));
        let gflop = 18.0 * (b * h * h * cin * cout) as f64 / 1e9;
        if direct::wino::fits(h) && direct::Isa::Avx512.on_this_cpu() {
            use direct::wino;
            let mut g0 = vec![0.0; 9 * cin * cout];
            // The kernels arranged once, outside the timings (as `Conv` finds them: once per
            // training step, once for an evaluation), and their arrangement timed apart.
            let (u, uf) = (wino::arrange(&p[0], cin, cout, false), wino::arrange(&p[0], cin, cout, true));
            let fw = time(&mut || wino::conv(wino::Tile::Two, b, h, &x.v, cin, &u, Some(&p[1]), &mut y.v, false));
            let iw = time(&mut || wino::conv(wino::Tile::Two, b, h, &dy.v, cout, &uf, None, &mut dx.v, true));
            let ww = time(&mut || wino::grad::weight_grad(b, h, &x.v, cin, &dy.v, cout, &mut g0));
            let aw = time(&mut || pool::give(wino::arrange(&p[0], cin, cout, true)));
            println!(
                "{h:>2}x{h:<2} {cin:>3}->{cout:<3} F(2x2): forward {fw:7.3} ms, input grad {iw:7.3} ms, weight grad {ww:7.3} ms; arranging {aw:.3}"
            );
            if wino::four::fits(h) {
                let (u, uf) =
                    (wino::four::arrange(&p[0], cin, cout, false), wino::four::arrange(&p[0], cin, cout, true));
                let f4 = time(&mut || wino::conv(wino::Tile::Four, b, h, &x.v, cin, &u, Some(&p[1]), &mut y.v, false));
                let i4 = time(&mut || wino::conv(wino::Tile::Four, b, h, &dy.v, cout, &uf, None, &mut dx.v, true));
                let a4 = time(&mut || pool::give(wino::four::arrange(&p[0], cin, cout, true)));
                println!("{h:>2}x{h:<2} {cin:>3}->{cout:<3} F(4x4): forward {f4:7.3} ms, input grad {i4:7.3} ms; arranging {a4:.3}");
            }
        }
        println!(
            "{h:>2}x{h:<2} {cin:>3}->{cout:<3} forward direct {fd:7.3} ms ({:5.1} GFLOP/s) gemm {fg:7.3} | weight grad direct {wd:7.3} gemm {wg:7.3} | input grad direct {:7.3} gemm {:7.3} (im2col path less its weight gradient); arranging the weights {ar:.3}",
            gflop / fd * 1e3, id, ig
        );
    }
}

/// GroupNorm's and SiLU's reverse passes with one image broadcast over a batch of output
/// gradients give the bits of the same passes over the batch of its copies, γ and β
/// gradients included: what [`HostUNet::vjp`]'s shared tape relies on.
#[test]
fn a_broadcast_image_is_its_copies_bit_for_bit() {
    use super::ops::{Act, Norm};
    let (c, b, h) = (16, 5, 7);
    let norm = Norm { gamma: 0, beta: 1, c, groups: 4 };
    let p = vec![images(1, c, 0.3), images(1, c, 0.8)];
    let (mut x, mut dy) = (Act::scratch(c, 1, h), Act::scratch(c, b, h));
    x.v.copy_from_slice(&images(1, c * h * h, 0.1).iter().map(|v| 3.0 * v + 0.5).collect::<Vec<_>>());
    dy.v.copy_from_slice(&images(1, c * b * h * h, 0.6));
    let (_, st) = norm.forward(&p, &x);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let grads = || vec![vec![0.0f32; c], vec![0.0f32; c]];
    let (mut g_copies, mut g_shared) = (grads(), grads());
    let copies = norm.backward(&p, &x.expand(b), &st.expand(b), &dy, &mut g_copies);
    let shared = norm.backward(&p, &x, &st, &dy, &mut g_shared);
    assert_eq!((shared.c, shared.b, shared.h), (c, b, h));
    assert_eq!(bits(&shared.v), bits(&copies.v), "GroupNorm's input gradient");
    assert_eq!(bits(&g_shared.concat()), bits(&g_copies.concat()), "γ, β gradients");
    let (copies, shared) = (super::silu_grad_act(&x.expand(b), &dy), super::silu_grad_act(&x, &dy));
    assert_eq!(bits(&shared.v), bits(&copies.v), "SiLU's input gradient");
    assert_ne!(bits(&shared.v[..h * h]), bits(&shared.v[h * h..2 * h * h]), "the images differ");
}

/// GroupNorm compiled for this CPU's vector instructions gives the baseline build's numbers
/// bit for bit, forward and backward (a compiler that fused a multiply and an add, or
/// reordered a sum, would fail this).
#[test]
fn group_norm_on_wide_vectors_is_the_baseline_bit_for_bit() {
    use super::ops::{Act, Norm};
    let (c, b, h) = (16, 5, 7);
    let norm = Norm { gamma: 0, beta: 1, c, groups: 4 };
    let p = vec![images(1, c, 0.3), images(1, c, 0.8)];
    let (mut x, mut dy) = (Act::scratch(c, b, h), Act::scratch(c, b, h));
    x.v.copy_from_slice(&images(1, c * b * h * h, 0.1).iter().map(|v| 3.0 * v + 0.5).collect::<Vec<_>>());
    dy.v.copy_from_slice(&images(1, c * b * h * h, 0.6));
    let grads = || vec![vec![0.0; c], vec![0.0; c]];
    let ((y, st), (y0, st0)) = (norm.forward(&p, &x), norm.forward_baseline(&p, &x));
    let (mut g, mut g0) = (grads(), grads());
    let (dx, dx0) = (norm.backward(&p, &x, &st, &dy, &mut g), norm.backward_baseline(&p, &x, &st0, &dy, &mut g0));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&y.v), bits(&y0.v), "forward");
    assert_eq!(bits(&dx.v), bits(&dx0.v), "input gradient");
    assert_eq!((bits(&g[0]), bits(&g[1])), (bits(&g0[0]), bits(&g0[1])), "γ, β gradients");
    // Every copy this CPU runs, not only the widest.
    #[cfg(target_arch = "x86_64")]
    for (isa, on) in [("avx512", crate::wide::avx512()), ("avx2", crate::wide::avx2())] {
        use super::ops::{norm_backward, norm_forward};
        let mut g1 = grads();
        // SAFETY: each copy runs only where its instruction set was detected.
        let (y1, dx1) = match (isa, on) {
            ("avx512", true) => unsafe {
                let (y1, st1) = norm_forward::avx512(&norm, &p, &x);
                (y1, norm_backward::avx512(&norm, &p, &x, &st1, &dy, &mut g1))
            },
            ("avx2", true) => unsafe {
                let (y1, st1) = norm_forward::avx2(&norm, &p, &x);
                (y1, norm_backward::avx2(&norm, &p, &x, &st1, &dy, &mut g1))
            },
            _ => continue,
        };
        assert_eq!(bits(&y1.v), bits(&y0.v), "{isa} forward");
        assert_eq!(bits(&dx1.v), bits(&dx0.v), "{isa} input gradient");
        assert_eq!((bits(&g1[0]), bits(&g1[1])), (bits(&g0[0]), bits(&g0[1])), "{isa} γ, β gradients");
    }
}

/// The host's vector-Jacobian products (the input's reverse pass for cotangents `u` at one
/// image, in parts of 16 over copies of its tape) are burn's autodiff gradients of
/// `Σ u ⊙ ε̂` with respect to the input; 21 cotangents make one whole part and one partial
/// part. They do not depend on the number of threads.
#[test]
fn the_host_vjps_are_burns() {
    let dev = Default::default();
    for cfg in configs() {
        let model = net(&cfg);
        let (dims, w) = params(&model);
        let host = HostUNet::new(&cfg, &dims).unwrap();
        let (d, m, step) = (host.dim(), 21, 10.0);
        let (x, u) = (images(1, d, 0.7), images(m, d, 2.1));
        let (_, tape) = host.forward(&w, &x, &[step]);
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let got = pool(2).install(|| host.vjp(&w, &tape, &u, 16));
        let shape = [m, cfg.channels, cfg.image_size, cfg.image_size];
        // burn's backward holds its graph lock while burn-flex's convolutions wait on rayon:
        // run it on a pool of its own, or a test whose global-pool workers wait on that lock
        // (`split_gradients_equal_the_whole_batch`) deadlocks with it.
        let want: Vec<f32> = pool(2).install(|| {
            let xt = Tensor::<B, 4>::from_data(TensorData::new(x.repeat(m), shape), &dev).require_grad();
            let ut = Tensor::<B, 4>::from_data(TensorData::new(u.clone(), shape), &dev);
            let out = model.forward(xt.clone(), model.embed_steps(&vec![step; m], &dev));
            let grads = (out * ut).sum().backward();
            xt.grad(&grads).unwrap().into_data().to_vec().unwrap()
        });
        let scale = largest(&want);
        assert!(scale > 0.1, "{cfg:?}: products too small to test ({scale})");
        let err = got.iter().zip(&want).fold(0f32, |e, (a, b)| e.max((a - b).abs()));
        assert!(err <= 2e-5 * scale, "{cfg:?}: largest difference {err} of {scale}");
        assert_eq!(got, pool(1).install(|| host.vjp(&w, &tape, &u, 16)), "{cfg:?}: depends on the threads");
    }
}

/// The VE score's Jacobian from the host's VJPs (`VpScore`'s chain rule, the factor
/// `-1/√(t(1+t))`) against the model's own VJPs at `x/√(1+t)` and against central
/// differences of the same field's forward passes, at a small and at a large step (where
/// `1/√(1+t)` is far from 1, so that a lost factor shows); its VJPs against the Jacobian's
/// rows. The central differences carry the `f32` rounding of two forward passes divided by
/// a step of `ε^{1/3} √t` (up to 1 % of `J v` here), hence their tolerance.
#[test]
fn the_host_score_jacobian_is_its_central_differences() {
    use geomem_score::{central_difference_jvp, DdpmSchedule, ScoreField, ScoreFieldExt, VpEpsModel, VpScore, VpTime};
    let cfg = &configs()[0];
    let host = eval::HostUNetEps::new(&net(cfg).valid(), cfg).unwrap();
    let sched = DdpmSchedule::linear(1e-4, 2e-2, 1000).unwrap();
    let field = VpScore::discrete(host, sched.clone());
    let d = field.dim();
    let v = faer::Mat::from_fn(6, d, |i, j| ((i * 7 + j) as f64 * 0.61).cos());
    for k in [10, 500] {
        let t = sched.ve_time(k).unwrap();
        let x: Vec<f64> = (0..d).map(|j| (j as f64 * 0.29).sin() * 1.2).collect();
        let jac = field.jacobian(&x, t).unwrap().expect("the host model has a Jacobian");
        let want = central_difference_jvp(&field, &x, t, v.as_ref()).unwrap();
        let got = &v * jac.transpose();
        let scale = want.norm_max();
        let err = (&got - &want).norm_max();
        eprintln!("k = {k}: J v differs from central differences by {err:.3e} of {scale:.3e}");
        assert!(scale > 0.0 && err <= 2e-2 * scale, "k = {k}: J v differs by {err} of {scale}");
        let a = (-0.5 * t.ln_1p()).exp();
        let x_vp: Vec<f64> = x.iter().map(|v| v * a).collect();
        let eye = faer::Mat::<f64>::identity(d, d);
        let own = field.model().eps_vjp(&x_vp, VpTime::Step(k), eye.as_ref()).unwrap().unwrap();
        let chain = own * faer::Scale(-a / t.sqrt());
        assert!((&jac - &chain).norm_max() <= 1e-12 * jac.norm_max(), "k = {k}: not the chain rule");
        // Other parts (6 rows against 16), so other `f32` roundings.
        let (vjp, rows) = (field.vjp(&x, t, v.as_ref()).unwrap(), &v * &jac);
        assert!((&vjp - &rows).norm_max() <= 1e-5 * rows.norm_max(), "k = {k}: VJPs are not the Jacobian's rows");
    }
}

/// Winograd's F(2×2, 3×3) forward and input-gradient passes against the direct kernel on
/// AVX-512 (which the Winograd kernels need): sides 2 to 37, odd and even, partial vectors of tiles,
/// channel counts off the register tiles, over 128 channels.
#[cfg(target_arch = "x86_64")]
fn winograd_matches_direct(b: usize, h: usize, cin: usize, cout: usize, phase: f32) -> Result<(), String> {
    use direct::wino;
    if !direct::Isa::Avx512.on_this_cpu() {
        eprintln!("no AVX-512 on this CPU: the Winograd kernels do not run here");
        return Ok(());
    }
    let [want_y, want_g, want_dx] = direct_passes(direct::Isa::Avx512, b, h, cin, cout, phase);
    let w = images(1, 9 * cin * cout, 0.1 + phase);
    let x = images(1, cin * b * h * h, 0.2 + phase);
    let mut y = vec![f32::NAN; cout * b * h * h];
    wino::conv(
        wino::Tile::Two,
        b,
        h,
        &x,
        cin,
        &wino::arrange(&w, cin, cout, false),
        Some(&images(1, cout, 0.7)),
        &mut y,
        false,
    );
    let dy = images(1, cout * b * h * h, 0.9);
    let mut dx = images(1, cin * b * h * h, 0.4);
    wino::conv(wino::Tile::Two, b, h, &dy, cout, &wino::arrange(&w, cin, cout, true), None, &mut dx, true);
    // The transforms add up to 16 terms before and after the products: 8e-6 of the largest
    // value, growing as n past sums of n = 256 products (as in `direct_matches_im2col`).
    let close = |got: &[f32], want: &[f32], what: &str, n: usize, rel: f32| {
        let tol = rel * largest(want).max(1e-3) * (n as f32 / 256.0).max(1.0);
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        match got.len() == want.len() && worst <= tol {
            true => Ok(()),
            false => Err(format!("{b}×{h}² {cin}→{cout} Winograd {what}: {worst:e} > {tol:e}")),
        }
    };
    close(&y, &want_y, "forward", 9 * cin, 8e-6)?;
    close(&dx, &want_dx, "input gradient", 9 * cout, 8e-6)?;
    if wino::four::fits(h) {
        // F(4×4, 3×3): transforms with coefficients up to 8, entries summing up to 16 terms
        // before the products and 25 after.
        let mut y4 = vec![f32::NAN; cout * b * h * h];
        let u = wino::four::arrange(&w, cin, cout, false);
        wino::conv(wino::Tile::Four, b, h, &x, cin, &u, Some(&images(1, cout, 0.7)), &mut y4, false);
        close(&y4, &want_y, "F(4×4) forward", 9 * cin, 8e-5)?;
        let mut dx4 = images(1, cin * b * h * h, 0.4);
        wino::conv(wino::Tile::Four, b, h, &dy, cout, &wino::four::arrange(&w, cin, cout, true), None, &mut dx4, true);
        close(&dx4, &want_dx, "F(4×4) input gradient", 9 * cout, 8e-5)?;
    }
    let mut g = vec![0.0; 9 * cin * cout];
    wino::grad::weight_grad(b, h, &x, cin, &dy, cout, &mut g);
    close(&g, &want_g, "weight gradient", b * h * h, 8e-6)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_winograd_convolution_is_the_direct_one() {
    let shapes = [
        (3, 6, 1, 5),
        (2, 2, 6, 1),
        (16, 8, 32, 32),
        (16, 4, 64, 64),
        (16, 4, 13, 9),
        (5, 14, 48, 16),
        (1, 28, 7, 130),
        (2, 14, 256, 256),
        // Odd sides: the last row and column of tiles reach past the image.
        (3, 7, 32, 32),
        (2, 5, 17, 20),
        (1, 3, 16, 16),
        (2, 15, 48, 16),
        (16, 7, 64, 32),
        // Past 32 pixels a row, F(4×4, 3×3) splits and merges the maps pixel by pixel; 34
        // and 37 are not multiples of 4.
        (1, 34, 16, 20),
        (1, 37, 5, 3),
    ];
    for (b, h, cin, cout) in shapes {
        winograd_matches_direct(b, h, cin, cout, 0.0).unwrap();
    }
}

/// `HostUNet::with_kernels` records each 3×3 convolution's map side right: with its kernels
/// no pass arranges one at the call (forward, the training gradients, and the input-only
/// reverse pass of the VJPs), on the test configurations and on one with three levels of
/// two residual blocks whose convolutions take Winograd's kernels at sides 16, 8 and 4
/// where the CPU has AVX-512. Without them, the same passes do arrange (the count counts).
#[test]
fn arranged_kernels_serve_every_pass() {
    use super::ops::{Act, ARRANGED_AT_CALL};
    let wide =
        UNetConfig::new(16, 1).with_base(16).with_mults(vec![1, 2, 2]).with_attn_resolutions(vec![]).with_res_blocks(2);
    for cfg in configs().into_iter().chain([wide.with_groups(4)]) {
        let (dims, w) = params(&net(&cfg));
        let host = HostUNet::new(&cfg, &dims).unwrap();
        let (b, d) = (3, host.dim());
        let x = images(b, d, 0.2);
        let passes = |p: &[Vec<f32>]| {
            ARRANGED_AT_CALL.with(|n| n.set(0));
            let (out, tape) = host.forward(p, &x, &[1.0, 40.0, 700.0]);
            let mut dout = Act::scratch(out.c, out.b, out.h);
            let len = dout.v.len();
            dout.v.copy_from_slice(&images(1, len, 0.6));
            let mut g: Vec<Vec<f32>> = w.iter().map(|q| vec![0.0; q.len()]).collect();
            host.backward(p, &tape, &dout, &mut g);
            let dx = host.back(p, &tape, &dout, &mut []);
            assert!(dx.is_some(), "{cfg:?}: the input-only pass gave no gradient");
            ARRANGED_AT_CALL.with(|n| n.get())
        };
        assert_eq!(passes(&host.with_kernels(w.clone())), 0, "{cfg:?}: kernels arranged at a call");
        // Evaluation's kernels serve its forward passes; the flipped ones added later, the rest.
        let mut forward = host.with_forward_kernels(w.clone());
        ARRANGED_AT_CALL.with(|n| n.set(0));
        drop(host.infer(&forward, &x, &[1.0, 40.0, 700.0]));
        assert_eq!(ARRANGED_AT_CALL.with(|n| n.get()), 0, "{cfg:?}: forward kernels arranged at a call");
        host.add_flipped_kernels(&mut forward);
        assert_eq!(forward, host.with_kernels(w.clone()), "{cfg:?}: the flipped kernels added are not all of them");
        if direct::best().is_some() {
            assert!(passes(&w) > 0, "{cfg:?}: no pass arranged a kernel without them");
            let forward = host.with_forward_kernels(w.clone());
            assert!(passes(&forward) > 0, "{cfg:?}: the reverse pass found kernels it was not given");
        }
    }
}

/// `HostUNetEps` serves its forward passes, and from its first VJP on its reverse passes,
/// with kernels arranged beforehand: no pass arranges one at a call (on a one-thread pool,
/// whose worker runs every part and holds the counter). Without the flipped kernels added
/// at the first VJP its values would be the same, only slower: this is what sees it.
#[test]
fn host_evaluation_arranges_no_kernel_at_a_call() {
    use super::ops::ARRANGED_AT_CALL;
    use geomem_score::{VpEpsModel, VpTime};
    let cfg = &configs()[3];
    let host = eval::HostUNetEps::new(&net(cfg).valid(), cfg).unwrap();
    let d = host.dim();
    let x = faer::Mat::from_fn(3, d, |i, j| ((i * 5 + j) as f64 * 0.37).sin());
    let row: Vec<f64> = (0..d).map(|j| x[(0, j)]).collect();
    let u = faer::Mat::from_fn(4, d, |i, j| f64::from(u8::from(i == j)));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        ARRANGED_AT_CALL.with(|n| n.set(0));
        let mut out = faer::Mat::zeros(3, d);
        host.eps_into(x.as_ref(), VpTime::Step(10), out.as_mut()).unwrap();
        for _ in 0..2 {
            host.eps_vjp(&row, VpTime::Step(10), u.as_ref()).unwrap().unwrap();
        }
        assert_eq!(ARRANGED_AT_CALL.with(|n| n.get()), 0, "kernels arranged at a call");
    });
}

/// `UNetConfig::convolutions` lists the net's convolutions as the model holds them: the
/// 4-d parameters' shapes in order, and the 3 × 3 stride-1 ones at the map sides the host
/// net's builder gives them (computed there in its own code, from the same level
/// arithmetic).
#[test]
fn the_convolution_list_is_the_nets() {
    for cfg in configs() {
        let (dims, _) = params(&net(&cfg));
        let convs = cfg.convolutions().unwrap();
        let held: Vec<_> = dims.iter().filter(|d| d.len() == 4).map(|d| (d[0], d[1], d[2], d[3])).collect();
        let listed: Vec<_> = convs.iter().map(|c| (c.cout, c.cin, c.kernel, c.kernel)).collect();
        assert_eq!(listed, held);
        let host = HostUNet::new(&cfg, &dims).unwrap();
        let sides: Vec<_> = host.kernels.iter().map(|k| (k.cin, k.cout, k.side)).collect();
        let listed: Vec<_> =
            convs.iter().filter(|c| c.kernel == 3 && c.stride == 1).map(|c| (c.cin, c.cout, c.side)).collect();
        assert_eq!(listed, sides);
        let strided: Vec<_> = convs.iter().filter(|c| c.stride == 2).map(|c| c.side).collect();
        let want: Vec<_> = (1..cfg.mults.len()).map(|l| cfg.image_size >> l).collect();
        assert_eq!(strided, want);
    }
}
