"""Reliability under faults: the embedded suite trained while actors, a node and the learner are killed.

    python bench/chaos.py [--seconds 600] [--kill-every 30] [--resumes 5] [--quick] [key=value ...]

On a simulated two-node Ray cluster (``ray.cluster_utils.Cluster``: a head and a worker node, one
CPU each, actors at 0.5 CPU, SPREAD), ``launch.py train`` runs in a subprocess for ``--seconds``
of training in ``--resumes + 1`` segments: each segment but the last ends with SIGTERM and the
next one resumes with the same command. Meanwhile an actor process (the newest incarnation of
actor 0, 1, 0, ...) is SIGKILLed every ``--kill-every`` seconds (none in a segment's last 5 s: the
learner must see the restart before it stops), and once (in the second
segment) the worker node is removed. Then an undisturbed run of the same config trains to the
same frame count on the same cluster. Every 10 s the learner's RSS, the actors' RSS and the
object store's bytes in use are sampled. Prints one JSON object:

* ``frames_lost``: upper bounds, in env frames, of the work killed with actors (one unroll per
  restart) and abandoned at each preemption (the requests in flight when the learner stopped);
* ``unrolls``: used by the learner vs dropped (restarts, wrong length) and ``partial_unrolls_used``
  (reports whose frames are not updates x T x B x action repeat, plus unrolls rejected as partial);
* ``counters``: frames and updates never go back across resumes (metrics.jsonl), each resume starts
  at the frames of the checkpoint written at the preemption, TensorBoard steps continue (every
  event file's steps start after the previous file's);
* ``score``: final mean capped score and mean episode return, chaos vs undisturbed, at the same frames;
* ``memory``: samples and least-squares slopes (MB per minute) of each series: the learner's RSS
  per segment (a new process each time), the mean RSS of a live actor, the object store in use.

``--quick`` (24 s of training in 3 segments of 8 s, an actor killed 2 s into each; about 2 minutes
with start-ups and the undisturbed run) is what the test suite runs, with ``--no-baseline`` (~1 minute). The JSON also goes to ``<workdir>/chaos.json``.
The machine's other load changes the numbers: compare the two runs of one invocation only.
"""
from __future__ import annotations

import argparse
import glob
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

SAMPLE_SECONDS = 10.0


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:   # a line being written right now
            pass
    return out


