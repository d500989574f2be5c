"""Member look-ups in a run's staging database: every identifier, normalised as stage 01 does, read-only."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.store.lookup import (
    CARD,
    EMAIL,
    LEDGER_USER,
    LEGACY_ID,
    PHONE,
    REJECTED,
    TARGET_ID,
    StagingReader,
    find_members,
    member_rows,
    query_keys,
)


@pytest.fixture
def reader(explain_run):
    with StagingReader.for_run(explain_run()) as r:
        yield r


def found(reader, query):
    return {m.legacy_id: m.matched_by for m in find_members(reader, query, region="FR")}


@pytest.mark.parametrize("query, how", [
    ("user-a", LEGACY_ID),
    ("  user-a ", LEGACY_ID),
    ("ADA.lovelace@EXAMPLE.com", EMAIL),           # the local part is case-folded for matching, as stage 01 does
    ("06 12 34 56 78", PHONE),                     # national format, read in the run's default region
    ("+33 6 12 34 56 78", PHONE),
    ("1111222233", CARD),
    ("tgt-a", TARGET_ID),
])
def test_each_identifier_finds_the_member(reader, query, how):
    assert found(reader, query) == {"user-a": [how]}


def test_the_query_is_normalised_like_stage_01():
    keys = query_keys(" Ada.Lovelace@Example.COM ", region="FR")
    assert keys == {"text": "Ada.Lovelace@Example.COM", "email_key": "ada.lovelace@example.com", "phone": ""}
    assert query_keys("0612345678", region="FR")["phone"] == "+33612345678"
    assert query_keys("0612345678", region="VN")["phone"] != "+33612345678"


def test_a_shared_email_names_several_members(reader):
    assert found(reader, "shared@example.com") == {"user-b": [EMAIL], "user-c": [EMAIL]}


def test_rejected_and_ledger_only_members_are_found_by_legacy_id(reader):
    (rejected,) = find_members(reader, "user-r", region="FR")
    assert (rejected.matched_by, rejected.accepted) == ([REJECTED], False)
    (ledger_only,) = find_members(reader, "user-x", region="FR")
    assert (ledger_only.matched_by, ledger_only.accepted) == ([LEDGER_USER], False)


def test_nothing_matches_an_unknown_identifier(reader):
    assert found(reader, "nobody@example.com") == {}
    assert found(reader, "0699999999") == {}
    with pytest.raises(UsageError, match="give a member"):
        find_members(reader, "   ", region="FR")


def test_member_rows_hold_only_that_members_rows(reader):
    rows = member_rows(reader, "user-a")
    assert [r["lot_id"] for r in rows["lots"]] == ["ab3cde", "gp-old", "gp-new", "gp-pend", "opening:abc"]
    assert [(a["line"], a["lot_id"]) for a in rows["lot_allocations"]] == [(3, "ab3cde"), (5, "gp-old"), (7, "gp-new")]
    assert [t["transfer_id"] for t in rows["unit_transfers"]] == ["t-ab3cde", "t-new", "t-pend", "t-open"]
    assert rows["member_map"][0]["target_id"] == "tgt-a"
    assert rows["unit_transfers_zero"] == [] and rows["transfer_review"] == []
    # both opening rows that carry the member's email: its own lot, and the one whose phone is another's
    assert [r["lot_id"] for r in rows["opening_balances"]] == ["opening:abc", "opening:def"]
    assert [r["lot_id"] for r in rows["opening_unmatched"]] == ["opening:def"]


def test_rejects_touching_a_member(reader):
    a = member_rows(reader, "user-a")
    # the refused ledger row (keyed by user id) and the opening row naming the member, not user-c's lot
    assert [(r["reason_code"], r["line"]) for r in a["transfer_rejects"]] == [("OPENING_NO_MEMBER", 3),
                                                                              ("POINTS_PRECISION", 9)]
    # a burn of the member's attribution; the unknown card of someone else is not theirs
    assert [r["reason_code"] for r in a["reward_rejects"]] == ["ALREADY_BURNED"]
    c = member_rows(reader, "user-c")
    assert [r["reason_code"] for r in c["transfer_rejects"]] == ["MEMBER_UNMAPPED"]  # keyed by lot, user id in value
    assert [r["ref_value"] for r in c["reference_orphans"]] == ["user-c"]
    assert [r["legacy_id"] for r in c["duplicate_peers"]] == ["user-b"]
    r = member_rows(reader, "user-r")
    assert [x["reason_code"] for x in r["member_rejects"]] == ["NO_IDENTIFIER"] and r["members"] == []


def test_a_table_whose_stage_did_not_commit_is_none(explain_run):
    with StagingReader.for_run(explain_run(without=("reward_state", "reward_rejects"))) as r:
        rows = member_rows(r, "user-a")
    assert rows["reward_state"] is None and rows["reward_rejects"] is None
    assert rows["reward_attributions"] is not None


def test_the_database_is_opened_read_only(explain_run):
    run_dir = explain_run()
    before = hashlib.sha256((run_dir / "staging.db").read_bytes()).hexdigest()
    with StagingReader.for_run(run_dir) as r:
        member_rows(r, "user-a")
        find_members(r, "shared@example.com", region="FR")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            r.db.execute("DELETE FROM members")
    assert hashlib.sha256((run_dir / "staging.db").read_bytes()).hexdigest() == before


def test_a_run_dir_without_a_database_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no staging database"):
        StagingReader.for_run(tmp_path)


def test_each_table_is_read_in_one_scan(reader):
    """At a million members a look-up must not loop over rows: count the statements it runs."""
    statements: list[str] = []
    reader.db.conn.set_trace_callback(statements.append)
    find_members(reader, "user-a", region="FR")
    member_rows(reader, "user-a")
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    tables = [s.split("FROM [", 1)[1].split("]", 1)[0] for s in selects]
    assert len(selects) == len(tables) <= 30
    assert max(tables.count(t) for t in tables) == 2  # members and member_map: once to find, once to tell
    assert not any(" JOIN " in s.upper() for s in selects)
