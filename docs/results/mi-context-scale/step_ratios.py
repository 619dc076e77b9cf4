"""The one-step move of the MI terms relative to a linear layer (tests/test_mi_scale.py's step_ratio)
for both optimizers, the three scales and three sizes, as a markdown table.
Usage: python docs/results/mi-context-scale/step_ratios.py"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from tests.test_mi_scale import SCALES, step_ratio  # noqa: E402

print("| optimizer | C, I, O | " + " | ".join(f"s = {s}" for s in SCALES) + " |")
print("|---|---|" + "---:|" * len(SCALES))
for optimizer in ("adam", "rmsprop"):
    for c, i, o in ((32, 128, 8), (64, 256, 16), (128, 128, 8)):
        print(f"| {optimizer} | {c}, {i}, {o} | " + " | ".join(f"{step_ratio(optimizer, s, c, i, o):.3f}" for s in SCALES) + " |")
