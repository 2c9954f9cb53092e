//! A tape of one image made the tape of a batch of `m` copies of it: what
//! [`super::HostUNet::vjp`] hands the reverse pass, so that `m` cotangents go back through
//! the layers as a batch on the kernels the training step uses. The values the input's
//! reverse pass reads (GroupNorm's inputs and statistics, SiLU's inputs) stay one image,
//! which the reverse pass broadcasts over the batch (`Norm::backward`, `silu_grad_act`): no
//! copy per cotangent. The inputs of convolutions, whose values only their weights'
//! gradients read, are kept by shape alone ([`super::ops::Act::shape`]); the attention's
//! tape is copied per cotangent ([`super::attn::AttnTape::expand`]). So an expanded tape
//! serves the input's reverse pass only.

use super::{Producer, ResTape, StageTape, Tape};
use std::sync::Arc;

impl ResTape {
    fn expand(&self, m: usize) -> ResTape {
        ResTape {
            x: Arc::clone(&self.x),
            s0: self.s0.clone(),
            n0: self.n0.clone(),
            a0: self.a0.shape(m),
            h0: self.h0.clone(),
            s1: self.s1.clone(),
            n1: self.n1.clone(),
            a1: self.a1.shape(m),
        }
    }
}

impl StageTape {
    fn expand(&self, m: usize) -> StageTape {
        StageTape { res: self.res.expand(m), attn: self.attn.as_ref().map(|a| a.expand(m)) }
    }
}

impl Producer {
    fn expand(&self, m: usize) -> Producer {
        match self {
            Producer::Stage(i, t) => Producer::Stage(*i, Box::new(t.expand(m))),
            Producer::Down(l, x) => Producer::Down(*l, Arc::new(x.shape(m))),
        }
    }
}

impl Tape {
    /// The tape of `m` copies of the one image this tape was kept for (the time
    /// embedding's values are not copied: the reverse pass of the input does not read them).
    pub(crate) fn expand(&self, m: usize) -> Tape {
        let mid = self.mid.as_deref().map(|(a, b, c)| Box::new((a.expand(m), b.expand(m), c.expand(m))));
        let up = self
            .up
            .iter()
            .map(|(tapes, upx)| {
                let tapes = tapes.iter().map(|(t, c)| (t.expand(m), *c)).collect();
                (tapes, upx.as_ref().map(|x| x.shape(m)))
            })
            .collect();
        Tape {
            b: m,
            emb: Vec::new(),
            t0: Vec::new(),
            s0: Vec::new(),
            temb: Vec::new(),
            st: Vec::new(),
            x: self.x.shape(m),
            down: self.down.iter().map(|p| p.expand(m)).collect(),
            mid,
            up,
            on: self.on.clone(),
            so: self.so.clone(),
            no: self.no.clone(),
            ao: self.ao.shape(m),
        }
    }
}
