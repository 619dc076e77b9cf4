#!/usr/bin/env bash
# Builds the Docker image on a machine without registry access (this project's CI machine kind:
# Debian 12, x86_64, root, no systemd) and tests it: the route to a cluster, run end to end.
#
#   scripts/image/build_local.sh [--cluster] [--no-build] [--cluster-only] [--tag TAG]
#
# Steps (each prints its duration):
#   engine   uses Debian's docker.io client (/usr/bin/docker, BuildKit) and, unless its socket already
#            answers, starts a private dockerd (nice 10) with its own data root and socket under
#            $IMPALA_MU_DOCKER_ROOT (default /var/tmp/impala-mu-docker); that dockerd is stopped by
#            its pid at the end, also on failure. Installs docker.io and debootstrap if missing.
#   base     local/bookworm:base, a minimal Debian 12 made with debootstrap from the mirror apt
#            uses (cached: the rootfs tarball is kept in the data root folder)
#   inputs   image-inputs/dmlab-sources (the pinned DeepMind Lab archives, from
#            $DMLAB_SOURCES, default ../shared/dmlab/sources) and image-inputs/wheels (the torch
#            wheel pip downloads with this machine's pip configuration: the CPU build here)
#   build    docker build with BASE_IMAGE=local/bookworm:base, TORCH_WHEEL, and the CA bundle
#            pip uses here as the build secret `ca`; prints the image size
#   check    the image's check script (scripts/image/check.sh)
#   pytest   python -m pytest in the image (tests/ mounted read-only, pytest from the host's pip
#            in a mounted folder, so the image tested is the image shipped): a fast subset and
#            the real-engine tests
#   train    launch.py train, SIGTERM 30 s after its first report (exit 143 and a checkpoint
#            required): configs/embedded.yaml and configs/dmlab30_local.yaml (DeepMind Lab's
#            compiled levels are cached in the data root folder, as natively in ~/.cache/impala-mu)
#   cluster  (--cluster) the README's cluster recipe in containers: scripts/image/cluster_local.sh
# --no-build skips the steps base, inputs and build and tests the image TAG as it is;
# --cluster-only runs the engine and cluster steps only (the image TAG as it is).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRATCH="${IMPALA_MU_DOCKER_ROOT:-/var/tmp/impala-mu-docker}"
DMLAB_SOURCES="${DMLAB_SOURCES:-${ROOT}/../shared/dmlab/sources}"
TAG="impala-mu:local"
BASE_TAG="local/bookworm:base"
CLUSTER=0 BUILD=1 TESTS=1
die() { echo "build_local: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster) CLUSTER=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --cluster-only) BUILD=0 TESTS=0 CLUSTER=1; shift ;;
    --tag) TAG="${2:?--tag needs a name}"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (expected --cluster, --no-build, --cluster-only or --tag TAG)" ;;
  esac
done
[[ "$(id -u)" == 0 ]] || die "run as root (dockerd and debootstrap need it)"
cd "$ROOT"
if [[ -x .venv/bin/pip ]]; then PIP=(.venv/bin/pip); else PIP=(python3 -m pip); fi   # this machine's pip configuration

T0=$SECONDS STEP_NAME="" STEP_T0=0
step() {   # step NAME: ends the previous step (printing its duration) and starts NAME
  if [[ -n "$STEP_NAME" ]]; then echo "[build_local] done: ${STEP_NAME} ($((SECONDS - STEP_T0)) s)"; fi
  STEP_NAME="$1" STEP_T0=$SECONDS
  if [[ -n "$1" ]]; then echo "[build_local] ${1} ..."; fi
}

# ------------------------------------------------------------------ engine
step "engine: Debian's docker.io and a private dockerd under ${SCRATCH}"
if [[ ! -x /usr/bin/docker || ! -x /usr/sbin/dockerd ]] || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi
mkdir -p "$SCRATCH"
SOCK="${SCRATCH}/docker.sock"
DOCKERD_PID=""
docker() { DOCKER_BUILDKIT=1 /usr/bin/docker -H "unix://${SOCK}" "$@"; }
stop_dockerd() {
  [[ -n "$DOCKERD_PID" ]] || return 0
  echo "[build_local] stopping the dockerd this script started (pid ${DOCKERD_PID})"
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  DOCKERD_PID=""
}
trap stop_dockerd EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if docker info >/dev/null 2>&1; then
  echo "[build_local] a dockerd already answers on ${SOCK}: using it (and leaving it running)"
