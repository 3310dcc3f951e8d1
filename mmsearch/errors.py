"""Exit codes and the one exception type the CLI turns into a clean one-line error.

Exit codes are part of the public interface (cron jobs and CI branch on them), so
they live in one place and the README documents exactly these values.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the command could not do its job (unreadable CSV, missing index, ...)
    USAGE = 2  # bad command line (Typer/Click's own code for usage errors)
    PARTIAL = 3  # the job finished, but some rows or files were rejected or skipped
    BELOW_THRESHOLD = 4  # eval --fail-under: a metric is below its bar
    LOCKED = 5  # another writer holds the store lock


class MMSearchError(Exception):
    """An error with a message meant for the user and the exit code to leave with."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, exit_code: ExitCode | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class StoreLockedError(MMSearchError):
    exit_code = ExitCode.LOCKED
