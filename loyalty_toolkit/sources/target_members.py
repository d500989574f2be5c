"""The target platform's member export (stage 02's second input): the IDs Open Loyalty assigned.

Open Loyalty exports members with ``memberId`` (its own ID, the one unit transfers need) and the
identifiers ``email``, ``phone`` and ``loyaltyCardNumber`` (openloyalty_imports.md section 1). The
export may be CSV (any delimiter or encoding :mod:`~loyalty_toolkit.sources.csvfile` detects) or
JSON (a list of member objects, or ``{"items": [...]}``); other columns are ignored.

Identifiers are normalised exactly like stage 01 normalises the legacy members, so both sides
compare on the same keys: ``email_key`` case-folds the local part, phones become E.164 read in the
migration's ``default_region``, card numbers are trimmed text (leading zeros kept). A phone that
is not a possible number becomes ``''``: it could never match a migrated member's E.164 phone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loyalty_toolkit.csv_cells import neutralise_row, restore
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.normalize import normalize_emails, normalize_phones
from loyalty_toolkit.sources.csvfile import read_table

TARGET_MEMBER_COLUMNS: tuple[str, ...] = ("target_id", "email", "email_key", "phone", "card_number", "created_at",
                                          "source_line")
# Canonical field -> Open Loyalty export column.
EXPORT_FIELDS: dict[str, str] = {
    "target_id": "memberId",
    "email": "email",
    "phone": "phone",
    "card_number": "loyaltyCardNumber",
    "created_at": "createdAt",
}
# What the rehearsal target writes: the columns of a real export, in its order (canonical -> header).
EXPORT_COLUMNS: dict[str, str] = {
    "target_id": "memberId",
    "email": "email",
    "phone": "phone",
    "card_number": "loyaltyCardNumber",
    "first_name": "firstName",
    "last_name": "lastName",
    "gender": "gender",
    "birth_date": "birthDate",
    "active": "active",
    "created_at": "createdAt",
}


def read_target_members(path: str | Path, *, default_region: str, stage: str = "mapping") -> pd.DataFrame:
    """Read the target's member export into the normalised frame stage 02 matches against.

    Columns: :data:`TARGET_MEMBER_COLUMNS`, all text but ``source_line`` (the physical CSV line of
    the record, or the 1-based item number in a JSON export). A missing or empty ``memberId``, a
    repeated ``memberId`` or an unreadable file raises InputError naming file, line and column.
    """
    path = Path(path)
    if _looks_like_json(path, stage):
        raw, lines = _read_json(path, stage)
    else:
        raw, lines = _read_csv(path, stage)
    ids = raw["target_id"].str.strip()
    _check_ids(ids, lines, path, stage)
    emails = normalize_emails(raw["email"])
    frame = pd.DataFrame({
        "target_id": ids,
        "email": emails["email"],
        "email_key": emails["email_key"],
        "phone": normalize_phones(raw["phone"], default_region)["phone"],
        "card_number": raw["card_number"].str.strip(),
        "created_at": raw["created_at"].str.strip(),
        "source_line": pd.Series(lines, index=raw.index, dtype="int64"),
    }, columns=list(TARGET_MEMBER_COLUMNS))
    return frame.astype({c: "str" for c in TARGET_MEMBER_COLUMNS if c != "source_line"}).reset_index(drop=True)


def write_target_members_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write members as the target's export would hold them (the rehearsal target's export).

    ``frame`` holds canonical columns (see :data:`EXPORT_COLUMNS`); missing ones are written empty.
    Rows keep their order; output is UTF-8 with ``\\n`` line ends, so identical input gives
    identical bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [_texts(frame, c) for c in EXPORT_COLUMNS]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS.values())
        writer.writerows(neutralise_row(row) for row in zip(*columns))
    return path


def _texts(frame: pd.DataFrame, name: str) -> list[str]:
    if name not in frame.columns:
        return [""] * len(frame)
    return ["" if v is None or (isinstance(v, float) and v != v) else _bool_text(v) for v in frame[name].tolist()]


def _bool_text(value: Any) -> str:
    # Open Loyalty writes booleans as true/false; Python's True/False would not read back the same.
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _looks_like_json(path: Path, stage: str) -> bool:
    """JSON by extension, or by content when the file starts with ``[`` or ``{``."""
    if path.suffix.lower() == ".json":
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", stage=stage, file=path.name) from None
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{")


def _read_csv(path: Path, stage: str) -> tuple[pd.DataFrame, np.ndarray]:
    table = read_table(path, required=(EXPORT_FIELDS["target_id"],), allow_empty=True, stage=stage)
    index = {name: i for i, name in enumerate(table.header) if name}
    data = {}
    for canonical, header in EXPORT_FIELDS.items():
        i = index.get(header)
        # restore: the rehearsal target writes its export with csv_cells' leading ' on formula cells
        data[canonical] = pd.Series([restore(row[i]) for row in table.rows] if i is not None else [""] * len(table),
                                    dtype="str")
    return pd.DataFrame(data), np.asarray(table.lines, dtype=np.int64)


def _read_json(path: Path, stage: str) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", stage=stage, file=path.name) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 (byte at offset {exc.start}); JSON exports are UTF-8", stage=stage,
                         file=path.name) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", stage=stage, file=path.name, line=exc.lineno,
                         column=exc.colno) from None
    if isinstance(data, Mapping):
        if not isinstance(data.get("items"), list):
            raise InputError('expected a list of members or an object with an "items" list', stage=stage,
                             file=path.name, column="items")
        data = data["items"]
    if not isinstance(data, list):
        raise InputError('expected a list of members or an object with an "items" list', stage=stage,
                         file=path.name)
    columns: dict[str, list[str]] = {c: [] for c in EXPORT_FIELDS}
    for number, item in enumerate(data, start=1):
        if not isinstance(item, Mapping):
            raise InputError(f"item {number} is not an object", stage=stage, file=path.name, line=number)
        for canonical, key in EXPORT_FIELDS.items():
            columns[canonical].append(_json_text(item.get(key), path, stage, number, key))
    frame = pd.DataFrame({c: pd.Series(v, dtype="str") for c, v in columns.items()})
    return frame, np.arange(1, len(data) + 1, dtype=np.int64)


def _json_text(value: Any, path: Path, stage: str, number: int, key: str) -> str:
    """A JSON scalar as text. Floats and booleans are refused: a card number or a phone read as a
    float has already lost its leading zeros or digits, and silently matching on it is worse."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = type(value).__name__
    raise InputError(f"item {number}: expected text, found {kind} ({json.dumps(value)[:40]})", stage=stage,
                     file=path.name, line=number, column=key)


def _check_ids(ids: pd.Series, lines: np.ndarray, path: Path, stage: str) -> None:
    """Every member needs a memberId, and one ID must name one member."""
    empty = np.flatnonzero((ids == "").to_numpy())
    if len(empty):
        raise InputError("memberId is empty: every target member needs its ID", stage=stage, file=path.name,
                         line=int(lines[empty[0]]), column=EXPORT_FIELDS["target_id"])
    repeated = ids.duplicated(keep="first").to_numpy()
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        first = int(lines[np.flatnonzero((ids == ids.iat[at]).to_numpy())[0]])
        raise InputError(f"memberId repeated (first on line {first}); the export must list each member once",
                         stage=stage, file=path.name, line=int(lines[at]), column=EXPORT_FIELDS["target_id"])
