"""Counts and exact sums over the large staging tables, computed by SQLite for stage 05.

At a million members ``lots`` holds about 6.5M rows and ``unit_transfers`` 4.3M: loading them as
frames of Python strings cost the report most of its time and 5.4 GB. The report's figures are
counts and exact sums, so SQLite computes them here and only the figures come back. Each query
answers as the frame code it replaces did (``shared.frames.text_column`` reads a missing value as
"" and any other value as its text: ``_text`` below does the same in SQL); a table that is absent
(a stage that did not apply) counts as empty. No index is needed: each figure is one scan, and an
``IN (SELECT ...)`` builds its own temporary index once per query.

Exact: integer micro-points are summed by SQLite's integer ``SUM`` (exact; it fails rather than
overflow), after checking that the column holds only integers (a REAL would make the sum a
float); amounts stored as exact text are grouped by value and summed as Decimals here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np

from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.model import ADDING, EXPIRED, OPEN, PENDING, SPENDING
from loyalty_toolkit.store.staging import StagingStore, stored_decimal

LIVE = f"status IN ('{OPEN}', '{PENDING}')"  # lots still owed: open, or pending (not yet unlocked)
_FETCH = 100_000  # rows fetched at a time for per-member results
# ISO UTC text as stage 03 writes it (``2026-03-29T01:30:00+00:00``, fractions of a second where
# there are some): values of this layout sort as text in the order of the instants they name. The
# layout is checked by separators and length (a GLOB without character classes costs a fifth of
# one with them: 0.1 s against 0.4 s at 1.4M lots); stage 03 writes the digits.
_UTC_LAYOUT = "(v GLOB '????-??-??T??:??:??+00:00' OR v GLOB '????-??-??T??:??:??.*+00:00')"
_LIVE_LEFT = f"{LIVE} AND [remaining_units] > 0"


def _live_values(column: str) -> str:
    """The open and pending lots with points left, with ``column`` as ``v`` (as stored: a value
    that is not text fails the layout check)."""
    return f"(SELECT [{column}] AS v, [user_id], [remaining_units], [source] FROM lots WHERE {_LIVE_LEFT})"


# The opening balances' part of a group's micro-points: charted apart from the ledger's lots (they
# all expire in one month and would flatten the calendar).
_OPENING_UNITS = "SUM(CASE WHEN [source] = 'opening' THEN [remaining_units] ELSE 0 END)"


def _text(column: str) -> str:
    """SQL for ``column`` read as text_column reads it: NULL -> '', anything else its text."""
    return f"COALESCE(CAST([{column}] AS TEXT), '')"


def _present(store: StagingStore, *tables: str) -> bool:
    return all(store.has_table(t) for t in tables)


def _columns(store: StagingStore, table: str) -> set[str]:
    return {r[1] for r in store.db.execute(f"PRAGMA table_info([{table}])").fetchall()}


def _require(store: StagingStore, table: str, *columns: str) -> None:
    missing = [c for c in columns if c not in _columns(store, table)]
    if missing:
        raise LoyaltyError(f"table {table!r} has no column {missing[0]!r}; the stage that made it is older than "
                           "the report", file=store.path)


def _not_integers(column: str) -> str:
    """SQL counting the rows whose ``column`` is neither an integer nor NULL: asked in the same scan
    as the sum, and :func:`_integers_only` refuses the sum if any (SQLite sums REALs as float)."""
    return f"COALESCE(SUM(typeof([{column}]) NOT IN ('integer', 'null')), 0)"


def _integers_only(store: StagingStore, table: str, column: str, not_integers: int) -> None:
    """Raise, naming the first offending value, if ``not_integers`` (:func:`_not_integers`) found
    any in ``table.column``."""
    if not_integers and store.has_table(table):
        bad = store.db.execute(f"SELECT [{column}] FROM [{table}] WHERE typeof([{column}]) NOT IN "
                               "('integer', 'null') LIMIT 1").fetchone()
        if bad is not None:
            raise LoyaltyError(f"table {table!r}, column {column!r}: {bad[0]!r} is not an integer number of "
                               "micro-points; the report sums them exactly and cannot", file=store.path)


def row_count(store: StagingStore, table: str) -> int:
    """Rows of ``table``; 0 if it is absent."""
    return store.count(table) if store.has_table(table) else 0


def exact_sum(store: StagingStore, table: str, column: str) -> Decimal:
    """The sum of an amount column (exact text, integers or NULL) as a Decimal, as ``stored_decimal``
    reads each value: grouped by value in SQLite, each distinct value converted once. Rows equal to
    0 are left out first (they add nothing). 0 if the table or column is absent."""
    if not store.has_table(table) or column not in _columns(store, table):
        return Decimal(0)
    cur = store.db.execute(f"SELECT [{column}], COUNT(*) FROM [{table}] WHERE [{column}] IS NOT NULL "
                           f"AND [{column}] != 0 GROUP BY [{column}]")
    return sum((stored_decimal(v) * n for v, n in cur.fetchall()), Decimal(0))


def count_in(store: StagingStore, table: str, column: str, other: str, other_column: str) -> int:
    """Rows of ``table`` whose ``column`` (as text) is one of ``other.other_column``'s values: a
    membership test by a temporary index, never a pairwise loop."""
    if not store.has_table(table):
        return 0
    if not store.has_table(other):
        return 0
    return store.db.execute(f"SELECT COUNT(*) FROM [{table}] WHERE {_text(column)} IN "
                            f"(SELECT {_text(other_column)} FROM [{other}])").fetchone()[0]


def transfer_figures(store: StagingStore) -> dict[str, int]:
    """From ``unit_transfers`` and ``unit_transfers_zero``, in micro-points where a unit:

    - ``count``: transfers committed;
    - ``points``: whole points transferred, adding - spending;
    - ``residue_units``: rounding residue of every transfer (zero-point ones too), adding - spending;
    - ``members_with_points``: distinct members with an adding transfer of at least one point;
    - ``in_member_map``: transfers whose (legacy id, target id) pair is a row of ``member_map``.
    """
    out = {"count": 0, "points": 0, "residue_units": 0, "members_with_points": 0, "in_member_map": 0}
    signed = "CASE WHEN [type] = '{s}' THEN -[{c}] ELSE [{c}] END"
    if store.has_table("unit_transfers"):
        _require(store, "unit_transfers", "legacy_id", "target_id", "type", "points", "residue_units")
        pairs = "0"
        if store.has_table("member_map"):
            pairs = (f"({_text('legacy_id')}, {_text('target_id')}) IN "
                     f"(SELECT {_text('legacy_id')}, {_text('target_id')} FROM member_map)")
        row = store.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM({signed.format(s=SPENDING, c='points')}), 0), "
            f"COALESCE(SUM({signed.format(s=SPENDING, c='residue_units')}), 0), "
            f"COUNT(DISTINCT CASE WHEN [type] = '{ADDING}' AND [points] > 0 THEN {_text('legacy_id')} END), "
            f"COALESCE(SUM({pairs}), 0), {_not_integers('points')}, {_not_integers('residue_units')} "
            "FROM unit_transfers").fetchone()
        _integers_only(store, "unit_transfers", "points", row[5])
        _integers_only(store, "unit_transfers", "residue_units", row[6])
        out.update(zip(("count", "points", "residue_units", "members_with_points", "in_member_map"), row[:5]))
    if store.has_table("unit_transfers_zero"):
        _require(store, "unit_transfers_zero", "type", "residue_units")
        residue, bad = store.db.execute(
            f"SELECT COALESCE(SUM({signed.format(s=SPENDING, c='residue_units')}), 0), {_not_integers('residue_units')} "
            "FROM unit_transfers_zero").fetchone()
        _integers_only(store, "unit_transfers_zero", "residue_units", bad)
        out["residue_units"] += residue
    return {k: int(v) for k, v in out.items()}


def lot_figures(store: StagingStore, expiry: str) -> dict[str, Any]:
    """From ``lots`` and ``lot_balances``, in micro-points:

    - ``expired_units``: points left in expired lots (no longer owed);
    - ``unmapped_live_units``: points left in open and pending lots of members not in ``member_map``;
    - ``unmapped_deficit_units``: the deficits of those members (``lot_balances``);

    and, in the same scan of the lots, over the open and pending lots with points left: the first
    and last non-empty value (text order) of column ``expiry`` (``first_expiry``, ``last_expiry``)
    and how many values are not ISO UTC text of stage 03's layout (``expiry_other_layout``), for
    which text order is not time order (:func:`live_lots_by_range`).
    """
    out: dict[str, Any] = {"expired_units": 0, "unmapped_live_units": 0, "unmapped_deficit_units": 0,
                           "first_expiry": None, "last_expiry": None, "expiry_other_layout": 0}
    # no member_map: nobody is mapped (an empty list, so NOT IN holds for every lot)
    mapped = f"(SELECT {_text('legacy_id')} FROM member_map)" if store.has_table("member_map") else "(SELECT 1 WHERE 0)"
    if store.has_table("lots"):
        _require(store, "lots", "user_id", "status", "remaining_units", expiry)
        # text order; a value that is not text of stage 03's layout is caught by live_lots_by_range
        live_expiry = f"CASE WHEN {_LIVE_LEFT} AND [{expiry}] != '' THEN [{expiry}] END"
        layout = _UTC_LAYOUT.replace("v ", f"[{expiry}] ")
        row = store.db.execute(
            f"SELECT COALESCE(SUM(CASE WHEN [status] = '{EXPIRED}' THEN [remaining_units] END), 0), "
            f"COALESCE(SUM(CASE WHEN {LIVE} AND {_text('user_id')} NOT IN {mapped} THEN [remaining_units] END), 0), "
            f"MIN({live_expiry}), MAX({live_expiry}), "
            # conditions in WHEN: SQLite stops at the first false one there, not in a value
            f"COALESCE(SUM(CASE WHEN {_LIVE_LEFT} AND [{expiry}] != '' THEN CASE WHEN {layout} THEN 0 ELSE 1 END END), 0), "
            f"{_not_integers('remaining_units')} FROM lots").fetchone()
        _integers_only(store, "lots", "remaining_units", row[5])
        out.update(zip(("expired_units", "unmapped_live_units", "first_expiry", "last_expiry", "expiry_other_layout"),
                       row[:5]))
    if store.has_table("lot_balances"):
        _require(store, "lot_balances", "user_id", "deficit_units")
        deficit, bad = store.db.execute(
            f"SELECT COALESCE(SUM(CASE WHEN {_text('user_id')} NOT IN {mapped} THEN [deficit_units] END), 0), "
            f"{_not_integers('deficit_units')} FROM lot_balances").fetchone()
        _integers_only(store, "lot_balances", "deficit_units", bad)
        out["unmapped_deficit_units"] = deficit
    return {k: v if k.endswith("_expiry") else int(v) for k, v in out.items()}


def owed_per_member(store: StagingStore) -> np.ndarray:
    """Micro-points owed per member at the cutover (int64, one per member, in no particular order):
    the ledger balance (``lot_balances``) plus the member's opening lots (``lots`` from source
    "opening"). Empty when stage 03 did not run."""
    parts = []
    if store.has_table("lot_balances"):
        _require(store, "lot_balances", "user_id", "balance_units")
        parts.append(f"SELECT {_text('user_id')} AS k, [balance_units] AS u FROM lot_balances")
    if store.has_table("lots") and "source" in _columns(store, "lots"):
        parts.append(f"SELECT {_text('user_id')} AS k, [remaining_units] AS u FROM lots WHERE {_text('source')} = 'opening'")
    if not parts:
        return np.zeros(0, dtype=np.int64)
    # one row per member: its sum, and whether any of its amounts was not an integer
    cur = store.db.execute(f"SELECT COALESCE(SUM(u), 0), MAX(typeof(u) NOT IN ('integer', 'null')) "
                           f"FROM ({' UNION ALL '.join(parts)}) GROUP BY k")
    chunks = []
    while rows := cur.fetchmany(_FETCH):
        sums, bad = zip(*rows)
        if any(bad):
            _integers_only(store, "lot_balances", "balance_units", 1)
            _integers_only(store, "lots", "remaining_units", 1)  # one of the two raises
        chunks.append(np.fromiter(sums, dtype=np.int64, count=len(rows)))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _range_label(bounds: list[str], labels: list[str], lo: int, hi: int) -> str:
    """SQL giving ``labels[i]`` for ``bounds[i] <= v < bounds[i + 1]`` (i in lo..hi): a balanced
    tree of comparisons, a handful per row however many ranges."""
    if lo == hi:
        return _quoted(labels[lo])
    mid = (lo + hi + 1) // 2
    return (f"CASE WHEN v < {_quoted(bounds[mid])} THEN {_range_label(bounds, labels, lo, mid - 1)} "
            f"ELSE {_range_label(bounds, labels, mid, hi)} END")


def live_lots_by_range(store: StagingStore, column: str, bounds: list[str], labels: list[str],
                       empty_label: str) -> list[dict[str, Any]]:
    """Open and pending lots with points left, grouped by the range of their ``column`` value:
    ``labels[i]`` for ``bounds[i] <= value < bounds[i + 1]`` in text order, ``empty_label`` for
    none. Per label: the lots, the distinct members and the micro-points left, in label order.
    Only after :func:`lot_figures` (same ``column``) has found every value of stage 03's layout
    (text order is time order) and ``bounds[0]`` at most its ``first_expiry``; it checked that the
    micro-points are integers in the same scan, so this query carries no check (a third faster)."""
    if not store.has_table("lots"):
        return []
    if len(bounds) != len(labels):
        raise ValueError("one label per range")
    ranges = _range_label(bounds, labels, 0, len(bounds) - 1) if bounds else "NULL"
    label = f"CASE WHEN v IS NULL OR v = '' THEN {_quoted(empty_label)} ELSE {ranges} END"
    _require(store, "lots", "source")
    rows = store.db.execute(
        f"SELECT {label} AS label, COUNT(*), COUNT(DISTINCT {_text('user_id')}), SUM([remaining_units]), "
        f"{_OPENING_UNITS} FROM {_live_values(column)} GROUP BY label ORDER BY label").fetchall()
    return [{"label": r[0], "lots": int(r[1]), "members": int(r[2]), "units": int(r[3]), "opening_units": int(r[4])}
            for r in rows]


def live_lot_instants(store: StagingStore, column: str) -> list[str]:
    """The distinct values (as text, missing -> "") of ``column`` over the open and pending lots
    with points left: a few thousand dates, whatever the number of lots."""
    if not store.has_table("lots"):
        return []
    _require(store, "lots", "status", "remaining_units", column)
    cur = store.db.execute(f"SELECT DISTINCT {_text(column)} FROM lots WHERE {LIVE} AND [remaining_units] > 0")
    return sorted(r[0] for r in cur.fetchall())


def live_lots_by_label(store: StagingStore, column: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Open and pending lots with points left, grouped by the label of their ``column`` value
    (``labels``: every value of :func:`live_lot_instants` -> its label, e.g. a month): per label the
    lots, the distinct members and the micro-points left, labels in order. The labels go in as one
    JSON parameter; lots are scanned once and each looks its label up by an automatic index (the
    CROSS JOIN keeps SQLite from scanning the lots once per label)."""
    if not store.has_table("lots") or not labels:
        return []
    rows = store.db.execute(
        "WITH labels(value, label) AS MATERIALIZED (SELECT key, value FROM json_each(?)) "
        f"SELECT labels.label, COUNT(*), COUNT(DISTINCT {_text('user_id')}), SUM([remaining_units]), "
        f"{_not_integers('remaining_units')}, {_OPENING_UNITS} FROM lots CROSS JOIN labels ON labels.value = {_text(column)} "
        f"WHERE {_LIVE_LEFT} GROUP BY labels.label ORDER BY labels.label", [json.dumps(labels)]).fetchall()
    _integers_only(store, "lots", "remaining_units", sum(r[4] for r in rows))
    return [{"label": r[0], "lots": int(r[1]), "members": int(r[2]), "units": int(r[3]), "opening_units": int(r[5])}
            for r in rows]
