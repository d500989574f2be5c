"""The target's member balance export (stage 06's input): each member's ID and the points it holds.

Taken from the target after the unit-transfer import (and, optionally, before it), so stage 06 can
prove that every member holds what this run transferred. A delimited file of any encoding or
delimiter :mod:`~loyalty_toolkit.sources.csvfile` detects; ``columns`` names its headers for the
canonical ``target_id`` and ``balance`` (``sources.target_balances.columns``), like every source.

Refused with one line naming file, line and column: a missing column, an empty member ID, a member
ID listed twice, a balance that is not a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

from loyalty_toolkit.config import BALANCE_EXPORT_COLUMNS
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.csvfile import read_table, to_frame

BALANCE_COLUMNS: tuple[str, ...] = ("target_id", "balance", "line")


def read_target_balances(path: Path, *, columns: Mapping[str, str] | None = None, encoding: str = "auto",
                         delimiter: str = "auto", stage: str | None = None) -> pd.DataFrame:
    """The export as a frame: ``target_id`` (text), ``balance`` (Decimal), ``line`` (the file's line)."""
    path = Path(path)
    names = {**BALANCE_EXPORT_COLUMNS, **(columns or {})}
    table = read_table(path, encoding=encoding, delimiter=delimiter, required=list(names.values()),
                       allow_empty=True, stage=stage)
    frame = to_frame(table, names)
    ids = [str(v).strip() for v in frame["target_id"].tolist()]
    lines = frame["_line"].astype("int64").tolist()
    balances: list[Decimal] = []
    first: dict[str, int] = {}
    for member, raw, line in zip(ids, frame["balance"].tolist(), lines):
        if not member:
            raise InputError("empty member ID", stage=stage, file=path.name, line=line, column=names["target_id"])
        if member in first:
            raise InputError(f"member {member} is listed twice (first on line {first[member]})", stage=stage,
                             file=path.name, line=line, column=names["target_id"])
        first[member] = line
        try:
            value = Decimal(str(raw).strip())
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise InputError(f"balance {raw!r} is not a number", stage=stage, file=path.name, line=line,
                             column=names["balance"]) from None
        balances.append(value)
    return pd.DataFrame({"target_id": pd.Series(ids, dtype=object), "balance": pd.Series(balances, dtype=object),
                         "line": pd.Series(lines, dtype="int64")}, columns=list(BALANCE_COLUMNS))
