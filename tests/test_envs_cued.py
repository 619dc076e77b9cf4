"""The cued collect pair (collect_green_cued / collect_red_cued) and the hidden pair's no-id optimum."""
import numpy as np
import pytest

from envs.embedded import CUED_TASKS, TASK_NAMES, make_task_env, task_by_name
from envs.instructions import encode_instruction
from envs.scripted import NoTaskIdCollector, oracle_action
from envs.suites import get_suite

PAIRS = [("collect_green", "collect_green_cued"), ("collect_red", "collect_red_cued")]


def test_the_cue_is_in_the_first_observation_and_differs_between_the_tasks():
    green, _ = make_task_env("collect_green_cued", seed=3).reset()
    red, _ = make_task_env("collect_red_cued", seed=3).reset()
    hidden, _ = make_task_env("collect_green", seed=3).reset()
    np.testing.assert_array_equal(green["instruction"], encode_instruction("collect the green balls"))
    np.testing.assert_array_equal(red["instruction"], encode_instruction("collect the red balls"))
    assert (green["instruction"] != red["instruction"]).sum() == 1       # the colour word, nothing else
    assert not hidden["instruction"].any()                              # the hidden pair: no cue at all
    np.testing.assert_array_equal(green["frame"], red["frame"])          # the frames tell nothing


@pytest.mark.parametrize("hidden_name,cued_name", PAIRS)
def test_same_seed_same_layouts_frames_rewards_and_ends_as_the_hidden_pair(hidden_name, cued_name):
    for seed in range(6):
        hidden, cued = make_task_env(hidden_name, seed=seed), make_task_env(cued_name, seed=seed)
        rng = np.random.default_rng(seed)
        for _episode in range(3):                         # later resets continue the layout stream
            a, _ = hidden.reset()
            b, _ = cued.reset()
            np.testing.assert_array_equal(a["frame"], b["frame"])
            steps = 0
            while True:
                # the oracle on some steps, random actions on others: pickups of both colours happen
                action = oracle_action(hidden.env) if rng.random() < 0.5 else int(rng.integers(7))
                a, ra, ta, ua, _ = hidden.step(action)
                b, rb, tb, ub, _ = cued.step(action)
                np.testing.assert_array_equal(a["frame"], b["frame"])
                assert (ra, ta, ua) == (rb, tb, ub)
                assert b["instruction"].any()             # the cue stays for the whole episode
                steps += 1
                if ta or ua:
                    break
            assert steps <= 50


def test_suite_option_cued_puts_the_cued_pair_at_the_hidden_pairs_ids():
    plain, cued = get_suite("embedded"), get_suite("embedded", cued=True)
    assert plain.task_names == TASK_NAMES
    expected = tuple({"collect_green": "collect_green_cued", "collect_red": "collect_red_cued"}.get(n, n)
                     for n in TASK_NAMES)
    assert cued.task_names == expected and cued.task("collect_green_cued").task_id == 4
    for spec, base in zip(cued.tasks, plain.tasks):      # same reference scores: same rewards
        assert (spec.human_score, spec.random_score) == (base.human_score, base.random_score)
    env = cued.make_env(5, seed=1)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs["instruction"], encode_instruction("collect the red balls"))
    with pytest.raises(ValueError, match="cued='yes' must be true or false"):
        get_suite("embedded", cued="yes")
    assert [t.name for t in CUED_TASKS] == ["collect_green_cued", "collect_red_cued"]
    assert task_by_name("collect_red_cued").language


def test_launch_rejects_cued_names_without_the_option_and_says_how(tmp_path):
    from configs.schema import load_config
    from configs.errors import ConfigError
    from configs.suites import resolve_suite

    cfg = load_config(None, ["tasks=[collect_green_cued,collect_red_cued]", f"logdir={tmp_path}"])
    with pytest.raises(ConfigError, match="set env.options.cued=true"):
        resolve_suite(cfg)
    cfg = load_config(None, ["tasks=[collect_green_cued,collect_red_cued]", "env.options.cued=true",
                             f"logdir={tmp_path}"])
    suite, task_ids = resolve_suite(cfg)
    assert list(task_ids) == [4, 5]


def play_no_id(env) -> float:
    """One episode of ``NoTaskIdCollector`` on a MiniGridTask; its return."""
    env.reset()
    policy, reward, total = NoTaskIdCollector(), 0.0, 0.0
    while True:
        _, reward, terminated, truncated, _ = env.step(policy.act(env.env, reward))
        total += reward
        if terminated or truncated:
            return total


def test_no_task_id_optimum_is_1_5_a_score_of_75():
    """docs/ENVS.md: without the id, pick any ball, infer: per layout the two tasks return 2 + 1."""
    returns = []
    for seed in range(100):
        green = play_no_id(make_task_env("collect_green", seed=seed))
        red = play_no_id(make_task_env("collect_red", seed=seed))
        assert sorted((green, red)) == [1.0, 2.0]        # the first ball is good in exactly one task
        returns += [green, red]
    mean = float(np.mean(returns))
    assert mean == 1.5
    spec = get_suite("embedded").task("collect_green")
    score = 100 * (mean - spec.random_score) / (spec.human_score - spec.random_score)
    assert score == pytest.approx(100 * 1.505 / 2.005) and round(score, 1) == 75.1


def test_a_report_reads_the_cued_tasks_scores(tmp_path):
    """analysis.runs builds the run's suite with its env.options: the cued names are its tasks."""
    import json

    import yaml

    from analysis.runs import load_run
    from configs.schema import load_config

    cfg = load_config(None, ["env.options.cued=true", "tasks=[collect_green_cued,collect_red_cued]",
                             f"logdir={tmp_path}"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    tasks = {"collect_green_cued": {"return": 1.0, "score": 50.0, "episodes": 3, "length": 20},
             "collect_red_cued": {"return": 2.0, "score": 100.0, "episodes": 3, "length": 20}}
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"frames": 640, "mean_capped_score": 75.0, "tasks": tasks}) + "\n")
    run = load_run(str(tmp_path))
    assert run.tasks == ("collect_green_cued", "collect_red_cued")
    assert run.scores == {"collect_green_cued": 50.0, "collect_red_cued": 100.0}
