"""Actor efficiency: agent steps/s an actor delivers over the raw env steps/s of the same envs on the
same core, measured in one run; prints one JSON object.

    python bench/actor_efficiency.py [--config configs/embedded.yaml] [--rounds 3] [--unrolls 10] [key=value ...]
    python bench/actor_efficiency.py --config configs/peer_doorkey.yaml
    python bench/actor_efficiency.py --quick          # tiny sizes (the test runs this)

The process is pinned to one core (--core, default: the first allowed one), torch to one thread.
Each round times, back to back on the same envs (the actor's own, same task assignment):

1. raw: the actor's ``envs_per_actor`` envs stepped round robin with uniform random actions
   (reset at episode ends): ``T * unrolls`` steps of every env;
2. actor: ``UnrollWorker.unroll()`` ``unrolls`` times (batched inference + unroll assembly) plus the
   hand-off: each unroll pickled with protocol 5 (what Ray's serializer does before copying the
   bytes into the object store).

``ratio`` = actor agent steps/s / raw env steps/s over all rounds (alternating rounds cancel slow
drifts of a shared machine). ``breakdown`` splits the actor's time into env stepping, inference
(``UnrollWorker._act``), hand-off and the rest (unroll assembly, Python overhead).

With two cores allowed (and ``envs_per_actor >= 2``) each round also times

3. overlap: ``OverlapWorker.unroll()`` (``actors.overlap``) ``unrolls`` times plus the hand-off, its
   network on the first core and its env process on the second;
4. two actors: two processes (this script with ``--solo``), each today's actor on one of the two
   cores, started together (a barrier) and timed ``unrolls`` unrolls each: what the same two cores
   give without the overlap.

``overlap.bound_agent_steps_per_s`` = steps / max(env time, inference time) of today's actor in the
same rounds: the overlap's goal is within 10% of it (``of_bound`` >= 0.9). ``--no-overlap``: 1 and 2 only.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.actor import UnrollWorker, assign_tasks  # noqa: E402
from actors.overlap import OverlapWorker  # noqa: E402
from configs.schema import load_config  # noqa: E402
from envs.suites import get_suite  # noqa: E402

QUICK = ["actors.envs_per_actor=2", "learner.unroll_length=5"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="config YAML (default: configs/embedded.yaml)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw / actor rounds")
    parser.add_argument("--unrolls", type=int, default=10, help="unrolls per actor round")
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: first allowed)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    parser.add_argument("--no-overlap", action="store_true", help="skip the overlapped actor and the two actors")
    parser.add_argument("--solo", action="store_true", help=argparse.SUPPRESS)   # one actor for the pair
    parser.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. envs_per_actor=8)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.unrolls, args.overrides = 1, 2, QUICK + args.overrides
    for name in ("rounds", "unrolls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} must be >= 1")
    return args


class Timed:
    """Wraps a callable and adds its wall time to ``seconds``."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def raw_round(envs, num_actions: int, steps_per_env: int, rng: np.random.Generator) -> float:
    """Seconds to step every env ``steps_per_env`` times, round robin, random actions."""
    actions = rng.integers(num_actions, size=(steps_per_env, len(envs))).tolist()
    start = time.perf_counter()
    for row in actions:
        for env, action in zip(envs, row):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
    return time.perf_counter() - start


def actor_round(actor: UnrollWorker, unrolls: int, handoff: Timed) -> tuple[float, int]:
    """Seconds for ``unrolls`` unrolls plus their hand-off, and the pickled bytes of the last one."""
    size = 0
    start = time.perf_counter()
    for _ in range(unrolls):
        size = len(handoff(actor.unroll(), protocol=5))
    return time.perf_counter() - start, size


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    allowed, threads = os.sched_getaffinity(0), torch.get_num_threads()
    core = min(allowed) if args.core is None else args.core
    others = sorted(allowed - {core})
    second = others[0] if others and not (args.no_overlap or args.solo) else None
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    try:
        return solo(args) if args.solo else measure(args, core, second)
    finally:                                         # a caller (a test) gets its cores and threads back
        os.sched_setaffinity(0, allowed)
        torch.set_num_threads(threads)


def setup(args: argparse.Namespace):
    cfg = load_config(args.config, args.overrides)
    suite = get_suite(cfg.env.suite, **cfg.env.options)
    names = [t.name for t in suite.tasks]
    task_ids = [names.index(n) for n in cfg.env.tasks] if cfg.env.tasks else list(range(len(names)))
    return cfg, suite, assign_tasks(task_ids, 0, cfg.actors.envs_per_actor)


def make_actor(kind, cfg, suite, tasks, weights=None) -> UnrollWorker:
    actor = kind(suite, cfg.agent, tasks, unroll_length=cfg.learner.unroll_length, seed=cfg.run.seed,
                 actor_id=0, torch_threads=1)
    actor.set_weights(0, actor.agent.state_dict() if weights is None else weights)
    actor.unroll()                                   # warm-up: first resets, allocator, one-time setup
    return actor


