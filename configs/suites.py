"""The suite a config names: ``resolve_suite(cfg)``, with the checks of a DMLab-30 run, for training
(``training.run``) and evaluation (``evaluation.evaluate``) alike."""
from __future__ import annotations

from configs.errors import ConfigError
from configs.schema import TrainConfig
from envs.dmlab_checks import check_dmlab30_run
from envs.suites import Suite, get_suite


def resolve_suite(cfg: TrainConfig) -> tuple[Suite, list[int]]:
    """``(suite, task ids)`` of ``cfg.env`` (``env.tasks`` empty: every task, in task-id order); for
    DMLab-30 also the engine, the dataset and the CPUs the actors need (``envs.dmlab_checks``).
    ``ConfigError`` (one line naming the value and the fix) before any work."""
    try:
        suite = get_suite(cfg.env.suite, **cfg.env.options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"env.suite={cfg.env.suite!r} with env.options={cfg.env.options}: {e}") from None
    names = [t.name for t in suite.tasks]
    for name in cfg.env.tasks:
        if name not in names:
            hint = "; set env.options.cued=true for the cued pair" if name.endswith("_cued") else ""
            raise ConfigError(f"env.tasks names {name!r}, which is not a task of suite {cfg.env.suite!r}; "
                              f"its tasks are: {', '.join(names)}{hint}")
    task_ids = [names.index(n) for n in cfg.env.tasks] if cfg.env.tasks else list(range(len(names)))
    if cfg.env.suite == "dmlab30":
        try:
            check_dmlab30_run([names[i] for i in task_ids], dataset_path=cfg.env.options.get("dataset_path"),
                              num_actors=cfg.actors.num_actors, cpus_per_actor=cfg.actors.cpus_per_actor,
                              ray_address=cfg.run.ray_address, oversubscribe=cfg.actors.oversubscribe)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return suite, task_ids
