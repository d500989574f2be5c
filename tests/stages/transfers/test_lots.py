"""build_lots: redemptions to lots (link, then expiry-first/oldest fallback), lots as of the cutover."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import LEDGER_COLUMNS
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.ledger.parse import parse_ledger
from loyalty_toolkit.stages.transfers.lots import (
    ALLOCATION_COLUMNS,
    BALANCE_COLUMNS,
    LOT_COLUMNS,
    build_lots,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ledger"
CUTOVER = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
D = Decimal


def load(name: str):
    frame = to_frame(read_table(FIXTURES / name, stage="transfers"), LEDGER_COLUMNS)
    return parse_ledger(frame, source_file=name, timezone="UTC").entries


def iso(day: str) -> str:
    return "" if not day else (day if "T" in day else f"{day}T00:00:00+00:00")


def ledger(*rows: tuple) -> pd.DataFrame:
    """Hand-built entries: (kind, user, guestpointsid, points, action day[, end day[, start day[, center]]])."""
    out = []
    for i, r in enumerate(rows):
        kind, user, gp, pts, at, end, start, center = (*r, *[""] * (8 - len(r)))
        out.append({"line": i + 2, "user_id": user, "kind": kind, "guestpointsid": gp, "points": D(pts),
                    "action_at_utc": iso(at), "effective_start_utc": iso(start), "effective_end_utc": iso(end),
                    "program": "Regular", "center": center or "Paris",
                    "accrual_center": (center or "Paris") if kind == "accrual" else ""})
    return pd.DataFrame(out, columns=["line", "user_id", "kind", "guestpointsid", "points", "action_at_utc",
                                      "effective_start_utc", "effective_end_utc", "program", "center",
                                      "accrual_center"])


def A(user, gp, pts, at, end="", start="", center=""):
    return ("accrual", user, gp, pts, at, end, start, center)


def R(user, gp, pts, at, center=""):
    return ("redemption", user, gp, pts, at, "", "", center)


def allocs(result) -> list[tuple]:
    a = result.allocations
    return list(zip(a.line, a.lot_id, a.points, a.method))


def lot(result, lot_id: str) -> dict:
    return result.lots.set_index("lot_id").loc[lot_id].to_dict()


def balance(result, user: str) -> dict:
    return result.balances.set_index("user_id").loc[user].to_dict()


# -- seed 004 worked examples ------------------------------------------------------------------


def test_tom_has_21_points_open():
    r = build_lots(load("tom_tiers.csv"), cutover=CUTOVER)
    b = balance(r, "tom-0001")
    assert (b["accrued"], b["open"], b["balance"], b["lots"]) == (D(21), D(21), D(21), 2)
    assert r.allocations.empty and set(r.lots.status) == {"open"}
    assert list(r.lots.columns) == list(LOT_COLUMNS)
    assert list(r.allocations.columns) == list(ALLOCATION_COLUMNS)
    assert list(r.balances.columns) == list(BALANCE_COLUMNS)


def test_user_a_redeems_75_of_ab3cde_leaving_25():
    r = build_lots(load("user_a_ab3cde.csv"), cutover=CUTOVER)
    assert allocs(r) == [(3, "ab3cde", D(75), "link")]
    assert (lot(r, "ab3cde")["consumed"], lot(r, "ab3cde")["remaining"]) == (D(75), D(25))
    assert lot(r, "ab3cde")["expires_at_utc"] == "2027-01-09T23:00:00+00:00"  # center time is UTC+1
    assert balance(r, "user-a")["balance"] == D(25)
    assert r.fallback_counts == {"fallback_missing_link": 0, "fallback_unknown_link": 0, "fallback_overflow": 0}


def test_cross_center_redemption_is_flagged_against_the_lots_accrual_center():
    r = build_lots(load("cross_center.csv"), cutover=CUTOVER)
    a = r.allocations
    # 25 at Lyon from the Paris lot it names; the unlinked 20 at Paris takes the lot expiring first (Lyon)
    assert list(zip(a.lot_id, a.points, a.method, a.redemption_center, a.lot_center, a.cross_center)) == [
        ("b-paris-1", D(25), "link", "Lyon", "Paris", True),
        ("b-lyon-1", D(20), "fallback_missing_link", "Paris", "Lyon", True),
    ]
    assert balance(r, "user-b")["balance"] == D(25)
    assert r.fallback_counts["fallback_missing_link"] == 1


# -- fallbacks ----------------------------------------------------------------------------------


def test_redemption_larger_than_its_lot_overflows_to_the_lot_expiring_first():
    r = build_lots(ledger(A("u", "old", "50", "2026-01-01"),
                          A("u", "soon", "30", "2026-01-02", end="2026-09-01"),
                          A("u", "never", "30", "2026-01-03"),
                          R("u", "old", "-80", "2026-02-01")), cutover=CUTOVER)
    assert allocs(r) == [(5, "old", D(50), "link"), (5, "soon", D(30), "fallback_overflow")]
    assert [lot(r, x)["remaining"] for x in ("old", "soon", "never")] == [D(0), D(0), D(30)]
    f = r.fallbacks.set_index("method")
    assert f.loc["fallback_overflow", "points"] == D(30) and f.loc["link", "points"] == D(50)
    assert r.fallback_counts["fallback_overflow"] == 1


def test_missing_link_takes_expiring_first_then_oldest_and_no_expiry_last():
    r = build_lots(ledger(A("u", "never", "10", "2026-01-01"),
                          A("u", "dec", "10", "2026-01-02", end="2026-12-31"),
                          A("u", "sep-b", "10", "2026-01-04", end="2026-09-30"),
                          A("u", "sep-a", "10", "2026-01-03", end="2026-09-30"),
                          R("u", "", "-35", "2026-02-01")), cutover=CUTOVER)
    assert allocs(r) == [(6, "sep-a", D(10), "fallback_missing_link"), (6, "sep-b", D(10), "fallback_missing_link"),
                         (6, "dec", D(10), "fallback_missing_link"), (6, "never", D(5), "fallback_missing_link")]


def test_same_expiry_and_same_time_ties_break_by_line():
    r = build_lots(ledger(A("u", "first", "10", "2026-01-01"), A("u", "second", "10", "2026-01-01"),
                          R("u", "", "-15", "2026-01-01")), cutover=CUTOVER)
    assert allocs(r) == [(4, "first", D(10), "fallback_missing_link"), (4, "second", D(5), "fallback_missing_link")]


def test_unknown_link_and_another_members_lot_fall_back():
    r = build_lots(ledger(A("u", "mine", "10", "2026-01-01"), A("v", "theirs", "10", "2026-01-01"),
                          R("u", "nope", "-3", "2026-02-01"), R("u", "theirs", "-4", "2026-02-02")), cutover=CUTOVER)
    assert allocs(r) == [(4, "mine", D(3), "fallback_unknown_link"), (5, "mine", D(4), "fallback_unknown_link")]
    assert lot(r, "theirs")["remaining"] == D(10)
    assert r.fallback_counts["fallback_unknown_link"] == 2


def test_a_lot_expired_at_the_redemption_time_is_not_used_by_a_fallback():
    r = build_lots(ledger(A("u", "gone", "10", "2026-01-01", end="2026-02-01"), A("u", "live", "10", "2026-01-02"),
                          R("u", "", "-5", "2026-02-01")), cutover=CUTOVER)
    assert allocs(r) == [(4, "live", D(5), "fallback_missing_link")]
    assert lot(r, "gone")["status"] == "expired"


def test_a_link_is_honoured_even_to_a_lot_expired_at_the_redemption_time():
    r = build_lots(ledger(A("u", "gone", "10", "2026-01-01", end="2026-02-01"), R("u", "gone", "-5", "2026-03-01")),
                   cutover=CUTOVER)
    assert allocs(r) == [(3, "gone", D(5), "link")]
    assert balance(r, "u")["expired"] == D(5)


def test_pending_lot_is_eligible_for_a_fallback():
    r = build_lots(ledger(A("u", "locked", "10", "2026-01-01", start="2026-12-01"), R("u", "", "-4", "2026-02-01")),
                   cutover=CUTOVER)
    assert allocs(r) == [(3, "locked", D(4), "fallback_missing_link")]
    assert (lot(r, "locked")["status"], lot(r, "locked")["remaining"]) == ("pending", D(6))


def test_redemptions_beyond_all_accruals_leave_a_negative_balance():
    r = build_lots(ledger(A("u", "a", "10", "2026-01-01"), R("u", "a", "-25", "2026-02-01"),
                          R("u", "", "-5", "2026-03-01")), cutover=CUTOVER)
    assert allocs(r) == [(3, "a", D(10), "link"), (3, "", D(15), "deficit"), (4, "", D(5), "deficit")]
    b = balance(r, "u")
    assert (b["deficit"], b["balance"], b["open"]) == (D(20), D(-20), D(0))
    assert r.lots.remaining_units.min() == 0
    # what no lot paid is a deficit, not a fallback: the counts, the per-member figure and the methods agree
    assert r.fallback_counts == {"fallback_missing_link": 0, "fallback_unknown_link": 0, "fallback_overflow": 0}
    assert b["fallbacks"] == 0
    f = r.fallbacks.set_index("method")
    assert (f.at["deficit", "redemptions"], f.at["deficit", "points"]) == (2, D(20))


def test_an_overflow_paid_partly_by_another_lot_is_a_fallback_and_the_rest_a_deficit():
    r = build_lots(ledger(A("u", "a", "10", "2026-01-01"), A("u", "b", "3", "2026-01-02"),
                          R("u", "a", "-25", "2026-02-01")), cutover=CUTOVER)
    assert allocs(r) == [(4, "a", D(10), "link"), (4, "b", D(3), "fallback_overflow"), (4, "", D(12), "deficit")]
    assert r.fallback_counts["fallback_overflow"] == 1 and balance(r, "u")["fallbacks"] == 1


def test_later_accruals_pay_a_deficit_first():
    r = build_lots(ledger(R("u", "", "-8", "2026-01-01"), A("u", "later", "10", "2026-02-01"),
                          A("u", "latest", "10", "2026-03-01")), cutover=CUTOVER)
    assert allocs(r) == [(2, "later", D(8), "fallback_missing_link")]
    assert balance(r, "u")["balance"] == D(12) and balance(r, "u")["deficit"] == D(0)


def test_a_lot_accrued_the_same_instant_as_the_redemption_counts_as_already_there():
    r = build_lots(ledger(A("u", "later", "10", "2026-01-01", end="2026-12-31"),
                          R("u", "", "-4", "2026-01-02"), A("u", "same", "10", "2026-01-02", end="2026-12-30")),
                   cutover=CUTOVER)
    assert allocs(r) == [(3, "same", D(4), "fallback_missing_link")]


# -- as of the cutover --------------------------------------------------------------------------


def test_expiry_exactly_at_the_cutover_is_expired_and_start_exactly_at_it_is_open():
    at = CUTOVER.isoformat()
    after = (CUTOVER + timedelta(seconds=1)).isoformat()
    r = build_lots(ledger(A("u", "exp", "1", "2026-01-01", end=at), A("u", "alive", "2", "2026-01-01", end=after),
                          A("u", "open", "4", "2026-01-01", start=at), A("u", "pend", "8", "2026-01-01", start=after)),
                   cutover=CUTOVER)
    assert r.lots.set_index("lot_id").status.to_dict() == {"exp": "expired", "alive": "open", "open": "open",
                                                          "pend": "pending"}
    assert lot(r, "pend")["unlock_at_utc"] == "2026-07-01T00:00:00+00:00"
    b = balance(r, "u")
    assert (b["expired"], b["open"], b["pending"], b["balance"]) == (D(1), D(6), D(8), D(14))


def test_expired_and_pending_at_once_counts_as_expired():
    r = build_lots(ledger(A("u", "x", "3", "2026-01-01", end="2026-05-01", start="2026-08-01")), cutover=CUTOVER)
    assert lot(r, "x")["status"] == "expired"


def test_entries_after_the_cutover_are_left_to_the_delta():
    r = build_lots(ledger(A("u", "a", "10", "2026-01-01"), R("u", "a", "-4", "2026-07-01"),
                          A("u", "b", "5", "2026-07-02")), cutover=CUTOVER)
    assert r.after_cutover.line.tolist() == [3, 4]
    assert r.lots.lot_id.tolist() == ["a"] and r.allocations.empty
    assert balance(r, "u")["balance"] == D(10)


def test_cutover_is_compared_as_an_instant():
    paris = datetime(2026, 7, 1, 1, 59, 59, tzinfo=timezone(timedelta(hours=2)))  # = CUTOVER
    at = CUTOVER.isoformat()
    r = build_lots(ledger(A("u", "exp", "1", "2026-01-01", end=at)), cutover=paris)
    assert lot(r, "exp")["status"] == "expired"


# -- exact numbers ------------------------------------------------------------------------------


def test_point_one_plus_point_two_minus_point_three_is_exactly_zero():
    r = build_lots(ledger(A("u", "a", "0.1", "2026-01-01"), A("u", "b", "0.2", "2026-01-02"),
                          R("u", "", "-0.3", "2026-02-01")), cutover=CUTOVER)
    b = balance(r, "u")
    assert b["balance"] == D(0) and b["balance_units"] == 0
    assert r.lots.remaining.tolist() == [D(0), D(0)]
    assert allocs(r) == [(4, "a", D("0.1"), "fallback_missing_link"), (4, "b", D("0.2"), "fallback_missing_link")]


def test_derived_lot_id_for_an_accrual_without_guestpointsid():
    r = build_lots(ledger(A("u", "", "5", "2026-01-01"), R("u", "line:2", "-1", "2026-02-01")), cutover=CUTOVER)
    assert r.lots.lot_id.tolist() == ["line:2"]
    # a derived id is the toolkit's, so a redemption naming it is not a source link
    assert allocs(r) == [(3, "line:2", D(1), "fallback_unknown_link")]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        build_lots(ledger(A("u", "a", "1", "2026-01-01")), cutover=datetime(2026, 6, 30))
    dup = ledger(A("u", "a", "1", "2026-01-01"), A("v", "a", "1", "2026-01-01"))
    with pytest.raises(ValueError, match="unique"):
        build_lots(dup, cutover=CUTOVER)
    floats = ledger(A("u", "a", "1", "2026-01-01"))
    floats["points"] = [0.1]
    with pytest.raises(TypeError):
        build_lots(floats, cutover=CUTOVER)
    odd = ledger(A("u", "a", "1", "2026-01-01"))
    odd["kind"] = ["reversal"]
    with pytest.raises(ValueError, match="kind"):
        build_lots(odd, cutover=CUTOVER)


def test_empty_ledger():
    empty = pd.DataFrame({"line": [], "user_id": [], "kind": [], "guestpointsid": [], "points_units": [],
                          "action_at_utc": []})
    r = build_lots(empty, cutover=CUTOVER)
    assert r.lots.empty and r.allocations.empty and r.balances.empty
    assert r.fallbacks.redemptions.sum() == 0


# -- against a plain reference implementation ---------------------------------------------------

_INF = float("inf")


def reference(entries: pd.DataFrame, cutover: datetime):
    """The rules of the module docstring, written the slow obvious way."""
    cut = pd.Timestamp(cutover)
    rows = []
    for r in entries.itertuples():
        at = pd.Timestamp(r.action_at_utc)
        if at > cut:
            continue
        end = pd.Timestamp(r.effective_end_utc) if r.effective_end_utc else None
        rows.append((r.line, r.user_id, r.kind, r.guestpointsid, D(r.points), at, end))
    lots = {}
    for line, user, kind, gp, pts, at, end in rows:
        if kind == "accrual":
            lots[gp or f"line:{line}"] = {"user": user, "rem": pts, "at": at, "end": end, "line": line,
                                          "real": bool(gp)}
    out = []
    redemptions = sorted((r for r in rows if r[2] == "redemption"), key=lambda r: (r[5], r[0]))
    for line, user, kind, gp, pts, t, _ in redemptions:
        need = -pts
        target = lots.get(gp)
        if target is not None and target["real"] and target["user"] == user:
            take = min(target["rem"], need)
            if take:
                target["rem"] -= take
                need -= take
                out.append((line, gp, take, "link"))
            method = "fallback_overflow"
        else:
            method = "fallback_missing_link" if not gp else "fallback_unknown_link"
        mine = [(k, v) for k, v in lots.items() if v["user"] == user and (v["end"] is None or v["end"] > t)]
        now = sorted((x for x in mine if x[1]["at"] <= t),
                     key=lambda x: (x[1]["end"].value if x[1]["end"] is not None else _INF, x[1]["at"], x[1]["line"]))
        later = sorted((x for x in mine if x[1]["at"] > t), key=lambda x: (x[1]["at"], x[1]["line"]))
        for k, v in now + later:
            if need and v["rem"]:
                take = min(v["rem"], need)
                v["rem"] -= take
                need -= take
                out.append((line, k, take, method))
        if need:
            out.append((line, "", need, "deficit"))  # no lot paid it: not a fallback
    return out, {k: v["rem"] for k, v in lots.items()}


DAYS = ["2026-01-01", "2026-02-01", "2026-03-01", "2026-06-30T23:59:59+00:00", "2026-08-01"]


@st.composite
def ledgers(draw):
    rows, ids = [], []
    for _ in range(draw(st.integers(0, 18))):
        user = draw(st.sampled_from(["u1", "u2", "u3"]))
        amount = D(draw(st.integers(1, 4000))) / D(draw(st.sampled_from([1, 2, 10, 1000])))
        at = draw(st.sampled_from(DAYS))
        if draw(st.booleans()):
            gp = draw(st.sampled_from(["", f"g{len(rows)}"]))
            if gp:
                ids.append(gp)
            end = draw(st.sampled_from(["", *DAYS]))
            start = draw(st.sampled_from(["", "", *DAYS]))
            rows.append(A(user, gp, str(amount), at, end=end, start=start,
                          center=draw(st.sampled_from(["Paris", "Lyon"]))))
        else:
            gp = draw(st.sampled_from(["", "unknown", *ids[-4:], *ids[-4:]]))
            rows.append(R(user, gp, str(-amount), at, center=draw(st.sampled_from(["Paris", "Lyon", ""]))))
    return ledger(*rows)


@settings(max_examples=250, deadline=None)
@given(ledgers())
def test_engine_matches_the_reference_and_keeps_its_invariants(entries):
    r = build_lots(entries, cutover=CUTOVER)
    expected, remaining = reference(entries, CUTOVER)
    assert allocs(r) == expected
    assert dict(zip(r.lots.lot_id, r.lots.remaining)) == remaining
    # no lot below zero; every redemption point accounted for exactly once
    assert (r.lots.remaining_units >= 0).all()
    assert r.allocations.points_units.sum() == r.balances.redeemed_units.sum()
    assert r.allocations.groupby("line").points_units.sum().to_dict() == {
        line: -u for line, u, kind, at in zip(entries.line, (entries.points * 10**6).astype(int), entries.kind,
                                              entries.action_at_utc)
        if kind == "redemption" and pd.Timestamp(at) <= pd.Timestamp(CUTOVER)}
    b = r.balances
    assert (b.accrued_units - b.redeemed_units - b.expired_units == b.balance_units).all()
    assert (b.open_units + b.pending_units - b.deficit_units == b.balance_units).all()
    assert (b.deficit_units >= 0).all()
    assert (r.lots.accrued_units == r.lots.consumed_units + r.lots.remaining_units).all()


@pytest.mark.parametrize("batch", [50_000, 3])
def test_a_larger_random_ledger_mixing_fast_and_slow_members_matches_the_reference(batch, monkeypatch):
    import random

    from loyalty_toolkit.stages.transfers import fallback as lots_fallback

    monkeypatch.setattr(lots_fallback, "_SLOW_CHUNK", batch)  # 3: many batches of slow members

    rnd = random.Random(7)
    rows, owner, left = [], {}, {}
    for i in range(1500):
        user = f"m{rnd.randrange(60)}"
        clean = int(user[1:]) < 30  # these members only redeem what the lot they name still holds
        day = f"2026-{rnd.randrange(1, 7):02d}-{rnd.randrange(1, 28):02d}"
        mine = [g for g, u in owner.items() if u == user and left[g] > 0]
        if rnd.random() < 0.55 or not mine:
            gp = f"g{i}" if clean or rnd.random() < 0.95 else ""
            if gp:
                owner[gp], left[gp] = user, rnd.randrange(1, 300)
            end = "" if clean or rnd.random() < 0.5 else f"2026-{rnd.randrange(1, 13):02d}-15"
            rows.append(A(user, gp, str(left.get(gp, 50)), day, end=end))
        elif clean:
            link = rnd.choice(mine)
            amount = rnd.randrange(1, left[link] + 1)
            left[link] -= amount
            rows.append(R(user, link, str(-amount), day))
        else:
            link = rnd.choice(mine) if rnd.random() < 0.9 else rnd.choice(["", "zzz"])
            rows.append(R(user, link, str(-rnd.randrange(1, 120)), day))
    entries = ledger(*rows)
    r = build_lots(entries, cutover=CUTOVER)
    expected, remaining = reference(entries, CUTOVER)
    assert allocs(r) == expected
    assert dict(zip(r.lots.lot_id, r.lots.remaining)) == remaining
    counts = r.balances.set_index("user_id").fallbacks
    assert (counts[[f"m{i}" for i in range(30) if f"m{i}" in counts.index]] == 0).all()
    assert (counts > 0).sum() > 20  # both paths ran


def test_category_codes_read_a_column_as_text_column_does():
    from loyalty_toolkit.shared.frames import text_column
    from loyalty_toolkit.stages.transfers.lots import category_codes

    col = pd.Series(pd.Categorical(["b", None, "a", "b", None]))
    codes, names = category_codes(col)
    assert names[codes].tolist() == text_column(col.to_frame("c"), "c").tolist() == ["b", "", "a", "b", ""]
    assert category_codes(pd.Series(["a", "b"])) is None
