"""What a checkpoint records about the code and the task set that wrote it, and the resume checks on it.

Saved in every checkpoint (``training/loop.py``): ``format`` (``CHECKPOINT_FORMAT``), ``code_version``
(``{"package": "0.1.0", "git": "<commit>" or None}``) and ``identity``: the suite's task names in
task-id order (the multihead / taskid_mi heads index their weights by task id) and the instruction
encoding (word ids, ``envs/instructions.py``). On resume ``resume_problems`` names what makes the
checkpoint unusable (a newer format, another task order or encoding, config keys this code does
not know: ``configs.schema.unknown_config_keys``); ``configs.schema.defaults_used`` lists the config
fields the checkpoint lacks, which take this code's defaults (so a changed default is visible in the
``resume`` event).
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from envs.suites import Suite

CHECKPOINT_FORMAT = 3    # 3: no pickled entries; 2: batcher and rng as pickle bytes; 1: no agent_spec


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str | None]:
    """This code's package version and git commit (None outside a git checkout)."""
    try:
        package = importlib.metadata.version("impala-mu")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package": package, "git": commit or None}


def run_identity(suite: Suite) -> dict[str, Any]:
    """The suite's task names in task-id order and its instruction encoding id."""
    return {"task_names": list(suite.task_names),
            "instruction_encoding": f"crc32-buckets{suite.instruction_vocabulary}-words{suite.instruction_length}"}


def resume_problems(state: Mapping[str, Any], identity: Mapping[str, Any], unknown_keys: Sequence[str]) -> list[str]:
    """Why a checkpoint cannot be resumed by this code for this suite (empty: it can); ``unknown_keys``:
    its config's keys this code's schema lacks (``configs.schema.unknown_config_keys``)."""
    problems = []
    fmt = state.get("format", 1)
    if not isinstance(fmt, int) or fmt > CHECKPOINT_FORMAT:
        problems.append(f"it has checkpoint format {fmt!r}, newer than this code's {CHECKPOINT_FORMAT} "
                        f"(written by impala-mu {(state.get('code_version') or {}).get('package', '?')}); "
                        f"update this code")
    saved = state.get("identity") or {}
    if "task_names" in saved and list(saved["task_names"]) != list(identity["task_names"]):
        problems.append(f"its suite's tasks (in task-id order) were {list(saved['task_names'])} but are now "
                        f"{list(identity['task_names'])}: the task ids would mean other tasks")
    if "instruction_encoding" in saved and saved["instruction_encoding"] != identity["instruction_encoding"]:
        problems.append(f"its instruction encoding was {saved['instruction_encoding']!r} but is now "
                        f"{identity['instruction_encoding']!r}: word ids would mean other words")
    if unknown_keys:
        problems.append(f"its config has keys this code does not know ({', '.join(unknown_keys)}): written by newer "
                        f"code; update this code")
    return problems
