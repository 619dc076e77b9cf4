"""Atomic, verified checkpoints: ``ckpt-<updates>.pt`` in ``<logdir>/checkpoints``.

A file is ``MAGIC | sha256(payload) | payload`` where payload is ``torch.save`` of a dict.
It is written to a temporary file in the same directory, flushed and fsynced, then
renamed over its final name (``os.replace`` is atomic), so a crash or a full disk never
leaves a half-written file under a checkpoint's name. On load, a file whose hash does
not match (or that does not unpickle) is reported and the previous checkpoint is used.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

MAGIC = b"IMPALAMU-CKPT-1\n"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CorruptCheckpoint(Exception):
    pass


class Checkpointer:
    def __init__(self, directory: str | os.PathLike, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1")
        self.directory = Path(directory)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first (by update count)."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict[str, Any], updates: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getvalue()
        final = self.directory / f"ckpt-{updates:010d}.pt"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-ckpt-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC)
                f.write(hashlib.sha256(payload).digest())
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(self.directory)
        for old in self.paths()[:-self.keep]:
            old.unlink(missing_ok=True)
        return final

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest readable checkpoint, skipping (and reporting) corrupt ones; None if there is none."""
        paths = self.paths()
        for path in reversed(paths):
            try:
                return load_file(path), path
            except CorruptCheckpoint as e:
                log.warning("checkpoint %s is corrupt (%s); trying the previous one", path, e)
        if paths:
            raise CorruptCheckpoint(f"every checkpoint in {self.directory} is corrupt "
                                    f"({', '.join(p.name for p in paths)}); move them away to start afresh")
        return None


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise CorruptCheckpoint("not an impala-mu checkpoint (bad header)")
    digest, payload = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptCheckpoint("content hash mismatch (truncated or overwritten file)")
    try:
        # Our own files (verified above); they hold numpy arrays and RNG states, hence weights_only=False.
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CorruptCheckpoint(f"cannot unpickle: {e}") from e


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
