"""Explain a member: the story built from their staging rows, its exact arithmetic, masking, and the
usage errors (ambiguous, not found); once on a real stage 03 commit of the sample program."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.stages.context import open_stage
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.store.lookup import StagingReader, member_rows
from loyalty_toolkit.support.explain import build_story, mask_query, render_story
from loyalty_toolkit.support.explain_run import explain_member
from loyalty_toolkit.support.explain_story import fmt

CUTOVER = "2026-06-30T23:59:59Z"


def story_of(run_dir, legacy_id):
    with StagingReader.for_run(run_dir) as r:
        return build_story(legacy_id, member_rows(r, legacy_id), query=legacy_id, cutover=CUTOVER)


def section(text: str, title: str) -> str:
    """The lines of one section of the rendered story (up to the next blank line)."""
    start = text.index(title)
    end = text.find("\n\n", start)
    return text[start:end if end >= 0 else None]


def test_the_balance_is_recomputed_exactly_from_the_rows(explain_run):
    b = story_of(explain_run(), "user-a").balance
    assert (b.accrued, b.redeemed, b.expired, b.opening) == (Decimal("172.5"), 90, 30, 16)
    assert (b.open, b.pending, b.deficit) == (56, Decimal("12.5"), 0)
    assert (b.transferred, b.residue, b.rejected, b.review) == (68, Decimal("0.5"), 0, 0)
    assert b.owed == b.owed_lots == b.accounted == Decimal("68.5")


def test_seed_004_lot_ab3cde_fallback_expiry_and_refused_row(explain_run):
    text = explain_member(explain_run(), "user-a")
    lots = section(text, "Lots at the cutover")
    # User A accrues 100 as ab3cde and redeems 75, leaving 25 on that lot
    assert ("ab3cde: accrued 100 on 2026-01-10T13:00:00+00:00 (ledger line 2)" in lots
            and "consumed 75: 75 by line 3 (link)\n      open: 25 remaining" in lots)
    assert "consumed 5: 5 by line 7 (fallback_missing_link: FALLBACK)" in lots
    assert "expired: 30 expired at the cutover (end <= cutover): lost to the member" in lots
    assert "pending: 12.5 owed, locked until 2026-08-01T00:00:00+00:00" in lots
    assert "t-pend: adding 12 (exact 12.5, residue 0.5)" in section(text, "Unit transfers produced")
    rejects = section(text, "Rejects touching this member: 3")
    assert "points_liability.csv line 9: POINTS_PRECISION (Loyalty Points = '268.28000000000003')" in rejects
    assert "ALREADY_BURNED" in rejects and "CARD_UNKNOWN" not in text
    why = section(text, "Why this balance")
    assert ("accrued 172.5 - redeemed 90 - expired 30 + opening 16 = owed 68.5 = transferred 68 + residue 0.5"
            " + rejected 0 + held for review 0.") in why
    assert "1 ledger row(s) were refused and count in none of these figures: line 9 (POINTS_PRECISION" in why
    assert "Both sides tie exactly (68.5 = 68.5)" in why
    assert "OPENING_NO_MEMBER" in section(text, "Opening balances")


def test_a_negative_balance_and_an_unmapped_member(explain_run):
    run_dir = explain_run()
    b_text = explain_member(run_dir, "user-b")
    assert "ledger line 12: 15 at Center A: gp-b1 10 (link), NO LOT 5 (negative balance)" in b_text
    assert "negative balance: 5 redeemed beyond every lot (never clipped); held for review (NEGATIVE_BALANCE)" in b_text
    assert "owed -5 = transferred 0 + residue 0 + rejected 0 + held for review -5." in b_text
    # a redemption beyond every lot is a deficit, not a fallback: explain does not call it one
    assert "FALLBACK" not in b_text and "fallback" not in b_text
    assert "paid at least partly by a fallback" in section(explain_member(run_dir, "user-a"), "Why this balance")
    c = story_of(run_dir, "user-c")
    assert (c.balance.owed, c.balance.rejected, c.target_id) == (7, 7, "")
    c_text = render_story(c)
    assert "not mapped: no target member ID" in c_text and "review: ambiguous email s***@example.com" in c_text
    assert "MEMBER_UNMAPPED (user_id = 'user-c')" in c_text


def test_a_carried_negative_balance_is_a_spending_transfer(explain_run):
    def carried(rows):
        spend = dict(rows[0], transfer_id="t-deficit", legacy_id="user-b", target_id="tgt-b", type="spending",
                     points=5, points_exact="5", residue="0", expires_at="", unlock_at="", lot_ids="deficit:user-b")
        return [*rows, spend]

    run_dir = explain_run(edit={"unit_transfers": carried, "transfer_review": lambda rows: []})
    text = explain_member(run_dir, "user-b")
    assert "negative balance: 5 redeemed beyond every lot (never clipped); carried as a spending transfer" in text
    assert "owed -5 = transferred -5 + residue 0 + rejected 0 + held for review 0." in text
    assert "Both sides tie exactly (-5 = -5)" in text


def test_members_that_never_migrated(explain_run):
    run_dir = explain_run()
    assert "not migrated: stage 01 rejected legacy id user-r: NO_IDENTIFIER (members.csv line 5)" in \
        explain_member(run_dir, "user-r")
    x = explain_member(run_dir, "user-x")
    assert "not in the member export" in x and "9 points expired on lots" in x


def test_a_row_that_disagrees_with_the_gate_is_called_out(explain_run):
    def one_point_more(rows):
        return [dict(r, points=r["points"] + 1) if r["transfer_id"] == "t-new" else r for r in rows]

    text = explain_member(explain_run(edit={"unit_transfers": one_point_more}), "user-a")
    assert "DOES NOT TIE: owed 68.5, lots 68.5, accounted 69.5" in text


def test_personal_data_is_masked_unless_asked(explain_run):
    run_dir = explain_run()
    masked = explain_member(run_dir, "ada.lovelace@example.com")
    for secret in ("Lovelace", "ada.lovelace", "Ada.Lovelace", "+33612345678", "1111222233", "+33600000000"):
        assert secret not in masked
    assert "query 'a***@example.com' matched by email" in masked and "card       ******2233" in masked
    shown = explain_member(run_dir, "ada.lovelace@example.com", show_pii=True)
    assert "name       Ada Lovelace" in shown and "phone      +33612345678" in shown and "1111222233" in shown
    assert "--show-pii" not in shown


def test_mask_query_hides_only_what_looks_personal():
    assert mask_query("user-a") == "user-a" and mask_query("G0000001") == "G0000001"
    assert mask_query("jean@example.com") == "j***@example.com"
    assert mask_query("+33 6 12 34 56 78").endswith("6 78") and "12 34" not in mask_query("+33 6 12 34 56 78")
    assert mask_query("1111222233", ["card"]) == "******2233"
    assert mask_query("1111222233", ["card"], show_pii=True) == "1111222233"


def test_ambiguous_and_unknown_queries_are_usage_errors(explain_run):
    run_dir = explain_run()
    with pytest.raises(UsageError) as ambiguous:
        explain_member(run_dir, "Shared@Example.com")
    line = ambiguous.value.one_line()
    assert "2 members match 'S***@Example.com': user-b (email), user-c (email)" in line
    assert "\n" not in line and "shared@" not in line.lower()
    with pytest.raises(UsageError, match="no member matches 'n\\*\\*\\*@example.com'"):
        explain_member(run_dir, "nobody@example.com")
    with pytest.raises(UsageError, match="no manifest.json"):
        explain_member(run_dir.parent, "user-a")


def test_stages_that_did_not_commit_are_named(explain_run):
    text = explain_member(explain_run(without=("reward_state", "reward_attributions", "reward_burns",
                                               "reward_coupons", "reward_rejects")), "user-a")
    assert "stage(s) rewards did not commit" in text and "Rewards (stage 04)" not in text
    assert "Why this balance" in text


def test_explain_a_member_of_a_real_stage_03_commit(program):
    """The sample program's member 2 holds seed 004's lot ab3cde: the story reads stage 03's real tables."""
    ctx = open_stage("transfers", str(program / "migration.yml"), str(program / "runs/t"))
    outcome = s03_transfers.run(ctx)
    s03_transfers.commit(ctx, outcome, s03_transfers.gate(ctx, outcome))
    with StagingReader.for_run(program / "runs/t") as r:
        story = build_story("G0000002", member_rows(r, "G0000002"), cutover=str(ctx.config.migration.cutover))
        stored = {row["user_id"]: row for row in r.select("reconciliation_member", "1", [])}
        checked = 0
        for user_id in list(stored)[:40]:  # every member's recomputed balance ties, as the gate proved
            s = build_story(user_id, member_rows(r, user_id))
            assert s.balance.owed == s.balance.owed_lots == s.balance.accounted, user_id
            assert s.balance.owed - s.balance.opening == Decimal(stored[user_id]["owed_ledger"]), user_id
            checked += 1
    assert checked == 40
    text = render_story(story)
    assert "ab3cde: accrued 100" in text and "consumed 75: 75 by line" in text and "open: 25 remaining" in text
    owed = fmt(story.balance.owed)
    assert f"Both sides tie exactly ({owed} = {owed})" in text and "DOES NOT TIE" not in text
