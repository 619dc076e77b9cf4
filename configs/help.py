"""Field descriptions read from the schema's source, and the config reference that ``--help`` prints.

Each config field is documented once, by the trailing comment on its line in its dataclass
(``configs/schema.py``, ``agent/config.py``, ``learner/config.py``), or by the comment lines right
above it when a line is not enough::

    batch_size: int = 32                 # unrolls per learner update (B)

``field_descriptions(cls)`` reads those comments with ``ast`` (where each field is) and ``tokenize``
(the comments), so the help text cannot drift from the schema; a field without a comment is an
error (tested).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
from typing import Any

from configs.schema import DEFAULT_CONFIG, SECTIONS, SHORT_KEYS, TrainConfig, load_config


@functools.lru_cache(maxsize=None)
def field_descriptions(cls: type) -> dict[str, str]:
    """``{field name: its trailing comment}`` for the dataclass ``cls`` (missing comments: no entry).

    A comment on any physical line of the field's declaration counts (a long default may wrap);
    a field without one takes the block of comment lines right above it.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = ast.parse(source).body[0]
    found = {}
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            parts = [comments[line] for line in range(node.lineno, node.end_lineno + 1) if line in comments]
            if not parts:                       # else a block of comment lines right above the field
                line = node.lineno - 1
                while line in comments and lines[line - 1].lstrip().startswith("#"):
                    parts.insert(0, comments[line])
                    line -= 1
            if parts:
                found[node.target.id] = " ".join(parts)
    return found


def describe_fields() -> list[tuple[str, str]]:
    """``[(section.field, description)]`` for every field of the config tree, in schema order."""
    rows = []
    for section, cls in SECTIONS.items():
        docs = field_descriptions(cls)
        for f in dataclasses.fields(cls):
            rows.append((f"{section}.{f.name}", docs.get(f.name, "")))
    return rows


def config_reference(config: TrainConfig | None = None) -> str:
    """Every field with its default and description, one line each, grouped by section.

    The default shown is the value of ``config`` (by default ``configs/embedded.yaml``, what
    ``launch.py train`` uses without ``--config``); where the dataclass default differs, it is shown
    too (what a config file that omits the field gets).
    """
    config = config if config is not None else load_config(DEFAULT_CONFIG)
    schema = TrainConfig()
    short = {full: key for key, full in SHORT_KEYS.items()}
    rows = []
    for key, description in describe_fields():
        section, name = key.split(".", 1)
        value = getattr(getattr(config, section), name)
        built_in = getattr(getattr(schema, section), name)
        shown = _show(value) if value == built_in else f"{_show(value)} (schema: {_show(built_in)})"
        label = f"{key} ({short[key]})" if key in short else key
        rows.append((section, label, shown, description))
    width = max(len(r[1]) for r in rows)
    vwidth = min(max(len(r[2]) for r in rows), 28)
    lines = []
    for section in SECTIONS:
        lines.append(f"{section}:")
        for s, label, shown, description in rows:
            if s == section:
                lines.append(f"  {label:<{width}}  {shown:<{vwidth}}  {description}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}" if value else "{}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:_}"
    return str(value)
