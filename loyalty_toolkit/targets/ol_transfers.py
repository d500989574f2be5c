"""Open Loyalty unit-transfer import files: JSON (SaaS) and XML (``<pointsTransfers>``, OSS 3.x).

Input: ``TransferResult.transfers`` (``stages.transfers``): one row per transfer with
transfer_id, target_id, wallet_type_code, type, points (whole, > 0), registered_on, expires_at,
unlock_at (``YYYY-MM-DD HH:MM:SS`` UTC or ""), validity_days (<NA> = no expiry) and lot_ids.
Rows are written in the frame's order; the same frame gives the same bytes (UTF-8, ``\\n``).

JSON (SaaS "Importing unit transfers": JSON or XML). An array, one object per line::

    [
      {"customerId": "...", "units": 12, "walletTypeCode": "default", "registeredOn": "2025-01-01 10:00:00",
       "type": "adding", "expiresAt": "...", "lockedUntil": "...", "comment": "..."}
    ]

Documented by the platform: ``customerId`` (Customer ID, the OL member ID), ``units``,
``walletTypeCode`` (required) and ``registeredOn`` (optional, ``YYYY-MM-DD HH:mm:ss``; we write
the lot's accrual time in UTC). OURS, not in the public import page (check against the tenant's
sample file before the real import): ``type`` (the page says transfers are "adding or spending"
but does not name the field), ``expiresAt`` and ``lockedUntil`` (named after the transfer list's
"Expires at / Locked until"; written only when known, same format, UTC) and ``comment`` (a field
of exported transfers) carrying the transfer id and the legacy lot ids. Each object is what
``json.dumps(item, ensure_ascii=False, separators=(", ", ": "))`` gives: strings are escaped only
where they hold ``"``, ``\\`` or a control character, everything else stays UTF-8.

XML (OSS ``POST /api/points/transfer/import``, nodes ``pointsTransfer``): ``customerId``,
``points`` (an integer: OSS rejects ``12.5`` and ``100.0``), ``type`` (adding|spending),
``validityDuration`` and ``comment``. OSS requires ``validityDuration`` but ignores it (expiry
and lock come from the global pointsDaysActive / pointsDaysLocked settings); we write the whole
days from the cutover to the lot's expiry (rounded up, so points never expire earlier), or
``no_expiry`` (default ``0``, a documented sentinel) when the points never expire. OSS has no
registeredOn, expiry, lock or wallet fields (one points account per member), so the comment
carries the dates for the record. OSS has no dedupe key: importing a file twice adds it twice.
Text is escaped (``&``, ``<``, ``>``) the way ``xml.sax.saxutils.escape`` does.

A row is refused (ValueError naming its transfer id; the first refused row in file order wins)
when points is not a whole number above 0, type is not adding or spending, target_id is empty,
or target_id, wallet_type_code, lot_ids or transfer_id hold a character XML cannot carry.

Rows are checked and formatted column-wise in chunks of ``_CHUNK`` (every record's text is one
string concatenation of its pieces; only values that need escaping are escaped one by one), so
millions of transfers never become millions of Python dicts. ``max_file_bytes`` splits into
``<stem>_0001<suffix>``, ``_0002`` … each strictly smaller, between transfers
(``targets/parts.py``); without a limit, or when everything fits, one file at ``path``. Earlier
files at ``path`` and its numbered parts are removed first, so a smaller rerun leaves no stale part.
``TransferFileWriter`` takes the rows a frame at a time (stage 03 appends each member slice's
transfers) and writes the same bytes as the whole frame would; the two functions are one write of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_float_dtype, is_integer_dtype

from loyalty_toolkit.targets.parts import PartWriter, Run

JSON_DOCUMENTED = ("customerId", "units", "walletTypeCode", "registeredOn")
JSON_OURS = ("type", "expiresAt", "lockedUntil", "comment")
XML_HEADER = b'<?xml version="1.0" encoding="UTF-8"?>\n<pointsTransfers>\n'
XML_FOOTER = b"</pointsTransfers>\n"
JSON_HEADER, JSON_FOOTER = b"[\n", b"\n]\n"
TYPES = ("adding", "spending")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_JSON_ESCAPE = re.compile('["\\\\\x00-\x1f]')  # what json.dumps(ensure_ascii=False) escapes
_XML_ESCAPE = re.compile("[&<>]")  # what saxutils.escape escapes
_SPECIAL_BYTES = bytes(range(0x20)) + b'"\\&<>'  # ASCII characters any of the three patterns match
_CHUNK = 100_000  # rows formatted at once: column-wise speed, a few tens of MB of text at a time
_COLUMNS = ("transfer_id", "target_id", "wallet_type_code", "type", "points", "registered_on", "expires_at",
            "unlock_at", "validity_days", "lot_ids")
_OPTIONAL = ("unlock_at", "validity_days", "lot_ids")
_TEXT = ("transfer_id", "target_id", "wallet_type_code", "type", "registered_on", "expires_at", "unlock_at",
         "lot_ids")


def comment(row: dict) -> str:
    """``transfer <uuid>; lots a,b`` (``negative balance carried`` for a spending without lots)."""
    lots = row.get("lot_ids") or ""
    return f"transfer {row['transfer_id']}; " + (f"lots {lots}" if lots else "negative balance carried")


def _blank(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _check(row: dict) -> None:
    """The row rules, one row at a time: raises the refusal for a row the column-wise checks flagged."""
    pts = row["points"]
    if isinstance(pts, (bool, np.bool_)) or not isinstance(pts, (int, np.integer)) or pts <= 0:
        raise ValueError(f"transfer {row['transfer_id']}: points must be a whole number above 0, not {pts!r}")
    if row["type"] not in TYPES:
        raise ValueError(f"transfer {row['transfer_id']}: type must be adding or spending, not {row['type']!r}")
    if not row["target_id"]:
        raise ValueError(f"transfer {row['transfer_id']}: no customerId (target_id)")
    for key in ("target_id", "wallet_type_code", "lot_ids", "transfer_id"):
        bad = _NOT_XML.search(row[key])
        if bad:
            raise ValueError(f"transfer {row['transfer_id']}: {key} holds U+{ord(bad.group()):04X}")
    days = row["validity_days"]
    if not _blank(days):
        int(days)  # raises for a value that is not a number of days


# -- column-wise preparation -------------------------------------------------------------------

def _text(column: pd.Series | None, n: int) -> np.ndarray:
    """A column as an object array of str: None, NA and NaN become "", any other value ``str(value)``;
    a column the frame lacks is all ""."""
    if column is None:
        return np.full(n, "", dtype=object)
    values = column.to_numpy(dtype=object)
    if infer_dtype(values, skipna=False) == "string":
        return values
    if isinstance(column.dtype, pd.StringDtype) or (
            isinstance(column.dtype, pd.CategoricalDtype) and infer_dtype(column.cat.categories) == "string"):
        return column.to_numpy(dtype=object, na_value="")  # their only missing values are NA / NaN
    return np.array(["" if _blank(v) else str(v) for v in values.tolist()], dtype=object)  # mixed: value by value


def _points(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(each row's points as text, whether it is a whole number above 0); text is "" where not."""
    if is_integer_dtype(column.dtype):
        ok = (~column.isna() & (column > 0)).to_numpy(dtype=bool)
        valid = column[ok]
    else:
        values = column.to_numpy(dtype=object)
        if infer_dtype(values, skipna=False) == "integer":  # ints, numpy ints: no bool, no NA
            ok = np.asarray(values > 0, dtype=bool)
        else:
            ok = np.fromiter((isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v > 0
                              for v in values.tolist()), dtype=bool, count=len(values))
        valid = pd.Series(values[ok], dtype=object)
    text = np.full(len(column), "", dtype=object)
    codes, uniques = pd.factorize(valid)  # few distinct amounts: one str() each
    text[ok] = np.array([str(int(u)) for u in uniques.tolist()] + [""], dtype=object)[codes]
    return text, ok


