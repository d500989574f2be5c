"""Splio's master reward export (stage 04, step two): each master reward's external_id and the
internal id Splio gave it.

An earnreward row names its master reward by "the internal ID of the existing master reward ...
available in the interface of Splio (this ID can be found in the url of the reward page)" (seed
001; seed 002: "Identificador interno de Splio"). That id exists only once the masterreward file is
imported, so the export is read after that import. The seeds do not describe the export's layout:
the two columns are named in the config (``sources.reward_master_export.columns``); any delimiter
or encoding :mod:`~loyalty_toolkit.sources.csvfile` detects is read, other columns are ignored.

One external_id must name one master reward and one internal id one master reward, and every
external_id must be a reward of the run's catalog: anything else is an InputError naming the file,
line and column, since a wrong id would attribute members' rewards to another reward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.csvfile import read_table

EXPORT_FIELDS = ("external_id", "internal_id")
MASTER_EXPORT_COLUMNS = ("external_id", "internal_id", "source_line")


def read_master_export(path: str | Path, *, columns: Mapping[str, str], catalog: Iterable[str] | None = None,
                       encoding: str = "auto", delimiter: str = "auto", stage: str = "rewards") -> pd.DataFrame:
    """The export as ``MASTER_EXPORT_COLUMNS`` (text, ``source_line`` the physical line), in file order.

    ``columns`` maps ``external_id`` and ``internal_id`` to the export's headers. With ``catalog``
    (the external_ids stage 04 knows), an external_id outside it is refused.
    """
    path = Path(path)
    headers = {f: columns[f] for f in EXPORT_FIELDS}
    table = read_table(path, encoding=encoding, delimiter=delimiter, required=tuple(headers.values()),
                       allow_empty=True, stage=stage)
    index = {name: i for i, name in enumerate(table.header) if name}
    values = {f: [row[index[h]].strip() for row in table.rows] for f, h in headers.items()}
    lines = [int(n) for n in table.lines]
    known = set(catalog) if catalog is not None else None
    first: dict[str, dict[str, int]] = {f: {} for f in EXPORT_FIELDS}
    for i, line in enumerate(lines):
        for f in EXPORT_FIELDS:
            v = values[f][i]
            if not v:
                raise InputError(f"{f} is empty: every master reward needs its {f.replace('_', ' ')}", stage=stage,
                                 file=path.name, line=line, column=headers[f])
            if v in first[f]:
                raise InputError(f"{f} {v!r} repeated (first on line {first[f][v]}); one id names one master "
                                 "reward", stage=stage, file=path.name, line=line, column=headers[f])
            first[f][v] = line
        ext = values["external_id"][i]
        if known is not None and ext not in known:
            raise InputError(f"external_id {ext!r} is not a reward of the catalog (masterreward files of this run)",
                             stage=stage, file=path.name, line=line, column=headers["external_id"])
    return pd.DataFrame({"external_id": pd.Series(values["external_id"], dtype=str),
                         "internal_id": pd.Series(values["internal_id"], dtype=str),
                         "source_line": pd.Series(lines, dtype="int64")}, columns=list(MASTER_EXPORT_COLUMNS))
