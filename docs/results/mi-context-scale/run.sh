#!/usr/bin/env bash
# The MI context-scale measurement (docs/results/mi-context-scale/README.md): on the cued pair,
# taskid_mi at scales 1, 1/sqrt(C), 1/C against multihead, under the embedded config's Adam and under
# the DMLab-30 optimizer settings (TF RMSProp, decay 0.99, epsilon 0.1, momentum 0, lr 3.19e-4).
# Two chains side by side (one per optimizer: 2 training processes at a time on the shared 2-core
# machine), each seed-major over its cells, so a stopped measurement is balanced across cells.
# Every cell is a resumable `launch.py compare` grid: re-running this script continues it.
# Usage: nice -n 10 docs/results/mi-context-scale/run.sh [OUT (default runs/mi-context-scale)] [SEEDS (default 3)]
# Env: FRAMES (default 50000) and BATCH (default 16) per run; SKIP_ADAM_1C=1 leaves out the Adam 1/C
# cell (multihead and taskid_mi at the Adam default: the same runs as ../cued-pair/run.sh's heads grid
# when FRAMES=250000 BATCH=8; summarize.py --adam-1c DIR reads them from there); ONLY=adam or
# ONLY=rmsprop runs one chain (e.g. to start other work on the core the shorter chain frees).
set -u
OUT=${1:-runs/mi-context-scale}
SEEDS=${2:-3}
PY=${PYTHON:-.venv/bin/python}
COMMON=(mode=serial env.options.cued=true 'tasks=[collect_green_cued,collect_red_cued]'
        total_frames="${FRAMES:-50000}" learner.batch_size="${BATCH:-16}" learner.lr_schedule=constant)
ADAM=(learner.optimizer=adam)
RMSPROP=(learner.optimizer=rmsprop learner.learning_rate=0.00031866995608948655 learner.rmsprop_decay=0.99
         learner.rmsprop_epsilon=0.1 learner.rmsprop_momentum=0.0)

cell() {   # cell OPT_NAME SCALE_DIR SCALE HEADS SEEDS OPT_OVERRIDES...
    local opt=$1 dir=$2 scale=$3 heads=$4 seeds=$5; shift 5
    "$PY" launch.py compare --heads "$heads" --seeds "$seeds" --parallel 1 --eval-episodes 10 \
        --out "$OUT/$opt/$dir" "${COMMON[@]}" "$@" "agent.mi_context_scale=$scale"
}

chain() {  # chain OPT_NAME OPT_OVERRIDES...
    local opt=$1; shift
    for k in $(seq 1 "$SEEDS"); do
        if [ "$opt" != adam ] || [ "${SKIP_ADAM_1C:-0}" != 1 ]; then
            cell "$opt" scale_1_C '1/C' multihead,taskid_mi "$k" "$@"
        fi
        cell "$opt" scale_1_sqrtC '1/sqrt(C)' taskid_mi "$k" "$@"
        cell "$opt" scale_1 1 taskid_mi "$k" "$@"
    done
}

PIDS=()
if [ "${ONLY:-adam}" = adam ]; then chain adam "${ADAM[@]}" > "$OUT.adam.log" 2>&1 & PIDS+=($!); fi
if [ "${ONLY:-rmsprop}" = rmsprop ]; then chain rmsprop "${RMSPROP[@]}" > "$OUT.rmsprop.log" 2>&1 & PIDS+=($!); fi
[ ${#PIDS[@]} -gt 0 ] || { echo "ONLY=${ONLY}: expected adam or rmsprop" >&2; exit 2; }
wait "${PIDS[@]}"
