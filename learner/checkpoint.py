"""The checkpoint format's one owner: atomic, verified ``ckpt-<updates>.pt`` files in
``<logdir>/checkpoints`` (``checkpoint_dir``), the newest of a run (``latest``), and the upgrade of
older checkpoints' contents to this code's form (``upgrade``).

A checkpoint is a plain ``torch.save`` file that ``torch.load(path)`` opens with torch's
default ``weights_only=True``: it holds only tensors, plain containers, numbers, strings
and ``bytes``; every read here uses ``weights_only=True`` too, so opening a checkpoint never
runs code from it (the threat model is in docs/TESTING.md). The one part of a resume with no
plain-data form, serial-mode env states, is stored by its owner as bytes sealed with this
user's key (``actors/env_state.py``); nothing else in a checkpoint is ever unpickled.
Its SHA-256 is in the sidecar ``ckpt-<updates>.pt.sha256`` (``sha256sum`` format, so
``sha256sum -c`` checks it too).

Writing. Both files go to temporary files in the same directory (created with the umask's
mode, so a teammate can read a shared run), flushed and fsynced, then renamed over their
final names (``os.replace`` is atomic). A fresh name gets its sidecar first, then the
payload. Re-saving under an existing name (a periodic then a final save at the same update)
first installs a sidecar listing both the old and the new hash, then the payload, then the
new hash alone: a kill between any two file operations leaves the old pair or the new pair
verifiable (a sidecar killed in that state lists both hashes: ``sha256sum -c`` then reports one of
its two lines as FAILED, and the loader accepts the file if it matches either). A crash or a full disk never leaves a half-written file under a checkpoint's name.

Retention keeps the newest ``keep`` *verifiable* checkpoints: a corrupt one (hash mismatch,
no sidecar) is renamed aside to ``<name>.corrupt`` with its sidecar and never counted, and
the file just written is never pruned. On load, a corrupt checkpoint is reported and the
previous one used; if every one is corrupt, or one cannot be read (permissions), a
``CheckpointError`` says so in one line. Temporary files left by a killed save are removed by
``remove_partial_saves()`` (called when a run starts).

Files of the earlier single-file format (``LEGACY_MAGIC | sha256 | payload``) could hold
arbitrary pickled objects (they need ``weights_only=False``): they are refused in one line
unless the caller passes ``trust=True`` (``--trust-checkpoint`` on the command line), which
the user should do only for files they wrote themselves.
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

from agent.multiplicative import PARAMETRIZATION as MI_PARAMETRIZATION
from agent.multiplicative import upgrade_state_dict as upgrade_mi_state_dict
from envs.suites import get_suite

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"          # a run's checkpoints: <logdir>/checkpoints/ckpt-<updates>.pt

LEGACY_MAGIC = b"IMPALAMU-CKPT-1\n"
HASH_SUFFIX = ".sha256"
CORRUPT_SUFFIX = ".corrupt"
TMP_PREFIX = ".tmp-ckpt-"
TRUST_FLAG = "--trust-checkpoint"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line naming the file and the fix."""


class CorruptCheckpoint(CheckpointError):
    pass


class UntrustedCheckpoint(CheckpointError):
    """The file would need unpickling arbitrary objects (code) to load: refused unless trusted."""


class UnreadableCheckpoint(CheckpointError):
    """The file exists but this user cannot read it (e.g. permissions)."""


def checkpoint_dir(logdir: str | os.PathLike) -> Path:
    """Where the run in ``logdir`` keeps its checkpoints."""
    return Path(logdir) / CHECKPOINT_DIR


def latest(logdir: str | os.PathLike, trust: bool = False) -> tuple[dict[str, Any], Path] | None:
    """The run's newest readable checkpoint ``(state, path)`` (``Checkpointer.load_latest``); None if none."""
    return Checkpointer(checkpoint_dir(logdir)).load_latest(trust=trust)


