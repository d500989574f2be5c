"""reconcile / roll_forward: points owed at the cutover computed two ways, tolerance zero."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import LEDGER_COLUMNS
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.ledger.parse import parse_ledger
from loyalty_toolkit.stages.transfers.lots import build_lots
from loyalty_toolkit.stages.transfers.reconcile import (
    ROLL_FORWARD_COLUMNS,
    cross_center_redemptions,
    cross_center_summary,
    reconcile,
    reconcile_by,
    roll_forward,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ledger"
CUTOVER = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
D = Decimal


def load(*names: str) -> pd.DataFrame:
    frames = []
    for name in names:
        f = to_frame(read_table(FIXTURES / name, stage="transfers"), LEDGER_COLUMNS)
        f["_line"] += 1000 * len(frames)  # several files in one ledger keep distinct lines
        frames.append(f)
    return parse_ledger(pd.concat(frames, ignore_index=True), source_file="ledger", timezone="UTC").entries


def ledger(*rows: tuple) -> pd.DataFrame:
    """(kind, user, guestpointsid, points, day, end day, center, program) -> hand-built entries."""
    out = []
    for i, (kind, user, gp, pts, day, end, center, program) in enumerate(rows):
        out.append({"line": i + 2, "user_id": user, "kind": kind, "guestpointsid": gp, "points": D(pts),
                    "action_at_utc": f"{day}T00:00:00+00:00", "effective_start_utc": "",
                    "effective_end_utc": f"{end}T00:00:00+00:00" if end else "", "program": program,
                    "center": center, "accrual_center": center if kind == "accrual" else "",
                    "payment_center": center if kind == "redemption" else ""})
    return pd.DataFrame(out, columns=["line", "user_id", "kind", "guestpointsid", "points", "action_at_utc",
                                      "effective_start_utc", "effective_end_utc", "program", "center",
                                      "accrual_center", "payment_center"])


def A(user, gp, pts, day, end="", center="Paris", program="Regular"):
    return ("accrual", user, gp, pts, day, end, center, program)


def R(user, gp, pts, day, center="Paris", program="Regular"):
    return ("redemption", user, gp, pts, day, "", center, program)


def row(frame: pd.DataFrame, key: str, value: str) -> dict:
    return frame.set_index(key).loc[value].to_dict()


def both(entries: pd.DataFrame):
    return entries, build_lots(entries, cutover=CUTOVER)


# -- the seed examples ----------------------------------------------------------------------------


def test_seed_examples_reconcile_per_member():
    entries, lots = both(load("tom_tiers.csv", "user_a_ab3cde.csv", "cross_center.csv"))
    rec = reconcile(entries, lots)
    assert rec.ok.all()
    owed = dict(zip(rec.user_id, rec.owed_ledger))
    assert owed == {"tom-0001": D(21), "john-0002": D(5), "user-a": D(25), "user-b": D(25)}
    assert dict(zip(rec.user_id, rec.owed_lots)) == owed
    a = row(rec, "user_id", "user-a")
    assert (a["accrued"], a["redeemed"], a["expired"], a["open"], a["difference"]) == (D(100), D(75), D(0), D(25), D(0))


def test_per_center_redemptions_settle_the_lots_center():
    entries, lots = both(load("cross_center.csv"))
    by_center = reconcile_by(entries, lots, by="center")
    assert by_center.ok.all()
    paris, lyon = row(by_center, "center", "Paris"), row(by_center, "center", "Lyon")
    assert (paris["accrued"], paris["redeemed"], paris["owed_ledger"]) == (D(40), D(25), D(15))
    assert (lyon["accrued"], lyon["redeemed"], lyon["owed_ledger"]) == (D(30), D(20), D(10))
    total = reconcile_by(entries, lots, by="total")
    assert total.scope.tolist() == ["total"] and total.owed_ledger.tolist() == [D(25)] and total.ok.all()
    program = reconcile_by(entries, lots, by="program")
    assert program.program.tolist() == ["Regular"] and program.owed_lots.tolist() == [D(25)]


def test_cross_center_listing_and_summary():
    _, lots = both(load("cross_center.csv"))
    cc = cross_center_redemptions(lots)
    assert list(zip(cc.redemption_center, cc.lot_center, cc.points)) == [("Lyon", "Paris", D(25)),
                                                                          ("Paris", "Lyon", D(20))]
    s = cross_center_summary(lots)
    assert list(zip(s.lot_center, s.redemption_center, s.allocations, s.points)) == [
        ("Lyon", "Paris", 1, D(20)), ("Paris", "Lyon", 1, D(25))]


def test_roll_forward_per_center_and_program_with_money():
    entries, lots = both(load("cross_center.csv"))
    rf = roll_forward(entries, lots, point_value=D("0.01"))
    assert list(rf.columns[:len(ROLL_FORWARD_COLUMNS)]) == list(ROLL_FORWARD_COLUMNS)
    assert list(zip(rf.center, rf.program)) == [("Lyon", "Regular"), ("Paris", "Regular")]
    lyon, paris = rf.iloc[0].to_dict(), rf.iloc[1].to_dict()
    assert (paris["accrued"], paris["redeemed"], paris["expired"], paris["closing"]) == (D(40), D(25), D(0), D(15))
    assert (paris["cross_center_out"], paris["cross_center_in"]) == (D(25), D(20))
    assert (lyon["closing"], lyon["cross_center_out"], lyon["cross_center_in"]) == (D(10), D(20), D(25))
    assert (rf.difference == 0).all()
    assert paris["closing_value"] == D("0.15") and paris["accrued_value"] == D("0.40")
    assert sum(rf.closing) == reconcile_by(entries, lots, by="total").owed_ledger[0]


def test_roll_forward_carries_an_opening_balance():
    entries, lots = both(load("cross_center.csv"))
    opening = pd.DataFrame({"center": ["Paris", "Nice"], "program": ["Regular", "Regular"],
                            "opening": [D(100), D("7.5")]})
    rf = roll_forward(entries, lots, opening=opening).set_index("center")
    assert rf.loc["Paris", "closing"] == D(115) and rf.loc["Paris", "opening"] == D(100)
    assert rf.loc["Nice", "closing"] == D("7.5") and rf.loc["Nice", "accrued"] == D(0)
    assert (rf.difference == 0).all()


def test_deficit_and_expiry_in_the_roll_forward():
    entries, lots = both(ledger(A("u", "a", "10", "2026-01-01", end="2026-03-01"),
                                A("u", "b", "5", "2026-01-02", center="Lyon"),
                                R("u", "b", "-12", "2026-04-01", center="Lyon")))
    rf = roll_forward(entries, lots).set_index("center")
    # the Paris lot expired untouched; the Lyon redemption took its lot and 7 more nobody had
    assert (rf.loc["Paris", "expired"], rf.loc["Paris", "closing"]) == (D(10), D(0))
    assert (rf.loc["Lyon", "redeemed"], rf.loc["Lyon", "deficit"], rf.loc["Lyon", "closing"]) == (D(12), D(7), D(-7))
    assert (rf.difference == 0).all()
    rec = reconcile(entries, lots)
    assert rec.owed_ledger.tolist() == [D(-7)] and rec.ok.all()


def test_entries_after_the_cutover_are_outside_both_figures():
    entries, lots = both(ledger(A("u", "a", "10", "2026-01-01"), R("u", "a", "-4", "2026-07-02")))
    rec = reconcile(entries, lots)
    assert rec.owed_ledger.tolist() == [D(10)] and rec.ok.all()


# -- the check catches a wrong engine --------------------------------------------------------------


def test_a_tampered_lot_or_a_dropped_allocation_shows_as_a_difference():
    entries, lots = both(load("user_a_ab3cde.csv", "cross_center.csv"))
    lots.lots.loc[lots.lots.lot_id == "ab3cde", "remaining_units"] += 1
    rec = reconcile(entries, lots)
    assert row(rec, "user_id", "user-a")["difference"] == D("-0.000001") and not rec.ok.all()
    assert row(rec, "user_id", "user-b")["ok"]

    entries, lots = both(load("cross_center.csv"))
    lots.allocations = lots.allocations.iloc[:-1]  # lose the fallback piece
    assert not reconcile(entries, lots).ok.all()
    assert not reconcile_by(entries, lots, by="center").ok.all()


def test_transfers_are_compared_per_member_and_in_total():
    entries, lots = both(load("tom_tiers.csv", "user_a_ab3cde.csv"))
    good = pd.DataFrame({"user_id": ["tom-0001", "tom-0001", "john-0002", "user-a"],
                         "points": [D(10), D(11), D(5), D(25)]})
    rec = reconcile(entries, lots, transfers=good)
    assert rec.ok.all() and (rec.transfer_difference == 0).all()
    bad = pd.DataFrame({"user_id": ["tom-0001", "john-0002", "ghost"], "points": [D(21), D(4), D(3)]})
    rec = reconcile(entries, lots, transfers=bad).set_index("user_id")
    assert rec.loc["john-0002", "transfer_difference"] == D(1) and not rec.loc["john-0002", "ok"]
    assert rec.loc["user-a", "transfer_difference"] == D(25)
    assert rec.loc["ghost", "owed_ledger"] == D(0) and rec.loc["ghost", "transfer_difference"] == D(-3)
    total = reconcile_by(entries, lots, by="total", transfers=bad)
    assert total.transfers.tolist() == [D(28)] and total.transfer_difference.tolist() == [D(23)]


# -- property: the two computations always agree ----------------------------------------------------

DAYS = ["2026-01-01", "2026-02-01", "2026-06-30", "2026-07-01", "2026-08-01"]


@st.composite
def ledgers(draw):
    rows, ids = [], []
    for _ in range(draw(st.integers(0, 20))):
        user = draw(st.sampled_from(["u1", "u2", "u3"]))
        amount = D(draw(st.integers(1, 5000))) / D(draw(st.sampled_from([1, 4, 100, 10**6])))
        day = draw(st.sampled_from(DAYS))
        center = draw(st.sampled_from(["Paris", "Lyon", "Nice"]))
        program = draw(st.sampled_from(["Regular", "Promo"]))
        if draw(st.booleans()):
            gp = draw(st.sampled_from(["", f"g{len(rows)}"]))
            ids += [gp] if gp else []
            rows.append(A(user, gp, str(amount), day, draw(st.sampled_from(["", *DAYS])), center, program))
        else:
            gp = draw(st.sampled_from(["", "nope", *ids[-3:], *ids[-3:]]))
            rows.append(R(user, gp, str(-amount), day, center, program))
    return ledger(*rows)


@settings(max_examples=200, deadline=None)
@given(ledgers())
def test_ledger_and_lots_agree_per_member_center_program_and_in_total(entries):
    lots = build_lots(entries, cutover=CUTOVER)
    member = reconcile(entries, lots)
    assert member.ok.all() and (member.difference == 0).all()
    total = reconcile_by(entries, lots, by="total")
    assert total.ok.all()
    grand = total.owed_ledger[0] if len(total) else D(0)
    assert sum(member.owed_ledger, D(0)) == grand
    for by in ("center", "program"):
        part = reconcile_by(entries, lots, by=by)
        assert part.ok.all()
        assert sum(part.owed_lots, D(0)) == grand
    rf = roll_forward(entries, lots)
    assert (rf.difference == 0).all() and sum(rf.closing, D(0)) == grand
    assert (lots.lots.remaining_units >= 0).all()
    assert lots.allocations.points_units.sum() == member.redeemed.sum() * 10**6


def test_an_empty_ledger_reconciles_to_a_zero_total():
    entries = ledger()
    lots = build_lots(entries, cutover=CUTOVER)
    assert reconcile(entries, lots).empty
    total = reconcile_by(entries, lots, by="total")
    assert total.owed_ledger.tolist() == [D(0)] and total.ok.all()
    assert roll_forward(entries, lots).empty and cross_center_summary(lots).empty


@settings(max_examples=60, deadline=None)
@given(ledgers(), st.randoms(use_true_random=False))
def test_row_order_and_categorical_ids_do_not_change_the_reconciliation(entries, rnd):
    # a parsed ledger is in line order with categorical ids (binary search, category codes);
    # hand-built entries may be in any order with plain text (hash lookup, text factorize)
    lots = build_lots(entries, cutover=CUTOVER)
    expected = {by: reconcile_by(entries, lots, by=by) for by in ("member", "center", "program", "total")}
    order = list(range(len(entries)))
    rnd.shuffle(order)
    shuffled = entries.iloc[order].reset_index(drop=True)
    as_categories = entries.astype({"user_id": "category", "center": "category", "program": "category"})
    for by, frame in expected.items():
        key = frame.columns[0]
        got = reconcile_by(shuffled, lots, by=by).sort_values(key, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, frame.sort_values(key, kind="stable").reset_index(drop=True))
        pd.testing.assert_frame_equal(reconcile_by(as_categories, lots, by=by), frame)
    pd.testing.assert_frame_equal(roll_forward(shuffled, lots), roll_forward(entries, lots))
