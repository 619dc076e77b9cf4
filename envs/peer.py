"""The peer-comparison workload (``docs/PEERS.md``) as a one-task suite (``get_suite("peer_doorkey")``).

Exactly the env the peers (Sample Factory, RLlib IMPALA) were measured on: MiniGrid's
``MiniGrid-DoorKey-5x5-v0`` with its stock ``RGBImgPartialObsWrapper`` (tile 8) and
``ImgObsWrapper``: 56x56x3 uint8 egocentric frames, 7 actions, at most 250 steps, return
``1 - 0.9 * steps / 250`` on success else 0. Here the frame goes into the same observation
dict as every suite (``instruction`` all zeros), so the whole system can be timed on the
peers' workload.

Reference scores: ``random`` = 0.0255, the mean return of a uniformly random policy over 1000
episodes (``python -m envs.peer``); ``solved`` = 1.0, the return's upper bound (the peers'
"solved" runs reach 0.76-0.95).
"""
from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.instructions import MAX_WORDS

ENV_ID = "MiniGrid-DoorKey-5x5-v0"
TILE_SIZE = 8
FRAME_SHAPE = (56, 56, 3)
NUM_ACTIONS = 7
RANDOM_SCORE = 0.0255
SOLVED_SCORE = 1.0


class FrameDict(gym.ObservationWrapper):
    """An image observation -> ``{"frame": image, "instruction": zeros[MAX_WORDS]}``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Dict({
            "frame": env.observation_space,
            "instruction": spaces.Box(0, np.iinfo(np.int64).max, (MAX_WORDS,), np.int64),
        })
        self._instruction = np.zeros(MAX_WORDS, np.int64)

    def observation(self, observation):
        return {"frame": observation, "instruction": self._instruction}


class _Seeded(gym.Wrapper):
    """The first reset uses the construction seed; later resets continue the env's own RNG."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._seed: int | None = seed

    def reset(self, *, seed=None, options=None):
        if seed is None and self._seed is not None:
            seed = self._seed
        self._seed = None
        return self.env.reset(seed=seed, options=options)


def make_env(*, seed: int, test: bool = False, render_mode: str | None = None,
             counter_dir: str | None = None, peers_dir: str | None = None) -> gym.Env:
    """The env; with ``counter_dir`` (and ``peers_dir``, the ``../shared/peers`` folder) every
    step and finished episode is also counted by the peers' own ``pb_env.CountingWrapper`` into
    ``counter_dir``, exactly as their harness counts Sample Factory's and RLlib's envs."""
    import minigrid  # noqa: F401  (registers the MiniGrid env ids)
    from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

    env = gym.make(ENV_ID, render_mode=render_mode)   # "rgb_array": render() draws the whole grid
    env = ImgObsWrapper(RGBImgPartialObsWrapper(env, tile_size=TILE_SIZE))
    if counter_dir is not None:
        env = _counting_wrapper(peers_dir)(env, counter_dir)
    return _Seeded(FrameDict(env), seed + (0x600D5EED if test else 0))


def _counting_wrapper(peers_dir: str | None) -> type:
    import sys

    if not peers_dir or not os.path.isfile(os.path.join(peers_dir, "pb_env.py")):
        raise ValueError(f"env.options.peers_dir={peers_dir!r} holds no pb_env.py; set it to the "
                         "../shared/peers folder to count frames with the peers' CountingWrapper")
    if peers_dir not in sys.path:
        sys.path.append(peers_dir)
    import pb_env

    return pb_env.CountingWrapper


def _measure_random(episodes: int = 1000, seed: int = 1) -> float:
    env, rng, total = make_env(seed=seed), np.random.default_rng(seed), 0.0
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(int(rng.integers(NUM_ACTIONS)))
            total += r
            done = term or trunc
    return total / episodes


if __name__ == "__main__":
    print(f"random policy mean return on {ENV_ID}: {_measure_random():.4f}")
