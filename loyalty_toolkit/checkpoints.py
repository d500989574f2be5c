"""Named points of a run where a test can stop it dead: ``LOYALTY_MIGRATE_PAUSE_AT``.

The kill tests (tests/e2e/test_killed_runs.py) set ``LOYALTY_MIGRATE_PAUSE_AT=<stage>:<point>``
and ``LOYALTY_MIGRATE_PAUSE_FILE=<path>``; the process that reaches that point (the runner or a
stage's kernel) creates the file and waits, and the test SIGKILLs the whole process group. Without
the variable a checkpoint costs one dictionary lookup. The points, in commit order, are listed in
docs/reliability-runs.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "LOYALTY_MIGRATE_PAUSE_AT"
PAUSE_FILE = "LOYALTY_MIGRATE_PAUSE_FILE"
PAUSE_SECONDS = 600  # then go on: a forgotten variable slows a run, it never hangs it


def checkpoint(stage: str, point: str) -> None:
    """Pause here if the environment names ``stage:point`` (see the module's docstring)."""
    if os.environ.get(PAUSE_AT) != f"{stage}:{point}":
        return
    marker = os.environ.get(PAUSE_FILE)
    if marker:
        Path(marker).write_text(f"{os.getpid()}\n", encoding="utf-8")
    time.sleep(PAUSE_SECONDS)
