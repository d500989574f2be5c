"""CSV cells are data: the one rule every CSV writer of the toolkit applies to text cells.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or a
carriage return) as a formula, so a legacy value such as ``=HYPERLINK(...)`` would run when a
reviewer opens a reject file. The OWASP "CSV injection" rule: prefix such a text cell with ``'``.
A signed plain number (``-108``) or a phone number (``+84 912 345 678``: a +, digits and separators)
calls nothing and stays as written, as do numbers written as numbers. Where a target's import format forbids altering a value (an
identifier or a code), the caller refuses the row instead: :func:`is_formula` tells which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_CELL = "FORMULA_CELL"  # the reject reason of a value a target forbids us to alter
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?|\+\d[\d ().-]*\d")


def is_formula(value: Any) -> bool:
    """Whether a spreadsheet could read this text cell as a formula (a plain signed number is not)."""
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value)


def neutralise(value: Any) -> Any:
    """``'`` before a text cell a spreadsheet would run; anything else unchanged."""
    return "'" + value if is_formula(value) else value


def restore(value: Any) -> Any:
    """The value :func:`neutralise` was given, for a reader of a file the toolkit wrote itself."""
    if isinstance(value, str) and value.startswith("'") and is_formula(value[1:]):
        return value[1:]
    return value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    return [neutralise(v) for v in row]


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell neutralised; numeric columns untouched (a copy only if needed)."""
    out = frame
    for col in frame.columns:
        series = frame[col]
        if series.dtype != object and not pd.api.types.is_string_dtype(series.dtype):
            continue
        flags = series.map(is_formula).astype(bool)
        if flags.any():
            if out is frame:
                out = frame.copy()
            out[col] = series.where(~flags, "'" + series.astype(str))
    return out


def formula_rows(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Per row, the first of ``columns`` holding a formula cell ('' when none): rows to refuse."""
    first = pd.Series("", index=frame.index, dtype=object)
    for col in reversed([c for c in columns if c in frame.columns]):
        first = first.mask(frame[col].map(is_formula).astype(bool), col)
    return first


def write_frame_csv(frame: pd.DataFrame, path: Path, **options: Any) -> Path:
    """``frame`` as a comma-separated UTF-8 file with ``\\n`` line ends, text cells neutralised."""
    neutralise_frame(frame).to_csv(path, index=False, lineterminator="\n", **options)
    return path
