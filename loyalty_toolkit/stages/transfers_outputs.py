"""Stage 03's output files: written pending the gate, then read back from disk and recounted.

The gate must see what the files hold, not what the writer meant to write: each file is streamed
back (a file of millions of transfers is never held whole), and its rows, signed total, bad
amounts and duplicate ids become one row of the ``outputs`` table (``OUTPUT_COLUMNS``) that the
gate compares with the transfers the engine produced. A file that cannot be read back fails the
gate rather than crashing the stage. Writers: ``targets/ol_transfers.py``, ``targets/haravan.py``.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.stages.transfers import SPENDING
from loyalty_toolkit.targets.haravan import HEADER as HARAVAN_HEADER
from loyalty_toolkit.targets.haravan import write_opening_balances
from loyalty_toolkit.targets.ol_transfers import write_transfers_json, write_transfers_xml

JSON_NAME, XML_NAME, HARAVAN_NAME = "unit_transfers.json", "unit_transfers.xml", "opening_balances.csv"
OUTPUT_COLUMNS = ("output", "unit", "files", "rows_expected", "rows_written", "total_expected", "total_written",
                  "bad_values", "duplicate_ids", "problem")
_STALE = re.compile(r"unit_transfers(_[0-9]{4})?\.(json|xml)")
_TRANSFER_ID = re.compile(r"^transfer ([^;]+);")
_WHOLE = re.compile(r"[1-9][0-9]*")


# -- writing -----------------------------------------------------------------------------------

def write_transfer_files(transfers: pd.DataFrame, directory: Path,
                         formats: Collection[str]) -> tuple[list[Path], list[dict]]:
    """Write the unit transfers in each configured format (JSON, then XML) into ``directory``;
    returns the files written and, per format, its ``output_row`` read back from those files."""
    files: list[Path] = []
    rows = []
    if "json" in formats:
        written = write_transfers_json(transfers, directory / JSON_NAME)
        files += written
        rows.append(output_row(f"openloyalty/{JSON_NAME}", "points", written, _expected(transfers),
                               json_items(written)))
    if "xml" in formats:
        written = write_transfers_xml(transfers, directory / XML_NAME)
        files += written
        rows.append(output_row(f"openloyalty/{XML_NAME}", "points", written, _expected(transfers),
                               xml_items(written)))
    return files, rows


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


def output_row(name: str, unit: str, files: list[Path], expected: tuple[int, int],
               items: Iterator[tuple[str, int | None]]) -> dict:
    """Recount a written file: ``items`` (a generator reading it back) yields (transfer id or key,
    signed amount, or None when the amount is not a whole number > 0). A file that cannot be read
    back counts as one bad value and names the cause in ``problem``: the gate fails, the stage does
    not crash."""
    ids, total, bad, problem = [], 0, 0, ""
    try:
        for key, value in items:
            ids.append(key)
            if value is None:
                bad += 1
            else:
                total += value
    except (ValueError, ET.ParseError, csv.Error, UnicodeDecodeError, OSError) as exc:
        bad, problem = bad + 1, f"{type(exc).__name__}: {exc}"[:300]
    return {"output": name, "unit": unit, "files": len(files), "rows_expected": expected[0],
            "rows_written": len(ids), "total_expected": expected[1], "total_written": total, "bad_values": bad,
            "duplicate_ids": len(ids) - len(set(ids)), "problem": problem}


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


def json_items(paths: list[Path]) -> Iterator[tuple[str, int | None]]:
    """(transfer id, signed units) of each transfer in the JSON parts, for ``output_row``."""
    for p in paths:
        for it in json_list(p):
            units = it.get("units")
            ok = isinstance(units, int) and not isinstance(units, bool) and units > 0
            m = _TRANSFER_ID.match(str(it.get("comment", "")))
            yield (m.group(1) if m else "", (-1 if it.get("type") == SPENDING else 1) * units if ok else None)


def xml_items(paths: list[Path]) -> Iterator[tuple[str, int | None]]:
    """(transfer id, signed points) of each ``pointsTransfer`` in the XML parts, for ``output_row``."""
    for p in paths:
        # streamed, raising on a file that is not well-formed; read transfers are dropped from the root
        events = ET.iterparse(p, events=("start", "end"))
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

