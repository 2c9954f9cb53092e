"""Side-by-side reference for geomem's empirical Jacobian spectrum (docs/BENCHMARKS.md).

The same algorithm as `EmpiricalScore::jacobian_spectrum`, in numpy with OpenBLAS:
log-sum-exp posterior weights, dropping weights below 1e-16/N (also from the posterior mean
when fewer than a quarter survive), the weighted centred points
A = sqrt(w) (y - m), eigenvalues of A^T A (or of the Gram matrix A A^T when fewer than d
weights survive), spectrum |(c/t - 1)/t|.  It reads the inputs written by
`cargo run --release -p geomem-benches --bin export_bench_data -- DIR`, checks that its
spectrum equals geomem's, and prints the best of 5 timings.

Usage: python benches/compare/empirical_jacobian.py DIR
"""
import sys
import time

import numpy as np


def jacobian_spectrum(Y, half_sq, x, t):
    a = Y @ x - half_sq
    a = (a - a.max()) / t
    w = np.exp(a)
    w /= w.sum()
    keep = w > 1e-16 / Y.shape[0]
    if 4 * keep.sum() > Y.shape[0]:  # as geomem: full product when many weights survive
        m = w @ Y
        Yk, wk = Y, w
        if not keep.all():
            Yk, wk = Y[keep], w[keep]
    else:
        Yk, wk = Y[keep], w[keep]
        m = wk @ Yk
    A = np.sqrt(wk)[:, None] * (Yk - m)
    k, d = A.shape
    if k < d:
        c = np.linalg.eigvalsh(A @ A.T)
    else:
        c = np.linalg.eigvalsh(A.T @ A)  # numpy uses syrk for A.T @ A
    s = np.abs((np.maximum(c, 0.0) / t - 1.0) / t)
    if k < d:
        s = np.concatenate([s, np.full(d - k, 1.0 / t)])
    return np.sort(s)[::-1]


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "target/bench-data"
    Y = np.load(f"{d}/Y.npy")
    x = np.load(f"{d}/x.npy")[0]
    half_sq = 0.5 * np.einsum("ij,ij->i", Y, Y)
    try:
        from threadpoolctl import threadpool_info
        for p in threadpool_info():
            print(f"# {p.get('internal_api')} {p.get('version')} threads={p.get('num_threads')} arch={p.get('architecture')}")
    except ImportError:
        pass
    for t in (1e3, 1.0):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            s = jacobian_spectrum(Y, half_sq, x, t)
            best = min(best, time.perf_counter() - start)
        ref = np.load(f"{d}/spectrum_t{t:g}.npy")[0]
        err = np.max(np.abs(s - ref)) / np.max(np.abs(ref))
        print(f"numpy jacobian_spectrum N={Y.shape[0]} d={Y.shape[1]} t={t}: best of 5 = {best * 1e3:.2f} ms (max rel. diff. to geomem {err:.1e})")


if __name__ == "__main__":
    main()
