"""Ledger timestamps: center-local text to UTC microseconds, and back to ISO text, per distinct value.

Timestamps are center-local (seed 004: "already in the center time zone"). A row is converted to
UTC with its own center's "minutes to add" when given, else with the source's IANA timezone,
taking the earlier reading (``fold=0``) of an ambiguous local time and the pre-transition offset
for a nonexistent one, exactly as ``zoneinfo`` does. A value carrying its own offset is an
instant already. Every conversion runs once per distinct text: ledgers repeat their dates.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from loyalty_toolkit.sources.csvfile import categories_dtype

# An explicit UTC offset (or Z) after a time of day: such a value is an instant already.
_OFFSET_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
# The same, at the end of any line of a text: finds whether any of many joined values has an offset.
_OFFSET_ANY = re.compile(_OFFSET_RE.pattern, re.IGNORECASE | re.MULTILINE)
# A negative offset right after a time: starts with a literal, so the search skips along quickly.
_MINUS_ANY = re.compile(r":\d{2}(?:\.\d+)?\s*-\d{2}(?::?\d{2})?$", re.MULTILINE)
_NAT = np.iinfo(np.int64).min


class _Dates:
    """Distinct date texts parsed once: naive local time or an instant of their own, per value.

    The source timezone is applied once per distinct local value, and only to values some row
    needs it for (rows with a center's minutes use those instead).
    """

    def __init__(self, values: np.ndarray, date_format: str | None, tz: str) -> None:
        self.tz = tz
        k = len(values)
        self.local = np.full(k, _NAT, dtype=np.int64)    # naive local wall time
        self.instant = np.full(k, _NAT, dtype=np.int64)  # values that carried their own offset
        uniq = pd.Series(values, dtype=object)
        nonempty = np.fromiter(map(bool, values), dtype=bool, count=k)
        if date_format is None:
            has_offset = nonempty & _has_offset(values)
            naive = nonempty & ~has_offset
            if naive.any():
                self.local[naive] = _as_us(pd.to_datetime(uniq[naive], format="ISO8601", errors="coerce"))
            if has_offset.any():
                parsed = pd.to_datetime(uniq[has_offset], format="ISO8601", errors="coerce", utc=True)
                self.instant[has_offset] = _as_us(parsed.dt.tz_localize(None))
        elif nonempty.any():
            parsed = pd.to_datetime(uniq[nonempty], format=date_format, errors="coerce")
            if isinstance(parsed.dtype, pd.DatetimeTZDtype):
                self.instant[nonempty] = _as_us(parsed.dt.tz_convert("UTC").dt.tz_localize(None))
            else:
                self.local[nonempty] = _as_us(parsed)
        self.bad = nonempty & (self.local == _NAT) & (self.instant == _NAT)
        self.zoned = np.full(k, _NAT, dtype=np.int64)
        self.zoned_done = np.zeros(k, dtype=bool)

    def utc_us(self, codes: np.ndarray, has_minutes: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """UTC microseconds per row (NaT where empty or bad)."""
        need = np.zeros(len(self.local), dtype=bool)
        need[codes[~has_minutes]] = True
        need &= ~self.zoned_done & (self.local != _NAT)
        if need.any():
            self.zoned[need] = _localize(self.local[need], self.tz)
        self.zoned_done |= need
        row_local = self.local[codes]
        out = np.where(has_minutes & (row_local != _NAT), row_local - shift, self.zoned[codes])
        del row_local
        instant = self.instant[codes]
        return np.where(instant != _NAT, instant, out)


def _has_offset(values: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Per value: ends with an explicit offset (``_OFFSET_RE``). Values are searched joined, a chunk
    at a time, and one by one only in a chunk where the joined search finds something."""
    out = np.zeros(len(values), dtype=bool)
    for lo in range(0, len(values), chunk):
        part = values[lo:lo + chunk]
        text = "\n".join(part)
        # every offset has a "+", a "Z" or a "-" right after the time: memchr-fast tests first
        if ("+" in text or "Z" in text or "z" in text or _MINUS_ANY.search(text)) and _OFFSET_ANY.search(text):
            out[lo:lo + chunk] = [bool(_OFFSET_RE.search(s)) for s in part]
    return out


def _iso_categoricals(columns: list[np.ndarray]) -> list[pd.Categorical]:
    """UTC microsecond columns (NaT = none) as Categoricals of ISO strings sharing one set of
    categories, in time order ("" first): each distinct instant is formatted once."""
    instants = np.unique(np.concatenate(columns)) if columns else np.zeros(0, dtype=np.int64)
    if not len(instants) or instants[0] != _NAT:
        instants = np.concatenate([np.asarray([_NAT], dtype=np.int64), instants])
    dtype = categories_dtype(_iso_text(instants))
    return [pd.Categorical.from_codes(np.searchsorted(instants, c).astype(np.int32), dtype=dtype, validate=False)
            for c in columns]


def _as_us(values: pd.Series) -> np.ndarray:
    """Naive datetimes as int64 microseconds, NaT as int64 min."""
    return values.astype("datetime64[us]").to_numpy().view(np.int64)


def _localize(local_us: np.ndarray, tz: str) -> np.ndarray:
    """Naive local microseconds -> UTC microseconds in zone ``tz``, resolving like zoneinfo (fold=0)."""
    out = np.full(len(local_us), _NAT, dtype=np.int64)
    valid = local_us != _NAT
    if not valid.any():
        return out
    naive = pd.DatetimeIndex(local_us[valid].view("datetime64[us]"))
    aware = naive.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    res = aware.tz_convert("UTC").tz_localize(None).as_unit("us").asi8.copy()
    # Gaps and folds (a few rows a year) get zoneinfo's own answer, which is the documented rule.
    zone = ZoneInfo(tz)
    for j in np.flatnonzero(res == _NAT):
        local = naive[j].to_pydatetime().replace(tzinfo=zone, fold=0)
        utc = local.astimezone(dt_timezone.utc).replace(tzinfo=None)
        res[j] = _py_us(utc)
    out[valid] = res
    return out


def _py_us(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_utc_strings(utc_us: np.ndarray) -> np.ndarray:
    """UTC microseconds (int64 min = none) as ``2026-03-29T01:30:00+00:00``, ``""`` for none.

    Each distinct instant is formatted once and the rows share the string.
    """
    codes, uniques = pd.factorize(np.asarray(utc_us, dtype=np.int64))
    return _iso_text(uniques)[codes] if len(codes) else np.zeros(0, dtype=object)


def _iso_text(utc_us: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """One ISO string per value, formatted a chunk at a time (numpy's fixed-width text takes
    four bytes a character)."""
    text = np.full(len(utc_us), "", dtype=object)
    for lo in range(0, len(utc_us), chunk):
        part, out = utc_us[lo:lo + chunk], text[lo:lo + chunk]
        real = part != _NAT
        whole = real & (part % 1_000_000 == 0)
        # fractions of a second are written only where there are some, as datetime.isoformat does
        for sel, unit in ((whole, "s"), (real & ~whole, "us")):
            if sel.any():
                stamps = part[sel].view("datetime64[us]")
                out[sel] = np.char.add(np.datetime_as_string(stamps, unit=unit), "+00:00").astype(object)
    return text


def utc_us_to_timestamps(utc_us: np.ndarray) -> pd.DatetimeIndex:
    """UTC microseconds (int64 min = none) as ``datetime64[us, UTC]`` (NaT for none)."""
    return pd.DatetimeIndex(np.asarray(utc_us, dtype=np.int64).view("datetime64[us]")).tz_localize("UTC")
