"""Shared vocabulary: the stages, reason codes and the shape of a reject.

Plain data only; every layer may import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# (number, name) in run order. A stage runs only when every stage before it passed in the same run.
STAGES: tuple[tuple[str, str], ...] = (
    ("00", "subset"),
    ("01", "members"),
    ("02", "mapping"),
    ("03", "transfers"),
    ("04", "rewards"),
    ("05", "report"),
    ("06", "verify"),
)
STAGE_NAMES: tuple[str, ...] = tuple(name for _, name in STAGES)
STAGE_NUMBERS: dict[str, str] = {name: num for num, name in STAGES}

# Lot statuses at the cutover (stage 03) and the two kinds of unit transfer (Open Loyalty's
# "adding" and "spending"); stage 05 and the support tools read the tables that carry them.
OPEN, PENDING, EXPIRED = "open", "pending", "expired"
ADDING, SPENDING = "adding", "spending"

# Columns of every reject table and of rejects/<stage>.csv, in this order.
REJECT_COLUMNS: tuple[str, ...] = ("stage", "file", "line", "record_key", "column", "reason_code", "message", "value")


@dataclass(frozen=True)
class Reject:
    """One rejected input row: where it came from and why it was refused."""

    stage: str
    file: str
    line: int
    record_key: str
    column: str
    reason_code: str
    message: str
    value: str = ""

    def as_row(self) -> dict[str, object]:
        return {c: getattr(self, c) for c in REJECT_COLUMNS}


def notebook_name(stage: str) -> str:
    """``01_members`` for ``members``: the stem of the stage notebook and its outputs."""
    return f"{STAGE_NUMBERS[stage]}_{stage}"


def project_root() -> Path:
    """The checkout holding ``notebooks/`` and ``expectations/`` (the package is installed editable)."""
    env = os.environ.get("LOYALTY_MIGRATE_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def _shipped_or_checkout(name: str) -> Path:
    """``name`` (notebooks or expectations): from LOYALTY_MIGRATE_HOME when set; else as the wheel
    ships it inside the package (setup.py); else from the checkout the package is imported from."""
    if not os.environ.get("LOYALTY_MIGRATE_HOME"):
        shipped = resources.files("loyalty_toolkit").joinpath(name)
        # papermill and GX read real files: a package imported from a zip is not supported
        if isinstance(shipped, Path) and shipped.is_dir():
            return shipped
    return project_root() / name


def notebooks_dir() -> Path:
    return _shipped_or_checkout("notebooks")


def expectations_dir() -> Path:
    return _shipped_or_checkout("expectations")
