"""Stage 00 logic: freeze the inputs and, for a rehearsal, pick a deterministic subset.

A member is in the subset when a stable hash of its legacy id falls below the fraction, so a
member stays in when the export grows. Every row of every other input that refers to a chosen
member (by legacy id, card, email or phone) comes along, and so does at least one example of
every defect class present, so a rehearsal walks every rejection path. Selection works on whole
source records and writes them back byte for byte, so later stages read the subset exactly as
they would read the originals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import pandas as pd

from loyalty_toolkit.normalize import normalize_emails, normalize_phones
from loyalty_toolkit.shared.member_rules import prepare_members

# Row classes of the secondary inputs that a rehearsal must see at least once.
LEDGER_CLASSES = ("unknown_member", "redemption_without_link", "expired_lot", "pending_lot", "fractional_points")


def in_subset(key: str, fraction: float, salt: str) -> bool:
    """Stable membership test: depends only on the key, the salt and the fraction."""
    if fraction >= 1:
        return True
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


@dataclass
class MemberSelection:
    """Which member records (by physical line) are in the subset, and why."""

    lines: dict[int, str] = field(default_factory=dict)  # line -> reason ("hash" or "example:<class>")

    def add(self, line: int, reason: str) -> None:
        self.lines.setdefault(int(line), reason)


def member_classes(members: pd.DataFrame, *, source_file: str, default_region: str, timezone: str,
                   date_format: str | None) -> dict[str, list[int]]:
    """Defect class -> member lines that show it: reject reasons, identifiers left out (review),
    duplicate kinds, national phones."""
    result = prepare_members(members, source_file=source_file, default_region=default_region,
                             timezone=timezone, date_format=date_format)
    classes: dict[str, list[int]] = {}
    for code, grp in result.rejects.groupby("reason_code", sort=True):
        classes[f"reject:{code}"] = sorted(int(x) for x in grp["line"])
    for code, grp in result.review.groupby("reason_code", sort=True):
        classes[f"review:{code}"] = sorted(int(x) for x in grp["line"])
    for ident, grp in result.duplicates.groupby("identifier", sort=True):
        first_group = sorted(grp["group_id"].unique())[0]
        classes[f"duplicate:{ident}"] = sorted(int(x) for x in grp.loc[grp["group_id"] == first_group, "source_line"])
    national = members.loc[(members["phone"].str.strip() != "") & ~members["phone"].str.strip().str.startswith("+"),
                           "_line"]
    if len(national):
        classes["phone_national_format"] = [int(national.iloc[0])]
    return classes


def select_members(members: pd.DataFrame, *, fraction: float, salt: str,
                   classes: dict[str, list[int]]) -> MemberSelection:
    """Hash-chosen members plus one example (a whole duplicate group) of each class not yet shown."""
    sel = MemberSelection()
    for line, key in zip(members["_line"], members["legacy_id"]):
        if in_subset(str(key), fraction, salt):
            sel.add(line, "hash")
    for name, lines in sorted(classes.items()):
        # A duplicate group shows its defect only when all of its members are in.
        shown = all if name.startswith("duplicate:") else any
        if not shown(ln in sel.lines for ln in lines):
            for ln in lines:
                sel.add(ln, f"example:{name}")
    return sel


@dataclass
class MemberKeys:
    """The identifiers by which other inputs may refer to the chosen members."""

    legacy_ids: set[str]
    cards: set[str]
    email_keys: set[str]
    phones: set[str]

    @classmethod
    def of(cls, members: pd.DataFrame, default_region: str) -> MemberKeys:
        emails = normalize_emails(members["email"])
        phones = normalize_phones(members["phone"], default_region)
        return cls(
            legacy_ids={s for s in members["legacy_id"].str.strip() if s},
            cards={s for s in members["card_number"].str.strip() if s},
            email_keys={s for s in emails["email_key"] if s},
            phones={s for s in phones["phone"] if s},
        )


def _local(text: str) -> str:
    """Zenoti timestamps compare as text once trimmed to ``YYYY-MM-DD HH:MM:SS``."""
    return str(text).strip().replace("T", " ")[:19]


def ledger_classes(ledger: pd.DataFrame, *, all_ids: set[str], cutover: datetime) -> dict[str, pd.Series]:
    """Boolean masks of the ledger row classes a rehearsal must exercise.

    Dates are compared in center-local text against the cutover's own wall time: close enough to
    pick examples; stage 03 does the exact UTC comparison.
    """
    cut = cutover.strftime("%Y-%m-%d %H:%M:%S")
    kind = ledger["record_type"].str.strip().str.lower()
    end = ledger["effective_end"].map(_local)
    start = ledger["effective_start"].map(_local)
    points = ledger["points"].str.strip()
    return {
        "unknown_member": ~ledger["user_id"].str.strip().isin(all_ids),
        "redemption_without_link": (kind == "redemption") & (ledger["guestpointsid"].str.strip() == ""),
        "expired_lot": (kind == "accrual") & (end != "") & (end <= cut),
        "pending_lot": (kind == "accrual") & (start != "") & (start > cut),
        "fractional_points": points.str.contains(r"\.\d*[1-9]", regex=True),
    }


def select_rows(frame: pd.DataFrame, keep: pd.Series, classes: dict[str, pd.Series],
                on_missing_example: Callable[[str, int], None] | None = None) -> pd.Series:
    """Rows kept: ``keep`` plus the first row of each class that ``keep`` has no example of.

    ``on_missing_example(class, index)`` lets the caller pull in the owner of that row instead.
    """
    keep = keep.copy()
    for name, mask in classes.items():
        if mask.any() and not (mask & keep).any():
            idx = mask.idxmax()
            if on_missing_example is not None:
                on_missing_example(name, idx)
            keep.loc[idx] = True
    return keep


def opening_keys(frame: pd.DataFrame, default_region: str) -> tuple[pd.Series, pd.Series]:
    """Normalised (email_key, phone) of opening-balance rows, to match them to chosen members."""
    return (normalize_emails(frame["email"])["email_key"], normalize_phones(frame["phone"], default_region)["phone"])
