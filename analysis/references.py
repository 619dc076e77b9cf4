"""Reference lines drawn on a report's score plots, beyond 0 (random) and 100 (solved).

One place for the known optima of special task sets, so that plots, reports and result pages
(and whoever adds a suite) import the same numbers:

* the embedded suite's **hidden-cue pair** collect_green / collect_red (docs/ENVS.md,
  "Interference"): the two tasks look identical until the first pickup, so a policy without the
  task id must guess the first ball. It can then infer the task from the pickup's reward (the
  agent's last reward reaches the LSTM) and collect the good balls. Expected return of that
  policy: a good first ball (probability 1/2) gives 1 + 1 = 2, a bad one -1 + 2 = 1, so
  ``0.5 x 2 + 0.5 x 1 = 1.5``, normalised with the suite's random/solved scores
  (``100 (1.5 - random) / (2.0 - random)``, about 75). A head at ~0 on the pair is failing to
  learn, not limited by information.
"""
from __future__ import annotations

from typing import Sequence

HIDDEN_CUE_PAIR = ("collect_green", "collect_red")
NO_TASK_ID_RETURN = 1.5   # 0.5 x (1 + 1) + 0.5 x (-1 + 2): guess the first ball, then infer the task
NO_TASK_ID_LABEL = "no-task-id optimum (hidden cue)"


def no_task_id_optimum(suite_name: str = "embedded") -> float:
    """The hidden-cue pair's no-task-id optimum as a normalised score (the suite's own scoring)."""
    from envs.suites import get_suite

    suite = get_suite(suite_name)
    scores = [suite.normalized_score(task, NO_TASK_ID_RETURN) for task in HIDDEN_CUE_PAIR]
    return sum(scores) / len(scores)


def _has_hidden_cue_pair(suite_name: str, tasks: Sequence[str]) -> bool:
    return suite_name == "embedded" and all(t in tasks for t in HIDDEN_CUE_PAIR)


def reference_lines(suite_name: str, tasks: Sequence[str]) -> dict[str, float]:
    """Extra reference lines ``{label: normalised score}`` for the mean score over ``tasks`` (the
    tasks one run trains): the no-task-id optimum when the runs train exactly the hidden-cue pair;
    ``{}`` otherwise (other task sets have no known optimum below 100)."""
    if _has_hidden_cue_pair(suite_name, tasks) and len(set(tasks)) == len(HIDDEN_CUE_PAIR):
        return {NO_TASK_ID_LABEL: no_task_id_optimum(suite_name)}
    return {}


def task_reference_lines(suite_name: str, tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per trained task, its extra reference lines: both tasks of the hidden-cue pair get the
    no-task-id optimum whenever both are trained (then only the task id tells them apart)."""
    if not _has_hidden_cue_pair(suite_name, tasks):
        return {}
    value = no_task_id_optimum(suite_name)
    return {task: {NO_TASK_ID_LABEL: value} for task in HIDDEN_CUE_PAIR}
