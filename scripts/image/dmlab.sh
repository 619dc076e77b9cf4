#!/usr/bin/env bash
# Docker image step: DeepMind Lab built by scripts/build_dmlab.sh against PYTHON's numpy and
# installed into its venv: offline from the pinned archives in SOURCES when it holds them (the
# build's bind mount of image-inputs/dmlab-sources), else --online (the same pinned commits).
#   scripts/image/dmlab.sh PYTHON SOURCES
set -euo pipefail
py="${1:?usage: dmlab.sh PYTHON SOURCES}"
src="${2:?usage: dmlab.sh PYTHON SOURCES}"
here="$(dirname "$0")"
export IMPALA_MU_CACHE=/tmp/impala-mu-cache
if compgen -G "${src}/lab-*.tar.zst" >/dev/null; then
  echo "dmlab: offline, from the archives in ${src}"
  "$here/../build_dmlab.sh" --offline "$src" --python "$py"
else
  echo "dmlab: no archives in ${src}: --online"
  "$here/../build_dmlab.sh" --online --python "$py"
fi
rm -rf "$IMPALA_MU_CACHE"
