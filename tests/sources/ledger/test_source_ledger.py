"""parse_ledger: the Zenoti liability ledger to typed entries and itemised rejects (seed 004)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import LEDGER_COLUMNS, LedgerSource
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.ledger.parse import ENTRY_COLUMNS, parse_ledger, units_to_decimal
from loyalty_toolkit.sources.ledger.read import read_ledger

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ledger"


def load(name: str, tz: str = "UTC"):
    frame = to_frame(read_table(FIXTURES / name, stage="transfers"), LEDGER_COLUMNS)
    return parse_ledger(frame, source_file=name, timezone=tz)


def frame(*rows: dict[str, str]) -> pd.DataFrame:
    """Canonical ledger columns, every cell text, lines from 2 like a file under its header."""
    base = {c: "" for c in LEDGER_COLUMNS}
    data = [{**base, **r} for r in rows]
    out = pd.DataFrame(data, columns=list(LEDGER_COLUMNS), dtype="str")
    out["_line"] = range(2, 2 + len(data))
    return out


def accrual(**kw: str) -> dict[str, str]:
    return {"user_id": "u1", "record_type": "Accrual", "guestpointsid": "g1", "action_date": "2026-01-05",
            "points": "10", "program": "Regular", "accrual_center": "Paris", **kw}


def redemption(**kw: str) -> dict[str, str]:
    return {"user_id": "u1", "record_type": "Redemption", "guestpointsid": "g1", "action_date": "2026-02-05",
            "points": "-4", "program": "Regular", "payment_center": "Lyon", **kw}


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as object: categories differ with the input, values must not."""
    return df.astype({c: object for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})


def assert_same_parse(a, b) -> None:
    pd.testing.assert_frame_equal(plain(a.entries), plain(b.entries))
    pd.testing.assert_frame_equal(a.rejects, b.rejects)
    assert a.rows_read == b.rows_read


def utc(parsed, field: str = "action_at_utc") -> list[str]:
    return parsed.entries[field].tolist()


# -- seed 004 worked examples ------------------------------------------------------------------


def test_tom_accrues_10_then_11_and_moves_bronze_to_silver():
    p = load("tom_tiers.csv")
    assert p.rows_read == 3 and len(p.entries) == 3 and p.rejects.empty
    tom = p.entries[p.entries.user_id == "tom-0001"]
    assert tom.points.tolist() == [Decimal(10), Decimal(11)]
    assert all(isinstance(x, Decimal) for x in tom.points)
    assert sum(tom.points) == Decimal(21)
    assert tom.accrual_tier.tolist() == ["Bronze", "Silver"]
    assert tom.previous_tier.tolist() == ["", "Bronze"]
    assert tom.current_tier.tolist() == ["Bronze", "Silver"]
    assert tom.invoice_id.tolist() == ["", "inv-5530"] and tom.invoice_no.tolist() == ["", "D-0042"]
    # center time is UTC-5 ("minutes to add" -300): local midnight is 05:00 UTC
    assert tom.action_at_utc.tolist() == ["2020-05-21T05:00:00+00:00", "2020-05-30T05:00:00+00:00"]
    assert tom.action_at_raw.tolist() == ["2020-05-21", "2020-05-30"]
    assert tom.minutes_to_add.tolist() == [-300, -300]
    assert list(p.entries.columns) == list(ENTRY_COLUMNS)


def test_user_a_accrual_and_redemption_share_guestpointsid_ab3cde():
    p = load("user_a_ab3cde.csv", tz="Europe/Paris")
    e = p.entries
    assert e.kind.tolist() == ["accrual", "redemption"]
    assert e.guestpointsid.tolist() == ["ab3cde", "ab3cde"]
    assert e.points.tolist() == [Decimal(100), Decimal(-75)]
    assert e.points_units.tolist() == [100_000_000, -75_000_000]
    assert e.center.tolist() == ["Center A", "Center A"]  # accrual center, then payment center
    assert e.action_at_utc.tolist() == ["2026-01-10T13:00:00+00:00", "2026-02-01T09:30:00+00:00"]
    assert e.effective_end_utc.tolist() == ["2027-01-09T23:00:00+00:00", ""]
    assert e.effective_start_utc.tolist() == ["", ""]
    assert e.effective_end_ts.isna().tolist() == [False, True]


