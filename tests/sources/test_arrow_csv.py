"""arrow_csv: the pyarrow fast path reads exactly what the strict reader reads, or steps aside."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.config import LedgerSource
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources import arrow_csv
from loyalty_toolkit.sources.ledger import read as ledger_read
from loyalty_toolkit.sources.ledger.parse import ENGINE_COLUMNS, ENGINE_FIELDS, ENTRY_COLUMNS, parse_ledger

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ledger"
HEADER = ("user id,record type name,guestpointsid,action date,Loyalty Points,effective start date,"
          "effective end date,program name,accrual center name,payment center name")
ROWS = ["u1,Accrual,g1,2026-01-05 10:00:00,10,2026-01-05 10:00:00,,Regular,Paris,",
        "u1,Redemption,g1,2026-02-05 09:00:00,-4,,,Regular,,Lyon",
        "u2,Accrual,g2,2026-01-06,1.5,2026-01-06,2027-01-06,Regular,Paris Opéra,"]


@pytest.fixture
def always_fast(monkeypatch):
    """The fast path for files of any size (it is skipped below 1 MiB in production)."""
    monkeypatch.setattr(ledger_read, "_FAST_BYTES", 0)


def write(tmp_path: Path, text: str | bytes, name: str = "ledger.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def strict(path: Path, monkeypatch) -> pd.DataFrame:
    monkeypatch.setattr(ledger_read, "_FAST_BYTES", 1 << 62)
    return ledger_read.read_ledger(LedgerSource(path=path))


def plain(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({c: object for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})


@pytest.mark.parametrize("text, ok", [
    ("a,b\n1,2\n", True),
    ("a,b\r\n1,2\r\n", True),           # Windows line ends
    ("a,b\n1,\"2\"\n", False),          # any quote: the strict reader decides
    ("a,b\r1,2\r", False),              # old Mac line ends: physical lines would not match
    ("\ufeffa,b\n1,2\n", True),          # a UTF-8 BOM
    ("a,b\n1,2\n\n3,4\n", False),        # an empty line: skipped by the strict reader, a record to pyarrow
    ("a,b\r\n\r\n1,2\r\n", False),
])
def test_qualifies(tmp_path, text, ok):
    assert arrow_csv.qualifies(write(tmp_path, text), "utf-8-sig") is ok


def test_qualifies_refuses_bytes_that_are_not_utf8_and_other_codecs(tmp_path):
    assert not arrow_csv.qualifies(write(tmp_path, "a,b\ncafé,2\n".encode("cp1252")), "utf-8")
    assert not arrow_csv.qualifies(write(tmp_path, "a,b\n1,2\n"), "cp1252")


def test_qualifies_sees_a_crlf_split_between_scan_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow_csv, "_SCAN_BYTES", 4)
    assert arrow_csv.qualifies(write(tmp_path, "a,b\r\n1,2\r\n"), "utf-8")  # "a,b\r" | "\n1,2" | "\r\n"
    assert not arrow_csv.qualifies(write(tmp_path, "a,b\r1,2\r\n"), "utf-8")
    assert not arrow_csv.qualifies(write(tmp_path, "a,b\n\n1,2\n"), "utf-8")    # "a,b\n" | "\n1,2"
    assert not arrow_csv.qualifies(write(tmp_path, "a,bc\n\r\n1,2\n"), "utf-8")


# fixtures with quotes are read the strict way only
SIMPLE_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.csv") if b'"' not in p.read_bytes())


def test_most_fixtures_take_the_fast_path():
    assert len(SIMPLE_FIXTURES) >= 3 and all(arrow_csv.qualifies(FIXTURES / f, "utf-8") for f in SIMPLE_FIXTURES)


@pytest.mark.parametrize("fixture", SIMPLE_FIXTURES)
def test_fast_and_strict_readers_give_the_same_frame_and_parse(fixture, tmp_path, monkeypatch):
    path = FIXTURES / fixture
    expected = strict(path, monkeypatch)
    monkeypatch.setattr(ledger_read, "_FAST_BYTES", 0)
    got = ledger_read.read_ledger(LedgerSource(path=path))
    pd.testing.assert_frame_equal(plain(got), plain(expected))
    a = parse_ledger(got, source_file=fixture, timezone="Europe/Paris")
    b = parse_ledger(expected, source_file=fixture, timezone="Europe/Paris")
    pd.testing.assert_frame_equal(plain(a.entries), plain(b.entries))
    pd.testing.assert_frame_equal(a.rejects, b.rejects)


def test_fast_reader_shares_date_categories_and_numbers_lines(tmp_path, always_fast):
    f = ledger_read.read_ledger(LedgerSource(path=write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n")))
    assert f["_line"].tolist() == [2, 3, 4]
    assert f["action_date"].dtype == f["effective_start"].dtype == f["effective_end"].dtype
    assert f["accrual_center"].tolist() == ["Paris", "", "Paris Opéra"]
    assert f["action_name"].tolist() == ["", "", ""]  # not in the file: empty, as the strict reader gives it


@pytest.mark.parametrize("body, message", [
    (["u1,Accrual,g1,2026-01-05,10,,,Regular,Paris"], "ledger.csv:2: expected 10 fields, found 9"),
    ([ROWS[0], "", ROWS[1], "u3,Accrual"], "ledger.csv:5: expected 10 fields, found 2"),
])
def test_a_file_the_fast_reader_refuses_is_reported_by_the_strict_one(tmp_path, always_fast, body, message):
    path = write(tmp_path, "\n".join([HEADER, *body]) + "\n")
    with pytest.raises(InputError) as info:
        ledger_read.read_ledger(LedgerSource(path=path))
    assert message in str(info.value)


def test_blank_lines_fall_back_to_the_strict_reader_and_keep_physical_lines(tmp_path, always_fast):
    path = write(tmp_path, "\n".join([HEADER, ROWS[0], "", ROWS[1]]) + "\n")
    assert ledger_read.read_ledger(LedgerSource(path=path))["_line"].tolist() == [2, 4]


def test_engine_columns_are_the_same_values_as_the_full_entries(tmp_path, always_fast):
    frame = ledger_read.read_ledger(LedgerSource(path=write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n")))
    full = parse_ledger(frame, source_file="f", timezone="Europe/Paris")
    lean = parse_ledger(frame, source_file="f", timezone="Europe/Paris", entry_columns=ENGINE_COLUMNS)
    assert list(full.entries.columns) == list(ENTRY_COLUMNS)
    assert list(lean.entries.columns) == list(ENGINE_COLUMNS)
    shared = [c for c in ENGINE_COLUMNS if c in ENTRY_COLUMNS]
    pd.testing.assert_frame_equal(plain(lean.entries[shared]), plain(full.entries[shared]))
    for prefix in ("action_at", "effective_start", "effective_end"):
        stamps = pd.DatetimeIndex(full.entries[f"{prefix}_ts"]).as_unit("us").asi8
        assert lean.entries[f"{prefix}_us"].tolist() == stamps.tolist()
    pd.testing.assert_frame_equal(lean.rejects, full.rejects)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("fixture", ["bad_rows.csv", *SIMPLE_FIXTURES])  # bad_rows: every reject reason
def test_reading_only_the_engine_fields_parses_to_the_same_engine_entries(fixture, fast, monkeypatch):
    monkeypatch.setattr(ledger_read, "_FAST_BYTES", 0 if fast else 1 << 62)
    src = LedgerSource(path=FIXTURES / fixture)
    full = ledger_read.read_ledger(src)
    lean = ledger_read.read_ledger(src, fields=ENGINE_FIELDS)
    assert list(lean.columns) == [*ENGINE_FIELDS, "_line"]
    a = parse_ledger(full, source_file="f", timezone="Europe/Paris", entry_columns=ENGINE_COLUMNS)
    b = parse_ledger(lean, source_file="f", timezone="Europe/Paris", entry_columns=ENGINE_COLUMNS)
    pd.testing.assert_frame_equal(plain(a.entries), plain(b.entries))
    pd.testing.assert_frame_equal(a.rejects, b.rejects)
