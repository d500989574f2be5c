"""The staging store: ``RUN_DIR/staging.db`` through sqlite-utils.

The only module that opens the database. A stage writes all its tables and its ledger row in
one transaction (:meth:`StagingStore.commit_stage`), so a stage that fails leaves the database
exactly as it was. The ``_stages`` table records each completed stage with the fingerprints of
its inputs and parameters, in the same transaction as its work (as sqlite-utils' migrations do).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import sqlite_utils

from loyalty_toolkit.errors import LoyaltyError

STAGES_TABLE = "_stages"
_INSERT_ROWS = 200_000  # rows converted to Python values and inserted at a time


def _bytes_hex(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    raise TypeError(f"cannot serialise {type(v).__name__}")


def _cell(v: Any) -> Any:
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


def stored_decimal(value: Any) -> Decimal:
    """An amount read back from the database (exact text as ``_cell`` wrote it, or an int) as a
    Decimal; NULL and empty are 0. Text that is not a number is a ValueError naming it."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an exact amount in the staging database: {value!r}") from None


def _column_values(series: pd.Series) -> list[Any]:
    """A column as SQLite-bindable Python values: exact text for Decimals, None for missing."""
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
    return [_cell(v) for v in values]


def _sql_type(series: pd.Series) -> type:
    if pd.api.types.is_bool_dtype(series):
        return int
    if pd.api.types.is_integer_dtype(series):
        return int
    if pd.api.types.is_float_dtype(series):
        return float
    return str


