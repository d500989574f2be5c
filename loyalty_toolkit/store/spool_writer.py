"""The writer process of store/spool.py: inserts spooled Arrow files into the staging database.

    python -m loyalty_toolkit.store.spool_writer STAGING_DB SPOOL_DIR

Reads one JSON message a line on stdin (``{"name", "table", "file", "create"}``, then
``{"end": true}``), in order: (re)creates the hidden table when ``create`` gives its declared
columns, inserts the file's rows as ``PendingTables.append`` would (same ``bulk.insert_columns``,
same slices of rows, one transaction per file) and deletes the file. On the first failure it
writes one line naming the table to stderr and exits 1, leaving that file in place; if stdin
ends without the end message, or its parent is gone (the stage's process died), it stops
without writing more.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlite_utils

from loyalty_toolkit.store.bulk import insert_columns
from loyalty_toolkit.store.spool import PICKLED
from loyalty_toolkit.store.staging import _INSERT_ROWS

_TYPES = {"INTEGER": int, "REAL": float, "TEXT": str}
_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
BUSY_TIMEOUT_S = 600.0  # the stage's process may read the database meanwhile; never give up on a lock


def arrow_values(column: pa.ChunkedArray | pa.Array, pickled: bool) -> list[Any]:
    """The column's cells as the Python values the foreground insert binds (nulls as None)."""
    if pickled:
        return [pickle.loads(b) for b in column.to_pylist()]
    if pa.types.is_dictionary(column.type):  # codes into one text per distinct object
        out: list[Any] = []
        for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
            texts = chunk.dictionary.to_pylist()
            out.extend(map(texts.__getitem__, chunk.indices.to_numpy(zero_copy_only=False).tolist()))
        return out
    if column.null_count == 0 and any(is_type(column.type) for is_type in _NUMERIC):
        return column.to_numpy().tolist()  # C loops, as bulk.column_values
    return column.to_pylist()


def insert_file(db: sqlite_utils.Database, message: dict[str, Any], spool: Path) -> None:
    """One message: (re)create the hidden table if asked, insert the file's rows, delete the file."""
    path = spool / message["file"]
    hidden = message["table"]
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    pickled = [bool(f.metadata and f.metadata.get(PICKLED)) for f in table.schema]
    names = table.column_names
    with db.atomic():
        if message["create"] is not None:
            columns = {c: _TYPES[t] for c, t in message["create"].items()}
            db.execute(f"DROP TABLE IF EXISTS [{hidden}]")
            db[hidden].create(columns if columns else {"_empty": str})
        for start in range(0, table.num_rows, _INSERT_ROWS):
            part = table.slice(start, _INSERT_ROWS)
            insert_columns(db.conn, hidden, names, [arrow_values(part.column(i), pickled[i])
                                                    for i in range(len(names))])
    del table
    path.unlink()


def _peak_rss_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    db_path, spool = argv[0], Path(argv[1])
    db = sqlite_utils.Database(sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S))
    parent = os.getppid()
    ended = False
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if message.get("end"):
            ended = True
            break
        if os.getppid() != parent:
            break  # the stage's process died: what it queued is a crashed run's, dropped by its next run
        try:
            insert_file(db, message, spool)
        except Exception as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            sys.stderr.write(f"could not write pending table {message['name']!r} to the staging database: {text}\n")
            return 1
    db.close()
    peak = _peak_rss_kb()
    if peak is not None:
        sys.stderr.write(f"peak_rss_kb {peak}\n")
    return 0 if ended else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
