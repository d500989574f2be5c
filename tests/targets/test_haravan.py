"""Haravan opening-balance file: template header, plain integer amounts, UTF-8 BOM + CRLF, exact bytes."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.config import OpeningBalancesSource, OpeningRule
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.opening_balances import parse_opening
from loyalty_toolkit.targets.haravan import HEADER, write_opening_balances

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "transfers" / "opening.csv"
D = Decimal


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "phone": ["+84912345001", "+84912345002"],
        "email": ["an@example.vn", "Bình,\"x\"@example.vn"],
        "opening_revenue": [D(1500000), D("15000")],
        "accumulated_revenue": [D("2000000.00"), 15000],
    })


def test_exact_bytes_with_bom_and_crlf(tmp_path):
    path = write_opening_balances(frame(), tmp_path / "out" / "opening_balances.csv")
    expected = ("\ufeffphone,email,DTDauKy,DTTichLuy\r\n"
                "+84912345001,an@example.vn,1500000,2000000\r\n"
                "+84912345002,\"Bình,\"\"x\"\"@example.vn\",15000,15000\r\n").encode("utf-8")
    assert path.read_bytes() == expected


def test_without_bom_and_deterministic(tmp_path):
    a = write_opening_balances(frame(), tmp_path / "a.csv", bom=False).read_bytes()
    b = write_opening_balances(frame(), tmp_path / "b.csv", bom=False).read_bytes()
    assert a == b and a.startswith(b"phone,email,DTDauKy,DTTichLuy\r\n")


def test_round_trip_through_the_toolkit_reader(tmp_path):
    cutover = datetime(2026, 6, 30, tzinfo=timezone.utc)
    src = OpeningBalancesSource(path=FIXTURE)
    parsed = parse_opening(to_frame(read_table(FIXTURE), src.column_map()), source_file="opening.csv",
                           default_region="VN", rule=OpeningRule(), cutover=cutover)
    path = write_opening_balances(parsed.balances, tmp_path / "haravan.csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    assert tuple(rows[0]) == HEADER
    assert rows[1:] == [["+84912345001", "an@example.vn", "1500000", "2000000"],
                        ["+84912345002", "Binh@example.vn", "1500000", "1750000"],
                        ["+84912345003", "chi@example.vn", "1500000", "1500000"],
                        ["+84912345008", "hoa@example.vn", "15000", "15000"],
                        ["+84912345013", "oanh@example.vn", "1500", "1000000"]]
    again = parse_opening(to_frame(read_table(path), src.column_map()), source_file="haravan.csv",
                          default_region="VN", rule=OpeningRule(), cutover=cutover)
    assert again.balances["points"].tolist() == parsed.balances["points"].tolist()
    raw = write_opening_balances(parsed.balances, tmp_path / "raw.csv", phone_column="phone_raw",
                                 email_column="email_raw")
    assert b"\r\n0912345002,Binh@Example.VN,1500000,1750000\r\n" in raw.read_bytes()


@pytest.mark.parametrize("column, value", [("opening_revenue", D("1.5")), ("opening_revenue", D(-1)),
                                           ("accumulated_revenue", 1.0), ("accumulated_revenue", "abc"),
                                           ("phone", ""), ("email", None)])
def test_refuses_what_haravan_cannot_take(tmp_path, column, value):
    f = frame().astype(object)
    f.loc[0, column] = value
    with pytest.raises((ValueError, TypeError)):
        write_opening_balances(f, tmp_path / "x.csv")
