"""Sample Factory and this project on the peers' workload (DoorKey-5x5), alternately, in one sitting.

    python bench/peers_side_by_side.py [--seconds 240] [--rounds 1] [--variant NAME=key=value,key=value ...]
        [--frames N] [--no-sf] [--setup-sf] [--scratch DIR] [--peers-dir DIR] [--threshold 0.85] [--out FILE] [--quick]

Each round runs Sample Factory 2.1.1 (APPO + V-trace, ``../shared/peers/peer_sf.py``) and then this
project once per variant (``configs/peer_doorkey.yaml`` + the variant's overrides; default one
variant ``ours`` with no overrides), every run with seed = --first-seed + round. Both systems are run and measured
by the peers' own harness code (``harness.run_once``): env frames are counted inside every env by
``pb_env.CountingWrapper`` (for this project through ``env.options.counter_dir``), frames/s over the
window [first env step + warmup, + window], the whole process tree cleaned up by pid afterwards.

Learning, from the same counter files for both: the time after the first env step, and the env
frames (lengths of all episodes finished by then), at which the mean return of the last 50 finished
episodes first reaches ``--threshold``; plus the curve (that rolling mean every 10 s) and the
harness's 30-s bins. Prints a table (stderr) and one JSON object (stdout, and ``--out``).

Sample Factory lives in ``SCRATCH/venv-sf`` (``bash ../shared/peers/setup_venvs.sh SCRATCH``, or
``--setup-sf`` here: that venv only, ~2-3 min); without it the SF half is skipped and said so.
``--quick``: one 12-s run of this project, no SF (the smoke test).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from actors import ray_reaper  # noqa: E402  (standard library only: /proc helpers)

DEFAULT_CONFIG = ROOT / "configs" / "peer_doorkey.yaml"
EPISODE_WINDOW = 50   # the rolling mean, as run.score_window_episodes
STARTUP_ALLOWANCE_S = 100   # launch -> first env step (Ray's start on a busy machine); the harness kills at 120


def default_peers_dir() -> Path | None:
    """``../shared/peers`` next to the repository (or next to its worktrees' parent), or $PEERS_DIR."""
    for candidate in (os.environ.get("PEERS_DIR"), ROOT.parent / "shared" / "peers",
                      ROOT.parent.parent / "shared" / "peers"):
        if candidate and (Path(candidate) / "harness.py").is_file():
            return Path(candidate).resolve()
    return None


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=key=value,key=value`` (or ``NAME=`` for the config as it is) -> (NAME, overrides)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or "," in name:
        raise ValueError(f"--variant {text!r} must look like NAME=key=value,key=value (or NAME= for none)")
    return name, [item for item in rest.split(",") if item]


def crossing(episodes: list[tuple[float, float, int]], t_first: float, threshold: float,
             window: int = EPISODE_WINDOW) -> dict:
    """When the mean return of the last ``window`` finished episodes first reaches ``threshold``:
    seconds after ``t_first`` and env frames (lengths of the episodes finished by then); None if never.
    episodes: (wall time, return, length), sorted by time."""
    last, frames = collections.deque(maxlen=window), 0
    for t, ret, length in episodes:
        last.append(ret)
        frames += length
        if len(last) == window and statistics.fmean(last) >= threshold:
            return {"seconds": round(t - t_first, 1), "frames": frames}
    return {"seconds": None, "frames": None}


def curve(episodes: list[tuple[float, float, int]], t_first: float, step_s: float = 10.0,
          window: int = EPISODE_WINDOW) -> list[dict]:
    """Every ``step_s`` seconds after ``t_first``: frames of finished episodes and the rolling mean return."""
    out, last, frames, i, t = [], collections.deque(maxlen=window), 0, 0, step_s
    while episodes and t_first + t - step_s <= episodes[-1][0]:
        while i < len(episodes) and episodes[i][0] < t_first + t:
            last.append(episodes[i][1])
            frames += episodes[i][2]
            i += 1
        out.append({"t": t, "frames": frames, "mean_return": round(statistics.fmean(last), 4) if last else None})
        t += step_s
    return out


def setup_sf(scratch: Path, peers_dir: Path) -> None:
    """The ``venv-sf`` part of ``setup_venvs.sh`` (same pins), skipped if it exists."""
    venv = scratch / "venv-sf"
    if (venv / "bin" / "python").exists():
        return
    print(f"creating {venv} (~2-3 min) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + ["-r", str(peers_dir / "requirements-sf.lock.txt")], check=True)


def run_system(harness, args, kind: str, label: str, round_idx: int, extra: list[str]) -> dict:
    """One run through ``harness.run_once`` plus the learning numbers from its counter files."""
    hargs = SimpleNamespace(peer=kind, scratch=str(args.scratch), seconds=args.seconds, warmup=args.warmup,
                            window=args.window, setup_allowance=120.0, sample_s=1.0)
    run_dir = args.scratch / "runs" / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{round_idx}"
    run_dir.mkdir(parents=True)
    print(f"round {round_idx}: {label} for {args.seconds} s ...", file=sys.stderr, flush=True)
    t_launch = time.time()
    res = harness.run_once(hargs, round_idx, str(run_dir), extra)
    episodes = harness.pb_counters.read_episodes(str(run_dir / "counters"))
    first = res.get("first_env_step_after_launch_s")
    out = {"system": label, "round": round_idx, "seed": round_idx, "exit_code": res["exit_code"],
           "env_fps": res.get("env_fps"), "window_s": res.get("window_s"),
           "cpu_cores_busy": res.get("cpu_cores_busy"), "total_env_steps": res["total_env_steps"],
           "first_env_step_after_launch_s": first, "episodes": len(episodes),
           "peak_pss_sum_mib": res.get("peak_pss_sum_mib"), "run_dir": str(run_dir),
           "learning_bins_30s": res["learning"].get("bins", [])}
    if first is not None:
        t_first = t_launch + first
        reached = crossing(episodes, t_first, args.threshold)
        out.update({"seconds_to_threshold": reached["seconds"], "frames_to_threshold": reached["frames"],
                    "curve": curve(episodes, t_first),
                    "final_mean_return": round(statistics.fmean(r for _, r, _ in episodes[-EPISODE_WINDOW:]), 4)
                    if episodes else None})
    return out


def summarize(runs: list[dict]) -> dict:
    by_system: dict[str, list[dict]] = collections.defaultdict(list)
    for r in runs:
        by_system[r["system"]].append(r)
    summary = {}
    for name, rs in by_system.items():
        fps = [r["env_fps"] for r in rs if r.get("env_fps")]
        secs = [r.get("seconds_to_threshold") for r in rs]
        frames = [r.get("frames_to_threshold") for r in rs]
        summary[name] = {"runs": len(rs), "env_fps": fps, "env_fps_median": statistics.median(fps) if fps else None,
                         "seconds_to_threshold": secs, "frames_to_threshold": frames,
                         "final_mean_return": [r.get("final_mean_return") for r in rs]}
    return summary


def print_table(summary: dict, threshold: float) -> None:
    fmt = lambda xs, f: ", ".join("never" if x is None else f.format(x) for x in xs)  # noqa: E731
    print(f"\n| system | env frames/s | s to return >= {threshold} | frames to it | final mean return |",
          file=sys.stderr)
    print("|---|---:|---:|---:|---:|", file=sys.stderr)
    for name, s in summary.items():
        print(f"| {name} | {fmt(s['env_fps'], '{:,.0f}')} | {fmt(s['seconds_to_threshold'], '{:.0f}')} | "
              f"{fmt(s['frames_to_threshold'], '{:,}')} | {fmt(s['final_mean_return'], '{:.2f}')} |",
              file=sys.stderr)


def launch_ours(argv: list[str]) -> int:
    """The launcher the harness starts for this project: ``--seconds --counter-dir --seed`` (the harness's
    interface) + ``--config`` + ``--peers-dir`` + ``--frames`` + overrides; runs ``launch.py train`` (the
    config's own total_frames, so its LR schedule) until --seconds after its first env step or --frames
    counted env frames, then stops it with SIGTERM (its graceful stop: exit code 143 counts as 0)."""
    p = argparse.ArgumentParser()
    p.add_argument("--launch-ours", action="store_true")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--counter-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", required=True)
    p.add_argument("--peers-dir", required=True)
    p.add_argument("--frames", type=int, default=100_000_000_000)
    a, overrides = p.parse_known_args(argv)
    logdir = Path(a.counter_dir).parent / "ours"
    cmd = [sys.executable, str(ROOT / "launch.py"), "train", "--config", a.config, *overrides,
           f"logdir={logdir}", f"seed={a.seed}", "run.report_every_seconds=5",
           "run.checkpoint_every_seconds=0", f"env.options.counter_dir={a.counter_dir}",
           f"env.options.peers_dir={a.peers_dir}"]
    sys.path.insert(0, a.peers_dir)
    import pb_counters

    proc = subprocess.Popen(cmd, cwd=ROOT)
    launched, first_step = time.monotonic(), None
    while proc.poll() is None:   # --seconds from the first env step (Ray's start-up not counted, as SF's)
        now = time.monotonic()
        counted = pb_counters.read_counters(a.counter_dir)[0]
        if first_step is None and counted > 0:
            first_step = now
        if (first_step is not None and now - first_step >= a.seconds) or counted >= a.frames:
            break
        if first_step is None and now - launched >= STARTUP_ALLOWANCE_S:
            print(f"no env step within {STARTUP_ALLOWANCE_S} s of the launch: stopping", file=sys.stderr)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=90)
            return 3
        time.sleep(0.5)
    stopped = proc.poll() is None   # else it ended by itself (at --frames, or failed)
    if stopped:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
    return 0 if stopped and code in (0, 128 + signal.SIGTERM, -signal.SIGTERM) else code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=240, help="training wall time of every run")
    p.add_argument("--frames", type=int, default=None,
                   help="this project's runs stop at this many env frames (or --seconds, whichever first)")
    p.add_argument("--rounds", type=int, default=1, help="alternations (seed = first seed + round)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--warmup", type=float, default=45.0, help="frames/s window starts this long after step 1")
    p.add_argument("--window", type=float, default=90.0, help="frames/s window length (s)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=key=value,...",
                   help="a run of this project per round with these overrides (repeatable; default ours=)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--threshold", type=float, default=0.85)
    p.add_argument("--no-sf", action="store_true", help="only this project's variants")
    p.add_argument("--setup-sf", action="store_true", help="create SCRATCH/venv-sf if absent (pip, ~2-3 min)")
    p.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "peers-side-by-side"))
    p.add_argument("--peers-dir", default=None, help="../shared/peers (default: found next to the repo)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--quick", action="store_true", help="one 12-s run of this project, no SF")
    a = p.parse_args(argv)
    if a.quick:
        a.seconds, a.warmup, a.window, a.rounds, a.no_sf = 12, 3.0, 6.0, 1, True
        a.variant = a.variant[:1]
    a.variants = [parse_variant(v) for v in a.variant] or [("ours", [])]
    if len({n for n, _ in a.variants}) != len(a.variants) or "sf" in {n for n, _ in a.variants}:
        raise SystemExit(f"--variant names must be distinct and not 'sf': {[n for n, _ in a.variants]}")
    peers = Path(a.peers_dir).resolve() if a.peers_dir else default_peers_dir()
    if peers is None or not (peers / "harness.py").is_file():
        raise SystemExit(f"--peers-dir={a.peers_dir or '(not found)'} holds no harness.py; "
                         "pass --peers-dir=<the ../shared/peers folder> or set PEERS_DIR")
    if not Path(a.config).is_file():
        raise SystemExit(f"--config={a.config!r} does not exist")
    a.peers_dir, a.scratch = peers, Path(a.scratch).resolve()
    return a


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes whose session id is ``session`` (from /proc)."""
    members = []
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        fields = ray_reaper.stat_fields(pid)
        if fields and fields[0] not in "ZX" and int(fields[3]) == session:
            members.append(pid)
    return members


def child_pids(parent: int) -> list[int]:
    return [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if (fields := ray_reaper.stat_fields(pid)) and int(fields[1]) == parent]


def stop_runs_on_signal(grace_s: float = 90.0) -> None:
    """SIGTERM/SIGINT to this script ends the run in progress too: the harness starts each run in a
    session of its own (and has no cleanup for its caller being killed), so every live process of
    those sessions gets SIGTERM (``launch.py train`` stops gracefully and ends its Ray actors), then,
    after ``grace_s``, SIGKILL; then this script exits with 128 + the signal."""
    def handler(signum, _frame):
        sessions = child_pids(os.getpid())
        for session in sessions:
            for pid in session_members(session):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(session_members(s) for s in sessions) and time.monotonic() < deadline:
            time.sleep(0.5)
        for session in sessions:
            for pid in session_members(session):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        print(f"stopped by signal {signum}: the run in progress was ended", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    sys.path.insert(0, str(a.peers_dir))
    import harness  # the peers' harness (stdlib only)

    a.scratch.mkdir(parents=True, exist_ok=True)
    # The harness starts <scratch>/<venv>/bin/python <script>: a venv-ours whose python execs this
    # interpreter (a symlink would lose this venv: Python finds its venv next to the path it was started by).
    ours_python = a.scratch / "venv-ours" / "bin" / "python"
    ours_python.parent.mkdir(parents=True, exist_ok=True)
    ours_python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    ours_python.chmod(0o755)
    harness.PEERS["ours"] = {"venv": "venv-ours", "script": str(Path(__file__).resolve())}
    if a.setup_sf and not a.no_sf:
        setup_sf(a.scratch, a.peers_dir)
    sf_python = a.scratch / "venv-sf" / "bin" / "python"
    sf_skipped = "--no-sf" if a.no_sf else (None if sf_python.exists() else
                                              f"no {sf_python}: run bash {a.peers_dir}/setup_venvs.sh {a.scratch} "
                                              "or pass --setup-sf")
    if sf_skipped and not a.no_sf:
        print(f"Sample Factory skipped: {sf_skipped}", file=sys.stderr)
    runs = []
    for r in range(a.first_seed, a.first_seed + a.rounds):
        if not sf_skipped:
            runs.append(run_system(harness, a, "sf", "sf", r, ["--seed", str(r)]))
        for name, overrides in a.variants:
            extra = ["--launch-ours", "--config", str(Path(a.config).resolve()),
                     "--peers-dir", str(a.peers_dir), *(["--frames", str(a.frames)] if a.frames else []),
                     *overrides]
            runs.append(run_system(harness, a, "ours", name, r, extra))
    summary = summarize(runs)
    result = {"workload": "MiniGrid-DoorKey-5x5-v0, 56x56 RGB, conv-LSTM 256, unroll 20, batch 32, 2 x 8 envs",
              "config": str(a.config), "variants": {n: o for n, o in a.variants}, "seconds": a.seconds,
              "threshold": a.threshold, "cores": os.cpu_count(), "sample_factory": sf_skipped or "run",
              "summary": summary, "runs": runs}
    print_table(summary, a.threshold)
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return result


if __name__ == "__main__":
    if "--launch-ours" in sys.argv[1:]:
        sys.exit(launch_ours(sys.argv[1:]))
    stop_runs_on_signal()
    main()
