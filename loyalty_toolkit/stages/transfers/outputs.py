"""Stage 03's output files: written pending the gate, then read back from disk and recounted.

The gate must see what the files hold, not what the writer meant to write: each file is streamed
back (a file of millions of transfers is never held whole), and its rows, signed total, bad
amounts and duplicate ids become one row of the ``outputs`` table (``OUTPUT_COLUMNS``) that the
gate compares with the transfers the engine produced. A file that cannot be read back fails the
gate rather than crashing the stage. Writers: ``targets/ol_transfers.py``, ``targets/haravan.py``.
``TransferFiles`` takes the transfers a member slice at a time and keeps only their expected counts.

Unit-transfer files are read back in one of two ways that give the same counts. A strict reader
of the exact layout ``ol_transfers`` writes (JSON: ``[``, one object a line with its keys in our
order, ``]``; XML: our header, the seven lines of each element, our footer) splits 16 MB blocks
with one regular expression (``re.split``: no Python object per transfer but its three fields)
and sums them with numpy. It accepts a file only when its items cover it byte for byte and hold
only text the full parsers read the same way (valid UTF-8, no control character but the line
feeds, no escape in a transfer id, no "&" but the predefined entities, nothing that would not be
well-formed XML). Any other file, a hand-edited one say, is read by the full parser (``json`` line
by line, ``ElementTree``); the tests compare the two on generated and mutated files.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.model import SPENDING
from loyalty_toolkit.targets.haravan import HEADER as HARAVAN_HEADER
from loyalty_toolkit.targets.haravan import write_opening_balances
from loyalty_toolkit.targets.ol_transfers import (
    JSON_FOOTER,
    JSON_HEADER,
    XML_FOOTER,
    XML_HEADER,
    TransferFileWriter,
)

JSON_NAME, XML_NAME, HARAVAN_NAME = "unit_transfers.json", "unit_transfers.xml", "opening_balances.csv"
OUTPUT_COLUMNS = ("output", "unit", "files", "rows_expected", "rows_written", "total_expected", "total_written",
                  "bad_values", "duplicate_ids", "problem")
_STALE = re.compile(r"unit_transfers(_[0-9]{4})?\.(json|xml)")
_TRANSFER_ID = re.compile(r"^transfer ([^;]+);")
_WHOLE = re.compile(r"[1-9][0-9]*")
_BLOCK = 1 << 24  # bytes a strict reader matches at once

# The strict readers' layouts, one item each (a JSON line, an XML element's seven lines), capturing
# the amount, the type's first letter and the transfer id (the comment's text up to its first ";").
# A JSON string is [^"]* when its block holds no backslash, else it must be a valid JSON string.
# Amounts have at most 12 digits, so a block's sum stays within int64.
_JSON_ANY = r'[^"]*'
_JSON_STRICT = r'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*'


def _json_line(text: str, tid: str) -> re.Pattern:
    return re.compile((
        r'  \{"customerId": "<s>", "units": ([1-9][0-9]{0,11}), "walletTypeCode": "<s>"(?:, "registeredOn": "<s>")?, '
        r'"type": "(?=(a|s))(?:adding|spending)"(?:, "expiresAt": "<s>")?(?:, "lockedUntil": "<s>")?, '
        r'"comment": "transfer (<id>);<s>"\},\n').replace("<s>", text).replace("<id>", tid).encode("ascii"))


_JSON_FAST = _json_line(_JSON_ANY, r'[^;"]+')
_JSON_FULL = _json_line(_JSON_STRICT, r'[^;"\\\x00-\x1f]+')
# XML element text: no "<", and "&" only in the five predefined entities (checked per block first);
# the transfer id holds neither "&" nor ";" (so it reads the same with entities decoded).
_XML_ITEM = re.compile(
    rb"  <pointsTransfer>\n    <customerId>[^<]*</customerId>\n    <points>([1-9][0-9]{0,11})</points>\n"
    rb"    <type>(?=(a|s))(?:adding|spending)</type>\n    <validityDuration>[^<]*</validityDuration>\n"
    rb"    <comment>transfer ([^;<&]+);[^<]*</comment>\n  </pointsTransfer>\n")
_XML_ITEM_END = b"  </pointsTransfer>\n"
_XML_LINES = 7
_BAD_AMP = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);)")


# -- writing -----------------------------------------------------------------------------------

class TransferFiles:
    """The unit-transfer files in each configured format (JSON, then XML) in ``directory``, written a
    frame at a time: ``write`` each member slice's transfers in order, then ``close`` reads the files
    back. The rows and signed points the files must hold are summed as frames come, so the caller
    keeps no frame. A failed write removes every part written (``abort`` does the same, and so does
    an exception inside a ``with`` block)."""

    def __init__(self, directory: Path, formats: Collection[str], *, max_file_bytes: int | None = None):
        self._writers: list[tuple[str, TransferFileWriter, Callable]] = []
        self._rows, self._points = 0, 0
        limit = {"max_file_bytes": max_file_bytes}  # the target profile's upload limit: parts below it
        try:
            if "json" in formats:
                self._writers.append((JSON_NAME, TransferFileWriter(directory / JSON_NAME, "json", **limit),
                                      json_items))
            if "xml" in formats:
                self._writers.append((XML_NAME, TransferFileWriter(directory / XML_NAME, "xml", **limit), xml_items))
        except BaseException:
            self.abort()
            raise

    def write(self, transfers: pd.DataFrame) -> None:
        """Append ``transfers`` to every file (after the frames written before)."""
        try:
            for _, writer, _ in self._writers:
                writer.write(transfers)
        except BaseException:
            self.abort()
            raise
        if self._writers:  # the writers accepted every row: points are whole numbers above 0
            rows, points = _expected(transfers)
            self._rows += rows
            self._points += points

    def close(self) -> tuple[list[Path], list[dict]]:
        """Finish the files; returns them and, per format, its ``output_row`` read back from them."""
        files: list[Path] = []
        rows = []
        try:
            for name, writer, items in self._writers:
                written = writer.close()
                files += written
                rows.append(output_row(f"openloyalty/{name}", "points", written, (self._rows, self._points),
                                       items(written)))
        except BaseException:
            self.abort()
            raise
        return files, rows

    def abort(self) -> None:
        """Remove the parts of every file not yet closed."""
        for _, writer, _ in self._writers:
            writer.abort()

    def __enter__(self) -> TransferFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def write_transfer_files(transfers: pd.DataFrame, directory: Path, formats: Collection[str], *,
                         max_file_bytes: int | None = None) -> tuple[list[Path], list[dict]]:
    """Write the unit transfers in each configured format (JSON, then XML) into ``directory``, each
    split below ``max_file_bytes``; returns the files written and, per format, its ``output_row``
    read back from those files."""
    files = TransferFiles(directory, formats, max_file_bytes=max_file_bytes)
    files.write(transfers)
    return files.close()


def write_haravan_file(balances: pd.DataFrame, directory: Path) -> tuple[Path, dict]:
    """Write Haravan's opening-balance template (every accepted opening row) into ``directory``;
    returns the file and its ``output_row`` (rows and VND of opening revenue) read back from it."""
    path = write_opening_balances(balances, directory / HARAVAN_NAME, phone_column="phone_raw", email_column="email")
    revenue = int(sum(balances["opening_revenue"].tolist(), Decimal(0)))
    return path, output_row(f"haravan/{HARAVAN_NAME}", "VND", [path], (len(balances), revenue),
                            haravan_items(path))


def stale_files(output_dir: Path, keep: set[str]) -> list[Path]:
    """Transfer and Haravan files in ``output_dir`` (``RUN_DIR/output``) that an earlier run left
    (another format, more parts) and whose names are not in ``keep``."""
    stale = [p for p in (output_dir / "openloyalty").glob("unit_transfers*") if _STALE.fullmatch(p.name)]
    stale += list((output_dir / "haravan").glob(HARAVAN_NAME))
    return [p for p in stale if p.name not in keep]


# -- reading back ------------------------------------------------------------------------------

def _expected(transfers: pd.DataFrame) -> tuple[int, int]:
    """Transfers the files must hold and their signed points (spending negative)."""
    sign = np.where(transfers["type"].to_numpy(dtype=object) == SPENDING, -1, 1)
    return len(transfers), int(sign @ transfers["points"].to_numpy(np.int64)) if len(transfers) else 0


@dataclass
class Counted:
    """A run of items read back at once: their keys in order (UTF-8 bytes, which compare as their
    text would), their signed total and how many were bad."""

    keys: list[bytes] = field(default_factory=list)
    total: int = 0
    bad: int = 0


def output_row(name: str, unit: str, files: list[Path], expected: tuple[int, int],
               items: Iterator[tuple[str, int | None] | Counted]) -> dict:
    """Recount a written file: ``items`` (a generator reading it back) yields (transfer id or key,
    signed amount, or None when the amount is not a whole number > 0), or ``Counted`` runs of them.
    A file that cannot be read back counts as one bad value and names the cause in ``problem``: the
    gate fails, the stage does not crash."""
    ids: list[str] = []
    raw: list[bytes] = []  # keys of Counted runs, decoded only if both kinds come
    total, bad, problem = 0, 0, ""
    try:
        for item in items:
            if type(item) is Counted:
                raw += item.keys
                total += item.total
                bad += item.bad
                continue
            key, value = item
            ids.append(key)
            if value is None:
                bad += 1
            else:
                total += value
    # LookupError: an XML declaration naming an encoding Python does not know
    except (ValueError, ET.ParseError, csv.Error, UnicodeDecodeError, OSError, LookupError) as exc:
        bad, problem = bad + 1, f"{type(exc).__name__}: {exc}"[:300]
    if ids and raw:
        ids += [k.decode("utf-8") for k in raw]
        raw = []
    keys = ids or raw
    return {"output": name, "unit": unit, "files": len(files), "rows_expected": expected[0],
            "rows_written": len(keys), "total_expected": expected[1], "total_written": total, "bad_values": bad,
            "duplicate_ids": len(keys) - len(set(keys)), "problem": problem}


def json_list(path: Path) -> Iterator[dict]:
    """The objects of a JSON array written one object a line, as ``ol_transfers`` writes it, streamed
    (a file of millions of transfers is never held as one Python list). Raises ValueError when the
    file is not such an array: each line must parse, commas must separate the items, ``]`` close it."""
    with open(path, encoding="utf-8") as fh:
        if fh.readline().strip() != "[":
            raise ValueError(f"{path.name} is not a JSON list")
        closed, comma, last = False, False, None
        for line in fh:
            text = line.strip()
            if text == "]":
                closed = True
                break
            if last is not None:
                raise ValueError(f"{path.name}: a comma is missing after {last[:60]!r}")
            comma = text.endswith(",")
            item = json.loads(text[:-1] if comma else text)
            if not isinstance(item, dict):
                raise ValueError(f"{path.name}: an item is not an object")
            if not comma:
                last = text
            yield item
        if comma:
            raise ValueError(f"{path.name}: a comma before the closing ]")
        if not closed or fh.read().strip():
            raise ValueError(f"{path.name} is not a closed JSON list")


def json_items(paths: list[Path]) -> Iterator[tuple[str, int | None] | Counted]:
    """(transfer id, signed units) of each transfer in the JSON parts, for ``output_row``: a part in
    our exact layout as one ``Counted`` run, any other part item by item from the full parser."""
    for p in paths:
        counted = _json_strict(p)
        if counted is None:
            yield from json_full_items(p)
        else:
            yield counted


def json_full_items(path: Path) -> Iterator[tuple[str, int | None]]:
    """(transfer id, signed units) of each object of one JSON part, parsed by ``json``."""
    for it in json_list(path):
        units = it.get("units")
        ok = isinstance(units, int) and not isinstance(units, bool) and units > 0
        m = _TRANSFER_ID.match(str(it.get("comment", "")))
        yield (m.group(1) if m else "", (-1 if it.get("type") == SPENDING else 1) * units if ok else None)


def xml_items(paths: list[Path]) -> Iterator[tuple[str, int | None] | Counted]:
    """(transfer id, signed points) of each ``pointsTransfer`` in the XML parts, for ``output_row``: a
    part in our exact layout as one ``Counted`` run, any other part item by item from ElementTree."""
    for p in paths:
        counted = _xml_strict(p)
        if counted is None:
            yield from xml_full_items(p)
        else:
            yield counted


def xml_full_items(path: Path) -> Iterator[tuple[str, int | None]]:
    """(transfer id, signed points) of each ``pointsTransfer`` of one XML part, parsed by ElementTree."""
    # streamed, raising on a file that is not well-formed; read transfers are dropped from the root
    events = ET.iterparse(path, events=("start", "end"))
    _, root = next(events)
    for event, node in events:
        if event != "end" or node.tag != "pointsTransfer":
            continue
        fields = {child.tag: (child.text or "").strip() for child in node}
        root.clear()
        text = fields.get("points", "")
        m = _TRANSFER_ID.match(fields.get("comment", ""))
        sign = -1 if fields.get("type") == SPENDING else 1
        yield (m.group(1) if m else "", sign * int(text) if _WHOLE.fullmatch(text) else None)


# -- the strict readers of our own layout --------------------------------------------------------

def _json_strict(path: Path) -> Counted | None:
    """Recount a JSON part written in our exact layout; None when it is not (the full parser reads it)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        if size == len(b"[\n]\n"):
            return Counted() if fh.read() == b"[\n]\n" else None
        if size < len(JSON_HEADER) + len(JSON_FOOTER) or fh.read(len(JSON_HEADER)) != JSON_HEADER:
            return None
        fh.seek(size - len(JSON_FOOTER))
        if fh.read() != JSON_FOOTER:
            return None
        fh.seek(len(JSON_HEADER))
        # between header and footer: objects a line, each but the last followed by ",\n"
        return _strict_blocks(fh, size - len(JSON_HEADER) - len(JSON_FOOTER), b"\n", b",\n", _json_block)


