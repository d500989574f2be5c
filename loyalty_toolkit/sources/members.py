"""The legacy member export as a canonical frame (stage 01's input).

Headers come from the config's column map (``MEMBER_COLUMNS`` overlaid with ``sources.members.columns``).
The legacy id column and every column the config maps explicitly must be in the file; the other,
default-mapped optional columns may be missing and are then read as empty.
"""

from __future__ import annotations

import pandas as pd

from loyalty_toolkit.config import MEMBER_REQUIRED, MembersSource
from loyalty_toolkit.sources.csvfile import CsvTable, read_table, to_frame


def required_headers(src: MembersSource) -> list[str]:
    """Headers that must be present: the required fields plus every explicitly mapped one."""
    mapping = src.column_map()
    wanted = [mapping[f] for f in MEMBER_REQUIRED] + [mapping[f] for f in src.columns]
    return list(dict.fromkeys(wanted))


def read_members(src: MembersSource, *, stage: str = "members") -> tuple[pd.DataFrame, CsvTable]:
    """Read the member export: a frame with the canonical member fields (all text) plus ``_line``,
    and the table it came from (format, header, rows). Raises InputError naming file and line."""
    table = read_table(src.path, encoding=src.encoding, delimiter=src.delimiter,
                       required=required_headers(src), stage=stage)
    return to_frame(table, src.column_map()), table
