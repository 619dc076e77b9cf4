"""The IMPALA agent: torso -> [features, last reward, last action, instruction] -> LSTM core -> head."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from agent.config import AgentConfig
from agent.core import ResettingLSTM
from agent.heads import build_head
from agent.multiplicative import PARAMETRIZATION as MI_PARAMETRIZATION
from agent.torsos import InstructionEncoder, build_torso
from agent.types import AgentInput, AgentOutput, CoreState, EnvSpec


class Agent(nn.Module):
    """``forward(inputs: AgentInput [T, B, ...], core_state: CoreState [B, S]) -> (AgentOutput, CoreState)``.

    Per step t the core input is the torso's features of ``frame[t]``, ``clip(reward[t], -1, 1)``,
    ``onehot(last_action[t])`` (both zeroed where ``done[t]``, see ``agent.types``) and, if
    ``cfg.use_instruction``, the instruction encoding. The core zeroes its state where ``done[t]``.
    Every per-step part (torso, instruction encoder, head) runs once over all T * B steps.

    Precision: under an outer ``torch.autocast`` only the torso runs in reduced precision; the
    instruction encoder, the core and the head always run in float32, so the policy logits (hence
    the learner's target log-probs) and the baseline are float32 and differ from an fp32 actor's
    only through the torso's rounding (mean |log rho| on on-policy data: tests/test_precision.py).
    """

    def __init__(self, cfg: AgentConfig, *, num_actions: int, num_tasks: int,
                 frame_shape: tuple[int, int, int], instruction_length: int):
        super().__init__()
        self.cfg = cfg
        self.num_actions, self.num_tasks = num_actions, num_tasks
        self.frame_shape = tuple(frame_shape)
        self.instruction_length = instruction_length
        self.torso = build_torso(cfg.torso, self.frame_shape, cfg.torso_out)
        core_input = cfg.torso_out + 1 + num_actions
        if cfg.use_instruction:
            self.instruction = InstructionEncoder(cfg.instruction_buckets, cfg.instruction_embed,
                                                  cfg.instruction_lstm)
            core_input += cfg.instruction_lstm
        else:
            self.instruction = None
        self.core = ResettingLSTM(core_input, cfg.core_size)
        self.head = build_head(cfg, cfg.core_size, num_actions, num_tasks)

    def spec(self) -> dict:
        """The constructor's keyword arguments besides the config (saved in checkpoints)."""
        return {"num_actions": self.num_actions, "num_tasks": self.num_tasks,
                "frame_shape": list(self.frame_shape), "instruction_length": self.instruction_length}

    PARAMETRIZATION = MI_PARAMETRIZATION    # saved as a checkpoint's "mi_parametrization"

    @classmethod
    def for_suite(cls, cfg: AgentConfig, spec: EnvSpec) -> "Agent":
        """The agent for an environment suite (``envs.suites.Suite``) or a checkpoint's ``AgentSpec``."""
        return cls(cfg, num_actions=spec.num_actions, num_tasks=spec.num_tasks,
                   frame_shape=tuple(spec.frame_shape), instruction_length=spec.instruction_length)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> CoreState:
        if device is None:
            device = next(self.parameters()).device
        zeros = torch.zeros(batch_size, self.cfg.core_size, device=device)
        return CoreState(zeros, zeros.clone())

    def encode_instruction(self, words: torch.Tensor) -> torch.Tensor | None:
        """Word ids ``[N, L]`` -> instruction features ``[N, instruction_lstm]`` (None without instructions)."""
        return None if self.instruction is None else self.instruction(words)

    def forward(self, inputs: AgentInput, core_state: CoreState,
                instruction_features: torch.Tensor | None = None) -> tuple[AgentOutput, CoreState]:
        """``instruction_features`` ``[T, B, D]``: ``encode_instruction`` of ``inputs.instruction``, if the
        caller has it already (an actor caches it per episode); otherwise it is computed here."""
        core_output, core_state = self.core_outputs(inputs, core_state, instruction_features)
        with torch.autocast(core_output.device.type, enabled=False):        # see the class docstring
            logits, baseline = self.head(core_output, inputs.task_id)
        return AgentOutput(logits, baseline), core_state

    def core_outputs(self, inputs: AgentInput, core_state: CoreState,
                     instruction_features: torch.Tensor | None = None) -> tuple[torch.Tensor, CoreState]:
        """Everything before the head: (core output ``[T, B, S]``, the new core state)."""
        self._check(inputs)
        t, b = inputs.done.shape
        new_episode = inputs.done
        not_done = (~new_episode).unsqueeze(-1).float()                       # [T, B, 1]
        features = [
            self.torso(inputs.frame.flatten(0, 1)).unflatten(0, (t, b)),
            inputs.reward.float().clamp(-1.0, 1.0).unsqueeze(-1) * not_done,
            F.one_hot(inputs.last_action, self.num_actions).float() * not_done,
        ]
        if self.instruction is not None:
            if instruction_features is None:
                instruction_features = self.instruction(inputs.instruction.flatten(0, 1)).unflatten(0, (t, b))
            features.append(instruction_features)
        core_input = torch.cat(features, dim=-1).float()
        with torch.autocast(core_input.device.type, enabled=False):         # see the class docstring
            return self.core(core_input, new_episode, core_state)

    def _check(self, inputs: AgentInput) -> None:
        """Shape and dtype checks only (no values: nothing here synchronises with the device)."""
        if inputs.done.dim() != 2 or inputs.done.dtype != torch.bool:
            raise ValueError(f"done must be bool [T, B], got {inputs.done.dtype} "
                             f"{tuple(inputs.done.shape)}")
        tb = tuple(inputs.done.shape)
        expected = {"frame": tb + self.frame_shape, "reward": tb, "last_action": tb, "task_id": tb}
        if self.instruction is not None:
            expected["instruction"] = tb + (self.instruction_length,)
        for name, shape in expected.items():
            got = tuple(getattr(inputs, name).shape)
            if got != shape:
                raise ValueError(f"AgentInput.{name} has shape {got}, expected {shape} "
                                 f"(time-major [T, B, ...], T, B = {tb})")
        for name in ("last_action", "task_id", "instruction"):
            if getattr(inputs, name).dtype != torch.int64:
                raise ValueError(f"AgentInput.{name} must be int64, got {getattr(inputs, name).dtype}")
