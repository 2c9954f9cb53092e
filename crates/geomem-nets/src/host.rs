//! A CPU copy of a trained [`ResidualMlp`] evaluated with faer in `f32`: the same function
//! as [`crate::TrainedScore`] without the backend, for fast spectra and sampling on the CPU.
//!
//! The Fourier embedding of `ln σ` is the same for every row of a call (one `t`), so its
//! contribution through the input layer is folded into the bias once per call; the SiLU
//! uses a branch-free `exp` that the compiler vectorises (relative error below 1e-6).

use crate::error::Result;
use crate::export::named_parameters;
use crate::model::ResidualMlp;
use burn::tensor::backend::Backend;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef};
use geomem_score::{Precision, ScoreField};

/// Rows per block of work.
const CHUNK: usize = 1024;

#[derive(Debug, Clone)]
struct Layer {
    /// `in × out`.
    w: Mat<f32>,
    b: Vec<f32>,
}

/// The network's weights on the host.
#[derive(Debug, Clone)]
pub struct HostMlp {
    d: usize,
    emb_dim: usize,
    sigma_data: f64,
    input: Layer,
    blocks: Vec<(Layer, Layer)>,
    output: Layer,
}

fn layer(p: &std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>, name: &str) -> Result<Layer> {
    let get = |k: &str| p.get(k).ok_or_else(|| crate::NetsError::Record(format!("missing parameter {k}")));
    let (shape, w) = get(&format!("{name}.weight"))?;
    let (_, b) = get(&format!("{name}.bias"))?;
    let (out, inp) = (shape[0], shape[1]);
    // Export layout is PyTorch's [out, in]; store [in, out] for X W.
    Ok(Layer { w: Mat::from_fn(inp, out, |i, o| w[o * inp + i]), b: b.clone() })
}

/// `exp(x)` for `f32` without branches: `2^n · p(r)`, `x = n ln 2 + r`, `|r| <= ln2/2`.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest with the 1.5·2^23 trick (no libm call, so the loop vectorises).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + fast_exp(-x))
}

fn silu_into(src: MatRef<'_, f32>, mut dst: MatMut<'_, f32>) {
    for j in 0..src.ncols() {
        let s = src.col(j).try_as_col_major().expect("owned column").as_slice();
        let d = dst.rb_mut().col_mut(j).try_as_col_major_mut().expect("owned column").as_slice_mut();
        for (o, &v) in d.iter_mut().zip(s) {
            *o = silu(v);
        }
    }
}

fn add_bias(mut m: MatMut<'_, f32>, b: &[f32]) {
    for (j, &bj) in b.iter().enumerate() {
        for v in m.rb_mut().col_mut(j).try_as_col_major_mut().expect("owned column").as_slice_mut() {
            *v += bj;
        }
    }
}

use faer::reborrow::ReborrowMut;

impl HostMlp {
    /// Copies the weights of `model` (any backend) to the host.
    ///
    /// # Errors
    /// [`crate::NetsError::Record`] when the weights cannot be read back.
    pub fn from_model<B: Backend>(model: &ResidualMlp<B>) -> Result<Self> {
        let p = named_parameters(model)?;
        Ok(Self {
            d: model.d,
            emb_dim: model.emb_dim,
            sigma_data: model.sigma_data(),
            input: layer(&p, "input")?,
            blocks: (0..model.blocks.len())
                .map(|k| Ok((layer(&p, &format!("blocks.{k}.l1"))?, layer(&p, &format!("blocks.{k}.l2"))?)))
                .collect::<Result<_>>()?,
            output: layer(&p, "output")?,
        })
    }
}

impl ScoreField for HostMlp {
    fn dim(&self) -> usize {
        self.d
    }

    /// `f32` arithmetic (and a SiLU with relative error below `1e-6`): finite differences
    /// need steps of at least [`Precision::central_step`].
    fn precision(&self) -> Precision {
        Precision::F32
    }

    /// # Formula
    /// `s(x, t) = -ε̂(x, √t)/√t` with the network evaluated in `f32`.
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> geomem_score::Result<()> {
        let d = self.d;
        let sigma = t.sqrt();
        let c_in = (1.0 / (self.sigma_data.powi(2) + t).sqrt()) as f32;
        let h = self.input.b.len();
        // Bias of the input layer with the embedding folded in.
        let emb: Vec<f32> = crate::model::fourier_embedding(self.emb_dim, sigma).collect();
        let bias: Vec<f32> = (0..h)
            .map(|o| self.input.b[o] + emb.iter().enumerate().map(|(e, v)| v * self.input.w[(d + e, o)]).sum::<f32>())
            .collect();
        let w_x = self.input.w.as_ref().subrows(0, d);
        let par = faer::get_global_parallelism();
        let mut start = 0;
        while start < x.nrows() {
            let n = CHUNK.min(x.nrows() - start);
            let mut xs = Mat::<f32>::zeros(n, d);
            for j in 0..d {
                for i in 0..n {
                    xs[(i, j)] = x[(start + i, j)] as f32 * c_in;
                }
            }
            let mut hm = Mat::<f32>::zeros(n, h);
            matmul(hm.as_mut(), Accum::Replace, xs.as_ref(), w_x, 1.0, par);
            add_bias(hm.as_mut(), &bias);
            let mut t1 = Mat::<f32>::zeros(n, h);
            let mut u = Mat::<f32>::zeros(n, h);
            for (l1, l2) in &self.blocks {
                silu_into(hm.as_ref(), t1.as_mut());
                matmul(u.as_mut(), Accum::Replace, t1.as_ref(), l1.w.as_ref(), 1.0, par);
                add_bias(u.as_mut(), &l1.b);
                silu_into(u.as_ref(), t1.as_mut());
                matmul(hm.as_mut(), Accum::Add, t1.as_ref(), l2.w.as_ref(), 1.0, par);
                add_bias(hm.as_mut(), &l2.b);
            }
            silu_into(hm.as_ref(), t1.as_mut());
            let mut o = Mat::<f32>::zeros(n, d);
            matmul(o.as_mut(), Accum::Replace, t1.as_ref(), self.output.w.as_ref(), 1.0, par);
            for j in 0..d {
                let bj = self.output.b[j];
                for i in 0..n {
                    out[(start + i, j)] = -f64::from(o[(i, j)] + bj) / sigma;
                }
            }
            start += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::fast_exp;

    #[test]
    fn fast_exp_is_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (a, b) = (fast_exp(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-6, "x = {x}: {a} vs {b}");
            x += 0.0137;
        }
        let tiny = fast_exp(-200.0);
        assert!(tiny > 0.0 && tiny < 1e-37 && fast_exp(200.0).is_finite());
    }
}
