"""PyTorch reference for geomem-nets' training speed (docs/BENCHMARKS.md).

The same network as `geomem_nets::ResidualMlp` (hidden 128, two residual blocks of two
linear layers with SiLU, Fourier embedding of ln sigma concatenated to c_in * x, eps
prediction), the same loop (log-uniform sigma in [0.01, 50], batch 128, Adam lr 1e-3,
EMA of the weights after every step), on the CPU with the same thread count. The module
names match the safetensors export of geomem-nets, so `load_state_dict` reads
`ema.safetensors` from a run directory (pass it as the second argument to check).

Usage: python benches/compare/torch_mlp.py [THREADS] [path/to/ema.safetensors]
"""
import math
import sys
import time

import torch
from torch import nn

D, HIDDEN, EMB, BATCH = 30, 128, 32, 128


class Block(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.l1 = nn.Linear(h, h)
        self.l2 = nn.Linear(h, h)

    def forward(self, h):
        return h + self.l2(nn.functional.silu(self.l1(nn.functional.silu(h))))


class ResidualMlp(nn.Module):
    def __init__(self, d=D, hidden=HIDDEN, emb=EMB):
        super().__init__()
        self.input = nn.Linear(d + emb, hidden)
        self.blocks = nn.ModuleList([Block(hidden), Block(hidden)])
        self.output = nn.Linear(hidden, d)
        k = emb // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(math.log(0.1), math.log(10.0), k)), persistent=False)

    def forward(self, x, sigma):
        ls = torch.log(sigma)[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.sin(ls), torch.cos(ls)], dim=1)
        c_in = 1.0 / torch.sqrt(1.0 + sigma**2)
        h = self.input(torch.cat([x * c_in[:, None], emb], dim=1))
        for b in self.blocks:
            h = b(h)
        return self.output(nn.functional.silu(h))


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = torch.randn(1000, D) * torch.cat([torch.ones(2), torch.full((5,), 0.3**0.5), torch.zeros(D - 7)])
    model = ResidualMlp()
    ema = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lo, hi = math.log(0.01), math.log(50.0)

    def step(k):
        idx = torch.randint(0, data.shape[0], (BATCH,))
        sigma = torch.exp(lo + (hi - lo) * torch.rand(BATCH))
        eps = torch.randn(BATCH, D)
        xt = data[idx] + sigma[:, None] * eps
        loss = ((model(xt, sigma) - eps) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(0.9999, (1 + k) / (10 + k))
        with torch.no_grad():
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, [p.detach() for p in model.parameters()], alpha=1 - decay)
        return loss

    for k in range(200):
        step(k)
    n = 3000
    start = time.perf_counter()
    for k in range(n):
        loss = step(k)
    loss.item()
    dt = time.perf_counter() - start
    print(f"torch {torch.__version__} threads={threads}: training {n / dt:.0f} steps/s (batch {BATCH}, d {D})")

    x = torch.randn(1024, D)
    sigma = torch.full((1024,), 0.5)
    with torch.no_grad():
        for _ in range(20):
            model(x, sigma)
        reps = 300
        start = time.perf_counter()
        for _ in range(reps):
            (-model(x, sigma) / sigma[:, None])
        dt = time.perf_counter() - start
    print(f"torch score evaluation: {reps * 1024 / dt:.0f} points/s (batch 1024)")

    if len(sys.argv) > 2:
        from safetensors.torch import load_file
        state = load_file(sys.argv[2])
        m = ResidualMlp(d=state["output.weight"].shape[0])
        missing = m.load_state_dict(state, strict=True)
        print(f"loaded {sys.argv[2]}: {len(state)} tensors, strict load ok ({missing})")


if __name__ == "__main__":
    main()
