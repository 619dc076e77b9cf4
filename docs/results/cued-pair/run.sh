#!/usr/bin/env bash
# The cued-pair head comparison of issue 15: 4 heads + the one-hot-context ablation of taskid_mi,
# 10 seeds, on collect_green_cued / collect_red_cued, under the embedded config's Adam with a
# constant learning rate (no budget-dependent anneal), batch 8 (the batch of ../embedded-heads/).
# The two grids run side by side (the heads two runs at a time, the ablation one): three training
# processes. Resumable: run it again to continue; raise SEEDS to add seeds.
# Usage: nice -n 10 docs/results/cued-pair/run.sh [OUT (default runs/cued-pair)] [SEEDS (default 10)]
# Env: FRAMES (default 250000) per run.
set -u
OUT=${1:-runs/cued-pair}
SEEDS=${2:-10}
FRAMES=${FRAMES:-250000}
PY=${PYTHON:-.venv/bin/python}
COMMON=(mode=serial env.options.cued=true 'tasks=[collect_green_cued,collect_red_cued]'
        total_frames="$FRAMES" learner.batch_size=8 learner.lr_schedule=constant)
mkdir -p "$OUT"
"$PY" launch.py compare --heads shared,multihead,taskid_mi,learnt_mi --seeds "$SEEDS" --parallel 2 \
    --eval-episodes 20 --out "$OUT/heads" "${COMMON[@]}" > "$OUT/heads.log" 2>&1 &
HEADS=$!
"$PY" launch.py compare --heads taskid_mi --seeds "$SEEDS" --parallel 1 --eval-episodes 20 \
    --out "$OUT/onehot" "${COMMON[@]}" agent.mi_context=onehot > "$OUT/onehot.log" 2>&1 &
ONEHOT=$!
wait $HEADS; A=$?
wait $ONEHOT; B=$?
exit $(( A || B ))
