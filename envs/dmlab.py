"""DeepMind Lab as a gymnasium env: one DMLab-30 level, IMPALA's action set and observations.

``deepmind_lab`` is imported inside ``DmLab.__init__`` only, so ``envs`` imports and tests
without it; constructing a ``DmLab`` where it is missing raises an ``ImportError`` that says
how to get it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import dmlab30
from envs.instructions import MAX_WORDS, NUM_BUCKETS, encode_instruction

INSTALL_HINT = (
    "DmLab needs DeepMind Lab's Python module `deepmind_lab`, which is not installed in this Python. "
    "Build and install it with `scripts/build_dmlab.sh --online --python .venv/bin/python` "
    "(or `--offline DIR` from the pinned archives; ~3 min on 2 cores, see docs/DMLAB.md), or use "
    "the project's Docker image: `docker build -t impala-mu .`. To run without DeepMind Lab use "
    "the embedded suite: get_suite('embedded')."
)
# DeepMind Lab's Lua `logLevel` setting: level scripts print generated mazes and instructions at
# INFO; "warn" (the default here) keeps warnings and errors only.
LOG_LEVELS = ("never", "error", "warn", "info")
_OBSERVATIONS = ["RGB_INTERLEAVED", "INSTR"]
_ACTIONS = tuple(np.array(vector, dtype=np.intc) for vector in dmlab30.ACTION_SET)


class LevelCache:
    """Shared on-disk cache of generated DMLab maps (the engine's ``level_cache=`` protocol).

    Many actor processes may share ``cache_dir``: ``write`` copies to a temporary file in the
    same directory and renames it into place with ``os.replace`` (atomic), so a reader sees
    either no file or a complete one.
    """

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = os.fspath(cache_dir)
        os.makedirs(self.cache_dir, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.cache_dir, key.replace(os.sep, "_"))

    def fetch(self, key: str, pk3_path: str) -> bool:
        """Copies the cached map ``key`` to ``pk3_path``; False when it is not cached."""
        try:
            shutil.copyfile(self._path(key), pk3_path)
        except FileNotFoundError:
            return False
        return True

    def write(self, key: str, pk3_path: str) -> None:
        """Stores the map at ``pk3_path`` under ``key`` (no-op if another process already did)."""
        path = self._path(key)
        if os.path.exists(path):
            return
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".pk3")
        try:
            with os.fdopen(fd, "wb") as out, open(pk3_path, "rb") as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def check_log_level(log_level: str | int) -> None:
    """``log_level`` is one of ``LOG_LEVELS`` (any case) or a positive int (more verbose)."""
    ok = (str(log_level).lower() in LOG_LEVELS if isinstance(log_level, str)
          else isinstance(log_level, int) and not isinstance(log_level, bool) and log_level > 0)
    if not ok:
        raise ValueError(f"log_level={log_level!r} is not one of {', '.join(LOG_LEVELS)} or a positive "
                         "integer; use log_level=warn (quiet) or info (level generation logs)")


class DmLab(gym.Env):
    """One DMLab-30 level with IMPALA's 9 discrete actions.

    Observation: ``{"frame": uint8 [height, width, 3] (RGB_INTERLEAVED), "instruction": int64
    [MAX_WORDS] (INSTR, hashed word ids, 0 = padding)}``. Action: ``Discrete(9)`` indexing
    ``dmlab30.ACTION_SET``, sent as an ``np.intc`` vector with ``num_steps=action_repeat``; the
    reward is the engine's sum over those frames (raw, unclipped). The episode terminates when
    the engine stops running; that step returns the last observation seen.

    Every engine reset gets an explicit seed from the env's generator
    ``np.random.default_rng(seed)`` (``reset(seed=...)`` reseeds it), so runs reproduce.
    ``test=True`` plays the level's test variant with ``allowHoldOutLevels='true'`` and
    ``mixerSeed='1611489005'`` (evaluation seeds disjoint from training ones).
    ``log_level`` is the engine's ``logLevel`` (default "warn": level generation stays quiet);
    ``episode_length_seconds`` overrides the level's episode length (60 engine frames a second;
    smoke tests) where its script honours the setting (rooms_watermaze does; rooms_collect_good_objects
    and rooms_keys_doors_puzzle keep their own), None keeps the level's.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, level: str, *, seed: int, test: bool = False, action_repeat: int = 4,
                 width: int = 96, height: int = 72, dataset_path: str | None = None,
                 level_cache_dir: str | None = None, renderer: str = "software",
                 log_level: str | int = "warn", episode_length_seconds: float | None = None,
                 render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: DmLab renders only 'rgb_array' (or None)")
        self.render_mode = render_mode
        if level not in dmlab30.TRAIN_TO_TEST and level not in dmlab30.HUMAN_SCORES:
            raise ValueError(f"{level!r} is not a DMLab-30 short level name; "
                             f"choices: {', '.join(dmlab30.TRAIN_LEVELS)}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat={action_repeat} must be >= 1")
        check_log_level(log_level)
        if episode_length_seconds is not None and not episode_length_seconds > 0:
            raise ValueError(f"episode_length_seconds={episode_length_seconds!r} must be > 0 (or None: "
                             "the level's own length)")
        try:
            import deepmind_lab  # noqa: PLC0415 (lazy: envs must import without it)
        except ImportError as e:
            raise ImportError(INSTALL_HINT) from e
        self.level = dmlab30.to_test_level(level) if test else level
        self.action_repeat = int(action_repeat)
        config = {"width": str(int(width)), "height": str(int(height)),
                  "logLevel": str(log_level).upper()}
        if episode_length_seconds is not None:
            config["episodeLengthSeconds"] = str(episode_length_seconds)
        if dataset_path is not None:
            config["datasetPath"] = str(dataset_path)
        if test or self.level.endswith("_test"):
            config["allowHoldOutLevels"] = "true"
        if test:
            config["mixerSeed"] = str(dmlab30.TEST_MIXER_SEED)
        cache = LevelCache(level_cache_dir) if level_cache_dir is not None else None
        self._lab = deepmind_lab.Lab(dmlab30.LEVEL_PREFIX + self.level, list(_OBSERVATIONS),
                                     config=config, renderer=renderer, level_cache=cache)
        self.observation_space = spaces.Dict({
            "frame": spaces.Box(0, 255, (int(height), int(width), 3), np.uint8),
            "instruction": spaces.Box(0, NUM_BUCKETS, (MAX_WORDS,), np.int64),
        })
        self.action_space = spaces.Discrete(len(_ACTIONS))
        self._rng = np.random.default_rng(seed)
        self._last_obs: dict[str, np.ndarray] | None = None
        self._running = False

    def _observe(self) -> dict[str, np.ndarray]:
        raw = self._lab.observations()
        self._last_obs = {"frame": np.asarray(raw["RGB_INTERLEAVED"], np.uint8),
                          "instruction": encode_instruction(raw["INSTR"])}
        return self._last_obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        engine_seed = int(self._rng.integers(0, 2**31 - 1))
        self._lab.reset(seed=engine_seed)
        self._running = True
        return self._observe(), {"engine_seed": engine_seed}

    def step(self, action):
        if not self._running:
            raise RuntimeError("DmLab.step() called after the episode ended; call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward = float(self._lab.step(_ACTIONS[int(action)], num_steps=self.action_repeat))
        if self._lab.is_running():
            return self._observe(), reward, False, False, {}
        self._running = False
        last = {key: value.copy() for key, value in self._last_obs.items()}
        return last, reward, True, False, {}

    def render(self) -> np.ndarray | None:
        """``render_mode="rgb_array"``: a copy of the latest RGB frame (the agent's view)."""
        if self.render_mode != "rgb_array" or self._last_obs is None:
            return None
        return self._last_obs["frame"].copy()

    def close(self) -> None:
        lab, self._lab = getattr(self, "_lab", None), None
        if lab is not None:
            lab.close()
