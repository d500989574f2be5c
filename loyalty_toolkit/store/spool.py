"""Pending tables inserted by a second process: :func:`background_pending`.

Binding millions of values into SQLite is Python work under the GIL (stage 03: 30 s of its 127 s
at a million members) while the machine's other core idles. Here ``append`` only turns the frame
into an Arrow table - the exact values the foreground insert would bind (bulk.column_values'
rules: Decimals as their exact text, NaN/None/NA as NULL, bools as ints) - and writes it as an
Arrow IPC file into a spool folder next to the database; ONE writer process
(store/spool_writer.py, fed the files' names on stdin, in order) inserts each into the hidden
table exactly as :meth:`PendingTables.append` would and deletes the file. A new process, not a
fork: stages run inside a Jupyter kernel with threads.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loyalty_toolkit.checkpoints import checkpoint
from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.store.bulk import _object_ids, cell, column_values
from loyalty_toolkit.store.staging import _SQL_NAMES, PendingTables, StagingStore

SPOOL_DIR = ".staging-spool"  # next to staging.db: <run dir>/.staging-spool/<stage>/
PICKLED = b"pickled"  # field metadata key of a column whose cells are pickled Python values
LOG = "writer.log"
# Frames written but not yet inserted before ``append`` waits for the writer: the spool folder
# stays at a couple of slices (disk) when the writer is the slower of the two.
MAX_QUEUED = 6
_POLL_S = 0.02
_SHARED = 8  # rows per distinct object at least, for a column to cross as codes and one text per object


def spool_dir(db_path: Path, stage: str) -> Path:
    return Path(db_path).parent / SPOOL_DIR / stage


def drop_leftover_spools(db_path: Path) -> list[tuple[Path, int]]:
    """Remove the spool folders a killed run left next to ``db_path`` (``.staging-spool/<stage>/``)
    and return each one with the files it held. Only a run holding the run dir's lock calls this."""
    root = Path(db_path).parent / SPOOL_DIR
    removed = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        removed.append((folder, sum(1 for f in folder.rglob("*") if f.is_file())))
        shutil.rmtree(folder)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    return removed


def background_pending(store: StagingStore, stage: str) -> SpooledPendingTables:
    """:meth:`StagingStore.pending` whose frames a second process inserts while this one goes on;
    this process must then not write to the database until the commit or discard. Tables and spool
    files a crashed run of ``stage`` left behind are dropped first. (Here and not in ``staging``:
    the spool builds on the staging store, never the other way round.)"""
    pending = SpooledPendingTables(store, stage)
    pending.discard()
    return pending


