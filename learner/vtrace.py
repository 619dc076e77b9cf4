"""V-trace off-policy targets (Espeholt et al. 2018), time-major torch.

Shapes: T = unroll length (number of transitions), B = batch size, A = number of actions.
Transition t goes from x_t (value ``values[t]``) with action a_t to x_{t+1} with reward
``rewards[t]`` and discount ``discounts[t]`` (0 where the episode ended at the transition);
``bootstrap_value`` is V(x_T). With rho_t = pi(a_t|x_t) / mu(a_t|x_t):

    clipped rho_t = min(rho_bar, rho_t),   c_t = lambda * min(1, rho_t),
    delta_t = clipped rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t)),
    v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1})),   v_T = V(x_T),
    pg_advantage_s = min(rho_bar_pg, rho_s) (r_s + gamma_s v_{s+1} - V(x_s)).

A threshold of None disables that clipping. Everything is computed without gradient: the
results are targets. Works on any device, in float32 or float64 (all float inputs must share
one dtype).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F


class VTraceReturns(NamedTuple):
    """vs: float ``[T, B]`` V-trace targets; pg_advantages: float ``[T, B]``."""

    vs: torch.Tensor
    pg_advantages: torch.Tensor


class VTraceFromLogitsReturns(NamedTuple):
    """``VTraceReturns`` plus log_rhos, behaviour_action_log_probs, target_action_log_probs
    (each float ``[T, B]``)."""

    vs: torch.Tensor
    pg_advantages: torch.Tensor
    log_rhos: torch.Tensor
    behaviour_action_log_probs: torch.Tensor
    target_action_log_probs: torch.Tensor


def _check_time_major(names_and_tensors: dict[str, torch.Tensor], rank: int,
                      prefix: tuple[int, ...] | None = None) -> tuple[int, ...]:
    for name, tensor in names_and_tensors.items():
        if tensor.dim() != rank:
            raise ValueError(f"{name} must have rank {rank}, got shape {tuple(tensor.shape)}")
        if prefix is None:
            prefix = tuple(tensor.shape[:2])
        if tuple(tensor.shape[:2]) != prefix:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected [T, B] = {prefix} "
                             "leading dimensions like the other inputs")
    return prefix


def _check_float(names_and_tensors: dict[str, torch.Tensor]) -> None:
    dtypes = {name: t.dtype for name, t in names_and_tensors.items()}
    if any(not d.is_floating_point for d in dtypes.values()) or len(set(dtypes.values())) != 1:
        raise TypeError(f"inputs must all share one float dtype, got {dtypes}")


@torch.no_grad()
def from_importance_weights(log_rhos: torch.Tensor, discounts: torch.Tensor, rewards: torch.Tensor,
                            values: torch.Tensor, bootstrap_value: torch.Tensor,
                            clip_rho_threshold: float | None = 1.0,
                            clip_pg_rho_threshold: float | None = 1.0,
                            lambda_: float = 1.0) -> VTraceReturns:
    """V-trace from log importance weights.

    Args:
      log_rhos: float ``[T, B]``, log pi(a_t|x_t) - log mu(a_t|x_t).
      discounts: float ``[T, B]``, gamma_t (0 where the episode ended at transition t).
      rewards: float ``[T, B]``, r_t (already clipped as wanted).
      values: float ``[T, B]``, V(x_t).
      bootstrap_value: float ``[B]``, V(x_T).
      clip_rho_threshold: rho_bar for the value targets (None: no clipping).
      clip_pg_rho_threshold: rho_bar_pg for the policy-gradient advantages (None: no clipping).
      lambda_: scales the traces, c_t = lambda * min(1, rho_t).
    Returns:
      VTraceReturns(vs [T, B], pg_advantages [T, B]), no gradient.
    """
    tensors = {"log_rhos": log_rhos, "discounts": discounts, "rewards": rewards, "values": values}
    (_, batch) = _check_time_major(tensors, rank=2)
    if bootstrap_value.shape != (batch,):
        raise ValueError(f"bootstrap_value must have shape [B] = ({batch},), "
                         f"got {tuple(bootstrap_value.shape)}")
    _check_float({**tensors, "bootstrap_value": bootstrap_value})
    for name, value in (("clip_rho_threshold", clip_rho_threshold),
                        ("clip_pg_rho_threshold", clip_pg_rho_threshold)):
        if value is not None and not value > 0:
            raise ValueError(f"{name}={value!r} must be positive or None")

    rhos = torch.exp(log_rhos)
    clipped_rhos = rhos if clip_rho_threshold is None else rhos.clamp(max=clip_rho_threshold)
    cs = lambda_ * rhos.clamp(max=1.0)
    values_t_plus_1 = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)
    deltas = clipped_rhos * (rewards + discounts * values_t_plus_1 - values)

    vs = discounted_sums(deltas, discounts * cs) + values

    vs_t_plus_1 = torch.cat([vs[1:], bootstrap_value.unsqueeze(0)], dim=0)
    pg_rhos = rhos if clip_pg_rho_threshold is None else rhos.clamp(max=clip_pg_rho_threshold)
    pg_advantages = pg_rhos * (rewards + discounts * vs_t_plus_1 - values)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages)


def discounted_sums(deltas: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """``out[s] = sum_{t=s}^{T-1} (prod_{i=s}^{t-1} decay[i]) deltas[t]`` for float ``[T, B]`` inputs.

    The backward recursion ``out[s] = deltas[s] + decay[s] out[s+1]`` (``out[T] = 0``) as a parallel
    scan instead of a loop over T: after the step with offset k (k = 1, 2, 4, ...) row s holds the
    map ``out[s] = x[s] + a[s] out[s + 2k]``, composed from rows s and s + k; ceil(log2 T) steps
    (7 for T = 100: ~35 kernels instead of 2T, no host round trips; rows past T count as 0).
    """
    x, a = deltas, decay
    k, steps = 1, deltas.shape[0]
    while k < steps:
        pad = torch.zeros_like(x[:k])
        x = x + a * torch.cat([x[k:], pad])
        a = a * torch.cat([a[k:], pad])
        k *= 2
    return x


def action_log_probs(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[actions]: logits float ``[T, B, A]``, actions int64 ``[T, B]`` -> ``[T, B]``."""
    return F.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def from_logits(behaviour_policy_logits: torch.Tensor, target_policy_logits: torch.Tensor,
                actions: torch.Tensor, discounts: torch.Tensor, rewards: torch.Tensor,
                values: torch.Tensor, bootstrap_value: torch.Tensor,
                clip_rho_threshold: float | None = 1.0, clip_pg_rho_threshold: float | None = 1.0,
                lambda_: float = 1.0) -> VTraceFromLogitsReturns:
    """V-trace from behaviour and target policy logits.

    Args:
      behaviour_policy_logits: float ``[T, B, A]``, unnormalised log mu(.|x_t).
      target_policy_logits: float ``[T, B, A]``, unnormalised log pi(.|x_t).
      actions: int64 ``[T, B]``, a_t, sampled from mu.
      discounts, rewards, values, bootstrap_value, thresholds, lambda_: as in
        ``from_importance_weights``.
    Returns:
      VTraceFromLogitsReturns: vs, pg_advantages, log_rhos, behaviour_action_log_probs,
      target_action_log_probs (each ``[T, B]``), no gradient.
    """
    logits = {"behaviour_policy_logits": behaviour_policy_logits,
              "target_policy_logits": target_policy_logits}
    prefix = _check_time_major(logits, rank=3)
    _check_time_major({"actions": actions}, rank=2, prefix=prefix)
    if behaviour_policy_logits.shape != target_policy_logits.shape:
        raise ValueError(f"behaviour and target logits differ in shape: "
                         f"{tuple(behaviour_policy_logits.shape)} vs {tuple(target_policy_logits.shape)}")
    if actions.dtype != torch.int64:
        raise TypeError(f"actions must be int64 [T, B], got {actions.dtype}")
    _check_time_major({"discounts": discounts, "rewards": rewards, "values": values}, rank=2,
                      prefix=prefix)
    _check_float({**logits, "values": values})

    behaviour_log_probs = action_log_probs(behaviour_policy_logits, actions)
    target_log_probs = action_log_probs(target_policy_logits, actions)
    log_rhos = target_log_probs - behaviour_log_probs
    returns = from_importance_weights(log_rhos, discounts, rewards, values, bootstrap_value,
                                      clip_rho_threshold, clip_pg_rho_threshold, lambda_)
    return VTraceFromLogitsReturns(returns.vs, returns.pg_advantages, log_rhos,
                                   behaviour_log_probs, target_log_probs)