def solo(args: argparse.Namespace) -> dict:
    """One of the two actors: builds and warms up today's actor, prints ``ready``, waits for a line on
    stdin (the barrier), times ``rounds * unrolls`` unrolls with their hand-off, prints its rate."""
    cfg, suite, tasks = setup(args)
    actor = make_actor(UnrollWorker, cfg, suite, tasks)
    print("ready", flush=True)
    sys.stdin.readline()
    seconds, _ = actor_round(actor, args.rounds * args.unrolls, Timed(pickle.dumps))
    actor.close()
    steps = args.rounds * args.unrolls * cfg.learner.unroll_length * cfg.actors.envs_per_actor
    result = {"agent_steps_per_s": round(steps / seconds, 1), "seconds": round(seconds, 3)}
    print(json.dumps(result), flush=True)
    return result


def pair_round(args: argparse.Namespace, cores: tuple[int, int]) -> list[float]:
    """Two ``--solo`` processes, one per core, released together: each one's agent steps/s."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--solo", "--rounds", "1", "--unrolls", str(args.unrolls)]
    argv += ["--config", args.config] if args.config else []
    procs = [subprocess.Popen(argv + ["--core", str(c)] + args.overrides, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for c in cores]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a --solo actor exited with code {p.wait()} before it was ready")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        rates = [json.loads(p.stdout.readline())["agent_steps_per_s"] for p in procs]
    finally:
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:      # our own child, not yet reaped
                p.kill()
                p.wait()
    return rates


def measure(args: argparse.Namespace, core: int, second: int | None) -> dict:
    cfg, suite, tasks = setup(args)
    n, T = cfg.actors.envs_per_actor, cfg.learner.unroll_length
    actor = make_actor(UnrollWorker, cfg, suite, tasks)
    raw_envs = [suite.make_env(t, seed=1000 + j) for j, t in enumerate(tasks)]
    for env in raw_envs:
        env.reset()
    raw_round(raw_envs, suite.num_actions, T, np.random.default_rng(0))
    overlap = None
    if second is not None and n >= 2:
        overlap = make_actor(OverlapWorker, cfg, suite, tasks, actor.agent.state_dict())
        os.sched_setaffinity(overlap.process.pid, {second})   # the envs on the second core

    env_step = [Timed(env.step) for env in actor.envs]
    for env, timed in zip(actor.envs, env_step):
        env.step = timed                             # instance attribute: times the actor's env steps
    inference, handoff = Timed(actor._act), Timed(pickle.dumps)
    actor._act = inference
    rng = np.random.default_rng(1)
    raw_seconds = actor_seconds = overlap_seconds = overlap_waits = 0.0
    nbytes, pair_rates = 0, []
    for _ in range(args.rounds):
        raw_seconds += raw_round(raw_envs, suite.num_actions, T * args.unrolls, rng)
        seconds, nbytes = actor_round(actor, args.unrolls, handoff)
        actor_seconds += seconds
        if overlap is not None:
            waited = overlap.process.wait_seconds
            overlap_seconds += actor_round(overlap, args.unrolls, Timed(pickle.dumps))[0]
            overlap_waits += overlap.process.wait_seconds - waited
            pair_rates.append(sum(pair_round(args, (core, second))))
    steps = args.rounds * args.unrolls * T * n
    raw_rate, actor_rate = steps / raw_seconds, steps / actor_seconds
    env_seconds = sum(t.seconds for t in env_step)
    result = {
        "config": args.config or "configs/embedded.yaml", "suite": cfg.env.suite, "envs_per_actor": n,
        "unroll_length": T, "torso": cfg.agent.torso, "head": cfg.agent.head, "rounds": args.rounds,
        "unrolls_per_round": args.unrolls, "agent_steps_per_round": args.unrolls * T * n,
        "raw_env_steps_per_s": round(raw_rate, 1), "actor_agent_steps_per_s": round(actor_rate, 1),
        "ratio": round(actor_rate / raw_rate, 4),
        "breakdown_fraction": {
            "env_step": round(env_seconds / actor_seconds, 4),
            "inference": round(inference.seconds / actor_seconds, 4),
            "handoff": round(handoff.seconds / actor_seconds, 4),
            "assembly_and_other": round(1 - (env_seconds + inference.seconds + handoff.seconds) / actor_seconds, 4),
        },
        "unroll_bytes": nbytes, "action_repeat": suite.action_repeat, "core": core,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "overlap": None, "two_actors": None,
    }
    if overlap is not None:
        bound = steps / max(env_seconds, inference.seconds)
        overlap_rate = steps / overlap_seconds
        result["overlap"] = {
            "cores": [core, second], "agent_steps_per_s": round(overlap_rate, 1),
            "speedup_over_actor": round(overlap_rate / actor_rate, 4),
            "bound_agent_steps_per_s": round(bound, 1), "of_bound": round(overlap_rate / bound, 4),
            "network_waits_for_envs_fraction": round(overlap_waits / overlap_seconds, 4),
        }
        pair = float(np.mean(pair_rates))
        result["two_actors"] = {"cores": [core, second], "agent_steps_per_s": round(pair, 1),
                                "per_round": [round(r, 1) for r in pair_rates],
                                "overlap_over_two_actors": round(overlap_rate / pair, 4)}
        overlap.close()
    actor.close()
    for env in raw_envs:
        env.close()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
