"""Stream the ledger export (seed 004) into a frame of categorical text columns, one per mapped field.

Reading is kept apart from parsing (``sources/ledger/parse.py``): this module only knows CSV, encodings
and headers. A ledger repeats its members, types, centers, tiers and points over millions of rows,
so each column is coded batch by batch into distinct values plus a small integer per row, and the
file is never held in memory whole.
"""

from __future__ import annotations

import codecs
import csv
from array import array
from collections.abc import Collection, Iterator, Mapping
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.config import LedgerSource
from loyalty_toolkit.sources import arrow_csv
from loyalty_toolkit.sources.csvfile import (
    _HEAD_BYTES,
    DELIMITERS,
    _blank,
    _check_header,
    _csv_problem,
    _error,
    _gc_paused,
    _sniff_delimiter,
    categories_dtype,
    sniff,
)

STAGE = "transfers"
# Fields without which no row of the file could be accepted: their headers must be in the file.
LEDGER_REQUIRED: tuple[str, ...] = ("user_id", "record_type", "action_date", "points")
# The three date fields share one set of categories in read_ledger's frame (an accrual's effective
# start is usually its action date), so each distinct date text is stored and parsed once.
DATE_FIELDS: tuple[str, ...] = ("action_date", "effective_start", "effective_end")
# Below this size the strict reader is as quick as setting pyarrow up.
_FAST_BYTES = 1 << 20
_BATCH = 1 << 16  # records per batch while reading: a batch's Python strings are dropped once coded

# -- reading -----------------------------------------------------------------------------------


def required_headers(src: LedgerSource) -> list[str]:
    """Headers that must be present: the required fields plus every explicitly mapped one."""
    mapping = src.column_map()
    return list(dict.fromkeys([mapping[f] for f in LEDGER_REQUIRED] + [mapping[f] for f in src.columns]))


def read_ledger(src: LedgerSource, *, stage: str = STAGE, fields: Collection[str] | None = None) -> pd.DataFrame:
    """The ledger export as a canonical frame (keys of src.column_map() + int64 `_line`), ready for parse_ledger.

    Every canonical column is a pandas ``Categorical`` of the cells as read (text, not trimmed): a
    ledger repeats its members, types, centers, tiers and points over millions of rows, and each
    distinct text is then stored once plus a small integer per row. The three date columns share
    one set of categories (:data:`DATE_FIELDS`). A field whose header is not in the file is all
    ``""``; columns that are not mapped are not kept. ``_line`` is the physical line where the
    record starts (header = 1, quoted line breaks counted), as :func:`csvfile.read_table` gives it.

    Same rules as ``read_table`` (encoding and delimiter ``auto`` or declared, blank lines skipped,
    strict quoting, every record as wide as the header, required headers present, at least one
    record), but the file is streamed: it is never held in memory whole, and is decoded in a
    single pass (``auto`` assumes UTF-8 unless a BOM says otherwise and falls back to
    ``csvfile.sniff``, which reads the whole file, only when that fails). Raises InputError with
    file, line and column; with several problems in one file the first met while reading wins.

    ``fields`` keeps only those canonical fields (and the required ones): stage 03 reads
    ``ledger.ENGINE_FIELDS``, since invoice ids and tiers, near-unique over millions of rows, would
    cost gigabytes that the lot engine never reads.

    A large file with a simple layout (``arrow_csv.qualifies``) is read by pyarrow instead, to
    the same frame; anything that reader refuses is read again the strict way, which reports it.
    """
    path = Path(src.path)
    # every mapped header must still be in the file; only the fields asked for are kept
    required = required_headers(src)
    mapping = {f: h for f, h in src.column_map().items() if fields is None or f in fields or f in LEDGER_REQUIRED}
    codec, delimiter = _stream_format(path, src.encoding, src.delimiter, stage)
    fast = _read_fast(path, codec, delimiter, mapping, required, stage)
    if fast is not None:
        return fast
    try:
        with _gc_paused():
            return _read_stream(path, codec, delimiter, mapping, required, stage)
    except UnicodeDecodeError:
        pass
    # Not decodable as assumed: sniff reads the file whole, as read_table does, and either finds
    # the encoding (cp1252 for "auto") or raises at the line and column of the first bad byte.
    fmt = sniff(path, src.encoding, src.delimiter, stage=stage)
    if codecs.lookup(fmt.encoding).name == codecs.lookup(codec).name:
        raise _error(f"bytes not valid {codec}", path, stage)
    with _gc_paused():
        return _read_stream(path, fmt.encoding, fmt.delimiter, mapping, required, stage)


