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
from loyalty_toolkit.store.bulk import column_values as _column_values
from loyalty_toolkit.store.bulk import insert_columns
from loyalty_toolkit.store.bulk import sql_type as _sql_type

STAGES_TABLE = "_stages"
_SQL_NAMES = {int: "INTEGER", float: "REAL", str: "TEXT"}
PENDING_PREFIX = "_pending_"  # + "<stage>_<table>": a table a stage writes before its gate has run
_INSERT_ROWS = 200_000  # rows converted to Python values and inserted at a time


def _bytes_hex(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    raise TypeError(f"cannot serialise {type(v).__name__}")


def stored_decimal(value: Any) -> Decimal:
    """An amount read back from the database (exact text as ``bulk.cell`` wrote it, or an int) as a
    Decimal; NULL and empty are 0. Text that is not a number is a ValueError naming it."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an exact amount in the staging database: {value!r}") from None


def _declared_columns(frame: pd.DataFrame) -> dict[str, type]:
    return {str(c): _sql_type(frame[c]) for c in frame.columns}


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
                     parameters_fingerprint: str, details: dict[str, Any] | None = None,
                     pending: PendingTables | None = None) -> None:
        """Replace ``tables``, publish the ``pending`` tables (written slice by slice during the
        stage) and record ``stage`` as completed, all in one transaction. The pending tables are
        gone afterwards either way: published, or dropped if the commit failed."""
        if pending is not None and pending.stage != stage:
            raise LoyaltyError(f"pending tables of stage {pending.stage!r} cannot be committed by stage {stage!r}",
                               file=self.path)
        if pending is not None:
            pending.wait()  # a background writer's failure: its tables dropped, one line raised
        published = pending.tables() if pending is not None else {}
        both = sorted(set(tables) & set(published))
        if both:
            raise LoyaltyError(f"table {both[0]!r} is both written whole and pending", stage=stage, file=self.path)
        try:
            with self.db.atomic():
                for name, frame in tables.items():
                    self._replace_table(name, frame)
                for name, hidden in published.items():
                    # the table _replace_table would have made, renamed into place: same declared
                    # columns, same rows in the same rowid order
                    self.db.execute(f"DROP TABLE IF EXISTS [{name}]")
                    self.db.execute(f"ALTER TABLE [{hidden}] RENAME TO [{name}]")
                self.db[STAGES_TABLE].upsert(
                    {"stage": stage, "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "inputs_fingerprint": inputs_fingerprint, "parameters_fingerprint": parameters_fingerprint,
                     "tables": json.dumps(sorted({*tables, *published})),
                     "details": json.dumps(details or {}, sort_keys=True)},
                    pk="stage",
                )
        except LoyaltyError:
            if pending is not None:
                pending.discard()
            raise
        except Exception as exc:  # sqlite errors become one line naming the stage and the database
            if pending is not None:
                pending.discard()
            raise LoyaltyError(f"could not write the staging database: {exc}", stage=stage, file=self.path) from exc
        if pending is not None:
            pending.published()

    def pending(self, stage: str) -> PendingTables:
        """Hidden tables ``stage`` fills frame by frame before its gate has run, published by
        :meth:`commit_stage` (``pending=``) or dropped by :meth:`PendingTables.discard`. Tables a
        crashed run of ``stage`` left behind are dropped first. For frames inserted by a second
        process while this one goes on, see ``store.spool.background_pending``."""
        pending = PendingTables(self, stage)
        pending.discard()
        return pending

    def _replace_table(self, name: str, frame: pd.DataFrame) -> None:
        if name.startswith("_"):
            raise LoyaltyError(f"table name {name!r} is reserved", file=self.path)
        self.db.execute(f"DROP TABLE IF EXISTS [{name}]")
        self._create_table(name, frame)
        self._insert_frame(name, frame)

    def _create_table(self, name: str, frame: pd.DataFrame) -> None:
        columns = _declared_columns(frame)
        self.db[name].create(columns if columns else {"_empty": str})

    def _insert_frame(self, name: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        cols = [str(c) for c in frame.columns]
        # Converted column by column (sqlite-utils' insert_all and a per-cell conversion are each
        # several times slower at a million rows), a slice of rows at a time: a table of millions
        # of rows as Python lists, all columns at once, costs gigabytes.
        for start in range(0, len(frame), _INSERT_ROWS):
            part = frame.iloc[start:start + _INSERT_ROWS]
            insert_columns(self.db.conn, name, cols, [_column_values(part[c]) for c in part.columns])

    def drop_stages(self, stages: list[str]) -> None:
        """Drop the tables ``stages`` committed and their ledger rows: a replay starts from the
        database as it was before the first of them ran."""
        done = self.completed_stages()
        with self.db.atomic():
            for s in stages:
                for table in json.loads((done.get(s) or {}).get("tables") or "[]"):
                    self.db.execute(f"DROP TABLE IF EXISTS [{table}]")
                self.db.execute(f"DELETE FROM {STAGES_TABLE} WHERE stage = ?", [s])

    def drop_pending_tables(self) -> list[tuple[str, int]]:
        """Drop every pending table (``_pending_*``) and return each one's name and rows: what a
        killed run left. Only a run holding the run dir's lock calls this, so no stage is writing."""
        hidden = [t for t in self.db.table_names() if t.startswith(PENDING_PREFIX)]
        dropped = [(t, self.count(t)) for t in hidden]
        if hidden:
            with self.db.atomic():
                for t in hidden:
                    self.db.execute(f"DROP TABLE IF EXISTS [{t}]")
        return dropped

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


class PendingTables:
    """Tables of one stage written before its gate has run (:meth:`StagingStore.pending`): each
    ``append`` inserts a frame into a hidden table ``_pending_<stage>_<name>`` and commits, so a
    stage can write member slice after member slice without holding them; the published table is
    the one ``_replace_table`` would write from the frames concatenated in order."""

    def __init__(self, store: StagingStore, stage: str) -> None:
        self.store = store
        self.stage = stage
        self._columns: dict[str, dict[str, type]] = {}  # name -> declared columns
        self._rows: dict[str, int] = {}

    def hidden_name(self, name: str) -> str:
        return f"{PENDING_PREFIX}{self.stage}_{name}"

    def tables(self) -> dict[str, str]:
        """Published name -> hidden table, in the order they were first appended to."""
        return {name: self.hidden_name(name) for name in self._columns}

    def append(self, name: str, frame: pd.DataFrame) -> None:
        """Add ``frame``'s rows to pending table ``name``. The first frame with rows fixes the
        declared column types (empty frames add nothing and fix nothing but the columns); every
        frame must have the same columns, in the same order, and frames with rows the same types."""
        declared, create = self._check(name, frame)
        self._write(name, frame, declared, create)
        if create:
            self._columns[name] = declared
        self._rows[name] = self._rows.get(name, 0) + (0 if frame.empty else len(frame))

    def _check(self, name: str, frame: pd.DataFrame) -> tuple[dict[str, type], bool]:
        """The frame's declared columns, and whether the hidden table is (re)created for it;
        a frame that does not fit the earlier ones is refused before anything is written."""
        if name.startswith("_"):
            raise LoyaltyError(f"table name {name!r} is reserved", file=self.store.path)
        declared = _declared_columns(frame)
        known = self._columns.get(name)
        if known is not None and (list(declared) != list(known)
                                  or (self._rows[name] and not frame.empty and declared != known)):
            raise self._mismatch(name, declared)
        # (re)created until a frame with rows has fixed the types
        return declared, known is None or (not self._rows[name] and not frame.empty and declared != known)

    def _write(self, name: str, frame: pd.DataFrame, declared: dict[str, type], create: bool) -> None:
        hidden = self.hidden_name(name)
        db = self.store.db
        try:
            with db.atomic():
                if create:
                    db.execute(f"DROP TABLE IF EXISTS [{hidden}]")
                    self.store._create_table(hidden, frame)
                self.store._insert_frame(hidden, frame)
        except LoyaltyError:
            raise
        except Exception as exc:
            raise LoyaltyError(f"could not write pending table {name!r} to the staging database: {exc}",
                               stage=self.stage, file=self.store.path) from exc

    def wait(self) -> None:
        """Return once every appended frame is in the database: at once here, where ``append``
        inserts it itself (a background writer's subclass waits for it)."""

    def _mismatch(self, name: str, declared: dict[str, type]) -> LoyaltyError:
        have = self._columns[name]
        if list(declared) != list(have):
            what = f"columns {list(declared)} where earlier frames had {list(have)}"
        else:
            col = next(c for c in have if declared[c] is not have[c])
            what = (f"column {col!r} would be {_SQL_NAMES[declared[col]]} where earlier frames made it "
                    f"{_SQL_NAMES[have[col]]}")
        return LoyaltyError(f"pending table {name!r}: a frame with {what}", stage=self.stage, file=self.store.path)

    def discard(self) -> None:
        """Drop every pending table of this stage (a crashed run's too): the database is as it was
        before the stage began writing them."""
        self._columns.clear()
        self._rows.clear()
        db = self.store.db
        hidden = [t for t in db.table_names() if t.startswith(self.hidden_name(""))]
        if hidden:
            with db.atomic():
                for t in hidden:
                    db.execute(f"DROP TABLE IF EXISTS [{t}]")

    def published(self) -> None:
        """Forget the tables :meth:`StagingStore.commit_stage` has just renamed into place."""
        self._columns.clear()
        self._rows.clear()
