//! The U-Net's single-head self-attention over the pixels of each image, forward and
//! backward: `A = softmax_rows(Q Kᵀ/√c)`, `Y = A V` per image, `out = x + W_o Y`.

use super::ops::{mm, Act, Conv, Norm, NormStats};
use faer::{Accum, MatMut, MatRef};

#[derive(Clone, Debug)]
pub(crate) struct Attn {
    pub norm: Norm,
    pub q: Conv,
    pub k: Conv,
    pub v: Conv,
    pub out: Conv,
}

/// What the backward pass of attention needs.
pub(crate) struct AttnTape {
    x: Act,
    s: NormStats,
    t: Act,
    q: Act,
    k: Act,
    v: Act,
    /// Per image the `hw × hw` attention weights, column-major.
    a: Vec<f32>,
    y: Act,
}

impl AttnTape {
    /// The tape of `m` copies of its one image for the input's reverse pass (the inputs of
    /// the convolutions by shape only).
    pub fn expand(&self, m: usize) -> AttnTape {
        AttnTape {
            x: self.x.expand(m),
            s: self.s.expand(m),
            t: self.t.shape(m),
            q: self.q.expand(m),
            k: self.k.expand(m),
            v: self.v.expand(m),
            a: self.a.repeat(m),
            y: self.y.shape(m),
        }
    }
}

/// Rows `b·hw..(b+1)·hw` of a feature map as an `hw × c` matrix.
fn image(a: &Act, b: usize) -> MatRef<'_, f32> {
    a.mat().subrows(b * a.hw(), a.hw())
}

fn image_mut(a: &mut Act, b: usize) -> MatMut<'_, f32> {
    let hw = a.hw();
    a.mat_mut().subrows_mut(b * hw, hw)
}

/// Softmax along each row of a column-major `n × n` block.
fn softmax_rows(s: &mut [f32], n: usize) {
    for r in 0..n {
        let max = (0..n).map(|c| s[c * n + r]).fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for c in 0..n {
            let e = crate::host::fast_exp(s[c * n + r] - max);
            s[c * n + r] = e;
            sum += e;
        }
        for c in 0..n {
            s[c * n + r] /= sum;
        }
    }
}

impl Attn {
    fn scale(&self) -> f32 {
        (self.norm.c as f32).powf(-0.5)
    }

    pub fn forward(&self, p: &[Vec<f32>], x: Act) -> (Act, AttnTape) {
        let (t, s) = self.norm.forward(p, &x);
        let (q, k, v) = (self.q.forward(p, &t), self.k.forward(p, &t), self.v.forward(p, &t));
        let (hw, nn) = (x.hw(), x.hw() * x.hw());
        let mut a = vec![0.0; x.b * nn];
        let mut y = Act::scratch(x.c, x.b, x.h);
        for b in 0..x.b {
            let ab = &mut a[b * nn..][..nn];
            let mut sm = MatMut::from_column_major_slice_mut(ab, hw, hw);
            mm(sm.as_mut(), Accum::Replace, image(&q, b), image(&k, b).transpose());
            ab.iter_mut().for_each(|v| *v *= self.scale());
            softmax_rows(ab, hw);
            let am = MatRef::from_column_major_slice(ab, hw, hw);
            mm(image_mut(&mut y, b), Accum::Replace, am, image(&v, b));
        }
        let mut out = self.out.forward(p, &y);
        out.add(&x);
        (out, AttnTape { x, s, t, q, k, v, a, y })
    }

    /// The input's gradient; adds the weights' to `g`.
    pub fn backward(&self, p: &[Vec<f32>], t: &AttnTape, dout: &Act, g: &mut [Vec<f32>]) -> Act {
        let (c, b, h) = (t.x.c, t.x.b, t.x.h);
        let mut dy = Act::zeros(c, b, h);
        self.out.backward(p, &t.y, dout, g, Some(&mut dy));
        let (mut dq, mut dk, mut dv) = (Act::scratch(c, b, h), Act::scratch(c, b, h), Act::scratch(c, b, h));
        let (hw, nn) = (t.x.hw(), t.x.hw() * t.x.hw());
        let mut ds = vec![0.0; nn];
        for i in 0..b {
            let am = MatRef::from_column_major_slice(&t.a[i * nn..][..nn], hw, hw);
            mm(image_mut(&mut dv, i), Accum::Replace, am.transpose(), image(&dy, i));
            let mut dsm = MatMut::from_column_major_slice_mut(&mut ds, hw, hw);
            mm(dsm.as_mut(), Accum::Replace, image(&dy, i), image(&t.v, i).transpose());
            // dS = A ⊙ (dA - rowsum(dA ⊙ A)), times the scale of the logits.
            let a = &t.a[i * nn..][..nn];
            for r in 0..hw {
                let dot: f32 = (0..hw).map(|col| ds[col * hw + r] * a[col * hw + r]).sum();
                for col in 0..hw {
                    let k = col * hw + r;
                    ds[k] = a[k] * (ds[k] - dot) * self.scale();
                }
            }
            let dsm = MatRef::from_column_major_slice(&ds, hw, hw);
            mm(image_mut(&mut dq, i), Accum::Replace, dsm, image(&t.k, i));
            mm(image_mut(&mut dk, i), Accum::Replace, dsm.transpose(), image(&t.q, i));
        }
        let mut dt = Act::zeros(c, b, h);
        self.q.backward(p, &t.t, &dq, g, Some(&mut dt));
        self.k.backward(p, &t.t, &dk, g, Some(&mut dt));
        self.v.backward(p, &t.t, &dv, g, Some(&mut dt));
        let mut dx = self.norm.backward(p, &t.x, &t.s, &dt, g);
        dx.add(dout);
        dx
    }
}
