"""A fast path for large, simple delimited files: chosen columns as Categoricals, read by pyarrow.

A points ledger runs to tens of millions of rows; Python's ``csv`` module costs over a minute
there, and pyarrow's multi-threaded reader a few seconds. The strict reader (``csv`` with
``strict=True``) stays the authority: this path is taken only for a file whose layout leaves no
room for the two readers to disagree, and says ``None`` otherwise, so the caller reads the file the
strict way and reports any problem with its line and column. A file qualifies when it is UTF-8
(BOM allowed), holds no double quote at all (so no quoted field, no delimiter or line break inside
a value), no carriage return other than in ``\\r\\n``, and no empty line: then every record is one
physical line and ``_line`` is simply the record's position + 2. Every record must be as wide as
the header; any record that is not makes pyarrow fail and the strict reader take over.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loyalty_toolkit.sources import csv_scan
from loyalty_toolkit.sources.csvfile import categories_dtype

def qualifies(path: Path, codec: str) -> bool:
    """True when ``path`` is UTF-8 without quotes, lone carriage returns, empty lines or invalid bytes.

    Scanned in blocks that end at a line feed (so no line, CRLF or character straddles two), with
    memchr-fast searches and Arrow's UTF-8 validation: about a second per GB, where decoding the
    text took five."""
    if codecs.lookup(codec).name not in ("utf-8", "utf-8-sig"):
        return False
    last = b""
    try:
        for view in csv_scan.line_blocks(path):
            buf, end = view.obj, len(view)
            if buf.find(b'"', 0, end) >= 0:
                return False
            # an empty line: pyarrow would make it a record, the strict reader skips it (numpy over
            # the line feeds' positions: bytes.find of a two-byte pattern is ten times slower)
            joint = last + bytes(view[:2])
            if b"\n\n" in joint or b"\n\r\n" in joint or _empty_line(np.frombuffer(view, dtype=np.uint8)):
                return False
            if buf.find(b"\r", 0, end) >= 0 and buf.count(b"\r", 0, end) != buf.count(b"\r\n", 0, end):
                return False
            if not csv_scan.valid_utf8(view):
                return False
            last = bytes(view[-2:])
    except OSError:
        return False
    return True


def _empty_line(arr: np.ndarray) -> bool:
    """Whether the bytes hold "\\n\\n" or "\\n\\r\\n"."""
    feeds = np.flatnonzero(arr == 10)
    gaps = np.diff(feeds)
    return bool((gaps == 1).any() or (arr[feeds[:-1][gaps == 2] + 1] == 13).any())


class Refused(Exception):
    """pyarrow refused the file part-way through a block read: the caller reads it the strict way."""


def _options(delimiter: str, width: int, positions: Mapping[str, int], block_bytes: int) -> tuple[list[str], dict]:
    """Column names and pyarrow's read/parse/convert options: only the wanted columns, as text."""
    names = [f"c{i}" for i in range(width)]
    wanted = sorted(set(positions.values()))
    return names, {
        "read_options": pacsv.ReadOptions(skip_rows=1, column_names=names, block_size=block_bytes),
        "parse_options": pacsv.ParseOptions(delimiter=delimiter, quote_char=False, newlines_in_values=False,
                                            ignore_empty_lines=False),
        "convert_options": pacsv.ConvertOptions(include_columns=[names[i] for i in wanted],
                                                column_types={names[i]: pa.string() for i in wanted},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False),
    }


