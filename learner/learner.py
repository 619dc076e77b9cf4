"""One IMPALA learner update: forward over the unrolls, V-trace, loss, backward, optimizer step."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from agent.types import AgentOutput, CoreState, agent_input_from_unroll
from learner import vtrace
from learner.config import LearnerConfig
from learner.losses import Losses, clip_rewards, impala_loss, normalize_advantages, truncation_bootstrap
from learner.optim import LinearDecay, build_optimizer, grad_norm
from learner.popart import PopArt


class LossOutputs(NamedTuple):
    losses: Losses
    vtrace: vtrace.VTraceFromLogitsReturns
    rewards: torch.Tensor       # clipped rewards of the T transitions [T, B]
    values: torch.Tensor        # V(x_t), t = 0..T-1 [T, B] (unnormalised with PopArt)


def unroll_loss(output: AgentOutput, batch: dict[str, torch.Tensor], cfg: LearnerConfig,
                popart: PopArt | None = None) -> LossOutputs:
    """The loss of T transitions from the agent's output over the T + 1 steps of the unrolls.

    Alignment (``agent.types``): step t holds x_t, the action a_t taken there and its behaviour
    logits, and ``reward[t]``/``done[t]`` of *arriving* at x_t. Transition t (t = 0..T-1) is
    therefore ``x_t --a_t--> x_{t+1}`` with reward ``reward[t + 1]`` and discount
    ``discount * (1 - done[t + 1])`` (zero when x_{t+1} starts a new episode, i.e. the transition
    ended one). Its value is ``baseline[t]``, its target logits ``logits[t]``; ``baseline[T]``
    = V(x_T) bootstraps. ``reward[0]``/``done[0]`` belong to the previous unroll's last
    transition and are unused here; step T's action is the next unroll's a_0.

    Options (``LearnerConfig``): ``truncation_bootstrap`` gives a transition that ended its
    episode by the time limit (``truncated[t + 1]``) the target ``r + gamma V(x')`` of the
    episode's final observation x' (``truncation_value[t + 1]``, the acting network's value,
    ``losses.truncation_bootstrap``) instead of IMPALA's ``r``; ``advantage_normalization``
    standardises the policy-gradient advantages over the batch (``losses.normalize_advantages``);
    ``policy_loss="clipped"`` replaces IMPALA's policy term by APPO's clipped-ratio surrogate on the
    same advantages (``losses.clipped_policy_loss``).

    ``popart`` (``learner.popart=true``, ``learner/popart.py``): the head's value output is read as
    task-normalised; V-trace runs on the unnormalised values ``popart.values(baseline)`` (the
    actor's ``truncation_value``, the acting network's raw output, is unnormalised with the current
    transform); then ``popart.update`` steps the per-task statistics with the V-trace targets
    (in place, outputs preserved) and the losses use the new statistics: baseline loss on the
    normalised targets ``(v_s - mu) / sigma`` against the normalised values, advantages divided by
    sigma. ``LossOutputs.values`` are unnormalised.
    """
    logits = output.policy_logits.float()
    baseline = output.baseline.float()
    steps = logits.shape[0] - 1
    rewards = clip_rewards(batch["reward"][1:].float(), cfg.reward_clipping)
    discounts = cfg.discount * (~batch["done"][1:]).float()
    actions = batch["action"][:steps]
    task_id = batch["task_id"]
    values = baseline if popart is None else popart.values(baseline, task_id)
    targets = rewards
    if cfg.truncation_bootstrap:
        truncation_value = batch["truncation_value"][1:].float()
        if popart is not None:
            truncation_value = popart.values(truncation_value, task_id[1:])
        targets = truncation_bootstrap(rewards, batch["truncated"][1:], truncation_value, cfg.discount)
    returns = vtrace.from_logits(
        behaviour_policy_logits=batch["behaviour_logits"][:steps].float(),
        target_policy_logits=logits[:steps], actions=actions, discounts=discounts,
        rewards=targets, values=values[:steps], bootstrap_value=values[steps],
        clip_rho_threshold=cfg.clip_rho_threshold, clip_pg_rho_threshold=cfg.clip_pg_rho_threshold,
        lambda_=cfg.vtrace_lambda)
    advantages, prediction, target = returns.pg_advantages, baseline[:steps], returns.vs
    if popart is not None:
        popart.update(returns.vs, task_id[:steps])
        prediction = popart.normalized(baseline[:steps], task_id[:steps])
        target = popart.normalize_target(returns.vs, task_id[:steps])
        advantages = advantages / popart.sigma.to(advantages.dtype)[task_id[:steps]]
    if cfg.advantage_normalization:
        advantages = normalize_advantages(advantages)
    clipped = cfg.policy_loss == "clipped"
    losses = impala_loss(logits[:steps], prediction, actions, target, advantages,
                         baseline_cost=cfg.baseline_cost, entropy_cost=cfg.entropy_cost,
                         behaviour_logits=batch["behaviour_logits"][:steps].float() if clipped else None,
                         clip=cfg.policy_clip if clipped else None)
    return LossOutputs(losses, returns, rewards, values[:steps])


class Learner:
    """Owns the agent's optimizer, the LR schedule and the update/frame counters.

    ``step(batch)`` takes a dict of tensors already on ``device`` with ``Unroll``'s array fields
    (time-major ``[T + 1, B, ...]``; ``core_h``, ``core_c`` ``[B, S]``) and returns its metrics as
    0-d tensors on the device. Nothing in the step synchronises with the device (no ``.item()``,
    no host copies, no branches on tensor values); the caller decides when to read the metrics.
    Each step counts ``T * B * action_repeat`` env frames; the LR used by an update is the
    schedule's value at the frames counted before it.

    Fast path (``cfg``): ``precision="bf16"`` autocasts the torso only (the agent keeps core, head
    and so the target logits in float32; V-trace, the losses and the optimizer are float32);
    ``channels_last`` puts the torso's conv weights in channels-last memory format (its input
    already is); ``compile`` compiles the torso in place.
    """

    def __init__(self, agent: nn.Module, cfg: LearnerConfig, *, total_frames: int,
                 action_repeat: int, device: torch.device | str):
        self.device = torch.device(device)
        self.agent = agent.to(self.device)
        if cfg.channels_last:
            self.agent.torso.to(memory_format=torch.channels_last)
        if cfg.compile:
            self.agent.torso.compile()   # in place: parameter names (checkpoints, actor weights) unchanged
        self.cfg = cfg
        self.action_repeat = int(action_repeat)
        self.optimizer = build_optimizer(self.agent.parameters(), cfg)
        self.schedule = LinearDecay(cfg.learning_rate, total_frames, constant=cfg.lr_schedule == "constant")
        self.popart = PopArt(agent.num_tasks, cfg.popart_beta).to(self.device) if cfg.popart else None
        self.num_updates = 0
        self.state_intact = True   # False while (and if an error interrupts) an update is being applied

    @property
    def num_frames(self) -> int:
        return self.schedule.frames

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        steps, batch_size = batch["reward"].shape[0] - 1, batch["reward"].shape[1]
        if steps < 1:
            raise ValueError(f"an unroll needs T + 1 >= 2 steps, got reward of shape "
                             f"{tuple(batch['reward'].shape)}")
        self.agent.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.cfg.precision == "bf16"):
            output, _ = self.agent(agent_input_from_unroll(batch),
                                   CoreState(batch["core_h"], batch["core_c"]))
        out = unroll_loss(output, batch, self.cfg, self.popart)
        self.optimizer.zero_grad(set_to_none=True)
        out.losses.total.backward()
        norm = grad_norm(self.agent.parameters(), self.cfg.grad_norm_clip)
        lr = self.schedule.apply(self.optimizer)
        self.state_intact = False          # until parameters, optimizer state and counters agree again
        self.optimizer.step()
        self.schedule.advance(steps * batch_size * self.action_repeat)
        self.num_updates += 1
        self.state_intact = True
        return self._metrics(out, norm, lr)

    def _metrics(self, out: LossOutputs, norm: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
        losses, returns = out.losses, out.vtrace
        rhos = returns.log_rhos.exp()
        metrics = {
            "total_loss": losses.total, "pg_loss": losses.pg, "baseline_loss": losses.baseline,
            "entropy": losses.entropy, "grad_norm": norm,
            "learning_rate": torch.full((), lr, device=self.device),
            "vs_mean": returns.vs.mean(), "baseline_mean": out.values.mean(),
            "pg_advantage_mean": returns.pg_advantages.mean(), "rho_mean": rhos.mean(),
            "log_rho_abs_mean": returns.log_rhos.abs().mean(),   # off-policyness; ~0 on on-policy data
            "rho_above_one_fraction": (rhos > 1.0).float().mean(),
            "reward_mean": out.rewards.mean(),
        }
        if self.popart is not None:   # [K] vectors: the reporter logs them per task (popart/<task>/...)
            metrics.update(popart_mu=self.popart.mu.float(), popart_sigma=self.popart.sigma.float())
        return {name: value.detach() for name, value in metrics.items()}

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, LR schedule (whose state is the frame counter), update counter and,
        with ``learner.popart=true`` only, ``"popart"`` (its statistics and output transform)."""
        state = {"model": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "num_updates": self.num_updates}
        if self.popart is not None:
            state["popart"] = self.popart.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], saved_total_frames: int | None = None) -> None:
        """``saved_total_frames``: the checkpoint run's budget, for schedules saved without it; a changed
        budget re-anchors the LR decay if ``cfg.lr_schedule_resume == "continue"`` (``LinearDecay``)."""
        if (self.popart is not None) != ("popart" in state):
            raise ValueError(f"the checkpoint was written with learner.popart={'popart' in state} but this "
                             f"run has learner.popart={self.popart is not None}; resume with "
                             f"learner.popart={str('popart' in state).lower()}")
        self.agent.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"], keep_rate=self.cfg.lr_schedule_resume == "continue",
                                      saved_total_frames=saved_total_frames)
        self.num_updates = int(state["num_updates"])
        if self.popart is not None:
            self.popart.load_state_dict(state["popart"])
