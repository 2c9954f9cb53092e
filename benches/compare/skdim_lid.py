"""scikit-dimension 0.5 beside geomem-lid on the same points.

1. cargo run --release -p geomem-benches --bin lid_speed DIR [SET] [ESTIMATOR]
   (writes DIR/SET.npy, geomem's outputs and timings)
2. python benches/compare/skdim_lid.py DIR [SET] [ESTIMATOR]
   (times scikit-dimension on the same points and compares the outputs where geomem's are there)

SET: points (10-dimensional Gaussian subspace of R^784, N = 10 000), curved (tanh(F z), z in
10 dimensions), fashion (the first 10 000 Fashion-MNIST training images, f64 in [0, 1]),
fashion60k (all 60 000), or all (the first three). ESTIMATOR: mle, twonn, twonn-pw or all
(twonn-pw not on fashion60k). Sets of 10 000 points are timed best of 3 (as lid_speed),
fashion60k once. Keys end in _SET, as in lid_speed's output. Run one estimator per process to
read its peak memory (/usr/bin/time -v).
"""
import sys, time, json, os
import numpy as np
import skdim

d = sys.argv[1] if len(sys.argv) > 1 else "target/lid_speed"
which = sys.argv[2] if len(sys.argv) > 2 else "all"
what = sys.argv[3] if len(sys.argv) > 3 else "all"
sets = ["points", "curved", "fashion"] if which == "all" else [which]


def best_of(reps, f):
    """Fastest of `reps` runs and the last result (lid_speed times its side the same way)."""
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter(); out = f(); best = min(best, time.perf_counter() - t)
    return best, out


def max_rel_diff(ours_file, theirs):
    """Largest relative difference to geomem's values, if lid_speed wrote them."""
    if not os.path.exists(ours_file):
        return None
    ours = np.load(ours_file).ravel()
    return float(np.nanmax(np.abs(ours - theirs) / np.abs(theirs)))


out = {}
for s in sets:
    X = np.load(f"{d}/{s}.npy")
    reps = 1 if s == "fashion60k" else 3
    if what in ("all", "mle"):
        out["mle_k20_s_" + s], m = best_of(reps, lambda: skdim.id.MLE().fit(X, n_neighbors=20))
        out["mle_max_rel_diff_" + s] = max_rel_diff(f"{d}/mle_pw_{s}.npy", m.dimension_pw_)
        out["mle_harmonic_" + s] = float(m.dimension_)
    if what in ("all", "twonn"):
        out["twonn_global_s_" + s], tw = best_of(reps, lambda: skdim.id.TwoNN().fit(X))
        out["twonn_" + s] = float(tw.dimension_)
    if (what == "all" and s != "fashion60k") or what == "twonn-pw":
        out["twonn_pointwise_100_s_" + s], pw = best_of(1, lambda: skdim.id.TwoNN().fit_pw(X, n_neighbors=100))
        out["twonn_pw_max_rel_diff_" + s] = max_rel_diff(f"{d}/twonn_pw_{s}.npy", pw.dimension_pw_)
print(json.dumps(out))