def _days(column: pd.Series | None, n: int, no_expiry: str) -> tuple[np.ndarray, np.ndarray]:
    """(validityDuration text: ``max(days, 1)`` or ``no_expiry`` when blank, whether ``int(days)`` fails)."""
    text = np.full(n, no_expiry, dtype=object)
    bad = np.zeros(n, dtype=bool)
    if column is None:
        return text, bad
    numeric = is_integer_dtype(column.dtype) or is_float_dtype(column.dtype)
    try:
        codes, uniques = pd.factorize(column)
    except TypeError:  # unhashable values: the rule value by value
        codes, uniques = np.arange(n), column.to_numpy(dtype=object)
    mapped, failed = [], []
    for u in list(uniques):  # distinct values: a handful of day counts
        text_u, failed_u = _day_text(u, no_expiry)
        mapped.append(text_u)
        failed.append(failed_u)
    known = codes >= 0
    text[known] = np.array(mapped + [""], dtype=object)[codes[known]]
    bad[known] = np.array(failed + [False], dtype=bool)[codes[known]]
    if not numeric:  # NA-like values other than None, NA and NaN (NaT…) are values to convert
        values = column.to_numpy(dtype=object)
        for i in np.flatnonzero(~known).tolist():
            text[i], bad[i] = _day_text(values[i], no_expiry)
    return text, bad


