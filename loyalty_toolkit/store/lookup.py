"""Read-only look-ups of one member across a run's staging database (``loyalty-migrate explain``).

:func:`find_members` finds the member(s) an identifier names (legacy id, email, phone, card or
target id), normalising the query as stage 01 normalises members; :func:`member_rows` returns that
member's rows from every table the stages wrote, as lists of dicts.

Speed on a million members: the stages write their tables in bulk without indexes (an index per
member column would add seconds to every stage commit), so each query here is one scan of one
table with equality tests on a few columns, never a join or a correlated subquery. A look-up
reads each table at most twice (about twenty tables), so it costs time linear in the size of the
database and no memory beyond the member's own rows: 2.1 s of queries on a 1M-member, 2.2 GB
database (docs/support.md). Where a table has an index on the column, SQLite uses it.
Key lists go in as one JSON parameter (``IN (SELECT value FROM json_each(?))``), so a member with
thousands of lots is still one scan and never hits SQLite's parameter limit.

The database is opened read-only (``mode=ro``): explaining a member never changes the run record.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.normalize import normalize_email, normalize_phone

Rows = list[dict[str, Any]]

# Kinds of identifier a query can match, in the order they are reported.
LEGACY_ID, EMAIL, PHONE, CARD, TARGET_ID, LEDGER_USER, REJECTED = (
    "legacy id", "email", "phone", "card", "target id", "ledger user id", "rejected legacy id")


@dataclass
class MemberMatch:
    """One member a query names: the legacy id and every way the query reached it."""

    legacy_id: str
    matched_by: list[str] = field(default_factory=list)
    accepted: bool = True  # an accepted member of stage 01 (else a rejected one or a ledger-only user)


class StagingReader:
    """A read-only connection to ``staging.db`` that knows which tables and columns exist."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError("no staging database here: run the migration first (or give a run dir)",
                             file=self.path)
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        self.db = sqlite_utils.Database(conn)
        self._columns: dict[str, set[str]] = {}
        for name in self.db.table_names():
            self._columns[name] = {c.name for c in self.db[name].columns}

    @classmethod
    def for_run(cls, run_dir: Path) -> StagingReader:
        return cls(Path(run_dir) / "staging.db")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StagingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, table: str, *columns: str) -> bool:
        cols = self._columns.get(table)
        return cols is not None and all(c in cols for c in columns)

    def completed_stages(self) -> list[str]:
        """The stages committed in this database (``_stages``), in commit order."""
        if not self.has("_stages", "stage", "completed_at"):
            return []
        return [r["stage"] for r in self.db.query("SELECT stage FROM _stages ORDER BY completed_at, rowid")]

    def select(self, table: str, where: str, params: Iterable[Any], *, needs: Iterable[str] = (),
               order: str = "rowid") -> Rows | None:
        """Rows of ``table`` matching ``where`` (one scan); None when the table is not there (its
        stage has not committed), [] when it lacks a column the condition ``needs``."""
        if table not in self._columns:
            return None
        if not self.has(table, *needs):
            return []
        sql = f"SELECT * FROM [{table}] WHERE {where} ORDER BY {order}"
        return list(self.db.query(sql, list(params)))


def _keys(values: Iterable[str]) -> str:
    """A JSON array parameter for ``IN (SELECT value FROM json_each(?))``: distinct, non-empty."""
    return json.dumps(sorted({v for v in values if v}))


_IN = "IN (SELECT value FROM json_each(?))"


def query_keys(query: str, *, region: str) -> dict[str, str]:
    """The query as each identifier it could be, normalised as stage 01 normalises members: the
    trimmed text (legacy id, card, target id), the email key (case-folded local part, lower-cased
    domain) and the E.164 phone (national formats read in ``region``). Absent kinds are ''."""
    text = query.strip()
    if not text:
        raise UsageError("give a member: legacy id, email, phone, card number or target id")
    email = normalize_email(text).key if "@" in text else ""
    phone = normalize_phone(text, region)
    return {"text": text, "email_key": email, "phone": phone.e164 if phone.valid else ""}


