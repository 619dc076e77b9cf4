#!/usr/bin/env bash
# A real multi-node Ray cluster on this machine (loopback), as the README's "On a cluster" starts it:
# `ray start --head`, two `ray start --address` worker nodes, then `launch.py train ray_address=...`;
# one worker node's raylet is SIGKILLed mid-run and the node restarted; the run must finish; then
# `launch.py evaluate` on the same cluster. Every process is stopped by the pid this script started
# (never `ray stop`: it would stop other users' clusters). Prints one summary line per step.
#   scripts/cluster_check.sh [PYTHON]      (default .venv/bin/python; ~3-6 min on 2 busy cores)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
RAY="$(dirname "$PY")/ray"
WORK=$(mktemp -d /tmp/cluster_check.XXXXXX)
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
PIDFILE=$WORK/pids      # (node runs in $(...) subshells: a file, not an array, collects the pids)
say() { echo "[cluster_check $(date -u +%H:%M:%S)] $*"; }
node() {   # name, args...: a `ray start --block` in its own session; its pid in PIDFILE
    local name=$1; shift
    setsid "$RAY" start --block --node-ip-address=127.0.0.1 --disable-usage-stats "$@" >"$WORK/$name.log" 2>&1 &
    echo $! >>"$PIDFILE"; echo $!
}
descendants() { local p; for p in $(ps -o pid= --ppid "$1"); do echo "$p"; descendants "$p"; done; }
cleanup() {
    for p in $(cat "$PIDFILE" 2>/dev/null); do
        local tree; tree="$p $(descendants "$p")"
        kill -TERM $tree 2>/dev/null; sleep 2; kill -KILL $tree 2>/dev/null
    done
}
trap cleanup EXIT
export RAY_AUTH_MODE=disabled
nodes() { "$RAY" status --address="$ADDR" 2>/dev/null | grep -c 'node_'; }
up() {   # name, expected node count, args...: starts a node, retrying (a loaded machine can miss
         # Ray's fixed 30 s registration deadline); echoes its pid
    local name=$1 want=$2; shift 2
    for try in 1 2 3; do
        local pid; pid=$(node "$name" "$@")
        for i in $(seq 60); do
            [ "$(nodes)" -ge "$want" ] && { echo "$pid"; return; }
            kill -0 "$pid" 2>/dev/null || break
            sleep 2
        done
        say "node $name did not come up (try $try): $(grep -m1 -E 'Exception|Error' "$WORK/$name.log")" >&2
        kill -TERM "$pid" $(descendants "$pid") 2>/dev/null; sleep 3
    done
    say "giving up: $name never joined"; exit 1
}
HEAD=$(node head --head --port="$PORT" --num-cpus=0 --include-dashboard=false)
for i in $(seq 60); do "$RAY" status --address="$ADDR" >/dev/null 2>&1 && break; sleep 2; done
W1=$(up worker1 2 --address="$ADDR" --num-cpus=1)
W2=$(up worker2 3 --address="$ADDR" --num-cpus=1)
say "cluster at $ADDR: head pid $HEAD, workers $W1 $W2; $("$RAY" status --address="$ADDR" 2>/dev/null | grep -c 'node_') nodes"
LOGDIR=$WORK/run
TINY="torso=small agent.core_size=32 agent.torso_out=32 agent.context_size=8 agent.context_hidden=16 batch_size=4 unroll_length=8 run.report_every_seconds=5 device=cpu"
$PY launch.py train ray_address=$ADDR logdir=$LOGDIR num_actors=2 envs_per_actor=2 total_frames=40000 \
    actors.max_restarts=10 $TINY >"$WORK/train.log" 2>&1 &
TRAIN=$!; echo $TRAIN >>"$PIDFILE"
for i in $(seq 120); do grep -q '"event": "actor_started"' "$LOGDIR/events.jsonl" 2>/dev/null && [ -s "$LOGDIR/metrics.jsonl" ] && break; sleep 2; done
RAYLET=$(descendants "$W1" | while read -r p; do tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | grep -q '/raylet ' && echo "$p"; done | head -1)
say "training; killing worker1's raylet pid $RAYLET (frames so far: $(tail -1 "$LOGDIR/metrics.jsonl" | $PY -c 'import json,sys; print(json.load(sys.stdin)["frames"])'))"
kill -KILL "$RAYLET"
sleep 10
W3=$(up worker1b 3 --address="$ADDR" --num-cpus=1)
say "restarted worker1 as pid $W3"
wait $TRAIN; RC=$?
say "train exit status $RC; restarts $(grep -c '"event": "actor_restart"' "$LOGDIR/events.jsonl"); last report: $(tail -1 "$LOGDIR/metrics.jsonl" | cut -c1-120)"
tail -3 "$WORK/train.log" | sed 's/^/    /'
$PY launch.py evaluate "$LOGDIR" --episodes 2 --envs-per-task 1 ray_address=$ADDR num_actors=2 >"$WORK/eval.log" 2>&1
say "evaluate exit status $?: $(grep -m1 'results:' "$WORK/eval.log")"
tail -4 "$WORK/eval.log" | sed 's/^/    /'
say "logs in $WORK"
