#!/usr/bin/env bash
# The many-task test of issue 15: 4 heads on the 8-task embedded suite with the cued pair
# (env.options.cued=true, tasks=[]: every task identifiable from its first frame, mixed reward
# scales), 5 seeds, the embedded config's Adam, constant learning rate, batch 8, serial mode.
# Resumable: run it again to continue.
# Usage: nice -n 10 docs/results/eight-task/run.sh [OUT (default runs/eight-task)] [SEEDS (default 5)]
# Env: FRAMES (default 250000, the committed results) per run, PARALLEL (default 2) runs at a time.
set -eu
OUT=${1:-runs/eight-task}
SEEDS=${2:-5}
PY=${PYTHON:-.venv/bin/python}
"$PY" launch.py compare --heads shared,multihead,taskid_mi,learnt_mi --seeds "$SEEDS" \
    --parallel "${PARALLEL:-2}" --eval-episodes 10 --out "$OUT" \
    mode=serial env.options.cued=true total_frames="${FRAMES:-250000}" learner.batch_size=8 \
    learner.lr_schedule=constant