def _day_text(days, no_expiry: str) -> tuple[str, bool]:
    """(validityDuration text of one value, whether ``int(days)`` fails on it)."""
    if _blank(days):
        return no_expiry, False
    try:
        return str(max(int(days), 1)), False
    except (TypeError, ValueError, OverflowError):
        return "", True


def _scan(values: np.ndarray) -> tuple[bool, bool]:
    """(whether any of ``values`` may hold a character that is escaped (JSON or XML) or refused (XML),
    whether all are ASCII): a C-speed scan of their UTF-8 bytes; "not special" is certain, "special"
    sends them to the exact checks."""
    joined = "".join(values.tolist())
    if joined.isascii():
        return len(joined.encode("ascii").translate(None, _SPECIAL_BYTES)) != len(joined), True
    raw = joined.encode("utf-8", "surrogatepass")
    # beyond ASCII, XML refuses surrogates (UTF-8 lead byte ED) and U+FFFE, U+FFFF (EF BF ..)
    return len(raw.translate(None, _SPECIAL_BYTES)) != len(raw) or b"\xed" in raw or b"\xef\xbf" in raw, False


def _hits(values: np.ndarray, pattern: re.Pattern, special: bool = True) -> np.ndarray:
    """Which values hold a match of the one-character ``pattern`` (none unless ``special``): one scan
    of the joined text; only on a hit are the match positions mapped back to values."""
    hit = np.zeros(len(values), dtype=bool)
    if not special:
        return hit
    joined = "".join(values.tolist())
    first = pattern.search(joined)
    if first is None:
        return hit
    ends = np.cumsum(np.fromiter(map(len, values.tolist()), dtype=np.int64, count=len(values)))
    where = np.fromiter((m.start() for m in pattern.finditer(joined, first.start())), dtype=np.int64)
    hit[np.searchsorted(ends, where, side="right")] = True
    return hit


def _escaped(values: np.ndarray, pattern: re.Pattern, fn, special: bool = True) -> np.ndarray:
    """``values`` with ``fn`` applied to those holding a ``pattern`` match (usually none: no copy then)."""
    hit = _hits(values, pattern, special)
    if not hit.any():
        return values
    out = values.copy()
    out[hit] = [fn(v) for v in values[hit].tolist()]
    return out


def _json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


class _Choice:
    """A piece that is, per row, one of a few constant strings: ``table[index]``. Adjacent constant
    and choice pieces merge into one (their tables multiply), so each row has fewer pieces to join."""

    def __init__(self, table: list[str], index: np.ndarray):
        self.table, self.index = table, index

    def __add__(self, other: _Choice | str) -> _Choice:
        if isinstance(other, str):
            return _Choice([t + other for t in self.table], self.index)
        return _Choice([a + b for a in self.table for b in other.table],
                       self.index * len(other.table) + other.index)

    def __radd__(self, other: str) -> _Choice:
        return _Choice([other + t for t in self.table], self.index)

    def values(self) -> np.ndarray:
        return np.array(self.table, dtype=object)[self.index]  # shared str objects: no string per row


def _pick(mask: np.ndarray, yes: str, no: str = "") -> _Choice:
    """Per row ``yes`` where ``mask`` else ``no``."""
    return _Choice([no, yes], mask.astype(np.intp))


