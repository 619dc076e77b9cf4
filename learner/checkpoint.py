"""Atomic, verified checkpoints: ``ckpt-<updates>.pt`` in ``<logdir>/checkpoints``.

A checkpoint is a plain ``torch.save`` file that ``torch.load(path)`` opens with torch's
default ``weights_only=True``: it holds only tensors, plain containers, numbers, strings
and ``bytes`` (what a resume needs beyond that, e.g. serial-mode env states, is stored as
``pickle`` bytes by its owner). Its SHA-256 is in the sidecar ``ckpt-<updates>.pt.sha256``
(``sha256sum`` format, so ``sha256sum -c`` checks it too).

Both files are written to temporary files in the same directory, flushed and fsynced, then
renamed over their final names (``os.replace`` is atomic; the sidecar first), so a crash or a
full disk never leaves a half-written file under a checkpoint's name. On load, a checkpoint
whose hash does not match its sidecar (or that has none, or does not unpickle) is reported
and the previous one is used. Temporary files left by a killed save are removed by
``remove_partial_saves()`` (called when a run starts). Files of the earlier format
(``MAGIC | sha256 | payload`` in one file) are still read.
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

LEGACY_MAGIC = b"IMPALAMU-CKPT-1\n"
HASH_SUFFIX = ".sha256"
TMP_PREFIX = ".tmp-ckpt-"
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
        digest = f"{hashlib.sha256(payload).hexdigest()}  {final.name}\n".encode()
        tmps = []
        try:
            tmp_hash = _write_synced(self.directory, digest, tmps)
            tmp_payload = _write_synced(self.directory, payload, tmps)
            os.replace(tmp_hash, sidecar(final))
            os.replace(tmp_payload, final)
        except BaseException:
            for tmp in tmps:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            raise
        _fsync_dir(self.directory)
        for old in self.paths()[:-self.keep]:
            old.unlink(missing_ok=True)
            sidecar(old).unlink(missing_ok=True)
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

    def remove_partial_saves(self) -> list[str]:
        """Deletes what a killed save can leave: temporary files and sidecars without a checkpoint.
        Returns the names removed."""
        if not self.directory.is_dir():
            return []
        removed = []
        for p in sorted(self.directory.iterdir()):
            orphan = p.name.endswith(HASH_SUFFIX) and _NAME.match(p.name[:-len(HASH_SUFFIX)]) \
                and not p.with_name(p.name[:-len(HASH_SUFFIX)]).exists()
            if p.is_file() and (p.name.startswith(TMP_PREFIX) or orphan):
                p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed


def sidecar(path: str | os.PathLike) -> Path:
    """The hash file of checkpoint ``path``."""
    path = Path(path)
    return path.with_name(path.name + HASH_SUFFIX)


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint after checking its hash; ``CorruptCheckpoint`` if it is unusable."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(LEGACY_MAGIC):
        digest, payload = data[len(LEGACY_MAGIC):len(LEGACY_MAGIC) + 32], data[len(LEGACY_MAGIC) + 32:]
        if hashlib.sha256(payload).digest() != digest:
            raise CorruptCheckpoint("content hash mismatch (truncated or overwritten file)")
        return _unpickle(payload, weights_only=False)   # the old format held numpy arrays
    try:
        expected = sidecar(path).read_text().split()[0]
    except (OSError, IndexError):
        raise CorruptCheckpoint(f"its hash file {sidecar(path).name} is missing or empty") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise CorruptCheckpoint("content hash mismatch (truncated or overwritten file)")
    return _unpickle(data, weights_only=True)


def _unpickle(payload: bytes, weights_only: bool) -> dict[str, Any]:
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CorruptCheckpoint(f"cannot unpickle: {e}") from e


def _write_synced(directory: Path, data: bytes, created: list[str]) -> str:
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    created.append(tmp)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
