//! The DDPM U-Net: the paper's configurations have the paper's parameter counts (seed 000,
//! Table 1), the counted plan equals the instantiated network, shapes flow through every
//! level, the zero-initialised output conv makes the untrained net predict 0, and the same
//! seed gives the same weights.
use burn::backend::Flex;
use burn::config::Config;
use burn::module::Module;
use burn::module::{ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use geomem_nets::{UNet, UNetConfig};

type B = Flex;

fn paper(name: &str) -> UNetConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../experiments/unet/{name}.json"));
    UNetConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn paper_configs_have_table_1_parameter_counts() {
    for (name, millions) in [("mnist", 24.5), ("cifar10", 35.7)] {
        let cfg = paper(name);
        cfg.check().unwrap();
        let count = cfg.parameter_count().unwrap() as f64 / 1e6;
        assert!((count - millions).abs() < 0.05, "{name}: {count:.3}M, Table 1 says {millions}M");
        eprintln!("{name}: {} parameters", cfg.parameter_count().unwrap());
        let net: UNet<B> = cfg.init_seeded(&Default::default(), 0).unwrap();
        assert_eq!(net.num_params() as u128, cfg.parameter_count().unwrap(), "{name}: plan = instance");
    }
}

fn small() -> UNetConfig {
    UNetConfig::new(8, 1)
        .with_base(16)
        .with_mults(vec![1, 2])
        .with_attn_resolutions(vec![4])
        .with_res_blocks(1)
        .with_groups(8)
}

#[test]
fn forward_shapes_and_zero_output_at_init() {
    let dev = Default::default();
    for cfg in
        [small(), UNetConfig::new(8, 3).with_base(32).with_mults(vec![1, 2, 2, 1]).with_attn_resolutions(vec![8, 2])]
    {
        let net: UNet<B> = cfg.init_seeded(&dev, 1).unwrap();
        assert_eq!(net.num_params() as u128, cfg.parameter_count().unwrap());
        let n = 3;
        let x = Tensor::<B, 4>::from_data(
            TensorData::new(
                (0..n * net.dim()).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
                [n, cfg.channels, 8, 8],
            ),
            &dev,
        );
        let y = net.forward(x, net.embed_steps(&[0.0, 10.0, 999.0], &dev));
        assert_eq!(y.dims(), [n, cfg.channels, 8, 8]);
        let v: Vec<f32> = y.into_data().to_vec().unwrap();
        assert!(v.iter().all(|&e| e == 0.0), "the output conv starts at zero");
    }
}

/// Every float weight, in visiting order.
struct Weights(Vec<f32>);
impl ModuleVisitor<B> for Weights {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let dev = Default::default();
    let flat = |seed| {
        let net: UNet<B> = small().init_seeded(&dev, seed).unwrap();
        let mut w = Weights(Vec::new());
        net.visit(&mut w);
        w.0
    };
    let (a, b, c) = (flat(5), flat(5), flat(6));
    assert!(a == b, "same seed, same weights");
    assert!(a != c, "another seed, other weights");
}

#[test]
fn bad_configs_are_errors() {
    let mut c = small().with_mults(vec![1, 2, 2]);
    c.image_size = 6;
    assert!(c.check().is_err(), "6 is not divisible by 4");
    assert!(small().with_groups(5).check().is_err(), "16 channels in 5 groups");
    assert!(small().with_dropout(1.0).check().is_err());
    assert!(small().with_mults(vec![]).check().is_err());
    assert!(small().with_base(15).check().is_err());
    assert!(small().with_res_blocks(0).check().is_err());
    assert!(small().with_mults(vec![1; 70]).check().is_err(), "2^69 does not divide anything");
    assert!(small().with_base(1 << 40).check().is_err(), "too many parameters");
    assert!(small().init_seeded::<B>(&Default::default(), 0).is_ok());
}
