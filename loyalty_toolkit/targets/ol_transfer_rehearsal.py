"""The rehearsal target's side of the unit-transfer import: what each member holds once the run's
transfer files are imported, written as the platform's member balance export.

A rehearsal, not the platform: it reads the files stage 03 wrote (the XML when there is one, as the
3.x importer takes, else the JSON), adds ``adding`` transfers and subtracts ``spending`` ones per
``customerId``, and ignores a transfer naming a member the target does not hold (the importer answers
"Account does not exist for given data", PointsTransferXmlImportConverter.php:79-80), so the member's
balance shows the loss and stage 06 names it.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pandas as pd

from loyalty_toolkit.errors import InputError

SIGN = {"adding": 1, "spending": -1}


def transfer_files(output_dir: Path) -> list[Path]:
    """The run's unit-transfer files in ``RUN_DIR/output/openloyalty``: the XML parts, else the JSON ones."""
    folder = Path(output_dir)
    xml = sorted(folder.glob("unit_transfers*.xml"))
    return xml or sorted(folder.glob("unit_transfers*.json"))


def transferred_points(paths: list[Path]) -> dict[str, int]:
    """Signed points per customerId over the files (whole numbers, as the files hold them)."""
    total: dict[str, int] = defaultdict(int)
    for path in paths:
        for member, kind, points in (_xml(path) if path.suffix == ".xml" else _json(path)):
            if kind not in SIGN:
                raise InputError(f"transfer type {kind!r} is neither adding nor spending", file=path.name,
                                 column="type")
            try:
                total[member] += SIGN[kind] * int(points)
            except ValueError:
                raise InputError(f"points {points!r} is not a whole number", file=path.name, column="points") from None
    return dict(total)


def _xml(path: Path):
    try:
        for _, node in ET.iterparse(path):
            if node.tag == "pointsTransfer":
                yield (node.findtext("customerId") or "").strip(), node.findtext("type"), node.findtext("points")
                node.clear()
    except ET.ParseError as exc:
        raise InputError(f"XML has invalid structure ({exc})", file=path.name, line=exc.position[0]) from None


def _json(path: Path):
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=path.name, line=exc.lineno, column=exc.colno) from None
    for item in items:
        yield str(item.get("customerId", "")).strip(), item.get("type"), str(item.get("units"))


def balance_export(members: pd.DataFrame, transferred: dict[str, int]) -> pd.DataFrame:
    """Every member the rehearsal target holds (``target_id``, in creation order) with its balance:
    what the transfers to it add up to; transfers to members it does not hold are lost there."""
    ids = [str(v) for v in members["target_id"].tolist()] if "target_id" in members.columns else []
    return pd.DataFrame({"target_id": ids, "balance": [transferred.get(i, 0) for i in ids]})


def write_balance_export(balances: pd.DataFrame, path: Path, columns: dict[str, str]) -> Path:
    """The export as the platform's CSV, headers named as the config maps them (UTF-8, ``\\n``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([columns["target_id"], columns["balance"]])
        writer.writerows(zip(balances["target_id"].tolist(), balances["balance"].tolist()))
    return path
