"""PopArt: per-task adaptive normalisation of the value targets with preserved outputs.

Hessel et al., "Multi-task Deep Reinforcement Learning with PopArt" (AAAI 2019), after van Hasselt
et al., "Learning values across many orders of magnitude" (NeurIPS 2016). Notation: K tasks,
task k's running first and second moments ``mu_k``, ``nu_k`` of its V-trace targets and its scale
``sigma_k = clip(sqrt(nu_k - mu_k^2), 1e-4, 1e6)``.

Output transform (one form for all four heads). The agent's head is unchanged: its value output y
(``AgentOutput.baseline``, ``[T, B]``) is read as ``n = a_k y + c_k``, task k's *normalised* value,
and ``V = sigma_k n + mu_k`` is the unnormalised value. ``a_k``, ``c_k`` are buffers (no gradient),
1 and 0 at the start, that play the role of the paper's per-task last value layer: after each
statistics update ``(mu, sigma) -> (mu', sigma')`` the preservation rule of the paper,
``w' = w sigma / sigma'``, ``b' = (sigma b + mu - mu') / sigma'``, is applied to them,

    a_k' = a_k sigma_k / sigma_k',    c_k' = (sigma_k c_k + mu_k - mu_k') / sigma_k',

so ``sigma_k' (a_k' y + c_k') + mu_k' = sigma_k (a_k y + c_k) + mu_k`` for every y: every
unnormalised output is preserved exactly (to float rounding). Why not rescale the head's own last
layer: the ``shared`` and ``learnt_mi`` heads have one value output for all tasks and the MI heads
generate their value weights from a context, so no per-task affine layer of the head exists to
rescale; a per-task affine transform after the head exists for every head and gives each task its
own normalised value (for ``multihead`` it is exactly the composition of the task's value layer
with an affine map). The torso, core and head receive exactly the gradient of the paper's
normalised loss through ``n``; the one difference from rescaling the weights in place is that the
head's own value parameters see their gradient multiplied by ``a_k`` (docs/LEARNING.md, "PopArt").

Statistics update (once per learner batch, before the loss, as in van Hasselt et al.'s Algorithm 1):
for every task k with at least one target in the batch, with ``m1``, ``m2`` the mean of its V-trace
targets ``v_s`` and of ``v_s^2`` over the batch's ``[T, B]`` entries of that task,
``mu_k <- (1 - beta) mu_k + beta m1`` and ``nu_k <- (1 - beta) nu_k + beta m2``; tasks absent from
the batch keep their statistics. Start: ``mu = 0``, ``nu = 1`` (``sigma = 1``). The statistics are
kept in float64 (``nu - mu^2`` cancels when ``sigma << |mu|``).

Losses (``learner.learner.unroll_loss``): V-trace runs on unnormalised values and rewards; the baseline
loss is ``0.5 sum ((v_s - mu_k) / sigma_k - n)^2`` and the policy-gradient advantage is divided
by ``sigma_k``: ``rho_s (r_s + gamma v_{s+1} - V(x_s)) / sigma_k``, with the statistics after the
update.
"""
from __future__ import annotations

import torch
from torch import nn

SIGMA_MIN, SIGMA_MAX = 1e-4, 1e6


class PopArt(nn.Module):
    """Per-task statistics ``mu``, ``nu`` and output transform ``scale`` (a), ``shift`` (c), all ``[K]``
    float64 buffers (so ``state_dict()`` holds everything a resume needs)."""

    def __init__(self, num_tasks: int, beta: float):
        super().__init__()
        if not isinstance(num_tasks, int) or num_tasks <= 0:
            raise ValueError(f"PopArt needs num_tasks >= 1, got {num_tasks!r}")
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"learner.popart_beta={beta!r} must be a number in (0, 1]")
        self.beta = float(beta)
        self.register_buffer("mu", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("nu", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("shift", torch.zeros(num_tasks, dtype=torch.float64))

    @property
    def sigma(self) -> torch.Tensor:
        """``clip(sqrt(nu - mu^2), 1e-4, 1e6)`` ``[K]`` float64 (``nu - mu^2`` floored at 0 first)."""
        return (self.nu - self.mu.square()).clamp(min=0.0).sqrt().clamp(SIGMA_MIN, SIGMA_MAX)

    def normalized(self, y: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """The head's value output y ``[T, B]`` -> task-normalised value ``a_k y + c_k`` ``[T, B]``
        (differentiable in y; float32 like y)."""
        return self.scale.to(y.dtype)[task_id] * y + self.shift.to(y.dtype)[task_id]

    def unnormalize(self, normalized: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """``sigma_k n + mu_k`` ``[T, B]``."""
        return self.sigma.to(normalized.dtype)[task_id] * normalized + self.mu.to(normalized.dtype)[task_id]

    def normalize_target(self, target: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """``(target - mu_k) / sigma_k`` ``[T, B]``."""
        return (target - self.mu.to(target.dtype)[task_id]) / self.sigma.to(target.dtype)[task_id]

    def values(self, y: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """Unnormalised value ``sigma_k (a_k y + c_k) + mu_k`` of the head's output y ``[T, B]``."""
        return self.unnormalize(self.normalized(y, task_id), task_id)

    @torch.no_grad()
    def update(self, targets: torch.Tensor, task_id: torch.Tensor) -> None:
        """One step of the statistics from the V-trace targets ``[T, B]`` of tasks ``task_id`` ``[T, B]``
        (int64), then the output-preserving update of ``scale`` and ``shift``. No host sync."""
        k = self.mu.shape[0]
        ids = task_id.flatten()
        values = targets.detach().flatten().to(torch.float64)
        counts = torch.zeros(k, dtype=torch.float64, device=values.device).index_add_(
            0, ids, torch.ones_like(values))
        first = torch.zeros_like(counts).index_add_(0, ids, values) / counts.clamp(min=1.0)
        second = torch.zeros_like(counts).index_add_(0, ids, values.square()) / counts.clamp(min=1.0)
        present = counts > 0
        old_mu, old_sigma = self.mu.clone(), self.sigma
        self.mu.copy_(torch.where(present, (1.0 - self.beta) * self.mu + self.beta * first, self.mu))
        self.nu.copy_(torch.where(present, (1.0 - self.beta) * self.nu + self.beta * second, self.nu))
        new_sigma = self.sigma
        self.shift.copy_((old_sigma * self.shift + old_mu - self.mu) / new_sigma)
        self.scale.mul_(old_sigma / new_sigma)
