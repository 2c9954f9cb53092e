#!/bin/bash
# A trained-network sweep as a SLURM job array: each array task runs one shard of the job
# list (job index mod SLURM_ARRAY_TASK_COUNT == task index), skipping jobs already complete,
# so a preempted task can simply be resubmitted. When every task has finished, make the
# figures once:  cargo xtask aggregate experiments/full/fig5.toml --out results
#
#   cargo build --release -p xtask [--features cuda]     # once, on the login node
#   sbatch --array=0-15 experiments/cluster/slurm_array.sh experiments/full/fig5.toml
#
# The image figure shards the same way, one training-set size per task (its file keeps run
# directories, checkpoint_every > 0); when every task has finished, run the same file once
# without --shard to draw the figure from the saved results:
#   sbatch --array=0-39 experiments/cluster/slurm_array.sh experiments/full/figures/image_dimension_fashion.toml
#   target/release/xtask run experiments/full/figures/image_dimension_fashion.toml --out results
#
#SBATCH --job-name=geomem-sweep
#SBATCH --cpus-per-task=2
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
SPEC=${1:?usage: sbatch --array=0-K slurm_array.sh SPEC.toml [OUT]}
OUT=${2:-results}
# --shard auto reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT.
exec target/release/xtask run "$SPEC" --out "$OUT" --shard auto --workers "${SLURM_CPUS_PER_TASK:-1}"