def _few(values: np.ndarray, most: int = 4) -> np.ndarray | _Choice:
    """``values`` as a choice when they take at most ``most`` distinct values in the chunk (wallet, type)."""
    codes, uniques = pd.factorize(values)
    return _Choice(list(uniques), codes) if len(uniques) <= most else values


class _Chunk:
    """A chunk of rows as checked column arrays; ``good`` rows (those before the first refused one)
    are the ones to write."""

    def __init__(self, transfers: pd.DataFrame, lo: int, hi: int, no_expiry: str):
        part = transfers.iloc[lo:hi]
        n = hi - lo
        self.frame = part
        self.text = {c: _text(part[c] if c in part.columns else None, n) for c in _TEXT}
        self.points, points_ok = _points(part["points"])
        self.days, days_bad = _days(part["validity_days"] if "validity_days" in part.columns else None, n,
                                    no_expiry)
        t = self.text
        scans = {c: _scan(t[c]) for c in _TEXT if c != "type"}  # type: checked against TYPES below
        self.special = {c: scans[c][0] if c in scans else False for c in _TEXT}
        self.ascii = np.ones(n, dtype=bool)  # rows whose text is all ASCII (encoded the fast way)
        for c, (_, ascii_only) in scans.items():
            if not ascii_only:
                self.ascii &= np.fromiter(map(str.isascii, t[c].tolist()), dtype=bool, count=n)
        bad = ~points_ok | ~((t["type"] == TYPES[0]) | (t["type"] == TYPES[1])) | (t["target_id"] == "") | days_bad
        for key in ("target_id", "wallet_type_code", "lot_ids", "transfer_id"):
            bad |= _hits(t[key], _NOT_XML, self.special[key])
        refused = np.flatnonzero(bad)
        self.good = int(refused[0]) if len(refused) else n

    def refuse(self) -> None:
        """Raise the refusal of the first refused row (the row rules decide its message)."""
        i = self.good
        row = {c: self.text[c][i] for c in _TEXT}
        row["points"] = self.frame["points"].iloc[i:i + 1].to_numpy(dtype=object)[0]
        days = self.frame["validity_days"] if "validity_days" in self.frame.columns else None
        row["validity_days"] = None if days is None else days.iloc[i:i + 1].to_numpy(dtype=object)[0]
        _check(row)
        raise AssertionError(f"row {i} of a chunk was flagged but passes the row rules")  # pragma: no cover

    def column(self, name: str, pattern: re.Pattern, fn) -> np.ndarray:
        """The good rows of a text column, escaped with ``fn`` where ``pattern`` matches."""
        return _escaped(self.text[name][:self.good], pattern, fn, self.special[name])

    def has(self, name: str) -> np.ndarray:
        return self.text[name][:self.good] != ""


def _json_pieces(c: _Chunk) -> list:
    """The pieces of each good row's JSON object, in order: constants, choices or per-row arrays."""
    def esc(name: str) -> np.ndarray:
        return c.column(name, _JSON_ESCAPE, _json_text)

    reg, exp, lock = c.has("registered_on"), c.has("expires_at"), c.has("unlock_at")
    return ['  {"customerId": "', esc("target_id"), '", "units": ', c.points[:c.good], ', "walletTypeCode": "',
            _few(esc("wallet_type_code")), '"', _pick(reg, ', "registeredOn": "'), esc("registered_on"),
            _pick(reg, '"'), ', "type": "', _few(c.text["type"][:c.good]), '"',
            _pick(exp, ', "expiresAt": "'), esc("expires_at"), _pick(exp, '"'),
            _pick(lock, ', "lockedUntil": "'), esc("unlock_at"), _pick(lock, '"'),
            ', "comment": "transfer ', esc("transfer_id"), "; ",
            _pick(c.has("lot_ids"), "lots ", "negative balance carried"), esc("lot_ids"), '"}']


