//! Writes a U-Net's weights, an input and geomem's output for it, so that
//! `benches/compare/torch_unet_forward.py` can load the same weights into the PyTorch U-Net
//! of `benches/compare/torch_unet.py` and compare the two forward passes number by number.
//!
//! The weights are the seeded initialisation plus `0.05 sin(1.3 i)` on the `i`-th scalar of
//! the parameter list (the initial output convolution is zero, which would make every
//! output 0 and the comparison empty). Files in `OUT`: `params.bin` (every parameter in
//! module order, f32 little-endian, burn's layouts: a linear weight is `in × out`),
//! `params.json` (their shapes), `input.bin` (`b × c × h × h`), `steps.json`, `output.bin`.
//!
//! Usage: `cargo run --release -p geomem-benches --bin unet_export -- CONFIG.json OUT`

use burn::backend::Flex;
use burn::config::Config;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use geomem_nets::{UNet, UNetConfig};
use std::io::Write;
use std::path::Path;

/// Adds `0.05 sin(1.3 i)` to the `i`-th scalar, counting through the parameters in order.
struct Perturb {
    next: usize,
}

impl ModuleMapper<Flex> for Perturb {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<Flex, D>>) -> Param<Tensor<Flex, D>> {
        let start = self.next;
        p.map(|t| {
            let dims = t.dims();
            let mut v = t.into_data().to_vec::<f32>().expect("f32 weights");
            for (i, x) in v.iter_mut().enumerate() {
                *x += 0.05 * (1.3 * (start + i) as f32).sin();
            }
            self.next = start + v.len();
            Tensor::from_data(TensorData::new(v, dims), &Default::default())
        })
    }
}

/// Every parameter's shape and values, in module order.
struct Collect {
    shapes: Vec<Vec<usize>>,
    values: Vec<f32>,
}

impl ModuleVisitor<Flex> for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Flex, D>>) {
        let t = p.val();
        self.shapes.push(t.dims().to_vec());
        self.values.extend(t.into_data().to_vec::<f32>().expect("f32 weights"));
    }
}

fn write_f32(path: &Path, v: &[f32]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in v {
        f.write_all(&x.to_le_bytes())?;
    }
    f.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(out)) = (args.get(1), args.get(2)) else {
        return Err("usage: unet_export CONFIG.json OUT".into());
    };
    let out = Path::new(out);
    std::fs::create_dir_all(out)?;
    let cfg = UNetConfig::load(path)?;
    let device = Default::default();
    let net: UNet<Flex> = cfg.init_seeded::<Flex>(&device, 0)?.map(&mut Perturb { next: 0 });
    let mut c = Collect { shapes: Vec::new(), values: Vec::new() };
    net.visit(&mut c);
    write_f32(&out.join("params.bin"), &c.values)?;
    std::fs::write(out.join("params.json"), serde_json::to_string(&c.shapes)?)?;
    let (b, ch, h) = (4, cfg.channels, cfg.image_size);
    let n = b * ch * h * h;
    let x: Vec<f32> = (0..n).map(|i| (0.7 * i as f32).sin() * 0.9).collect();
    let steps = [0.0f32, 10.0, 500.0, 999.0];
    let xt = Tensor::<Flex, 4>::from_data(TensorData::new(x.clone(), [b, ch, h, h]), &device);
    let y = net.forward(xt, net.embed_steps(&steps, &device)).into_data().to_vec::<f32>().expect("f32 output");
    write_f32(&out.join("input.bin"), &x)?;
    write_f32(&out.join("output.bin"), &y)?;
    std::fs::write(out.join("steps.json"), serde_json::to_string(&steps)?)?;
    println!(
        "{path}: {} parameter tensors, {} scalars; output {} values in {}",
        c.shapes.len(),
        c.values.len(),
        y.len(),
        out.display()
    );
    Ok(())
}
