"""Write validated reward data back as Splio import files (seed 001): naming, quoting, NULL, splitting.

Splio refuses a file of more than 200,000 objects, so a frame is split into parts. Its naming
schema ``universe_scope_subsection_YYYYMMDD.csv`` has no room for a part number and Splio
processes files by scope and date, so each part gets its own date: the first part keeps the
given day, the next ones the following days. :func:`write_rewards` chains the days across the
three scopes, so the files sort in the same order whether Splio orders by scope or by date first.

Every value is quoted (``""`` for an empty one, which never erases a stored value); a column listed
in the row's ``erase`` cell is written as a bare ``NULL``, Splio's instruction to empty the field.
A text cell a spreadsheet would run as a formula is written with a leading ``'`` (``csv_cells``);
identifiers and codes never are, stage 04 refuses such rows (``FORMULA_CELL``).
The column lists come from the caller (``sources.splio.export_columns``): this layer does not
import the readers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from loyalty_toolkit.csv_cells import neutralise
from loyalty_toolkit.errors import UsageError

SCOPES: tuple[str, ...] = ("masterreward", "earnreward", "burnreward")
MAX_OBJECTS = 200_000
NULL = "NULL"
DELIMITER = ";"
# The universe may not hold "_" (the reader splits on the first scope name after it); neither part
# may hold a path separator or anything a shell or Splio's SFTP drop would choke on.
_UNIVERSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_SUBSECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def splio_file_name(universe: str, scope: str, subsection: str, day: date) -> str:
    """``universe_scope_subsection_YYYYMMDD.csv``, after checking each part."""
    if scope not in SCOPES:
        raise UsageError(f"unknown Splio scope {scope!r}; expected one of {', '.join(SCOPES)}")
    if not _UNIVERSE.fullmatch(universe or ""):
        raise UsageError(f"Splio universe {universe!r} must be letters, digits, '.' or '-' (no '_')")
    if not _SUBSECTION.fullmatch(subsection or ""):
        raise UsageError(f"Splio subsection {subsection!r} must be letters, digits, '.', '-' or '_'")
    return f"{universe}_{scope}_{subsection}_{day:%Y%m%d}.csv"


def render_splio(frame: pd.DataFrame, columns: Sequence[str], *, erase_column: str = "erase") -> str:
    """The file text: an unquoted header, then one quoted line per row (NULL for erase intents)."""
    missing = [c for c in columns if c not in frame.columns]
    if not columns or missing:
        raise UsageError(f"cannot write Splio file: columns missing from the data: {missing or 'none given'}")
    erase = frame[erase_column] if erase_column in frame.columns else pd.Series([""] * len(frame), index=frame.index)
    lines = [DELIMITER.join(columns)]
    values = frame[list(columns)].to_dict("records")
    for row, intent in zip(values, erase):
        erased = set(intent.split(",")) if isinstance(intent, str) and intent else set()
        lines.append(DELIMITER.join(_cell(row[c], c in erased) for c in columns))
    return "\n".join(lines) + "\n"


def split_frame(frame: pd.DataFrame, max_objects: int = MAX_OBJECTS) -> list[pd.DataFrame]:
    """Consecutive slices of at most ``max_objects`` rows (none for an empty frame)."""
    if not 0 < max_objects <= MAX_OBJECTS:
        raise UsageError(f"max_objects must be between 1 and {MAX_OBJECTS:,} (Splio's limit per file)")
    return [frame.iloc[i:i + max_objects] for i in range(0, len(frame), max_objects)]


def write_scope(frame: pd.DataFrame, *, scope: str, columns: Sequence[str], directory: str | Path, universe: str,
                subsection: str, day: date, max_objects: int = MAX_OBJECTS) -> list[Path]:
    """Write one scope's rows as as many files as the limit needs, on ``day``, ``day + 1``, ...

    Refuses to overwrite a file: a stale part left by an earlier write would be imported too.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, part in enumerate(split_frame(frame, max_objects)):
        path = out / splio_file_name(universe, scope, subsection, day + timedelta(days=i))
        text = render_splio(part, columns)
        try:
            with path.open("x", encoding="utf-8", newline="") as fh:
                fh.write(text)
        except FileExistsError:
            raise UsageError("file already exists; write Splio files to an empty directory", file=str(path)) from None
        written.append(path)
    return written


def write_rewards(scopes: Mapping[str, tuple[pd.DataFrame, Sequence[str]]], *, directory: str | Path, universe: str,
                  subsection: str, day: date, max_objects: int = MAX_OBJECTS) -> list[Path]:
    """Write ``{scope: (frame, columns)}`` in scope order, each file on the next free day."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise UsageError(f"unknown Splio scope(s) {unknown}; expected {', '.join(SCOPES)}")
    written: list[Path] = []
    for scope in SCOPES:
        if scope not in scopes:
            continue
        frame, columns = scopes[scope]
        written += write_scope(frame, scope=scope, columns=columns, directory=directory, universe=universe,
                               subsection=subsection, day=day + timedelta(days=len(written)),
                               max_objects=max_objects)
    return written


def _cell(value: object, erase: bool) -> str:
    text = "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
    if erase and text == "":
        return NULL
    return '"' + neutralise(text).replace('"', '""') + '"'
