"""The run-level errors, and the one place they become exit statuses. Standard library only.

``exit_status`` maps an error to the command's exit status: a ``ConfigError`` (or any other
``ValueError``: a request refused before any work) is status 2; ``configs.run_lock.LockHeld``
(another process holds the directory) and ``TrainingError`` are status 1. ``run_command`` runs a
command and prints such an error as one line (``launch.py`` and ``python -m training``).
"""
from __future__ import annotations

import sys
from typing import Callable

from configs.run_lock import LockHeld


class ConfigError(ValueError):
    """A config this code cannot run, refused before anything is written (one-line message naming
    the bad value and the fix)."""


class TrainingError(RuntimeError):
    """Training stopped on an error; the message is one line, ``checkpoint`` the final one written (or None)."""

    def __init__(self, message: str, checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


def exit_status(error: BaseException) -> int | None:
    """1 when another process holds the directory (``LockHeld``) or training failed (``TrainingError``),
    2 for a request refused before any work (``ValueError``: ``ConfigError``, ``EvaluationError``,
    ``GridError``, ``ReportError``, a bad override); None for anything else (a bug: its traceback is shown)."""
    if isinstance(error, (LockHeld, TrainingError)):
        return 1
    return 2 if isinstance(error, ValueError) else None


def run_command(command: Callable[[], int]) -> int:
    """``command()``'s exit status; an error ``exit_status`` knows is printed as ``error: <message>``."""
    try:
        return command()
    except Exception as e:  # noqa: BLE001 - mapped below; anything else is re-raised
        status = exit_status(e)
        if status is None:
            raise
        print(f"error: {e}", file=sys.stderr)
        return status
