"""Serial-mode env states in a checkpoint, sealed so that only this user's own checkpoints restore them.

An exact serial resume needs the envs themselves (gymnasium envs, their RNGs, the episode in
progress). Arbitrary env objects have no plain-data form, so they are pickled, and unpickling
runs code: a checkpoint from someone else must never get there. The bytes are therefore sealed
with an HMAC-SHA256 keyed by a per-user secret, ``$XDG_CONFIG_HOME/impala-mu/checkpoint.key``
(default ``~/.config``; 32 random bytes, created 0600 in a 0700 directory on first use).
``unseal`` unpickles only bytes whose HMAC this user's key reproduces, i.e. bytes this user's
own runs wrote; anything else (a run dir copied from a teammate, a crafted file) is not
unpickled and the resume starts new episodes, reported as ``resume_not_exact`` (the same path
as DeepMind Lab's envs, which cannot be pickled at all). ``trust=True`` (``--trust-checkpoint``)
unpickles unsigned bytes too: only for files whose author the user trusts as they would trust code.

Why not refuse: the model, optimizer and counters load as plain tensors either way; what is
lost is only the exactness of the replay, which the event says. A key file that another user
could read or write (wrong owner or mode) is not used: nothing is signed or unsealed with it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from pathlib import Path
from typing import Any

KEY_BYTES = 32


class UnsealError(Exception):
    """Sealed bytes that may not be unpickled; the message says why in one line."""


def key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "impala-mu" / "checkpoint.key"


def user_key(create: bool = True) -> bytes | None:
    """This user's secret (created if ``create`` and absent); None if unusable (not ours, or readable by others)."""
    path = key_path()
    if create and not path.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
        except FileExistsError:
            pass                          # another process of ours created it first
        except OSError:
            return None
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        key = path.read_bytes()
    except OSError:
        return None
    return key if len(key) == KEY_BYTES else None


def seal(obj: Any) -> tuple[bytes, str | None]:
    """``(pickle bytes, HMAC-SHA256 hex)``; the HMAC is None if this user has no usable key."""
    data = pickle.dumps(obj)
    key = user_key()
    return data, (hmac.new(key, data, hashlib.sha256).hexdigest() if key else None)


def unseal(data: bytes, mac: str | None, trust: bool = False) -> Any:
    """The object in ``data`` if this user's key signed it (or ``trust``); else ``UnsealError``."""
    if not trust:
        key = user_key(create=False)
        if key is None:
            raise UnsealError(f"no usable key at {key_path()} to check who wrote them")
        if not isinstance(mac, str) or not hmac.compare_digest(
                hmac.new(key, data, hashlib.sha256).hexdigest(), mac):
            raise UnsealError(f"they are not signed with this user's key ({key_path()}): written by another "
                              f"user or machine, or altered; --trust-checkpoint restores them anyway")
    return pickle.loads(data)