def test_center_is_accrual_center_for_accruals_and_payment_center_for_redemptions():
    e = load("cross_center.csv").entries
    assert e.center.tolist() == ["Paris", "Lyon", "Lyon", "Paris"]
    assert e.accrual_center.tolist() == ["Paris", "Lyon", "", ""]
    assert e.payment_center.tolist() == ["", "", "Lyon", "Paris"]


# -- rejects ------------------------------------------------------------------------------------


def test_every_bad_row_is_rejected_once_with_its_reason_and_rows_are_conserved():
    p = load("bad_rows.csv")
    assert p.rows_read == len(p.entries) + len(p.rejects) == 11
    assert list(p.rejects.columns) == list(REJECT_COLUMNS)
    got = dict(zip(p.rejects.line, p.rejects.reason_code))
    assert got == {
        3: "USER_ID_MISSING",
        4: "RECORD_TYPE_UNKNOWN",
        5: "POINTS_INVALID",
        6: "POINTS_PRECISION",
        7: "POINTS_SIGN",       # a positive redemption
        8: "DATE_INVALID",      # 30 February
        9: "GUESTPOINTSID_DUPLICATE",
        10: "POINTS_SIGN",      # a zero accrual
        11: "DATE_INVALID",     # minutes to add "ninety"
    }
    assert set(p.rejects.stage) == {"transfers"} and set(p.rejects.file) == {"bad_rows.csv"}
    r = p.rejects.set_index("line")
    assert r.loc[6, "value"] == "268.28000000000003" and r.loc[6, "column"] == "Loyalty Points"
    assert r.loc[9, "message"] == "accrual id already used on line 2"
    assert r.loc[11, "column"] == "accrual center minutes to add"
    assert r.loc[4, "record_key"] == "user-c"
    assert sorted(p.entries.line) == [2, 12]
    # record type is case-insensitive and thousands separators are read exactly
    assert p.entries.set_index("line").loc[12, "points"] == Decimal("1000.5")
    assert p.reject_counts()["DATE_INVALID"] == 2


def test_first_failing_check_wins():
    p = parse_ledger(frame(accrual(user_id="", points="abc", action_date="nope")), source_file="f", timezone="UTC")
    assert p.rejects.reason_code.tolist() == ["USER_ID_MISSING"]


def test_duplicate_accrual_id_keeps_the_first_and_rejects_later_ones():
    f = frame(accrual(), accrual(user_id="u2", points="5"), accrual(points="7"), redemption())
    p = parse_ledger(f, source_file="f", timezone="UTC")
    assert p.entries.line.tolist() == [2, 5]
    assert p.rejects.line.tolist() == [3, 4]
    assert set(p.rejects.reason_code) == {"GUESTPOINTSID_DUPLICATE"}


def test_accruals_without_guestpointsid_are_not_duplicates_of_each_other():
    p = parse_ledger(frame(accrual(guestpointsid=""), accrual(guestpointsid="")), source_file="f", timezone="UTC")
    assert len(p.entries) == 2 and p.rejects.empty


def test_empty_action_date_and_bad_effective_dates_are_date_invalid():
    f = frame(accrual(action_date=""), accrual(guestpointsid="g2", effective_end="2026-13-01"),
              accrual(guestpointsid="g3", effective_start="soon"))
    p = parse_ledger(f, source_file="f", timezone="UTC")
    assert p.rejects.reason_code.tolist() == ["DATE_INVALID"] * 3
    assert p.rejects.column.tolist() == ["action date", "effective end date", "effective start date"]


# -- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("0.1", Decimal("0.1")),
    ("10.500000000", Decimal("10.5")),   # trailing zeros are no extra precision
    ("0.000001", Decimal("0.000001")),
    ("1,500,000", Decimal("1500000")),
    ("1,500.25", Decimal("1500.25")),
])
def test_points_are_exact_decimals(text, expected):
    p = parse_ledger(frame(accrual(points=text)), source_file="f", timezone="UTC")
    assert p.entries.points.tolist() == [expected]
    assert p.entries.points_units.tolist() == [int(expected * 10**6)]


