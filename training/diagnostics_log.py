"""Writing the head diagnostics (``agent.diagnostics``): ``diagnostics.jsonl`` and TensorBoard.

Formats: docs/EVALUATION.md ("Head diagnostics"). Rows and columns of the similarity matrix are
the trained tasks in task-id order; non-finite values (tasks absent from the batch) become null.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from agent.diagnostics import HeadDiagnostics, probe_accuracy

NAN_GREY = (160, 160, 160)


def diagnostics_record(diag: HeadDiagnostics, task_names: Sequence[str], task_ids: Sequence[int],
                       frames: int, updates: int, time: float) -> dict[str, Any]:
    """The ``diagnostics.jsonl`` object (copies the tensors to the host: call it at report time)."""
    ids = list(task_ids)
    samples = diag.samples.cpu().numpy()[ids]
    context = diag.context_norm.cpu().numpy()[ids]
    weight = diag.generated_weight_norm.cpu().numpy()[ids]
    similarity = diag.similarity.cpu().numpy()[np.ix_(ids, ids)]
    names = [task_names[t] for t in ids]
    return {
        "time": time, "frames": frames, "updates": updates, "head": diag.head, "mi_form": diag.mi_form,
        "tasks": names,
        "samples": {n: int(v) for n, v in zip(names, samples)},
        "context_norm": {n: _number(v) for n, v in zip(names, context)},
        "generated_weight_norm": {n: _number(v) for n, v in zip(names, weight)},
        "context_similarity": [[_number(v) for v in row] for row in similarity],
        **task_inference_fields(diag, ids),
    }


def task_inference_fields(diag: HeadDiagnostics, ids: Sequence[int]) -> dict[str, Any]:
    """``context_similarity_before_reward`` / ``_after_reward`` (``[K, K]``, null where undefined) and
    ``probe_accuracy`` / ``probe_chance`` (agent.diagnostics.probe_accuracy); {} if the diagnostics lack them."""
    if diag.contexts is None:
        return {}
    fields: dict[str, Any] = {}
    for key, matrix in (("context_similarity_before_reward", diag.similarity_before_reward),
                        ("context_similarity_after_reward", diag.similarity_after_reward)):
        values = matrix.cpu().numpy()[np.ix_(ids, ids)]
        fields[key] = [[_number(v) for v in row] for row in values]
    accuracy, chance = probe_accuracy(diag.contexts.float().cpu().numpy(), diag.task_id.cpu().numpy())
    fields["probe_accuracy"], fields["probe_chance"] = _number(accuracy), _number(chance)
    return fields


def write_tensorboard(writer: Any, record: dict[str, Any], step: int) -> None:
    for name in record["tasks"]:
        for key in ("context_norm", "generated_weight_norm"):
            if record[key][name] is not None:
                writer.add_scalar(f"diagnostics/{name}/{key}", record[key][name], step)
    writer.add_image("diagnostics/context_similarity", similarity_image(record["context_similarity"]), step,
                     dataformats="HWC")
    writer.add_text("diagnostics/context_similarity", similarity_markdown(record), step)


def similarity_image(matrix: Sequence[Sequence[float | None]], size: int = 240) -> np.ndarray:
    """A K x K matrix in [-1, 1] as a uint8 ``[H, W, 3]`` heat map: -1 blue, 0 white, +1 red, null grey."""
    k = len(matrix)
    cell = max(4, size // max(k, 1))
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], np.float64).reshape(k, k)
    v = np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0)[..., None]
    white, red, blue = np.ones(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    rgb = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    rgb = np.where(np.isnan(values)[..., None], np.array(NAN_GREY) / 255.0, rgb)
    return np.repeat(np.repeat((rgb * 255).round().astype(np.uint8), cell, 0), cell, 1)


def similarity_markdown(record: dict[str, Any]) -> str:
    names = record["tasks"]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, record["context_similarity"]):
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines)


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
