"""The typed, validated config tree: a YAML file from ``configs/`` plus dotted overrides.

A config has five sections, each one frozen dataclass that validates itself:
``run`` (this file), ``env`` (this file), ``actors`` (this file), ``agent``
(``agent.config.AgentConfig``) and ``learner`` (``learner.config.LearnerConfig``).

Overrides are ``section.field=value`` (the value is parsed as YAML: ``3``, ``1e-4``,
``null``, ``[a, b]``), or one of the short keys in ``SHORT_KEYS``. An unknown key or a
value of the wrong type fails at once with a message that names it and says the fix.
"""
from __future__ import annotations

import dataclasses
import decimal
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from agent.config import AgentConfig, check_choice, resolve_context_scale
from learner.config import LearnerConfig

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = CONFIG_DIR / "embedded.yaml"


@dataclass(frozen=True)
class RunConfig:
    logdir: str = "runs/embedded"        # outputs: config, TensorBoard events, metrics.jsonl, checkpoints
    total_frames: int = 2_000_000        # env frames (agent steps x action repeat) to train for
    seed: int = 0                        # seeds envs, action sampling and the network's initialisation
    device: str = "auto"                 # auto (cuda if present) | cpu | cuda | cuda:N
    ray_address: str | None = None       # join an existing Ray cluster ("auto" or host:port); null = start a local one
    mode: str = "ray"                    # ray (actors in Ray processes) | serial (same code, in-process)
    report_every_seconds: float = 10.0   # terminal, TensorBoard and metrics.jsonl cadence
    score_window_episodes: int = 50      # per-task return = mean of the last N finished episodes
    checkpoint_every_seconds: float = 600.0  # periodic checkpoint by wall time (0 = off)
    checkpoint_every_frames: int = 0     # periodic checkpoint by env frames (0 = off)
    keep_checkpoints: int = 3            # the newest N checkpoints are kept
    learner_threads: int = 0             # torch CPU threads of the learner process (0 = torch's default)
    resume: str = "auto"                 # auto (resume if a checkpoint exists) | must | never (move logdir aside)

    def __post_init__(self) -> None:
        _positive_int("run.total_frames", self.total_frames)
        _positive("run.report_every_seconds", self.report_every_seconds)
        _positive_int("run.score_window_episodes", self.score_window_episodes)
        _positive_int("run.keep_checkpoints", self.keep_checkpoints)
        _non_negative("run.learner_threads", self.learner_threads)
        _non_negative("run.checkpoint_every_seconds", self.checkpoint_every_seconds)
        _non_negative("run.checkpoint_every_frames", self.checkpoint_every_frames)
        check_choice("run.mode", self.mode, ("ray", "serial"))
        check_choice("run.resume", self.resume, ("auto", "must", "never"))
        if not self.logdir:
            raise ValueError("run.logdir is empty; set logdir=<a directory for this run's outputs>")
        if not (self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device)):
            raise ValueError(f"run.device={self.device!r} is not auto, cpu, cuda or cuda:N; "
                             "set device=auto to use a GPU when there is one")


@dataclass(frozen=True)
class EnvConfig:
    suite: str = "embedded"              # embedded (MiniGrid/BabyAI, runs anywhere) | dmlab30
    tasks: tuple[str, ...] = ()          # train on these task names only (task ids stay the suite's); [] = all
    options: dict = field(default_factory=dict)  # suite options, e.g. {tile_size: 4} or {dataset_path: ...}

    def __post_init__(self) -> None:
        if not isinstance(self.options, dict):
            raise ValueError(f"env.options={self.options!r} must be a mapping, e.g. env.options.tile_size=4")
        object.__setattr__(self, "tasks", tuple(self.tasks))


