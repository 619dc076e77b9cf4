"""Measures the embedded suite's reference scores: random policy and oracle scripted policy.

    python -m envs.reference_scores [--episodes 2000] [--seed 2024] [--tasks goto_goal,...]

prints JSON ``{task: {"random": mean, "random_stderr": ..., "solved": mean, ...}}``; the
numbers in ``envs/embedded.py`` (``TASKS``) were copied from its output (rounded to 3 places).
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from envs.embedded import TASK_NAMES, make_task_env
from envs.scripted import oracle_action


def episode_returns(name: str, policy: str, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``episodes`` consecutive episodes of one env seeded with ``seed``.

    policy: "random" (uniform over the 7 actions, from ``default_rng(seed)``) or "oracle".
    """
    if policy not in ("random", "oracle"):
        raise ValueError(f"policy={policy!r} must be 'random' or 'oracle'")
    env = make_task_env(name, seed=seed)
    rng = np.random.default_rng(seed)
    returns = np.zeros(episodes)
    for i in range(episodes):
        env.reset()
        done = False
        while not done:
            action = int(rng.integers(7)) if policy == "random" else oracle_action(env.env)
            _, reward, terminated, truncated, _ = env.step(action)
            returns[i] += reward
            done = terminated or truncated
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    args = parser.parse_args()
    report = {}
    for name in args.tasks.split(","):
        row = {}
        for policy, key in (("random", "random"), ("oracle", "solved")):
            returns = episode_returns(name, policy, args.episodes, args.seed)
            row[key] = round(float(returns.mean()), 4)
            row[key + "_stderr"] = round(float(returns.std() / math.sqrt(len(returns))), 4)
            row[key + "_std"] = round(float(returns.std()), 4)
        report[name] = row
        print(json.dumps({name: row}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