def _xml_pieces(c: _Chunk) -> list:
    """The pieces of each good row's ``<pointsTransfer>`` element, in order; the comment carries the dates."""
    def esc(name: str) -> np.ndarray:
        return c.column(name, _XML_ESCAPE, escape)

    reg, exp, lock = c.has("registered_on"), c.has("expires_at"), c.has("unlock_at")
    return ["  <pointsTransfer>\n    <customerId>", esc("target_id"), "</customerId>\n    <points>",
            c.points[:c.good], "</points>\n    <type>", _few(c.text["type"][:c.good]),
            "</type>\n    <validityDuration>", c.days[:c.good], "</validityDuration>\n    <comment>transfer ",
            esc("transfer_id"), "; ", _pick(c.has("lot_ids"), "lots ", "negative balance carried"), esc("lot_ids"),
            _pick(reg, "; registered "), esc("registered_on"), _pick(reg, " UTC"),
            _pick(exp, "; expires "), esc("expires_at"), _pick(exp, " UTC"),
            _pick(lock, "; locked until "), esc("unlock_at"), _pick(lock, " UTC"),
            "</comment>\n  </pointsTransfer>\n"]


def _merged(pieces: list) -> list:
    """Adjacent constant and choice pieces merged; choices become per-row arrays."""
    out: list = []
    for piece in pieces:
        if out and not isinstance(piece, np.ndarray) and not isinstance(out[-1], np.ndarray):
            out[-1] = out[-1] + piece
        else:
            out.append(piece)
    return [p.values() if isinstance(p, _Choice) else p for p in out]


def _runs(transfers: pd.DataFrame, pieces_of, sep: str, sized: bool, no_expiry: str = "0") -> Iterator[Run]:
    """Check and format ``transfers`` chunk by chunk and yield each chunk's rows as one run; a refused
    row, or one whose text cannot be encoded (a lone surrogate), raises after the rows before it
    were yielded, exactly where a row-by-row writer would stop."""
    missing = [c for c in _COLUMNS if c not in transfers.columns and c not in _OPTIONAL]
    if missing:
        raise ValueError(f"transfers lack column(s) {missing}")
    for lo in range(0, len(transfers), _CHUNK):
        chunk = _Chunk(transfers, lo, min(lo + _CHUNK, len(transfers)), no_expiry)
        n = chunk.good
        if n:
            last = np.zeros(n, dtype=bool)
            last[-1] = True
            pieces = _merged(pieces_of(chunk) + [_pick(last, "", sep)])  # sep after every row but the last
            grid = np.empty((n, len(pieces)), dtype=object)  # a row: its pieces
            for j, piece in enumerate(pieces):
                grid[:, j] = piece
            unencodable = None
            try:
                data = _encoded(grid, chunk.ascii[:n])
            except UnicodeEncodeError:
                n = unencodable = _first_unencodable(grid)
                data = "".join(grid[:n].ravel().tolist()).encode("utf-8")
                data = data[:len(data) - len(sep)] if n else b""
            sizes = None
            if sized:
                sizes = sum((_byte_lengths(p if isinstance(p, str) else p[:n]) for p in pieces),
                            np.zeros(n, dtype=np.int64))
                sizes[:min(n, chunk.good - 1)] -= len(sep.encode("utf-8"))
            yield Run(data, n, sizes)
            if unencodable is not None:
                row = "".join(grid[unencodable].tolist())
                (row[:len(row) - len(sep)] if unencodable < chunk.good - 1 else row).encode("utf-8")  # raises
        if chunk.good < len(chunk.frame):
            chunk.refuse()


def _encoded(grid: np.ndarray, ascii_rows: np.ndarray) -> bytes:
    """The rows' text as UTF-8. A few non-ASCII rows would make the whole chunk's text wide and slow
    to encode: runs of ASCII rows and runs of the others are joined and encoded apart."""
    if ascii_rows.all():
        return "".join(grid.ravel().tolist()).encode("utf-8")
    bounds = [0, *(np.flatnonzero(ascii_rows[1:] != ascii_rows[:-1]) + 1).tolist(), len(grid)]
    return b"".join("".join(grid[lo:hi].ravel().tolist()).encode("utf-8") for lo, hi in zip(bounds, bounds[1:]))


def _first_unencodable(grid: np.ndarray) -> int:
    """The first row whose text UTF-8 cannot encode (looked for only after a chunk failed to encode)."""
    for i, row in enumerate(grid.tolist()):
        try:
            "".join(row).encode("utf-8")
        except UnicodeEncodeError:
            return i
    raise AssertionError("the chunk failed to encode but none of its rows does")  # pragma: no cover


