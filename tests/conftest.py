"""Shared test helpers: tiny configs and reading a run's outputs."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# A small, fast network and learner; every end-to-end test starts from these.
TINY = [
    "torso=small", "agent.core_size=32", "agent.torso_out=32", "agent.context_size=8", "agent.context_hidden=16",
    "batch_size=4", "unroll_length=8", "run.report_every_seconds=1", "run.checkpoint_every_seconds=0",
    "device=cpu",
]


@pytest.fixture(autouse=True, scope="session")
def _user_key_in_a_temporary_home(tmp_path_factory):
    """Serial runs seal env states with a per-user key (actors/env_state.py): the tests' key lives
    in a temporary $XDG_CONFIG_HOME (inherited by subprocesses), never in the real ~/.config."""
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg_config"))
    yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def events_of(logdir, kind: str) -> list[dict]:
    """The ``kind`` events of a run's ``events.jsonl``, in order."""
    return [e for e in read_jsonl(Path(logdir) / "events.jsonl") if e["event"] == kind]


def frames_now(logdir) -> int:
    """The frames of a run's newest ``metrics.jsonl`` record (0 before its first report)."""
    records = read_jsonl(Path(logdir) / "metrics.jsonl")
    return records[-1]["frames"] if records else 0


def launch(args: list[str], **kwargs) -> subprocess.Popen:
    """Starts `python launch.py train ARGS` in its own process group, output to a log file."""
    log = open(kwargs.pop("log"), "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "train", *args], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kwargs)


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} while waiting for {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def process_tree(root: int) -> dict[int, int]:
    """{pid: start time} of the live descendants of ``root`` (from /proc; not ``root`` itself)."""
    from actors.ray_reaper import start_time, stat_fields

    children: dict[int, list[int]] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        if fields := stat_fields(pid):
            children.setdefault(int(fields[1]), []).append(pid)
    tree, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if (start := start_time(child)) is not None:
                tree[child] = start
                stack.append(child)
    return tree


def stop_process_group(proc: subprocess.Popen) -> None:
    """Ends a launched run and everything it started (Ray workers included)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


# Real DeepMind Lab: tests that need it take the `real_deepmind_lab` fixture. Without the module
# they skip, naming the build command; where it is required (.ci/run sets IMPALA_MU_REQUIRE_DMLAB=1;
# CI=true implies it unless IMPALA_MU_REQUIRE_DMLAB=0) they fail instead.
DMLAB_BUILD_COMMAND = "scripts/build_dmlab.sh --offline ../shared/dmlab/sources  (or --online; docs/DMLAB.md)"


def dmlab_required() -> bool:
    flag = os.environ.get("IMPALA_MU_REQUIRE_DMLAB", "")
    return flag == "1" or (flag != "0" and os.environ.get("CI", "").lower() == "true")


@pytest.fixture(scope="session")
def real_deepmind_lab():
    """The real ``deepmind_lab`` module (skips, or fails where it is required, when absent)."""
    try:
        import deepmind_lab
    except ImportError as e:
        message = f"deepmind_lab is not importable ({e}); build it: {DMLAB_BUILD_COMMAND}"
        if dmlab_required():
            pytest.fail(f"real DeepMind Lab is required here (IMPALA_MU_REQUIRE_DMLAB/CI): {message}")
        pytest.skip(message)
    if getattr(deepmind_lab, "__file__", "").endswith(os.path.join("fake_deepmind_lab", "deepmind_lab.py")):
        pytest.fail("the fake deepmind_lab is on sys.path where the real one is expected")
    return deepmind_lab


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """2-core machines: torch's default of one thread per core fights the actors and other tests."""
    import torch

    torch.set_num_threads(1)


FAKE_DMLAB_PATH = Path(__file__).parent / "fake_deepmind_lab" / "deepmind_lab.py"


@pytest.fixture
def fake_lab(monkeypatch):
    """The faithful fake ``deepmind_lab`` module (tests/fake_deepmind_lab), imported as ``deepmind_lab``."""
    spec = importlib.util.spec_from_file_location("deepmind_lab", FAKE_DMLAB_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "deepmind_lab", module)
    module.EPISODE_FRAMES = 40
    return module


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second OpenMP thread only adds contention (80x slower on a busy 2-core box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_seed_determines_rollout(rollout) -> None:
    """``rollout(seed) -> (frames [N, ...], rewards)``: the same seed replays the same run, exactly;
    another seed gives other frames."""
    f1, r1 = rollout(42)
    f2, r2 = rollout(42)
    f3, _ = rollout(43)
    assert np.array_equal(f1, f2) and r1 == r2
    assert not np.array_equal(f1, f3)


# The longest tests (whole training runs, simulated clusters) start first, spread over the workers,
# so that under pytest-xdist (the README's `-n auto --dist worksteal`) they run beside each other and
# beside the short ones instead of back to back or as a tail at the end. @pytest.mark.heavy(SECONDS):
# SECONDS measured on the 2-core machine (docs/TESTING.md), only to order them.
# worksteal first hands worker k the k-th contiguous slice of the collection (len // workers left,
# as its scheduler computes them), and later idle workers steal the tail of a busy one's queue. So
# each slice starts with its share of the heavy tests, dealt longest first to the slice with the
# least heavy time so far (the LPT rule), and is filled up with the short tests in pytest's order.
# With one process (no xdist) this is just "heavy first, longest first".
def heavy_seconds(item) -> float:
    mark = item.get_closest_marker("heavy")
    return float(mark.args[0]) if mark and mark.args else 0.0


def deal(items: list, workers: int) -> list:
    """The collection in the order that starts every worker on its share of the heavy tests."""
    heavy = sorted((i for i in items if heavy_seconds(i) > 0), key=heavy_seconds, reverse=True)
    light = [i for i in items if heavy_seconds(i) == 0]
    if workers <= 1:
        return heavy + light
    sizes, left = [], len(items)
    for k in range(workers):               # worksteal's first distribution: len(pending) // nodes_remaining
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    slices, load = [[] for _ in range(workers)], [0.0] * workers
    for item in heavy:
        open_ = [k for k in range(workers) if len(slices[k]) < sizes[k]]
        k = min(open_, key=lambda j: load[j])
        slices[k].append(item)
        load[k] += heavy_seconds(item)
    for k in range(workers):
        take = sizes[k] - len(slices[k])
        slices[k], light = slices[k] + light[:take], light[take:]
    return [item for s in slices for item in s]


def pytest_collection_modifyitems(config, items):
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    items[:] = deal(items, workers)