def arrow_column(series: pd.Series) -> tuple[pa.Array, bool]:
    """The column as the Arrow array whose values are what ``bulk.column_values`` binds, and
    whether its cells are pickled.

    Numeric columns go over as they are (nulls as a mask); other columns become
    ``column_values``' Python values (one conversion per distinct Decimal object) and then a
    string, int, float, bool or binary array when every value has exactly that Python type, so
    that the writer reads back the same Python values. A column mixing types (1 and "1", which a
    TEXT column stores as "1" and "1" but 1.5 and "1.5" not always alike) keeps each cell's
    exact Python value, pickled."""
    if pd.api.types.is_unsigned_integer_dtype(series) and series.dtype.itemsize >= 8:
        return pa.array(column_values(series), type=pa.uint64()), False  # beyond int64: SQLite refuses, as before
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        missing = series.isna().to_numpy()
        ints = series.to_numpy(dtype=np.int64, na_value=0)
        return pa.array(ints, type=pa.int64(), mask=missing if missing.any() else None), False
    if pd.api.types.is_float_dtype(series):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(floats)
        return pa.array(floats, type=pa.float64(), mask=missing if missing.any() else None), False
    objects = series.to_numpy(dtype=object)
    shared = _shared_objects(objects)
    if shared is not None:  # a few objects (Decimal amounts, codes) shared by many rows: one text each
        codes, distinct = shared
        texts = [cell(v) for v in distinct.tolist()]
        if set(map(type, texts)) <= {str, type(None)}:
            return pa.DictionaryArray.from_arrays(codes, pa.array(texts, type=pa.large_string())), False
    if pd.api.types.infer_dtype(objects, skipna=False) == "string":
        return pa.array(objects, type=pa.large_string()), False  # text only: bound as it is
    if pd.api.types.infer_dtype(objects, skipna=True) in ("string", "empty"):
        # text and missing cells only: column_values binds the strings as they are and None for
        # what pd.isna calls missing
        missing = pd.isna(objects)
        return pa.array(objects, type=pa.large_string(), mask=missing, from_pandas=True), False
    values = column_values(series)
    kinds = set(map(type, values)) - {type(None)}
    if len(kinds) <= 1:
        kind = next(iter(kinds), str)
        arrow_type = {str: pa.large_string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(),
                      bytes: pa.large_binary()}.get(kind)
        if arrow_type is not None:
            try:
                return pa.array(values, type=arrow_type, from_pandas=False), False
            except (OverflowError, pa.ArrowException):
                pass  # ints beyond int64: pickled, and refused by SQLite as the foreground insert would
    return pa.array([pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for v in values], type=pa.large_binary()), True