@dataclass(frozen=True)
class ActorsConfig:
    num_actors: int = 2                  # Ray actors (one CPU process each)
    envs_per_actor: int = 16             # envs stepped in lockstep by one actor, one batched forward per step
    cpus_per_actor: float = 1.0          # Ray CPU resource per actor
    unrolls_in_flight: int = 2           # requests queued per actor: bounds the object store and the policy lag
    max_restarts: int = 100              # total actor restarts allowed before the run stops with an error
    torch_threads: int = 1               # torch threads inside each actor
    oversubscribe: bool = False          # DMLab-30 without ray_address: allow more actors than CPUs
    # each actor's envs in a child process, half of them stepping while the network acts on the other
    # half (actors/overlap.py); pays only with 2 cores per actor (cpus_per_actor=2; docs/BENCHMARKS.md)
    overlap: bool = False
    # custom Ray resources each actor requests, e.g. {actor_slot: 1} keeps actors on the nodes started
    # with `ray start --resources='{"actor_slot": 16}'`; a local cluster declares what the actors need
    resources: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_actors", "envs_per_actor", "unrolls_in_flight", "torch_threads"):
            _positive_int(f"actors.{name}", getattr(self, name))
        _positive("actors.cpus_per_actor", self.cpus_per_actor)
        _non_negative("actors.max_restarts", self.max_restarts)
        if not isinstance(self.overlap, bool):
            raise ValueError(f"actors.overlap={self.overlap!r} must be true or false")
        if self.overlap and self.envs_per_actor < 2:
            raise ValueError(f"actors.overlap=true needs actors.envs_per_actor >= 2 (got {self.envs_per_actor}): "
                             "it steps one half of an actor's envs while acting on the other")
        if not isinstance(self.resources, dict):
            raise ValueError(f"actors.resources={self.resources!r} must be a mapping, e.g. "
                             "actors.resources={actor_slot: 1}")
        for name, amount in self.resources.items():
            if not isinstance(name, str) or name in ("CPU", "GPU", "memory"):
                raise ValueError(f"actors.resources has key {name!r}: use a custom resource name "
                                 "(CPUs are actors.cpus_per_actor)")
            _positive(f"actors.resources.{name}", amount)


@dataclass(frozen=True)
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    actors: ActorsConfig = field(default_factory=ActorsConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def __post_init__(self) -> None:   # agent.mi_context_scale=auto -> the scale of learner.optimizer
        object.__setattr__(self, "agent", resolve_context_scale(self.agent, self.learner.optimizer))

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}


SECTIONS: dict[str, type] = {
    "run": RunConfig, "env": EnvConfig, "actors": ActorsConfig, "agent": AgentConfig, "learner": LearnerConfig,
}

SHORT_KEYS = {
    "logdir": "run.logdir",
    "total_frames": "run.total_frames",
    "seed": "run.seed",
    "device": "run.device",
    "ray_address": "run.ray_address",
    "mode": "run.mode",
    "resume": "run.resume",
    "suite": "env.suite",
    "tasks": "env.tasks",
    "head": "agent.head",
    "torso": "agent.torso",
    "num_actors": "actors.num_actors",
    "envs_per_actor": "actors.envs_per_actor",
    "batch_size": "learner.batch_size",
    "unroll_length": "learner.unroll_length",
    "learning_rate": "learner.learning_rate",
}

# What a resume does when a field differs between the checkpoint and the config resuming from it:
# * RESUMABLE_CHANGES: applied silently (where outputs go, resources, cadences). Changes the resume
#   adapts to: actors are always rebuilt (Ray: new incarnations; serial: exact continuation only if
#   num_actors and envs_per_actor are unchanged, else new episodes, reported), and a saved batch
#   queue whose unrolls have another length than learner.unroll_length is dropped (reported).
# * INCOMPATIBLE_PREFIXES: refused, naming the field: another network, task set or optimizer, another
#   meaning of a frame (env.options.action_repeat) or another random stream (run.seed).
# * anything else (learner hyperparameters): applied, and listed in the resume event.
RESUMABLE_CHANGES = {
    "run.logdir", "run.total_frames", "run.device", "run.ray_address", "run.mode", "run.resume",
    "run.report_every_seconds", "run.checkpoint_every_seconds", "run.checkpoint_every_frames",
    "run.keep_checkpoints", "run.score_window_episodes", "run.learner_threads",
    "actors.num_actors", "actors.envs_per_actor", "actors.cpus_per_actor", "actors.unrolls_in_flight",
    "actors.max_restarts", "actors.torch_threads", "actors.oversubscribe", "actors.resources",
    "actors.overlap",
    "env.options.level_cache_dir", "env.options.renderer", "env.options.log_level", "env.options.dataset_path",
}
INCOMPATIBLE_PREFIXES = ("agent.", "env.suite", "env.tasks", "env.options.tile_size", "env.options.action_repeat",
                         "env.options.cued",
                         "learner.optimizer", "learner.popart", "run.seed")


