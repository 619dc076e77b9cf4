"""Statistics for comparing heads (Agarwal et al., NeurIPS 2021, "Deep RL at the edge of the
statistical precipice"), in numpy.

Scores come as a matrix ``scores`` of shape ``[R, K]``: R runs (seeds) of one head, K tasks,
each entry a normalised score (percent). Every function is pure; random draws come from an
explicit ``numpy.random.Generator`` seeded by the caller.

**The unit is the independent run.** When one run trains all K tasks (every ``launch.py train``
run does), its K scores share one network and one seed and are correlated, so the R rows are the
independent units: ``run_bootstrap`` resamples whole rows. rliable's ``stratified_bootstrap``
resamples each task's column independently, which is right only when every (run, task) entry
is a separate run; on a multitask run it understates (or overstates) the spread.

* ``iqm``: interquartile mean over all R*K scores (drop ``floor(0.25 n)`` from each end, mean the
  rest: ``scipy.stats.trim_mean(x, 0.25)``, as rliable).
* ``mean_capped``: mean over runs and tasks of ``min(score, 100)`` (DMLab-30's mean capped score).
* ``run_bootstrap`` / ``stratified_bootstrap`` (``bootstrap(..., unit=RUNS | TASKS)``):
  percentile CI of a statistic; ``difference_ci``: CI of ``statistic(x) - statistic(y)``, the two
  heads' runs resampled independently.
* ``probability_of_improvement``: ``P(X > Y) = 1/K sum_k 1/(R_x R_y) sum_ij S(x_ik, y_jk)``,
  ``S = 1 / 0.5 / 0`` for ``> / = / <`` (the Mann-Whitney U statistic per task, averaged), and its
  bootstrap interval ``probability_of_improvement_ci``.
* ``permutation_test``: two-sided permutation test of a difference of means of per-run values
  (exact enumeration of the splits when there are few enough, else seeded Monte Carlo).
* ``holm``: Holm's step-down adjustment of a family of p-values.
* ``degenerate``: an interval with ``low == high`` (every resample gave the same value): not a
  measurement of certainty, and reports must say so.
* ``t_interval`` / ``welch_interval``: Student-t intervals of a mean / a difference of means
  (``evaluation.results``' per-task intervals too); ``sample_std``. Without scipy: ``t_quantile``
  inverts the t CDF ``F(t) = 1 - I_{n/(n+t²)}(n/2, 1/2) / 2`` (t >= 0, n degrees of freedom) by
  bisection, with the regularized incomplete beta ``I_x(a, b)`` from its continued fraction
  (Lentz's method).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

from envs.dmlab30 import SCORE_CAP



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


def mean_capped(scores: np.ndarray, cap: float = SCORE_CAP) -> float:
    """Mean over runs and tasks of ``min(score, cap)`` (no lower clamp): ``envs.dmlab30.capped_mean``
    vectorized for the bootstrap."""
    return float(np.minimum(np.asarray(scores, dtype=np.float64), cap).mean())


RUNS = "runs"     # resample whole runs (rows): the unit when one run trains every task
TASKS = "tasks"   # resample each task's runs independently (rliable's stratified form): tasks are separate runs
UNITS = (RUNS, TASKS)
UNIT_NAMES = {RUNS: "run-level bootstrap (whole runs resampled: each run trained every task)",
              TASKS: "stratified bootstrap (each task's runs resampled independently: tasks are separate runs)"}


def run_resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One run-level resample ``[R, K]``: R rows drawn with replacement, each row kept whole."""
    return scores[rng.integers(0, scores.shape[0], size=scores.shape[0])]


def stratified_resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap resample ``[R, K]``: column k's runs drawn with replacement from column k."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(runs, tasks))
    return scores[rows, np.arange(tasks)[None, :]]


def _resampler(unit: str) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    if unit not in UNITS:
        raise ValueError(f"bootstrap unit {unit!r} is not one of {UNITS}: use {RUNS!r} when one run trains "
                         f"every task, {TASKS!r} when each task is a separate run")
    return run_resample if unit == RUNS else stratified_resample


def _percentile(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap(scores: np.ndarray, statistic: Callable[[np.ndarray], float], *, unit: str = RUNS,
              reps: int = 2000, seed: int = 0, confidence: float = 0.95) -> Interval:
    """Percentile interval of ``statistic`` over ``reps`` bootstrap resamples of ``scores [R, K]``,
    resampling whole runs (``unit=RUNS``) or each task's runs apart (``unit=TASKS``)."""
    x, resample = _matrix(scores), _resampler(unit)
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(resample(x, rng)) for _ in range(reps)])
    return Interval(float(statistic(x)), *_percentile(stats, confidence))


def run_bootstrap(scores: np.ndarray, statistic: Callable[[np.ndarray], float], *, reps: int = 2000,
                  seed: int = 0, confidence: float = 0.95) -> Interval:
    """``bootstrap(unit=RUNS)``: percentile interval, whole runs (rows of ``scores [R, K]``) resampled."""
    return bootstrap(scores, statistic, unit=RUNS, reps=reps, seed=seed, confidence=confidence)


