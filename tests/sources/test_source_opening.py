"""parse_opening: Haravan opening balances (seed 003): VND amounts, points rounded once, rejects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import OpeningBalancesSource, OpeningRule
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.opening_balances import (
    BALANCE_COLUMNS,
    opening_lot_id,
    parse_opening,
    parse_vnd,
    points_for,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "transfers" / "opening.csv"
CUTOVER = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
D = Decimal


def load(rule: OpeningRule | None = None):
    src = OpeningBalancesSource(path=FIXTURE)
    frame = to_frame(read_table(FIXTURE, stage="transfers"), src.column_map())
    return parse_opening(frame, source_file="opening.csv", default_region="VN", rule=rule or OpeningRule(),
                         cutover=CUTOVER)


def frame(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    f = pd.DataFrame(rows, columns=["phone", "email", "opening_revenue", "accumulated_revenue"], dtype="str")
    f["_line"] = range(2, len(rows) + 2)
    return f


@pytest.mark.parametrize("text, expected", [
    ("1.500.000", D(1500000)),
    ("1,500,000", D(1500000)),
    ("1500000", D(1500000)),
    ("1.500", D(1500)),          # VND: a single group of 3 after the separator is thousands
    ("1,500", D(1500)),
    ("1 500 000", D(1500000)),
    ("1.500.000,00", D(1500000)),
    ("1500000.00", D(1500000)),
    ("  2.000.000 ", D(2000000)),
    ("-5", D(-5)),
    ("-1.500", D(-1500)),
    ("0", D(0)),
    ("-0", D(0)),
])
def test_parse_vnd_reads_thousands_separators(text, expected):
    value = parse_vnd(text)
    assert value == expected and value.as_tuple().exponent == 0


@pytest.mark.parametrize("text", ["abc", "", "12,5", "1.5", "1500.5", "1,50", "1.500.00", "1e6", "1.500,000.0",
                                  "NaN", "--5", "1..500"])
def test_parse_vnd_refuses_non_amounts(text):
    with pytest.raises(ValueError):
        parse_vnd(text)


@pytest.mark.parametrize("amount, mode, points, residue", [
    ("15000", "ROUND_DOWN", 1, "0.5"),        # the brief's example: 15,000 VND at 1 point / 10,000
    ("15000", "ROUND_HALF_UP", 2, "-0.5"),
    ("15000", "ROUND_HALF_EVEN", 2, "-0.5"),
    ("25000", "ROUND_HALF_EVEN", 2, "0.5"),
    ("15000", "ROUND_UP", 2, "-0.5"),
    ("15000", "ROUND_CEILING", 2, "-0.5"),
    ("15000", "ROUND_FLOOR", 1, "0.5"),
    ("9999", "ROUND_DOWN", 0, "0.9999"),
    ("1500000", "ROUND_DOWN", 150, "0"),
    ("0", "ROUND_UP", 0, "0"),
])
def test_points_rounded_once_with_residue(amount, mode, points, residue):
    exact, rounded, res = points_for(D(amount), OpeningRule(rounding=mode))
    assert (rounded, res) == (points, D(residue))
    assert exact == rounded + res == D(amount) / 10000


def test_fixture_rows_are_conserved_and_reasons_given():
    p = load()
    assert p.rows_read == 15 == len(p.balances) + len(p.rejects)
    assert list(p.balances.columns) == list(BALANCE_COLUMNS)
    assert list(p.rejects.columns) == list(REJECT_COLUMNS)
    assert p.balances["line"].tolist() == [2, 3, 4, 9, 15]
    reasons = dict(zip(p.rejects["line"], p.rejects["reason_code"]))
    assert reasons == {
        5: "OPENING_NEGATIVE", 6: "OPENING_AMOUNT_INVALID", 7: "OPENING_IDENTIFIER_MISSING",
        8: "OPENING_IDENTIFIER_MISSING", 10: "OPENING_DUPLICATE", 11: "OPENING_DUPLICATE",
        12: "OPENING_IDENTIFIER_INVALID", 13: "OPENING_AMOUNT_INVALID", 14: "OPENING_AMOUNT_INVALID",
        16: "OPENING_IDENTIFIER_INVALID",
    }
    assert set(p.rejects["stage"]) == {"transfers"} and set(p.rejects["file"]) == {"opening.csv"}
    by_line = p.rejects.set_index("line")
    assert by_line.loc[5, "column"] == "DTDauKy" and by_line.loc[5, "value"] == "-5"
    assert by_line.loc[14, "column"] == "DTTichLuy"
    assert "line(s) 11" in by_line.loc[10, "message"] and "line(s) 10" in by_line.loc[11, "message"]
    assert p.reject_counts()["OPENING_IDENTIFIER_MISSING"] == 2


def test_fixture_balances_values():
    p = load()
    b = p.balances.set_index("line")
    assert b.loc[3, "phone"] == "+84912345002"  # national phone read in VN
    assert b.loc[4, "phone"] == "+84912345003"
    assert b.loc[3, "email"] == "Binh@example.vn" and b.loc[3, "email_key"] == "binh@example.vn"
    assert b["opening_revenue"].tolist() == [D(1500000)] * 3 + [D(15000), D(1500)]
    assert b.loc[3, "accumulated_revenue"] == D(1750000)
    assert b["points"].tolist() == [150, 150, 150, 1, 0]
    assert b.loc[9, "residue"] == D("0.5") and b.loc[15, "residue"] == D("0.15")
    assert p.points_total == 451 and p.residue_total == D("0.65") and p.points_exact_total == D("451.65")
    assert set(b["effective_start"]) == {"2026-06-30T23:59:59+00:00"}
    assert set(b["effective_end"]) == {(CUTOVER + timedelta(days=365)).isoformat()}
    assert set(b["action_name"]) == {"Imported Points"}
    assert b.loc[2, "lot_id"] == opening_lot_id("+84912345001", "an@example.vn")
    assert b["lot_id"].is_unique and all(x.startswith("opening:") and "@" not in x for x in b["lot_id"])


def test_validity_none_means_no_expiry_and_other_rules():
    p = load(OpeningRule(validity_days=None, amount=D(1000), points=D(3), rounding="ROUND_HALF_UP",
                         action_name="Haravan opening"))
    b = p.balances.set_index("line")
    assert set(b["effective_end"]) == {""}
    assert b.loc[2, "points"] == 4500 and b.loc[15, "points"] == 5 and b.loc[15, "residue"] == D("-0.5")
    assert set(b["action_name"]) == {"Haravan opening"}


def test_lot_ids_do_not_depend_on_row_order():
    f = to_frame(read_table(FIXTURE, stage="transfers"), OpeningBalancesSource(path=FIXTURE).column_map())
    a = parse_opening(f, source_file="x", default_region="VN", rule=OpeningRule(), cutover=CUTOVER).balances
    shuffled = f.iloc[::-1].reset_index(drop=True)
    b = parse_opening(shuffled, source_file="x", default_region="VN", rule=OpeningRule(), cutover=CUTOVER).balances
    assert dict(zip(a["line"], a["lot_id"])) == dict(zip(b["line"], b["lot_id"]))


def test_negative_accumulated_and_first_reason_wins():
    p = parse_opening(frame(("+84912345001", "a@b.vn", "100", "-1"), ("", "", "abc", "-1")),
                      source_file="f", default_region="VN", rule=OpeningRule(), cutover=CUTOVER)
    assert p.rejects["reason_code"].tolist() == ["OPENING_NEGATIVE", "OPENING_IDENTIFIER_MISSING"]
    assert p.rejects["column"].tolist() == ["DTTichLuy", "phone"]


def test_empty_file_and_naive_cutover():
    p = parse_opening(frame(), source_file="f", default_region="VN", rule=OpeningRule(), cutover=CUTOVER)
    assert p.rows_read == 0 and p.balances.empty and p.rejects.empty and p.residue_total == 0
    with pytest.raises(ValueError):
        parse_opening(frame(), source_file="f", default_region="VN", rule=OpeningRule(),
                      cutover=datetime(2026, 1, 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=30),
       st.sampled_from(["ROUND_DOWN", "ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_UP"]),
       st.sampled_from(["10000", "3000", "7", "1"]))
@example(amounts=[1], mode="ROUND_UP", per="3000")  # a residue with more decimals than 60 digits would keep
def test_residue_ties_out_for_any_amounts_and_rule(amounts, mode, per):
    rows = [(f"+849123{i:05d}", f"c{i}@example.vn", f"{a:,}", str(a)) for i, a in enumerate(amounts)]
    p = parse_opening(frame(*rows), source_file="f", default_region="VN",
                      rule=OpeningRule(amount=D(per), rounding=mode), cutover=CUTOVER)
    assert len(p.rejects) == 0
    with localcontext() as ctx:
        ctx.prec = 200  # a 1/3 rule has no exact decimal: points_exact carries 60 digits, sums need room
        assert D(p.points_total) + p.residue_total == p.points_exact_total
        for pts, res, exact in zip(p.balances["points"], p.balances["residue"], p.balances["points_exact"]):
            assert D(int(pts)) + res == exact and abs(res) < 1


def test_an_email_starting_like_a_formula_is_refused_not_altered():
    frame = pd.DataFrame({"phone": ["0912345678", "0912345679"], "email": ["=cmd@x.vn", "ok@x.vn"],
                          "opening_revenue": ["10000", "20000"], "accumulated_revenue": ["10000", "20000"],
                          "_line": [2, 3]})
    p = parse_opening(frame, source_file="o.csv", default_region="VN", rule=OpeningRule(), cutover=CUTOVER)
    assert p.balances["line"].tolist() == [3]
    assert p.rejects[["line", "reason_code", "column", "value"]].values.tolist() == [[2, "FORMULA_CELL", "email",
                                                                                     "=cmd@x.vn"]]
