//! Export of weights as safetensors, in PyTorch's conventions: `nn.Linear` keeps its weight
//! as `[out, in]` while burn keeps `[in, out]`, so 2-D weights are transposed. Names follow
//! the module tree (`input.weight`, `blocks.0.l1.bias`, …); `benches/compare/torch_mlp.py`
//! defines a PyTorch module with the same names that loads the file with
//! `load_state_dict`.

use crate::error::{io, Result};
use crate::model::ResidualMlp;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

struct Collect {
    path: Vec<String>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    error: Option<String>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let dims = t.dims().to_vec();
        match t.into_data().to_vec::<f32>() {
            Ok(v) => {
                let name = self.path.iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(".");
                let (shape, data) = if dims.len() == 2 {
                    let (r, c) = (dims[0], dims[1]);
                    (vec![c, r], (0..c * r).map(|k| v[(k % r) * c + k / r]).collect())
                } else {
                    (dims, v)
                };
                self.tensors.insert(name, (shape, data));
            }
            Err(e) => self.error = Some(format!("{e:?}")),
        }
    }
}

/// Parameters by name: shape and values (row-major `f32`).
pub type NamedParameters = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The named parameters of `model`, in PyTorch layout.
pub fn named_parameters<B: Backend>(model: &ResidualMlp<B>) -> Result<NamedParameters> {
    let mut c = Collect { path: Vec::new(), tensors: BTreeMap::new(), error: None };
    model.visit(&mut c);
    match c.error {
        Some(e) => Err(crate::NetsError::Record(e)),
        None => Ok(c.tensors),
    }
}

/// Writes `model` as a safetensors file (float32, little endian).
///
/// # Errors
/// [`crate::NetsError::Io`], [`crate::NetsError::Record`].
pub fn save_safetensors<B: Backend>(model: &ResidualMlp<B>, path: &Path) -> Result<()> {
    let tensors = named_parameters(model)?;
    let mut header = serde_json::Map::new();
    let mut body: Vec<u8> = Vec::new();
    for (name, (shape, data)) in &tensors {
        let start = body.len();
        for v in data {
            body.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [start, body.len()] }),
        );
    }
    let mut h =
        serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| crate::NetsError::Record(e.to_string()))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + body.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    std::fs::write(path, out).map_err(io(path))
}
