#!/bin/bash
# Alternating rounds of geomem-lid's k-NN estimators beside scikit-dimension on Fashion-MNIST
# (and the synthetic sets), as in docs/BENCHMARKS.md: per round the geomem binary with its
# fastest screens, an older build (OLD_BIN, e.g. one built from an earlier commit in a git
# worktree; without it, the same binary with GEOMEM_NO_VNNI=1: the screens before the
# lattice screen), then scikit-dimension; each in its own process under /usr/bin/time (peak
# memory). MLE_ROUNDS sets the rounds at 10 000 (default 3).
#
#   cargo build --release -p geomem-benches --bin lid_speed
#   python3 -m venv .venv-skdim && .venv-skdim/bin/pip install scikit-dimension==0.5.0
#   benches/compare/lid_rounds.sh target/release/lid_speed .venv-skdim/bin/python target/lid_speed
set -u
B=${1:-target/release/lid_speed}
PY=${2:-.venv-skdim/bin/python}
DIR=${3:-target/lid_speed}
OLD=(env GEOMEM_NO_VNNI=1 "$B")
if [ -n "${OLD_BIN:-}" ]; then OLD=("$OLD_BIN"); fi
mkdir -p "$DIR"
one() { # label command...
  local label=$1; shift
  local start load
  start=$(date +%H:%M:%S)
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%M kB %P" -o "$DIR/time.txt" "$@" > "$DIR/out.txt" 2>/dev/null
  echo "$label start=$start load=$load $(tail -1 "$DIR/out.txt") $(cat "$DIR/time.txt")"
}
for est in mle twonn; do
  for r in $(seq "${MLE_ROUNDS:-3}"); do
    one "new fashion $est r$r" "$B" "$DIR" fashion "$est"
    one "old fashion $est r$r" "${OLD[@]}" "$DIR" fashion "$est"
    one "skdim fashion $est r$r" "$PY" benches/compare/skdim_lid.py "$DIR" fashion "$est"
  done
done
for est in mle twonn; do
  for r in 1 2; do
    one "new fashion60k $est r$r" "$B" "$DIR" fashion60k "$est"
    one "old fashion60k $est r$r" "${OLD[@]}" "$DIR" fashion60k "$est"
    one "skdim fashion60k $est r$r" "$PY" benches/compare/skdim_lid.py "$DIR" fashion60k "$est"
  done
done
for set in points curved; do
  for r in 1 2; do
    one "new $set mle r$r" "$B" "$DIR" "$set" mle
    one "old $set mle r$r" "${OLD[@]}" "$DIR" "$set" mle
  done
done
