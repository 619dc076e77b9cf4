"""DMLab-30 facts as plain constants, and its pure scoring functions.

Sources: the IMPALA paper (Espeholt et al. 2018) and its reference release
(deepmind/scalable_agent ``dmlab30.py``); the same numbers are carried by seed_rl and
sample-factory. The engine loads ``LEVEL_PREFIX + short name``.

* ``TRAIN_LEVELS`` / ``TEST_LEVELS``: the 30 short names in canonical order (index = task
  id), aligned by index. Only ids 0 and 1 have a distinct hold-out test level.
* ``HUMAN_SCORES`` / ``RANDOM_SCORES``: keyed by the *test* name. A return on a training
  level is scored against its test level's references.
* Human-normalised score: ``HNS = 100 * (return - random) / (human - random)`` (percent).
  Mean capped HNS = mean over the 30 levels of ``min(HNS, cap)`` with cap 100 and no lower
  clamp (a below-random level counts negative). ``capped_mean`` is that rule, for every suite and
  every producer of a mean capped score (training reports, evaluation results; ``analysis.stats``
  vectorizes it with the same ``SCORE_CAP``).
"""
from __future__ import annotations

from typing import Iterable, Mapping

SCORE_CAP = 100.0     # percent of the human (or solved) score

LEVEL_PREFIX = "contributed/dmlab30/"

TRAIN_LEVELS: tuple[str, ...] = (
    "rooms_collect_good_objects_train",
    "rooms_exploit_deferred_effects_train",
    "rooms_select_nonmatching_object",
    "rooms_watermaze",
    "rooms_keys_doors_puzzle",
    "language_select_described_object",
    "language_select_located_object",
    "language_execute_random_task",
    "language_answer_quantitative_question",
    "lasertag_one_opponent_small",
    "lasertag_three_opponents_small",
    "lasertag_one_opponent_large",
    "lasertag_three_opponents_large",
    "natlab_fixed_large_map",
    "natlab_varying_map_regrowth",
    "natlab_varying_map_randomized",
    "skymaze_irreversible_path_hard",
    "skymaze_irreversible_path_varied",
    "psychlab_arbitrary_visuomotor_mapping",
    "psychlab_continuous_recognition",
    "psychlab_sequential_comparison",
    "psychlab_visual_search",
    "explore_object_locations_small",
    "explore_object_locations_large",
    "explore_obstructed_goals_small",
    "explore_obstructed_goals_large",
    "explore_goal_locations_small",
    "explore_goal_locations_large",
    "explore_object_rewards_few",
    "explore_object_rewards_many",
)

TEST_LEVELS: tuple[str, ...] = (
    "rooms_collect_good_objects_test",
    "rooms_exploit_deferred_effects_test",
) + TRAIN_LEVELS[2:]

# Test name -> (human, random) episode return.
_REFERENCES: dict[str, tuple[float, float]] = {
    "rooms_collect_good_objects_test": (10.0, 0.073),
    "rooms_exploit_deferred_effects_test": (85.65, 8.501),
    "rooms_select_nonmatching_object": (65.9, 0.312),
    "rooms_watermaze": (54.0, 4.065),
    "rooms_keys_doors_puzzle": (53.8, 4.135),
    "language_select_described_object": (389.5, -0.07),
    "language_select_located_object": (280.7, 1.929),
    "language_execute_random_task": (254.05, -5.913),
    "language_answer_quantitative_question": (184.5, -0.33),
    "lasertag_one_opponent_small": (12.65, -0.224),
    "lasertag_three_opponents_small": (18.55, -0.214),
    "lasertag_one_opponent_large": (18.6, -0.083),
    "lasertag_three_opponents_large": (31.5, -0.102),
    "natlab_fixed_large_map": (36.9, 2.173),
    "natlab_varying_map_regrowth": (24.45, 2.989),
    "natlab_varying_map_randomized": (42.35, 7.346),
    "skymaze_irreversible_path_hard": (100.0, 0.1),
    "skymaze_irreversible_path_varied": (100.0, 14.4),
    "psychlab_arbitrary_visuomotor_mapping": (58.75, 0.163),
    "psychlab_continuous_recognition": (58.3, 0.224),
    "psychlab_sequential_comparison": (39.5, 0.129),
    "psychlab_visual_search": (78.5, 0.085),
    "explore_object_locations_small": (74.45, 3.575),
    "explore_object_locations_large": (65.65, 4.673),
    "explore_obstructed_goals_small": (206.0, 6.76),
    "explore_obstructed_goals_large": (119.5, 2.61),
    "explore_goal_locations_small": (267.5, 7.66),
    "explore_goal_locations_large": (194.5, 3.14),
    "explore_object_rewards_few": (77.7, 2.073),
    "explore_object_rewards_many": (106.7, 2.438),
}
HUMAN_SCORES: dict[str, float] = {name: human for name, (human, _) in _REFERENCES.items()}
RANDOM_SCORES: dict[str, float] = {name: rand for name, (_, rand) in _REFERENCES.items()}

