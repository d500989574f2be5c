"""Persistence: the only package that opens a database.

``staging`` is the run's staging database (``RUN_DIR/staging.db``); ``rehearsal`` is the local
rehearsal of the target platform's member store (``RUN_DIR/rehearsal/target.db``).
"""

from loyalty_toolkit.store.staging import STAGES_TABLE, PendingTables, StagingStore, stored_decimal

__all__ = ["STAGES_TABLE", "PendingTables", "StagingStore", "stored_decimal"]
