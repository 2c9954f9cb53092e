//! What one forward image of a [`UNetConfig`] costs in multiply-adds: every convolution's
//! shape in the order of the net's parameters, and the sums. A spectrum's price follows:
//! the Normal Bundle matrix of seed 001 (Supp. B.1, Algorithm 2 with `K = 4d`) is `8d`
//! forward images, the exact Jacobian one forward image and `d` reverse rows of about the
//! same arithmetic.

use crate::unet::UNetConfig;

/// One convolution of the forward pass (biases aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Side of its output map (square).
    pub side: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side: 3, or 1 for the residual skips and the attention's projections.
    pub kernel: usize,
    /// Stride: 2 for the downsampling convolutions, 1 otherwise.
    pub stride: usize,
}

impl ConvShape {
    /// Multiply-adds per image: `side² · kernel² · cin · cout` (`None` on overflow).
    pub fn multiply_adds(&self) -> Option<u128> {
        [self.side, self.side, self.kernel * self.kernel, self.cin, self.cout]
            .iter()
            .try_fold(1u128, |acc, &v| acc.checked_mul(v as u128))
    }
}

/// Multiply-adds of one forward image, by kind. GroupNorm, SiLU, the softmax and the
/// additions are not counted: they are a few operations per activation, not per weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiplyAdds {
    /// The 3 × 3 stride-1 convolutions: the bulk, the ones Winograd's algorithms take.
    pub conv3x3: u128,
    /// The strided 3 × 3 convolutions and the 1 × 1 ones.
    pub other_convs: u128,
    /// The attention's two products `Q Kᵀ` and `A V`: `2 · (side²)² · c` per block.
    pub attention: u128,
    /// The time embedding's linear layers and each residual block's projection of it.
    pub linear: u128,
}

impl MultiplyAdds {
    /// All of them.
    pub fn total(&self) -> u128 {
        self.conv3x3 + self.other_convs + self.attention + self.linear
    }
}

impl UNetConfig {
    /// Every convolution of the forward pass in the order of the net's parameters: the
    /// input convolution, the down stages (each residual block's two 3 × 3 convolutions and
    /// its 1 × 1 skip where the width changes, then the attention's four 1 × 1 projections
    /// where the level has attention), the downsampling convolutions, the middle, the up
    /// stages, the upsampling convolutions, the output convolution.
    ///
    /// # Errors
    /// As [`UNetConfig::check`].
    pub fn convolutions(&self) -> crate::error::Result<Vec<ConvShape>> {
        self.check()?;
        let (nf, levels, rb) = (self.base, self.mults.len(), self.res_blocks);
        let side = |l: usize| self.image_size >> l;
        let conv = |side, cin, cout, kernel, stride| ConvShape { side, cin, cout, kernel, stride };
        let res = |out: &mut Vec<ConvShape>, s: usize, i: usize, o: usize| {
            out.extend([conv(s, i, o, 3, 1), conv(s, o, o, 3, 1)]);
            if i != o {
                out.push(conv(s, i, o, 1, 1));
            }
        };
        let attn = |out: &mut Vec<ConvShape>, s: usize, c: usize| out.extend([conv(s, c, c, 1, 1); 4]);
        let mut out = vec![conv(side(0), self.channels, nf, 3, 1)];
        let (down, up) = self.plan();
        let stages = |out: &mut Vec<ConvShape>, plan: &[(usize, usize, bool)], level: &dyn Fn(usize) -> usize| {
            for (n, &(i, o, a)) in plan.iter().enumerate() {
                res(out, side(level(n)), i, o);
                if a {
                    attn(out, side(level(n)), o);
                }
            }
        };
        stages(&mut out, &down, &|n| n / rb);
        out.extend((0..levels - 1).map(|l| conv(side(l + 1), nf * self.mults[l], nf * self.mults[l], 3, 2)));
        let (top, bottom) = (self.top_width(), side(levels - 1));
        res(&mut out, bottom, top, top);
        attn(&mut out, bottom, top);
        res(&mut out, bottom, top, top);
        stages(&mut out, &up, &|n| levels - 1 - n / (rb + 1));
        out.extend((1..levels).rev().map(|l| conv(side(l - 1), nf * self.mults[l], nf * self.mults[l], 3, 1)));
        out.push(conv(side(0), nf * self.mults[0], self.channels, 3, 1));
        Ok(out)
    }

