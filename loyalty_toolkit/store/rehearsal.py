"""The rehearsal target's member store: what the emulated platform already holds.

A rehearsal, not the platform: it keeps the members the local import created, so a second import
of the same people is refused as the platform would refuse it, and so its member export can be
written in the platform's format.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlite_utils

MEMBERS_TABLE = "members"
IMPORTS_TABLE = "imports"


class RehearsalTargetStore:
    """``RUN_DIR/rehearsal/target.db``: members (with their assigned IDs) and the import log."""

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            self.path.unlink()
        self.db = sqlite_utils.Database(self.path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RehearsalTargetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def members(self) -> pd.DataFrame:
        """Every member the rehearsal target holds, in the order they were created."""
        if MEMBERS_TABLE not in self.db.table_names():
            return pd.DataFrame()
        return pd.DataFrame(list(self.db[MEMBERS_TABLE].rows_where(order_by="rowid")))

    def record_import(self, file: str, new_members: pd.DataFrame, totals: dict[str, int]) -> None:
        """Add the members one import created and log the import, in one transaction."""
        with self.db.atomic():
            if len(new_members):
                if MEMBERS_TABLE not in self.db.table_names():
                    self.db[MEMBERS_TABLE].create({c: str for c in new_members.columns}, pk="target_id")
                cols = ", ".join(f"[{c}]" for c in new_members.columns)
                marks = ", ".join("?" * len(new_members.columns))
                # executemany: sqlite-utils' insert_all costs seconds per hundred thousand members.
                self.db.conn.executemany(f"INSERT INTO [{MEMBERS_TABLE}] ({cols}) VALUES ({marks})",
                                         new_members.itertuples(index=False, name=None))
            self.db[IMPORTS_TABLE].insert({"file": file, **totals})
