"""What the operator gets wrong or the machine refuses, named in one line: run ids that are not
names, an output folder or run dir that is a file, and a stage stopped by a full disk or a
permission (exit 2, never exit 1 as if a gate had failed). See docs/reliability-runs.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from loyalty_toolkit.errors import OS_CAUSES, OperatingError, UsageError

# A run id is a folder name under output_dir: letters, digits, '.', '_' and '-', not starting with
# a dot (no '..', no hidden folder) nor a dash (no option look-alike).
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

# The errors a stage's kernel reports for a refused read or write (Python's OSError family).
OS_ERROR_NAMES = frozenset({"OSError", "PermissionError", "FileExistsError", "FileNotFoundError",
                            "NotADirectoryError", "IsADirectoryError", "OperatingError"})
_ERRNO = re.compile(r"\[Errno (\d+)\] ([^:]+)(?:: '(.*)')?")
_SQLITE_FULL = ("database or disk is full", "disk I/O error")


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain folder name, else a one-line usage error saying why."""
    if RUN_ID.fullmatch(run_id or ""):
        return run_id
    shown = repr(run_id)[:60]
    why = ("it is empty" if not run_id
           else "it holds a path separator or '..'" if any(c in run_id for c in "/\\") or ".." in run_id
           else "it holds a control character" if any(ord(c) < 32 for c in run_id)
           else "it may only hold letters, digits, '.', '_' and '-', not start with '.' or '-', "
                "and be at most 128 characters")
    raise UsageError(f"run id {shown} is not a name ({why}); a run id names a folder under output_dir")


def check_folders(output_root: Path, run_dir: Path) -> None:
    """The output folder and the run dir, where they exist, must be folders."""
    for what, path in (("output_dir", output_root), ("run dir", run_dir)):
        for p in (path, *path.parents):
            if p.exists() and not p.is_dir():
                raise OperatingError(f"a file is in the way: {what} {path} must be a folder but {p} is a file")
            if p.exists():
                break


def kernel_operating_error(name: str, message: str) -> str | None:
    """A stage's error, as the kernel reported it, in plain words if the machine refused a read or
    write (``disk full: /run/output/x.csv (No space left on device)``), else None."""
    if name in OS_ERROR_NAMES:
        m = _ERRNO.search(message)
        if m:
            code, text, path = int(m.group(1)), m.group(2).strip(), m.group(3)
            cause = OS_CAUSES.get(code, text)
            return f"{cause}: {path or 'a file of the run dir'}" + (f" ({text})" if text.lower() != cause else "")
        return message or name
    if any(s in message for s in _SQLITE_FULL):
        return message
    return None


def with_note(error: OperatingError, note: str) -> OperatingError:
    """``error`` with where the run record is, or why there is none, on the same line."""
    return OperatingError(f"{error.message}; {note}", stage=error.stage)
