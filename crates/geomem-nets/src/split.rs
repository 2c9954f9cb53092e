//! Batch splitting: one batch cut into fixed contiguous parts whose gradients are computed
//! on their own rayon tasks and summed in part order, so the numbers do not depend on the
//! number of threads; and the ε-MSE every trainer minimises.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

/// `‖pred − eps‖²` as a mean (`total = None`) or as a sum over `total` entries, and its
/// gradients (one backward pass).
pub(crate) fn mse_and_grads<B: AutodiffBackend, const D: usize>(
    pred: Tensor<B, D>,
    eps: Tensor<B, D>,
    total: Option<usize>,
) -> (Tensor<B::InnerBackend, 1>, B::Gradients) {
    let diff = pred - eps;
    let sq = diff.clone() * diff;
    let loss = match total {
        None => sq.mean(),
        Some(n) => sq.sum().mul_scalar(1.0 / n as f64),
    };
    let grads = loss.backward();
    (loss.inner(), grads)
}

/// The gradients of one batch of `b` rows split into `parts` contiguous parts, each part's
/// loss and gradients from `part` (its loss scaled so that the parts add up to the whole
/// batch's) on its own rayon task with a fresh autodiff copy of the weights (so the parts
/// share no graph), summed in part order: the same numbers whatever the number of threads.
pub(crate) fn split_grads<B, M, F>(
    model: &M,
    b: usize,
    parts: usize,
    part: F,
) -> (GradientsParams, Tensor<B::InnerBackend, 1>)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: Fn(&M, std::ops::Range<usize>) -> (Tensor<B::InnerBackend, 1>, B::Gradients) + Sync,
{
    use rayon::prelude::*;
    let jobs: Vec<_> = (0..parts).map(|p| (M::from_inner(model.valid()), p * b / parts..(p + 1) * b / parts)).collect();
    let mut done: Vec<(GradientsParams, Tensor<B::InnerBackend, 1>)> = jobs
        .into_par_iter()
        .map(|(copy, rows)| {
            let (loss, grads) = part(&copy, rows);
            (GradientsParams::from_grads(grads, &copy), loss)
        })
        .collect();
    let (mut grads, mut loss) = done.remove(0);
    for (g, l) in done {
        model.visit(&mut AddGrads { acc: &mut grads, other: g });
        loss = loss + l;
    }
    (grads, loss)
}

/// Adds the gradients `other` into `acc`, parameter by parameter.
struct AddGrads<'a> {
    acc: &'a mut GradientsParams,
    other: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for AddGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let (a, o) =
            (self.acc.remove::<B::InnerBackend, D>(param.id), self.other.remove::<B::InnerBackend, D>(param.id));
        if let Some(sum) = match (a, o) {
            (Some(a), Some(o)) => Some(a + o),
            (a, o) => a.or(o),
        } {
            self.acc.register(param.id, sum);
        }
    }
}
