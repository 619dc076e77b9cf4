"""RMSProp exactly as TensorFlow 1's ``tf.train.RMSPropOptimizer`` (non-centered), which the
IMPALA reference release trains with.

Per parameter, with gradient g::

    ms  <- decay * ms + (1 - decay) * g^2          (ms initialised to ONES, not zeros)
    mom <- momentum * mom + lr * g / sqrt(ms + eps)
    var <- var - mom

Two differences from ``torch.optim.RMSprop`` matter at IMPALA's epsilon = 0.1: epsilon is inside
the square root (torch: ``sqrt(v) + eps``), and ms starts at one (torch: zero), so the first steps
are small instead of ~lr * sign(g).
"""
from __future__ import annotations

from typing import Iterable

import torch


class TFRMSprop(torch.optim.Optimizer):
    def __init__(self, params: Iterable, lr: float, decay: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-10):
        if lr < 0:
            raise ValueError(f"lr={lr} must be >= 0")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must be in [0, 1)")
        if momentum < 0:
            raise ValueError(f"momentum={momentum} must be >= 0")
        if epsilon < 0:
            raise ValueError(f"epsilon={epsilon} must be >= 0")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, epsilon=epsilon))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            mean_squares = []
            for p in params:
                state = self.state[p]
                if "ms" not in state:
                    state["ms"] = torch.ones_like(p, memory_format=torch.preserve_format)
                if group["momentum"] != 0 and "mom" not in state:
                    state["mom"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                mean_squares.append(state["ms"])
            decay, lr = group["decay"], group["lr"]
            torch._foreach_mul_(mean_squares, decay)
            torch._foreach_addcmul_(mean_squares, grads, grads, value=1.0 - decay)
            denominators = torch._foreach_add(mean_squares, group["epsilon"])
            torch._foreach_sqrt_(denominators)
            if group["momentum"] == 0:
                torch._foreach_addcdiv_(params, grads, denominators, value=-lr)
            else:
                moms = [self.state[p]["mom"] for p in params]
                torch._foreach_mul_(moms, group["momentum"])
                torch._foreach_addcdiv_(moms, grads, denominators, value=lr)
                torch._foreach_sub_(params, moms)
        return loss
