"""Diagnostics of the multiplicative heads: what the context z does, per task (docs/EVALUATION.md).

``head_diagnostics(agent, inputs, core_state)`` runs the agent up to its core once more, without
gradients, and returns per-task tensors (on the agent's device; nothing is copied to the host, so
it adds no synchronisation; the caller reads them when it writes a report). For K tasks:

* ``samples [K]``: steps of each task in the batch;
* ``context_norm [K]``: mean over those steps of ``||z||_2``;
* ``generated_weight_norm [K]``: mean of ``||W'(z)||_F`` (``MultiplicativeLayer.generated_weight_norm``);
* ``mean_context [K, C]``: mean of z;
* ``similarity [K, K]``: cosine similarity of the tasks' mean contexts.

* ``similarity_before_reward`` / ``similarity_after_reward [K, K]``: the same cosines over the steps
  before / from the first nonzero reward of their episode on (``reward_phase``; steps of an episode
  that began before the unroll are in neither: the batch cannot tell whether a reward came earlier);
* ``contexts [T, B, C]``, ``task_id [T, B]``: the contexts themselves, for the held-out linear probe
  of the task (``probe_accuracy``, numpy, computed when the report is written).

Entries of tasks without a step (and cosines of an all-zero mean context) are NaN.
Heads without a context (``shared``, ``multihead``) give None.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
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
    similarity_before_reward: torch.Tensor | None = None   # [K, K]
    similarity_after_reward: torch.Tensor | None = None    # [K, K]
    contexts: torch.Tensor | None = None                   # [T, B, C]
    task_id: torch.Tensor | None = None                    # [T, B]


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


BEFORE, AFTER, UNKNOWN = 0, 1, -1


def reward_phase(reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Per step of ``[T, B]`` unrolls (``agent.types`` alignment): ``BEFORE`` (0) until the first
    nonzero reward of the episode, ``AFTER`` (1) from the step that receives it on (its context has
    seen it), ``UNKNOWN`` (-1) for the steps of an episode that began before step 0. int64 ``[T, B]``."""
    phase = torch.full(reward.shape, UNKNOWN, dtype=torch.int64, device=reward.device)
    state = torch.full(reward.shape[1:], UNKNOWN, dtype=torch.int64, device=reward.device)
    for t in range(reward.shape[0]):
        state = torch.where(done[t], BEFORE, state)
        rewarded = (~done[t]) & (reward[t] != 0) & (state == BEFORE)
        state = torch.where(rewarded, AFTER, state)
        phase[t] = state
    return phase


def phase_similarity(z: torch.Tensor, task_id: torch.Tensor, phase: torch.Tensor, which: int,
                     num_tasks: int) -> torch.Tensor:
    """Cosine similarity ``[K, K]`` of the tasks' mean contexts over the steps with ``phase == which``."""
    mask = phase.reshape(-1) == which
    z, tasks = z.reshape(-1, z.shape[-1])[mask], task_id.reshape(-1)[mask]
    return context_statistics(z, z.new_zeros(z.shape[0]), tasks, num_tasks).similarity


def probe_accuracy(contexts: np.ndarray, task_id: np.ndarray) -> tuple[float, float]:
    """Held-out accuracy of a least-squares one-vs-rest linear probe of the task from the context, and
    its chance level (the test half's share of the fit half's majority task: what a probe that ignores
    the context scores). ``contexts [T, B, C]``, ``task_id [T, B]`` (a column's task is its step 0's).

    Columns are split, within each task in column order, alternately into a fit half and a test half
    (steps of one column are correlated, so whole columns are held out). The probe ``[z, 1] @ M`` is
    fit by ``numpy.linalg.lstsq`` (minimum norm) to one-hot targets over the tasks present; a step is
    predicted as the argmax (first on ties). Deterministic. NaN without a task in both halves."""
    z = np.asarray(contexts, np.float64)
    tasks = np.asarray(task_id)
    column_task = tasks[0]
    fit_columns, test_columns = [], []
    for task in np.unique(column_task):
        columns = np.flatnonzero(column_task == task)
        fit_columns += list(columns[0::2])
        test_columns += list(columns[1::2])
    if not fit_columns or not test_columns:
        return float("nan"), float("nan")
    classes = np.unique(column_task[fit_columns])

    def features(columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        x = z[:, columns].reshape(-1, z.shape[-1])
        return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1), tasks[:, columns].reshape(-1)

    x_fit, y_fit = features(sorted(fit_columns))
    x_test, y_test = features(sorted(test_columns))
    targets = (y_fit[:, None] == classes[None, :]).astype(np.float64)
    weights = np.linalg.lstsq(x_fit, targets, rcond=None)[0]
    predicted = classes[np.argmax(x_test @ weights, axis=1)]
    majority = classes[np.argmax(targets.sum(0))]
    return float(np.mean(predicted == y_test)), float(np.mean(y_test == majority))


@torch.no_grad()
def head_diagnostics(agent: torch.nn.Module, inputs: AgentInput, core_state: CoreState) -> HeadDiagnostics | None:
    """The diagnostics of ``agent``'s head over the steps of ``inputs`` ([T, B, ...]); None without a context."""
    head = agent.head
    if not hasattr(head, "contexts"):
        return None
    core_output, _ = agent.core_outputs(inputs, core_state)
    z = head.contexts(core_output, inputs.task_id)
    stats = context_statistics(z, head.mi.generated_weight_norm(z), inputs.task_id, agent.num_tasks)
    phase = reward_phase(inputs.reward, inputs.done)
    return stats._replace(
        head=agent.cfg.head, mi_form=agent.cfg.mi_form,
        similarity_before_reward=phase_similarity(z, inputs.task_id, phase, BEFORE, agent.num_tasks),
        similarity_after_reward=phase_similarity(z, inputs.task_id, phase, AFTER, agent.num_tasks),
        contexts=z, task_id=inputs.task_id)


def batch_diagnostics(agent: torch.nn.Module, batch: dict[str, torch.Tensor]) -> HeadDiagnostics | None:
    """``head_diagnostics`` over a learner batch (``Unroll``'s fields as tensors, ``[T + 1, B, ...]``)."""
    return head_diagnostics(agent, agent_input_from_unroll(batch), CoreState(batch["core_h"], batch["core_c"]))
