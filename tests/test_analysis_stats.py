"""analysis.stats against hand-computed values and properties that must hold."""
import math

import numpy as np
import pytest

from analysis import stats


def test_iqm_drops_a_quarter_from_each_end():
    assert stats.iqm([[1, 2, 3, 4, 5, 6, 7, 8]]) == pytest.approx(4.5)           # mean(3, 4, 5, 6)
    assert stats.iqm([[0, 1000], [10, 20], [30, -5]]) == pytest.approx(15.0)   # n=6, drop 1 each end: mean(0, 10, 20, 30)
    assert stats.iqm([[7, 1, 4]]) == pytest.approx(4.0)                             # n = 3: nothing dropped


def test_mean_capped_caps_above_only():
    assert stats.mean_capped([[50, 150], [100, -20]]) == pytest.approx((50 + 100 + 100 - 20) / 4)


def test_probability_of_improvement_hand_cases():
    assert stats.probability_of_improvement([[1], [3]], [[2], [2]]) == pytest.approx(0.5)
    assert stats.probability_of_improvement([[2]], [[2]]) == pytest.approx(0.5)     # a tie counts 1/2
    # task 0: 3>2, 4>2 -> 1; task 1: 3>2, 1<2 -> 1/2; mean over tasks 0.75
    assert stats.probability_of_improvement([[3, 3], [4, 1]], [[2, 2]]) == pytest.approx(0.75)
    x, y = np.array([[5.0, 1.0], [6.0, 2.0]]), np.array([[4.0, 3.0]])
    assert stats.probability_of_improvement(x, y) + stats.probability_of_improvement(y, x) == pytest.approx(1.0)


def test_stratified_resample_draws_each_task_from_its_own_runs():
    rng = np.random.default_rng(3)
    scores = np.array([[0.0, 10.0, 100.0], [1.0, 11.0, 101.0], [2.0, 12.0, 102.0]])
    seen = np.zeros((3, 3))
    for _ in range(2000):
        r = stats.stratified_resample(scores, rng)
        assert r.shape == (3, 3)
        for k in range(3):
            assert set(r[:, k]) <= set(scores[:, k])
            seen[:, k] += np.bincount((r[:, k] - scores[0, k]).astype(int), minlength=3)
    # every run is drawn with probability 1/3 in every task
    np.testing.assert_allclose(seen / seen.sum(axis=0), 1 / 3, atol=0.02)


def test_stratified_bootstrap_tiny_exact_case():
    # two runs, one task: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% / 97.5% quantiles are exactly 0 and 1
    iv = stats.stratified_bootstrap([[0.0], [1.0]], lambda m: float(m.mean()), reps=4000, seed=1)
    assert (iv.value, iv.low, iv.high) == (0.5, 0.0, 1.0)
    # identical runs: no spread; deterministic for a fixed seed
    assert stats.stratified_bootstrap([[3.0, 5.0]] * 4, stats.iqm, reps=200) == (4.0, 4.0, 4.0)
    wide = np.random.default_rng(0).normal(50, 10, size=(5, 4))
    a = stats.stratified_bootstrap(wide, stats.mean_capped, reps=500, seed=7)
    assert a == stats.stratified_bootstrap(wide, stats.mean_capped, reps=500, seed=7)
    assert a.low < a.value < a.high
    # percentile interval of the mean over 20 values ~ mean +- 1.96 * sd / sqrt(20), wide tolerance
    assert a.high - a.low == pytest.approx(2 * 1.96 * wide.std(ddof=1) / math.sqrt(20), rel=0.35)


def test_probability_of_improvement_ci():
    better = np.array([[10.0, 20.0], [11.0, 21.0], [12.0, 22.0]])
    worse = better - 100
    iv = stats.probability_of_improvement_ci(better, worse, reps=300)
    assert iv == (1.0, 1.0, 1.0)
    mixed = stats.probability_of_improvement_ci([[1.0], [3.0]], [[2.0], [2.0]], reps=2000, seed=0)
    assert mixed.value == 0.5 and mixed.low == 0.0 and mixed.high == 1.0


def test_t_interval_hand_numbers():
    iv = stats.t_interval([1.0, 2.0, 3.0, 4.0])          # s = 1.2910, t(0.975, 3) = 3.1824
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert iv.value == 2.5
    assert (iv.low, iv.high) == pytest.approx((2.5 - half, 2.5 + half), abs=1e-5)
    assert stats.t_interval([7.0]) == (7.0, 7.0, 7.0)


def test_welch_interval_hand_numbers():
    # equal sizes and variances: df = 2 (n - 1) = 4, se = sqrt(1/3 + 1/3)
    iv = stats.welch_interval([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    half = 2.776445 * math.sqrt(2 / 3)
    assert iv.value == -3.0
    assert (iv.low, iv.high) == pytest.approx((-3 - half, -3 + half), abs=1e-5)
    with pytest.raises(ValueError, match=">= 2 values"):
        stats.welch_interval([1.0], [2.0, 3.0])


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError, match="runs, tasks"):
        stats.stratified_bootstrap([1.0, 2.0], stats.iqm)
    with pytest.raises(ValueError, match="non-finite"):
        stats.probability_of_improvement([[float("nan")]], [[1.0]])
    with pytest.raises(ValueError, match="tasks"):
        stats.probability_of_improvement([[1.0, 2.0]], [[1.0]])
