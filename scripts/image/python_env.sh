#!/usr/bin/env bash
# Docker image step: a venv at VENV with the CI-tested torch (CUDA build) and this project.
#   scripts/image/python_env.sh VENV [TORCH_INDEX_URL]
# Without TORCH_INDEX_URL, torch comes from PyPI, whose Linux x86_64 wheel is the CUDA build
# (CUDA libraries as nvidia-* wheels); pass e.g. https://download.pytorch.org/whl/cu126 for another.
# TORCH is the version CI tests (.ci/run and the README install it; tests/test_docker_steps.py
# checks they agree).
set -euo pipefail
venv="${1:?usage: python_env.sh VENV [TORCH_INDEX_URL]}"
index="${2:-}"
TORCH="torch==2.13.0"
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --upgrade pip
if [[ -n "$index" ]]; then
  "$venv/bin/pip" install --no-cache-dir "$TORCH" --index-url "$index"
else
  "$venv/bin/pip" install --no-cache-dir "$TORCH"
fi
"$venv/bin/pip" install --no-cache-dir -e "$(dirname "$0")/../.."
"$venv/bin/python" -c "import torch; print('python_env: torch', torch.__version__, 'cuda', torch.version.cuda)"
