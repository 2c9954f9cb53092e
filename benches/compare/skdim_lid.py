"""scikit-dimension 0.5 beside geomem-lid on the same points (N = 10 000, d = 784).

1. cargo run --release -p geomem-benches --bin lid_speed DIR    (writes DIR/points.npy and
   DIR/curved.npy, geomem's outputs and timings)
2. python benches/compare/skdim_lid.py DIR                       (times skdim on both, compares)

points.npy: a 10-dimensional Gaussian subspace (linear rank 10); curved.npy: the
hidden-manifold model tanh(F z), z in 10 dimensions (full linear rank). Keys of the second
end in "_curved", as in lid_speed's output.
"""
import sys, time, json
import numpy as np
import skdim

d = sys.argv[1] if len(sys.argv) > 1 else "target/lid_speed"


def best_of(reps, f):
    """Fastest of `reps` runs and the last result (lid_speed times its side the same way)."""
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter(); out = f(); best = min(best, time.perf_counter() - t)
    return best, out


out = {}
for name, tag in [("points", ""), ("curved", "_curved")]:
    X = np.load(f"{d}/{name}.npy")
    out["mle_k20_s" + tag], m = best_of(3, lambda: skdim.id.MLE().fit(X, n_neighbors=20))
    ours = np.load(f"{d}/mle_pw{tag}.npy").ravel()
    out["mle_max_rel_diff" + tag] = float(np.max(np.abs(ours - m.dimension_pw_) / m.dimension_pw_))
    out["mle_harmonic" + tag] = float(m.dimension_)
    out["twonn_global_s" + tag], tw = best_of(3, lambda: skdim.id.TwoNN().fit(X))
    out["twonn" + tag] = float(tw.dimension_)
    out["twonn_pointwise_100_s" + tag], pw = best_of(1, lambda: skdim.id.TwoNN().fit_pw(X, n_neighbors=100))
    ours = np.load(f"{d}/twonn_pw{tag}.npy").ravel()
    out["twonn_pw_max_rel_diff" + tag] = float(np.nanmax(np.abs(ours - pw.dimension_pw_) / pw.dimension_pw_))
print(json.dumps(out))