    /// Multiply-adds of one forward image ([`MultiplyAdds`]). The paper's MNIST net
    /// (`experiments/unet/mnist.json`) has 4.08 · 10⁹ in its 3 × 3 stride-1 convolutions.
    ///
    /// # Errors
    /// As [`UNetConfig::check`]; [`crate::NetsError::InvalidParameter`] when a count
    /// overflows `u128`.
    pub fn multiply_adds(&self) -> crate::error::Result<MultiplyAdds> {
        let convs = self.convolutions()?;
        let overflow = || crate::error::NetsError::InvalidParameter {
            name: "unet size",
            value: format!("{:?}", self.mults),
            reason: "its multiply-adds overflow u128",
        };
        let sum = |it: &mut dyn Iterator<Item = Option<u128>>| checked_sum(it).ok_or_else(overflow);
        let is3 = |c: &ConvShape| c.kernel == 3 && c.stride == 1;
        let conv3x3 = sum(&mut convs.iter().filter(|c| is3(c)).map(ConvShape::multiply_adds))?;
        let other_convs = sum(&mut convs.iter().filter(|c| !is3(c)).map(ConvShape::multiply_adds))?;
        let attention = sum(&mut self.attention_blocks().map(|(s, c)| {
            let hw = (s as u128).checked_mul(s as u128)?;
            hw.checked_mul(hw)?.checked_mul(2 * c as u128)
        }))?;
        // The embedding's two layers, then each residual block's projection 4·base → width.
        let nf = self.base as u128;
        let (down, up) = self.plan();
        let widths = down.iter().chain(&up).map(|b| b.1 as u128).sum::<u128>() + 2 * self.top_width() as u128;
        let linear =
            sum(&mut [nf.checked_mul(4 * nf), (4 * nf).checked_mul(4 * nf), (4 * nf).checked_mul(widths)].into_iter())?;
        Ok(MultiplyAdds { conv3x3, other_convs, attention, linear })
    }

    /// The width of the deepest level.
    fn top_width(&self) -> usize {
        self.base * self.mults[self.mults.len() - 1]
    }

    /// (side, channels) of every attention block: the stages whose level has attention, and
    /// the middle's.
    fn attention_blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (down, up) = self.plan();
        let (levels, rb) = (self.mults.len(), self.res_blocks);
        let side = move |l: usize| self.image_size >> l;
        let down = down.into_iter().enumerate().filter(|b| b.1 .2).map(move |(n, b)| (side(n / rb), b.1));
        let up =
            up.into_iter().enumerate().filter(|b| b.1 .2).map(move |(n, b)| (side(levels - 1 - n / (rb + 1)), b.1));
        let mid = std::iter::once((side(levels - 1), self.top_width()));
        down.chain(mid).chain(up)
    }
}

/// The sum of `it`, `None` if an item or the sum overflows.
fn checked_sum(it: &mut dyn Iterator<Item = Option<u128>>) -> Option<u128> {
    let mut acc = 0u128;
    for v in it {
        acc = acc.checked_add(v?)?;
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-level net counted by hand (8 × 8, base 8, attention at 4 × 4): every 3 × 3
    /// stride-1 convolution is `side² · 9 · cin · cout`, the skips and the attention's
    /// projections `side² · cin · cout`, the attention products `2 · (side²)² · c`.
    #[test]
    fn a_small_net_costs_what_its_hand_count_says() {
        let cfg = UNetConfig::new(8, 1).with_base(8).with_mults(vec![1, 2]).with_attn_resolutions(vec![4]);
        let cfg = cfg.with_res_blocks(1).with_groups(4);
        let (s8, s4) = (64u128, 16u128);
        let conv3 = s8 * 9 * (8 + 2 * 64)
            + s4 * 9 * (128 + 256)
            + s4 * 9 * 4 * 256
            + s4 * 9 * (512 + 256 + 384 + 256)
            + s8 * 9 * (192 + 64 + 128 + 64)
            + s8 * 9 * 256
            + s8 * 9 * 8;
        let skips = s4 * (128 + 512 + 384) + s8 * (192 + 128);
        let other = skips + 4 * (4 * s4 * 256) + s4 * 9 * 64;
        let linear = 8 * 32 + 32 * 32 + 32 * (8 + 16 + 16 + 16 + 8 + 8 + 2 * 16);
        let want = MultiplyAdds { conv3x3: conv3, other_convs: other, attention: 4 * 2 * s4 * s4 * 16, linear };
        assert_eq!(cfg.multiply_adds().unwrap(), want);
        // In, down (2, 3 + attention 4), downsample, middle (2 + 4 + 2), up (4 blocks of 3, two
        // with attention), upsample, out.
        assert_eq!(cfg.convolutions().unwrap().len(), 1 + 2 + 3 + 4 + 1 + 8 + 4 * 3 + 2 * 4 + 1 + 1);
    }

    /// The paper's MNIST net: 4.08 · 10⁹ multiply-adds in its 3 × 3 stride-1 convolutions
    /// (the figure in [`UNetConfig::multiply_adds`]'s documentation), far more than the rest.
    #[test]
    fn the_papers_mnist_net_costs_four_billion_multiply_adds_an_image() {
        let cfg = UNetConfig::new(28, 1).with_mults(vec![1, 2, 2]);
        let m = cfg.multiply_adds().unwrap();
        assert_eq!(m.conv3x3 / 10_000_000, 407, "{m:?}");
        assert!(m.other_convs + m.attention + m.linear < m.conv3x3 / 10, "{m:?}");
    }

    #[test]
    fn a_bad_config_is_an_error() {
        let cfg = UNetConfig::new(9, 1).with_mults(vec![1, 2]);
        assert!(cfg.convolutions().is_err());
        assert!(cfg.multiply_adds().is_err());
    }
}
