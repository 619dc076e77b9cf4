#!/usr/bin/env bash
# The README's cluster recipe ("On a cluster") run in containers on one machine: a user-defined
# bridge network (private to this machine), a head container and two worker containers started with
# the README's `ray start` lines, `launch.py train ray_address=auto` run from the head, one worker
# container killed (SIGKILL) mid-run and started again; the run must go on (an actor restart in
# events.jsonl, frames still growing afterwards, the worker back in the cluster) and stop cleanly
# on SIGTERM (exit 143, a checkpoint).
#
#   scripts/image/cluster_local.sh        # normally run by: scripts/image/build_local.sh --cluster
#
# Environment: IMPALA_MU_IMAGE (default impala-mu:local), IMPALA_MU_DOCKER_SOCK (default
# /var/tmp/impala-mu-docker/docker.sock, build_local.sh's private dockerd), CLUSTER_CONFIG (default
# configs/embedded.yaml). Differences from the README, all forced by one machine without a GPU:
# --network NET instead of --net=host (three nodes on one host), the head's container name instead
# of HEAD_IP, no --gpus (the learner runs on the CPU), smaller --shm-size. The containers and the
# network are removed at the end, also on failure.
set -euo pipefail
IMAGE="${IMPALA_MU_IMAGE:-impala-mu:local}"
SOCK="${IMPALA_MU_DOCKER_SOCK:-/var/tmp/impala-mu-docker/docker.sock}"
CONFIG="${CLUSTER_CONFIG:-configs/embedded.yaml}"
NET=impala-mu-cluster HEAD=impala-mu-head WORKERS=(impala-mu-worker1 impala-mu-worker2)
LOGDIR=/tmp/runs/cluster
docker() { /usr/bin/docker -H "unix://${SOCK}" "$@"; }
die() { echo "cluster_local: $*" >&2; exit 1; }
T0=$SECONDS
say() { echo "[cluster_local] +$((SECONDS - T0)) s: $*"; }

cleanup() {
  docker rm -f "$HEAD" "${WORKERS[@]}" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
alive_nodes() {   # the number of alive nodes `ray status` lists on the head
  docker exec "$HEAD" ray status 2>/dev/null | sed -n '/^Active:/,/^Pending:/p' | grep -c 'node_' || true
}
wait_nodes() {   # wait_nodes N SECONDS
  for _ in $(seq "$2"); do [[ "$(alive_nodes)" == "$1" ]] && return 0; sleep 1; done
  docker exec "$HEAD" ray status || true
  die "the cluster did not reach $1 alive nodes in $2 s"
}
frames() {   # env frames of the newest metrics.jsonl record (0 before the first)
  docker exec "$HEAD" python -c "
import json, pathlib
p = pathlib.Path('${LOGDIR}/metrics.jsonl')
lines = p.read_text().splitlines() if p.exists() else []
print(json.loads(lines[-1])['frames'] if lines else 0)"
}

docker network create "$NET" >/dev/null
say "network ${NET} (bridge)"
# head node: the README's line, minus --gpus all / --net=host
docker run -d --name "$HEAD" --network "$NET" --shm-size=2g "$IMAGE" \
  ray start --head --port=6379 --num-cpus=0 --num-gpus=1 --block >/dev/null
# worker nodes: the README's line with the head's name for HEAD_IP
for w in "${WORKERS[@]}"; do
  docker run -d --name "$w" --network "$NET" --shm-size=1g "$IMAGE" \
    ray start --address="${HEAD}:6379" --num-cpus="$(nproc)" --block >/dev/null
done
wait_nodes 3 120
say "head + 2 workers alive"
docker exec "$HEAD" ray status | sed -n '/^Resources/,$p' | grep -E 'CPU|GPU' || true

# training from the head, as the README launches it (the pid file lets us SIGTERM it by pid)
docker exec "$HEAD" bash -c "echo \$\$ > /tmp/train.pid; exec python launch.py train --config ${CONFIG} \
  ray_address=auto logdir=${LOGDIR}" >"/tmp/cluster_local.train.log" 2>&1 &
EXEC_PID=$!
for _ in $(seq 180); do [[ "$(frames)" -gt 0 ]] && break; kill -0 "$EXEC_PID" 2>/dev/null || break; sleep 1; done
BEFORE="$(frames)"
[[ "$BEFORE" -gt 0 ]] || { cat /tmp/cluster_local.train.log; die "training reported no frames in 180 s"; }
say "training: ${BEFORE} frames reported; docker kill ${WORKERS[0]}"
docker kill "${WORKERS[0]}" >/dev/null
sleep 15
AT_RESTART="$(frames)"
say "${AT_RESTART} frames; docker start ${WORKERS[0]} (its ray start joins as a new node)"
docker start "${WORKERS[0]}" >/dev/null
wait_nodes 3 120
say "3 nodes alive again"
for _ in $(seq 120); do [[ "$(frames)" -gt "$AT_RESTART" ]] && break; sleep 1; done
sleep 20
AFTER="$(frames)"
say "${AFTER} frames; SIGTERM to launch.py"
docker exec "$HEAD" bash -c 'kill -TERM "$(cat /tmp/train.pid)"'
rc=0; wait "$EXEC_PID" || rc=$?
say "launch.py exited with status ${rc}"
tail -25 /tmp/cluster_local.train.log
RESTARTS="$(docker exec "$HEAD" grep -c '"actor_restart"' "${LOGDIR}/events.jsonl" || true)"
CKPTS="$(docker exec "$HEAD" bash -c "ls ${LOGDIR}/checkpoints | grep -c '^ckpt-.*\\.pt$'" || true)"
say "frames ${BEFORE} at the kill, ${AT_RESTART} at the restart, ${AFTER} at the end; ${RESTARTS} actor restarts; ${CKPTS} checkpoint files"
[[ "$rc" == 143 ]] || die "launch.py exit status ${rc}, expected 143 (SIGTERM, after a checkpoint)"
[[ "$RESTARTS" -ge 1 ]] || die "no actor_restart event: the killed worker's actor was not replaced"
[[ "$AFTER" -gt "$AT_RESTART" && "$AT_RESTART" -ge "$BEFORE" ]] || die "frames did not grow after the worker was killed"
[[ "$CKPTS" -ge 1 ]] || die "no checkpoint in ${LOGDIR}"
say "OK: the run survived a worker container's SIGKILL and restart"
