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
of exported transfers) carrying the transfer id and the legacy lot ids.

XML (OSS ``POST /api/points/transfer/import``, nodes ``pointsTransfer``): ``customerId``,
``points`` (an integer: OSS rejects ``12.5`` and ``100.0``), ``type`` (adding|spending),
``validityDuration`` and ``comment``. OSS requires ``validityDuration`` but ignores it (expiry
and lock come from the global pointsDaysActive / pointsDaysLocked settings); we write the whole
days from the cutover to the lot's expiry (rounded up, so points never expire earlier), or
``no_expiry`` (default ``0``, a documented sentinel) when the points never expire. OSS has no
registeredOn, expiry, lock or wallet fields (one points account per member), so the comment
carries the dates for the record. OSS has no dedupe key: importing a file twice adds it twice.

``max_file_bytes`` splits into ``<stem>_0001<suffix>``, ``_0002`` … each strictly smaller, between
transfers; without a limit, or when everything fits, one file at ``path``. Earlier files at
``path`` and its numbered parts are removed first, so a smaller rerun leaves no stale part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

JSON_DOCUMENTED = ("customerId", "units", "walletTypeCode", "registeredOn")
JSON_OURS = ("type", "expiresAt", "lockedUntil", "comment")
XML_HEADER = b'<?xml version="1.0" encoding="UTF-8"?>\n<pointsTransfers>\n'
XML_FOOTER = b"</pointsTransfers>\n"
JSON_HEADER, JSON_FOOTER = b"[\n", b"\n]\n"
TYPES = ("adding", "spending")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def comment(row: dict) -> str:
    """``transfer <uuid>; lots a,b`` (``negative balance carried`` for a spending without lots)."""
    lots = row.get("lot_ids") or ""
    return f"transfer {row['transfer_id']}; " + (f"lots {lots}" if lots else "negative balance carried")


def _records(transfers: pd.DataFrame) -> Iterator[dict]:
    cols = ("transfer_id", "target_id", "wallet_type_code", "type", "points", "registered_on", "expires_at",
            "unlock_at", "validity_days", "lot_ids")
    missing = [c for c in cols if c not in transfers.columns and c not in ("unlock_at", "validity_days", "lot_ids")]
    if missing:
        raise ValueError(f"transfers lack column(s) {missing}")
    n = len(transfers)
    data = {c: (transfers[c].to_numpy(dtype=object) if c in transfers.columns else np.full(n, None, dtype=object))
            for c in cols}
    for i in range(n):
        row = {c: data[c][i] for c in cols}
        for c in ("transfer_id", "target_id", "wallet_type_code", "type", "registered_on", "expires_at", "unlock_at",
                  "lot_ids"):
            row[c] = "" if row[c] is None or row[c] is pd.NA or (isinstance(row[c], float) and row[c] != row[c]) \
                else str(row[c])
        _check(row)
        yield row


def _check(row: dict) -> None:
    pts = row["points"]
    if isinstance(pts, (bool, np.bool_)) or not isinstance(pts, (int, np.integer)) or pts <= 0:
        raise ValueError(f"transfer {row['transfer_id']}: points must be a whole number above 0, not {pts!r}")
    row["points"] = int(pts)
    if row["type"] not in TYPES:
        raise ValueError(f"transfer {row['transfer_id']}: type must be adding or spending, not {row['type']!r}")
    if not row["target_id"]:
        raise ValueError(f"transfer {row['transfer_id']}: no customerId (target_id)")
    for key in ("target_id", "wallet_type_code", "lot_ids", "transfer_id"):
        bad = _NOT_XML.search(row[key])
        if bad:
            raise ValueError(f"transfer {row['transfer_id']}: {key} holds U+{ord(bad.group()):04X}")
    days = row["validity_days"]
    row["validity_days"] = None if days is None or days is pd.NA or (isinstance(days, float) and days != days) \
        else int(days)


