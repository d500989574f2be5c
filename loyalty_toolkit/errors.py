"""The one exception tree of the toolkit.

Every error the user can cause is a :class:`LoyaltyError`. It carries where it happened (stage,
file, line, column) so the CLI can print one line that points at the cause, never a traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class LoyaltyError(Exception):
    """Base class: a problem with the migration the user can act on.

    ``exit_code`` is what the CLI exits with: 2 for bad config, input or usage, 1 for a gate.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.field = field

    def location(self) -> str:
        """``file:line: column X: field`` with whatever parts are known."""
        parts: list[str] = []
        if self.file:
            where = Path(self.file).name if len(str(self.file)) > 60 else str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            parts.append(where)
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts)

    def one_line(self) -> str:
        """The message the CLI prints: stage, location and cause on a single line."""
        prefix = f"[{self.stage}] " if self.stage else ""
        loc = self.location()
        text = f"{loc}: {self.message}" if loc else self.message
        return prefix + " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(LoyaltyError):
    """The migration config is invalid: names the config file and the field."""


class InputError(LoyaltyError):
    """An input file cannot be read as declared: names the file, line and column."""


class UsageError(LoyaltyError):
    """The command was called wrongly (unknown stage, missing run dir, ...)."""


class GateFailed(LoyaltyError):
    """A critical expectation failed: the run stops at this stage (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, *, stage: str, expectation: str, unexpected_count: int | None = None,
                 **kwargs) -> None:
        super().__init__(message, stage=stage, **kwargs)
        self.expectation = expectation
        self.unexpected_count = unexpected_count


class StageFailed(LoyaltyError):
    """A stage notebook did not complete (exception, timeout, dead kernel): exit code 1."""

    exit_code = 1


class ReproMismatch(LoyaltyError):
    """A replayed stage refused to run because an input changed since the recorded run."""


class OperatingError(LoyaltyError):
    """The machine refused a read or write (disk full, permission denied, a path that is a file):
    exit 2, one line naming the path and the cause in plain words."""


# errno -> the cause as an operator reads it
OS_CAUSES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
             errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
             errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EEXIST: "a file is in the way",
             errno.EISDIR: "a folder is in the way", errno.EIO: "input/output error"}


def operating_error(exc: OSError, *, doing: str = "", stage: str | None = None) -> OperatingError:
    """``exc`` as one line naming the path (``exc.filename``) and the cause: ``disk full: cannot
    write summary.json (...)`` rather than ``[Errno 28]``."""
    cause = OS_CAUSES.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    path = exc.filename if exc.filename is not None else "?"
    what = f"{doing} {path}".strip() if doing else str(path)
    detail = f" ({exc.strerror})" if exc.strerror and exc.strerror.lower() != cause else ""
    return OperatingError(f"{cause}: {what}{detail}", stage=stage)
