"""``launch.py compare``: a grid of heads x seeds, each a normal resumable training run.

Run ``(head, k)`` trains in ``DIR/<head>/seed<k>/`` as its own subprocess
(``python -m training ... head=<head> seed=<k> logdir=DIR/<head>/seed<k>``, i.e. ``launch.py train``), so a crash of
one run cannot take the grid down and ``--parallel P`` runs P of them side by side (each starts
its own local Ray cluster, or joins ``ray_address``). Runs go seed-major (every head's seed 0,
then every head's seed 1, ...), so a grid stopped early is still balanced across heads.

Re-running the same command resumes unfinished runs and skips finished ones: a run is finished
when its newest checkpoint has reached ``total_frames`` and (unless ``--eval-episodes 0``) its
evaluation files exist (``LOGDIR/eval/<checkpoint>/results.json``, docs/EVALUATION.md).
``DIR/grid.json`` records the grid's suite and task set: a second grid of another suite (or
task set) in the same ``DIR`` is refused before any work, as is an unknown head.
At the end the report (``analysis.report``) is written to ``DIR/report/``.

SIGTERM or SIGINT (Ctrl-C) stops the grid cleanly: no new run starts, each running one gets one
SIGTERM (it writes a checkpoint and exits), compare waits for them and exits with 128 + the signal's
number; the same command resumes. The runs have sessions of their own, so a terminal's Ctrl-C reaches
them only through compare, once (a second signal would stop a run without its checkpoint).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import yaml

from agent.config import HEADS
from analysis.report import write_report
from configs.run_lock import RunLock
from configs.schema import TrainConfig, load_config
from evaluation.evaluate import prepare, run as run_evaluation
from learner.checkpoint import CheckpointError, Checkpointer, checkpoint_dir, latest

ROOT = str(Path(__file__).resolve().parent.parent)   # on the runs' PYTHONPATH: `python -m training` from any cwd


class GridStopped(Exception):
    """The grid was stopped by a signal (``signum``) after its running runs checkpointed and exited."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class GridError(ValueError):
    """A bad grid request (unknown head, clash with an existing grid), raised before any work."""


@dataclass(frozen=True)
class GridRun:
    head: str
    seed: int
    logdir: str
    overrides: tuple[str, ...]    # the full override list passed to ``python -m training`` (launch.py train)

    @property
    def name(self) -> str:
        return f"{self.head}/seed{self.seed}"


def parse_heads(text: str) -> list[str]:
    heads = [h.strip() for h in text.split(",") if h.strip()]
    bad = [h for h in heads if h not in HEADS]
    if bad or not heads:
        raise GridError(f"--heads {text!r}: {', '.join(bad) or 'no head'} is not a head; "
                        f"use a comma-separated subset of {','.join(HEADS)}")
    if len(set(heads)) != len(heads):
        raise GridError(f"--heads {text!r} names a head twice")
    return heads


def plan(heads: Sequence[str], seeds: int, out: str, config: str | None,
         overrides: Sequence[str]) -> tuple[list[GridRun], TrainConfig]:
    """The grid's runs (seed-major) and the resolved config of its first run; validates everything
    (heads, config, overrides, the clash check) before anything is written."""
    if seeds < 1:
        raise GridError(f"--seeds {seeds} must be >= 1")
    for item in overrides:
        key = item.split("=", 1)[0]
        if key in ("head", "agent.head", "seed", "run.seed", "logdir", "run.logdir"):
            raise GridError(f"override {item!r}: compare sets {key} itself per run; use --heads/--seeds/--out")
    runs, cfg0 = [], None
    for seed in range(seeds):
        for head in heads:
            logdir = os.path.join(out, head, f"seed{seed}")
            full = (*overrides, f"head={head}", f"seed={seed}", f"logdir={logdir}")
            cfg = load_config(config, list(full))        # raises ValueError naming a bad key/value
            cfg0 = cfg0 or cfg
            runs.append(GridRun(head, seed, logdir, full))
    check_clash(out, grid_identity(cfg0))
    return runs, cfg0


