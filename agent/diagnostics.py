"""Diagnostics of the multiplicative heads: what the context z does, per task (docs/EVALUATION.md).

``head_diagnostics(agent, inputs, core_state)`` runs the agent up to its core once more, without
gradients, and returns per-task tensors (on the agent's device; nothing is copied to the host, so
it adds no synchronisation; the caller reads them when it writes a report). For K tasks:

* ``samples [K]``: steps of each task in the batch;
* ``context_norm [K]``: mean over those steps of ``||z||_2``;
* ``generated_weight_norm [K]``: mean of ``||W'(z)||_F`` (``MultiplicativeLayer.generated_weight_norm``);
* ``mean_context [K, C]``: mean of z;
* ``similarity [K, K]``: cosine similarity of the tasks' mean contexts.

Entries of tasks without a step (and cosines of an all-zero mean context) are NaN.
Heads without a context (``shared``, ``multihead``) give None.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from agent.types import AgentInput, CoreState, agent_input_from_unroll


class HeadDiagnostics(NamedTuple):
    samples: torch.Tensor                # [K]
    context_norm: torch.Tensor           # [K]
    generated_weight_norm: torch.Tensor  # [K]
    mean_context: torch.Tensor           # [K, C]
    similarity: torch.Tensor             # [K, K]
    head: str = ""                       # the agent's head and MI form (labels for the report)
    mi_form: str = ""


def context_statistics(z: torch.Tensor, weight_norm: torch.Tensor, task_id: torch.Tensor,
                       num_tasks: int) -> HeadDiagnostics:
    """Per-task means of contexts ``z [..., C]`` and generated-matrix norms ``weight_norm [...]``
    grouped by ``task_id [...]`` (int64 in 0..K-1), with one ``index_add`` each (no loop over tasks)."""
    z = z.reshape(-1, z.shape[-1]).float()
    tasks = task_id.reshape(-1)
    zeros = z.new_zeros(num_tasks)
    samples = zeros.index_add(0, tasks, torch.ones_like(tasks, dtype=z.dtype))
    context_norm = zeros.index_add(0, tasks, z.norm(dim=-1)) / samples
    weight = zeros.index_add(0, tasks, weight_norm.reshape(-1).float()) / samples
    mean = z.new_zeros(num_tasks, z.shape[-1]).index_add(0, tasks, z) / samples.unsqueeze(-1)
    unit = mean / mean.norm(dim=-1, keepdim=True)
    return HeadDiagnostics(samples, context_norm, weight, mean, unit @ unit.t())


@torch.no_grad()
def head_diagnostics(agent: torch.nn.Module, inputs: AgentInput, core_state: CoreState) -> HeadDiagnostics | None:
    """The diagnostics of ``agent``'s head over the steps of ``inputs`` ([T, B, ...]); None without a context."""
    head = agent.head
    if not hasattr(head, "contexts"):
        return None
    core_output, _ = agent.core_outputs(inputs, core_state)
    z = head.contexts(core_output, inputs.task_id)
    stats = context_statistics(z, head.mi.generated_weight_norm(z), inputs.task_id, agent.num_tasks)
    return stats._replace(head=agent.cfg.head, mi_form=agent.cfg.mi_form)


def batch_diagnostics(agent: torch.nn.Module, batch: dict[str, torch.Tensor]) -> HeadDiagnostics | None:
    """``head_diagnostics`` over a learner batch (``Unroll``'s fields as tensors, ``[T + 1, B, ...]``)."""
    return head_diagnostics(agent, agent_input_from_unroll(batch), CoreState(batch["core_h"], batch["core_c"]))
