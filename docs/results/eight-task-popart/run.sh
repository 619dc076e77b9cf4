#!/usr/bin/env bash
# PopArt on the 8-task embedded suite (issue 19): shared and taskid_mi with learner.popart=true, the
# eight-task grid's settings otherwise (../eight-task/run.sh: cued pair, Adam, constant lr, batch 8,
# serial mode), so its no-PopArt runs are the baseline. Resumable: run it again to continue.
# Usage: nice -n 10 docs/results/eight-task-popart/run.sh [OUT (default runs/eight-task-popart)] [SEEDS (default 5)]
# Env: FRAMES (default 250000), PARALLEL (default 2), BETA (learner.popart_beta, default 0.003).
set -eu
OUT=${1:-runs/eight-task-popart}
SEEDS=${2:-5}
PY=${PYTHON:-.venv/bin/python}
"$PY" launch.py compare --heads shared,taskid_mi --seeds "$SEEDS" \
    --parallel "${PARALLEL:-2}" --eval-episodes 10 --out "$OUT" \
    mode=serial env.options.cued=true total_frames="${FRAMES:-250000}" learner.batch_size=8 \
    learner.lr_schedule=constant learner.popart=true learner.popart_beta="${BETA:-0.003}"
