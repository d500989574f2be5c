"""The fast insert stores exactly what the plain one stored (an oracle kept here: the per-cell
conversion and one-row INSERT the store used before), cell for cell and type for type."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.store import StagingStore, bulk


def _oracle_cell(v):
    if isinstance(v, Decimal):
        return str(v)
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(v, "item"):
        return v.item()
    return v


def _oracle_column(series: pd.Series) -> list:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        if series.isna().any():
            return [None if pd.isna(v) else int(v) for v in series.tolist()]
        return [int(v) for v in series.tolist()]
    if pd.api.types.is_float_dtype(series):
        return [None if v != v else v for v in series.tolist()]
    values = series.tolist()
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, str) and not series.isna().any():
        return values
    return [_oracle_cell(v) for v in values]


def _oracle_write(store: StagingStore, name: str, frame: pd.DataFrame) -> None:
    store.db[name].create({str(c): bulk.sql_type(frame[c]) for c in frame.columns})
    cols = [str(c) for c in frame.columns]
    sql = f"INSERT INTO [{name}] ({', '.join(f'[{c}]' for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
    store.db.conn.executemany(sql, zip(*(_oracle_column(frame[c]) for c in frame.columns)))


def _frame(n: int) -> pd.DataFrame:
    """Every kind of column the stages store, with shared and distinct Decimal objects (1.0 and
    1.00 among them: equal values, different texts), NaN, None and pd.NA."""
    rng = np.random.default_rng(4)
    shared = [Decimal("1.0"), Decimal("1.00"), Decimal("-0.000001"), Decimal("1E+2"), Decimal("0"), Decimal("NaN")]
    pick = rng.integers(0, len(shared), n)
    amounts = [shared[k] for k in pick]
    amounts[::7] = [None] * len(amounts[::7])
    distinct = [Decimal(int(v)) / 1000 for v in rng.integers(-10**9, 10**9, n)]
    ints = rng.integers(-2**62, 2**62, n)
    floats = rng.normal(size=n)
    floats[::5] = np.nan
    text = [f"t{i}é" for i in range(n)]
    text_na = [None if i % 11 == 0 else f"u{i % 13}" for i in range(n)]
    mixed = [i if i % 3 else f"x{i}" for i in range(n)]
    return pd.DataFrame({
        "amount": amounts, "exact": distinct, "n": ints, "flag": rng.integers(0, 2, n).astype(bool),
        "maybe": pd.array([None if i % 4 == 0 else i for i in range(n)], dtype="Int64"),
        "small": rng.integers(0, 100, n).astype(np.int32), "x": floats, "text": text, "text_na": text_na,
        "label": pd.array(text_na, dtype="str"), "code": pd.array([f"c{i % 3}" for i in range(n)], dtype="str"),
        "mixed": mixed, "nullable_flag": pd.array([None if i % 9 == 0 else bool(i % 2) for i in range(n)],
                                                  dtype="boolean"),
    })


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 999, 3001])
@pytest.mark.parametrize("per_statement", [1, 7, bulk.ROWS_PER_STATEMENT])
def test_fast_insert_stores_what_the_plain_insert_stored(tmp_path, monkeypatch, n, per_statement):
    monkeypatch.setattr(bulk, "ROWS_PER_STATEMENT", per_statement)
    frame = _frame(n)
    with StagingStore(tmp_path / "s.db") as store:
        store.commit_stage("s", {"fast": frame}, inputs_fingerprint="", parameters_fingerprint="")
        _oracle_write(store, "plain", frame)
        fast, plain = list(store.canonical_lines("fast")), list(store.canonical_lines("plain"))
    assert len(fast) == n + 1
    assert fast == plain


def test_shared_decimals_keep_their_own_text(tmp_path):
    # Decimal("1.0") == Decimal("1.00") and they hash alike: a cache by value would store one text for both
    values = [Decimal("1.0"), Decimal("1.00")] * 1000
    assert bulk.column_values(pd.Series(values, dtype=object)) == ["1.0", "1.00"] * 1000


def test_columns_of_mostly_distinct_objects_convert_cell_by_cell():
    values = [Decimal(i) / 4 for i in range(2000)] + [None]
    assert bulk.column_values(pd.Series(values, dtype=object)) == [str(Decimal(i) / 4) for i in range(2000)] + [None]


def test_integers_beyond_int64_are_refused_not_wrapped(tmp_path):
    frame = pd.DataFrame({"u": np.array([1, 2**63 + 5], dtype=np.uint64)})
    with StagingStore(tmp_path / "s.db") as store, pytest.raises(Exception, match="could not write|too large"):
        store.commit_stage("s", {"u": frame}, inputs_fingerprint="", parameters_fingerprint="")


def test_rows_keep_their_order_across_statements_and_slices(tmp_path, monkeypatch):
    from loyalty_toolkit.store import staging

    monkeypatch.setattr(staging, "_INSERT_ROWS", 10)
    monkeypatch.setattr(bulk, "ROWS_PER_STATEMENT", 3)
    frame = pd.DataFrame({"k": [f"r{i}" for i in range(47)], "n": range(47)})
    with StagingStore(tmp_path / "s.db") as store:
        store.commit_stage("s", {"t": frame}, inputs_fingerprint="", parameters_fingerprint="")
        rows = [r for r in store.db.execute("SELECT rowid, k, n FROM t ORDER BY rowid")]
    assert rows == [(i + 1, f"r{i}", i) for i in range(47)]
