"""What the target cannot hold: per-transfer expiry, lock and date a profile ignores (oss-3).

The 3.x importer dates every transfer at import time and takes its expiry and lock from the global
settings (``targets.openloyalty.settings``: points validity days, locked days), whatever the file
says (rules OSS_IGNORES_*, ``targets/ol_profiles.py``). Stage 03 computes the legacy expiry and unlock
of every lot; this module says, per month, how many points the target will expire or unlock at
another time than the legacy program owes them, and what the target will show (available, not yet
expired) at the import and at each month end beside what the legacy program owes.

Pure and additive: :func:`month_parts` gives one slice's sums per (kind, month), which add up over
the member slices; :func:`table` turns the whole program's parts into the notebook's table.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from loyalty_toolkit.model import ADDING

PART_COLUMNS = ("kind", "month", "points")
MEMBER_COLUMNS = ("legacy_id", "legacy_available_at_import", "target_shows_at_import", "expires_earlier",
                  "expires_later")
KINDS = ("legacy_expiry", "target_expiry", "expiry_changed", "legacy_unlock", "target_unlock", "unlock_changed")
NEVER = "never"
TABLE_COLUMNS = ("month", "legacy_expiring", "target_expiring", "expiry_changed", "unlock_changed",
                 "legacy_owes_at_month_end", "target_shows_at_month_end")


def _parse(values: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) texts as datetime64[s]; '' as NaT."""
    texts = np.where(values == "", "NaT", values).astype(str)
    return np.array([np.datetime64(v.replace(" ", "T")) if v != "NaT" else np.datetime64("NaT") for v in texts],
                    dtype="datetime64[s]")


def _months(instants: np.ndarray, tz: str) -> np.ndarray:
    """Month of each instant in ``tz`` (``YYYY-MM``), ``never`` for NaT."""
    out = np.full(len(instants), NEVER, dtype=object)
    ok = ~np.isnat(instants)
    if ok.any():
        local = pd.DatetimeIndex(instants[ok]).tz_localize("UTC").tz_convert(tz)
        out[ok] = local.strftime("%Y-%m").to_numpy(dtype=object)
    return out


def _adding(t: pd.DataFrame, import_at: datetime) -> tuple[np.ndarray, np.datetime64, np.ndarray, np.ndarray]:
    """The adding transfers' points, the import instant (UTC, seconds), and each transfer's legacy
    expiry and unlock instants (NaT: none): what both views of the target's changes start from."""
    at = np.datetime64(import_at.astimezone(timezone.utc).replace(tzinfo=None), "s")
    return (t["points"].to_numpy(np.int64), at, _parse(t["expires_at"].to_numpy(dtype=object)),
            _parse(t["unlock_at"].to_numpy(dtype=object)))


def month_parts(transfers: pd.DataFrame, *, ignored: set[str], days_active: int | None, days_locked: int,
                import_at: datetime, tz: str) -> pd.DataFrame:
    """One slice's points per (kind, month) over its adding transfers (columns points, expires_at,
    unlock_at): legacy and target expiry and unlock months, and the points whose expiry or unlock
    the target moves (by legacy month). ``ignored`` holds the ignored elements (expiry, lock)."""
    t = transfers[transfers["type"].to_numpy(dtype=object) == ADDING] if len(transfers) else transfers
    if not len(t) or not ignored:
        return pd.DataFrame(columns=list(PART_COLUMNS))
    pts, at, legacy_end, legacy_unlock = _adding(t, import_at)
    n = len(t)
    if "expiry" in ignored:
        target_end = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]") if days_active is None else \
            np.full(n, at + np.timedelta64(int(days_active), "D"), dtype="datetime64[s]")
    else:
        target_end = legacy_end
    if "lock" in ignored:
        target_unlock = np.full(n, at + np.timedelta64(int(days_locked), "D"), dtype="datetime64[s]") if days_locked \
            else np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    else:
        target_unlock = legacy_unlock
    # a day moved is a change; the same instant or both never is not
    end_changed = ~((np.isnat(legacy_end) & np.isnat(target_end))
                    | (legacy_end.astype("datetime64[D]") == target_end.astype("datetime64[D]")))
    legacy_locked = ~np.isnat(legacy_unlock) & (legacy_unlock > at)
    target_locked = ~np.isnat(target_unlock) & (target_unlock > at)
    unlock_changed = (legacy_locked != target_locked) | (
        legacy_locked & target_locked & (legacy_unlock.astype("datetime64[D]") != target_unlock.astype("datetime64[D]")))
    legacy_month = _months(legacy_end, tz)
    frames = [
        ("legacy_expiry", legacy_month, pts), ("target_expiry", _months(target_end, tz), pts),
        ("expiry_changed", legacy_month[end_changed], pts[end_changed]),
        ("legacy_unlock", _months(np.where(legacy_locked, legacy_unlock, np.datetime64("NaT")), tz), pts),
        ("target_unlock", _months(np.where(target_locked, target_unlock, np.datetime64("NaT")), tz), pts),
        ("unlock_changed", _months(np.where(legacy_locked, legacy_unlock, np.datetime64("NaT")), tz)[unlock_changed],
         pts[unlock_changed]),
    ]
    parts = pd.concat([pd.DataFrame({"kind": kind, "month": months, "points": p}) for kind, months, p in frames],
                      ignore_index=True)
    return parts.groupby(["kind", "month"], sort=True)["points"].sum().reset_index()


