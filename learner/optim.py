"""Optimizer construction, the linear learning-rate anneal over frames, and gradient-norm clipping."""
from __future__ import annotations

from typing import Any, Iterable

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
    ``constant=True`` (``learner.lr_schedule=constant``): ``lr(frames) = lr0`` throughout.

    A resume that changes ``total_frames`` (``load_state_dict(..., keep_rate=...)``) either keeps
    this formula over the new budget (the rate jumps: ``lr0 (1 - f / old)`` -> ``lr0 (1 - f / new)``,
    IMPALA's schedule as a function of frames) or, with ``keep_rate``, re-anchors the decay at the
    rate reached: from ``(f_a, lr_a)`` on, ``lr(f) = lr_a * max(0, 1 - (f - f_a) / (total - f_a))``,
    which continues without a jump and still reaches 0 at the new budget.

    Host-side Python numbers only: setting the rate on the optimizer costs no device sync.
    """

    def __init__(self, initial_learning_rate: float, total_frames: int, constant: bool = False):
        if total_frames <= 0:
            raise ValueError(f"total_frames={total_frames} must be positive")
        self.initial_learning_rate = initial_learning_rate
        self.total_frames = total_frames
        self.constant = constant
        self.frames = 0
        self.anchor: tuple[int, float] | None = None    # (f_a, lr_a) after a re-anchoring resume

    def rate_at(self, frames: int, total_frames: int | None = None) -> float:
        """The schedule's rate at ``frames`` (under ``total_frames``, default this schedule's)."""
        if self.constant:
            return self.initial_learning_rate
        total = self.total_frames if total_frames is None else total_frames
        start, lr = self.anchor or (0, self.initial_learning_rate)
        if total <= start:
            return 0.0
        return lr * max(0.0, 1.0 - (frames - start) / (total - start))

    @property
    def learning_rate(self) -> float:
        return self.rate_at(self.frames)

    def describe(self) -> str:
        """The schedule as a formula of the env frames f, e.g. ``0.0003 * max(0, 1 - f / 2000000)``."""
        if self.constant:
            return f"{self.initial_learning_rate:.6g} (constant)"
        if self.anchor is None:
            return f"{self.initial_learning_rate:.6g} * max(0, 1 - f / {self.total_frames})"
        start, lr = self.anchor
        return f"{lr:.6g} * max(0, 1 - (f - {start}) / ({self.total_frames} - {start}))"

    def apply(self, optimizer: torch.optim.Optimizer) -> float:
        """Sets every param group's lr to the current rate and returns it."""
        lr = self.learning_rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advance(self, frames: int) -> None:
        self.frames += int(frames)

    def state_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "total_frames": self.total_frames,
                "anchor": None if self.anchor is None else [int(self.anchor[0]), float(self.anchor[1])]}

    def load_state_dict(self, state: dict[str, Any], keep_rate: bool = False,
                        saved_total_frames: int | None = None) -> None:
        """Restores the frame counter and anchor. If the saved budget (``state["total_frames"]``, else
        ``saved_total_frames``) differs from this schedule's and ``keep_rate``, re-anchors at the
        rate the saved schedule had reached (see the class docstring)."""
        self.frames = int(state["frames"])
        anchor = state.get("anchor")
        self.anchor = None if anchor is None else (int(anchor[0]), float(anchor[1]))
        old_total = state.get("total_frames") or saved_total_frames or self.total_frames
        if keep_rate and int(old_total) != self.total_frames:
            self.anchor = (self.frames, self.rate_at(self.frames, int(old_total)))


def grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """The global L2 norm of the gradients (a 0-d tensor, no sync); if ``max_norm`` is not None the
    gradients are also scaled down to that norm."""
    params = [p for p in params if p.grad is not None]
    if max_norm is None:
        return torch.nn.utils.get_total_norm([p.grad for p in params])
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


# How each optimizer state tensor scales when its parameter is reparametrized as p' = f p (so the
# gradient is g' = g / f): gradient units scale by 1/f, squared-gradient units by 1/f^2, parameter
# units (TF RMSProp's momentum: accumulated updates) by f. Step counters do not scale.
_STATE_POWER = {"exp_avg": -1, "exp_avg_sq": -2, "max_exp_avg_sq": -2, "ms": -2, "mom": 1}


def rescale_optimizer_state(optimizer_state: dict, parameter_names: list[str],
                            factors: dict[str, float]) -> dict:
    """A copy of ``optimizer.state_dict()`` for parameters rescaled by ``factors`` (``{name: f}``,
    names in the order of ``model.named_parameters()``, which is the optimizer's index order)."""
    state = {index: dict(entry) for index, entry in optimizer_state["state"].items()}
    for name, factor in factors.items():
        entry = state.get(parameter_names.index(name))
        for key, value in (entry or {}).items():
            if key in _STATE_POWER:
                entry[key] = value * factor ** _STATE_POWER[key]
    return {**optimizer_state, "state": state}
