"""Loads the weights written by `benches/src/bin/unet_export.rs` into the PyTorch U-Net of
`torch_unet.py` (same module order; burn's linear weights are `in x out`, PyTorch's
`out x in`) and compares the two forward passes on the exported input.

Usage:
  cargo run --release -p geomem-benches --bin unet_export -- experiments/unet/digits.json target/unet_fwd
  python benches/compare/torch_unet_forward.py experiments/unet/digits.json target/unet_fwd
"""
import json, sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from torch_unet import UNet  # noqa: E402


def main():
    cfg = json.load(open(sys.argv[1]))
    out = Path(sys.argv[2])
    shapes = json.load(open(out / "params.json"))
    flat = np.fromfile(out / "params.bin", dtype="<f4")
    net = UNet(cfg).eval()
    params = list(net.parameters())
    if len(params) != len(shapes):
        sys.exit(f"{len(params)} PyTorch parameters, {len(shapes)} exported")
    at = 0
    with torch.no_grad():
        for i, (p, shape) in enumerate(zip(params, shapes)):
            n = int(np.prod(shape))
            v = torch.from_numpy(flat[at:at + n].copy()).reshape(shape)
            at += n
            if len(shape) == 2:  # burn Linear: in x out
                v = v.T
            if tuple(v.shape) != tuple(p.shape):
                sys.exit(f"parameter {i}: exported {tuple(v.shape)}, PyTorch {tuple(p.shape)}")
            p.copy_(v)
    if at != flat.size:
        sys.exit(f"{flat.size - at} exported scalars left over")
    c, h = cfg["channels"], cfg["image_size"]
    x = torch.from_numpy(np.fromfile(out / "input.bin", dtype="<f4").reshape(-1, c, h, h))
    k = torch.tensor(json.load(open(out / "steps.json")), dtype=torch.float32)
    ours = np.fromfile(out / "output.bin", dtype="<f4").reshape(x.shape)
    with torch.no_grad():
        ref = net(x, k).numpy()
    diff = np.abs(ours - ref)
    scale = np.abs(ref).max()
    print(f"{sys.argv[1]}: {len(params)} tensors, {at} scalars; output max |ref| {scale:.4g}, "
          f"max |geomem - torch| {diff.max():.3g} ({diff.max() / scale:.2e} of max), "
          f"rms {np.sqrt((diff ** 2).mean()):.3g}")
    for i, step in enumerate(k.tolist()):
        print(f"  step {step:>5.0f}: max |diff| {diff[i].max():.3g}, max |ref| {np.abs(ref[i]).max():.4g}")


if __name__ == "__main__":
    main()
