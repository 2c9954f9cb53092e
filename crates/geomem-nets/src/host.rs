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
use rayon::prelude::*;

/// Rows per block of work (one rayon task each).
const ROWS: usize = 256;

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

/// `exp(x)` for `f32` without branches or float-to-int casts: `2^n · p(r)`,
/// `x = n ln 2 + r`, `|r| <= ln2/2`; `n` is read from the bits of `x log2 e + 1.5·2^23`
/// (whose last mantissa bits hold it), so the whole loop vectorises.
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: its ulp is 1
    let x = x.clamp(-87.0, 88.0);
    let m = x * std::f32::consts::LOG2_E + MAGIC;
    let n = m - MAGIC;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    // bits(m) = bits(MAGIC) + n for |n| < 2^22; 2^n has exponent field n + 127.
    let scale = f32::from_bits(m.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    scale * p
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + fast_exp(-x))
}

crate::wide::wide_fn! {
    /// `dst = silu(src + b)` column by column; with `store`, `src += b` as well. One pass,
    /// compiled for the widest vectors of the CPU ([`crate::wide`]).
    fn bias_silu(src: MatMut<'_, f32>, b: &[f32], store: bool, dst: MatMut<'_, f32>) => bias_silu_body
}

#[inline(always)]
fn bias_silu_body(mut src: MatMut<'_, f32>, b: &[f32], store: bool, mut dst: MatMut<'_, f32>) {
    for (j, &bj) in b.iter().enumerate() {
        let s = src.rb_mut().col_mut(j).try_as_col_major_mut().expect("owned column").as_slice_mut();
        let d = dst.rb_mut().col_mut(j).try_as_col_major_mut().expect("owned column").as_slice_mut();
        for (o, v) in d.iter_mut().zip(s.iter_mut()) {
            let z = *v + bj;
            if store {
                *v = z;
            }
            *o = silu(z);
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
    /// `s(x, t) = -ε̂(x, √t)/√t` with the network evaluated in `f32`, blocks of 256
    /// rows on rayon tasks (each block's GEMMs on one thread: the same numbers whatever the
    /// number of threads).
    fn eval(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> geomem_score::Result<()> {
        let sigma = t.sqrt();
        let c_in = (1.0 / (self.sigma_data.powi(2) + t).sqrt()) as f32;
        let bias = self.input_bias(sigma);
        let starts: Vec<usize> = (0..x.nrows()).step_by(ROWS).collect();
        let blocks: Vec<Mat<f32>> = starts
            .par_iter()
            .map(|&start| self.eps_rows(x.subrows(start, ROWS.min(x.nrows() - start)), c_in, &bias))
            .collect();
        for (&start, eps) in starts.iter().zip(&blocks) {
            for j in 0..self.d {
                let bj = self.output.b[j];
                for i in 0..eps.nrows() {
                    out[(start + i, j)] = -f64::from(eps[(i, j)] + bj) / sigma;
                }
            }
        }
        Ok(())
    }
}

impl HostMlp {
    /// The input layer's bias with the Fourier embedding of `ln σ` folded in.
    fn input_bias(&self, sigma: f64) -> Vec<f32> {
        let emb: Vec<f32> = crate::model::fourier_embedding(self.emb_dim, sigma).collect();
        (0..self.input.b.len())
            .map(|o| {
                self.input.b[o] + emb.iter().enumerate().map(|(e, v)| v * self.input.w[(self.d + e, o)]).sum::<f32>()
            })
            .collect()
    }

    /// `ε̂` of the rows of `x` (scaled by `c_in`) without the output bias, on this thread.
    fn eps_rows(&self, x: MatRef<'_, f64>, c_in: f32, bias: &[f32]) -> Mat<f32> {
        let (n, d, h) = (x.nrows(), self.d, self.input.b.len());
        let seq = faer::Par::Seq;
        let xs = Mat::<f32>::from_fn(n, d, |i, j| x[(i, j)] as f32 * c_in);
        let mut hm = Mat::<f32>::zeros(n, h);
        matmul(hm.as_mut(), Accum::Replace, xs.as_ref(), self.input.w.as_ref().subrows(0, d), 1.0, seq);
        let mut t1 = Mat::<f32>::zeros(n, h);
        let mut u = Mat::<f32>::zeros(n, h);
        // `hm` lacks the bias of the layer that wrote it last; the next SiLU adds and stores it.
        let mut pending = bias;
        for (l1, l2) in &self.blocks {
            bias_silu(hm.as_mut(), pending, true, t1.as_mut());
            matmul(u.as_mut(), Accum::Replace, t1.as_ref(), l1.w.as_ref(), 1.0, seq);
            bias_silu(u.as_mut(), &l1.b, false, t1.as_mut());
            matmul(hm.as_mut(), Accum::Add, t1.as_ref(), l2.w.as_ref(), 1.0, seq);
            pending = &l2.b;
        }
        bias_silu(hm.as_mut(), pending, false, t1.as_mut());
        let mut o = Mat::<f32>::zeros(n, d);
        matmul(o.as_mut(), Accum::Replace, t1.as_ref(), self.output.w.as_ref(), 1.0, seq);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::{bias_silu, bias_silu_body, fast_exp};

    /// `bias_silu` compiled for this CPU's vectors gives the baseline build's bits.
    #[test]
    fn the_wide_bias_silu_is_the_baseline_bit_for_bit() {
        let src = faer::Mat::<f32>::from_fn(300, 3, |i, j| (i as f32 - 150.0) * 0.11 * (j + 1) as f32);
        let b = [0.5f32, -1.25, 3.0];
        let (mut s1, mut s2) = (src.clone(), src.clone());
        let (mut d1, mut d2) = (faer::Mat::<f32>::zeros(300, 3), faer::Mat::<f32>::zeros(300, 3));
        bias_silu(s1.as_mut(), &b, true, d1.as_mut());
        bias_silu_body(s2.as_mut(), &b, true, d2.as_mut());
        let bits = |m: &faer::Mat<f32>| {
            (0..3).flat_map(|j| (0..300).map(move |i| (i, j))).map(|(i, j)| m[(i, j)].to_bits()).collect::<Vec<_>>()
        };
        assert_eq!((bits(&d1), bits(&s1)), (bits(&d2), bits(&s2)));
        // Every copy this CPU runs, not only the widest.
        #[cfg(target_arch = "x86_64")]
        for (isa, on) in [("avx512", crate::wide::avx512()), ("avx2", crate::wide::avx2())] {
            let (mut s3, mut d3) = (src.clone(), faer::Mat::<f32>::zeros(300, 3));
            // SAFETY: each copy runs only where its instruction set was detected.
            match (isa, on) {
                ("avx512", true) => unsafe { bias_silu::avx512(s3.as_mut(), &b, true, d3.as_mut()) },
                ("avx2", true) => unsafe { bias_silu::avx2(s3.as_mut(), &b, true, d3.as_mut()) },
                _ => continue,
            }
            assert_eq!((bits(&d3), bits(&s3)), (bits(&d2), bits(&s2)), "{isa}");
        }
    }

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