def stratified_bootstrap(scores: np.ndarray, statistic: Callable[[np.ndarray], float], *, reps: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> Interval:
    """``bootstrap(unit=TASKS)``: rliable's stratified form, for tasks trained as separate runs."""
    return bootstrap(scores, statistic, unit=TASKS, reps=reps, seed=seed, confidence=confidence)


def difference_ci(x: np.ndarray, y: np.ndarray, statistic: Callable[[np.ndarray], float], *, unit: str = RUNS,
                  reps: int = 2000, seed: int = 0, confidence: float = 0.95) -> Interval:
    """``statistic(x) - statistic(y)`` for ``x [R_x, K]``, ``y [R_y, K]`` with a percentile interval;
    x's and y's runs are resampled independently (they are different runs)."""
    x, y, resample = _matrix(x, "x"), _matrix(y, "y"), _resampler(unit)
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(resample(x, rng)) - statistic(resample(y, rng)) for _ in range(reps)])
    return Interval(float(statistic(x) - statistic(y)), *_percentile(stats, confidence))


def degenerate(interval: Interval | Sequence[float]) -> bool:
    """True when the interval has no width (``low == high``): every resample gave the same value,
    e.g. P(A > B) = 0 when no run of A beats any run of B. With R runs that is not certainty."""
    return float(interval[1]) == float(interval[2])


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)`` for score matrices ``x [R_x, K]`` and ``y [R_y, K]`` (same tasks, same order)."""
    x, y = _matrix(x, "x"), _matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} tasks but y has {y.shape[1]}")
    diff = x[:, None, :] - y[None, :, :]                      # [R_x, R_y, K]
    s = (diff > 0).astype(np.float64) + 0.5 * (diff == 0)
    return float(s.mean(axis=(0, 1)).mean())


def probability_of_improvement_ci(x: np.ndarray, y: np.ndarray, *, unit: str = RUNS, reps: int = 2000,
                                  seed: int = 0, confidence: float = 0.95) -> Interval:
    """``P(X > Y)`` with a percentile interval: x's and y's runs resampled independently, whole runs
    (``unit=RUNS``) or per task (``unit=TASKS``)."""
    x, y, resample = _matrix(x, "x"), _matrix(y, "y"), _resampler(unit)
    rng = np.random.default_rng(seed)
    stats = np.array([probability_of_improvement(resample(x, rng), resample(y, rng)) for _ in range(reps)])
    return Interval(probability_of_improvement(x, y), *_percentile(stats, confidence))


# ------------------------------------------------------------------ tests of a difference
class Permutation(NamedTuple):
    difference: float   # mean(a) - mean(b), the observed statistic T
    p: float            # two-sided: #{splits with |T*| >= |T|} / #splits, the observed split counted
    splits: int         # number of splits evaluated (all of them when exact, else Monte Carlo draws + 1)
    exact: bool         # True: every one of C(n_a + n_b, n_a) splits enumerated


def permutation_test(a: Sequence[float], b: Sequence[float], *, max_exact: int = 200_000,
                     draws: int = 100_000, seed: int = 0) -> Permutation:
    """Two-sided permutation test of ``T = mean(a) - mean(b)`` for per-run values ``a [n_a]``, ``b [n_b]``.

    Under the null the labels are exchangeable: every split of the pooled ``n_a + n_b`` values into
    groups of ``n_a`` and ``n_b`` is equally likely. Exact when ``C(n_a + n_b, n_a) <= max_exact``
    (every split enumerated, the observed one included), else ``draws`` seeded random splits plus
    the observed one: ``p = (1 + #{|T*| >= |T|}) / (draws + 1)``. Ties within 1e-9 (relative)
    count as ``>=`` so that float rounding cannot lower p. E.g. [1, 2, 3] vs [4, 5, 6]: only the
    observed split and its mirror reach |T| = 3 among C(6, 3) = 20: p = 0.1.
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size < 1 or b.size < 1:
        raise ValueError(f"permutation_test needs >= 1 value per group, got {a.size} and {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"permutation_test got a non-finite value: a={a}, b={b}")
    pooled, n_a = np.concatenate([a, b]), a.size
    total = pooled.sum()
    observed = a.mean() - b.mean()
    tol = 1e-9 * max(1.0, float(np.abs(pooled).max()))
    count = math.comb(pooled.size, n_a)
    if count <= max_exact:
        groups = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(pooled.size), n_a)),
                             dtype=np.int64, count=count * n_a).reshape(count, n_a)
        exact = True
    else:
        rng = np.random.default_rng(seed)
        groups = np.argsort(rng.random((draws, pooled.size)), axis=1)[:, :n_a]
        exact = False
    sum_a = pooled[groups].sum(axis=1)
    t = sum_a / n_a - (total - sum_a) / b.size
    extreme = int(np.count_nonzero(np.abs(t) >= abs(observed) - tol))
    if exact:
        return Permutation(float(observed), extreme / count, count, True)
    return Permutation(float(observed), (1 + extreme) / (draws + 1), draws + 1, False)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sort ascending ``p_(1) <= ... <= p_(m)``; ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``
    (monotone in i). Rejecting where ``adj <= alpha`` controls the family-wise error at alpha.
    E.g. (0.01, 0.04, 0.03) -> (0.03, 0.06, 0.06).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"holm needs p-values in [0, 1], got {list(pvalues)}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return [float(v) for v in adjusted]


# ------------------------------------------------------------------ Student-t intervals
def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return h


def regularized_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function, for 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x={x} must be in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (bisection, |error| < 1e-12)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    while high - low > 1e-12 * max(1.0, high):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return 0.5 * (low + high)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and ``mean ± t_{(1+c)/2, n-1} s / sqrt(n)`` (s: ``sample_std``); n = 1: the point
    (no spread can be estimated); no values: ValueError."""
    n = len(values)
    if n == 0:
        raise ValueError("t_interval of no values")
    values = [float(v) for v in values]
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, mean, mean)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sample_std(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation (ddof 1) of ``values``; 0 for one value."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


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
