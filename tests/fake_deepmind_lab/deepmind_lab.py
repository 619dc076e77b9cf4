"""A fake of DeepMind Lab's Python module ``deepmind_lab``, for tests without the engine.

It follows the real API (google-deepmind/lab ``docs/users/python_api.md``), checked against
a trace of calls recorded from the real engine (``tests/data/dmlab_trace.json``, replayed by
tests/test_dmlab_real.py), and is stricter than the real one only where the real behaviour is
undefined (a negative ``num_steps``):

* ``Lab(level, observations, config=None, renderer='software', level_cache=None)``:
  config must be a dict of str -> str (``TypeError`` otherwise, like the real one); an unknown
  observation name raises ``ValueError``; an unknown level or a hold-out ``*_test`` level
  without ``allowHoldOutLevels='true'``, or an unknown renderer, raises ``RuntimeError``.
* ``reset(episode=-1, seed=None)``: seed must be a Python int (``ValueError`` otherwise, numpy
  ints included) that fits a C long (``OverflowError``).
* ``step(action, num_steps=1)``: action must be a numpy array (``TypeError``) of dtype
  ``np.intc`` and shape ``(7,)`` (``ValueError``); values outside ``action_spec()`` are
  accepted, as by the real engine. Returns the reward summed over the frames (float). All
  ``num_steps`` frames run; the episode ends after the step that reaches its length. Stepping
  before a reset or after the end raises ``RuntimeError``.
* ``observations()``: dict of the requested names (``RGB_INTERLEAVED`` uint8 [h, w, 3],
  ``INSTR`` str, ...); raises ``RuntimeError`` when the episode is not running.
* ``level_cache``: on every reset the fake "generates" a map keyed by (level, seed): it calls
  ``fetch(key, pk3_path)`` and, on a miss, writes the map to ``pk3_path`` and calls
  ``write(key, pk3_path)``. A fetched file with the wrong content raises ``RuntimeError``.

Episodes are deterministic in the reset seed: frames and rewards are functions of
(seed, frame number). Episode length: config ``episodeLengthSeconds`` x 60 engine frames, else
``EPISODE_FRAMES`` (set it in a test).
Language levels (``language_*``) give a non-empty ``INSTR``. Every call is recorded in
``Lab.calls`` and every constructed Lab in ``INSTANCES``. Like the real ``deepmind_lab.Lab``
(a C type without pickle support, ``python/dmlab_module.c``), a Lab cannot be pickled or
copied: ``pickle.dumps``, ``copy.copy`` and ``copy.deepcopy`` raise CPython's ``TypeError``.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile

import numpy as np

EPISODE_FRAMES = 240          # engine frames per episode; tests may change it
INSTANCES: list["Lab"] = []   # every Lab constructed, oldest first

_PREFIX = "contributed/dmlab30/"
_SHORT_NAMES = (
    "rooms_collect_good_objects_train", "rooms_collect_good_objects_test",
    "rooms_exploit_deferred_effects_train", "rooms_exploit_deferred_effects_test",
    "rooms_select_nonmatching_object", "rooms_watermaze", "rooms_keys_doors_puzzle",
    "language_select_described_object", "language_select_located_object",
    "language_execute_random_task", "language_answer_quantitative_question",
    "lasertag_one_opponent_small", "lasertag_three_opponents_small",
    "lasertag_one_opponent_large", "lasertag_three_opponents_large",
    "natlab_fixed_large_map", "natlab_varying_map_regrowth", "natlab_varying_map_randomized",
    "skymaze_irreversible_path_hard", "skymaze_irreversible_path_varied",
    "psychlab_arbitrary_visuomotor_mapping", "psychlab_continuous_recognition",
    "psychlab_sequential_comparison", "psychlab_visual_search",
    "explore_object_locations_small", "explore_object_locations_large",
    "explore_obstructed_goals_small", "explore_obstructed_goals_large",
    "explore_goal_locations_small", "explore_goal_locations_large",
    "explore_object_rewards_few", "explore_object_rewards_many",
)
LEVELS = frozenset(_PREFIX + name for name in _SHORT_NAMES)

_ACTION_SPEC = (
    {"name": "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "min": -512, "max": 512},
    {"name": "LOOK_DOWN_UP_PIXELS_PER_FRAME", "min": -512, "max": 512},
    {"name": "STRAFE_LEFT_RIGHT", "min": -1, "max": 1},
    {"name": "MOVE_BACK_FORWARD", "min": -1, "max": 1},
    {"name": "FIRE", "min": 0, "max": 1},
    {"name": "JUMP", "min": 0, "max": 1},
    {"name": "CROUCH", "min": 0, "max": 1},
)
_WORDS = (("pick", "find", "get"), ("the", "a"), ("red", "green", "blue"),
          ("hat", "ball", "cake", "balloon"))


def version() -> str:
    return "fake"


_runfiles = "/fake/runfiles"


def runfiles_path() -> str:
    return _runfiles


def set_runfiles_path(path: str) -> None:
    global _runfiles
    _runfiles = path


def reward_at(seed: int, frame: int) -> float:
    """The reward of engine frame ``frame`` (0-based) of the episode reset with ``seed``."""
    return (1.0 if (seed * 31 + frame) % 13 == 0 else 0.0) - (0.5 if (seed + frame) % 17 == 0 else 0.0)


def frame_at(seed: int, frame: int, height: int, width: int) -> np.ndarray:
    """The RGB frame uint8 ``[height, width, 3]`` shown after ``frame`` frames."""
    return np.random.default_rng([seed, frame]).integers(0, 256, (height, width, 3), dtype=np.uint8)


def instruction_for(level: str, seed: int) -> str:
    if not level.startswith(_PREFIX + "language_"):
        return ""
    r = random.Random(seed)
    return " ".join(r.choice(words) for words in _WORDS)


def map_key(level: str, seed: int) -> str:
    return hashlib.md5(f"{level}:{seed}".encode()).hexdigest() + ".pk3"


def map_bytes(level: str, seed: int) -> bytes:
    return f"FAKE PK3 {level} {seed}\n".encode() * 8


class Lab:
    def __init__(self, level, observations, config=None, renderer="software", level_cache=None):
        if not isinstance(level, str):
            raise TypeError("level must be a str")
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise TypeError("config must be a dict")
        for key, value in config.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"Config keys and values must be strings, got {key!r}: {value!r}")
        if renderer not in ("software", "hardware"):
            raise RuntimeError(f'Failed to set renderer must be "hardware" or "software" actual "{renderer}"!')
        self.width = int(config.get("width", "320"))
        self.height = int(config.get("height", "240"))
        known = {spec["name"] for spec in self.observation_spec()}
        observations = list(observations)
        for name in observations:
            if not isinstance(name, str):
                raise TypeError("observation names must be strings")
            if name not in known:
                raise ValueError(f"Unknown observation '{name}'.")
        if level not in LEVELS:
            raise RuntimeError(f"Failed to open level '{level}'")
        if level.endswith("_test") and config.get("allowHoldOutLevels") != "true":
            raise RuntimeError(f"Level '{level}' is a hold-out level: set allowHoldOutLevels='true'")
        if level_cache is not None and not (hasattr(level_cache, "fetch") and hasattr(level_cache, "write")):
            raise TypeError("level_cache must have fetch(key, pk3_path) and write(key, pk3_path)")
        self.level = level
        self.observation_names = observations
        self.config = dict(config)
        self.renderer = renderer
        self.level_cache = level_cache
        seconds = config.get("episodeLengthSeconds")
        self.episode_frames = round(60 * float(seconds)) if seconds is not None else EPISODE_FRAMES
        self.calls: list[tuple[str, dict]] = []
        self.cache_hits = 0
        self.cache_misses = 0
        self._tmp = tempfile.mkdtemp(prefix="fake_dmlab_")
        self._seed: int | None = None
        self._frames = 0
        self._running = False
        self._closed = False
        INSTANCES.append(self)

    # --- episode control -------------------------------------------------------------------
    def reset(self, episode=-1, seed=None):
        self._check_open()
        self.calls.append(("reset", {"episode": episode, "seed": seed}))
        if seed is None:
            seed = random.randrange(2**31)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"'seed' must be int or None, was '{type(seed).__module__}.{type(seed).__name__}'.")
        if not -2**63 <= seed < 2**63:
            raise OverflowError("Python int too large to convert to C long")
        self._load_map(seed)
        self._seed, self._frames, self._running = seed, 0, True
        return True

    def _load_map(self, seed: int) -> None:
        if self.level_cache is None:
            return
        key = map_key(self.level, seed)
        pk3_path = os.path.join(self._tmp, "map.pk3")
        if os.path.exists(pk3_path):
            os.remove(pk3_path)
        expected = map_bytes(self.level, seed)
        if self.level_cache.fetch(key, pk3_path):
            with open(pk3_path, "rb") as f:
                if f.read() != expected:
                    raise RuntimeError(f"level cache returned a corrupt map for {key}")
            self.cache_hits += 1
        else:
            with open(pk3_path, "wb") as f:
                f.write(expected)
            self.level_cache.write(key, pk3_path)
            self.cache_misses += 1

    def is_running(self) -> bool:
        return self._running and not self._closed

    def num_steps(self) -> int:
        self._check_open()
        return self._frames

    def fps(self) -> int:
        return 60

    def events(self) -> list:
        return []

    def step(self, action, num_steps=1):
        self._check_open()
        if not isinstance(action, np.ndarray):
            raise TypeError(f"argument 1 must be numpy.ndarray, not {type(action).__name__}")
        if action.dtype != np.intc:
            raise ValueError("action must have dtype np.intc")
        if action.shape != (len(_ACTION_SPEC),):
            raise ValueError("action must have shape (7)")
        if not isinstance(num_steps, int) or num_steps < 0:
            raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
        self.calls.append(("step", {"action": action.copy(), "num_steps": num_steps}))
        if not self._running:
            raise RuntimeError("Environment in wrong status to advance.")
        reward = 0.0
        for _ in range(num_steps):
            reward += reward_at(self._seed, self._frames)
            self._frames += 1
        if self._frames >= self.episode_frames:
            self._running = False
        return reward

    def observations(self) -> dict:
        self._check_open()
        self.calls.append(("observations", {}))
        if not self._running:
            raise RuntimeError("Environment in wrong status to call observations()")
        rgb = frame_at(self._seed, self._frames, self.height, self.width)
        depth = np.full((self.height, self.width, 1), self._frames % 256, np.uint8)
        full = {
            "RGB_INTERLEAVED": rgb,
            "RGBD_INTERLEAVED": np.concatenate([rgb, depth], axis=-1),
            "RGB": np.ascontiguousarray(rgb.transpose(2, 0, 1)),
            "RGBD": np.ascontiguousarray(np.concatenate([rgb, depth], -1).transpose(2, 0, 1)),
            "INSTR": instruction_for(self.level, self._seed),
        }
        return {name: full[name] for name in self.observation_names}

    # --- specs -----------------------------------------------------------------------------
    def observation_spec(self) -> list[dict]:
        h, w = self.height, self.width
        return [
            {"name": "RGB_INTERLEAVED", "dtype": np.uint8, "shape": (h, w, 3)},
            {"name": "RGBD_INTERLEAVED", "dtype": np.uint8, "shape": (h, w, 4)},
            {"name": "RGB", "dtype": np.uint8, "shape": (3, h, w)},
            {"name": "RGBD", "dtype": np.uint8, "shape": (4, h, w)},
            {"name": "INSTR", "dtype": str, "shape": ()},
        ]

    def action_spec(self) -> list[dict]:
        return [dict(spec) for spec in _ACTION_SPEC]

    def __reduce_ex__(self, protocol):
        # CPython's refusal for an extension type that holds C state and defines no pickling
        raise TypeError("cannot pickle 'deepmind_lab.Lab' object")

    def close(self) -> None:
        self.calls.append(("close", {}))
        self._closed = True
        self._running = False
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Environment is closed")
