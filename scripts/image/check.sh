#!/usr/bin/env bash
# Docker image step (last): the image's Python imports everything and DeepMind Lab steps a level.
#   scripts/image/check.sh PYTHON
set -euo pipefail
py="${1:?usage: check.sh PYTHON}"
cd "$(dirname "$0")/../.."
"$py" - <<'PYEOF'
import numpy as np
import torch, ray, deepmind_lab                      # noqa: F401
import envs, agent, learner, actors                  # noqa: F401
from envs.dmlab import DmLab
assert hasattr(torch.nn.utils, "get_total_norm"), f"torch {torch.__version__} lacks get_total_norm"
env = DmLab("rooms_collect_good_objects_train", seed=0)
obs, _ = env.reset()
assert obs["frame"].shape == (72, 96, 3) and obs["frame"].dtype == np.uint8
env.step(0)
env.close()
from envs.dmlab_checks import NATLAB_MAPS, missing_maps
absent = sum(len(missing_maps(level)) for level in NATLAB_MAPS)
assets = "complete assets" if absent == 0 else f"{absent} natlab maps absent: built from the offline archives (docs/DMLAB.md)"
print(f"check: torch {torch.__version__} (cuda {torch.version.cuda}), deepmind_lab {deepmind_lab.version()} ({assets}): OK")
PYEOF
command -v zip >/dev/null || { echo "check: zip missing (levels that generate maps call it)" >&2; exit 1; }