def _json_item(row: dict) -> dict:
    item = {"customerId": row["target_id"], "units": row["points"], "walletTypeCode": row["wallet_type_code"]}
    if row["registered_on"]:
        item["registeredOn"] = row["registered_on"]
    item["type"] = row["type"]
    if row["expires_at"]:
        item["expiresAt"] = row["expires_at"]
    if row["unlock_at"]:
        item["lockedUntil"] = row["unlock_at"]
    item["comment"] = comment(row)
    return item


def _xml_item(row: dict, no_expiry: str) -> str:
    days = row["validity_days"]
    note = comment(row)
    for label, key in (("registered", "registered_on"), ("expires", "expires_at"), ("locked until", "unlock_at")):
        if row[key]:
            note += f"; {label} {row[key]} UTC"
    return ("  <pointsTransfer>\n"
            f"    <customerId>{escape(row['target_id'])}</customerId>\n"
            f"    <points>{row['points']}</points>\n"
            f"    <type>{row['type']}</type>\n"
            f"    <validityDuration>{no_expiry if days is None else max(days, 1)}</validityDuration>\n"
            f"    <comment>{escape(note)}</comment>\n"
            "  </pointsTransfer>\n")


def write_transfers_json(transfers: pd.DataFrame, path: Path, *, max_file_bytes: int | None = None) -> list[Path]:
    """Write the SaaS JSON import file(s); returns their paths in order (see the module docstring)."""
    def items() -> Iterator[bytes]:
        for row in _records(transfers):
            yield ("  " + json.dumps(_json_item(row), ensure_ascii=False, separators=(", ", ": "))).encode("utf-8")
    return _write(Path(path), items(), JSON_HEADER, JSON_FOOTER, b",\n", max_file_bytes)


def write_transfers_xml(transfers: pd.DataFrame, path: Path, *, max_file_bytes: int | None = None,
                        no_expiry: str = "0") -> list[Path]:
    """Write the OSS ``<pointsTransfers>`` XML import file(s); returns their paths in order."""
    if not re.fullmatch(r"[0-9]+", no_expiry):
        raise ValueError("no_expiry must be a whole number of days as text, e.g. '0'")

    def items() -> Iterator[bytes]:
        for row in _records(transfers):
            yield _xml_item(row, no_expiry).encode("utf-8")
    return _write(Path(path), items(), XML_HEADER, XML_FOOTER, b"", max_file_bytes)


def _part(path: Path, k: int) -> Path:
    return path.with_name(f"{path.stem}_{k:04d}{path.suffix}")


def _write(path: Path, items: Iterator[bytes], header: bytes, footer: bytes, sep: bytes,
           max_file_bytes: int | None) -> list[Path]:
    """Stream items into numbered parts below ``max_file_bytes``; a single part is renamed to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = re.compile(re.escape(path.stem) + r"_[0-9]{4}" + re.escape(path.suffix))
    for old in sorted(path.parent.iterdir()):
        if old == path or stale.fullmatch(old.name):
            old.unlink()
    if header == JSON_HEADER:
        empty = b"[\n]\n"
    else:
        empty = header + footer
    paths: list[Path] = []
    handle = None
    size = 0
    complete = False
    try:
        for item in items:
            if max_file_bytes is not None and len(header) + len(item) + len(footer) >= max_file_bytes:
                raise ValueError(f"max_file_bytes={max_file_bytes} cannot hold even one transfer ({len(item)} bytes)")
            if handle is not None and max_file_bytes is not None and size + len(sep) + len(item) >= max_file_bytes:
                handle.write(footer)
                handle.close()
                handle = None
            if handle is None:
                paths.append(_part(path, len(paths) + 1))
                handle = open(paths[-1], "wb")
                handle.write(header)
                size = len(header) + len(footer)
            else:
                handle.write(sep)
                size += len(sep)
            handle.write(item)
            size += len(item)
        if handle is not None:
            handle.write(footer)
            handle.close()
            handle = None
        complete = True
    finally:
        if handle is not None:
            handle.close()
        if not complete:  # never leave a truncated part that could be imported by mistake
            for p in paths:
                p.unlink(missing_ok=True)
    if not paths:
        path.write_bytes(empty)
        return [path]
    if len(paths) == 1:
        paths[0].replace(path)
        return [path]
    return paths
