"""Reading data-frame columns the same way everywhere: text as plain ``str`` arrays.

Stages 03 and 05 and the support tools read the same staged tables (lots, transfers, rejects);
one reader keeps "missing" meaning ``""`` for all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def text_column(frame: pd.DataFrame, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Column ``name`` (optionally only ``rows``) as an object array of str, missing -> ""."""
    if name not in frame.columns:
        return np.full(len(frame) if rows is None else len(rows), "", dtype=object)
    values = frame[name].to_numpy(dtype=object)
    values = values[rows] if rows is not None else values.copy()
    # the all-text check runs in C and is several times cheaper than isna on millions of rows
    if pd.api.types.infer_dtype(values, skipna=False) != "string" and len(values):
        values[pd.isna(values)] = ""
        values = np.asarray([v if isinstance(v, str) else str(v) for v in values], dtype=object)
    return values
