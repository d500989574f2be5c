"""Whole-file checks of a delimited file in bounded memory: does it decode, how many records.

The exact readers in ``csvfile`` hold the whole file's bytes and its decoded text, and parse every
record with the csv module: on a ledger of ten million rows, a 5 GB, half-minute preflight. These
scan fixed-size blocks of bytes instead and answer only when the answer is certain; anything out of
the ordinary (a quote, a lone carriage return, a NUL, a ragged or over-long line, a one-column file)
gives None, and the caller falls back to the exact reader, which also words any error exactly.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

BLOCK_BYTES = 1 << 24
# Codecs in which the delimiter, the quote and the line feed are single bytes that never occur
# inside another character's encoding, so they can be found in the raw bytes.
BYTE_SAFE_CODECS = ("utf-8", "utf-8-sig", "cp1252")


def decodes(path: Path, codec: str) -> bool:
    """Whether the whole file decodes with ``codec`` (a block at a time; False also when unreadable)."""
    try:
        if codec in ("utf-8", "utf-8-sig"):
            return all(valid_utf8(block) for block in line_blocks(path))
        decoder = codecs.getincrementaldecoder(codec)()
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK_BYTES):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except (UnicodeDecodeError, OSError):
        return False
    return True


def line_blocks(path: Path) -> Iterator[memoryview]:
    """The file's bytes in blocks of about BLOCK_BYTES, each ending after a line feed (but the last).

    One buffer, filled in place: fresh 16 MB bytes objects per block would cost as much as the scan.
    A block is valid until the next one is asked for."""
    buf = bytearray(2 * BLOCK_BYTES)
    view = memoryview(buf)
    held = 0
    with open(path, "rb") as handle:
        while True:
            if len(buf) - held < BLOCK_BYTES:  # a line longer than the buffer: a larger one
                bigger = bytearray(2 * len(buf))
                bigger[:held] = view[:held]
                buf, view = bigger, memoryview(bigger)
            got = handle.readinto(view[held:held + BLOCK_BYTES])
            end = held + got
            if not got:
                if held:
                    yield view[:held]
                return
            cut = buf.rfind(b"\n", 0, end) + 1
            if cut:
                yield view[:cut]
                buf[:end - cut] = view[cut:end]
                held = end - cut
            else:
                held = end


def valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, as strict as Python's codec (Arrow's validation, in C and
    thirty times faster than decoding); blocks end at a line feed, so no character is cut."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32))
    try:
        pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _blank(line: memoryview, codec: str) -> bool:
    """A line the csv module reads as no record: empty or a single whitespace-only field."""
    return not bytes(line).decode("utf-8" if codec == "utf-8-sig" else codec).strip()


class _Counter:
    """Counts records line by line as ``csvfile.count_records`` would, or gives up (``failed``)."""

    def __init__(self, codec: str, delimiter: int) -> None:
        self.codec, self.delimiter = codec, delimiter
        self.width: int | None = None
        self.count = 0
        self.failed = False

    def lines(self, data: memoryview, arr: np.ndarray) -> None:
        """Whole lines (``arr``: the same bytes), each ending in a line feed (the last may lack it
        at the end of the file)."""
        ends = np.flatnonzero(arr == 10)
        if not len(ends) or ends[-1] != len(arr) - 1:
            ends = np.append(ends, len(arr) - 1)
        starts = np.concatenate(([0], ends[:-1] + 1))
        if int((ends - starts).max()) >= csv.field_size_limit():  # the csv module would refuse it
            self.failed = True
            return
        delims = np.flatnonzero(arr == self.delimiter)
        per_line = np.diff(np.searchsorted(delims, np.concatenate(([0], ends + 1))))
        first = 0
        while self.width is None and first < len(ends):  # the header: the first line that is not blank
            line = data[starts[first]:ends[first] + 1]
            if per_line[first] or not _blank(line, self.codec):
                self.width = int(per_line[first]) + 1
                if self.width == 1:
                    self.failed = True
                    return
            first += 1
        if self.width is None:  # only blank lines so far
            return
        per_line = per_line[first:]
        ok = per_line == self.width - 1
        self.count += int(ok.sum())
        for i in np.flatnonzero(~ok) + first:  # rare: blank lines are skipped, anything else is an error
            if per_line[i - first] or not _blank(data[starts[i]:ends[i] + 1], self.codec):
                self.failed = True
                return


def count_plain_records(path: Path, codec: str, delimiter: str) -> int | None:
    """The number of data records, when the file has no quotes, no lone carriage returns and every
    line is blank or as wide as the header; None otherwise (or when the file does not decode)."""
    if codec not in BYTE_SAFE_CODECS or len(delimiter) != 1 or ord(delimiter) > 127:
        return None
    counter = _Counter(codec, ord(delimiter))
    decoder = None if codec != "cp1252" else codecs.getincrementaldecoder(codec)()
    try:
        for data in line_blocks(path):
            arr = np.frombuffer(data, dtype=np.uint8)
            if not _plain(data) or not (valid_utf8(data) if decoder is None else decoder.decode(data) is not None):
                return None
            counter.lines(data, arr)
            if counter.failed:
                return None
    except (UnicodeDecodeError, OSError):
        return None
    return None if counter.width is None else counter.count


def _plain(data: memoryview) -> bool:
    """No quote, no NUL, and every carriage return followed by a line feed (memchr-fast searches
    on the block's buffer)."""
    buf, end = data.obj, len(data)
    if buf.find(b'"', 0, end) >= 0 or buf.find(b"\0", 0, end) >= 0:
        return False
    return buf.find(b"\r", 0, end) < 0 or buf.count(b"\r", 0, end) == buf.count(b"\r\n", 0, end)
