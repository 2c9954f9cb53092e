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
out = {}
for name, tag in [("points", ""), ("curved", "_curved")]:
    X = np.load(f"{d}/{name}.npy")
    t = time.perf_counter(); m = skdim.id.MLE().fit(X, n_neighbors=20); out["mle_k20_s" + tag] = time.perf_counter() - t
    ours = np.load(f"{d}/mle_pw{tag}.npy").ravel()
    out["mle_max_rel_diff" + tag] = float(np.max(np.abs(ours - m.dimension_pw_) / m.dimension_pw_))
    out["mle_harmonic" + tag] = float(m.dimension_)
    t = time.perf_counter(); tw = skdim.id.TwoNN().fit(X); out["twonn_global_s" + tag] = time.perf_counter() - t
    out["twonn" + tag] = float(tw.dimension_)
    t = time.perf_counter(); pw = skdim.id.TwoNN().fit_pw(X, n_neighbors=100)
    out["twonn_pointwise_100_s" + tag] = time.perf_counter() - t
    ours = np.load(f"{d}/twonn_pw{tag}.npy").ravel()
    out["twonn_pw_max_rel_diff" + tag] = float(np.nanmax(np.abs(ours - pw.dimension_pw_) / pw.dimension_pw_))
print(json.dumps(out))