def grid_identity(cfg: TrainConfig) -> dict[str, Any]:
    return {"suite": cfg.env.suite, "tasks": list(cfg.env.tasks)}


def check_clash(out: str, identity: dict[str, Any]) -> None:
    """Refuses ``out`` if it holds a grid (grid.json) or runs (config.yaml) of another suite/task set."""
    path = os.path.join(out, "grid.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if {k: old.get(k) for k in identity} != identity:
            raise GridError(f"{out} already holds a grid of suite {old.get('suite')!r} tasks {old.get('tasks')} "
                            f"but this one is suite {identity['suite']!r} tasks {identity['tasks']}; "
                            "use another --out")
    for cfg_path in sorted(Path(out).glob("*/seed*/config.yaml")) if os.path.isdir(out) else []:
        with open(cfg_path) as f:
            env = (yaml.safe_load(f) or {}).get("env", {})
        if env.get("suite") != identity["suite"] or list(env.get("tasks") or []) != identity["tasks"]:
            raise GridError(f"{cfg_path} is a run of suite {env.get('suite')!r} tasks {env.get('tasks')}, "
                            f"not {identity['suite']!r} tasks {identity['tasks']}; use another --out")


def checkpoint_frames(logdir: str) -> int:
    """Env frames of the run's newest readable checkpoint (0 if none)."""
    try:
        loaded = latest(logdir)   # weights_only, never trusted
    except CheckpointError as e:
        raise GridError(f"run {logdir}: {e}") from None
    return int(loaded[0]["frames"]) if loaded else 0


def newest_checkpoint(logdir: str) -> Path | None:
    paths = Checkpointer(checkpoint_dir(logdir)).paths()
    return paths[-1] if paths else None


def evaluated(logdir: str) -> bool:
    """True if the newest checkpoint has evaluation results (``eval/<ckpt-stem>/results.json``)."""
    ckpt = newest_checkpoint(logdir)
    return ckpt is not None and os.path.exists(os.path.join(logdir, "eval", ckpt.stem, "results.json"))


def evaluate_run(run: GridRun, episodes: int, stream: TextIO) -> dict[str, Any]:
    """Evaluates the run's newest checkpoint in-process (``evaluation.evaluate``, serial mode: the same
    episodes and numbers as Ray mode, no cluster to start); returns results.json's object."""
    job = prepare(run.logdir, episodes=episodes, overrides=["mode=serial"])
    return run_evaluation(job, stream=stream)


class Grid:
    """Runs (or resumes) the grid's training runs, then their evaluations."""

    def __init__(self, runs: Sequence[GridRun], *, config: str | None, total_frames: int, parallel: int = 1,
                 eval_episodes: int = 10, stream: TextIO | None = None, poll_seconds: float = 10.0,
                 python: str = sys.executable, retries: int = 1) -> None:
        if parallel < 1:
            raise GridError(f"--parallel {parallel} must be >= 1")
        self.runs = list(runs)
        self.config = config
        self.total_frames = total_frames
        self.parallel = parallel
        self.eval_episodes = eval_episodes
        self.stream = stream or sys.stdout
        self.poll = poll_seconds
        self.python = python
        self.retries = retries      # a run that exits non-zero is started again (it resumes) this many times
        self.failed: dict[str, int] = {}
        self.stop_signal: int | None = None   # set by a signal handler: stop after the running runs checkpoint

    def request_stop(self, signum: int, _frame: Any = None) -> None:
        """The SIGTERM / SIGINT handler (``compare``): the polling loop does the rest."""
        if self.stop_signal is None:
            self.stop_signal = signum

    def say(self, text: str) -> None:
        self.stream.write(f"[compare {time.strftime('%H:%M:%S')}] {text}\n")
        self.stream.flush()

    def trained(self, run: GridRun) -> bool:
        return checkpoint_frames(run.logdir) >= self.total_frames

    def train_command(self, run: GridRun) -> list[str]:
        config = ["--config", self.config] if self.config else []
        return [self.python, "-m", "training", *config, *run.overrides]

    def run_all(self) -> dict[str, str]:
        """Trains and evaluates every run not yet finished; returns {run name: state}."""
        todo = [r for r in self.runs if not self.trained(r)]
        done = len(self.runs) - len(todo)
        self.say(f"{len(self.runs)} runs, {done} already trained, {len(todo)} to train "
                 f"({self.total_frames:,} frames each, {self.parallel} at a time)")
        self._run_processes(todo, self.train_command, "train", "train.log")
        if self.eval_episodes:
            to_eval = [r for r in self.runs if self.trained(r) and not evaluated(r.logdir)]
            for i, run in enumerate(to_eval):
                if self.stop_signal is not None:
                    raise GridStopped(self.stop_signal)
                self.evaluate(run, i, len(to_eval))
        return {r.name: self.state(r) for r in self.runs}

    def evaluate(self, run: GridRun, index: int, total: int) -> None:
        log_path = os.path.join(run.logdir, "evaluate.log")
        self.say(f"evaluate {run.name}: {self.eval_episodes} episodes per task ({index}/{total} done), log {log_path}")
        started = time.monotonic()
        try:
            with open(log_path, "a") as log:
                summary = evaluate_run(run, self.eval_episodes, log)
        except Exception as e:  # noqa: BLE001 (one run's failure must not stop the grid; reported at the end)
            self.failed[run.name] = 1
            self.say(f"evaluate {run.name}: FAILED ({type(e).__name__}: {e}); see {log_path}")
            return
        self.say(f"evaluate {run.name}: mean capped score {summary['mean_capped_score']:.1f} "
                 f"in {(time.monotonic() - started) / 60:.1f} min ({index + 1}/{total})")

    def state(self, run: GridRun) -> str:
        if run.name in self.failed:
            return f"failed (exit {self.failed[run.name]}, see {run.logdir}/*.log)"
        if not self.trained(run):
            return "unfinished"
        if self.eval_episodes and not evaluated(run.logdir):
            return "trained, not evaluated"
        return "finished"

    def _run_processes(self, runs: Sequence[GridRun], command: Callable[[GridRun], list[str]],
                       what: str, log_name: str) -> None:
        pending, active = list(runs), {}
        total, finished = len(runs), 0
        tries = {run: 0 for run in runs}
        last_progress = 0.0
        signalled: set[GridRun] = set()
        while pending or active:
            if self.stop_signal is not None:
                pending = []
                for run, (proc, _, _) in active.items():
                    if run not in signalled and proc.poll() is None:    # our own child, still running
                        proc.send_signal(signal.SIGTERM)
                        signalled.add(run)
                        self.say(f"{what} {run.name}: stopping ({signal.Signals(self.stop_signal).name}): "
                                 "it writes a checkpoint, then exits")
            while pending and len(active) < self.parallel:
                run = pending.pop(0)
                tries[run] += 1
                self.failed.pop(run.name, None)
                os.makedirs(run.logdir, exist_ok=True)
                log = open(os.path.join(run.logdir, log_name), "a")
                active[run] = (subprocess.Popen(command(run), stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=_run_environment(),
                                                start_new_session=True),
                               log, time.monotonic())
                self.say(f"{what} {run.name}: started ({finished}/{total} done), log {log.name}")
            time.sleep(min(self.poll, 1.0))
            for run, (proc, log, started) in list(active.items()):
                code = proc.poll()
                if code is None:
                    continue
                log.close()
                del active[run]
                took = time.monotonic() - started
                if run in signalled:
                    self.say(f"{what} {run.name}: stopped with exit {code} after {took / 60:.1f} min, see {log.name}")
                    continue
                if code != 0 and tries[run] <= self.retries:
                    self.say(f"{what} {run.name}: exit {code} after {took / 60:.1f} min; starting it again "
                             f"(try {tries[run] + 1} of {self.retries + 1}), see {log.name}")
                    pending.append(run)
                    continue
                finished += 1
                if code == 0:
                    self.say(f"{what} {run.name}: done in {took / 60:.1f} min ({finished}/{total})")
                else:
                    self.failed[run.name] = code
                    self.say(f"{what} {run.name}: FAILED with exit {code} after {took / 60:.1f} min; "
                             f"see {log.name} ({finished}/{total})")
            if active and time.monotonic() - last_progress >= self.poll:
                last_progress = time.monotonic()
                if what == "train":
                    self.say(_progress_line([r.logdir for r in active], [r.name for r in active], self.total_frames))
        if self.stop_signal is not None:
            raise GridStopped(self.stop_signal)


def _last_metrics(logdir: str) -> dict[str, Any] | None:
    path = os.path.join(logdir, "metrics.jsonl")
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 8192))
            return json.loads(f.read().decode(errors="replace").strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _progress_line(logdirs: Sequence[str], names: Sequence[str], total_frames: int) -> str:
    """``N running, F f/s in all | name pct% score S | ...`` from the runs' last metrics records."""
    parts, fps = [], 0.0
    for logdir, name in zip(logdirs, names):
        last = _last_metrics(logdir)
        if last is None:
            parts.append(f"{name} starting")
            continue
        fps += last.get("fps") or 0.0
        score = last.get("mean_capped_score")
        parts.append(f"{name} {100 * last['frames'] / total_frames:.0f}% "
                     f"score {'n/a' if score is None else f'{score:.1f}'}")
    return f"{len(logdirs)} running, {fps:,.0f} f/s in all | " + " | ".join(parts)


def write_grid_file(out: str, identity: dict[str, Any], heads: Sequence[str], seeds: int,
                    config: str | None, overrides: Sequence[str]) -> None:
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "grid.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({**identity, "heads": list(heads), "seeds": seeds, "config": config,
                   "overrides": list(overrides)}, f, indent=1)
    os.replace(tmp, path)