def upgrade(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """A checkpoint's state in this code's form (a shallow copy; ``state`` is not changed), and
    ``{parameter name: factor}`` of the model parameters that were rescaled (empty: none).

    * no ``"mi_parametrization"`` (before the MI layer's 1/C context scale, agent/multiplicative.py):
      the MI parameters are rescaled so that the function is unchanged; the optimizer state needs
      the same ``factors`` (``learner.optim.rescale_optimizer_state``);
    * no ``"agent_spec"`` (format 1): taken from the suite the saved config names;
    * no reporter ``unrolls_used`` / ``unrolls_dropped`` counts (format 1): 0.
    Pickled entries of format 2 (``batcher``, ``rng``) are left as they are: opening them needs trust
    (``training.loop.check_trusted``)."""
    state = dict(state)
    if "learner" in state:
        model = dict(state["learner"]["model"])
        factors = upgrade_mi_state_dict(model, "head.mi.", state.get("mi_parametrization", 1))
        state["learner"] = dict(state["learner"], model=model)
    else:
        factors = {}
    state["mi_parametrization"] = MI_PARAMETRIZATION
    if state.get("agent_spec") is None and "config" in state:
        env = state["config"]["env"]
        suite = get_suite(env["suite"], **env.get("options", {}))
        state["agent_spec"] = {"num_actions": suite.num_actions, "num_tasks": suite.num_tasks,
                               "frame_shape": list(suite.frame_shape), "instruction_length": suite.instruction_length}
    if isinstance(state.get("reporter"), dict):
        state["reporter"] = {"unrolls_used": 0, "unrolls_dropped": 0, **state["reporter"]}
    return state, factors


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
        """Writes ``state`` as ``ckpt-<updates>.pt`` (see the module docstring for the order of the
        file operations), then prunes; returns the path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getvalue()
        final = self.directory / f"ckpt-{updates:010d}.pt"
        new_line = f"{hashlib.sha256(payload).hexdigest()}  {final.name}\n"
        old_hashes = _verified_hashes(final)       # re-saving under a verifiable name: keep it valid throughout
        tmps: list[str] = []
        try:
            tmp_payload = _write_synced(self.directory, payload, tmps)
            if old_hashes:
                both = new_line + "".join(f"{h}  {final.name}\n" for h in old_hashes)
                os.replace(_write_synced(self.directory, both.encode(), tmps), sidecar(final))
                os.replace(tmp_payload, final)
                os.replace(_write_synced(self.directory, new_line.encode(), tmps), sidecar(final))
            else:
                os.replace(_write_synced(self.directory, new_line.encode(), tmps), sidecar(final))
                os.replace(tmp_payload, final)
        except BaseException:
            for tmp in tmps:
                try:
                    os.unlink(tmp)
                except OSError:      # gone (renamed) or undeletable: never hide the real error
                    pass
            raise
        _fsync_dir(self.directory)
        self.prune(final)
        return final

    def prune(self, just_written: Path | None = None) -> None:
        """Keeps the newest ``keep`` verifiable checkpoints (never ``just_written``); corrupt ones
        are renamed aside to ``.corrupt`` (with their sidecar), not deleted and not counted."""
        good = []
        for path in self.paths():
            if path == just_written or verify(path):
                good.append(path)
            elif not os.access(path, os.R_OK):
                continue                     # not ours to judge: left alone, not counted
            else:
                moved = set_aside(path)
                log.warning("checkpoint %s is corrupt; renamed to %s", path, moved.name)
        for old in good[:-self.keep]:
            if old != just_written:
                old.unlink(missing_ok=True)
                sidecar(old).unlink(missing_ok=True)

    def load_latest(self, trust: bool = False) -> tuple[dict[str, Any], Path] | None:
        """The newest readable checkpoint, skipping (and reporting) corrupt ones; None if there is none.
        ``UnreadableCheckpoint`` / ``UntrustedCheckpoint`` stop the search (the newest state is there
        but may not be used); ``CorruptCheckpoint`` if every one is corrupt."""
        paths = self.paths()
        for path in reversed(paths):
            try:
                return load_file(path, trust=trust), path
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


def set_aside(path: Path) -> Path:
    """Renames a checkpoint and its sidecar to ``<name>.corrupt`` (``.corrupt-2``, ... if taken)."""
    target, n = path.with_name(path.name + CORRUPT_SUFFIX), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}-{n}")
    if sidecar(path).exists():
        os.replace(sidecar(path), target.with_name(target.name.replace(CORRUPT_SUFFIX, HASH_SUFFIX + CORRUPT_SUFFIX)))
    os.replace(path, target)
    return target


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError as e:
        raise UnreadableCheckpoint(f"cannot read checkpoint {path} ({e.strerror}); ask its owner to make it "
                                   f"readable (chmod a+r {path} {sidecar(path)}) or copy it") from None


def _sidecar_hashes(path: Path) -> list[str]:
    """The hashes the sidecar lists for ``path`` (two while a same-name re-save is under way)."""
    try:
        text = sidecar(path).read_text()
    except PermissionError as e:
        raise UnreadableCheckpoint(f"cannot read {sidecar(path)} ({e.strerror}); ask its owner to make it "
                                   f"readable (chmod a+r)") from None
    except (OSError, UnicodeDecodeError):
        return []
    return [parts[0] for parts in (line.split() for line in text.splitlines())
            if len(parts) == 2 and parts[1] == path.name]


def _check_hash(path: Path, data: bytes) -> str | None:
    """None if ``data`` (the file at ``path``) is verifiable, else why not."""
    if data.startswith(LEGACY_MAGIC):
        digest, payload = data[len(LEGACY_MAGIC):len(LEGACY_MAGIC) + 32], data[len(LEGACY_MAGIC) + 32:]
        return None if hashlib.sha256(payload).digest() == digest else \
            "content hash mismatch (truncated or overwritten file)"
    expected = _sidecar_hashes(path)
    if not expected:
        return f"its hash file {sidecar(path).name} is missing or empty"
    if hashlib.sha256(data).hexdigest() not in expected:
        return "content hash mismatch (truncated or overwritten file)"
    return None


def verify(path: str | os.PathLike) -> bool:
    """Whether the checkpoint's content matches its hash (nothing is unpickled)."""
    path = Path(path)
    try:
        return _check_hash(path, path.read_bytes()) is None
    except (OSError, CheckpointError):
        return False


def _verified_hashes(path: Path) -> list[str]:
    """The sidecar hash matching the file at ``path`` (a one-element list), or [] if it is not verifiable."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return [digest] if digest in _sidecar_hashes(path) else []
    except (OSError, CheckpointError):
        return []


def load_file(path: str | os.PathLike, trust: bool = False) -> dict[str, Any]:
    """Reads a checkpoint after checking its hash, with ``torch.load(weights_only=True)``.

    Raises ``CorruptCheckpoint`` if it is unusable, ``UnreadableCheckpoint`` if this user cannot
    read it, ``UntrustedCheckpoint`` for the earlier single-file format unless ``trust`` (which
    unpickles it with ``weights_only=False``: only for files the user wrote)."""
    path = Path(path)
    data = _read(path)
    why = _check_hash(path, data)
    if why is not None:
        raise CorruptCheckpoint(why)
    if data.startswith(LEGACY_MAGIC):
        if not trust:
            raise UntrustedCheckpoint(
                f"{path} is in the old single-file checkpoint format, which can run code when opened; "
                f"if you wrote it yourself, load it with {TRUST_FLAG} (Python: trust=True)")
        return _unpickle(data[len(LEGACY_MAGIC) + 32:], weights_only=False)   # it held numpy arrays
    return _unpickle(data, weights_only=True)


def _unpickle(payload: bytes, weights_only: bool) -> dict[str, Any]:
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        text = " ".join(str(e).split())[:300]
        raise CorruptCheckpoint(f"cannot unpickle: {type(e).__name__}: {text}") from e


def _umask() -> int:
    """The process umask, read without changing it (``/proc``; else set-and-restore)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_synced(directory: Path, data: bytes, created: list[str]) -> str:
    """A fsynced temporary file in ``directory`` holding ``data``, with the mode a plain ``open``
    would give (``0o666 & ~umask``, not mkstemp's 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    created.append(tmp)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o666 & ~_umask())
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