else
  nice -n 10 /usr/sbin/dockerd --data-root "${SCRATCH}/data" --exec-root "${SCRATCH}/exec" \
    --pidfile "${SCRATCH}/dockerd.pid" -H "unix://${SOCK}" >"${SCRATCH}/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "${SCRATCH}/dockerd.log" >&2; die "dockerd did not start (log: ${SCRATCH}/dockerd.log)"; }
  echo "[build_local] dockerd pid ${DOCKERD_PID}, $(docker version --format 'server {{.Server.Version}}')"
fi

if [[ "$BUILD" == 1 ]]; then
  # ---------------------------------------------------------------- base
  step "base: ${BASE_TAG} (debootstrap --variant=minbase bookworm)"
  if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    echo "[build_local] ${BASE_TAG} exists"
  else
    ROOTFS_TAR="${SCRATCH}/rootfs-bookworm.tar"
    if [[ ! -f "$ROOTFS_TAR" ]]; then
      # The Debian mirror this machine's apt uses (sources.list or deb822 .sources).
      MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -o -E 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)"
      MIRROR="${MIRROR:-http://deb.debian.org/debian}"
      echo "[build_local] mirror ${MIRROR}"
      rm -rf "${SCRATCH}/rootfs"
      nice -n 10 debootstrap --variant=minbase bookworm "${SCRATCH}/rootfs" "$MIRROR" >"${SCRATCH}/debootstrap.log" 2>&1 \
        || { tail -20 "${SCRATCH}/debootstrap.log" >&2; die "debootstrap failed (log: ${SCRATCH}/debootstrap.log)"; }
      printf '%s\n' "deb ${MIRROR%/} bookworm main" "deb ${MIRROR%/} bookworm-updates main" \
        "deb ${MIRROR%/}-security bookworm-security main" >"${SCRATCH}/rootfs/etc/apt/sources.list"
      rm -rf "${SCRATCH}/rootfs/var/cache/apt/archives/"*.deb "${SCRATCH}/rootfs/var/lib/apt/lists/"*
      tar -C "${SCRATCH}/rootfs" -cf "${ROOTFS_TAR}.tmp" . && mv "${ROOTFS_TAR}.tmp" "$ROOTFS_TAR"
      rm -rf "${SCRATCH}/rootfs"
    fi
    docker import "$ROOTFS_TAR" "$BASE_TAG" >/dev/null
  fi

  # ---------------------------------------------------------------- inputs
  step "inputs: image-inputs/dmlab-sources and image-inputs/wheels"
  [[ -d "$DMLAB_SOURCES" ]] || die "DMLAB_SOURCES=${DMLAB_SOURCES} is not a folder (the pinned archives; or unset it to build --online)"
  mkdir -p image-inputs/dmlab-sources image-inputs/wheels
  for f in "$DMLAB_SOURCES"/*.tar.zst; do
    cmp -s "$f" "image-inputs/dmlab-sources/${f##*/}" || cp "$f" image-inputs/dmlab-sources/
  done
  TORCH_PIN="$(grep -o -E 'torch==[0-9.]+' scripts/image/python_env.sh | head -1)"
  compgen -G "image-inputs/wheels/torch-${TORCH_PIN#torch==}[+-]*.whl" >/dev/null \
    || "${PIP[@]}" download -q --no-deps "$TORCH_PIN" -d image-inputs/wheels
  TORCH_WHEEL="$(cd image-inputs && compgen -G "wheels/torch-${TORCH_PIN#torch==}[+-]*.whl" | head -1)"
  echo "[build_local] TORCH_WHEEL=${TORCH_WHEEL}; $(ls image-inputs/dmlab-sources | wc -l) DeepMind Lab archives"

  # ---------------------------------------------------------------- build
  CA="${PIP_CERT:-$("${PIP[@]}" config get global.cert 2>/dev/null || true)}"
  CA="${CA:-/etc/ssl/certs/ca-certificates.crt}"
  step "build: ${TAG} (CA bundle ${CA})"
  docker build --progress=plain -t "$TAG" --build-arg "BASE_IMAGE=${BASE_TAG}" \
    --build-arg "TORCH_WHEEL=${TORCH_WHEEL}" --secret "id=ca,src=${CA}" .
fi
SIZE_B="$(docker image inspect -f '{{.Size}}' "$TAG")"
echo "[build_local] image ${TAG}: $((SIZE_B / 1000000)) MB"

if [[ "$TESTS" == 1 ]]; then
# ------------------------------------------------------------------ check
step "check: scripts/image/check.sh in the image"
docker run --rm "$TAG" scripts/image/check.sh /opt/venv/bin/python

# ------------------------------------------------------------------ pytest
step "pytest: a fast subset and the real-engine tests in the image"
PYTEST_PKGS="${SCRATCH}/pytest-pkgs"
if [[ ! -d "$PYTEST_PKGS/pytest" ]]; then
  rm -rf "$PYTEST_PKGS"
  "${PIP[@]}" install -q --target "$PYTEST_PKGS" "pytest>=8" "pytest-timeout>=2.3"
fi
FAST_TESTS=(tests/test_vtrace.py tests/test_config.py tests/test_envs_embedded.py tests/test_agent_heads.py)
REAL_TESTS=(tests/test_dmlab_real.py tests/test_dmlab_train.py)
CACHE="${SCRATCH}/cache"   # DeepMind Lab's compiled levels, kept across runs (as ~/.cache/impala-mu natively)
mkdir -p "$CACHE"
docker run --rm -e IMPALA_MU_REQUIRE_DMLAB=1 -e PYTHONPATH=/opt/pytest-pkgs -e PYTHONDONTWRITEBYTECODE=1 \
  -v "${ROOT}/tests:/opt/impala-mu/tests:ro" -v "${PYTEST_PKGS}:/opt/pytest-pkgs:ro" -v "${CACHE}:/root/.cache/impala-mu" \
  --shm-size=2g "$TAG" \
  python -m pytest -q -p no:cacheprovider "${FAST_TESTS[@]}" "${REAL_TESTS[@]}" -k "not every_level_the_build_can_run"

# ------------------------------------------------------------------ train
train30() {   # train30 CONFIG [OVERRIDE...]: launch.py train in the image; SIGTERM 30 s after its first report
  local config="$1" rc=0
  shift
  docker run --rm --shm-size=2g -v "${CACHE}:/root/.cache/impala-mu" "$TAG" bash -c "
    python launch.py train --config ${config} logdir=/tmp/run $* &
    pid=\$!
    for i in \$(seq 600); do [[ -s /tmp/run/metrics.jsonl ]] && break; kill -0 \$pid 2>/dev/null || break; sleep 1; done
    echo \"[build_local] first report after \$i s; SIGTERM in 30 s\"
    sleep 30; kill -TERM \$pid; rc=0; wait \$pid || rc=\$?
    echo \"[build_local] exit status \$rc; last report: \$(tail -1 /tmp/run/metrics.jsonl | cut -c1-200)\"
    ls /tmp/run/checkpoints
    [[ \$rc == 143 ]] && compgen -G '/tmp/run/checkpoints/ckpt-*.pt' >/dev/null" || rc=$?
  [[ "$rc" == 0 ]] || die "launch.py train --config ${config}: expected exit 143 and a checkpoint after SIGTERM"
}
step "train: launch.py train --config configs/embedded.yaml, 30 s after its first report"
train30 configs/embedded.yaml
step "train: launch.py train --config configs/dmlab30_local.yaml, 30 s after its first report"
train30 configs/dmlab30_local.yaml env.options.level_cache_dir=/root/.cache/impala-mu/levels
fi

if [[ "$CLUSTER" == 1 ]]; then
  step "cluster: the README's cluster recipe in containers (scripts/image/cluster_local.sh)"
  IMPALA_MU_IMAGE="$TAG" IMPALA_MU_DOCKER_SOCK="$SOCK" "${ROOT}/scripts/image/cluster_local.sh"
fi
step ""
echo "[build_local] all steps passed in $((SECONDS - T0)) s; image ${TAG} $((SIZE_B / 1000000)) MB;" \
  "data root $(du -sh "${SCRATCH}" 2>/dev/null | cut -f1) (${SCRATCH})"
