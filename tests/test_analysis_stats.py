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


# ------------------------------------------------------------------ the run as the unit
def test_run_resample_keeps_rows_whole():
    rng = np.random.default_rng(0)
    scores = np.array([[0.0, 10.0, 100.0], [1.0, 11.0, 101.0], [2.0, 12.0, 102.0]])
    for _ in range(200):
        r = stats.run_resample(scores, rng)
        assert r.shape == (3, 3)
        for row in r:                                   # every resampled row is one of the runs, intact
            assert any(np.array_equal(row, s) for s in scores)


def test_run_level_and_stratified_disagree_on_anticorrelated_tasks():
    # Two runs, two tasks, perfectly anti-correlated within a run: every run's mean is 50.
    scores = [[0.0, 100.0], [100.0, 0.0]]
    mean = lambda m: float(m.mean())   # noqa: E731
    # run level: a resample is 2 rows drawn from 2 identical-mean rows -> the mean is 50, always
    assert stats.run_bootstrap(scores, mean, reps=2000, seed=0) == (50.0, 50.0, 50.0)
    assert stats.degenerate(stats.run_bootstrap(scores, mean, reps=200, seed=0))
    # stratified: each column's mean is 0 / 50 / 100 with probability 1/4, 1/2, 1/4, independently, so
    # the overall mean (c1 + c2) / 2 is 0, 25, 50, 75, 100 with probability 1/16, 4/16, 6/16, 4/16, 1/16:
    # the 2.5% and 97.5% quantiles are 0 and 100 (P(0) = P(100) = 6.25% > 2.5%)
    assert stats.stratified_bootstrap(scores, mean, reps=4000, seed=0) == (50.0, 0.0, 100.0)
    rng = np.random.default_rng(1)
    draws = np.array([stats.stratified_resample(np.array(scores), rng).mean() for _ in range(16000)])
    freq = [np.mean(draws == v) for v in (0, 25, 50, 75, 100)]
    np.testing.assert_allclose(freq, np.array([1, 4, 6, 4, 1]) / 16, atol=0.012)


def test_run_bootstrap_known_intervals():
    # two runs of one task: a resample's mean is 0 / 50 / 100 w.p. 1/4, 1/2, 1/4 -> [0, 100]
    assert stats.run_bootstrap([[0.0, 0.0], [100.0, 100.0]], stats.mean_capped, reps=4000, seed=2) == (50.0, 0.0, 100.0)
    # many runs: the percentile interval of the mean ~ mean +- 1.96 sd(run means) / sqrt(R); the sd is
    # that of the *run means* (tasks within a run are perfectly correlated here), not of all entries
    rng = np.random.default_rng(5)
    run_means = rng.normal(40.0, 10.0, size=200)
    scores = np.stack([run_means - 30.0, run_means + 30.0], axis=1)   # a within-run task gap of 60
    iv = stats.run_bootstrap(scores, lambda m: float(m.mean()), reps=4000, seed=3)
    half = 1.96 * run_means.std(ddof=1) / math.sqrt(200)
    assert iv.value == pytest.approx(run_means.mean())
    assert (iv.low, iv.high) == pytest.approx((iv.value - half, iv.value + half), abs=0.12 * half)


def test_difference_ci_resamples_the_two_heads_apart():
    x, y = np.array([[10.0, 20.0], [30.0, 40.0]]), np.array([[5.0, 5.0]])
    iv = stats.difference_ci(x, y, lambda m: float(m.mean()), reps=4000, seed=0)
    # y has one run (mean 5); x's resampled mean is 15 / 25 / 35 w.p. 1/4, 1/2, 1/4
    assert iv == (20.0, 10.0, 30.0)
    # anti-correlated tasks: every run of x has mean 50, so whole-run resampling cannot move the
    # difference (45); resampling per task can (x's mean 0 .. 100, each end w.p. 1/16)
    anti = np.array([[0.0, 100.0], [100.0, 0.0]])
    assert stats.difference_ci(anti, y, lambda m: float(m.mean()), reps=2000) == (45.0, 45.0, 45.0)
    assert stats.difference_ci(anti, y, lambda m: float(m.mean()), unit=stats.TASKS, reps=4000) == (45.0, -5.0, 95.0)