def table(parts: list[pd.DataFrame], *, import_at: datetime, tz: str) -> pd.DataFrame:
    """Per month (the import's, then every month any points expire or unlock, ``never`` last): the
    points expiring for the legacy program and at the target, the points whose expiry or unlock the
    target moves, and the points the legacy program owes and the target shows (available: not
    expired and not locked) at the month's end. The first row, ``at import``, is the import day."""
    whole = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else \
        pd.DataFrame(columns=list(PART_COLUMNS))
    if whole.empty:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    sums = whole.groupby(["kind", "month"])["points"].sum()
    first = pd.Timestamp(import_at).tz_convert(tz).strftime("%Y-%m")
    dated = sorted({m for m in whole["month"] if m != NEVER} | {first})
    total = int(sums.get("legacy_expiry", pd.Series(dtype="int64")).sum())

    def get(kind: str, month: str) -> int:
        return int(sums.get((kind, month), 0))

    def owed_after(expiry: str, unlock: str, month: str | None) -> int:
        """Points not expired by the end of ``month`` and unlocked by then (None: at the import)."""
        expired = sum(get(expiry, m) for m in dated if (month is not None and m <= month) or
                      (month is None and m < first))
        locked = sum(get(unlock, m) for m in dated if month is None or m > month)
        return total - expired - locked

    rows = [("at import", 0, 0, 0, 0, owed_after("legacy_expiry", "legacy_unlock", None),
             owed_after("target_expiry", "target_unlock", None))]
    for m in dated:
        rows.append((m, get("legacy_expiry", m), get("target_expiry", m), get("expiry_changed", m),
                     get("unlock_changed", m), owed_after("legacy_expiry", "legacy_unlock", m),
                     owed_after("target_expiry", "target_unlock", m)))
    rows.append((NEVER, get("legacy_expiry", NEVER), get("target_expiry", NEVER), get("expiry_changed", NEVER),
                 0, None, None))
    out = pd.DataFrame.from_records(rows, columns=list(TABLE_COLUMNS))
    return out.astype({c: "Int64" for c in TABLE_COLUMNS if c != "month"})


def member_parts(transfers: pd.DataFrame, *, ignored: set[str], days_active: int | None, days_locked: int,
                 import_at: datetime, tz: str) -> pd.DataFrame:
    """Per member whose points the target treats otherwise (one row each, so slices concatenate):
    the points available at the import for the legacy program and at the target, and the points the
    target expires earlier or later than the legacy program would. :data:`MEMBER_COLUMNS`."""
    t = transfers[transfers["type"].to_numpy(dtype=object) == ADDING] if len(transfers) else transfers
    if not len(t) or not ignored:
        return pd.DataFrame(columns=list(MEMBER_COLUMNS))
    pts, at, legacy_end, legacy_unlock = _adding(t, import_at)
    legacy_free = np.isnat(legacy_unlock) | (legacy_unlock <= at)
    target_free = legacy_free if "lock" not in ignored else np.full(len(t), not days_locked)
    if "expiry" in ignored:
        target_end = at + np.timedelta64(int(days_active), "D") if days_active is not None else None
        never = np.isnat(legacy_end)
        if target_end is None:
            earlier, later = np.zeros(len(t), bool), ~never
        else:
            earlier = never | (legacy_end.astype("datetime64[D]") > target_end.astype("datetime64[D]"))
            later = ~never & (legacy_end.astype("datetime64[D]") < target_end.astype("datetime64[D]"))
    else:
        earlier = later = np.zeros(len(t), bool)
    frame = pd.DataFrame({"legacy_id": t["legacy_id"].astype(str).to_numpy(),
                          "legacy_available_at_import": np.where(legacy_free, pts, 0),
                          "target_shows_at_import": np.where(target_free, pts, 0),
                          "expires_earlier": np.where(earlier, pts, 0), "expires_later": np.where(later, pts, 0)})
    per = frame.groupby("legacy_id", sort=True).sum().reset_index()
    moved = ((per["legacy_available_at_import"] != per["target_shows_at_import"]) | (per["expires_earlier"] > 0)
             | (per["expires_later"] > 0))
    return per[moved].reset_index(drop=True)[list(MEMBER_COLUMNS)]