# Upper bounds on sizes, checked for every config (build_config): a typo such as num_actors=100000
# fails here in one line instead of declaring 100000 CPUs to Ray or allocating a batch that exhausts
# memory. Each is far above any published IMPALA setting (DMLab-30: 150-250 actors, B=32, T=100).
UPPER_BOUNDS = {
    "actors.num_actors": 4096,           # a local Ray is also bounded by the machine's cores (launch.py)
    "actors.envs_per_actor": 256,        # envs stepped by one actor process
    "actors.unrolls_in_flight": 64,      # requests queued per actor (object store use)
    "learner.batch_size": 1024,          # unrolls per update: [T+1, B] frames live on the learner's device
    "learner.unroll_length": 1000,       # T
}


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Reads a YAML config (default: ``configs/embedded.yaml``) and applies ``key=value`` overrides."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
        raise ValueError(f"config file {str(path)!r} does not exist; use one of configs/: {known}")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ValueError(f"config file {str(path)!r} is not valid YAML{at} ({problem}); fix the file "
                         "(python launch.py print-config shows a valid one)") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of sections ({', '.join(SECTIONS)})")
    tree = _flatten(raw)
    for item in overrides:
        key, value = parse_override(item)
        _check_key(key, f"override {item!r}")
        tree[key] = value
    return build_config(tree, source=str(path))


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ValueError(f"override {item!r} is not key=value (e.g. head=taskid_mi or learner.batch_size=16)")
    key, text = item.split("=", 1)
    key = SHORT_KEYS.get(key.strip(), key.strip())
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise ValueError(f"override {item!r}: cannot parse value {text!r} ({e})") from None
    return key, value


def build_config(flat: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """Builds a TrainConfig from ``{"section.field": value}`` (``env.options.X`` allowed)."""
    per_section: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in flat.items():
        _check_finite(key, value)
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name:
            raise ValueError(_unknown_key_message(key, source))
        cls = SECTIONS[section]
        if section == "env" and name.startswith("options."):
            per_section["env"].setdefault("options", {})[name[len("options."):]] = value
            continue
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name not in fields:
            raise ValueError(_unknown_key_message(key, source))
        hints = typing.get_type_hints(cls)
        if name == "options" and isinstance(value, dict):
            per_section["env"].setdefault("options", {}).update(value)
            continue
        per_section[section][name] = _coerce(key, value, hints[name])
    for key, bound in UPPER_BOUNDS.items():
        section, _, name = key.partition(".")
        value = per_section[section].get(name)
        if isinstance(value, int) and value > bound:
            raise ValueError(f"{key}={value} is above the upper bound {bound} (configs/schema.py UPPER_BOUNDS); "
                             "use a smaller value")
    sections = {}
    for name, cls in SECTIONS.items():
        sections[name] = cls(**per_section[name])
    return TrainConfig(**sections)


def config_from_dict(tree: Mapping[str, Any]) -> TrainConfig:
    """Inverse of ``TrainConfig.to_dict`` (used for checkpoints and the saved config.yaml)."""
    return build_config(_flatten(dict(tree)), source="saved config")


def incompatible_changes(saved: TrainConfig, new: TrainConfig) -> tuple[list[str], list[str]]:
    """Returns (incompatible, other) dotted keys that differ between ``saved`` and ``new``."""
    a, b = _flatten(saved.to_dict()), _flatten(new.to_dict())
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    bad = [k for k in changed if k.startswith(INCOMPATIBLE_PREFIXES)]
    other = [k for k in changed if k not in bad and k not in RESUMABLE_CHANGES]
    return bad, other


def to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML (what ``config.yaml`` holds; usable as ``--config``)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_yaml(config: TrainConfig, path: str | os.PathLike) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(to_yaml(config))
    os.replace(tmp, path)


def check_logdir(logdir: str | os.PathLike) -> None:
    """Refuses a ``run.logdir`` that cannot be created or written, without creating anything.

    The nearest existing ancestor must be a writable directory (a file in the way, a read-only
    file system or a directory without write permission fail here, not after Ray has started).
    """
    path = Path(logdir).expanduser().absolute()
    existing = path
    while not existing.exists():
        if existing.is_symlink():                      # a dangling link cannot be created through
            break
        existing = existing.parent
    fix = "set logdir=<a directory you can write>"
    if not existing.is_dir():
        what = "is" if existing == path else f"would be under {str(existing)!r}, which is"
        raise ValueError(f"run.logdir={str(logdir)!r} {what} not a directory; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({str(existing)!r} is the part that exists)"
        raise ValueError(f"run.logdir={str(logdir)!r} is not writable{where}; {fix}")


# ---------------------------------------------------------------- helpers
def _flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, body in tree.items():
        if section not in SECTIONS:
            raise ValueError(_unknown_key_message(str(section), "config"))
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ValueError(f"config section {section!r} must be a mapping of fields, got {body!r}")
        for name, value in body.items():
            if section == "env" and name == "options" and isinstance(value, dict):
                for opt, v in value.items():
                    flat[f"env.options.{opt}"] = v
            else:
                flat[f"{section}.{name}"] = value
    return flat


def _check_key(key: str, source: str) -> None:
    section, _, name = key.partition(".")
    if section == "env" and name.startswith("options.") and len(name) > len("options."):
        return
    if section not in SECTIONS or name not in {f.name for f in dataclasses.fields(SECTIONS[section])}:
        raise ValueError(_unknown_key_message(key, source))


def _all_keys() -> list[str]:
    keys = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    return keys + list(SHORT_KEYS)


def _unknown_key_message(key: str, source: str) -> str:
    close = difflib.get_close_matches(key, _all_keys(), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (f"unknown config key {key!r} (from {source}){hint} Keys are section.field with sections "
            f"{', '.join(SECTIONS)}, or a short key: {', '.join(SHORT_KEYS)}.")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(key, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0])
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}={value!r} must be a list, e.g. {key.split('.')[-1]}=[a,b]")
        return tuple(_coerce(key, v, args[0]) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value!r} must be true or false")
        return value
    if hint is int:
        return _integer(key, value)
    if hint is float:
        if isinstance(value, str):   # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}={value!r} must be a number")
        _check_finite(key, float(value))
        return float(value)
    if hint is str:
        if isinstance(value, int) and not isinstance(value, bool):   # YAML reads "1" as an int
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"{key}={value!r} must be a string")
        return value
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}={value!r} must be a mapping")
        return value
    return value