def read_ledger_blocks(src: LedgerSource, *, stage: str = STAGE, fields: Collection[str] | None = None,
                       block_bytes: int = 1 << 26, whole_below: int | None = None) -> Iterator[pd.DataFrame] | None:
    """:func:`read_ledger`'s frame in consecutive blocks of rows (each with its own categories), or None.

    Only a file that ``arrow_csv.qualifies`` and has at least ``whole_below`` bytes (default: as
    read_ledger's fast path) is read this way, about ``block_bytes`` of it at a time, so the whole file's text is never in memory; None
    means "use read_ledger". Header problems raise InputError at once; a record pyarrow refuses
    part-way raises ``arrow_csv.Refused`` from the iterator, and read_ledger then reports it.
    """
    path = Path(src.path)
    required = required_headers(src)
    mapping = {f: h for f, h in src.column_map().items() if fields is None or f in fields or f in LEDGER_REQUIRED}
    codec, delimiter = _stream_format(path, src.encoding, src.delimiter, stage)
    layout = _fast_layout(path, codec, delimiter, mapping, required, stage,
                          _FAST_BYTES if whole_below is None else whole_below)
    if layout is None:
        return None
    width, positions = layout
    return arrow_csv.read_blocks(path, delimiter, width, list(mapping), positions, shared=DATE_FIELDS,
                                 block_bytes=block_bytes)


def _read_fast(path: Path, codec: str, delimiter: str, mapping: Mapping[str, str], required: list[str],
               stage: str | None) -> pd.DataFrame | None:
    """The frame through ``arrow_csv`` when the file qualifies and is big enough to be worth it."""
    layout = _fast_layout(path, codec, delimiter, mapping, required, stage, _FAST_BYTES)
    if layout is None:
        return None
    width, positions = layout
    return arrow_csv.read_columns(path, delimiter, width, list(mapping), positions, shared=DATE_FIELDS)


def _fast_layout(path: Path, codec: str, delimiter: str, mapping: Mapping[str, str], required: list[str],
                 stage: str | None, min_bytes: int) -> tuple[int, dict[str, int]] | None:
    """Header width and each mapped field's column when ``arrow_csv`` may read the file, else None."""
    try:
        if path.stat().st_size < min_bytes or not arrow_csv.qualifies(path, codec):
            return None
        with open(path, encoding=codec, newline="") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    header = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter), [])
    if _blank(header):
        return None  # leading blank lines: the strict reader skips them and counts lines
    names = _check_header(header, 1, required, path, stage)
    index = {name: i for i, name in enumerate(names) if name}
    return len(names), {f: index[h.strip()] for f, h in mapping.items() if h.strip() in index}


def _stream_format(path: Path, encoding: str, delimiter: str, stage: str | None) -> tuple[str, str]:
    """The codec and delimiter to stream ``path`` with, from its first MiB only."""
    if delimiter != "auto" and delimiter not in DELIMITERS:
        raise _error(f"unsupported delimiter {delimiter!r} (use , ; | or a tab)", path, stage)
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
            more = bool(handle.read(1))
    except OSError as exc:
        raise _error(f"cannot read file: {exc.strerror or exc}", path, stage) from None
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise _error(f"unknown encoding {encoding!r}", path, stage) from None
        codec = encoding
    elif head.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    elif head.startswith(codecs.BOM_UTF16_LE):
        codec = "utf-16"
    elif head.startswith(codecs.BOM_UTF16_BE):
        codec = "utf-16-be"  # as csvfile: the BOM stays in the first header name, which is trimmed
    else:
        codec = "utf-8"  # cp1252 only when this fails: see read_ledger
    text = head.decode(codec, errors="ignore")
    if not text.strip("\ufeff \t\r\n") and not more:
        raise _error("file is empty (no header row)", path, stage, line=1)
    return codec, delimiter if delimiter != "auto" else _sniff_delimiter(text)