def log(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Sampler:
    """RSS of the learner and of the live actors, and the object store's bytes in use, every 10 s."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.samples: list[dict] = []
        self._next = 0.0
        self.t0 = time.monotonic()

    def object_store_bytes(self) -> int | None:
        try:
            from ray._private.internal_api import get_memory_info_reply, get_state_from_address

            reply = get_memory_info_reply(get_state_from_address(self.address), timeout_seconds=10)
            return int(reply.store_stats.object_store_bytes_used)
        except Exception:  # noqa: BLE001 - a private API: no number rather than no benchmark
            return None

    def maybe_sample(self, learner_pid: int | None, actor_pids: list[int], phase: str) -> None:
        now = time.monotonic() - self.t0
        if now < self._next:
            return
        self._next = now + SAMPLE_SECONDS
        actors = [_rss_mb([pid]) for pid in actor_pids]
        actors = [a for a in actors if a is not None]
        self.samples.append({"t": round(now, 1), "phase": phase, "learner_rss_mb": _rss_mb([learner_pid]),
                             "actor_rss_mb_mean": round(sum(actors) / len(actors), 1) if actors else None,
                             "live_actors": len(actors), "object_store_mb": _mb(self.object_store_bytes())})


def _rss_mb(pids: list[int | None]) -> float | None:
    """Resident memory of these processes (Linux: /proc/PID/statm), None if none is alive."""
    total, seen = 0, False
    for pid in pids:
        if pid is None:
            continue
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            seen = True
        except (OSError, ValueError, IndexError):
            pass
    return round(total / 2**20, 1) if seen else None


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 2)


def slope_per_minute(samples: list[dict], key: str, phase: str | None = None) -> float | None:
    pts = [(s["t"], s[key]) for s in samples if s[key] is not None and (phase is None or s["phase"] == phase)]
    if len(pts) < 3:
        return None
    t, y = np.array(pts).T
    return round(float(np.polyfit(t / 60.0, y, 1)[0]), 3)


class Run:
    """``launch.py train`` in its own process group, one segment at a time, in one logdir."""

    def __init__(self, logdir: Path, args: list[str]) -> None:
        self.logdir, self.args = logdir, args
        self.proc: subprocess.Popen | None = None
        self.segments = 0

    def start(self, total_frames: int) -> None:
        self.segments += 1
        out = open(self.logdir.parent / f"{self.logdir.name}-segment{self.segments}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "launch.py"), "train", *self.args, f"logdir={self.logdir}",
             f"total_frames={total_frames}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def stop(self, timeout: float = 180) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def events(self, kind: str) -> list[dict]:
        return [e for e in read_jsonl(self.logdir / "events.jsonl") if e["event"] == kind]

    def frames(self) -> int:
        records = read_jsonl(self.logdir / "metrics.jsonl")
        return records[-1]["frames"] if records else 0

    def trained_since_start(self, segment: int) -> bool:
        """Segment ``segment`` (0-based) has started and reported learner progress."""
        starts = self.events("start")
        return len(starts) > segment and any(m["time"] > starts[-1]["time"] and m["updates"] > 0
                                             for m in read_jsonl(self.logdir / "metrics.jsonl"))

    def live_actors(self) -> dict[int, dict]:
        """actor id -> its newest ``actor_started`` event in this segment, unless it has restarted since."""
        started = [e for e in self.events("actor_started")]
        since = max((e["time"] for e in self.events("start")), default=0.0)
        restarted = {(e["actor"], e["incarnation"]) for e in self.events("actor_restart")}
        live = {}
        for e in started:
            if e["time"] >= since and (e["actor"], e["incarnation"]) not in restarted:
                live[e["actor"]] = e
        return live


def chaos(args, overrides: list[str], cluster, worker) -> dict:
    logdir = Path(args.workdir) / "chaos"
    run = Run(logdir, overrides + [f"ray_address={cluster.address}"])
    sampler = Sampler(cluster.address)
    segment_seconds = args.seconds / (args.resumes + 1)
    kills, node_removed, exit_codes = [], None, []
    try:
        for segment in range(args.resumes + 1):
            run.start(total_frames=10**11)
            # a segment's clock starts once it trains (startup is not training time)
            while not run.trained_since_start(segment):
                if run.proc.poll() is not None:
                    raise RuntimeError(f"segment {segment + 1} exited with {run.proc.returncode}; see its log")
                time.sleep(0.5)
            begin = time.monotonic()
            next_kill = begin + args.kill_every
            while time.monotonic() - begin < segment_seconds:
                if run.proc.poll() is not None:
                    raise RuntimeError(f"segment {segment + 1} exited with {run.proc.returncode}; see its log")
                live = run.live_actors()
                sampler.maybe_sample(run.proc.pid, [e["pid"] for e in live.values()], f"segment{segment + 1}")
                now = time.monotonic()
                on_worker = [a for a, e in live.items() if e["node"] == worker.node_id]
                if segment == min(1, args.resumes) and node_removed is None and now - begin > segment_seconds / 2 \
                        and (on_worker or segment_seconds - (now - begin) < 10):   # wait for an actor there
                    cluster.remove_node(worker)
                    node_removed = {"segment": segment + 1, "actors_on_it": on_worker, "frames": run.frames(),
                                    "incarnations": [[a, live[a]["incarnation"]] for a in on_worker]}
                    log(f"removed the worker node (actors on it: {on_worker})")
                if now >= next_kill and segment_seconds - (now - begin) > 5:   # time left to see the restart
                    victim = len(kills) % 2
                    if victim in live:
                        try:
                            os.kill(live[victim]["pid"], signal.SIGKILL)
                            kills.append({"actor": victim, "incarnation": live[victim]["incarnation"],
                                          "pid": live[victim]["pid"], "frames": run.frames()})
                        except ProcessLookupError:
                            pass
                    next_kill = now + args.kill_every
                log(f"segment {segment + 1}/{args.resumes + 1}: {time.monotonic() - begin:.0f}/"
                    f"{segment_seconds:.0f} s, {run.frames():,} frames, {len(kills)} actors killed")
                time.sleep(2.0)
            exit_codes.append(run.stop())
            log(f"segment {segment + 1} stopped with SIGTERM (exit {exit_codes[-1]}) at {run.frames():,} frames")
    finally:
        run.kill()
    return {"logdir": logdir, "kills": kills, "node_removed": node_removed, "exit_codes": exit_codes,
            "samples": sampler.samples, "segments": run.segments}


def undisturbed(args, overrides: list[str], cluster, frames: int) -> Path:
    logdir = Path(args.workdir) / "undisturbed"
    run = Run(logdir, overrides + [f"ray_address={cluster.address}"])
    run.start(total_frames=frames)
    try:
        while run.proc.poll() is None:
            log(f"undisturbed run: {run.frames():,}/{frames:,} frames")
            time.sleep(5.0)
    finally:
        run.kill()
    if run.proc.returncode != 0:
        raise RuntimeError(f"the undisturbed run exited with {run.proc.returncode}")
    return logdir


def tensorboard_continuity(logdir: Path, tag: str = "throughput/frames_per_second") -> dict:
    """Per event file (one per segment, oldest first): its first and last step; the steps continue if
    every file starts after the previous one ended."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spans = []
    for path in sorted(glob.glob(str(logdir / "events.out.tfevents.*")), key=os.path.getmtime):
        acc = EventAccumulator(path).Reload()
        if tag in acc.Tags()["scalars"]:
            steps = [s.step for s in acc.Scalars(tag)]
            spans.append((min(steps), max(steps), steps == sorted(steps)))
    ok = all(inc for _, _, inc in spans) and all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))
    return {"files": len(spans), "spans": [s[:2] for s in spans], "steps_continue": ok}


