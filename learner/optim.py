"""Optimizer construction, the linear learning-rate anneal over frames, and gradient-norm clipping."""
from __future__ import annotations

from typing import Iterable

import torch

from learner.config import LearnerConfig
from learner.rmsprop import TFRMSprop


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: LearnerConfig) -> torch.optim.Optimizer:
    """rmsprop: TF1 RMSProp (decay, momentum, epsilon from cfg); adam: torch's Adam (foreach)."""
    if cfg.optimizer == "rmsprop":
        return TFRMSprop(params, lr=cfg.learning_rate, decay=cfg.rmsprop_decay,
                         momentum=cfg.rmsprop_momentum, epsilon=cfg.rmsprop_epsilon)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, betas=cfg.adam_betas, eps=cfg.adam_eps)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


class LinearDecay:
    """``lr(frames) = lr0 * max(0, 1 - frames / total_frames)``; the state is the frame counter.

    Host-side Python numbers only: setting the rate on the optimizer costs no device sync.
    """

    def __init__(self, initial_learning_rate: float, total_frames: int):
        if total_frames <= 0:
            raise ValueError(f"total_frames={total_frames} must be positive")
        self.initial_learning_rate = initial_learning_rate
        self.total_frames = total_frames
        self.frames = 0

    @property
    def learning_rate(self) -> float:
        return self.initial_learning_rate * max(0.0, 1.0 - self.frames / self.total_frames)

    def apply(self, optimizer: torch.optim.Optimizer) -> float:
        """Sets every param group's lr to the current rate and returns it."""
        lr = self.learning_rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advance(self, frames: int) -> None:
        self.frames += int(frames)

    def state_dict(self) -> dict[str, int]:
        return {"frames": self.frames}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.frames = int(state["frames"])


def grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """The global L2 norm of the gradients (a 0-d tensor, no sync); if ``max_norm`` is not None the
    gradients are also scaled down to that norm."""
    params = [p for p in params if p.grad is not None]
    if max_norm is None:
        return torch.nn.utils.get_total_norm([p.grad for p in params])
    return torch.nn.utils.clip_grad_norm_(params, max_norm)