class _Coder:
    """Codes the values of one or more columns into one set of distinct values, batch by batch.

    Each batch is factorized on its own (a small hash table, in C); the distinct values of all
    batches are merged once at the end, so a value costs one hash per batch it appears in.
    """

    def __init__(self) -> None:
        self.codes: list[np.ndarray] = []
        self.uniques: list[np.ndarray] = []

    def add(self, *columns: tuple[str, ...]) -> None:
        n = len(columns[0])
        values = np.empty(n * len(columns), dtype=object)
        for i, col in enumerate(columns):
            values[i * n:(i + 1) * n] = col
        codes, uniques = pd.factorize(values)
        self.codes.append(codes.astype(np.int32))
        self.uniques.append(uniques)

    def finish(self, count: int) -> list[pd.Categorical]:
        """One Categorical per column given to :meth:`add`, all with the same categories."""
        if not self.codes:
            return [_constant("", 0) for _ in range(count)]
        merged, categories = pd.factorize(np.concatenate(self.uniques))
        dtype = categories_dtype(categories)
        width = sum(len(c) for c in self.codes) // count
        out = [np.empty(width, dtype=np.int32) for _ in range(count)]
        offset = pos = 0
        for codes, uniques in zip(self.codes, self.uniques):
            global_codes = merged[offset:offset + len(uniques)].astype(np.int32)[codes]
            n = len(codes) // count
            for i in range(count):
                out[i][pos:pos + n] = global_codes[i * n:(i + 1) * n]
            offset += len(uniques)
            pos += n
        self.codes.clear()
        self.uniques.clear()
        return [pd.Categorical.from_codes(c, dtype=dtype, validate=False) for c in out]


def _read_stream(path: Path, codec: str, delimiter: str, mapping: Mapping[str, str], required: list[str],
                 stage: str | None) -> pd.DataFrame:
    prev = 0  # physical line where the previous record ended
    try:
        with open(path, encoding=codec, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            header: list[str] | None = None
            header_line = 1
            for row in reader:
                header_line, prev = prev + 1, reader.line_num
                if not _blank(row):
                    header = row
                    break
            if header is None:
                raise _error("file is empty (no header row)", path, stage, line=1)
            names = _check_header(header, header_line, required, path, stage)
            index = {name: i for i, name in enumerate(names) if name}
            position = {field: index.get(h.strip()) for field, h in mapping.items()}
            present = [f for f in mapping if position[f] is not None]
            dates = [f for f in present if f in DATE_FIELDS]
            others = [f for f in present if f not in DATE_FIELDS]
            slot = {f: i for i, f in enumerate(present)}
            coders = {f: _Coder() for f in others}
            date_coder = _Coder()
            pick = itemgetter(*[position[f] for f in present]) if present else (lambda row: ())
            if len(present) == 1:
                one = pick
                pick = lambda row: (one(row),)  # noqa: E731

            width = len(names)
            single = width == 1
            batch: list[tuple[str, ...]] = []
            starts = array("q")
            keep, start_at = batch.append, starts.append

            def flush() -> None:
                columns = list(zip(*batch)) if present else []
                batch.clear()
                for f in others:
                    coders[f].add(columns[slot[f]])
                if dates:
                    date_coder.add(*[columns[slot[f]] for f in dates])

            for row in reader:
                if len(row) != width or (single and not row[0].strip()):
                    if _blank(row):
                        prev = reader.line_num
                        continue
                    raise _error(f"expected {width} fields, found {len(row)}", path, stage, line=prev + 1)
                keep(pick(row))
                start_at(prev + 1)
                prev = reader.line_num
                if len(batch) == _BATCH:
                    flush()
            if batch:
                flush()
    except csv.Error as exc:
        raise _error(_csv_problem(exc), path, stage, line=prev + 1) from None
    except OSError as exc:
        raise _error(f"cannot read file: {exc.strerror or exc}", path, stage) from None
    n = len(starts)  # a header-only ledger is zero entries, accounted for like any file
    data: dict[str, pd.Categorical] = {}
    for f in others:
        data[f] = coders.pop(f).finish(1)[0]
    data.update(zip(dates, date_coder.finish(len(dates))))
    frame = pd.DataFrame({f: data[f] if f in data else _constant("", n) for f in mapping},
                         columns=list(mapping), copy=False)
    frame["_line"] = np.frombuffer(starts, dtype=np.int64).copy()
    return frame


def _constant(value: str, n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])
