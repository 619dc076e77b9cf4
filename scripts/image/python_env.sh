#!/usr/bin/env bash
# Docker image step: a venv at VENV with the CI-tested torch and this project's dependencies (the
# project itself is installed later by install_project.sh, after its code is copied in).
#   scripts/image/python_env.sh VENV [TORCH_INDEX_URL] [TORCH_WHEEL]
# Without TORCH_INDEX_URL or TORCH_WHEEL, torch comes from PyPI, whose Linux x86_64 wheel is the
# CUDA build (CUDA libraries as nvidia-* wheels); pass e.g. https://download.pytorch.org/whl/cu126
# for another. TORCH_WHEEL: a wheel file under /image-inputs (the build's bind mount of
# image-inputs/), e.g. wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl.
# TORCH is the version CI tests (.ci/run and the README install it; tests/test_docker_steps.py
# checks they agree); a TORCH_WHEEL of another version is refused.
set -euo pipefail
venv="${1:?usage: python_env.sh VENV [TORCH_INDEX_URL] [TORCH_WHEEL]}"
index="${2:-}"
wheel="${3:-}"
TORCH="torch==2.13.0"
cd "$(dirname "$0")/../.."
if [[ -n "$wheel" ]]; then
  wheel="${IMAGE_INPUTS:-/image-inputs}/${wheel}"
  [[ -f "$wheel" ]] || { echo "python_env: TORCH_WHEEL $wheel not found: put it under image-inputs/" >&2; exit 1; }
  [[ "${wheel##*/}" == "torch-${TORCH#torch==}"[+-]* ]] \
    || { echo "python_env: TORCH_WHEEL ${wheel##*/} is not ${TORCH} (the version CI tests)" >&2; exit 1; }
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --upgrade pip
"$venv/bin/pip" install --no-cache-dir wheel   # DeepMind Lab's pip-package step builds a wheel
if [[ -n "$wheel" ]]; then
  "$venv/bin/pip" install --no-cache-dir "$wheel"
elif [[ -n "$index" ]]; then
  "$venv/bin/pip" install --no-cache-dir "$TORCH" --index-url "$index"
else
  "$venv/bin/pip" install --no-cache-dir "$TORCH"
fi
mapfile -t deps < <("$venv/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
"$venv/bin/pip" install --no-cache-dir "${deps[@]}"
"$venv/bin/python" -c "import torch; print('python_env: torch', torch.__version__, 'cuda', torch.version.cuda)"