def summarize(args, cfg, result: dict, baseline: Path | None) -> dict:
    logdir = result["logdir"]
    metrics = read_jsonl(logdir / "metrics.jsonl")
    events = read_jsonl(logdir / "events.jsonl")
    kinds = lambda k: [e for e in events if e["event"] == k]  # noqa: E731
    unroll_frames = cfg.learner.unroll_length * cfg.actors.envs_per_actor      # x action repeat 1 (embedded)
    per_update = cfg.learner.unroll_length * cfg.learner.batch_size
    frames = [m["frames"] for m in metrics]
    updates = [m["updates"] for m in metrics]
    preempt = [e for e in kinds("checkpoint") if e["why"] == "SIGTERM"]
    resumes = kinds("resume")
    abandoned = sum(e.get("abandoned_unrolls", 0) for e in kinds("actors_stopped"))
    restarts = kinds("actor_restart")
    rejected = sum(e["count"] for e in kinds("unrolls_dropped") if e.get("source") == "actors")
    last = metrics[-1]
    samples = result["samples"]
    segments = sorted({s["phase"] for s in samples})
    learner_slopes = [slope_per_minute(samples, "learner_rss_mb", p) for p in segments]
    out = {
        "config": {"seconds": args.seconds, "kill_every": args.kill_every, "resumes": args.resumes,
                   "overrides": args.overrides, "num_actors": cfg.actors.num_actors,
                   "envs_per_actor": cfg.actors.envs_per_actor, "unroll_length": cfg.learner.unroll_length,
                   "batch_size": cfg.learner.batch_size, "cores": os.cpu_count()},
        "faults": {"actor_sigkills": len(result["kills"]), "kills": result["kills"],
                   "node_removed": result["node_removed"],
                   "learner_sigterms": len(result["exit_codes"]), "exit_codes": result["exit_codes"],
                   "actor_restarts": len(restarts), "resumes": len(resumes),
                   # a kill and the node removal can hit the same actor process before its restart: count it once
                   "actor_processes_hit": len({(k["actor"], k["incarnation"]) for k in result["kills"]} | {
                       tuple(x) for x in (result["node_removed"] or {}).get("incarnations", [])})},
        "frames_lost": {"to_actor_restarts_at_most": len(restarts) * unroll_frames,
                        "to_preemptions_at_most": abandoned * unroll_frames,
                        "frames_trained": last["frames"]},
        "unrolls": {"used": last.get("unrolls_used"), "dropped": last.get("unrolls_dropped"),
                    "abandoned_at_preemptions": abandoned,
                    "partial_unrolls_used": rejected + sum(m["frames"] != m["updates"] * per_update for m in metrics)},
        "counters": {"frames_never_go_back": frames == sorted(frames),
                     "updates_never_go_back": updates == sorted(updates),
                     "resume_frames_equal_preemption_checkpoint":
                         [r["frames"] for r in resumes] == [c["frames"] for c in preempt[:len(resumes)]],
                     "tensorboard": tensorboard_continuity(logdir)},
        "score": {"chaos": {"frames": last["frames"], "mean_capped_score": last["mean_capped_score"],
                            "mean_episode_return": last["mean_episode_return"]}},
        "memory": {"samples": samples,
                   "learner_rss_mb_per_min_by_segment": learner_slopes,
                   "actor_rss_mb_per_min": slope_per_minute(samples, "actor_rss_mb_mean"),
                   "object_store_mb_per_min": slope_per_minute(samples, "object_store_mb")},
    }
    if baseline is not None:
        b = read_jsonl(baseline / "metrics.jsonl")[-1]
        out["score"]["undisturbed"] = {"frames": b["frames"], "mean_capped_score": b["mean_capped_score"],
                                       "mean_episode_return": b["mean_episode_return"]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=600, help="training time of the chaos run (all segments)")
    p.add_argument("--kill-every", type=float, default=30, help="seconds between actor SIGKILLs")
    p.add_argument("--resumes", type=int, default=5, help="learner SIGTERMs followed by a resume")
    p.add_argument("--quick", action="store_true", help="24 s, a kill every 2 s (one per segment: none in its last 5 s), 2 resumes (the CI test)")
    p.add_argument("--no-baseline", action="store_true", help="skip the undisturbed run")
    p.add_argument("--workdir", default=None, help="where the runs go (default: a new temporary directory)")
    p.add_argument("overrides", nargs="*", help="config overrides for both runs (key=value)")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.kill_every, args.resumes = 24, 2, 2
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="impala-mu-chaos-")
    os.makedirs(args.workdir, exist_ok=True)
    overrides = ["actors.cpus_per_actor=0.5", "run.report_every_seconds=5", "run.checkpoint_every_seconds=0",
                 *args.overrides]
    cfg = load_config(None, overrides)
    if cfg.env.suite != "embedded" or cfg.actors.num_actors != 2:
        raise SystemExit("error: chaos.py runs the embedded suite with 2 actors (one per simulated node)")

    from ray.cluster_utils import Cluster

    log(f"runs in {args.workdir}")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        result = chaos(args, overrides, cluster, worker)
        frames = read_jsonl(result["logdir"] / "metrics.jsonl")[-1]["frames"]
        baseline = None if args.no_baseline else undisturbed(args, overrides, cluster, frames)
    finally:
        cluster.shutdown()
    text = json.dumps(summarize(args, cfg, result, baseline), indent=1)
    Path(args.workdir, "chaos.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
