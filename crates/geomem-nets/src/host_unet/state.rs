//! A burn module's parameters and Adam moments as flat host vectors (burn's own layouts, in
//! visiting order), and back.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{Adam, AdamState, AdaptiveMomentumState, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// burn's Adam records of a module `M` (a map from parameter id to state).
pub(crate) type AdamRecs<B, M> = <OptimizerAdaptor<Adam, M, B> as Optimizer<M, B>>::Record;

/// The shapes and values of every float parameter, in visiting order.
pub(crate) fn params<B: Backend, M: Module<B>>(m: &M) -> (Vec<Vec<usize>>, Vec<Vec<f32>>) {
    crate::host_train::read(m).into_iter().map(|(_, d, v)| (d, v)).unzip()
}

/// Replaces every float parameter's values with the next host vector, keeping its id.
pub(crate) struct WriteFlat<'a> {
    pub src: std::slice::Iter<'a, Vec<f32>>,
    pub grad: bool,
}

impl<B: Backend> ModuleMapper<B> for WriteFlat<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(src) = self.src.next() else { return param };
        let grad = self.grad;
        param.map(|t| {
            let t = Tensor::from_data(TensorData::new(src.clone(), t.dims()), &t.device());
            if grad {
                t.require_grad()
            } else {
                t
            }
        })
    }
}

/// burn's Adam moments in visiting order (zeros before any step) and Adam's step count.
pub(crate) struct Moments<'a, B: AutodiffBackend, M: AutodiffModule<B>> {
    pub records: &'a AdamRecs<B, M>,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub time: usize,
    /// Whether a moment could not be read back as `f32`.
    pub failed: bool,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> ModuleVisitor<B> for Moments<'_, B, M> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let n = p.val().shape().num_elements();
        let mut host = |t: Tensor<B::InnerBackend, D>| match t.into_data().convert::<f32>().to_vec::<f32>() {
            Ok(v) if v.len() == n => v,
            _ => {
                self.failed = true;
                vec![0.0; n]
            }
        };
        if let Some(r) = self.records.get(&p.id) {
            let s: AdamState<B::InnerBackend, D> = r.clone().into_state();
            self.time = s.momentum.time;
            self.m.push(host(s.momentum.moment_1));
            self.v.push(host(s.momentum.moment_2));
        } else {
            self.m.push(vec![0.0; n]);
            self.v.push(vec![0.0; n]);
        }
    }
}

/// burn's Adam records of `model` holding the host moments.
pub(crate) struct Records<'a, B: AutodiffBackend, M: AutodiffModule<B>> {
    pub m: std::slice::Iter<'a, Vec<f32>>,
    pub v: std::slice::Iter<'a, Vec<f32>>,
    pub time: usize,
    pub out: AdamRecs<B, M>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> ModuleVisitor<B> for Records<'_, B, M> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        let (Some(m), Some(v)) = (self.m.next(), self.v.next()) else { return };
        let dims = p.val().dims();
        let dev = p.val().device();
        let t = |x: &Vec<f32>| Tensor::<B::InnerBackend, D>::from_data(TensorData::new(x.clone(), dims), &dev);
        let state = AdamState::new(AdaptiveMomentumState::new(self.time, t(m), t(v)));
        self.out.insert(p.id, AdaptorRecord::from_state(state));
    }
}

/// First and second moments in visiting order, and Adam's step.
pub(crate) type AdamMoments = (Vec<Vec<f32>>, Vec<Vec<f32>>, usize);

/// The moments of `model`'s parameters held by `records`, and Adam's step.
///
/// # Errors
/// [`crate::NetsError::Record`] when a moment cannot be read back as `f32` of its shape.
pub(crate) fn moments<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    records: &AdamRecs<B, M>,
) -> crate::error::Result<AdamMoments> {
    let mut mo = Moments::<B, M> { records, m: Vec::new(), v: Vec::new(), time: 0, failed: false };
    model.visit(&mut mo);
    if mo.failed {
        return Err(crate::NetsError::Record("an Adam moment could not be read back as f32".into()));
    }
    Ok((mo.m, mo.v, mo.time))
}
