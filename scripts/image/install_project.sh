#!/usr/bin/env bash
# Docker image step: this project, editable, into the venv VENV that python_env.sh made (its
# dependencies are there already: --no-deps keeps them as they are).
#   scripts/image/install_project.sh VENV
set -euo pipefail
venv="${1:?usage: install_project.sh VENV}"
cd "$(dirname "$0")/../.."
"$venv/bin/pip" install --no-cache-dir --no-deps -e .
"$venv/bin/python" -c "import launch, agent, envs, learner, actors, training; print('install_project: impala-mu importable')"
