"""Which regime TF RMSProp is in for the head's parameters of a trained run: SGD-like (the mean square
of gradients far below epsilon = 0.1) or Adam-like (far above). From a checkpoint's optimizer state:
ms = decay^n * 1 + (1 - decay) sum_k decay^(n-k) g_k^2 (ms starts at 1), so the gradients' share is
ms - decay^n, an exponential mean of g^2 weighted to sum 1 - decay^n; divided by that it estimates E[g^2].
Usage: python docs/results/mi-context-scale/rmsprop_regime.py LOGDIR [...]"""
import glob
import os
import sys

import torch

for logdir in sys.argv[1:]:
    path = sorted(glob.glob(os.path.join(logdir, "checkpoints", "ckpt-*.pt")))[-1]
    state = torch.load(path, weights_only=True, map_location="cpu")
    names = list(state["learner"]["model"])
    params = [n for n in names if state["learner"]["model"][n].dtype.is_floating_point]
    opt = state["learner"]["optimizer"]
    n = state["updates"]
    decay = state["config"]["learner"]["rmsprop_decay"]
    eps = state["config"]["learner"]["rmsprop_epsilon"]
    print(f"{logdir}: {n} updates, decay {decay}, epsilon {eps}")
    for index, name in enumerate(params):
        if not name.startswith("head.") or index not in opt["state"]:
            continue
        ms = opt["state"][index]["ms"]
        g2 = (ms - decay ** n) / (1 - decay ** n)
        print(f"  {name:28s} {tuple(ms.shape)!s:16s} E[g^2] median {g2.median().item():.2e}, "
              f"99th pct {g2.flatten().quantile(0.99).item():.2e}  (epsilon {eps})")
