"""Compiles the maps of every DMLab-30 training level this build can run into the level cache that the
real-engine tests use, so that a test run loads them instead of compiling them (once per machine:
~90 s on 2 idle cores; later runs find them all cached and only load them).

    python scripts/warm_dmlab_levels.py [--jobs 2] [--cache DIR]

DIR defaults to ``${IMPALA_MU_CACHE:-~/.cache/impala-mu}/dmlab-levels`` (``LEVEL_CACHE``). Each level
is built by ``level_env``, which tests/test_dmlab_real.py's level test calls too, so the maps compiled
here are the ones that test asks for. .ci/run runs this after installing DeepMind Lab.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs import dmlab30  # noqa: E402
from envs.dmlab_checks import DATASET_LEVELS, deepmind_lab_importable, missing_maps  # noqa: E402
from envs.suites import get_suite  # noqa: E402

LEVEL_CACHE = os.path.join(os.environ.get("IMPALA_MU_CACHE") or os.path.expanduser("~/.cache/impala-mu"),
                           "dmlab-levels")


def level_env(level: str, cache: str):
    """``level``'s env from the ``dmlab30`` suite, maps in ``cache``, seed 1 (the real-engine level test's)."""
    suite = get_suite("dmlab30", level_cache_dir=cache, dataset_path="dummy" if level in DATASET_LEVELS else None)
    return suite.make_env(suite.task(level).task_id, seed=1)


def warm(level: str, cache: str) -> float:
    start = time.monotonic()
    env = level_env(level, cache)
    try:
        env.reset()
    finally:
        env.close()
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="levels compiled at a time")
    p.add_argument("--cache", default=LEVEL_CACHE, help="the level cache (default: %(default)s)")
    args = p.parse_args()
    if args.jobs < 1:
        p.error(f"--jobs {args.jobs}: must be at least 1")
    if not deepmind_lab_importable():
        print("error: deepmind_lab does not import; install it first (scripts/build_dmlab.sh)", file=sys.stderr)
        return 2
    levels = [level for level in dmlab30.TRAIN_LEVELS if not missing_maps(level)]
    print(f"[warm] {len(levels)} levels into {args.cache}, {args.jobs} at a time", flush=True)
    start = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        for k, (level, seconds) in enumerate(zip(levels, pool.map(warm, levels, [args.cache] * len(levels))), 1):
            print(f"[warm] {k}/{len(levels)} {level}: {seconds:.1f} s", flush=True)
    print(f"[warm] done in {time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
