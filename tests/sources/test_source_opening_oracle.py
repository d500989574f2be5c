"""parse_opening (bulk: amounts and points per distinct text, checks on whole columns, bulk phones,
emails and lot ids) against a copy of the row-by-row implementation it replaced, on generated rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import OPENING_COLUMNS, ROUNDING_MODES, OpeningRule
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.normalize import email_problem, normalize_email, normalize_phone, phone_problem
from loyalty_toolkit.sources.opening_balances import (
    AMOUNT_INVALID,
    BALANCE_COLUMNS,
    DUPLICATE,
    IDENTIFIER_INVALID,
    IDENTIFIER_MISSING,
    NEGATIVE,
    STAGE,
    opening_lot_id,
    opening_lot_ids,
    parse_opening,
    parse_vnd,
    points_for,
)

CUTOVER = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)


# ---------------------------------------------------------------- the replaced implementation


def _legacy_amount(text: str) -> tuple[Decimal, str | None]:
    if not text.strip():
        return Decimal(0), "empty (write 0 for a customer with no revenue)"
    try:
        return parse_vnd(text), None
    except ValueError as exc:
        return Decimal(0), str(exc)


def legacy_parse_opening(frame, *, source_file, default_region, rule, cutover, columns=None):
    """parse_opening as it was (one pass of Python per row), phones and emails read one by one."""
    headers = {**OPENING_COLUMNS, **(columns or {})}
    frame = frame.reset_index(drop=True)
    n = len(frame)
    lines = (frame["_line"].to_numpy(dtype=np.int64) if "_line" in frame.columns
             else np.arange(2, n + 2, dtype=np.int64))

    def text(name):
        if name not in frame.columns:
            return pd.Series([""] * n, dtype=object)
        return pd.Series(frame[name].to_numpy(dtype=object, na_value=""), dtype=object).map(str)

    phone_raw, email_raw = text("phone").tolist(), text("email").tolist()
    phones = [normalize_phone(p.strip(), default_region) for p in phone_raw]
    emails = [normalize_email(e) for e in email_raw]
    amount_raw = {name: text(name).tolist() for name in ("opening_revenue", "accumulated_revenue")}
    amounts = {name: [_legacy_amount(v) for v in raw] for name, raw in amount_raw.items()}
    reason, detail = [None] * n, [("", "", "")] * n
    for i in range(n):
        p, e = phone_raw[i].strip(), email_raw[i].strip()
        if not p or not e:
            missing = "phone" if not p else "email"
            reason[i] = IDENTIFIER_MISSING
            detail[i] = (headers[missing], f"{headers[missing]} is empty: Haravan needs both phone and email to "
                         "find the customer", "")
        elif not phones[i].valid:
            reason[i] = IDENTIFIER_INVALID
            detail[i] = (headers["phone"], f"{headers['phone']}: {phone_problem(p, default_region)}", p)
        elif not emails[i].valid:
            reason[i] = IDENTIFIER_INVALID
            detail[i] = (headers["email"], f"{headers['email']}: not a valid address ({email_problem(e)})", e)
        else:
            for name in ("opening_revenue", "accumulated_revenue"):
                value, problem = amounts[name][i]
                if problem is not None:
                    reason[i] = AMOUNT_INVALID
                    detail[i] = (headers[name], f"{headers[name]}: {problem}", amount_raw[name][i])
                    break
                if value < 0:
                    reason[i] = NEGATIVE
                    detail[i] = (headers[name], f"{headers[name]}: negative amount {value}", amount_raw[name][i])
                    break
    keys = [f"{phones[i].e164}|{emails[i].key}" if reason[i] is None else None for i in range(n)]
    lines_of: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k is not None:
            lines_of.setdefault(k, []).append(int(lines[i]))
    for i, k in enumerate(keys):
        if k is not None and len(lines_of[k]) > 1:
            others = ", ".join(str(x) for x in lines_of[k] if x != lines[i])
            reason[i] = DUPLICATE
            detail[i] = (f"{headers['phone']}+{headers['email']}",
                         f"the same phone and email are on line(s) {others}: every such row is held back, "
                         "which one holds the balance is for a person to decide", "")
    start = cutover.astimezone(timezone.utc)
    start_iso = start.isoformat(timespec="seconds")
    end_iso = ("" if rule.validity_days is None
               else (start + timedelta(days=rule.validity_days)).isoformat(timespec="seconds"))
    rows = []
    for i in (i for i in range(n) if reason[i] is None):
        opening, accumulated = amounts["opening_revenue"][i][0], amounts["accumulated_revenue"][i][0]
        exact, points, residue = points_for(opening, rule)
        phone, key = phones[i].e164, emails[i].key
        rows.append((int(lines[i]), phone, phone_raw[i], key, emails[i].normalized, email_raw[i], opening,
                     accumulated, exact, points, residue, opening_lot_id(phone, key), rule.action_name, start_iso,
                     end_iso, source_file))
    balances = pd.DataFrame.from_records(rows, columns=list(BALANCE_COLUMNS))
    balances = balances.astype({"line": "int64", "points": "int64"})
    for c in ("opening_revenue", "accumulated_revenue", "points_exact", "residue"):
        balances[c] = balances[c].astype(object)
    rej = [(STAGE, source_file, int(lines[i]), f"{phone_raw[i].strip()}|{email_raw[i].strip()}", detail[i][0],
            reason[i], detail[i][1], detail[i][2]) for i in range(n) if reason[i] is not None]
    rejects = pd.DataFrame.from_records(rej, columns=list(REJECT_COLUMNS))
    rejects = rejects.astype({c: "str" for c in REJECT_COLUMNS if c != "line"}).astype({"line": "int64"})
    return balances, rejects


# ---------------------------------------------------------------- generated opening rows

PHONES = st.sampled_from([
    "+33612345678", "06 12 34 56 78", "06.12.34.56.78", "0033 6 12 34 56 78", "+33 6 12 34 56 79",
    "+84912345001", "0912345001", "091 234 5001", "0084912345001", "+1 650 253 0000", "+7 912 345 67 89",
    "12ab", "+", "0", "123", "", "   ", "+999123456789", "٠٩١٢٣٤٥٠٠١", "(0)6 12 34 56 78", "+44 7911 123456",
])
EMAILS = st.sampled_from([
    "an@example.vn", "An@Example.VN", " an@example.vn ", "AN@example.vn", "binh@example.vn", "chi@exämple.vn",
    "Straße@example.de", "phuong@", "no-at-sign", "", "  ", "x_y@ex.com", "a@ex_a.com", "a..b@example.vn",
])
AMOUNTS = st.sampled_from([
    "1500000", "1.500.000", "1,500,000", "1.500", "1,500", " 2.000.000 ", "1 500 000", "1.500.000,00",
    "1500000.00", "12,5", "1500.5", "-5", "-1.500", "-0", "0", "00120", "", " ", "abc", "1e6", "+1000",
    "15000", "9999", "25000", "٣٠٠٠", "1,50", "1.500.00", "123456789012345678", "123.456.789.012.345.678",
])
ROW = st.tuples(PHONES, EMAILS, AMOUNTS, AMOUNTS)
RULES = st.builds(OpeningRule, amount=st.sampled_from([Decimal(10000), Decimal(3), Decimal("1000.5")]),
                  points=st.sampled_from([Decimal(1), Decimal(2)]), rounding=st.sampled_from(sorted(ROUNDING_MODES)),
                  validity_days=st.sampled_from([None, 365]))


def _frame(rows) -> pd.DataFrame:
    f = pd.DataFrame(rows, columns=["phone", "email", "opening_revenue", "accumulated_revenue"], dtype="str")
    f["_line"] = range(2, len(rows) + 2)
    return f


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=30), RULES, st.sampled_from(["VN", "FR"]))
def test_parse_opening_matches_the_row_by_row_implementation(rows, rule, region):
    frame = _frame(rows)
    got = parse_opening(frame, source_file="opening.csv", default_region=region, rule=rule, cutover=CUTOVER,
                        columns={"opening_revenue": "DTDauKy"})
    balances, rejects = legacy_parse_opening(frame, source_file="opening.csv", default_region=region, rule=rule,
                                             cutover=CUTOVER, columns={"opening_revenue": "DTDauKy"})
    pd.testing.assert_frame_equal(got.balances, balances, check_exact=True)
    pd.testing.assert_frame_equal(got.rejects, rejects, check_exact=True)
    # Decimal columns: the same values with the same exponents (== alone would let 1.0 pass for 1)
    for c in ("opening_revenue", "accumulated_revenue", "points_exact", "residue"):
        assert [str(v) for v in got.balances[c]] == [str(v) for v in balances[c]]


def test_duplicates_and_shapes_in_one_file_match_the_row_by_row_implementation():
    rows = [("+84912345001", "an@example.vn", "1.500.000", "0"), ("0912345001", " AN@example.vn ", "1,500", "0"),
            ("+84912345002", "binh@example.vn", "15000", "1"), ("0912345002", "Binh@Example.VN", "25000", "1"),
            ("+84912345002", "binh@example.vn", "abc", "1"), ("+84912345003", "chi@example.vn", "-5", "1")]
    frame = _frame(rows)
    got = parse_opening(frame, source_file="o.csv", default_region="VN", rule=OpeningRule(), cutover=CUTOVER)
    balances, rejects = legacy_parse_opening(frame, source_file="o.csv", default_region="VN", rule=OpeningRule(),
                                             cutover=CUTOVER)
    pd.testing.assert_frame_equal(got.balances, balances, check_exact=True)
    pd.testing.assert_frame_equal(got.rejects, rejects, check_exact=True)
    assert rejects["reason_code"].tolist().count(DUPLICATE) == 4  # both pairs, every row of each


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=20))
def test_bulk_lot_ids_are_the_per_row_ids(pairs):
    phones, keys = [p for p, _ in pairs], [k for _, k in pairs]
    assert opening_lot_ids(phones, keys).tolist() == [opening_lot_id(p, k) for p, k in pairs]
