"""What members are owed, seen two ways: members per balance band, and points per month of expiry
(or of unlock, for pending lots).

Stage 03 shows these as it computes its lots (member slice by member slice: :func:`month_totals`
parts added up by :func:`months`); stage 05 shows them again from the committed ``lots`` and
``lot_balances`` tables. Both read them here, so the two pages cannot disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from loyalty_toolkit.model import OPEN, PENDING
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import UNITS_PER_POINT, units_to_decimal

# (label, lowest whole balance in the band); a balance below zero is "negative".


BANDS: tuple[tuple[str, int], ...] = (("0", 0), ("1-99", 1), ("100-499", 100), ("500-999", 500),
                                      ("1,000-4,999", 1000), ("5,000+", 5000))


NEVER = "never"
_NAT = np.iinfo(np.int64).min  # the engine's "no time"


def _dec(units) -> np.ndarray:
    return units_to_decimal(np.asarray(units, dtype=np.int64))


def _member_totals(balances: pd.DataFrame, all_lots: pd.DataFrame) -> pd.Series:
    """Units owed per member: the ledger balance plus the member's opening lots."""
    ledger = pd.Series(balances["balance_units"].to_numpy(np.int64), index=text_column(balances, "user_id"))
    opening = all_lots[text_column(all_lots, "source") == "opening"]
    extra = pd.Series(opening["remaining_units"].to_numpy(np.int64),
                      index=text_column(opening, "user_id")).groupby(level=0).sum()
    return ledger.add(extra, fill_value=0).astype(np.int64)


def balance_bands(balances: pd.DataFrame, all_lots: pd.DataFrame) -> pd.DataFrame:
    """Members per band of the balance they are owed at the cutover (for ``charts.bar``)."""
    return bands(_member_totals(balances, all_lots).to_numpy(np.int64))


def bands(owed: np.ndarray) -> pd.DataFrame:
    """Members per band of ``owed`` (int64 micro-points, one per member, any order)."""
    owed = np.asarray(owed, dtype=np.int64)
    whole = owed // UNITS_PER_POINT
    rows = [("negative", int((owed < 0).sum()), _dec([owed[owed < 0].sum()])[0])]
    for i, (label, low) in enumerate(BANDS):
        high = BANDS[i + 1][1] if i + 1 < len(BANDS) else None
        sel = (owed >= 0) & (whole >= low) & ((whole < high) if high is not None else True)
        rows.append((label, int(sel.sum()), _dec([owed[sel].sum()])[0]))
    return pd.DataFrame(rows, columns=["balance", "members", "points"]).astype({"points": object})


def _month(lots: pd.DataFrame, column: str, tz: str) -> np.ndarray:
    """The month ("YYYY-MM" in ``tz``, or "never") of each lot's ``column``: from its int64
    microsecond twin when the frame has one (the engine's), else from the ISO text (the stored
    table). Each distinct instant is converted once: lots share a few thousand expiry dates."""
    twin = column.replace("_utc", "_us")
    if twin in lots.columns:
        values = lots[twin].to_numpy(np.int64)
        uniq, codes = np.unique(values, return_inverse=True)
        real = uniq != _NAT
        stamps = pd.to_datetime(uniq[real], unit="us", utc=True)
    else:
        codes, uniq = pd.factorize(text_column(lots, column))
        names = month_names(np.asarray(uniq, dtype=object), tz)
        return names[codes] if len(codes) else np.zeros(0, dtype=object)
    names = np.full(len(uniq), NEVER, dtype=object)
    if real.any():
        local = pd.Series(stamps).dt.tz_convert(tz)
        names[real] = local.dt.strftime("%Y-%m").to_numpy(dtype=object)
    return names[codes] if len(codes) else np.zeros(0, dtype=object)


