#!/usr/bin/env bash
# A Slurm array job: one DVC experiment per task of cluster/grid.yaml, each in its own clone, pushed to
# the shared Git remote (its DVC outputs to the project's default DVC remote). Submit from a checkout:
#   REPO=<shared Git remote URL> sbatch --export=ALL \
#     --array=0-$(( $(python3 cluster/experiments.py cluster/grid.yaml --count) - 1 )) cluster/slurm.sh
#SBATCH --job-name=dvc-experiments
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
set -euo pipefail
: "${REPO:?set REPO to the URL of the shared Git remote}" "${SLURM_ARRAY_TASK_ID:?run me as an array task}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet "$REPO" "$work/project"
cd "$work/project"
make install
export PATH="$PWD/.venv/bin:$PATH"
python cluster/experiments.py cluster/grid.yaml --task "$SLURM_ARRAY_TASK_ID"
