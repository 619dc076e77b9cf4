"""IMPALA's reward clipping and losses, pure functions on time-major ``[T, B]`` tensors.

All losses are summed over time and batch, as in the paper and the reference release:
``total = pg_loss + baseline_cost * baseline_loss - entropy_cost * entropy`` with
``baseline_loss = 0.5 * sum (vs - V)^2`` (so the default baseline_cost 0.5 weighs the squared
error by 0.25, as DMLab-30's "0.5 x baseline (0.5 sum (v_s - V)^2)").
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

REWARD_CLIPPINGS = ("abs_one", "soft_asymmetric", "none")
POLICY_LOSSES = ("vtrace", "clipped")


def clip_rewards(rewards: torch.Tensor, mode: str) -> torch.Tensor:
    """abs_one: clip to [-1, 1]; soft_asymmetric: s = tanh(r / 5), 5 s if r >= 0 else 1.5 s;
    none: unchanged."""
    if mode == "abs_one":
        return rewards.clamp(-1.0, 1.0)
    if mode == "soft_asymmetric":
        squeezed = torch.tanh(rewards / 5.0)
        return torch.where(rewards >= 0, 5.0 * squeezed, 1.5 * squeezed)
    if mode == "none":
        return rewards
    raise ValueError(f"reward clipping {mode!r} is not one of {', '.join(REWARD_CLIPPINGS)}")


def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-batch standardisation ``(A - mean(A)) / (std(A) + eps)`` over all ``[T, B]`` entries
    (population std), the default of PPO-style learners such as Sample Factory. Not IMPALA's."""
    centred = advantages - advantages.mean()
    return centred / (centred.square().mean().sqrt() + eps)


def truncation_bootstrap(rewards: torch.Tensor, truncated: torch.Tensor, truncation_value: torch.Tensor,
                         discount: float) -> torch.Tensor:
    """Rewards with the value of a time-limit-truncated episode's final observation folded in.

    Derivation, in the paper's notation (Espeholt et al. 2018, eq. 1): the n-step V-trace target is
    ``v_s = V(x_s) + sum_{t>=s} gamma^{t-s} (prod_{i=s}^{t-1} c_i) delta_t V`` with
    ``delta_t V = rho_t (r_t + gamma V(x_{t+1}) - V(x_t))``. An episode that *terminates* at
    transition t has no future: ``gamma_t = 0`` there, so ``delta_t = rho_t (r_t - V(x_t))`` and no
    trace crosses into the next episode. An episode *cut by its time limit* at x'_{t+1} does have
    one: its target is ``r_t + gamma V(x'_{t+1})``, while the traces must still stop (what follows
    in the unroll is another episode). The actor resets the env at once, so the unroll's x_{t+1}
    is the next episode's first observation; it therefore ships ``V(x'_{t+1})`` itself
    (``truncation_value``, computed by the acting network from the LSTM state after x_t).
    Keeping ``gamma_t = 0`` (``done``) and replacing ``r_t`` by ``r~_t = r_t + gamma V(x'_{t+1})``
    gives ``delta_t = rho_t (r~_t - V(x_t)) = rho_t (r_t + gamma V(x'_{t+1}) - V(x_t))``, exactly
    the truncated transition's TD error, while every product ``prod c_i`` over t still sees
    ``gamma_t = 0``; the policy-gradient advantage ``rho_t (r~_t + gamma_t v_{t+1} - V(x_t))``
    likewise. ``V(x'_{t+1})`` is the behaviour network's value (its weights lag the learner's by
    the policy lag); it enters only at the truncated transitions.

    rewards, truncated (bool), truncation_value: ``[T, B]``.
    """
    return rewards + discount * torch.where(truncated, truncation_value, torch.zeros_like(truncation_value))


def policy_gradient_loss(logits: torch.Tensor, actions: torch.Tensor,
                         advantages: torch.Tensor) -> torch.Tensor:
    """``-sum log pi(a_t|x_t) * advantage_t``: logits ``[T, B, A]``, actions int64 ``[T, B]``,
    advantages ``[T, B]`` (treated as constants)."""
    cross_entropy = F.cross_entropy(logits.flatten(0, 1), actions.flatten(), reduction="none")
    return (cross_entropy.view_as(advantages) * advantages.detach()).sum()


def clipped_policy_loss(logits: torch.Tensor, behaviour_logits: torch.Tensor, actions: torch.Tensor,
                        advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """APPO's clipped-ratio surrogate (Sample Factory, ``--ppo_clip_ratio``, default 0.1):
    ``-sum min(r_t A_t, clip(r_t, 1 / (1 + clip), 1 + clip) A_t)`` with the ratio
    ``r_t = pi(a_t|x_t) / mu(a_t|x_t)`` of the target and behaviour policies (gradient through pi
    only) and the advantages A ``[T, B]`` (constants; here V-trace's). Sample Factory's symmetric-in-log
    bounds ``[1 / (1 + clip), 1 + clip]``, not PPO's ``[1 - clip, 1 + clip]``.
    logits, behaviour_logits ``[T, B, A]``; actions int64 ``[T, B]``."""
    log_pi = -F.cross_entropy(logits.flatten(0, 1), actions.flatten(), reduction="none").view_as(advantages)
    log_mu = -F.cross_entropy(behaviour_logits.flatten(0, 1).detach(), actions.flatten(),
                              reduction="none").view_as(advantages)
    ratio = (log_pi - log_mu).exp()
    high = 1.0 + clip
    advantages = advantages.detach()
    return -torch.minimum(ratio * advantages, ratio.clamp(1.0 / high, high) * advantages).sum()


def baseline_loss(vs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``0.5 * sum (vs - V)^2``; vs ``[T, B]`` is a target (no gradient)."""
    return 0.5 * (vs.detach() - values).square().sum()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """``sum_{t,b} H(pi(.|x_t))``, logits ``[T, B, A]``."""
    log_probs = F.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum()


class Losses(NamedTuple):
    total: torch.Tensor
    pg: torch.Tensor
    baseline: torch.Tensor
    entropy: torch.Tensor


def impala_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                vs: torch.Tensor, pg_advantages: torch.Tensor, *,
                baseline_cost: float, entropy_cost: float,
                behaviour_logits: torch.Tensor | None = None, clip: float | None = None) -> Losses:
    """The total loss and its parts; logits ``[T, B, A]``, the rest ``[T, B]``. With ``clip`` (and
    ``behaviour_logits`` ``[T, B, A]``) the policy term is ``clipped_policy_loss`` instead of IMPALA's."""
    if clip is None:
        pg = policy_gradient_loss(logits, actions, pg_advantages)
    else:
        pg = clipped_policy_loss(logits, behaviour_logits, actions, pg_advantages, clip)
    base = baseline_loss(vs, values)
    ent = entropy(logits)
    return Losses(pg + baseline_cost * base - entropy_cost * ent, pg, base, ent)
