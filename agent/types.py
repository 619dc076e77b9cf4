"""The named structures that cross module boundaries.

Shapes: T = unroll length, B = batch (environments), A = number of actions,
H, W, C = frame height, width, channels, L = instruction length (words),
S = LSTM core size. Everything is time-major: ``[T, B, ...]``.

Alignment (one convention, relied on by the actors, the learner and the tests)
------------------------------------------------------------------------------
An unroll holds ``T + 1`` steps indexed ``t = 0..T``. Step ``t`` is one
*observation* of the environment together with what the behaviour policy did
there:

* ``frame[t]``, ``instruction[t]``: observation ``x_t``.
* ``reward[t]``: the raw (unclipped) reward received on *arriving* at ``x_t``,
  i.e. for the transition ``t-1 -> t``.
* ``done[t]``: ``x_t`` is the first observation of a new episode (the previous
  transition ended an episode, by termination or time limit, and the env was
  reset). When ``done[t]`` is true, ``reward[t]`` is still the last reward of the
  *finished* episode (the learner needs it), but the agent does not see it.
* ``truncated[t]``: ``done[t]`` and the finished episode was cut by its time limit
  (gymnasium's ``truncated``) rather than terminated; ``truncation_value[t]`` is then the
  acting network's value ``V(x')`` of that episode's final observation ``x'`` (which the
  unroll does not hold: ``x_t`` is already the next episode's first), else 0. The learner's
  ``truncation_bootstrap`` option uses it.
* ``last_action[t]``: the action taken at ``x_{t-1}`` (0 when ``done[t]``).
* ``action[t]``, ``behaviour_logits[t]``: what the behaviour policy chose at ``x_t``.
* ``task_id[t]``: the task the environment at this column is running.

Step 0 repeats step ``T`` of the previous unroll of the same environment, so
consecutive unrolls overlap by one step. The learner uses steps ``0..T-1`` as the
``T`` transitions (``x_t, a_t, reward[t+1], done[t+1]``) and ``V(x_T)`` as the
bootstrap value. ``initial_core_state`` is the LSTM state *before* step 0 is
processed; the core zeroes it itself at steps whose ``done`` is true.

The torso's extra inputs are derived inside the agent: last reward =
``clip(reward[t], -1, 1)`` and last action = ``last_action[t]``, both zeroed
where ``done[t]`` (a new episode starts from a clean slate, as the LSTM does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch


class EnvSpec(Protocol):
    """What the agent's shape depends on: an ``envs.suites.Suite`` is one, so is ``AgentSpec``."""

    @property
    def num_actions(self) -> int: ...
    @property
    def num_tasks(self) -> int: ...
    @property
    def frame_shape(self) -> tuple[int, int, int]: ...
    @property
    def instruction_length(self) -> int: ...


@dataclass(frozen=True)
class AgentSpec:
    """An ``EnvSpec`` as plain data: a checkpoint's ``"agent_spec"`` (``Agent.spec()``), ``frame_shape`` H, W, C."""

    num_actions: int
    num_tasks: int
    frame_shape: tuple[int, int, int]
    instruction_length: int


class AgentInput(NamedTuple):
    """Inputs of the agent, time-major tensors (numpy on the way, torch inside).

    frame: uint8 ``[T, B, H, W, C]``; instruction: int64 ``[T, B, L]`` (0 = padding);
    reward: float32 ``[T, B]`` raw reward on arriving; done: bool ``[T, B]``;
    last_action: int64 ``[T, B]``; task_id: int64 ``[T, B]``.
    """

    frame: torch.Tensor
    instruction: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    last_action: torch.Tensor
    task_id: torch.Tensor


class AgentOutput(NamedTuple):
    """policy_logits: float ``[T, B, A]``; baseline: float ``[T, B]``."""

    policy_logits: torch.Tensor
    baseline: torch.Tensor


class CoreState(NamedTuple):
    """LSTM state, each float32 ``[B, S]`` (single-layer LSTM)."""

    h: torch.Tensor
    c: torch.Tensor


class EpisodeStat(NamedTuple):
    """One finished episode: its task, raw (unclipped) return and length in agent steps."""

    task_id: int
    episode_return: float
    length: int


class Unroll(NamedTuple):
    """A trajectory of ``T + 1`` steps for ``B`` environments (numpy, time-major).

    frame uint8 ``[T+1, B, H, W, C]``; instruction int64 ``[T+1, B, L]``;
    reward float32 ``[T+1, B]``; done bool ``[T+1, B]``; last_action int64 ``[T+1, B]``;
    action int64 ``[T+1, B]``; behaviour_logits float32 ``[T+1, B, A]``;
    task_id int64 ``[T+1, B]``; truncated bool ``[T+1, B]``; truncation_value float32 ``[T+1, B]``;
    core_h, core_c float32 ``[B, S]`` (the state before step 0);
    policy_version: the learner update count of the weights that acted (one per unroll);
    actor_id and incarnation (how many times that actor has been (re)started);
    episodes: the episodes that finished inside this unroll.
    """

    frame: np.ndarray
    instruction: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    last_action: np.ndarray
    action: np.ndarray
    behaviour_logits: np.ndarray
    task_id: np.ndarray
    truncated: np.ndarray
    truncation_value: np.ndarray
    core_h: np.ndarray
    core_c: np.ndarray
    policy_version: int
    actor_id: int
    incarnation: int
    episodes: tuple[EpisodeStat, ...]

    @property
    def num_envs(self) -> int:
        return int(self.reward.shape[1])

    @property
    def unroll_length(self) -> int:
        return int(self.reward.shape[0]) - 1


# Fields of Unroll that are arrays with a batch axis (axis 1 for time-major, axis 0 for core state).
TIME_MAJOR_FIELDS = (
    "frame", "instruction", "reward", "done", "last_action", "action", "behaviour_logits", "task_id",
    "truncated", "truncation_value",
)
STATE_FIELDS = ("core_h", "core_c")


def agent_input_from_unroll(unroll_fields: dict[str, torch.Tensor]) -> AgentInput:
    """Builds the agent's input from (tensor) unroll fields of the same names."""
    return AgentInput(*(unroll_fields[name] for name in AgentInput._fields))
