"""Policy and value heads behind one interface.

Every head is ``head(core_output [T, B, S], task_id [T, B] int64) -> (logits [T, B, A],
baseline [T, B])``; ``build_head`` picks one from ``AgentConfig.head``. Nothing outside ``agent/``
branches on the head type.

* ``shared``:    one linear layer S -> A + 1 for every task.
* ``multihead``: one linear policy + value head per task (weights ``[K, S, A + 1]``); each row uses
  the head of its task id, so only that head gets its gradient.
* ``taskid_mi``: ``c = relu(MLP(onehot(task_id)))``; ``(logits, value) = MI(h, c)``
  (``agent.mi_context=onehot``: ``c = onehot(task_id)``, the ablation without the context MLP).
* ``learnt_mi``: ``c = relu(MLP(h))``; ``(logits, value) = MI(h, c)``; never sees the task id.

The two MI heads also expose ``contexts(h, task_id) -> c [T, B, C]`` and their layer ``mi`` (for
the diagnostics of ``agent/diagnostics.py``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from agent.config import AgentConfig
from agent.multiplicative import MultiplicativeLayer


def _split(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., A + 1]`` -> (logits ``[..., A]``, baseline ``[...]``)."""
    return out[..., :-1], out[..., -1]


class SharedHead(nn.Module):
    def __init__(self, core_size: int, num_actions: int):
        super().__init__()
        self.linear = nn.Linear(core_size, num_actions + 1)

    def forward(self, h: torch.Tensor, task_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(self.linear(h))


class MultiHead(nn.Module):
    """Per-task linear heads held as batched weights ``[K, S, A + 1]`` and biases ``[K, A + 1]``.

    All K heads are applied in one matmul (``[T, B, K, A + 1]``, small next to the core for K = 30)
    and each row's output is gathered by its task id: no Python loop over tasks, a deterministic
    backward, and exactly zero gradient for the heads a row does not select.
    """

    def __init__(self, core_size: int, num_actions: int, num_tasks: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_tasks, core_size, num_actions + 1))
        self.bias = nn.Parameter(torch.empty(num_tasks, num_actions + 1))
        bound = 1.0 / math.sqrt(core_size)      # nn.Linear's default, per head
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, h: torch.Tensor, task_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, s, a1 = self.weight.shape
        every = (h @ self.weight.permute(1, 0, 2).reshape(s, k * a1)).unflatten(-1, (k, a1))
        index = task_id.unsqueeze(-1).unsqueeze(-1).expand(*task_id.shape, 1, a1)
        out = every.gather(-2, index).squeeze(-2) + self.bias[task_id]
        return _split(out)


def context_mlp(in_features: int, hidden: int, out_features: int,
                one_hot_input: bool = False) -> nn.Sequential:
    """``relu(MLP(x))``: ``Linear -> relu -> Linear -> relu``, or ``Linear -> relu`` if hidden == 0.

    Initialisation: zero biases and He-normal weights (std ``sqrt(2 / fan_in)``), so that a
    unit-scale input gives pre-activations of variance 2 and contexts with ``E[c_j^2] = 1``: the
    multiplicative layer's ``z^T W x`` then starts at the scale of its ``V x``
    (``agent/multiplicative.py``). ``one_hot_input``: the input is a one-hot task id, one active
    input, so the first layer uses fan-in 1 (``N(0, 2)`` weights); with zero biases each task's
    context then comes from its own weight column and the tasks share no bias term.
    (``nn.Linear``'s default, ``U(+-1/sqrt(fan_in))`` weights and biases, gave a one-hot input
    contexts of norm ~0.5 with cosine similarity ~0.75-0.9 between tasks: an MI head that starts,
    and after 150K frames still was, a shared head; docs/results/embedded-heads.)
    """
    sizes = [in_features, out_features] if hidden == 0 else [in_features, hidden, out_features]
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        effective_fan_in = 1 if (one_hot_input and index == 0) else fan_in
        nn.init.normal_(linear.weight, 0.0, math.sqrt(2.0 / effective_fan_in))
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers)


class TaskIdMIHead(nn.Module):
    """``c = relu(MLP(onehot(task_id)))``; ``[logits, value] = MI(h, c)`` (one MI layer, A + 1 outputs).

    ``cfg.mi_context == "onehot"`` (ablation): ``c = onehot(task_id)`` itself (C = K, no MLP, no
    ``context`` module), so ``MI(h, c) = (s W[k] + V) h + s U[k] + b`` for task k: per-task linear
    heads plus a shared linear layer, exactly (tests/test_agent_heads.py)."""

    def __init__(self, cfg: AgentConfig, core_size: int, num_actions: int, num_tasks: int):
        super().__init__()
        self.num_tasks = num_tasks
        self.one_hot_context = cfg.mi_context == "onehot"
        if self.one_hot_context:
            context_size = num_tasks
        else:
            context_size = cfg.context_size
            self.context = context_mlp(num_tasks, cfg.context_hidden, cfg.context_size, one_hot_input=True)
        self.mi = MultiplicativeLayer(core_size, context_size, num_actions + 1, cfg.mi_form,
                                      cfg.mi_context_scale)

    def contexts(self, h: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(task_id, self.num_tasks).to(h.dtype)
        return one_hot if self.one_hot_context else self.context(one_hot)

    def forward(self, h: torch.Tensor, task_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(self.mi(h, self.contexts(h, task_id)))


class LearntMIHead(nn.Module):
    """``c = relu(MLP(h))``; ``[logits, value] = MI(h, c)``; ignores the task id."""

    def __init__(self, cfg: AgentConfig, core_size: int, num_actions: int):
        super().__init__()
        self.context = context_mlp(core_size, cfg.context_hidden, cfg.context_size)
        self.mi = MultiplicativeLayer(core_size, cfg.context_size, num_actions + 1, cfg.mi_form,
                                      cfg.mi_context_scale)

    def contexts(self, h: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        return self.context(h)

    def forward(self, h: torch.Tensor, task_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split(self.mi(h, self.contexts(h, task_id)))


def build_head(cfg: AgentConfig, core_size: int, num_actions: int, num_tasks: int) -> nn.Module:
    if cfg.head == "shared":
        return SharedHead(core_size, num_actions)
    if cfg.head == "multihead":
        return MultiHead(core_size, num_actions, num_tasks)
    if cfg.head == "taskid_mi":
        return TaskIdMIHead(cfg, core_size, num_actions, num_tasks)
    if cfg.head == "learnt_mi":
        return LearntMIHead(cfg, core_size, num_actions)
    raise ValueError(f"unknown head {cfg.head!r}")