def month_names(instants: np.ndarray, tz: str) -> np.ndarray:
    """The month ("YYYY-MM" in ``tz``, or "never" for "") of each ISO UTC text instant."""
    instants = np.asarray(instants, dtype=object)
    real = instants != ""
    names = np.full(len(instants), NEVER, dtype=object)
    if real.any():
        stamps = pd.to_datetime(pd.Series(instants[real], dtype=object), format="ISO8601", utc=True)
        names[real] = stamps.dt.tz_convert(tz).dt.strftime("%Y-%m").to_numpy(dtype=object)
    return names


def month_starts(first: str, last: str, tz: str) -> tuple[list[str], list[str]]:
    """The months ("YYYY-MM" in ``tz``) from the one holding ISO UTC instant ``first`` to the one
    holding ``last``, each with the first UTC instant that falls in it, as ISO UTC text
    (``2026-03-31T22:00:00+00:00``): an instant is in month i when ``starts[i] <= it < starts[i + 1]``.
    A midnight that does not exist in ``tz`` (a clock moved forward) starts its month at the
    instant the clock jumped to; a midnight that happens twice, at the first of the two."""
    lo = pd.Timestamp(first).tz_convert(tz)
    hi = pd.Timestamp(last).tz_convert(tz)
    names, starts = [], []
    year, month = lo.year, lo.month
    while (year, month) <= (hi.year, hi.month):
        start = pd.Timestamp(year=year, month=month, day=1).tz_localize(tz, ambiguous=True,
                                                                       nonexistent="shift_forward")
        names.append(f"{year:04d}-{month:02d}")
        starts.append(start.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S") + "+00:00")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return starts, names


def month_totals(lots: pd.DataFrame, column: str, tz: str) -> pd.DataFrame:
    """Lots, members and units (int64 micro-points) per month of ``column`` (ISO UTC text, "" =
    never) in ``tz``: one member slice's part of a calendar; :func:`months` adds the parts up
    (members add up too, a member being in one slice only)."""
    units = lots["remaining_units"].to_numpy(np.int64)
    f = pd.DataFrame({"month": _month(lots, column, tz), "user_id": text_column(lots, "user_id"), "units": units,
                      # the opening balances' part: they all expire together and are charted apart
                      "opening_units": np.where(text_column(lots, "source") == "opening", units, 0)})
    return f.groupby("month", sort=True).agg(lots=("units", "size"), members=("user_id", "nunique"),
                                             units=("units", "sum"), opening_units=("opening_units", "sum")
                                             ).reset_index()


def months(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Month totals added up: months in order, "never" last, points as Decimal; ``opening_points``
    is the part of ``points`` that opening balances hold."""
    frames = [p for p in parts if len(p)]
    if not frames:
        return pd.DataFrame({"month": [], "lots": [], "members": [], "points": [], "opening_points": []})
    whole = pd.concat(frames, ignore_index=True)
    if "opening_units" not in whole.columns:
        whole["opening_units"] = 0
    g = whole.groupby("month", sort=True)[["lots", "members", "units", "opening_units"]].sum()
    g = g.reset_index()
    g["points"] = pd.Series(_dec(g["units"]), dtype=object)
    g["opening_points"] = pd.Series(_dec(g["opening_units"]), dtype=object)
    g = g.drop(columns=["units", "opening_units"])
    g["_never"] = g["month"] == NEVER
    return g.sort_values(["_never", "month"], kind="stable").drop(columns=["_never"]).reset_index(drop=True)


def live(all_lots: pd.DataFrame) -> pd.DataFrame:
    """Open and pending lots with points left: what the members are owed."""
    status = text_column(all_lots, "status")
    return all_lots[np.isin(status, (OPEN, PENDING)) & (all_lots["remaining_units"].to_numpy(np.int64) > 0)]


def expiry_calendar(all_lots: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Open and pending points by the month they expire (in the ledger's timezone); "never" last."""
    return months([month_totals(live(all_lots), "expires_at_utc", tz)])


def pending(all_lots: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Pending points (effective start after the cutover) by the month they unlock."""
    lots = live(all_lots)
    return months([month_totals(lots[text_column(lots, "status") == PENDING], "unlock_at_utc", tz)])