def _integer(key: str, value: Any) -> int:
    """An int from an int, an integral float (``2.0e+6``) or a string such as ``2e6``, ``2.5e6`` or
    ``2_000_000`` (YAML reads ``2e6`` as a string); the value must be exactly integral."""
    if isinstance(value, bool):
        raise ValueError(f"{key}={value!r} must be an integer")
    if isinstance(value, int):
        return value
    try:
        exact = decimal.Decimal(value.replace("_", "") if isinstance(value, str) else value)
    except (decimal.InvalidOperation, TypeError, ValueError):
        exact = None
    if exact is None or not exact.is_finite():
        raise ValueError(f"{key}={value!r} must be an integer (e.g. 2000000, 2_000_000 or 2e6)")
    if exact != exact.to_integral_value():
        raise ValueError(f"{key}={value!r} is not a whole number; give an integer (e.g. 2000000 or 2e6)")
    return int(exact)


def _check_finite(key: str, value: Any) -> None:
    """Every number of the config tree (nested lists and mappings included) must be finite: the one
    place where ``.inf`` / ``.nan`` stop (``_coerce`` calls it too, for strings such as "inf" that a float
    field parses)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(key, v)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key}={value!r} is not a finite number; give a finite value")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}={value!r} must be a positive number")


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name}={value!r} must be a number >= 0")


def _known_keys() -> dict[str, Any]:
    """``{"section.field": default}`` of this code's config schema (``env.options`` is free-form)."""
    defaults = TrainConfig().to_dict()
    return {f"{section}.{f.name}": defaults[section][f.name]
            for section, cls in SECTIONS.items() for f in dataclasses.fields(cls) if f.name != "options"}


def _saved_keys(config: Mapping[str, Any]) -> set[str]:
    return {f"{section}.{name}" for section, body in config.items() if isinstance(body, Mapping)
            for name in body if name != "options"} | {s for s, body in config.items() if not isinstance(body, Mapping)}


def unknown_config_keys(config: Mapping[str, Any]) -> list[str]:
    """Keys of a saved config tree that this code's schema does not have (written by newer code)."""
    return sorted(_saved_keys(config) - set(_known_keys()))


def defaults_used(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: this code's default}`` for the schema fields a saved config tree lacks."""
    known = _known_keys()
    return {k: known[k] for k in sorted(set(known) - _saved_keys(config))}