@pytest.mark.parametrize("text, code", [
    ("268.28000000000003", "POINTS_PRECISION"),  # float noise: itemised, never rounded silently
    ("0.0000001", "POINTS_PRECISION"),
    ("1e3", "POINTS_INVALID"),
    ("NaN", "POINTS_INVALID"),
    ("", "POINTS_INVALID"),
    ("1,500", "POINTS_INVALID"),                 # ambiguous: 1500 or 1.5
    ("12,5", "POINTS_INVALID"),                  # a decimal comma is refused, as docs/transfers.md says (#17)
    ("1.500,25", "POINTS_INVALID"),
    ("2000000000000", "POINTS_INVALID"),         # beyond 10^12 points per row
])
def test_points_that_cannot_be_carried_exactly_are_rejected(text, code):
    p = parse_ledger(frame(accrual(points=text)), source_file="f", timezone="UTC")
    assert p.rejects.reason_code.tolist() == [code]
    assert p.rejects.value.tolist() == [text]


def test_units_to_decimal_round_trips():
    units = [0, 1, -1, 10**6, 21 * 10**6, -75 * 10**6, 123_456_789, 10**18]
    assert units_to_decimal(pd.Series(units).to_numpy()).tolist() == [
        Decimal(0), Decimal("0.000001"), Decimal("-0.000001"), Decimal(1), Decimal(21), Decimal(-75),
        Decimal("123.456789"), Decimal(10**12)]
    assert str(units_to_decimal(pd.Series([21 * 10**6]).to_numpy())[0]) == "21"


# -- time ---------------------------------------------------------------------------------------


def test_midnight_with_a_positive_offset_falls_on_the_previous_utc_day():
    p = parse_ledger(frame(accrual(action_date="2026-01-01", accrual_center_minutes="60",
                                   effective_end="2026-07-01")), source_file="f", timezone="UTC")
    assert utc(p) == ["2025-12-31T23:00:00+00:00"]
    assert utc(p, "effective_end_utc") == ["2026-06-30T23:00:00+00:00"]


def test_paris_dst_gap_and_fold_follow_zoneinfo_fold_0():
    rows = [accrual(guestpointsid="gap", action_date="2026-03-29 02:30"),     # does not exist in Paris
            accrual(guestpointsid="fold", action_date="2026-10-25 02:30"),    # happens twice in Paris
            accrual(guestpointsid="plain", action_date="2026-07-14 12:00")]
    p = parse_ledger(frame(*rows), source_file="f", timezone="Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    expected = [datetime(2026, 3, 29, 2, 30, tzinfo=paris), datetime(2026, 10, 25, 2, 30, tzinfo=paris),
                datetime(2026, 7, 14, 12, 0, tzinfo=paris)]
    assert utc(p) == [d.astimezone(timezone.utc).isoformat() for d in expected]
    assert utc(p) == ["2026-03-29T01:30:00+00:00", "2026-10-25T00:30:00+00:00", "2026-07-14T10:00:00+00:00"]
    assert p.entries.minutes_to_add.isna().all()


def test_fixed_minutes_to_add_ignore_dst():
    rows = [accrual(guestpointsid="gap", action_date="2026-03-29 02:30", accrual_center_minutes="60"),
            accrual(guestpointsid="fold", action_date="2026-10-25 02:30", accrual_center_minutes="60"),
            redemption(guestpointsid="fold", action_date="2026-10-25 02:30", payment_center_minutes="120")]
    p = parse_ledger(frame(*rows), source_file="f", timezone="Europe/Paris")
    assert utc(p) == ["2026-03-29T01:30:00+00:00", "2026-10-25T01:30:00+00:00", "2026-10-25T00:30:00+00:00"]
    assert p.entries.minutes_to_add.tolist() == [60, 60, 120]


def test_a_redemption_uses_its_payment_center_minutes_not_the_accrual_centers():
    p = parse_ledger(frame(redemption(action_date="2026-02-05 12:00", accrual_center_minutes="600",
                                      payment_center_minutes="-60")), source_file="f", timezone="UTC")
    assert utc(p) == ["2026-02-05T13:00:00+00:00"]


def test_an_explicit_offset_in_the_value_wins():
    p = parse_ledger(frame(accrual(action_date="2026-03-29T02:30:00+02:00", accrual_center_minutes="60")),
                     source_file="f", timezone="Europe/Paris")
    assert utc(p) == ["2026-03-29T00:30:00+00:00"]
    assert p.entries.action_at_raw.tolist() == ["2026-03-29T02:30:00+02:00"]


