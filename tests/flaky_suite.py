"""A suite whose env raises once (the first env to reach step `fail_at` in the whole run).

"Once" is coordinated through a marker file, so it holds across Ray worker processes.
Shipped to Ray workers by value (cloudpickle), since tests/ is not importable there.
"""
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym


class FailOnce(gym.Wrapper):
    def __init__(self, env, marker, fail_at):
        super().__init__(env)
        self.marker, self.fail_at, self.steps = marker, fail_at, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.fail_at:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                raise RuntimeError("simulated env crash (flaky_suite)")
        return self.env.step(action)


@dataclass(frozen=True)
class FlakySuite:
    inner: Any
    marker: str
    fail_at: int = 30

    def make_env(self, task_id, seed, *, test=False, **kwargs):
        return FailOnce(self.inner.make_env(task_id, seed, test=test, **kwargs), self.marker, self.fail_at)

    def __getattr__(self, name):
        if name.startswith("__") or name == "inner":   # during unpickling `inner` is not set yet
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass(frozen=True)
class BreakableSuite:
    """Envs cannot be built once the file ``marker`` exists (e.g. a node lost its DMLab install)."""
    inner: Any
    marker: str

    def make_env(self, task_id, seed, *, test=False):
        if os.path.exists(self.marker):
            raise RuntimeError("cannot build env (breakable_suite)")
        return self.inner.make_env(task_id, seed, test=test)

    def __getattr__(self, name):
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