def _byte_lengths(piece) -> np.ndarray | int:
    """UTF-8 length of a constant piece, or of each value of a per-row piece."""
    if isinstance(piece, str):
        return len(piece.encode("utf-8"))
    values = piece.tolist()
    if all(map(str.isascii, values)):
        return np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    return np.fromiter(map(len, map(str.encode, values)), dtype=np.int64, count=len(values))


class TransferFileWriter:
    """One import file (``fmt`` "json" or "xml") written a frame at a time: ``write`` any number of
    frames (any size, empty ones too), then ``close`` for the paths. The bytes are those the whole
    frame's ``write_transfers_json`` / ``write_transfers_xml`` would write, however it is cut into
    frames, so stage 03 can append each member slice's transfers and drop them. Earlier files at
    ``path`` and its parts are removed on creation; a refused row (or any error while writing)
    removes the parts written so far and leaves the writer aborted, as ``abort`` does. Usable as a
    context manager: an exception inside the block aborts it."""

    def __init__(self, path: Path, fmt: str, *, max_file_bytes: int | None = None, no_expiry: str = "0"):
        if fmt not in ("json", "xml"):
            raise ValueError(f"unknown transfer file format {fmt!r}: json or xml")
        if fmt == "xml" and not re.fullmatch(r"[0-9]+", no_expiry):
            raise ValueError("no_expiry must be a whole number of days as text, e.g. '0'")
        self.path = Path(path)
        self.fmt, self.no_expiry, self.max_file_bytes = fmt, no_expiry, max_file_bytes
        self._header, self._footer, self._sep = (JSON_HEADER, JSON_FOOTER, ",\n") if fmt == "json" else \
            (XML_HEADER, XML_FOOTER, "")
        _remove_stale(self.path)
        self._parts = PartWriter(lambda k: _part(self.path, k), header=self._header, footer=self._footer,
                                 sep=self._sep.encode("ascii"), max_file_bytes=max_file_bytes, noun="transfer")

    def write(self, transfers: pd.DataFrame) -> None:
        """Append ``transfers`` (rows in file order) after everything written so far."""
        self._parts.check_open()
        pieces = _json_pieces if self.fmt == "json" else _xml_pieces
        try:
            for run in _runs(transfers, pieces, self._sep, self.max_file_bytes is not None, self.no_expiry):
                self._parts.add(run)
        except BaseException:
            self._parts.abort()
            raise

    def close(self) -> list[Path]:
        """Finish the file; returns its paths in order: ``path`` itself when one part holds everything
        (an empty list or document when no row came), else ``<stem>_0001<suffix>`` …"""
        paths = self._parts.close()
        if not paths:
            self.path.write_bytes(b"[\n]\n" if self.fmt == "json" else self._header + self._footer)
            return [self.path]
        if len(paths) == 1:
            paths[0].replace(self.path)
            return [self.path]
        return paths

    def abort(self) -> None:
        """Remove the parts written so far (nothing once closed)."""
        self._parts.abort()

    def __enter__(self) -> TransferFileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def write_transfers_json(transfers: pd.DataFrame, path: Path, *, max_file_bytes: int | None = None) -> list[Path]:
    """Write the SaaS JSON import file(s); returns their paths in order (see the module docstring)."""
    writer = TransferFileWriter(path, "json", max_file_bytes=max_file_bytes)
    writer.write(transfers)
    return writer.close()


def write_transfers_xml(transfers: pd.DataFrame, path: Path, *, max_file_bytes: int | None = None,
                        no_expiry: str = "0") -> list[Path]:
    """Write the OSS ``<pointsTransfers>`` XML import file(s); returns their paths in order."""
    writer = TransferFileWriter(path, "xml", max_file_bytes=max_file_bytes, no_expiry=no_expiry)
    writer.write(transfers)
    return writer.close()


def _part(path: Path, k: int) -> Path:
    return path.with_name(f"{path.stem}_{k:04d}{path.suffix}")


def _remove_stale(path: Path) -> None:
    """Remove an earlier run's file at ``path`` and its numbered parts, so a smaller rerun leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = re.compile(re.escape(path.stem) + r"_[0-9]{4}" + re.escape(path.suffix))
    for old in sorted(path.parent.iterdir()):
        if old == path or stale.fullmatch(old.name):
            old.unlink()
