"""scikit-dimension 0.5 beside geomem-lid on the same points (N = 10 000, d = 784).

1. cargo run --release -p geomem-benches --bin lid_speed DIR    (writes DIR/points.npy, timings)
2. python benches/compare/skdim_lid.py DIR                       (times skdim, compares outputs)
"""
import sys, time, json
import numpy as np
import skdim

d = sys.argv[1] if len(sys.argv) > 1 else "target/lid_speed"
X = np.load(f"{d}/points.npy")
out = {}
t = time.perf_counter(); m = skdim.id.MLE().fit(X, n_neighbors=20); out["mle_k20_s"] = time.perf_counter() - t
ours = np.load(f"{d}/mle_pw.npy").ravel()
out["mle_max_rel_diff"] = float(np.max(np.abs(ours - m.dimension_pw_) / m.dimension_pw_))
out["mle_harmonic"] = float(m.dimension_)
t = time.perf_counter(); tw = skdim.id.TwoNN().fit(X); out["twonn_global_s"] = time.perf_counter() - t
out["twonn"] = float(tw.dimension_)
sub = int(sys.argv[2]) if len(sys.argv) > 2 else 200
t = time.perf_counter(); pw = skdim.id.TwoNN().fit_pw(X, n_neighbors=100)
out["twonn_pointwise_100_s"] = time.perf_counter() - t
ours = np.load(f"{d}/twonn_pw.npy").ravel()
out["twonn_pw_max_rel_diff"] = float(np.nanmax(np.abs(ours - pw.dimension_pw_) / pw.dimension_pw_))
print(json.dumps(out))