def _shared_objects(objects: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes (int32) and the distinct objects, by identity (never by value: Decimal("1.0") and
    Decimal("1.00") are equal, their texts are not), when a column holds at most one distinct
    object per ``_SHARED`` rows; a sample of its first rows rules out the mostly distinct."""
    n = len(objects)
    if n < 1000 or n >= 2**31:
        return None
    ids = _object_ids(objects)
    head = ids[:4096]
    if len(pd.unique(head)) * _SHARED > len(head):
        return None
    codes, uniques = pd.factorize(ids)
    if len(uniques) * _SHARED > n:
        return None
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes] = np.arange(n)  # any row of each object will do: same id, same object
    return codes.astype(np.int32), objects[first]


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table of the values the foreground insert would bind, column by column."""
    arrays, fields = [], []
    for c in frame.columns:
        arr, pickled = arrow_column(frame.iloc[:, len(arrays)])  # by position: names may repeat
        arrays.append(arr)
        fields.append(pa.field(str(c), arr.type, metadata={PICKLED: b"1"} if pickled else None))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _write_ipc(table: pa.Table, path: Path) -> None:
    part = path.with_suffix(".part")
    with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    part.rename(path)  # the writer only ever opens whole files


class SpooledPendingTables(PendingTables):
    """:class:`PendingTables` whose frames a second process inserts, in order. ``append`` checks
    the frame as the foreground does (columns, declared types) and raises a writer's failure;
    :meth:`wait` (``commit_stage`` calls it) waits for the writer and raises its failure as one
    line naming the table, after dropping the stage's pending tables; :meth:`discard` stops it."""

    def __init__(self, store: StagingStore, stage: str) -> None:
        super().__init__(store, stage)
        self.spool = spool_dir(store.path, stage)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._seq = 0
        self._last = ""  # the table of the latest frame handed over
        self.writer_peak_mb: float | None = None  # the writer process's VmHWM, once it has finished

    # -- main process ---------------------------------------------------------------------------

    def _write(self, name: str, frame: pd.DataFrame, declared: dict[str, type], create: bool) -> None:
        if frame.empty and not create:
            self._check_writer()
            return  # nothing to insert, nothing to (re)create
        self._check_writer()
        self._throttle()
        self._seq += 1
        path = self.spool / f"{self._seq:06d}-{name}.arrow"
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            _write_ipc(arrow_table(frame), path)
        except Exception as exc:  # a cell Arrow cannot hold, a full disk: nothing was handed over
            raise LoyaltyError(f"could not write pending table {name!r} to the staging database: "
                               f"{' '.join(str(exc).split())}", stage=self.stage, file=self.store.path) from exc
        message = {"name": name, "table": self.hidden_name(name), "file": path.name,
                   "create": {c: _SQL_NAMES[t] for c, t in declared.items()} if create else None}
        self._last = name
        self._send(message)
        checkpoint(self.stage, "spooled")  # a kill here leaves pending tables and spool files behind

    def _start(self) -> None:
        import loyalty_toolkit

        root = str(Path(loyalty_toolkit.__file__).resolve().parents[1])  # this package, importable there too
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        with open(self.spool / LOG, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "loyalty_toolkit.store.spool_writer", str(self.store.path), str(self.spool)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, env=env)
        self._stdin = self._proc.stdin

    def _send(self, message: dict[str, Any]) -> None:
        if self._proc is None:
            self._start()
        assert self._stdin is not None
        try:
            self._stdin.write(json.dumps(message).encode() + b"\n")
            self._stdin.flush()
        except OSError as exc:  # a broken pipe: the writer has stopped
            self._proc.wait()  # type: ignore[union-attr]
            self._check_writer()
            raise LoyaltyError(f"could not hand pending table {message['name']!r} to its writer process: {exc}",
                               stage=self.stage, file=self.store.path) from exc

    def _queued(self) -> list[Path]:
        return sorted(self.spool.glob("*.arrow")) if self.spool.is_dir() else []

    def _throttle(self) -> None:
        while len(self._queued()) >= MAX_QUEUED:
            self._check_writer()
            time.sleep(_POLL_S)

    def _check_writer(self) -> None:
        """Raise the writer's failure (dropping the pending tables) if it has stopped early."""
        if self._proc is not None and self._proc.poll() is not None:
            self._fail()

    def _fail(self) -> None:
        error = self._failure()
        self._stop()
        self.discard()
        raise error

    def _failure(self) -> LoyaltyError:
        """One line: the writer's own message, or (killed, crashed) the table it was writing."""
        proc = self._proc
        assert proc is not None
        lines = [ln for ln in self._log().splitlines() if ln.strip()]
        said = next((ln for ln in reversed(lines) if ln.startswith("could not write pending table")), None)
        if said is not None:
            return LoyaltyError(said, stage=self.stage, file=self.store.path)
        left = self._queued()  # the oldest file still there is the one it was inserting
        table = left[0].stem.split("-", 1)[1] if left else self._last
        code = proc.returncode
        how = (f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"stopped with exit code {code}" + (f" ({lines[-1].strip()})" if lines else ""))
        return LoyaltyError(f"could not write pending table {table!r} to the staging database: its writer "
                            f"process {how}", stage=self.stage, file=self.store.path)

    def _log(self) -> str:
        try:
            return (self.spool / LOG).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _stop(self) -> None:
        """End the writer now (the stage is discarding what it wrote) and wait until it is gone."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._stdin is not None:
                try:
                    self._stdin.close()
                except OSError:
                    pass
        self._proc = self._stdin = None

    def wait(self) -> None:
        if self._proc is None:
            return
        assert self._stdin is not None
        try:
            self._stdin.write(b'{"end": true}\n')
            self._stdin.close()
        except OSError:
            pass  # it has stopped already: its exit code says how
        code = self._proc.wait()
        if code != 0 or self._queued():
            self._fail()
        for line in self._log().splitlines():
            if line.startswith("peak_rss_kb "):
                self.writer_peak_mb = int(line.split()[1]) / 1024
        self._proc = self._stdin = None

    def discard(self) -> None:
        """Stop the writer, then drop the stage's pending tables and spool files (a crashed run's too)."""
        self._stop()
        super().discard()
        self.discard_spool()

    def published(self) -> None:
        super().published()
        self.discard_spool()

    def discard_spool(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)
        try:
            self.spool.parent.rmdir()  # no stage left spooling: leave no folder behind
        except OSError:
            pass