# IMPALA's 9 actions as DeepMind Lab 7-integer vectors: (look left/right pixels, look down/up
# pixels, strafe left/right, move back/forward, fire, jump, crouch).
ACTION_NAMES: tuple[str, ...] = (
    "forward", "backward", "strafe_left", "strafe_right", "look_left", "look_right",
    "look_left_forward", "look_right_forward", "fire",
)
ACTION_SET: tuple[tuple[int, int, int, int, int, int, int], ...] = (
    (0, 0, 0, 1, 0, 0, 0),     # forward
    (0, 0, 0, -1, 0, 0, 0),    # backward
    (0, 0, -1, 0, 0, 0, 0),    # strafe left
    (0, 0, 1, 0, 0, 0, 0),     # strafe right
    (-20, 0, 0, 0, 0, 0, 0),   # look left
    (20, 0, 0, 0, 0, 0, 0),    # look right
    (-20, 0, 0, 1, 0, 0, 0),   # look left + forward
    (20, 0, 0, 1, 0, 0, 0),    # look right + forward
    (0, 0, 0, 0, 1, 0, 0),     # fire
)

# Training level -> test level (identity for the 28 levels without a hold-out variant).
TRAIN_TO_TEST: dict[str, str] = dict(zip(TRAIN_LEVELS, TEST_LEVELS))
# Evaluation mixer seed (0x600D5EED) of the reference release.
TEST_MIXER_SEED = 1611489005


def to_test_level(level: str) -> str:
    """The test name of a DMLab-30 level given by its training or test short name."""
    if level in TRAIN_TO_TEST:
        return TRAIN_TO_TEST[level]
    if level in HUMAN_SCORES:
        return level
    raise ValueError(f"{level!r} is not a DMLab-30 level; expected one of TRAIN_LEVELS or "
                     "TEST_LEVELS (short names, without 'contributed/dmlab30/')")


def human_normalized_score(level: str, episode_return: float) -> float:
    """Human-normalised score in percent: ``100 * (return - random) / (human - random)``.

    ``level`` is a training or test short name; both are scored against the test
    level's human and random references.
    """
    name = to_test_level(level)
    human, rand = HUMAN_SCORES[name], RANDOM_SCORES[name]
    return 100.0 * (float(episode_return) - rand) / (human - rand)


def mean_capped_human_normalized_score(returns: Mapping[str, float],
                                       cap: float | None = SCORE_CAP) -> float:
    """Mean over the 30 levels of ``min(HNS, cap)`` (percent); ``cap=None`` gives the plain mean.

    ``returns`` maps each level's name (training or test, not both) to its mean episode
    return. All 30 levels must be present; unknown names and a level given under both
    names are errors. There is no lower clamp.
    """
    by_test: dict[str, float] = {}
    for level, value in returns.items():
        name = to_test_level(level)
        if name in by_test:
            raise ValueError(f"level {name!r} is given twice (under its training and test names)")
        by_test[name] = float(value)
    missing = [name for name in TEST_LEVELS if name not in by_test]
    if missing:
        raise ValueError(f"mean capped score needs all 30 DMLab-30 levels; missing {len(missing)}: "
                         + ", ".join(missing))
    return capped_mean([human_normalized_score(name, by_test[name]) for name in TEST_LEVELS], cap)


def capped_mean(scores: Iterable[float], cap: float | None = SCORE_CAP) -> float:
    """The mean over ``scores`` (normalized, percent) of ``min(s, cap)``, no lower clamp; ``cap=None``:
    the plain mean. ValueError for no scores."""
    scores = [float(s) for s in scores]
    if not scores:
        raise ValueError("capped_mean of no scores")
    if cap is not None:
        scores = [min(s, cap) for s in scores]
    return sum(scores) / len(scores)
