"""ledger_stream: reading and parsing block by block gives exactly what the whole-file path gives."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.config import LedgerSource
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.ledger import stream as ledger_stream
from loyalty_toolkit.sources.ledger.parse import (
    ENGINE_COLUMNS,
    ENGINE_FIELDS,
    ENGINE_TIMES,
    ENTRY_COLUMNS,
    parse_ledger,
)
from loyalty_toolkit.sources.ledger.read import read_ledger

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ledger"
TZ = "Europe/Paris"
# every entry column blocks can give, besides the engine's
JOINABLE = [c for c in (*ENTRY_COLUMNS, *ENGINE_TIMES) if c not in ledger_stream._WHOLE_ONLY]


def whole(src: LedgerSource, entry_columns, fields=None):
    """The oracle: stage 03's two calls before ledger_stream."""
    return parse_ledger(read_ledger(src, fields=fields), source_file=src.path.name, timezone=TZ,
                        columns=src.column_map(), entry_columns=entry_columns)


@pytest.fixture
def blocks_seen(monkeypatch):
    """How many blocks ledger_stream parsed (0: it read the file whole)."""
    seen = []

    def counting(frame, **kw):
        if kw.get("check_repeats") is False:  # a block; the whole-file path checks repeats itself
            seen.append(len(frame))
        return parse_ledger(frame, **kw)

    monkeypatch.setattr(ledger_stream, "parse_ledger", counting)
    return seen


def streamed(src: LedgerSource, entry_columns, block_bytes: int, fields=None):
    return ledger_stream.read_and_parse_ledger(src, timezone=TZ, fields=fields, columns=src.column_map(),
                                               entry_columns=entry_columns, block_bytes=block_bytes, whole_below=0)


def assert_same(got, expected) -> None:
    """Identical frames: dtypes, categories and their order, index, reject rows and lines."""
    pd.testing.assert_frame_equal(got.entries, expected.entries, check_categorical=True, check_exact=True)
    for c in got.entries.columns:
        if isinstance(got.entries[c].dtype, pd.CategoricalDtype):
            assert got.entries[c].cat.categories.tolist() == expected.entries[c].cat.categories.tolist(), c
    pd.testing.assert_frame_equal(got.rejects, expected.rejects, check_exact=True)
    assert (got.rows_read, got.source_file, got.timezone) == (expected.rows_read, expected.source_file,
                                                              expected.timezone)


def longest_line(data: bytes) -> int:
    return max(len(line) for line in data.split(b"\n")) + 1


def copy(tmp: Path, data: bytes, name: str = "ledger.csv") -> LedgerSource:
    path = tmp / name
    path.write_bytes(data)
    return LedgerSource(path=path)


SIMPLE = sorted(p.name for p in FIXTURES.glob("*.csv") if b'"' not in p.read_bytes())


@pytest.mark.parametrize("fixture", SIMPLE)
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("columns, fields", [(ENGINE_COLUMNS, ENGINE_FIELDS), (JOINABLE, None)])
def test_blocks_of_a_few_hundred_bytes_give_the_whole_file_parse(fixture, crlf, columns, fields, tmp_path,
                                                                  blocks_seen):
    data = (FIXTURES / fixture).read_bytes()
    src = copy(tmp_path, data.replace(b"\n", b"\r\n") if crlf else data)
    expected = whole(src, columns, fields)
    smallest = longest_line(src.path.read_bytes())
    for block in (1, 50, smallest, smallest + 37, 400, 1 << 20):
        blocks_seen.clear()
        assert_same(streamed(src, columns, block, fields), expected)
        assert blocks_seen  # the block path, not the whole-file fallback
        if block <= smallest and len(data) > 3 * smallest:
            assert len(blocks_seen) >= 2
        assert sum(blocks_seen) == expected.rows_read


def test_repeated_ids_across_blocks_are_rejected_as_in_one_read(tmp_path, blocks_seen):
    src = LedgerSource(path=FIXTURES / "repeats_blocks.csv")
    expected = whole(src, ENGINE_COLUMNS)
    got = streamed(src, ENGINE_COLUMNS, longest_line(src.path.read_bytes()))
    assert len(blocks_seen) >= 5
    assert_same(got, expected)
    repeats = got.rejects[got.rejects["reason_code"] == "GUESTPOINTSID_DUPLICATE"]
    # the first accepted accrual keeps the id, whichever block the repeat falls in; the value is the cell as read
    assert repeats[["line", "message", "value"]].values.tolist() == [
        [6, "accrual id already used on line 2", "g1"],
        [7, "accrual id already used on line 4", "g2 "],
        [12, "accrual id already used on line 9", " g4"],
        [16, "accrual id already used on line 2", "g1"],
    ]


