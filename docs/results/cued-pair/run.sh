#!/usr/bin/env bash
# The cued-pair head comparison of issue 15 (PREPARED, NOT RUN YET: see README.md): 4 heads + the
# one-hot-context ablation of taskid_mi, 10 seeds, on collect_green_cued / collect_red_cued, under the
# embedded config's Adam with a constant learning rate (no budget-dependent anneal). Resumable: run
# it again to continue; raise --seeds to add seeds. Then `launch.py report` over both grids' runs is
# refused (two taskid_mi groups), so each grid has its own report and the ablation is compared by run.
# Usage: nice -n 10 docs/results/cued-pair/run.sh [OUT (default runs/cued-pair)] [SEEDS (default 10)]
set -eu
OUT=${1:-runs/cued-pair}
SEEDS=${2:-10}
PY=${PYTHON:-.venv/bin/python}
COMMON=(mode=serial env.options.cued=true 'tasks=[collect_green_cued,collect_red_cued]'
        total_frames=400000 learner.lr_schedule=constant)
"$PY" launch.py compare --heads shared,multihead,taskid_mi,learnt_mi --seeds "$SEEDS" --parallel 2 \
    --eval-episodes 20 --out "$OUT/heads" "${COMMON[@]}"
"$PY" launch.py compare --heads taskid_mi --seeds "$SEEDS" --parallel 2 --eval-episodes 20 \
    --out "$OUT/onehot" "${COMMON[@]}" agent.mi_context=onehot
