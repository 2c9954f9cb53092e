//! A trained network as a [`ScoreField`]: `s(x, t) = -ε̂(x, √t)/√t`.
use crate::model::ResidualMlp;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use faer::{MatMut, MatRef};
use geomem_score::{check_dim, check_time, Result, ScoreError, ScoreField};

/// Rows per forward pass.
const CHUNK: usize = 4096;

/// The score of a trained [`ResidualMlp`] (usually its EMA weights), on any backend.
#[derive(Debug, Clone)]
pub struct TrainedScore<B: Backend> {
    model: ResidualMlp<B>,
    device: B::Device,
}

impl<B: Backend> TrainedScore<B> {
    /// Wraps a network living on `device`.
    pub fn new(model: ResidualMlp<B>, device: B::Device) -> Self {
        Self { model, device }
    }
    /// The network.
    pub fn model(&self) -> &ResidualMlp<B> {
        &self.model
    }
}

impl<B: Backend> ScoreField for TrainedScore<B> {
    fn dim(&self) -> usize {
        self.model.d
    }

    /// # Formula
    /// `s(x, t) = -ε̂(x, σ = √t) / σ`, evaluated in `f32` in chunks of 4096 rows.
    fn score_batch_into(&self, x: MatRef<'_, f64>, t: f64, mut out: MatMut<'_, f64>) -> Result<()> {
        let d = self.dim();
        check_dim(d, x.ncols())?;
        check_dim(d, out.ncols())?;
        check_dim(x.nrows(), out.nrows())?;
        check_time(t)?;
        let sigma = t.sqrt();
        let mut start = 0;
        while start < x.nrows() {
            let len = CHUNK.min(x.nrows() - start);
            let mut buf = Vec::with_capacity(len * d);
            for i in start..start + len {
                for j in 0..d {
                    let v = x[(i, j)];
                    if !v.is_finite() {
                        return Err(ScoreError::NonFinite("points x"));
                    }
                    buf.push(v as f32);
                }
            }
            // One noise level per call: condition one row and repeat it.
            let (cin, emb) = self.model.conditioning(&[sigma as f32], &self.device);
            let (cin, emb) = (cin.repeat_dim(0, len), emb.repeat_dim(0, len));
            let xt = Tensor::<B, 2>::from_data(TensorData::new(buf, [len, d]), &self.device);
            let eps = self.model.forward(xt, cin, emb).into_data();
            let eps: Vec<f32> = eps.to_vec().map_err(|e| ScoreError::Backend(format!("{e:?}")))?;
            for r in 0..len {
                for j in 0..d {
                    out[(start + r, j)] = -f64::from(eps[r * d + j]) / sigma;
                }
            }
            start += len;
        }
        Ok(())
    }
}
