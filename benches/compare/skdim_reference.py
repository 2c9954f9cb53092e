"""Reference numbers of scikit-dimension 0.5 for geomem-lid's tests (crates/geomem-lid/tests/skdim.rs).

The data set is a formula (no random generator), written the same way in the Rust test:
point i of 300 has u = frac(0.618…·i), v = frac(0.414…·i), w = frac(0.732…·i) and coordinates
(cos 2πu, sin 2πu, v, w·v, sin 3w, 0.5·u·v): a 3-dimensional manifold in R^6.
Run: python benches/compare/skdim_reference.py  (needs scikit-dimension==0.5.0)
"""
import numpy as np
import skdim


def data(n=300):
    i = np.arange(n, dtype=float)
    u = np.mod(i * 0.6180339887498949, 1.0)
    v = np.mod(i * 0.41421356237309515, 1.0)
    w = np.mod(i * 0.7320508075688772, 1.0)
    return np.stack([np.cos(2 * np.pi * u), np.sin(2 * np.pi * u), v, w * v, np.sin(3 * w), 0.5 * u * v], axis=1)


X = data()
m = skdim.id.MLE().fit(X, n_neighbors=20)
print("mle_pw[0..5]", repr(m.dimension_pw_[:5].tolist()))
for comb in ["mle", "mean", "median"]:
    print("mle", comb, repr(skdim.id.MLE().fit(X, n_neighbors=20, comb=comb).dimension_))
print("mle unbiased k=10", repr(skdim.id.MLE(unbiased=True).fit(X, n_neighbors=10).dimension_pw_[:3].tolist()))
print("twonn linear", repr(skdim.id.TwoNN().fit(X).dimension_))
print("twonn mle", repr(skdim.id.TwoNN(method="mle").fit(X).dimension_))
print("twonn pw[0..5]", repr(skdim.id.TwoNN().fit_pw(X, n_neighbors=100).dimension_pw_[:5].tolist()))