def test_probability_of_improvement_ci_run_level():
    # rows kept whole: each run of x beats y on one task and loses on the other, so every resample
    # gives P = 1/2 per run pair: a degenerate interval at 0.5
    x, y = [[0.0, 100.0], [100.0, 0.0]], [[50.0, 50.0]]
    assert stats.probability_of_improvement_ci(x, y, reps=2000, seed=0) == (0.5, 0.5, 0.5)
    # per task, a resample can draw the 100s of both tasks (P = 1) or the 0s of both (P = 0), each w.p. 1/16
    assert stats.probability_of_improvement_ci(x, y, unit=stats.TASKS, reps=4000, seed=0) == (0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="bootstrap unit 'seeds'"):
        stats.probability_of_improvement_ci(x, y, unit="seeds")


# ------------------------------------------------------------------ permutation test and Holm
def naive_permutation_p(a, b):
    """The definition, spelled out: all ways to relabel the pooled values, |T*| >= |T| counted."""
    import itertools

    pooled = list(a) + list(b)
    observed = abs(sum(a) / len(a) - sum(b) / len(b))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        ga = [pooled[i] for i in idx]
        gb = [pooled[i] for i in range(len(pooled)) if i not in idx]
        hits += abs(sum(ga) / len(ga) - sum(gb) / len(gb)) >= observed - 1e-9
        total += 1
    return hits / total


def test_permutation_p_by_hand():
    # C(6, 3) = 20 splits; |T| = 3 only for {1,2,3} | {4,5,6} and its mirror: p = 2 / 20
    t = stats.permutation_test([1, 2, 3], [4, 5, 6])
    assert (t.difference, t.p, t.splits, t.exact) == (-3.0, 0.1, 20, True)
    # [0, 0] vs [1, 2]: C(4, 2) = 6 splits, T = -1.5; |T*| for the 6 splits: 1.5, 1.0, 0.5, 0.5, 1.0, 1.5
    assert stats.permutation_test([0, 0], [1, 2]).p == pytest.approx(2 / 6)
    # identical groups: every split is as extreme as T = 0
    assert stats.permutation_test([5, 5], [5, 5]).p == 1.0
    # ties by float rounding (0.1 + 0.2 vs 0.3) still count as extreme: p is not lowered by rounding
    assert stats.permutation_test([0.1 + 0.2, 0.0], [0.3, 0.0]).p == 1.0


def test_permutation_matches_the_naive_loop_and_monte_carlo_agrees():
    rng = np.random.default_rng(11)
    a, b = rng.normal(0, 1, 5), rng.normal(0.8, 1, 6)
    exact = stats.permutation_test(a, b)
    assert exact.exact and exact.splits == math.comb(11, 5)
    assert exact.p == pytest.approx(naive_permutation_p(a, b), abs=1e-12)
    mc = stats.permutation_test(a, b, max_exact=10, draws=20000, seed=3)
    assert not mc.exact and mc.splits == 20001
    assert mc.p == pytest.approx(exact.p, abs=0.02)        # ~4 standard errors of a 20,000-draw estimate
    assert mc == stats.permutation_test(a, b, max_exact=10, draws=20000, seed=3)     # seeded
    # Monte Carlo counts the observed split: never 0, at least 1 / (draws + 1)
    far = stats.permutation_test(np.arange(30.0), np.arange(30.0) + 1000, max_exact=10, draws=999, seed=0)
    assert far.p == pytest.approx(1 / 1000)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(1 x 0.04, 0.06): back in input order
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001, 0.02, 0.04]) == pytest.approx([0.5, 0.004, 0.06, 0.08])
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])          # capped at 1, monotone
    assert stats.holm([]) == []
    with pytest.raises(ValueError, match="p-values in"):
        stats.holm([0.5, 1.5])


def test_holm_is_monotone_in_the_raw_order():
    p = np.random.default_rng(0).uniform(0, 0.2, size=12)
    adjusted = np.array(stats.holm(p))
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0) and np.all(adjusted >= p)


def test_degenerate_flags_zero_width_intervals():
    assert stats.degenerate(stats.Interval(0.0, 0.0, 0.0))
    assert not stats.degenerate(stats.Interval(0.5, 0.2, 0.9))
    better, worse = np.array([[10.0], [11.0]]), np.array([[0.0], [1.0]])
    assert stats.degenerate(stats.probability_of_improvement_ci(better, worse, reps=200))