def read_columns(path: Path, delimiter: str, width: int, fields: Sequence[str], positions: Mapping[str, int],
                 shared: Sequence[str] = ()) -> pd.DataFrame | None:
    """The ``fields`` (in that order) as Categoricals of the text as read, plus ``_line``.

    ``positions`` gives each field's 0-based column (header on line 1, ``width`` fields); a field
    without one is all ``""``. ``shared`` fields get one set of categories, so a text they share
    is stored once. Returns None when pyarrow refuses the file (a record of another width, a blank
    line): the caller's strict reader then finds and reports the problem. Call only when
    :func:`qualifies`.
    """
    pool = pa.default_memory_pool()
    names, options = _options(delimiter, width, positions, 1 << 24)
    try:
        table = pacsv.read_csv(path, **options, memory_pool=pool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    n = table.num_rows
    columns = {i: table.column(names[i]).chunks for i in set(positions.values())}
    del table  # each column's buffers go as soon as it is coded
    if n == 0:
        return None
    frame = _frame(columns, n, 2, fields, positions, shared, pool)
    pool.release_unused()  # the pool keeps freed blocks for reuse; the stage needs them more
    return frame


def read_blocks(path: Path, delimiter: str, width: int, fields: Sequence[str], positions: Mapping[str, int],
                shared: Sequence[str] = (), block_bytes: int = 1 << 26) -> Iterator[pd.DataFrame]:
    """:func:`read_columns`, one frame per block of about ``block_bytes`` of the file (whole records).

    Each frame has its own categories; ``_line`` runs on across blocks. The file is cut at the
    last line end of each block read here (pyarrow's own streaming reader reads far ahead of its
    consumer: hundreds of MB). Raises :class:`Refused` when pyarrow refuses a block (then
    possibly after earlier blocks were yielded). Call only when :func:`qualifies`.
    """
    pool = pa.default_memory_pool()
    names, options = _options(delimiter, width, positions, 1 << 24)
    options["read_options"].skip_rows = 0
    line = 2
    try:
        with open(path, "rb") as handle:
            handle.readline()  # the header (and a BOM), read by the caller
            carry = b""
            while True:
                chunk = handle.read(block_bytes)
                if not chunk and not carry:
                    break
                data = carry + chunk
                cut = data.rfind(b"\n") + 1 if chunk else len(data)  # at the end: all that is left
                if cut == 0:
                    carry = data  # a record longer than a block: read on
                    continue
                data, carry = data[:cut], data[cut:]
                table = pacsv.read_csv(pa.py_buffer(data), **options, memory_pool=pool)
                del data
                n = table.num_rows
                columns = {i: table.column(names[i]).chunks for i in set(positions.values())}
                del table
                if n:
                    yield _frame(columns, n, line, fields, positions, shared, pool)
                    line += n
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise Refused(str(exc)) from None
    finally:
        pool.release_unused()
    if line == 2:
        raise Refused("no records")


def _frame(columns: dict[int, list], n: int, first_line: int, fields: Sequence[str], positions: Mapping[str, int],
           shared: Sequence[str], pool) -> pd.DataFrame:
    """The frame of :func:`read_columns` from each wanted column's arrow chunks (emptied as coded)."""

    def encode(chunks: list) -> pd.Categorical:
        # one contiguous array gives one dictionary, where encoding the chunks would leave pyarrow
        # to unify a dictionary per chunk (seconds per column)
        joined = pa.concat_arrays([c.cast(pa.large_string(), memory_pool=pool) for c in chunks], memory_pool=pool)
        chunks.clear()
        return _categorical(pc.dictionary_encode(joined, memory_pool=pool))

    out: dict[str, pd.Categorical] = {}
    together = [f for f in shared if f in positions]
    if together:
        chunks = [c for f in together for c in columns[positions[f]]]
        for f in together:
            columns[positions[f]] = []
        joined = encode(chunks)
        for k, f in enumerate(together):
            out[f] = pd.Categorical.from_codes(joined.codes[k * n:(k + 1) * n], dtype=joined.dtype, validate=False)
        del joined
    coded: dict[int, pd.Categorical] = {}
    for f, i in positions.items():
        if f not in out:
            if i not in coded:
                coded[i] = encode(columns.pop(i))
            out[f] = coded[i]
    empty = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""])
    frame = pd.DataFrame({f: out.get(f, empty) for f in fields}, columns=list(fields), copy=False)
    frame["_line"] = np.arange(first_line, first_line + n, dtype=np.int64)
    return frame


def _categorical(encoded) -> pd.Categorical:
    """A dictionary-encoded arrow array as a Categorical whose categories are Python str."""
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    values = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object, copy=False)
    return pd.Categorical.from_codes(codes, dtype=categories_dtype(values), validate=False)