class StagingStore:
    """The SQLite staging database of one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self._ensure_ledger()

    @classmethod
    def for_run(cls, run_dir: Path) -> StagingStore:
        return cls(Path(run_dir) / "staging.db")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StagingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_ledger(self) -> None:
        if STAGES_TABLE not in self.db.table_names():
            self.db[STAGES_TABLE].create(
                {"stage": str, "completed_at": str, "inputs_fingerprint": str, "parameters_fingerprint": str,
                 "tables": str, "details": str},
                pk="stage",
            )

    # -- writing -------------------------------------------------------------------------------

    def commit_stage(self, stage: str, tables: dict[str, pd.DataFrame], *, inputs_fingerprint: str,
                     parameters_fingerprint: str, details: dict[str, Any] | None = None) -> None:
        """Replace ``tables`` and record ``stage`` as completed, all in one transaction."""
        try:
            with self.db.atomic():
                for name, frame in tables.items():
                    self._replace_table(name, frame)
                self.db[STAGES_TABLE].upsert(
                    {"stage": stage, "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "inputs_fingerprint": inputs_fingerprint, "parameters_fingerprint": parameters_fingerprint,
                     "tables": json.dumps(sorted(tables)), "details": json.dumps(details or {}, sort_keys=True)},
                    pk="stage",
                )
        except LoyaltyError:
            raise
        except Exception as exc:  # sqlite errors become one line naming the stage and the database
            raise LoyaltyError(f"could not write the staging database: {exc}", stage=stage, file=self.path) from exc

    def _replace_table(self, name: str, frame: pd.DataFrame) -> None:
        if name.startswith("_"):
            raise LoyaltyError(f"table name {name!r} is reserved", file=self.path)
        self.db.execute(f"DROP TABLE IF EXISTS [{name}]")
        columns = {str(c): _sql_type(frame[c]) for c in frame.columns}
        if not columns:
            columns = {"_empty": str}
        self.db[name].create(columns)
        if frame.empty:
            return
        cols = [str(c) for c in frame.columns]
        sql = f"INSERT INTO [{name}] ({', '.join(f'[{c}]' for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
        # executemany over plain tuples, converted column by column: sqlite-utils' insert_all and a
        # per-cell conversion are each several times slower at a million rows. A slice of rows at a
        # time: a table of millions of rows as Python lists, all columns at once, costs gigabytes.
        for start in range(0, len(frame), _INSERT_ROWS):
            part = frame.iloc[start:start + _INSERT_ROWS]
            self.db.conn.executemany(sql, zip(*(_column_values(part[c]) for c in part.columns)))

    def drop_stages(self, stages: list[str]) -> None:
        """Drop the tables ``stages`` committed and their ledger rows: a replay starts from the
        database as it was before the first of them ran."""
        done = self.completed_stages()
        with self.db.atomic():
            for s in stages:
                for table in json.loads((done.get(s) or {}).get("tables") or "[]"):
                    self.db.execute(f"DROP TABLE IF EXISTS [{table}]")
                self.db.execute(f"DELETE FROM {STAGES_TABLE} WHERE stage = ?", [s])

    def snapshot(self, dest: Path) -> None:
        """A consistent copy of the database at ``dest`` (SQLite's backup API, not a file copy)."""
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(dest)
        try:
            self.db.conn.backup(target)
        finally:
            target.close()

    def invalidate_from(self, stages: list[str]) -> None:
        """Forget that ``stages`` completed (before they are re-run with ``--stages``)."""
        with self.db.atomic():
            for s in stages:
                self.db.execute(f"DELETE FROM {STAGES_TABLE} WHERE stage = ?", [s])

    # -- reading -------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        return [t for t in self.db.table_names() if not t.startswith("_")]

    def has_table(self, name: str) -> bool:
        return name in self.db.table_names()

    def read_table(self, name: str, *, columns: list[str] | None = None) -> pd.DataFrame:
        """The whole table as a DataFrame (text columns stay text)."""
        if not self.has_table(name):
            raise LoyaltyError(f"table {name!r} is not in the staging database; run the stage that makes it",
                               file=self.path)
        cols = ", ".join(f"[{c}]" for c in columns) if columns else "*"
        cur = self.db.execute(f"SELECT {cols} FROM [{name}]")
        names = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=names)

    def query(self, sql: str, params: list[Any] | None = None) -> Iterator[dict[str, Any]]:
        """Rows of a read-only query, as dicts (for explain and reports)."""
        yield from self.db.query(sql, params or [])

    def count(self, name: str) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM [{name}]").fetchone()[0]

    def completed_stages(self) -> dict[str, dict[str, Any]]:
        return {r["stage"]: r for r in self.db[STAGES_TABLE].rows}

    def canonical_lines(self, name: str, *, exclude: tuple[str, ...] = ()) -> Iterator[str]:
        """The table as text, one line per row in rowid (insertion) order, after a first line with
        the columns and their declared types. JSON keeps 1, 1.0 and "1" apart, so two tables give
        the same lines only if they hold the same typed values in the same order. ``exclude``
        leaves out columns (run-time bookkeeping such as ``_stages.completed_at``)."""
        info = [(r[1], r[2]) for r in self.db.execute(f"PRAGMA table_info([{name}])").fetchall()
                if r[1] not in exclude]
        yield json.dumps([list(c) for c in info], ensure_ascii=False)
        cols = ", ".join(f"[{c}]" for c, _ in info) or "NULL"
        cur = self.db.execute(f"SELECT {cols} FROM [{name}] ORDER BY rowid")
        while rows := cur.fetchmany(10_000):
            for row in rows:
                yield json.dumps(list(row), ensure_ascii=False, default=_bytes_hex)

    def digests(self) -> dict[str, str]:
        """:meth:`table_digest` of every table, the ``_stages`` ledger included: the whole database
        in a few lines, to prove that a failed stage left it exactly as it was."""
        return {name: self.table_digest(name) for name in self.db.table_names()}

    def table_digest(self, name: str) -> str:
        """sha256 of the table's rows in a canonical order: compares two runs' staging tables."""
        cur = self.db.execute(f"SELECT * FROM [{name}]")
        rows = sorted(json.dumps(r, default=str) for r in cur.fetchall())
        h = hashlib.sha256()
        for r in rows:
            h.update(r.encode())
            h.update(b"\n")
        return h.hexdigest()
