"""PyTorch reference for `benches/src/bin/unet_speed.rs`: the same DDPM U-Net (written from
the architecture description in crates/geomem-nets/src/unet.rs), the same training step
(uniform k, eps-MSE, Adam lr 1e-4 eps 1e-8, global-norm clipping at 1, EMA update) and the
same timing protocol (batch 128, 20 warm-up steps, STEPS timed steps; forward passes of 256
images at step 10).

Usage: python benches/compare/torch_unet.py [CONFIG.json] [STEPS] [spectrum]

STEPS = 0 skips training. `spectrum` also times the work of one image spectrum as
`benches/src/bin/image_spectrum_speed.rs` does it: 2K = 8d forward images in batches of 512
(central differences of K = 4d perturbations of one image) and the singular values of the
d x K matrix.
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


def emb(k, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half) / (half - 1))
    a = k[:, None].float() * f[None]
    return torch.cat([a.sin(), a.cos()], 1)


class Res(nn.Module):
    def __init__(s, i, o, temb, g, p):
        super().__init__()
        s.n0, s.c0 = nn.GroupNorm(g, i, eps=1e-6), nn.Conv2d(i, o, 3, padding=1)
        s.t = nn.Linear(temb, o)
        s.n1, s.drop, s.c1 = nn.GroupNorm(g, o, eps=1e-6), nn.Dropout(p), nn.Conv2d(o, o, 3, padding=1)
        s.skip = nn.Conv2d(i, o, 1) if i != o else None

    def forward(s, x, temb):
        h = s.c0(F.silu(s.n0(x))) + s.t(F.silu(temb))[:, :, None, None]
        h = s.c1(s.drop(F.silu(s.n1(h))))
        return (s.skip(x) if s.skip is not None else x) + h


class Attn(nn.Module):
    def __init__(s, c, g):
        super().__init__()
        s.n, s.q, s.k, s.v, s.o = nn.GroupNorm(g, c, eps=1e-6), *[nn.Conv2d(c, c, 1) for _ in range(4)]

    def forward(s, x):
        b, c, h, w = x.shape
        y = s.n(x)
        q, k, v = (m(y).reshape(b, c, h * w) for m in (s.q, s.k, s.v))
        a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), -1)
        return x + s.o((v @ a.transpose(1, 2)).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(s, cfg):
        super().__init__()
        nf, m, R, g, p = cfg["base"], cfg["mults"], cfg["res_blocks"], cfg["groups"], cfg["dropout"]
        s.nf, s.L, s.R = nf, len(m), R
        s.t0, s.t1 = nn.Linear(nf, 4 * nf), nn.Linear(4 * nf, 4 * nf)
        s.cin = nn.Conv2d(cfg["channels"], nf, 3, padding=1)
        attn = lambda l: (cfg["image_size"] >> l) in cfg["attn_resolutions"]
        s.down, s.ds, hs, ch = nn.ModuleList(), nn.ModuleList(), [nf], nf
        for l in range(s.L):
            for _ in range(R):
                s.down.append(nn.ModuleList([Res(ch, nf * m[l], 4 * nf, g, p)] + ([Attn(nf * m[l], g)] if attn(l) else [])))
                ch = nf * m[l]
                hs.append(ch)
            if l + 1 < s.L:
                s.ds.append(nn.Conv2d(ch, ch, 3, stride=2))
                hs.append(ch)
        s.m0, s.ma, s.m1 = Res(ch, ch, 4 * nf, g, p), Attn(ch, g), Res(ch, ch, 4 * nf, g, p)
        s.up, s.us = nn.ModuleList(), nn.ModuleList()
        for l in reversed(range(s.L)):
            for _ in range(R + 1):
                s.up.append(nn.ModuleList([Res(ch + hs.pop(), nf * m[l], 4 * nf, g, p)] + ([Attn(nf * m[l], g)] if attn(l) else [])))
                ch = nf * m[l]
            if l > 0:
                s.us.append(nn.Conv2d(ch, ch, 3, padding=1))
        s.nout, s.cout = nn.GroupNorm(g, ch, eps=1e-6), nn.Conv2d(ch, cfg["channels"], 3, padding=1)

    @staticmethod
    def stage(st, h, temb):
        h = st[0](h, temb)
        return st[1](h) if len(st) > 1 else h

    def forward(s, x, k):
        temb = s.t1(F.silu(s.t0(emb(k, s.nf))))
        hs = [s.cin(x)]
        for l in range(s.L):
            for b in range(s.R):
                hs.append(s.stage(s.down[l * s.R + b], hs[-1], temb))
            if l + 1 < s.L:
                hs.append(s.ds[l](F.pad(hs[-1], (0, 1, 0, 1))))
        h = s.m1(s.ma(s.m0(hs[-1], temb)), temb)
        ups, i = iter(s.us), 0
        for l in reversed(range(s.L)):
            for _ in range(s.R + 1):
                h = s.stage(s.up[i], torch.cat([h, hs.pop()], 1), temb)
                i += 1
            if l > 0:
                h = next(ups)(F.interpolate(h, scale_factor=2, mode="nearest"))
        return s.cout(F.silu(s.nout(h)))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "experiments/unet/digits.json"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    cfg = json.load(open(path))
    net = UNet(cfg)
    print(f"{path}: {sum(p.numel() for p in net.parameters())} parameters, torch {torch.__version__}, {torch.get_num_threads()} threads")
    ema = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-8)
    beta = torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - beta, 0).float()
    c, h = cfg["channels"], cfg["image_size"]
    data = torch.rand(1024, c, h, h) * 2 - 1

    def step():
        idx = torch.randint(0, 1024, (128,))
        k = torch.randint(0, 1000, (128,))
        eps = torch.randn(128, c, h, h)
        a = ab[k][:, None, None, None]
        loss = F.mse_loss(net(a.sqrt() * data[idx] + (1 - a).sqrt() * eps, k), eps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.lerp_(p, 1e-4)

    if steps > 0:
        for _ in range(20):
            step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        dt = time.perf_counter() - t0
        print(f"training: {steps / dt:.2f} steps/s (batch 128)")
    x, k = torch.full((256, c, h, h), 0.1), torch.full((256,), 10)
    with torch.no_grad():
        net(x, k)
        t0 = time.perf_counter()
        for _ in range(10):
            net(x, k)
        dt = time.perf_counter() - t0
    print(f"forward: {2560 / dt:.0f} images/s (batch 256)")
    if len(sys.argv) > 3 and sys.argv[3] == "spectrum":
        spectrum_time(net, c, h)


def spectrum_time(net, c, h):
    d = c * h * h
    x0 = torch.sin(0.37 * torch.arange(d, dtype=torch.float32)).reshape(c, h, h) * 0.9
    n = torch.randn(4 * d, c, h, h)
    sigma = 0.01
    t0 = time.perf_counter()
    cols = []
    with torch.no_grad():
        for start in range(0, 4 * d, 256):  # 256 perturbations = 512 images per batch
            nb = n[start:start + 256]
            xb = torch.cat([x0 + sigma * nb, x0 - sigma * nb])
            e = net(xb, torch.zeros(xb.shape[0]))
            cols.append((e[:nb.shape[0]] - e[nb.shape[0]:]).reshape(nb.shape[0], d))
    m = torch.cat(cols).double().numpy().T
    s = __import__("numpy").linalg.svd(m, compute_uv=False)
    dt = time.perf_counter() - t0
    print(f"spectrum: {dt:.2f} s for {8 * d} forward images and a {d} x {4 * d} SVD ({len(s)} values)")


if __name__ == "__main__":
    main()
