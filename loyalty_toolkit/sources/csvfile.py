"""Robust reading of delimited legacy exports (comma, semicolon, tab or pipe separated).

Legacy systems export in whatever encoding and separator their locale used, so both are detected:

* **Encoding**: a byte-order mark decides (``utf-8-sig``, ``utf-16`` little-endian, ``utf-16-be``);
  otherwise the file must be strict UTF-8, else cp1252. cp1252 leaves 0x81 0x8D 0x8F 0x90 0x9D
  undefined: such bytes are reported with their line and column, never guessed. A file that is
  mostly UTF-8 with a few stray bytes is refused as mixed rather than silently read as cp1252.
* **Delimiter**: the candidate (``,`` ``;`` tab ``|``) that occurs most often in the header line
  outside quotes; no candidate or a tie means comma.

Records are read by Python's csv module in strict mode: quoted fields may hold delimiters, doubled
quotes and line breaks. Line numbers are physical lines, 1-based (the header is line 1). Blank lines
(empty or whitespace only) are not records: they are skipped wherever they occur and counted nowhere.
Header names are trimmed and a stray leading U+FEFF is dropped; empty header names are allowed
(they can never be mapped), repeated non-empty names are an error. Every problem is an
:class:`InputError` naming the file, the line and, where known, the column.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.csv_scan import count_plain_records, decodes

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_HEAD_BYTES = 1 << 20  # enough to hold any sane header line
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # in a header name: a NUL byte, a control
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# A complete multi-byte UTF-8 sequence: in a file that fails UTF-8, these betray mixed encodings.
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


@dataclass(frozen=True)
class CsvFormat:
    """How a delimited file is encoded: a Python codec name and a one-character delimiter."""

    encoding: str
    delimiter: str


@dataclass
class CsvTable:
    """A delimited file read into memory, with the physical line where each record starts."""

    path: Path
    format: CsvFormat
    header: list[str]
    header_raw: str
    rows: list[list[str]]
    lines: list[int]
    raw: list[str] | None = None

    def __len__(self) -> int:
        return len(self.rows)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of row lists: it would rescan them again and
    again (about half the parse time) and they hold no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _error(message: str, path: Path, stage: str | None, line: int | None = None,
           column: str | int | None = None) -> InputError:
    return InputError(message, file=path.name, line=line, column=column, stage=stage)


def _read_bytes(path: Path, stage: str | None) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _error(f"cannot read file: {exc.strerror or exc}", Path(path), stage) from None


def _first_error(data: bytes, codec: str) -> UnicodeDecodeError | None:
    try:
        data.decode(codec)
    except UnicodeDecodeError as exc:
        return exc
    return None


def _decode_error(data: bytes, codec: str, exc: UnicodeDecodeError, what: str, path: Path,
                  stage: str | None, hint: str = "") -> InputError:
    """An InputError at the line and character column of the first undecodable byte."""
    prefix = data[: exc.start].decode(codec, errors="replace")
    line = len(_LINE_BREAK.findall(prefix)) + 1
    last_break = max(prefix.rfind("\n"), prefix.rfind("\r"))
    column = len(prefix) - last_break
    bad = " ".join(f"0x{b:02x}" for b in data[exc.start : min(exc.end, exc.start + 4)])
    return _error(f"bytes not valid {what} ({bad}){hint}", path, stage, line, column)


def _detect_encoding(data: bytes, encoding: str, path: Path, stage: str | None) -> str:
    """The codec to read ``data`` with; raises InputError at the first byte it cannot decode."""
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise _error(f"unknown encoding {encoding!r}", path, stage) from None
        exc = _first_error(data, encoding)
        if exc is not None:
            raise _decode_error(data, encoding, exc, encoding, path, stage)
        return encoding
    if data.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    elif data.startswith(codecs.BOM_UTF16_LE):
        codec = "utf-16"
    elif data.startswith(codecs.BOM_UTF16_BE):
        # Decoded without consuming the BOM: it stays in header_raw so write_records reproduces it.
        codec = "utf-16-be"
    else:
        utf8_error = _first_error(data, "utf-8")
        if utf8_error is None:
            return "utf-8"
        # UTF-8 elsewhere in the file: the first line that is not UTF-8 is the one to name, even when
        # a later UTF-8 character (Đ = c4 90) is not cp1252 either
        if _UTF8_SEQUENCE.search(data):
            raise _decode_error(data, "utf-8", utf8_error, "utf-8", path, stage,
                                "; other lines are utf-8, so the file mixes encodings: re-export it or "
                                "declare its encoding")
        cp_error = _first_error(data, "cp1252")
        if cp_error is not None:
            raise _decode_error(data, "cp1252", cp_error, "cp1252 / utf-8", path, stage)
        return "cp1252"
    exc = _first_error(data, codec)
    if exc is not None:
        raise _decode_error(data, codec, exc, codec, path, stage)
    return codec


def _head_text(data: bytes, codec: str, size: int = _HEAD_BYTES) -> str:
    # Slicing may cut a multi-byte character; the whole file was validated already.
    return data[:size].decode(codec, errors="ignore")


def _sniff_delimiter(head: str) -> str:
    """The candidate seen most often in the first non-blank line outside quotes; tie or none: comma."""
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    seen_text = False
    for ch in head:
        if ch == '"':
            in_quotes = not in_quotes  # a doubled quote toggles twice, as it should
            seen_text = True
        elif in_quotes:
            continue
        elif ch == "\n" or ch == "\r":
            if seen_text:
                break
        elif ch in counts:
            counts[ch] += 1
            seen_text = True
        elif not ch.isspace():
            seen_text = True
    best = max(counts.values())
    winners = [d for d, c in counts.items() if c == best]
    return winners[0] if best > 0 and len(winners) == 1 else ","


def _load(path: Path, encoding: str, delimiter: str, stage: str | None) -> tuple[CsvFormat, bytes]:
    path = Path(path)
    if delimiter != "auto" and delimiter not in DELIMITERS:
        raise _error(f"unsupported delimiter {delimiter!r} (use , ; | or a tab)", path, stage)
    data = _read_bytes(path, stage)
    codec = _detect_encoding(data, encoding, path, stage)
    head = _head_text(data, codec)
    if not head.strip("\ufeff \t\r\n") and len(data) <= _HEAD_BYTES:
        raise _error("file is empty (no header row)", path, stage, line=1)
    return CsvFormat(codec, delimiter if delimiter != "auto" else _sniff_delimiter(head)), data


def sniff(path: Path, encoding: str = "auto", delimiter: str = "auto", *, stage: str | None = None) -> CsvFormat:
    """Detect (or check) the encoding and delimiter of a delimited file without parsing its records."""
    fmt = _sniff_streamed(Path(path), encoding, delimiter)
    if fmt is None:  # a problem, or a file that is not utf-8: the whole-file path decides and words it
        fmt, _ = _load(Path(path), encoding, delimiter, stage)
    return fmt


def _sniff_streamed(path: Path, encoding: str, delimiter: str) -> CsvFormat | None:
    """What :func:`_load` finds, in bounded memory, when the file decodes with the codec its first
    bytes point to (or the declared one); None for everything else."""
    if delimiter != "auto" and delimiter not in DELIMITERS:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES + 1)
    except OSError:
        return None
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            return None
        codec = encoding
    elif head.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    elif head.startswith(codecs.BOM_UTF16_LE):
        codec = "utf-16"
    elif head.startswith(codecs.BOM_UTF16_BE):
        codec = "utf-16-be"
    else:
        codec = "utf-8"
    if not decodes(path, codec):
        return None
    text = _head_text(head, codec)
    if not text.strip("\ufeff \t\r\n") and len(head) <= _HEAD_BYTES:
        return None
    return CsvFormat(codec, delimiter if delimiter != "auto" else _sniff_delimiter(text))


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return "unterminated quoted field"
    if "field larger than field limit" in text:
        return f"field longer than {csv.field_size_limit()} characters (unterminated quoted field?)"
    return f"malformed quoting: {text}"


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _physical_lines(data: bytes, codec: str, first: int, last: int) -> str:
    """The exact text of physical lines ``first..last`` (1-based, inclusive)."""
    size = _HEAD_BYTES
    while True:
        head = _head_text(data, codec, size)
        parts = [m.group() for m in _PHYSICAL_LINE.finditer(head)]
        if len(parts) > last or size >= len(data):
            return "".join(parts[first - 1 : last])
        size *= 4


def read_table(path: Path, *, encoding: str = "auto", delimiter: str = "auto", required: Iterable[str] = (),
               allow_empty: bool = False, keep_raw: bool = False, stage: str | None = None) -> CsvTable:
    """Read a whole delimited file, checking its header and that every record has the header's width.

    ``required`` header names must be present. ``keep_raw`` also keeps each record's exact text (for
    :func:`write_records`). Raises InputError for anything that cannot be read as a table.
    """
    path = Path(path)
    fmt, data = _load(path, encoding, delimiter, stage)
    with _gc_paused():
        return _parse(path, fmt, data, required, allow_empty, keep_raw, stage)


def _parse(path: Path, fmt: CsvFormat, data: bytes, required: Iterable[str], allow_empty: bool, keep_raw: bool,
           stage: str | None) -> CsvTable:
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=fmt.encoding, newline="")
    buf: list[str] = []

    def recording() -> Iterator[str]:
        for physical in stream:
            buf.append(physical)
            yield physical

    reader = csv.reader(recording() if keep_raw else stream, delimiter=fmt.delimiter, strict=True)
    prev = 0  # physical line where the previous record ended
    try:
        header: list[str] | None = None
        header_line = 1
        for row in reader:
            header_line, prev = prev + 1, reader.line_num
            if _blank(row):
                buf.clear()
                continue
            header = row
            break
        if header is None:
            raise _error("file is empty (no header row)", path, stage, line=1)
        header_raw = "".join(buf) if keep_raw else _physical_lines(data, fmt.encoding, header_line, prev)
        buf.clear()
        names = _check_header(header, header_line, required, path, stage)

        rows: list[list[str]] = []
        lines: list[int] = []
        raw: list[str] | None = [] if keep_raw else None
        width = len(names)
        single = width == 1
        for row in reader:
            start, prev = prev + 1, reader.line_num
            if len(row) != width or (single and not row[0].strip()):
                if _blank(row):
                    buf.clear()
                    continue
                raise _error(f"expected {width} fields, found {len(row)}", path, stage, line=start)
            rows.append(row)
            lines.append(start)
            if raw is not None:
                raw.append("".join(buf))
                buf.clear()
    except csv.Error as exc:
        raise _error(_csv_problem(exc), path, stage, line=prev + 1) from None
    if not rows and not allow_empty:
        raise _error("no data rows (header only)", path, stage)
    return CsvTable(path=path, format=fmt, header=names, header_raw=header_raw, rows=rows, lines=lines, raw=raw)


def _check_header(header: list[str], line: int, required: Iterable[str], path: Path,
                  stage: str | None) -> list[str]:
    names = [h.strip() for h in header]
    names[0] = names[0].lstrip("\ufeff").strip()
    seen: set[str] = set()
    for i, name in enumerate(names, start=1):
        if _CONTROL.search(name):  # "email\x00" would silently not be the email column
            bad = _CONTROL.search(name).group()
            shown = name.encode("unicode_escape").decode("ascii")
            raise _error(f"header name '{shown}' holds U+{ord(bad):04X}", path, stage, line=line, column=i)
        if name and name in seen:
            raise _error("duplicate column name in header", path, stage, line=line, column=name)
        seen.add(name)
    for want in required:
        if want.strip() not in seen:
            found = ", ".join(n for n in names if n)
            raise _error(f"mapped column missing from header (found: {found})", path, stage, line=line,
                         column=want)
    return names


def read_header(path: Path, fmt: CsvFormat, *, stage: str | None = None) -> list[str]:
    """The header names (trimmed, as :func:`read_table` gives them) without reading the records."""
    path = Path(path)
    prev = 0
    try:
        with open(path, encoding=fmt.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=fmt.delimiter, strict=True)
            for row in reader:
                line, prev = prev + 1, reader.line_num
                if not _blank(row):
                    return _check_header(row, line, (), path, stage)
    except UnicodeDecodeError as exc:
        raise _error(f"bytes not valid {fmt.encoding} ({exc.reason})", path, stage) from None
    except csv.Error as exc:
        raise _error(_csv_problem(exc), path, stage, line=prev + 1) from None
    except OSError as exc:
        raise _error(f"cannot read file: {exc.strerror or exc}", path, stage) from None
    raise _error("file is empty (no header row)", path, stage, line=1)


def to_frame(table: CsvTable, columns: Mapping[str, str]) -> pd.DataFrame:
    """A frame with one column per canonical name (``columns``: canonical -> header) plus ``_line``.

    A canonical column whose header is absent from the file is filled with empty strings.
    """
    index = {name: i for i, name in enumerate(table.header) if name}
    n = len(table.rows)
    data: dict[str, pd.Series] = {}
    with _gc_paused():
        transposed = list(zip(*table.rows)) if n else []  # one C pass instead of a comprehension per column
        for canonical, header in columns.items():
            i = index.get(header.strip())
            values = np.array(transposed[i], dtype=object) if i is not None and n else np.full(n, "", dtype=object)
            data[canonical] = pd.Series(values, dtype="str", copy=False)
        del transposed
        frame = pd.DataFrame(data, columns=list(columns), copy=False)  # the columns are fresh already
    frame["_line"] = np.asarray(table.lines, dtype=np.int64)
    return frame


def write_records(path: Path, fmt: CsvFormat, header_raw: str, raw_records: Iterable[str]) -> None:
    """Write the header and the given raw records back in the source's encoding (BOM kept).

    The bytes of each record are the source's own. A record that lacked a line ending (the last line of
    the source) gets the header's line ending when another record follows it.
    """
    ending = _ending(header_raw) or "\r\n"
    parts = [header_raw if _ending(header_raw) else header_raw + ending]
    pending = ""
    for record in raw_records:
        if pending:
            parts.append(pending + ending)
        if _ending(record):
            parts.append(record)
            pending = ""
        else:
            pending = record
    if pending:
        parts.append(pending)
    text = "".join(parts)
    if codecs.lookup(fmt.encoding).name == "utf-16":
        payload = codecs.BOM_UTF16_LE + text.encode("utf-16-le")  # same bytes on any platform
    else:
        payload = text.encode(fmt.encoding)
    Path(path).write_bytes(payload)


def _ending(text: str) -> str:
    if text.endswith("\r\n"):
        return "\r\n"
    if text.endswith(("\n", "\r")):
        return text[-1]
    return ""


def count_records(path: Path, fmt: CsvFormat, *, stage: str | None = None) -> int:
    """Count the data records of a file (header and blank lines excluded) without keeping them.

    Records are checked against the header's width as :func:`read_table` does, so a preflight
    count fails on the same ragged line a full read would.
    """
    path = Path(path)
    plain = count_plain_records(path, fmt.encoding, fmt.delimiter)
    if plain is not None:  # no quotes, no ragged lines: counted on the bytes, a block at a time
        return plain
    count, width, prev = 0, None, 0
    try:
        with open(path, encoding=fmt.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=fmt.delimiter, strict=True)
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if width is None:
                    if not _blank(row):
                        width = len(row)
                elif len(row) != width or (width == 1 and not row[0].strip()):
                    if _blank(row):
                        continue
                    raise _error(f"expected {width} fields, found {len(row)}", path, stage, line=start)
                else:
                    count += 1
    except UnicodeDecodeError as exc:
        raise _error(f"bytes not valid {fmt.encoding} ({exc.reason})", path, stage) from None
    except csv.Error as exc:
        raise _error(_csv_problem(exc), path, stage, line=prev + 1) from None
    except OSError as exc:
        raise _error(f"cannot read file: {exc.strerror or exc}", path, stage) from None
    return count


def categories_dtype(values: np.ndarray) -> pd.CategoricalDtype:
    """A dtype over ``values``, which are distinct by construction (from a factorize or a unique).

    Public API only (a replay next year runs another pandas). pandas checks the categories are
    distinct: asking first whether they increase lets a sorted set (the ledger's calendar of
    instants) prove it in one pass of comparisons instead of a hash table (0.8 s against 8.8 s for
    five million); an unsorted set pays the hash table, about 1 s per million distinct values.
    """
    categories = pd.Index(values, dtype=object, copy=False)
    categories.is_monotonic_increasing  # noqa: B018 - computed once, cached on the index
    return pd.CategoricalDtype(categories)
