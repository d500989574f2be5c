"""The notebook's expiry calendar: months in the ledger's timezone, from the engine's int64 twins
or from the stored ISO text alike."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from tests.stages.transfers.test_lots import CUTOVER, A, R, ledger

from loyalty_toolkit.shared.liability import expiry_calendar, month_totals, months, pending
from loyalty_toolkit.stages.transfers.lots import build_lots


def _lots() -> pd.DataFrame:
    return build_lots(ledger(
        A("u1", "a", "10", "2026-01-05", "2026-10-31T23:30:00+00:00"),  # 1 Nov in Paris (UTC+1 after DST)
        A("u1", "b", "5", "2026-01-06", "2026-10-24T22:30:00+00:00"),  # 25 Oct 00:30 in Paris (still UTC+2)
        A("u2", "c", "7", "2026-02-01", "2026-10-15"),
        A("u2", "d", "3", "2026-02-02"),  # no expiry
        A("u3", "e", "4", "2026-02-03", "2027-03-01", "2026-08-01"),  # pending until August
        A("u3", "f", "9", "2026-02-04", "2026-03-01"),  # expired at the cutover: not owed
        R("u2", "c", "-2", "2026-03-01"),
    ), cutover=CUTOVER).lots


def test_months_are_the_ledger_timezone_s_and_never_comes_last():
    cal = expiry_calendar(_lots(), "Europe/Paris")
    assert cal["month"].tolist() == ["2026-10", "2026-11", "2027-03", "never"]
    assert cal["lots"].tolist() == [2, 1, 1, 1]
    assert cal["members"].tolist() == [2, 1, 1, 1]
    assert cal["points"].tolist() == [Decimal("10"), Decimal("10"), Decimal("4"), Decimal("3")]
    assert pending(_lots(), "Europe/Paris")["month"].tolist() == ["2026-08"]


def test_the_int64_twins_and_the_stored_iso_text_give_the_same_calendar():
    lots = _lots()
    stored = lots.drop(columns=[c for c in lots.columns if c.endswith("_us")])
    for tz in ("UTC", "Europe/Paris", "Asia/Ho_Chi_Minh"):
        pd.testing.assert_frame_equal(expiry_calendar(lots, tz), expiry_calendar(stored, tz))
        pd.testing.assert_frame_equal(pending(lots, tz), pending(stored, tz))


def test_parts_of_members_add_up_to_the_whole():
    lots = _lots()
    whole = expiry_calendar(lots, "UTC")
    parts = [month_totals(lots[lots["user_id"] == u], "expires_at_utc", "UTC") for u in ("u1", "u2")]
    parts.append(month_totals(lots[lots["user_id"] == "u3"].iloc[:1], "expires_at_utc", "UTC"))
    # the expired lot of u3 is left out by expiry_calendar (not owed); month_totals takes what it is given
    assert months(parts)["points"].sum() == whole["points"].sum()
