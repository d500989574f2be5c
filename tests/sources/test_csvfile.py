"""Delimited-file reading: encodings, delimiters, physical lines, raw round-trips and one-line errors."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.csvfile import (
    CsvFormat,
    count_records,
    read_header,
    read_table,
    sniff,
    to_frame,
    write_records,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "members"


def fixture(name: str) -> Path:
    return FIXTURES / name


# -------------------------------------------------------------- detection

@pytest.mark.parametrize(("name", "encoding", "delimiter"), [
    ("utf8_bom_semicolon.csv", "utf-8-sig", ";"),
    ("utf16.csv", "utf-16", ","),
    ("cp1252.csv", "cp1252", ","),
    ("tab.tsv", "utf-8", "\t"),
    ("pipe.csv", "utf-8", "|"),
    ("embedded_newline.csv", "utf-8", ","),
])
def test_sniff_detects_encoding_and_delimiter(name, encoding, delimiter):
    assert sniff(fixture(name)) == CsvFormat(encoding, delimiter)


def test_sniff_respects_declared_values():
    assert sniff(fixture("tab.tsv"), "utf-8", ",") == CsvFormat("utf-8", ",")


@pytest.mark.parametrize(("header", "expected"), [
    ("a;b,c;d", ";"),      # most frequent wins
    ("a;b,c", ","),        # tie -> comma
    ("single", ","),       # none -> comma
    ('"x;y;z",b,c', ","),  # quoted delimiters do not count
])
def test_delimiter_counts_header_outside_quotes(tmp_path, header, expected):
    p = tmp_path / "h.csv"
    p.write_text(header + "\n")
    assert sniff(p).delimiter == expected


# -------------------------------------------------------------- reading

def test_bom_semicolon_file_reads_clean_header_and_values():
    t = read_table(fixture("utf8_bom_semicolon.csv"))
    assert t.header[0] == "guest_id"  # BOM not part of the name
    assert t.rows[0][1] == "Élodie" and t.rows[1][0] == "G002"
    assert t.lines == [2, 3]
    assert all(len(r) == len(t.header) for r in t.rows)


def test_utf16_and_cp1252_decode_diacritics():
    assert read_table(fixture("utf16.csv")).rows[0][2] == "Nguyễn"
    row = read_table(fixture("cp1252.csv")).rows[0]
    assert row[1:3] == ["Chloé", "Cœur"] and row[-1] == "Café €"


def test_embedded_newline_and_doubled_quotes_keep_physical_lines():
    t = read_table(fixture("embedded_newline.csv"))
    assert [r[0] for r in t.rows] == ["E001", "E002", "E003"]
    assert t.rows[0][3] == "first line\nsecond line"
    assert t.rows[1][1] == 'Bob "The Builder"'
    assert t.lines == [2, 4, 5]


def test_blank_lines_are_not_records():
    t = read_table(fixture("blank_lines.csv"))
    assert [r[0] for r in t.rows] == ["B001", "B002"]
    assert t.lines == [3, 6]
    assert count_records(fixture("blank_lines.csv"), sniff(fixture("blank_lines.csv"))) == 2


def test_to_frame_maps_fills_and_numbers_lines():
    t = read_table(fixture("tab.tsv"))
    f = to_frame(t, {"legacy_id": "guest_id", "email": "email", "missing": "no_such_header"})
    assert list(f.columns) == ["legacy_id", "email", "missing", "_line"]
    assert f["legacy_id"].tolist() == ["T001", "T002"]
    assert f["missing"].tolist() == ["", ""]
    assert f["_line"].tolist() == [2, 3] and str(f["_line"].dtype) == "int64"
    assert all(isinstance(v, str) for v in f["email"])


@pytest.mark.parametrize("name", ["utf8_bom_semicolon.csv", "utf16.csv", "cp1252.csv", "tab.tsv",
                                  "members_minimal.csv", "blank_lines.csv"])
def test_read_header_matches_read_table(name):
    path = fixture(name)
    assert read_header(path, sniff(path)) == read_table(path).header


def test_read_header_errors():
    with pytest.raises(InputError, match="duplicate_header.csv:1: column email: duplicate column name"):
        read_header(fixture("duplicate_header.csv"), CsvFormat("utf-8", ","))
    with pytest.raises(InputError, match="empty.csv:1: file is empty"):
        read_header(fixture("empty.csv"), CsvFormat("utf-8", ","))


def test_header_names_are_trimmed():
    t = read_table(fixture("members_minimal.csv"), required=["guest_id"])
    assert t.header[0] == "guest_id"


# -------------------------------------------------------------- raw round trip

@pytest.mark.parametrize("name", ["utf8_bom_semicolon.csv", "utf16.csv", "cp1252.csv", "embedded_newline.csv",
                                  "tab.tsv"])
def test_write_records_is_byte_faithful(tmp_path, name):
    src = fixture(name)
    t = read_table(src, keep_raw=True)
    out = tmp_path / name
    write_records(out, t.format, t.header_raw, t.raw)
    assert out.read_bytes() == src.read_bytes()
    assert count_records(out, t.format) == len(t.rows)
    assert read_table(src).header_raw == t.header_raw  # same header text with or without keep_raw


def test_write_records_selection_keeps_bom_and_encoding(tmp_path):
    t = read_table(fixture("utf16.csv"), keep_raw=True)
    out = tmp_path / "subset.csv"
    write_records(out, t.format, t.header_raw, [t.raw[1]])
    data = out.read_bytes()
    assert data.startswith(codecs.BOM_UTF16_LE)
    again = read_table(out)
    assert again.rows == [t.rows[1]] and again.format == t.format


def test_write_records_adds_line_ending_to_an_unterminated_last_record(tmp_path):
    p = tmp_path / "noeol.csv"
    p.write_bytes(b"id,name\r\n1,a\r\n2,b")
    t = read_table(p, keep_raw=True)
    out = tmp_path / "out.csv"
    write_records(out, t.format, t.header_raw, [t.raw[1], t.raw[0]])
    assert out.read_bytes() == b"id,name\r\n2,b\r\n1,a\r\n"


# -------------------------------------------------------------- errors: one line, file, line, column

BAD_INPUTS = [
    ("empty.csv", {}, "empty.csv:1: file is empty (no header row)", 1, None),
    ("header_only.csv", {}, "header_only.csv: no data rows (header only)", None, None),
    ("ragged.csv", {}, "ragged.csv:4: expected 4 fields, found 3", 4, None),
    ("undecodable.csv", {}, "undecodable.csv:4: column 17: bytes not valid cp1252 / utf-8 (0x9d)", 4, 17),
    ("unterminated.csv", {}, "unterminated.csv:3: unterminated quoted field", 3, None),
    ("missing_column.csv", {"required": ["guest_id", "email"]},
     "missing_column.csv:1: column email: mapped column missing from header (found: guest_id, first_name, last_name)",
     1, "email"),
    ("duplicate_header.csv", {}, "duplicate_header.csv:1: column email: duplicate column name in header", 1, "email"),
    ("mixed_encoding.csv", {}, "mixed_encoding.csv:3: column 9: bytes not valid utf-8 (0xe9); other lines are utf-8",
     3, 9),
]


@pytest.mark.parametrize(("name", "kwargs", "message", "line", "column"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_line_input_error(name, kwargs, message, line, column):
    with pytest.raises(InputError) as info:
        read_table(fixture(name), stage="members", **kwargs)
    err = info.value
    text = err.one_line()
    assert "\n" not in text
    assert text.startswith("[members] ") and message in text
    assert err.file == name and err.line == line and err.column == column


def test_declared_encoding_that_does_not_fit(tmp_path):
    with pytest.raises(InputError) as info:
        read_table(fixture("cp1252.csv"), encoding="utf-8")
    assert str(info.value) == "cp1252.csv:2: column 10: bytes not valid utf-8 (0xe9)"


def test_unknown_encoding_and_bad_delimiter():
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        read_table(fixture("tab.tsv"), encoding="klingon")
    with pytest.raises(InputError, match="unsupported delimiter"):
        read_table(fixture("tab.tsv"), delimiter=":")


def test_header_only_allowed_when_asked():
    t = read_table(fixture("header_only.csv"), allow_empty=True)
    assert t.rows == [] and len(t.header) == 10
    assert to_frame(t, {"legacy_id": "guest_id"}).empty


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="nope.csv: cannot read file"):
        read_table(tmp_path / "nope.csv")


def test_a_million_rows_read_in_seconds(tmp_path):
    """Performance smoke: 200k x 10 in well under the budget (1M took ~3 s on 2 cores)."""
    import time

    p = tmp_path / "big.csv"
    line = "G{0},Ann,Lee,a{0}@x.fr,+33612345678,{0:010d},1980-01-01,F,2020-01-01 10:00:00,Paris\n"
    p.write_text("a,b,c,d,e,f,g,h,i,j\n" + "".join(line.format(i) for i in range(200_000)))
    start = time.process_time()
    t = read_table(p)
    assert len(t.rows) == 200_000 and t.lines[-1] == 200_001
    assert time.process_time() - start < 5


def test_count_records_checks_width_like_read_table():
    fmt = sniff(fixture("ragged.csv"))
    with pytest.raises(InputError) as info:
        count_records(fixture("ragged.csv"), fmt, stage="validate")
    assert str(info.value) == "[validate] ragged.csv:4: expected 4 fields, found 3"
    with pytest.raises(InputError, match="unterminated.csv:3: unterminated quoted field"):
        count_records(fixture("unterminated.csv"), sniff(fixture("unterminated.csv")))
    assert count_records(fixture("embedded_newline.csv"), sniff(fixture("embedded_newline.csv"))) == 3
    assert count_records(fixture("header_only.csv"), sniff(fixture("header_only.csv"))) == 0


def test_a_control_character_in_a_header_name_is_an_error_at_its_column(tmp_path):
    """Issue #17: 'email\\x00' silently was not the email column."""
    path = tmp_path / "m.csv"
    path.write_bytes(b"guest_id,email\x00\nG1,a@x.fr\n")
    with pytest.raises(InputError) as err:
        read_table(path)
    assert (err.value.line, err.value.column) == (1, 2) and "U+0000" in err.value.message
