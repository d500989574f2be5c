"""Frames into SQLite fast: columns to bindable Python values, rows inserted many per statement.

Stage 03 writes about 20M rows at a million members; per row, Python's conversion of each cell
and sqlite3's binding of each value cost more than SQLite's own work (a pure-SQL copy of a 1M-row
lots table takes 0.2 s, binding the same rows 2 s). So columns are converted with numpy and with
one conversion per distinct object, and each INSERT statement carries many rows.
"""

from __future__ import annotations

import ctypes
import sqlite3
from decimal import Decimal
from itertools import chain
from typing import Any, Iterable

import numpy as np
import pandas as pd

# Rows per INSERT statement: one ``VALUES (...), (...)`` statement per group cuts sqlite3's
# per-statement work (reset, step, parameter-count checks); beyond ~50 the gain is flat.
ROWS_PER_STATEMENT = 64


def cell(v: Any) -> Any:
    """SQLite-safe value: Decimals as exact text (never float), NaN/NA as NULL."""
    if isinstance(v, Decimal):
        return str(v)
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):  # numpy scalar
        return v.item()
    return v


def sql_type(series: pd.Series) -> type:
    """The column's declared type: INTEGER for ints and bools, REAL for floats, TEXT otherwise."""
    if pd.api.types.is_bool_dtype(series):
        return int
    if pd.api.types.is_integer_dtype(series):
        return int
    if pd.api.types.is_float_dtype(series):
        return float
    return str


def _with_nulls(values: list[Any], missing: np.ndarray) -> list[Any]:
    for i in np.flatnonzero(missing).tolist():
        values[i] = None
    return values


def column_values(series: pd.Series) -> list[Any]:
    """A column as SQLite-bindable Python values: exact text for Decimals, None for missing.

    numpy's ``tolist`` gives Python ints and floats in C; object columns convert each distinct
    object once (stage 03's amount columns hold a few thousand Decimal objects, each shared by
    hundreds of rows). Distinct by identity, never by value: Decimal("1.0") == Decimal("1.00")
    but their texts differ."""
    if pd.api.types.is_unsigned_integer_dtype(series) and series.dtype.itemsize >= 8:
        # beyond int64: as Python ints, so that SQLite refuses what it cannot store
        return [None if pd.isna(v) else int(v) for v in series.tolist()]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        missing = series.isna().to_numpy()
        if missing.any():
            return _with_nulls(series.to_numpy(dtype=np.int64, na_value=0).tolist(), missing)
        return series.to_numpy(dtype=np.int64).tolist()
    if pd.api.types.is_float_dtype(series):
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(arr)
        return _with_nulls(arr.tolist(), missing) if missing.any() else arr.tolist()
    if isinstance(series.dtype, pd.StringDtype):
        # pandas' own text dtype: a Python string per distinct text (equal texts are one value),
        # code -1 (missing) picks the None at the end
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        texts = [*uniques.tolist(), None]
        return list(map(texts.__getitem__, codes.tolist()))
    values = series.tolist()
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, str) and not series.isna().any():
        return values
    return _distinct_cells(values, series.to_numpy(dtype=object))


def _distinct_cells(values: list[Any], objects: np.ndarray) -> list[Any]:
    """``[cell(v) for v in values]``, calling ``cell`` once per distinct object (by ``id``: the
    objects stay alive in ``values`` meanwhile, so an id names one object). ``objects`` holds the
    same objects as a numpy array."""
    n = len(values)
    if n < 1000:
        return [cell(v) for v in values]
    codes, ids = pd.factorize(_object_ids(objects))
    if len(ids) * 2 > n:  # mostly distinct objects (text with a few NULLs): nothing to share
        return [cell(v) for v in values]
    first = np.empty(len(ids), dtype=np.int64)
    first[codes] = np.arange(n)  # any row of each object will do: same id, same object
    converted = np.empty(len(ids), dtype=object)
    for j, v in enumerate(objects[first].tolist()):
        converted[j] = cell(v)  # one by one: a value that is itself a sequence stays one cell
    return converted[codes].tolist()


def _object_ids(objects: np.ndarray) -> np.ndarray:
    """``id`` of every object of a 1-D object array, as uint64. numpy keeps such an array as
    the objects' addresses, which is what CPython's ``id`` returns: reading the buffer as uint64
    costs 0.2 ms a million cells where ``id`` per cell costs 60 ms. Checked against ``id`` at
    both ends; any other layout (another interpreter) takes ``id`` per cell."""
    n = len(objects)
    if n and objects.dtype == object and objects.itemsize == 8 and objects.flags.c_contiguous:
        raw = (ctypes.c_uint64 * n).from_address(objects.ctypes.data)
        ids = np.ctypeslib.as_array(raw).copy()
        if int(ids[0]) == id(objects[0]) and int(ids[-1]) == id(objects[-1]):
            return ids
    return np.fromiter(map(id, objects), dtype=np.uint64, count=n)


def insert_columns(conn: sqlite3.Connection, table: str, names: list[str], columns: list[list[Any]]) -> None:
    """Insert rows given as equal-length value lists per column, in order (rowid order = list order)."""
    n = len(columns[0]) if columns else 0
    if not n:
        return
    width = len(names)
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(ROWS_PER_STATEMENT, limit // width))
    head = f"INSERT INTO [{table}] ({', '.join(f'[{c}]' for c in names)}) VALUES "
    one = "(" + ", ".join("?" * width) + ")"
    grouped = n - n % per
    if grouped:
        # rows -> one flat stream of values -> tuples of ``per`` rows' values, all in C
        flat = chain.from_iterable(zip(*(c[:grouped] for c in columns)))
        conn.executemany(head + ", ".join([one] * per), _chunks(flat, width * per))
    if grouped < n:
        conn.executemany(head + one, zip(*(c[grouped:] for c in columns)))


def _chunks(flat: Iterable[Any], size: int) -> Iterable[tuple[Any, ...]]:
    it = iter(flat)
    return zip(*([it] * size))