def _json_block(block: bytes) -> Counted | None:
    # with no backslash, no string holds an escape: [^"]* is exact (control characters are counted)
    return _counted(block, _JSON_FULL if b"\\" in block else _JSON_FAST, 1)


def _xml_strict(path: Path) -> Counted | None:
    """Recount an XML part written in our exact layout; None when it is not (ElementTree reads it)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        if size < len(XML_HEADER) + len(XML_FOOTER) or fh.read(len(XML_HEADER)) != XML_HEADER:
            return None
        fh.seek(size - len(XML_FOOTER))
        if fh.read() != XML_FOOTER:
            return None
        fh.seek(len(XML_HEADER))
        return _strict_blocks(fh, size - len(XML_HEADER) - len(XML_FOOTER), _XML_ITEM_END, b"", _xml_block)


def _xml_block(block: bytes) -> Counted | None:
    # what would make the text not well-formed, or read differently once parsed (control characters
    # are counted in _counted): "]]>", the non-characters U+FFFE and U+FFFF, and an "&" that does not
    # start a predefined entity (one-byte searches first: memchr-fast, they usually find nothing)
    if ((b"]" in block and b"]]>" in block)
            or (b"\xef" in block and (b"\xef\xbf\xbe" in block or b"\xef\xbf\xbf" in block))
            or (b"&" in block and _BAD_AMP.search(block))):
        return None
    return _counted(block, _XML_ITEM, _XML_LINES)


def _strict_blocks(fh, length: int, item_end: bytes, last_end: bytes, count_block) -> Counted | None:
    """Feed ``length`` bytes of ``fh`` to ``count_block`` in blocks cut after an ``item_end``; the last
    item gets ``last_end`` appended (JSON's last object lacks the others' ",\n")."""
    out = Counted()
    carry = b""
    while True:
        data = fh.read(min(_BLOCK, length))
        length -= len(data)
        if length and not data:
            return None  # the file changed under us
        block = carry + data
        if length:
            cut = block.rfind(item_end) + len(item_end)
            if cut < len(item_end):  # an item longer than a block: read on
                carry = block
                continue
            block, carry = block[:cut], block[cut:]
        else:
            block += last_end
        counted = count_block(block)
        if counted is None:
            return None
        out.keys += counted.keys
        out.total += counted.total
        if not length:
            return out


def _counted(block: bytes, pattern: re.Pattern, lines: int) -> Counted | None:
    """Count ``block``, a run of items of ``lines`` lines each, with ``pattern``; None unless the
    block is valid UTF-8, the matches cover it whole and its only control characters are the items'
    line feeds (XML refuses most of them, JSON all raw ones; tab and CR would be read differently)."""
    if not _utf8(block):
        return None
    parts = pattern.split(block)  # text between matches, then each match's 3 groups: no tuple per item
    if any(parts[0::4]):
        return None
    n = len(parts) // 4
    if np.count_nonzero(np.frombuffer(block, dtype=np.uint8) < 0x20) != n * lines:
        return None
    if not n:
        return Counted()
    units = np.fromstring(b" ".join(parts[1::4]), dtype=np.int64, sep=" ")  # <= 12 digits: the sum fits
    spending = np.frombuffer(b"".join(parts[2::4]), dtype=np.uint8) == ord("s")
    return Counted(parts[3::4], int(units.sum()) - 2 * int(units[spending].sum()))


def _utf8(block: bytes) -> bool:
    """Whether ``block`` is valid UTF-8. A multi-byte character is all bytes >= 0x80, so the block is
    valid when each run of such bytes is: decoding a few short runs beats decoding a mostly-ASCII block."""
    if block.isascii():
        return True
    high = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) >= 0x80)
    breaks = np.flatnonzero(np.diff(high) != 1)
    try:
        if len(breaks) > 4096:
            block.decode("utf-8")
            return True
        starts = [int(high[0]), *(high[breaks + 1]).tolist()]
        ends = [*(high[breaks] + 1).tolist(), int(high[-1]) + 1]
        for lo, hi in zip(starts, ends):
            block[lo:hi].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def haravan_items(path: Path) -> Iterator[tuple[str, int | None]]:
    """(phone|email, opening revenue) of each row of Haravan's file, for ``output_row``; a row is
    bad unless the header is Haravan's, phone and email are given and both amounts are whole numbers."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        for r in reader:
            rec = dict(zip(header, r))
            amounts = (rec.get("DTDauKy", ""), rec.get("DTTichLuy", ""))
            ok = (header == HARAVAN_HEADER and rec.get("phone") and rec.get("email")
                  and all(a.isascii() and a.isdigit() for a in amounts))
            yield (f"{rec.get('phone')}|{rec.get('email')}", int(amounts[0]) if ok else None)

