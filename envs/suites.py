"""One way to build any suite by name: ``get_suite("embedded" | "dmlab30", **options)``.

A ``Suite`` lists its tasks (index == task id) with their reference scores and builds envs
for actors; it pickles (Ray ships it to actor processes), because every env factory is a
``functools.partial`` of a module-level function. Both suites are scored the same way:
``normalized_score = 100 * (return - random) / (human - random)``, where "human" is DMLab-30's
human reference or the embedded task's solved (oracle) return, and the mean capped score is
the mean over all tasks of ``min(score, cap)`` (no lower clamp).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import gymnasium as gym

from envs import dmlab30, embedded
from envs.instructions import MAX_WORDS, NUM_BUCKETS

SUITE_NAMES = ("embedded", "dmlab30", "peer_doorkey")
DMLAB_FRAME_SHAPE = (72, 96, 3)  # height, width, channels of DMLab-30 frames


@dataclass(frozen=True)
class TaskSpec:
    name: str
    task_id: int
    human_score: float   # DMLab-30 human reference / embedded solved return
    random_score: float
    family: str = ""
    aliases: tuple[str, ...] = ()   # other names scored as this task (DMLab-30 test names)
    # factory(seed=..., test=..., [render_mode=...]) -> gym.Env, picklable; the suite wraps its envs in EpisodeStatistics
    factory: Callable[..., gym.Env] | None = field(default=None, repr=False, compare=False)


class EpisodeStatistics(gym.Wrapper):
    """Puts ``info["episode"] = {"return", "length", "task_id"}`` into the info of the step that
    ends an episode (terminated or truncated). Return is raw (unclipped); length counts
    agent steps."""

    def __init__(self, env: gym.Env, task_id: int):
        super().__init__(env)
        self.task_id = int(task_id)
        self._return, self._length = 0.0, 0

    def reset(self, **kwargs):
        self._return, self._length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if terminated or truncated:
            info = dict(info)
            info["episode"] = {"return": self._return, "length": self._length,
                               "task_id": self.task_id}
        return obs, reward, terminated, truncated, info


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[TaskSpec, ...]          # index == task_id, canonical order
    num_actions: int
    frame_shape: tuple[int, int, int]    # H, W, C of obs["frame"]
    instruction_length: int              # L of obs["instruction"]
    action_repeat: int                   # env frames per agent step (DMLab 4, embedded 1)
    instruction_vocabulary: int = NUM_BUCKETS   # largest word id in obs["instruction"] (envs.instructions)

    def __post_init__(self) -> None:
        for index, spec in enumerate(self.tasks):
            if spec.task_id != index:
                raise ValueError(f"task {spec.name!r} has task_id {spec.task_id}, expected {index}")
        names = [n for spec in self.tasks for n in (spec.name, *spec.aliases)]
        if len(names) != len(set(names)):
            raise ValueError(f"suite {self.name!r} has duplicate task names")

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.tasks)

    def task(self, task: str | int) -> TaskSpec:
        """A task by id, name or alias."""
        if isinstance(task, int) and not isinstance(task, bool):
            if 0 <= task < len(self.tasks):
                return self.tasks[task]
            raise ValueError(f"task id {task} out of range 0..{len(self.tasks) - 1} in suite {self.name!r}")
        for spec in self.tasks:
            if task == spec.name or task in spec.aliases:
                return spec
        raise ValueError(f"unknown task {task!r} in suite {self.name!r}; "
                         f"tasks: {', '.join(self.task_names)}")

    def make_env(self, task_id: int, seed: int, *, test: bool = False,
                 render_mode: str | None = None) -> gym.Env:
        """``render_mode="rgb_array"``: ``env.render()`` returns a uint8 ``[h, w, 3]`` picture of the
        current state (embedded: the whole grid; DMLab-30: the agent's view)."""
        spec = self.task(task_id)
        env = spec.factory(seed=seed, test=test, **({"render_mode": render_mode} if render_mode else {}))
        return EpisodeStatistics(env, spec.task_id)

    def normalized_score(self, task: str | int, episode_return: float) -> float:
        """``100 * (return - random) / (human - random)`` in percent."""
        spec = self.task(task)
        return 100.0 * (float(episode_return) - spec.random_score) / (spec.human_score - spec.random_score)

    def mean_capped_score(self, returns: Mapping[str, float], cap: float | None = dmlab30.SCORE_CAP) -> float:
        """Mean over all tasks of ``min(normalized score, cap)``; ``cap=None``: plain mean.

        ``returns`` maps every task (by name, alias or id; once each) to its mean return.
        """
        by_id: dict[int, float] = {}
        for key, value in returns.items():
            spec = self.task(key)
            if spec.task_id in by_id:
                raise ValueError(f"task {spec.name!r} is given twice in returns")
            by_id[spec.task_id] = float(value)
        missing = [spec.name for spec in self.tasks if spec.task_id not in by_id]
        if missing:
            raise ValueError(f"mean capped score of suite {self.name!r} needs every task; "
                             f"missing {len(missing)}: {', '.join(missing)}")
        return dmlab30.capped_mean([self.normalized_score(i, by_id[i]) for i in range(len(self.tasks))], cap)


# ------------------------------------------------------------------------------- builders
def _make_dmlab(level: str, *, seed: int, test: bool = False, **options: Any) -> gym.Env:
    from envs.dmlab import DmLab  # noqa: PLC0415 (DmLab imports deepmind_lab only when built)
    return DmLab(level, seed=seed, test=test, width=DMLAB_FRAME_SHAPE[1],
                 height=DMLAB_FRAME_SHAPE[0], **options)


def _dmlab30_suite(dataset_path: str | None = None, level_cache_dir: str | None = None,
                   renderer: str = "software", action_repeat: int = 4, log_level: str | int = "warn",
                   episode_length_seconds: float | None = None) -> Suite:
    from envs.dmlab import check_log_level  # noqa: PLC0415 (envs.dmlab imports no engine at import)

    if renderer not in ("software", "hardware"):
        raise ValueError(f"renderer={renderer!r} must be 'software' or 'hardware'")
    if not isinstance(action_repeat, int) or action_repeat < 1:
        raise ValueError(f"action_repeat={action_repeat!r} must be a positive integer")
    check_log_level(log_level)
    if episode_length_seconds is not None and (isinstance(episode_length_seconds, bool) or not isinstance(
            episode_length_seconds, (int, float)) or not episode_length_seconds > 0):
        raise ValueError(f"episode_length_seconds={episode_length_seconds!r} must be a number > 0 "
                         "(or null: each level's own length)")
    if level_cache_dir is not None:   # actor processes may start elsewhere: resolve it here
        level_cache_dir = os.path.abspath(os.path.expanduser(str(level_cache_dir)))
    options = dict(dataset_path=dataset_path, level_cache_dir=level_cache_dir,
                   renderer=renderer, action_repeat=action_repeat, log_level=log_level,
                   episode_length_seconds=episode_length_seconds)
    tasks = []
    for task_id, (train, test) in enumerate(zip(dmlab30.TRAIN_LEVELS, dmlab30.TEST_LEVELS)):
        tasks.append(TaskSpec(
            name=train, task_id=task_id, human_score=dmlab30.HUMAN_SCORES[test],
            random_score=dmlab30.RANDOM_SCORES[test], family=train.split("_")[0],
            aliases=(test,) if test != train else (),
            factory=partial(_make_dmlab, train, **options)))
    return Suite("dmlab30", tuple(tasks), num_actions=len(dmlab30.ACTION_SET),
                 frame_shape=DMLAB_FRAME_SHAPE, instruction_length=MAX_WORDS,
                 action_repeat=action_repeat)


def _embedded_suite(tile_size: int = embedded.DEFAULT_TILE_SIZE, cued: bool = False) -> Suite:
    if not isinstance(tile_size, int) or isinstance(tile_size, bool) or tile_size < 1:
        raise ValueError(f"tile_size={tile_size!r} must be a positive integer")
    if not isinstance(cued, bool):
        raise ValueError(f"cued={cued!r} must be true or false (true: the cued collect pair, "
                         "collect_green_cued / collect_red_cued, in place of collect_green / collect_red)")
    tasks = tuple(
        TaskSpec(name=t.name, task_id=i, human_score=t.solved_score, random_score=t.random_score,
                 family=t.family, factory=partial(embedded.make_task_env, t.name, tile_size=tile_size))
        for i, t in enumerate(embedded.suite_tasks(cued)))
    side = embedded.VIEW_SIZE * tile_size
    return Suite("embedded", tasks, num_actions=embedded.NUM_ACTIONS, frame_shape=(side, side, 3),
                 instruction_length=MAX_WORDS, action_repeat=1)


def _peer_doorkey_suite(counter_dir: str | None = None, peers_dir: str | None = None) -> Suite:
    from envs import peer

    factory = peer.make_env if counter_dir is None else partial(peer.make_env, counter_dir=str(counter_dir),
                                                                peers_dir=peers_dir and str(peers_dir))
    task = TaskSpec(name="doorkey_5x5", task_id=0, human_score=peer.SOLVED_SCORE,
                    random_score=peer.RANDOM_SCORE, family="keys_doors", factory=factory)
    return Suite("peer_doorkey", (task,), num_actions=peer.NUM_ACTIONS, frame_shape=peer.FRAME_SHAPE,
                 instruction_length=MAX_WORDS, action_repeat=1)


_BUILDERS: dict[str, tuple[Callable[..., Suite], tuple[str, ...]]] = {
    "embedded": (_embedded_suite, ("tile_size", "cued")),
    "dmlab30": (_dmlab30_suite, ("dataset_path", "level_cache_dir", "renderer", "action_repeat",
                                 "log_level", "episode_length_seconds")),
    "peer_doorkey": (_peer_doorkey_suite, ("counter_dir", "peers_dir")),
}


def get_suite(name: str, **options: Any) -> Suite:
    """The suite ``name`` ("embedded" | "dmlab30" | "peer_doorkey", the peers' workload of docs/PEERS.md).

    embedded options: tile_size (pixels per view cell, default 4 -> 28x28x3 frames), cued (default
    false; true: the cued pair collect_green_cued / collect_red_cued as tasks 4 and 5, docs/ENVS.md).
    dmlab30 options: dataset_path, level_cache_dir, renderer ("software" | "hardware"),
    action_repeat (default 4), log_level (the engine's logLevel: "warn" (default) | "info" |
    "error" | "never" | N), episode_length_seconds (default: each level's own; for smoke tests).
    peer_doorkey options: counter_dir, peers_dir (count frames and episodes with the peers' own
    ``pb_env.CountingWrapper``, see ``envs.peer.make_env``).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown suite {name!r}; choices: {', '.join(SUITE_NAMES)}")
    builder, allowed = _BUILDERS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"get_suite({name!r}) got unknown options {unknown}; allowed: {', '.join(allowed)}")
    return builder(**options)
