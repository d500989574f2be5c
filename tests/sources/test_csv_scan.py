"""The block scans behind ``sniff`` and ``count_records`` answer exactly as the whole-file readers
did (kept here as the oracle): same format, same count, same one-line error, on every fixture and
on files made to hit each way out of the fast path."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources import csv_scan, csvfile
from loyalty_toolkit.sources.csvfile import CsvFormat, count_records, sniff

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def old_sniff(path: Path, encoding: str = "auto", delimiter: str = "auto") -> CsvFormat:
    """``sniff`` before the block scan: the whole file in memory."""
    return csvfile._load(Path(path), encoding, delimiter, None)[0]


def old_count(path: Path, fmt: CsvFormat) -> int:
    """``count_records`` before the block scan: every record through the csv module."""
    count, width, prev = 0, None, 0
    try:
        with open(path, encoding=fmt.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=fmt.delimiter, strict=True)
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if width is None:
                    if not csvfile._blank(row):
                        width = len(row)
                elif len(row) != width or (width == 1 and not row[0].strip()):
                    if csvfile._blank(row):
                        continue
                    raise csvfile._error(f"expected {width} fields, found {len(row)}", path, None, line=start)
                else:
                    count += 1
    except UnicodeDecodeError as exc:
        raise csvfile._error(f"bytes not valid {fmt.encoding} ({exc.reason})", path, None) from None
    except csv.Error as exc:
        raise csvfile._error(csvfile._csv_problem(exc), path, None, line=prev + 1) from None
    return count


def outcome(fn, *args):
    try:
        return fn(*args)
    except InputError as exc:
        return exc.one_line()


def same_answers(path: Path, encoding: str = "auto", delimiter: str = "auto") -> None:
    fmt = outcome(sniff, path, encoding, delimiter)
    assert fmt == outcome(old_sniff, path, encoding, delimiter)
    if isinstance(fmt, CsvFormat):
        assert outcome(count_records, path, fmt) == outcome(old_count, path, fmt)


FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".csv", ".tsv", ".txt"))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_gives_the_same_format_count_and_error(path):
    same_answers(path)


CASES = {
    "plain": b"a,b,c\n1,2,3\n4,5,6\n",
    "no final line feed": b"a,b,c\n1,2,3\n4,5,6",
    "crlf": b"a,b,c\r\n1,2,3\r\n\r\n4,5,6\r\n",
    "lone carriage return": b"a,b,c\r1,2,3\r4,5,6\r",
    "blank lines before the header": b"\n  \n\t\na,b\n1,2\n",
    "blank and whitespace lines between records": b"a,b\n1,2\n\n   \n3,4\n \xc2\xa0 \n",
    "empty fields": b"a,b,c\n,,\n1,,\n",
    "quotes": b'a,b\n"1,5",2\n"x\ny",3\n',
    "ragged": b"a,b,c\n1,2,3\n4,5\n",
    "too wide": b"a,b,c\n1,2,3,4\n",
    "one word where a record should be": b"a,b\nhello\n1,2\n",
    "one column": b"a\n1\n\n2\n",
    "header only": b"a,b,c\n",
    "empty": b"",
    "blank only": b"\n\n  \n",
    "nul": b"a,b\n1,\x002\n",
    "utf-8 bom": b"\xef\xbb\xbfa;b\n1;\xc3\xa9\n",
    "invalid utf-8 late": b"a,b\n" + b"1,2\n" * 50 + b"3,\xe9t\xe9\n",
    "mixed encodings": b"a,b\n1,\xc3\xa9\n2,\xe9\n",
    "cp1252 undefined byte": b"a,b\n1,\x81\n",
    "surrogate": b"a,b\n1,\xed\xa0\x80\n",
    "field over the csv limit": b"a,b\n1," + b"x" * (csv.field_size_limit() + 10) + b"\n",
    "semicolons": b"a;b;c\n1;2;3\n",
    "tabs with a comma in a field": b"a\tb\n1,5\t2\n",
}


@pytest.mark.parametrize("content", CASES.values(), ids=CASES.keys())
def test_made_files_give_the_same_answers(tmp_path, content):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    same_answers(path)
    for encoding in ("utf-8", "cp1252", "latin-1"):
        same_answers(path, encoding, "auto")
    same_answers(path, "auto", ";")


@pytest.mark.parametrize("block", [1, 3, 7, 64])
def test_blocks_cut_anywhere_give_the_same_count(tmp_path, monkeypatch, block):
    """Lines, multi-byte characters and blank lines that straddle the block boundaries."""
    monkeypatch.setattr(csv_scan, "BLOCK_BYTES", block)
    path = tmp_path / "input.csv"
    path.write_bytes(b"\n id,name,city\n" + b"".join(b"%d,Ren\xc3\xa9e,Paris Op\xc3\xa9ra\n\n" % i for i in range(40))
                     + b"x,\xe2\x82\xac,y")
    same_answers(path)
    assert count_records(path, sniff(path)) == 41


def test_the_fast_path_is_taken_for_a_plain_file(tmp_path):
    path = tmp_path / "input.csv"
    path.write_bytes(b"a,b\n1,2\n\n3,4\n")
    assert csv_scan.count_plain_records(path, "utf-8", ",") == 2
    assert csv_scan.count_plain_records(path, "utf-16", ",") is None
    path.write_bytes(b'a,b\n"1",2\n')
    assert csv_scan.count_plain_records(path, "utf-8", ",") is None


def test_the_sample_program_gives_the_same_answers(tmp_path):
    from loyalty_toolkit.runner.workspace import DEMO_CUTOVER
    from loyalty_toolkit.sample import generate_sample

    sample = generate_sample(tmp_path, members=300, cutover=DEMO_CUTOVER)
    for path in (sample.members, sample.ledger, sample.opening_balances, *sample.rewards):
        same_answers(path)


def old_qualifies(path: Path, codec: str) -> bool:
    """``arrow_csv.qualifies`` before the block scan: 64 MB blocks decoded as text."""
    import codecs

    if codecs.lookup(codec).name not in ("utf-8", "utf-8-sig"):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    last = b""
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 26):
                if b'"' in block:
                    return False
                joint = last + block[:2]
                if b"\n\n" in block or b"\n\r\n" in block or b"\n\n" in joint or b"\n\r\n" in joint:
                    return False
                crlf = block.count(b"\r\n") + (last[-1:] == b"\r" and block[:1] == b"\n")
                if block.count(b"\r") - (block[-1:] == b"\r") + (last[-1:] == b"\r") != crlf:
                    return False
                decoder.decode(block)
                last = block[-2:]
            decoder.decode(b"", final=True)
    except (UnicodeDecodeError, OSError):
        return False
    return True


@pytest.mark.parametrize("block", [3, 64, 1 << 24])
@pytest.mark.parametrize("content", [*CASES.values(), b"a,b\r\n1,2\r\n\r\n", b"a,b\n1,2\n\n", b"a,b\n1,2\r\n\n3,4\n"],
                         ids=[*CASES.keys(), "crlf blank", "lf blank", "mixed blank"])
def test_arrow_qualifies_answers_as_before(tmp_path, monkeypatch, content, block):
    from loyalty_toolkit.sources.arrow_csv import qualifies

    monkeypatch.setattr(csv_scan, "BLOCK_BYTES", block)
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    for codec in ("utf-8", "utf-8-sig", "cp1252"):
        assert qualifies(path, codec) == old_qualifies(path, codec)


def test_arrow_qualifies_is_stricter_only_for_a_lone_carriage_return_at_the_end(tmp_path):
    from loyalty_toolkit.sources.arrow_csv import qualifies

    path = tmp_path / "input.csv"
    path.write_bytes(b"a,b\n1,2\r")
    assert old_qualifies(path, "utf-8") and not qualifies(path, "utf-8")  # the strict reader then decides


def test_arrow_qualifies_on_the_sample_ledger(small_program):
    from loyalty_toolkit.sources.arrow_csv import qualifies

    for path in sorted((small_program.parent / "legacy").glob("*.csv")):
        assert qualifies(path, "utf-8") == old_qualifies(path, "utf-8")
    assert qualifies(small_program.parent / "legacy" / "points_liability.csv", "utf-8")
