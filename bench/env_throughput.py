"""Raw env steps per second per core for each embedded task (random actions, one process).

    python bench/env_throughput.py [--seconds 3] [--tile-size 4] [--warmup 500] [--tasks a,b]
                                   [--minigrid-wrapper]

Each task: one env (through the suite, so with EpisodeStatistics and frame rendering),
``--warmup`` steps, then uniform random actions for ``--seconds``, resetting at episode
ends (resets included in the time). Prints JSON: ``{"tile_size": ..., "steps_per_second":
{task: rate}, "mean": ...}``. ``--minigrid-wrapper`` also times, right after each task, the
same MiniGrid env with MiniGrid's own view (``gen_obs``) and ``RGBImgPartialObsWrapper``
frames (``"minigrid_wrapper_steps_per_second"``), for comparison under the same load.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
from minigrid.minigrid_env import MiniGridEnv
from minigrid.wrappers import RGBImgPartialObsWrapper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.suites import get_suite  # noqa: E402


def steps_per_second(env, seconds: float, warmup: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.integers(env.action_space.n, size=1 << 16)
    env.reset()
    n, start = 0, None
    while True:
        if n == warmup:
            start = time.perf_counter()
        elif start is not None and n % 100 == 0 and time.perf_counter() - start >= seconds:
            return (n - warmup) / (time.perf_counter() - start)
        _, _, terminated, truncated, _ = env.step(int(actions[n % len(actions)]))
        if terminated or truncated:
            env.reset()
        n += 1


def minigrid_wrapper_env(suite, name: str, tile_size: int):
    """The task's MiniGrid env observed the stock way: MiniGrid's gen_obs and RGB wrapper."""
    env = suite.make_env(suite.task(name).task_id, seed=0).unwrapped.env
    env.gen_obs = types.MethodType(MiniGridEnv.gen_obs, env)   # undo FastViewMixin
    return RGBImgPartialObsWrapper(env, tile_size=tile_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per task")
    parser.add_argument("--tile-size", type=int, default=4, help="pixels per view cell")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps per task first")
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    parser.add_argument("--minigrid-wrapper", action="store_true",
                        help="also time MiniGrid's own view + RGBImgPartialObsWrapper")
    args = parser.parse_args()
    suite = get_suite("embedded", tile_size=args.tile_size)
    names = args.tasks.split(",") if args.tasks else list(suite.task_names)
    rates, stock = {}, {}
    for name in names:
        env = suite.make_env(suite.task(name).task_id, seed=0)
        rates[name] = round(steps_per_second(env, args.seconds, args.warmup))
        env.close()
        if args.minigrid_wrapper:
            stock[name] = round(steps_per_second(minigrid_wrapper_env(suite, name, args.tile_size),
                                                 args.seconds, args.warmup))
    report = {"tile_size": args.tile_size, "frame_shape": list(suite.frame_shape),
              "seconds": args.seconds, "steps_per_second": rates,
              "mean": round(sum(rates.values()) / len(rates))}
    if stock:
        report["minigrid_wrapper_steps_per_second"] = stock
        report["minigrid_wrapper_mean"] = round(sum(stock.values()) / len(stock))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
