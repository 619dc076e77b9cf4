"""Whole-system frames/s (Ray actors + learner, as launch.py runs them) next to the raw env speed
of the same envs on the same cores, measured in one run.

    python bench/system_throughput.py [--config configs/embedded.yaml] [--seconds 120] [--warmup 40]
                                      [--raw-seconds 10] [--lr0] [key=value ...]

1. raw: every task of the suite stepped with uniform random actions in this process (one core),
   through the suite's own env factory: env steps/s per core (mean over tasks, and per task).
2. system: `launch.py train` in a subprocess for --seconds (then SIGTERM), the config plus
   overrides; frames/s = the learner's frame counter over the window [warmup, end] read from
   metrics.jsonl (env frames consumed by learner updates). --lr0 sets learning_rate=0: the policy
   stays random, so the per-frame work stays fixed (the peers' "lr 0 control").
Prints one JSON object; `ratio` = system frames/s / (raw steps/s per core x cores).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs.schema import load_config  # noqa: E402
from envs.suites import get_suite  # noqa: E402


def raw_steps_per_second(suite, task_ids, seconds: float) -> dict[str, float]:
    rates = {}
    for t in task_ids:
        env = suite.make_env(t, seed=t)
        rng = np.random.default_rng(t)
        env.reset()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                _, _, term, trunc, _ = env.step(int(rng.integers(suite.num_actions)))
                if term or trunc:
                    env.reset()
            n += 100
        rates[suite.tasks[t].name] = n * suite.action_repeat / (time.perf_counter() - start)
        env.close()
    return rates


def system_frames_per_second(config: str | None, overrides: list[str], seconds: float, warmup: float) -> dict:
    logdir = tempfile.mkdtemp(prefix="impala-mu-bench-")
    args = [sys.executable, str(ROOT / "launch.py"), "train"] + (["--config", config] if config else [])
    args += overrides + [f"logdir={logdir}", "total_frames=100000000000", "run.report_every_seconds=5",
                         "run.checkpoint_every_seconds=0"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if proc.poll() is not None:
                raise RuntimeError(f"launch.py exited with {proc.returncode}")
            time.sleep(1)
            print(f"\rsystem run: {time.monotonic() - start:.0f}/{seconds:.0f} s", end="", file=sys.stderr)
        print(file=sys.stderr)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    records = [json.loads(line) for line in open(os.path.join(logdir, "metrics.jsonl"))]
    t0 = records[0]["time"]
    window = [r for r in records if r["time"] - t0 >= warmup]
    if len(window) < 2:
        raise RuntimeError("too few reports after the warm-up; raise --seconds")
    a, b = window[0], window[-1]
    return {"frames_per_second": (b["frames"] - a["frames"]) / (b["time"] - a["time"]),
            "window_seconds": b["time"] - a["time"], "frames_total": b["frames"],
            "policy_lag": float(np.mean([r["policy_lag"] for r in window if r["policy_lag"] is not None])),
            "final_tasks": {k: v["return"] for k, v in b["tasks"].items()}, "logdir": logdir}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--warmup", type=float, default=40)
    p.add_argument("--raw-seconds", type=float, default=10)
    p.add_argument("--lr0", action="store_true")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    overrides = list(a.overrides) + (["learning_rate=0"] if a.lr0 else [])
    cfg = load_config(a.config, overrides)
    suite = get_suite(cfg.env.suite, **cfg.env.options)
    names = [t.name for t in suite.tasks]
    task_ids = [names.index(n) for n in cfg.env.tasks] if cfg.env.tasks else list(range(len(names)))
    print("raw env speed ...", file=sys.stderr)
    raw = raw_steps_per_second(suite, task_ids, a.raw_seconds / len(task_ids))
    raw_mean = float(np.mean(list(raw.values())))
    system = system_frames_per_second(a.config, overrides, a.seconds, a.warmup)
    cores = os.cpu_count()
    print(json.dumps({
        "config": a.config or "configs/embedded.yaml", "overrides": overrides, "cores": cores,
        "raw_env_frames_per_second_per_core": raw_mean, "raw_per_task": raw,
        "system": system, "ratio_to_raw_on_all_cores": system["frames_per_second"] / (raw_mean * cores),
    }, indent=1))


if __name__ == "__main__":
    main()