def test_date_format_parameter():
    p = parse_ledger(frame(accrual(action_date="05/21/2020")), source_file="f", timezone="UTC", date_format="%m/%d/%Y")
    assert utc(p) == ["2020-05-21T00:00:00+00:00"]
    bad = parse_ledger(frame(accrual(action_date="2020-05-21")), source_file="f", timezone="UTC",
                       date_format="%m/%d/%Y")
    assert bad.rejects.reason_code.tolist() == ["DATE_INVALID"]


def test_far_future_expiry_is_kept():
    p = parse_ledger(frame(accrual(effective_end="9999-12-31")), source_file="f", timezone="UTC")
    assert utc(p, "effective_end_utc") == ["9999-12-31T00:00:00+00:00"]


def test_empty_frame():
    p = parse_ledger(frame(), source_file="f", timezone="UTC")
    assert p.rows_read == 0 and p.entries.empty and p.rejects.empty
    assert list(p.entries.columns) == list(ENTRY_COLUMNS)


# -- property: every row lands exactly once ----------------------------------------------------

_cell = st.sampled_from(["", "x", "Accrual", "redemption", "10", "-3", "0", "1.5", "abc", "2026-01-01",
                         "2026-02-30", "60", "g1", "g2", "268.28000000000003"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "user_id": st.sampled_from(["", "u1", "u2"]),
    "record_type": st.sampled_from(["Accrual", "Redemption", "ACCRUAL", "Expiry", ""]),
    "guestpointsid": st.sampled_from(["", "g1", "g2", "g3"]),
    "action_date": st.sampled_from(["", "2026-01-01", "2026-03-29 02:30", "bad"]),
    "points": _cell,
    "effective_end": st.sampled_from(["", "2026-06-30", "bad"]),
    "accrual_center_minutes": st.sampled_from(["", "60", "x"]),
}), max_size=25))
def test_rows_read_equals_entries_plus_rejects(rows):
    p = parse_ledger(frame(*rows), source_file="f", timezone="Europe/Paris")
    assert p.rows_read == len(rows) == len(p.entries) + len(p.rejects)
    assert sorted(p.entries.line.tolist() + p.rejects.line.tolist()) == list(range(2, 2 + len(rows)))
    assert p.rejects.reason_code.notna().all()
    acc = p.entries[p.entries.kind == "accrual"]
    assert (acc.points > 0).all() and (p.entries[p.entries.kind == "redemption"].points < 0).all()
    ids = acc.guestpointsid[acc.guestpointsid != ""]
    assert ids.is_unique


def test_fractions_of_a_second_are_written_only_where_present():
    p = parse_ledger(frame(accrual(action_date="2026-01-05 10:00:00.5"), accrual(guestpointsid="g2")),
                     source_file="f", timezone="UTC")
    assert utc(p) == ["2026-01-05T10:00:00.500000+00:00", "2026-01-05T00:00:00+00:00"]


# -- read_ledger ---------------------------------------------------------------------------------


def test_read_ledger_gives_canonical_columns_and_lines():
    src = LedgerSource(path=FIXTURES / "tom_tiers.csv")
    f = read_ledger(src)
    assert list(f.columns) == [*LEDGER_COLUMNS, "_line"]
    assert f["_line"].dtype == "int64" and f["_line"].tolist() == [2, 3, 4]
    p = parse_ledger(f, source_file="tom_tiers.csv", timezone="UTC")
    expected = load("tom_tiers.csv")
    assert_same_parse(p, expected)


def test_read_ledger_missing_required_header_names_file_and_line(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("user id,record type name,action date\nu1,Accrual,2026-01-01\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_ledger(LedgerSource(path=path))
    assert str(info.value).startswith("[transfers] l.csv:1: column Loyalty Points: mapped column missing")


@pytest.mark.parametrize("field", ["user_id", "guestpointsid"])
def test_a_nul_byte_in_an_id_the_transfer_files_carry_is_a_reject(field):
    """Issue #17: a NUL in a lot id failed stage 03's writer with a ValueError."""
    row = accrual(**{field: "G\x001" if field == "user_id" else "gp\x001"})
    p = parse_ledger(frame(row), source_file="f", timezone="UTC")
    assert p.rejects.reason_code.tolist() == ["CONTROL_CHARACTER"] and len(p.entries) == 0
