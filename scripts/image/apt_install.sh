#!/usr/bin/env bash
# Docker image step: apt-get installs the Debian packages listed in LIST (one per line, # comments).
#   scripts/image/apt_install.sh LIST [--python build|run] [--simulate]
# --python: also Debian's python3 (run: python3; build: python3, python3-venv, python3-dev) unless
# the base image already has a python3 that can do that (python:3.11-slim-bookworm does; a bare
# Debian 12 base such as scripts/image/build_local.sh makes does not).
# --simulate resolves them without installing (tests/test_docker_steps.py runs it natively).
set -euo pipefail
list="${1:?usage: apt_install.sh LIST [--python build|run] [--simulate]}"
shift
python="" simulate=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) python="${2:?--python needs build or run}"; shift 2 ;;
    --simulate) simulate=1; shift ;;
    *) echo "apt_install: unknown argument '$1' (expected --python build|run or --simulate)" >&2; exit 2 ;;
  esac
done
mapfile -t packages < <(grep -v '^\s*#' "$list" | grep -v '^\s*$')
case "$python" in
  "") ;;
  run) python3 -c 'import sys' 2>/dev/null || packages+=(python3) ;;
  build)
    # venv (ensurepip) for the project's venv, Python.h for DeepMind Lab's module
    python3 -c 'import ensurepip, os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
      2>/dev/null || packages+=(python3 python3-venv python3-dev) ;;
  *) echo "apt_install: --python $python: expected build or run" >&2; exit 2 ;;
esac
if [[ "$simulate" == 1 ]]; then
  apt-get install --simulate --no-install-recommends "${packages[@]}" >/dev/null
  echo "apt_install: ${#packages[@]} packages of ${list##*/} resolve"
  exit 0
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
rm -rf /var/lib/apt/lists/*
