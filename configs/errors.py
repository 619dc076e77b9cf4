"""The run-level errors every layer may raise before any work starts. Standard library only.

``launch.exit_status`` maps them to the command's exit status in one place: a
``ConfigError`` (or any other ``ValueError``) is status 2, ``configs.run_lock.LockHeld`` (another
process holds the directory) and ``training.loop.TrainingError`` are status 1.
"""


class ConfigError(ValueError):
    """A config this code cannot run, refused before anything is written (one-line message naming
    the bad value and the fix)."""