def find_members(reader: StagingReader, query: str, *, region: str) -> list[MemberMatch]:
    """Every member ``query`` names, with how; several means the query is ambiguous.

    Looks in stage 01's accepted members (legacy id, email key, E.164 phone, card number), stage
    02's map (target id), stage 01's rejects (a rejected member's legacy id) and the ledger's
    per-user balances (a user id the member export does not have), in that order.
    """
    keys = query_keys(query, region=region)
    text, email, phone = keys["text"], keys["email_key"], keys["phone"]
    found: dict[str, MemberMatch] = {}

    def add(legacy_id: str, how: str, accepted: bool = True) -> None:
        m = found.setdefault(legacy_id, MemberMatch(legacy_id, accepted=accepted))
        if how not in m.matched_by:
            m.matched_by.append(how)

    members = reader.select(
        "members", "legacy_id = ? OR card_number = ? OR (? != '' AND email_key = ?) OR (? != '' AND phone = ?)",
        [text, text, email, email, phone, phone], needs=("legacy_id", "card_number", "email_key", "phone"))
    for r in members or []:
        for how, hit in ((LEGACY_ID, r["legacy_id"] == text), (EMAIL, bool(email) and r["email_key"] == email),
                         (PHONE, bool(phone) and r["phone"] == phone), (CARD, r["card_number"] == text)):
            if hit:
                add(r["legacy_id"], how)
    for r in reader.select("member_map", "target_id = ?", [text], needs=("target_id", "legacy_id")) or []:
        add(r["legacy_id"], TARGET_ID)
    if text not in found:
        for r in reader.select("member_rejects", "record_key = ?", [text], needs=("record_key",)) or []:
            add(text, REJECTED, accepted=False)
        if text not in found:
            for _ in reader.select("lot_balances", "user_id = ?", [text], needs=("user_id",)) or []:
                add(text, LEDGER_USER, accepted=False)
    return list(found.values())


# The tables a member's story reads, keyed by the column that holds the legacy id.
BY_LEGACY_ID: dict[str, str] = {
    "members": "legacy_id", "member_rejects": "record_key", "duplicate_candidates": "legacy_id",
    "member_map": "legacy_id", "mapping_review": "legacy_id", "import_results": "legacy_id",
    "lots": "user_id", "lot_allocations": "user_id", "lot_balances": "user_id",
    "reconciliation_member": "user_id", "transfer_per_member": "user_id", "unit_transfers": "legacy_id",
    "unit_transfers_zero": "legacy_id", "transfer_review": "legacy_id", "reward_state": "member_id",
    "reward_attributions": "member_id", "reward_burns": "member_id", "reward_coupons": "legacy_id",
    "reward_import": "member_id",
}


def member_rows(reader: StagingReader, legacy_id: str) -> dict[str, Rows | None]:
    """The member's rows from each table (None for a table its stage has not written).

    Besides the tables keyed by legacy id (``BY_LEGACY_ID``): the other members of its duplicate
    groups (``duplicate_peers``), opening-balance rows sharing its phone or email key (matched or
    not), the reference orphans naming it or its card, and the rejects touching it: stage 01's by
    legacy id; stage 03's by legacy id, by its lots and opening rows, by ``deficit:<id>`` and by
    the user id in their value; stage 04's by its card or its attribution ids.
    """
    rows: dict[str, Rows | None] = {}
    for table, column in BY_LEGACY_ID.items():
        rows[table] = reader.select(table, f"[{column}] = ?", [legacy_id], needs=(column,),
                                    order="line, rowid" if table == "lot_allocations" else "rowid")
    member = (rows["members"] or [{}])[0]
    card = str(member.get("card_number") or "")
    phone, email_key = str(member.get("phone") or ""), str(member.get("email_key") or "")

    groups = [r["group_id"] for r in rows["duplicate_candidates"] or []]
    rows["duplicate_peers"] = reader.select("duplicate_candidates", f"group_id {_IN} AND legacy_id != ?",
                                            [_keys(groups), legacy_id], needs=("group_id", "legacy_id"))
    opening_lot_ids = [r["lot_id"] for r in rows["lots"] or [] if r.get("source") == "opening"]
    rows["opening_balances"] = reader.select(
        "opening_balances", f"(? != '' AND phone = ?) OR (? != '' AND email_key = ?) OR lot_id {_IN}",
        [phone, phone, email_key, email_key, _keys(opening_lot_ids)], needs=("phone", "email_key", "lot_id"),
        order="line")
    opening_ids = opening_lot_ids + [r["lot_id"] for r in rows["opening_balances"] or []]
    rows["opening_unmatched"] = reader.select("opening_unmatched", f"legacy_id = ? OR lot_id {_IN}",
                                              [legacy_id, _keys(opening_ids)], needs=("legacy_id", "lot_id"),
                                              order="line")
    rows["reference_orphans"] = reader.select("reference_orphans", f"legacy_id = ? OR ref_value {_IN}",
                                              [legacy_id, _keys([legacy_id, card])],
                                              needs=("legacy_id", "ref_value"), order="input, line")
    lot_ids = [r["lot_id"] for r in rows["lots"] or []] + opening_ids
    rows["transfer_rejects"] = reader.select(
        "transfer_rejects", f"record_key {_IN} OR ([column] = 'user_id' AND value = ?)",
        [_keys([legacy_id, f"deficit:{legacy_id}", *lot_ids]), legacy_id], needs=("record_key", "column", "value"),
        order="file, line")
    attributions = [r["attribution_id"] for r in rows["reward_state"] or []]
    attributions += [r["attribution_id"] for r in rows["reward_attributions"] or []]
    rows["reward_rejects"] = reader.select(
        "reward_rejects", f"record_key {_IN} OR (? != '' AND [column] = 'card_code' AND value = ?)",
        [_keys([card, *attributions]), card, card], needs=("record_key", "column", "value"),
        order="file, line")
    return rows
