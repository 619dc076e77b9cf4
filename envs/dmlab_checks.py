"""Checks a DMLab-30 run's config before any work starts (called by ``launch.py``).

A DMLab-30 run that cannot work should stop at once with one line that says the fix, not
after Ray started and the first actor crashed. ``check_dmlab30_run`` refuses:

* a Python without ``deepmind_lab`` (the message says how to build it);
* the psychlab levels that need the Brady-Konkle-Oliva image dataset
  (``DATASET_LEVELS``) when ``dataset_path`` is unset, or set to a folder that does not exist
  (``"dummy"`` is the engine's synthetic stand-in and is accepted);
* the ``natlab_*`` levels when the installed build lacks their maps (a build from the offline
  archives: the engine would end the whole process at the first reset, "Didn't find map");
* more local actors than CPUs (``num_actors x cpus_per_actor > os.cpu_count()``) when no
  ``ray_address`` is given, unless ``actors.oversubscribe`` allows it: 150 DMLab processes on
  one machine thrash rather than train.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Sequence

from envs.dmlab import INSTALL_HINT

# Levels that read the dataset at ``datasetPath`` (DMLab-30 facts; upstream fails without it).
DATASET_LEVELS = ("psychlab_arbitrary_visuomotor_mapping", "psychlab_continuous_recognition")
DUMMY_DATASET = "dummy"
# The maps each natlab level draws its episodes from (its level script, lab b1db91a).
NATLAB_MAPS: dict[str, tuple[str, ...]] = {
    "natlab_fixed_large_map": ("natlab_forage_ltm_dawn", "natlab_forage_ltm_day", "natlab_forage_ltm_night"),
    "natlab_varying_map_regrowth": tuple(f"natlab_forage_stm_{i:03d}" for i in range(100)),
    "natlab_varying_map_randomized": tuple(f"natlab_forage_variable_{i:03d}" for i in range(100)),
}


def deepmind_lab_importable() -> bool:
    """True when ``import deepmind_lab`` can find the module (without importing the engine)."""
    return importlib.util.find_spec("deepmind_lab") is not None


def missing_maps(level: str) -> list[str]:
    """The maps ``level`` may load that the installed ``deepmind_lab`` lacks ([] if none or unknown)."""
    spec = importlib.util.find_spec("deepmind_lab")
    if spec is None or level not in NATLAB_MAPS:
        return []
    package = os.path.dirname(spec.origin or "")
    maps = os.path.join(package, "baselab", "maps")
    return [name for name in NATLAB_MAPS[level] if not os.path.exists(os.path.join(maps, name + ".bsp"))]


def check_dmlab30_run(levels: Sequence[str], *, dataset_path: str | None, num_actors: int,
                      cpus_per_actor: float, ray_address: str | None, oversubscribe: bool,
                      cpu_count: int | None = None, engine_available: bool | None = None) -> None:
    """Raises ``ValueError`` (one line: what is wrong and the fix) for a run that cannot work.

    ``levels``: the trained DMLab-30 short names. ``cpu_count`` / ``engine_available`` default
    to this machine's (tests pass them).
    """
    if engine_available is None:
        engine_available = deepmind_lab_importable()
    if not engine_available:
        raise ValueError(INSTALL_HINT)
    needing = [level for level in levels if level in DATASET_LEVELS]
    if needing and dataset_path is None:
        raise ValueError(
            f"{', '.join(needing)} need the Brady-Konkle-Oliva image dataset: set "
            f"env.options.dataset_path=/path/to/dataset (or ={DUMMY_DATASET} for the engine's synthetic "
            "stand-in, which changes these levels), or leave them out with env.tasks=[...]")
    if needing and dataset_path != DUMMY_DATASET and not os.path.isdir(dataset_path):
        raise ValueError(f"env.options.dataset_path={dataset_path!r} is not a folder; mount the dataset "
                         "there (Docker: -v /host/dataset:/data/psychlab) or fix the path")
    incomplete = {level: missing_maps(level) for level in levels}
    incomplete = {level: maps for level, maps in incomplete.items() if maps}
    if incomplete:
        raise ValueError(
            f"{', '.join(incomplete)} need maps this DeepMind Lab build lacks (e.g. "
            f"{next(iter(incomplete.values()))[0]}.bsp; built from the offline archives, see docs/DMLAB.md): "
            "rebuild with scripts/build_dmlab.sh --online, or leave them out with env.tasks=[...]")
    cpus = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    need = num_actors * cpus_per_actor
    if not ray_address and need > cpus and not oversubscribe:
        raise ValueError(
            f"num_actors={num_actors} x cpus_per_actor={cpus_per_actor:g} needs {need:g} CPUs but this "
            f"machine has {cpus} and no ray_address is set: lower num_actors (e.g. num_actors={max(1, cpus)}), "
            "join a cluster with ray_address=..., or allow it with actors.oversubscribe=true")
