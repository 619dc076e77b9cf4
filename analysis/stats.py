"""Statistics for comparing heads (Agarwal et al., NeurIPS 2021, "Deep RL at the edge of the
statistical precipice"), in numpy.

Scores come as a matrix ``scores`` of shape ``[R, K]``: R runs (seeds) of one head, K tasks,
each entry a normalised score (percent). Every function is pure; random draws come from an
explicit ``numpy.random.Generator``.

* ``iqm``: interquartile mean over all R*K scores (drop ``floor(0.25 n)`` from each end, mean the
  rest: ``scipy.stats.trim_mean(x, 0.25)``, as rliable).
* ``mean_capped``: mean over runs and tasks of ``min(score, 100)`` (DMLab-30's mean capped score).
* ``stratified_bootstrap``: percentile CI of a statistic; each resample draws R runs with
  replacement *independently per task* (the strata), as rliable's ``StratifiedBootstrap``.
* ``probability_of_improvement``: ``P(X > Y) = 1/K sum_k 1/(R_x R_y) sum_ij S(x_ik, y_jk)``,
  ``S = 1 / 0.5 / 0`` for ``> / = / <`` (the Mann-Whitney U statistic per task, averaged).
* ``t_interval`` / ``welch_interval``: Student-t intervals of a mean / a difference of means
  (``evaluation.stats.t_quantile``).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

from evaluation.stats import t_quantile   # one t distribution for the project (incomplete beta, bisection)


class Interval(NamedTuple):
    value: float   # the statistic on the data
    low: float     # 95% (or ``confidence``) interval
    high: float


def _matrix(scores: np.ndarray | Sequence[Sequence[float]], name: str = "scores") -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty [runs, tasks] matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds a non-finite value: {x}")
    return x


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: sort, drop ``floor(n / 4)`` from each end, mean the rest."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def mean_capped(scores: np.ndarray, cap: float = 100.0) -> float:
    """Mean over runs and tasks of ``min(score, cap)`` (no lower clamp)."""
    return float(np.minimum(np.asarray(scores, dtype=np.float64), cap).mean())


def stratified_resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap resample ``[R, K]``: column k's runs drawn with replacement from column k."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(runs, tasks))
    return scores[rows, np.arange(tasks)[None, :]]


def stratified_bootstrap(scores: np.ndarray, statistic: Callable[[np.ndarray], float], *, reps: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> Interval:
    """Percentile interval of ``statistic`` over ``reps`` stratified bootstrap resamples of ``scores [R, K]``."""
    x = _matrix(scores)
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(stratified_resample(x, rng)) for _ in range(reps)])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(float(statistic(x)), float(low), float(high))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)`` for score matrices ``x [R_x, K]`` and ``y [R_y, K]`` (same tasks, same order)."""
    x, y = _matrix(x, "x"), _matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} tasks but y has {y.shape[1]}")
    diff = x[:, None, :] - y[None, :, :]                      # [R_x, R_y, K]
    s = (diff > 0).astype(np.float64) + 0.5 * (diff == 0)
    return float(s.mean(axis=(0, 1)).mean())


def probability_of_improvement_ci(x: np.ndarray, y: np.ndarray, *, reps: int = 2000, seed: int = 0,
                                  confidence: float = 0.95) -> Interval:
    """``P(X > Y)`` with a percentile interval: x's and y's runs resampled independently, per task."""
    x, y = _matrix(x, "x"), _matrix(y, "y")
    rng = np.random.default_rng(seed)
    stats = np.array([probability_of_improvement(stratified_resample(x, rng), stratified_resample(y, rng))
                      for _ in range(reps)])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(probability_of_improvement(x, y), float(low), float(high))


# ------------------------------------------------------------------ Student-t intervals
def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and ``mean ± t_{(1+c)/2, n-1} s / sqrt(n)`` (s: sample std, n - 1); n = 1: the point."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("t_interval of no values")
    mean = float(v.mean())
    if v.size == 1:
        return Interval(mean, mean, mean)
    half = t_quantile((1 + confidence) / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return Interval(mean, mean - half, mean + half)


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Interval:
    """Welch's interval for ``mean(a) - mean(b)`` (unequal variances, Welch-Satterthwaite df).
    Needs >= 2 values in each; if both variances are 0 the interval is the point."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"welch_interval needs >= 2 values per group, got {a.size} and {b.size}")
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 == 0:
        return Interval(diff, diff, diff)
    df = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = t_quantile((1 + confidence) / 2, df) * math.sqrt(se2)
    return Interval(diff, diff - half, diff + half)
