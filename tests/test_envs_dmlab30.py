"""DMLab-30 constants and scoring against the published values (hand-computed numbers)."""
import pytest

from envs import dmlab30
from envs.dmlab30 import (ACTION_SET, HUMAN_SCORES, RANDOM_SCORES, TEST_LEVELS, TRAIN_LEVELS,
                          human_normalized_score, mean_capped_human_normalized_score)


def test_level_lists_are_canonical_and_aligned():
    assert len(TRAIN_LEVELS) == len(TEST_LEVELS) == 30
    assert len(set(TRAIN_LEVELS)) == 30
    assert TRAIN_LEVELS[0] == "rooms_collect_good_objects_train"
    assert TEST_LEVELS[0] == "rooms_collect_good_objects_test"
    assert TRAIN_LEVELS[1] == "rooms_exploit_deferred_effects_train"
    assert TEST_LEVELS[1] == "rooms_exploit_deferred_effects_test"
    assert TRAIN_LEVELS[2:] == TEST_LEVELS[2:]
    assert TRAIN_LEVELS[5] == "language_select_described_object"
    assert TRAIN_LEVELS[9] == "lasertag_one_opponent_small"
    assert TRAIN_LEVELS[18] == "psychlab_arbitrary_visuomotor_mapping"
    assert TRAIN_LEVELS[29] == "explore_object_rewards_many"


def test_reference_scores_are_keyed_by_test_name_with_published_values():
    assert set(HUMAN_SCORES) == set(TEST_LEVELS) == set(RANDOM_SCORES)
    assert HUMAN_SCORES["rooms_collect_good_objects_test"] == 10.0
    assert RANDOM_SCORES["rooms_collect_good_objects_test"] == 0.073
    assert HUMAN_SCORES["language_select_described_object"] == 389.5
    assert RANDOM_SCORES["language_execute_random_task"] == -5.913
    assert HUMAN_SCORES["explore_goal_locations_small"] == 267.5
    assert RANDOM_SCORES["skymaze_irreversible_path_varied"] == 14.4
    assert HUMAN_SCORES["psychlab_visual_search"] == 78.5
    assert RANDOM_SCORES["explore_object_rewards_many"] == 2.438
    assert sum(HUMAN_SCORES.values()) == pytest.approx(3110.15)


def test_action_set_is_impalas_nine_actions_in_order():
    assert ACTION_SET == (
        (0, 0, 0, 1, 0, 0, 0), (0, 0, 0, -1, 0, 0, 0), (0, 0, -1, 0, 0, 0, 0),
        (0, 0, 1, 0, 0, 0, 0), (-20, 0, 0, 0, 0, 0, 0), (20, 0, 0, 0, 0, 0, 0),
        (-20, 0, 0, 1, 0, 0, 0), (20, 0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 1, 0, 0))
    assert all(len(a) == 7 and all(isinstance(v, int) for v in a) for a in ACTION_SET)


@pytest.mark.parametrize("level, episode_return, expected", [
    ("rooms_watermaze", 54.0, 100.0),
    ("rooms_watermaze", 4.065, 0.0),
    ("rooms_collect_good_objects_train", 5.0365, 50.0),   # (5.0365-0.073)/(10-0.073)
    ("rooms_collect_good_objects_test", 5.0365, 50.0),
    ("rooms_exploit_deferred_effects_train", 47.0755, 50.0),
    ("language_select_described_object", 194.715, 50.0),  # random is negative: -0.07
    ("explore_goal_locations_small", 137.58, 50.0),
    ("skymaze_irreversible_path_varied", 57.2, 50.0),
    ("lasertag_one_opponent_small", -13.098, -100.0),     # below random: negative, no clamp
    ("skymaze_irreversible_path_hard", 200.0, 100 * 199.9 / 99.9),
])
def test_human_normalized_score_hand_computed(level, episode_return, expected):
    assert human_normalized_score(level, episode_return) == pytest.approx(expected)


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="not a DMLab-30 level"):
        human_normalized_score("contributed/dmlab30/rooms_watermaze", 1.0)


def _random_returns():
    returns = {name: RANDOM_SCORES[test] for name, test in zip(TRAIN_LEVELS, TEST_LEVELS)}
    returns["rooms_watermaze"] = 54.0                       # 100
    returns["skymaze_irreversible_path_hard"] = 200.0       # 200.1001...
    returns["psychlab_visual_search"] = 0.085 - 0.3 * 78.415  # -30
    returns["rooms_collect_good_objects_train"] = 5.0365    # 50
    return returns


def test_mean_capped_score_of_hand_made_returns():
    returns = _random_returns()
    assert mean_capped_human_normalized_score(returns) == pytest.approx((100 + 100 - 30 + 50) / 30)
    assert mean_capped_human_normalized_score(returns, cap=None) == pytest.approx(
        (100 + 100 * 199.9 / 99.9 - 30 + 50) / 30)
    assert mean_capped_human_normalized_score(returns, cap=50.0) == pytest.approx((50 + 50 - 30 + 50) / 30)


def test_mean_capped_accepts_test_names_for_the_two_holdout_levels():
    returns = _random_returns()
    returns["rooms_collect_good_objects_test"] = returns.pop("rooms_collect_good_objects_train")
    returns["rooms_exploit_deferred_effects_test"] = returns.pop("rooms_exploit_deferred_effects_train")
    assert mean_capped_human_normalized_score(returns) == pytest.approx(220 / 30)


def test_all_random_scores_zero_all_human_scores_hundred():
    assert mean_capped_human_normalized_score(RANDOM_SCORES) == pytest.approx(0.0)
    assert mean_capped_human_normalized_score(HUMAN_SCORES) == pytest.approx(100.0)
    doubled = {k: 2 * HUMAN_SCORES[k] - RANDOM_SCORES[k] for k in TEST_LEVELS}  # 200 each
    assert mean_capped_human_normalized_score(doubled) == pytest.approx(100.0)
    assert mean_capped_human_normalized_score(doubled, cap=None) == pytest.approx(200.0)


def test_missing_duplicate_and_unknown_levels_are_errors():
    returns = _random_returns()
    del returns["natlab_fixed_large_map"]
    with pytest.raises(ValueError, match="missing 1: natlab_fixed_large_map"):
        mean_capped_human_normalized_score(returns)
    returns = _random_returns()
    returns["rooms_collect_good_objects_test"] = 1.0
    with pytest.raises(ValueError, match="twice"):
        mean_capped_human_normalized_score(returns)
    returns = _random_returns()
    returns["not_a_level"] = 1.0
    with pytest.raises(ValueError, match="not_a_level"):
        mean_capped_human_normalized_score(returns)


def test_train_to_test_mapping():
    assert dmlab30.to_test_level("rooms_collect_good_objects_train") == "rooms_collect_good_objects_test"
    assert dmlab30.to_test_level("rooms_watermaze") == "rooms_watermaze"
    assert dmlab30.TEST_MIXER_SEED == 0x600D5EED == 1611489005