def test_a_multibyte_character_cut_by_a_block_edge(tmp_path, blocks_seen):
    data = (FIXTURES / "repeats_blocks.csv").read_bytes()
    src = copy(tmp_path, data)
    expected = whole(src, ENGINE_COLUMNS)
    body = data.index(b"\n") + 1  # blocks are read from the end of the header
    # end the first block between the bytes of each é, ü, ø...
    cuts = [i + 1 - body for i, b in enumerate(data) if b >= 0xC0 and i > body]
    assert len(cuts) >= 5
    for block in cuts:
        with pytest.raises(UnicodeDecodeError):
            data[body:body + block].decode("utf-8")  # the first block really ends inside a character
        blocks_seen.clear()
        assert_same(streamed(src, ENGINE_COLUMNS, block), expected)
        assert len(blocks_seen) >= 2


ROW_VALUES = {
    "user id": ["u1", "u2", " u3 ", ""],
    "record type name": ["Accrual", "Redemption", "accrual", "Bonus"],
    "guestpointsid": ["g1", "g2", " g1", "g3 ", ""],
    "action date": ["2026-01-05 10:00:00", "2026-03-29 02:30:00", "2026-10-25 02:30:00", "2026-02-30", ""],
    "Loyalty Points": ["10", "-4", "1.5", "-0.25", "x", "0.0000001", "0", ""],
    "effective start date": ["", "2026-01-05", "2026-01-05T10:00:00+02:00"],
    "effective end date": ["", "2027-01-05", "soon"],
    "program name": ["Regular", "Prémium"],
    "accrual center name": ["Paris Opéra", "Lyon", " Lyon", ""],
    "payment center name": ["Ünïcødé centre", "Lyon", ""],
    "accrual center minutes to add": ["60", "", "x", "-120"],
    "payment center minutes to add": ["", "120", "1000"],
}


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in ROW_VALUES.items()}),
                     min_size=1, max_size=40),
       crlf=st.booleans(), block=st.integers(1, 2000), engine=st.booleans())
def test_any_ledger_any_block_size_gives_the_whole_file_parse(rows, crlf, block, engine):
    end = "\r\n" if crlf else "\n"
    text = end.join([",".join(ROW_VALUES), *(",".join(r.values()) for r in rows)]) + end
    data = text.encode("utf-8")
    columns, fields = (ENGINE_COLUMNS, ENGINE_FIELDS) if engine else (JOINABLE, None)
    with tempfile.TemporaryDirectory() as tmp:
        src = copy(Path(tmp), data)
        assert_same(streamed(src, columns, block, fields), whole(src, columns, fields))


def test_a_record_pyarrow_refuses_part_way_is_reported_as_read_ledger_reports_it(tmp_path, blocks_seen):
    lines = (FIXTURES / "repeats_blocks.csv").read_text(encoding="utf-8").splitlines()
    src = copy(tmp_path, "\n".join([*lines[:12], "u9,Accrual,g9", *lines[12:]]).encode("utf-8") + b"\n")
    with pytest.raises(InputError) as expected:
        read_ledger(src)
    with pytest.raises(InputError) as got:
        streamed(src, ENGINE_COLUMNS, longest_line(src.path.read_bytes()))
    assert str(got.value) == str(expected.value) and ":13: expected 12 fields, found 3" in str(got.value)
    assert len(blocks_seen) >= 2  # blocks before the bad record were parsed, then dropped


@pytest.mark.parametrize("columns", [None, ["line", "action_at_utc"], ["user_id", "effective_end_raw"]])
def test_columns_blocks_cannot_join_and_files_pyarrow_cannot_read_go_whole(columns, tmp_path, blocks_seen):
    for fixture in ("repeats_blocks.csv", "bad_rows.csv"):  # bad_rows has a quoted field
        src = LedgerSource(path=FIXTURES / fixture)
        assert_same(streamed(src, columns, 300), whole(src, columns))
    assert blocks_seen == []  # neither went through the block path


def test_small_files_are_read_whole_by_default(blocks_seen):
    src = LedgerSource(path=FIXTURES / "repeats_blocks.csv")
    got = ledger_stream.read_and_parse_ledger(src, timezone=TZ, columns=src.column_map(),
                                              entry_columns=ENGINE_COLUMNS, block_bytes=300)
    assert_same(got, whole(src, ENGINE_COLUMNS))
    assert blocks_seen == []


def test_unknown_entry_columns_are_refused_as_parse_ledger_refuses_them(tmp_path):
    src = LedgerSource(path=FIXTURES / "repeats_blocks.csv")
    with pytest.raises(ValueError, match="unknown entry columns"):
        streamed(src, ["line", "nonsense"], 300)
