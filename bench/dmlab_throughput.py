"""DeepMind Lab env speed per level and per level family, one core (random actions, one process).

    python bench/dmlab_throughput.py [--seconds 20] [--levels a,b | --families rooms,explore]
                                     [--level-cache DIR] [--out FILE.json]

Each level: one ``DmLab`` through the dmlab30 suite (96x72, action repeat 4, software renderer),
constructed and reset once untimed (engine start-up, first map), then uniform random actions for
``--seconds``, resetting at episode ends. Step and reset time are measured apart: ``steps_per_s``
counts stepping only, ``steps_per_s_with_resets`` includes the resets (new episodes of levels that
generate maps compile one, unless ``--level-cache`` already holds it). Env frames = steps x 4.
Levels whose maps this build lacks (natlab from the offline archives) are reported as skipped.
Prints JSON (and writes it to ``--out``): per level, per family (mean over its levels) and a
progress line per level on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs import dmlab30  # noqa: E402
from envs.dmlab_checks import DATASET_LEVELS, missing_maps  # noqa: E402
from envs.suites import get_suite  # noqa: E402


def family(level: str) -> str:
    return level.split("_")[0]


def measure(level: str, seconds: float, level_cache: str | None, seed: int = 0) -> dict:
    suite = get_suite("dmlab30", level_cache_dir=level_cache,
                      dataset_path="dummy" if level in DATASET_LEVELS else None)
    t0 = time.perf_counter()
    env = suite.make_env(suite.task(level).task_id, seed=seed)
    env.reset()
    first_reset_s = time.perf_counter() - t0
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=1 << 14)
    steps = resets = 0
    step_s = reset_s = 0.0
    while step_s + reset_s < seconds:
        t = time.perf_counter()
        for _ in range(100):
            _, _, terminated, truncated, _ = env.step(int(actions[steps % len(actions)]))
            steps += 1
            if terminated or truncated:
                step_s += time.perf_counter() - t
                t = time.perf_counter()
                env.reset()
                resets += 1
                reset_s += time.perf_counter() - t
                t = time.perf_counter()
        step_s += time.perf_counter() - t
    env.close()
    return {"steps_per_s": round(steps / step_s, 1),
            "steps_per_s_with_resets": round(steps / (step_s + reset_s), 1),
            "frames_per_s_with_resets": round(suite.action_repeat * steps / (step_s + reset_s), 1),
            "steps": steps, "resets": resets, "mean_reset_s": round(reset_s / resets, 2) if resets else None,
            "first_reset_s": round(first_reset_s, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per level")
    parser.add_argument("--levels", default="", help="comma-separated DMLab-30 training levels (default: all)")
    parser.add_argument("--families", default="", help="only levels of these families (rooms,explore,...)")
    parser.add_argument("--level-cache", default=None, help="level cache folder (generated maps)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    levels = args.levels.split(",") if args.levels else list(dmlab30.TRAIN_LEVELS)
    unknown = [level for level in levels if level not in dmlab30.TRAIN_LEVELS]
    if unknown:
        parser.error(f"unknown levels {unknown}; choose from: {', '.join(dmlab30.TRAIN_LEVELS)}")
    if args.families:
        levels = [level for level in levels if family(level) in args.families.split(",")]
    per_level, skipped = {}, {}
    for level in levels:
        missing = missing_maps(level)
        if missing:
            skipped[level] = f"{len(missing)} maps missing from this build, e.g. {missing[0]}"
            continue
        per_level[level] = measure(level, args.seconds, args.level_cache)
        print(f"[dmlab_throughput] {level}: {per_level[level]}", file=sys.stderr, flush=True)
    families: dict[str, dict] = {}
    for name in sorted({family(level) for level in per_level}):
        rates = [v for level, v in per_level.items() if family(level) == name]
        families[name] = {key: round(float(np.mean([r[key] for r in rates])), 1)
                          for key in ("steps_per_s", "steps_per_s_with_resets", "frames_per_s_with_resets")}
        families[name]["levels"] = len(rates)
    report = {"seconds_per_level": args.seconds, "action_repeat": 4, "frame_shape": [72, 96, 3],
              "renderer": "software", "level_cache": args.level_cache, "families": families,
              "levels": per_level, "skipped": skipped}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
