#!/usr/bin/env bash
# Docker image step: apt-get installs the Debian packages listed in LIST (one per line, # comments).
#   scripts/image/apt_install.sh LIST [--simulate]
# --simulate resolves them without installing (tests/test_docker_steps.py runs it natively).
set -euo pipefail
list="${1:?usage: apt_install.sh LIST [--simulate]}"
mapfile -t packages < <(grep -v '^\s*#' "$list" | grep -v '^\s*$')
if [[ "${2:-}" == --simulate ]]; then
  apt-get install --simulate --no-install-recommends "${packages[@]}" >/dev/null
  echo "apt_install: ${#packages[@]} packages of ${list##*/} resolve"
  exit 0
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
rm -rf /var/lib/apt/lists/*