def compare(heads: str, seeds: int, out: str, config: str | None = None, overrides: Sequence[str] = (),
            parallel: int = 1, eval_episodes: int = 10, stream: TextIO | None = None,
            poll_seconds: float = 10.0, retries: int = 1) -> dict[str, str]:
    """The whole command: validate, train/evaluate what is missing, write ``out/report``.
    Returns {run name: state}."""
    head_list = parse_heads(heads)
    runs, cfg = plan(head_list, seeds, out, config, overrides)
    with RunLock(out, "--out") as lock:         # one compare per --out (LockHeld: a one-line error)
        grid = Grid(runs, config=config, total_frames=cfg.run.total_frames, parallel=parallel,
                    eval_episodes=eval_episodes, stream=stream, poll_seconds=poll_seconds, retries=retries)
        if lock.taken_over:
            grid.say(f"took over {lock.path}, left by {lock.taken_over} (it ended without releasing it)")
        write_grid_file(out, grid_identity(cfg), head_list, seeds, config, overrides)
        previous = {sig: signal.signal(sig, grid.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            states = grid.run_all()
        except GridStopped as stopped:
            grid.say(f"stopped by {stopped}: the running runs wrote checkpoints; the same command continues the grid")
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        _write_report(grid, runs, out)
    for name, state in states.items():
        if state != "finished":
            grid.say(f"{name}: {state}")
    return states


def _write_report(grid: "Grid", runs: Sequence[GridRun], out: str) -> None:
    have = [r.logdir for r in runs if os.path.exists(os.path.join(r.logdir, "metrics.jsonl"))]
    if have:
        summary = write_report(have, os.path.join(out, "report"))
        grid.say(f"report written to {summary}")


def _run_environment() -> dict[str, str]:
    """This environment with the project's root first on PYTHONPATH (``python -m training``)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": ROOT + (os.pathsep + path if path else "")}
