"""Parse the Zenoti-style points-liability ledger (seed 004) into typed, checked entries.

One row per accrual or redemption action. Points go from the source text straight to ``Decimal``
(``normalize.parse_decimal``), never through float, and are mirrored as exact int64 micro-points
(``points_units`` = points x 10^6) for the lot engine; a value with more than 6 decimals cannot be
mirrored exactly and is rejected with ``POINTS_PRECISION`` (see :data:`POINTS_SCALE`). Zenoti
stores points as FLOAT, so float noise such as ``268.28000000000003`` lands there too: rounding it
would change the ledger silently, so the row is itemised for a person to decide.

Timestamps are center-local (seed 004: "already in the center time zone"). A row is converted to
UTC with its own center's "minutes to add" (accrual center for accruals, payment center for
redemptions; UTC = local - minutes) when given, else with the source's IANA timezone, taking the
earlier reading (``fold=0``) of an ambiguous local time and the pre-transition offset for a
nonexistent one, exactly as ``zoneinfo`` does. A date without a time is local midnight (so a
GMT+1 date is 23:00 UTC the day before). A value carrying its own offset (``...+02:00``, ``Z``)
is an instant already and is taken as such. The raw text and the minutes applied are kept.

An accrual's guestpointsid names one lot: when an id repeats, the first accrual keeps it and the
later ones are rejected (``GUESTPOINTSID_DUPLICATE``), since a redemption's link cannot say which
of them it meant.

Every input row ends up in exactly one of ``entries`` and ``rejects``:
``rows_read == len(entries) + len(rejects)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from loyalty_toolkit.config import LEDGER_COLUMNS, LedgerSource
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.normalize import parse_decimal
from loyalty_toolkit.sources.csvfile import read_table, to_frame

STAGE = "transfers"

# Points are carried inside as integers of 10^-POINTS_SCALE points. Open Loyalty keeps 6 decimals
# (ledger_domain.md section 5), so 6 loses nothing the target could store.
POINTS_SCALE = 6
UNITS_PER_POINT = 10**POINTS_SCALE
# A single row beyond this is refused: it keeps per-member and total sums far inside int64.
MAX_POINTS_PER_ROW = Decimal(10) ** 12
# Offsets in use worldwide run from UTC-12:00 to UTC+14:00.
MAX_MINUTES_TO_ADD = 14 * 60

ACCRUAL = "accrual"
REDEMPTION = "redemption"

# Reason codes, checked in this order; a row gets the first that applies.
USER_ID_MISSING = "USER_ID_MISSING"
RECORD_TYPE_UNKNOWN = "RECORD_TYPE_UNKNOWN"
POINTS_INVALID = "POINTS_INVALID"
POINTS_PRECISION = "POINTS_PRECISION"
POINTS_SIGN = "POINTS_SIGN"
DATE_INVALID = "DATE_INVALID"
GUESTPOINTSID_DUPLICATE = "GUESTPOINTSID_DUPLICATE"

ENTRY_COLUMNS: tuple[str, ...] = (
    "line", "user_id", "kind", "guestpointsid", "points", "points_units",
    "action_at_raw", "action_at_utc", "action_at_ts",
    "effective_start_raw", "effective_start_utc", "effective_start_ts",
    "effective_end_raw", "effective_end_utc", "effective_end_ts",
    "program", "center", "accrual_center", "payment_center", "minutes_to_add",
    "action_name", "previous_tier", "current_tier", "accrual_tier", "invoice_id", "invoice_no",
)

# An explicit UTC offset (or Z) after a time of day: such a value is an instant already.
_OFFSET_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


# Fields without which no row of the file could be accepted: their headers must be in the file.
LEDGER_REQUIRED: tuple[str, ...] = ("user_id", "record_type", "action_date", "points")


def required_headers(src: LedgerSource) -> list[str]:
    """Headers that must be present: the required fields plus every explicitly mapped one."""
    mapping = src.column_map()
    return list(dict.fromkeys([mapping[f] for f in LEDGER_REQUIRED] + [mapping[f] for f in src.columns]))


def read_ledger(src: LedgerSource, *, stage: str = STAGE) -> pd.DataFrame:
    """The ledger export as a canonical frame (keys of src.column_map() + int64 `_line`), ready for parse_ledger.

    Raises InputError (file, line, column) for anything that cannot be read as a table.
    """
    table = read_table(src.path, encoding=src.encoding, delimiter=src.delimiter,
                       required=required_headers(src), stage=stage)
    return to_frame(table, src.column_map())


@dataclass
class LedgerParse:
    """The accepted ``entries`` and the ``rejects`` (REJECT_COLUMNS) of one ledger file."""

    entries: pd.DataFrame
    rejects: pd.DataFrame
    rows_read: int
    source_file: str
    timezone: str

    def reject_counts(self) -> dict[str, int]:
        """Rejected rows per reason code, for the stage report."""
        return {str(k): int(v) for k, v in self.rejects["reason_code"].value_counts().sort_index().items()}


def parse_ledger(
    frame: pd.DataFrame,
    *,
    source_file: str,
    timezone: str,
    date_format: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> LedgerParse:
    """Check and type every ledger row of ``frame`` (canonical str columns + ``_line``).

    ``date_format`` is a strftime pattern for all three dates; ``None`` accepts ISO 8601 (date only,
    date and time, optionally with an explicit offset, which then wins over minutes and timezone).
    ``columns`` maps canonical fields to source headers, used to name the column in rejects.

    Output ``entries`` columns (:data:`ENTRY_COLUMNS`): ``points`` holds ``Decimal`` signed as in
    the source, ``points_units`` the same in int64 micro-points; ``*_utc`` are ISO strings
    (``""`` = no start / no expiry) and ``*_ts`` the same instants as ``datetime64[us, UTC]``;
    ``center`` is the accrual center for accruals and the payment center for redemptions;
    ``minutes_to_add`` is the offset applied, or <NA> where the source timezone was used.
    """
    headers = {**LEDGER_COLUMNS, **(columns or {})}
    n = len(frame)
    lines = frame["_line"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    stripped: dict[str, np.ndarray] = {}

    def raw(name: str) -> np.ndarray:
        """The cells as read, as an object array (a view of the frame's column where pandas allows)."""
        if name not in frame.columns:
            return np.full(n, "", dtype=object)
        return frame[name].to_numpy(dtype=object)

    def col(name: str) -> np.ndarray:
        """The cells without surrounding blanks, which no field means anything by; missing -> ""."""
        if name not in stripped:
            stripped[name] = _strip(raw(name)) if n else np.zeros(0, dtype=object)
        return stripped[name]

    reason = np.full(n, None, dtype=object)
    column = np.full(n, "", dtype=object)
    message = np.full(n, "", dtype=object)
    value = np.full(n, "", dtype=object)

    def reject(mask: np.ndarray, code: str, field: str, msg: str | np.ndarray, cells: np.ndarray | None) -> None:
        """Give ``code`` to the rows of ``mask`` that have no reason yet (the first check wins)."""
        mask = mask & (reason == None)  # noqa: E711 - elementwise on an object array
        if not mask.any():
            return
        reason[mask] = code
        column[mask] = headers.get(field, field)
        message[mask] = msg if isinstance(msg, str) else msg[mask]
        if cells is not None:
            value[mask] = [v if isinstance(v, str) else "" for v in cells[mask]]

    user_id = col("user_id")
    reject(user_id == "", USER_ID_MISSING, "user_id", "user id is empty", None)

    # few distinct record types: lower-case those, not every row
    codes, types = pd.factorize(col("record_type"))
    lowered = np.asarray([t.lower() for t in types], dtype=object)
    is_accrual = (lowered == ACCRUAL)[codes] if n else np.zeros(0, dtype=bool)
    is_redemption = (lowered == REDEMPTION)[codes] if n else np.zeros(0, dtype=bool)
    del codes, types, lowered
    reject(~(is_accrual | is_redemption), RECORD_TYPE_UNKNOWN, "record_type",
           "record type must be Accrual or Redemption", raw("record_type"))

    decimals, units, p_code, p_msg = _parse_points(col("points"))
    for code in (POINTS_INVALID, POINTS_PRECISION):
        reject(p_code == code, code, "points", p_msg, raw("points"))
    reject(is_accrual & (units <= 0), POINTS_SIGN, "points", "an accrual must be positive", raw("points"))
    reject(is_redemption & (units >= 0), POINTS_SIGN, "points", "a redemption must be negative", raw("points"))
    del p_code, p_msg, stripped["points"]

    minutes, m_bad = _row_minutes(np.where(is_accrual, col("accrual_center_minutes"), col("payment_center_minutes")))
    for field, rows in (("accrual_center_minutes", is_accrual), ("payment_center_minutes", ~is_accrual)):
        reject(m_bad & rows, DATE_INVALID, field,
               f"minutes to add must be a whole number between -{MAX_MINUTES_TO_ADD} and {MAX_MINUTES_TO_ADD}",
               raw(field))
        del stripped[field]

    utc: dict[str, np.ndarray] = {}
    for field, required in (("action_date", True), ("effective_start", False), ("effective_end", False)):
        text = col(field)
        utc[field], bad = _to_utc_us(text, minutes, timezone, date_format)
        if required:
            reject(text == "", DATE_INVALID, field, f"{headers[field]} is empty", raw(field))
        reject(bad, DATE_INVALID, field, f"not a date ({'ISO 8601' if date_format is None else date_format})",
               raw(field))
        del stripped[field]

    # An accrual id names one lot. A repeat keeps the first (what a redemption's link most likely
    # meant) and itemises the others; "" is no id at all, so it never repeats.
    gp = col("guestpointsid")
    candidates = np.flatnonzero((reason == None) & is_accrual & (gp != ""))  # noqa: E711
    repeat = pd.Series(gp[candidates], dtype=object).duplicated(keep="first").to_numpy()
    if repeat.any():
        first_line: dict[str, int] = {}
        for i in candidates[~repeat]:
            first_line[gp[i]] = int(lines[i])
        dup = np.zeros(n, dtype=bool)
        dup[candidates[repeat]] = True
        msgs = np.full(n, "", dtype=object)
        msgs[dup] = [f"accrual id already used on line {first_line[g]}" for g in gp[dup]]
        reject(dup, GUESTPOINTSID_DUPLICATE, "guestpointsid", msgs, raw("guestpointsid"))
    del candidates, repeat

    ok = reason == None  # noqa: E711
    rejects = pd.DataFrame({
        "stage": STAGE,
        "file": source_file,
        "line": lines[~ok],
        "record_key": user_id[~ok],
        "column": column[~ok],
        "reason_code": reason[~ok],
        "message": message[~ok],
        "value": value[~ok],
    }, columns=list(REJECT_COLUMNS))
    rejects["line"] = rejects["line"].astype(np.int64)
    del reason, column, message, value

    def kept(name: str) -> np.ndarray:
        """The accepted rows of a stripped column; the full column is dropped once taken."""
        out = col(name)[ok]
        del stripped[name]
        return out

    accrual_center, payment_center = kept("accrual_center"), kept("payment_center")
    data: dict[str, object] = {
        "line": lines[ok],
        "user_id": kept("user_id"),
        "kind": np.asarray([REDEMPTION, ACCRUAL], dtype=object)[is_accrual[ok].astype(np.int8)],
        "guestpointsid": kept("guestpointsid"),
        "points": decimals[ok],
        "points_units": units[ok],
    }
    for field, prefix in (("action_date", "action_at"), ("effective_start", "effective_start"),
                          ("effective_end", "effective_end")):
        instants = utc.pop(field)[ok]
        data[f"{prefix}_raw"] = _text_or_empty(raw(field)[ok])
        data[f"{prefix}_utc"] = iso_utc_strings(instants)
        data[f"{prefix}_ts"] = utc_us_to_timestamps(instants)
    data.update({
        "program": kept("program"),
        "center": np.where(is_accrual[ok], accrual_center, payment_center),
        "accrual_center": accrual_center,
        "payment_center": payment_center,
        "minutes_to_add": pd.array(minutes[ok], dtype="Int64"),
    })
    for name in ("action_name", "previous_tier", "current_tier", "accrual_tier", "invoice_id", "invoice_no"):
        data[name] = kept(name)
    entries = pd.DataFrame({k: pd.Series(v, dtype=object, copy=False) if _is_text(k, v) else v
                            for k, v in data.items()}, columns=list(ENTRY_COLUMNS), copy=False)
    del data
    # one column at a time, so only one extra column is alive during the conversion
    for name in ENTRY_COLUMNS:
        if name != "points" and entries[name].dtype == object:
            entries[name] = entries[name].astype("str")
    return LedgerParse(entries=entries, rejects=rejects, rows_read=n, source_file=source_file, timezone=timezone)


def _is_text(name: str, values: object) -> bool:
    return name != "points" and isinstance(values, np.ndarray) and values.dtype == object


def _strip(values: np.ndarray) -> np.ndarray:
    """str.strip per cell; a missing cell (NaN/None) becomes ""."""
    return np.frompyfunc(lambda v: v.strip() if isinstance(v, str) else "", 1, 1)(values).astype(object, copy=False)


def _text_or_empty(values: np.ndarray) -> np.ndarray:
    return np.frompyfunc(lambda v: v if isinstance(v, str) else "", 1, 1)(values).astype(object, copy=False)


def _parse_points(text: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decimal, int64 micro-points, reason code and message per row.

    Each distinct text is parsed once: ledgers repeat a few thousand values over millions of rows,
    and the rows then share one ``Decimal`` object per value.
    """
    codes, uniques = pd.factorize(text)
    k = len(uniques)
    u_dec = np.full(k, None, dtype=object)
    u_units = np.zeros(k, dtype=np.int64)
    u_code = np.full(k, None, dtype=object)
    u_msg = np.full(k, "", dtype=object)
    quantum = Decimal(1).scaleb(-POINTS_SCALE)
    for i, t in enumerate(uniques):
        if t == "":
            u_code[i], u_msg[i] = POINTS_INVALID, "points are empty"
            continue
        try:
            d = parse_decimal(t)
        except ValueError:
            u_code[i], u_msg[i] = POINTS_INVALID, "not a number"
            continue
        if not d.is_finite():
            u_code[i], u_msg[i] = POINTS_INVALID, "not a finite number"
        elif abs(d) > MAX_POINTS_PER_ROW:
            u_code[i], u_msg[i] = POINTS_INVALID, f"beyond {MAX_POINTS_PER_ROW:,} points"
        elif d != d.quantize(quantum):  # float noise included: see the module docstring
            u_code[i], u_msg[i] = POINTS_PRECISION, f"more than {POINTS_SCALE} decimals"
        else:
            u_dec[i] = d
            u_units[i] = int(d.scaleb(POINTS_SCALE))
    if len(codes) == 0:
        return (np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=object), np.zeros(0, dtype=object))
    return u_dec[codes], u_units[codes], u_code[codes], u_msg[codes]


def _row_minutes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's own center offset in minutes (NaN = none given) and a mask of unusable values."""
    codes, uniques = pd.factorize(raw)
    num = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(dtype=float, copy=True)
    empty = np.asarray([u == "" for u in uniques], dtype=bool)
    bad = ~empty & (np.isnan(num) | (num != np.round(num)) | (np.abs(num) > MAX_MINUTES_TO_ADD))
    num[empty | bad] = np.nan
    if len(codes) == 0:
        return np.zeros(0, dtype=float), np.zeros(0, dtype=bool)
    return num[codes], bad[codes]


def _to_utc_us(text: np.ndarray, minutes: np.ndarray, tz: str, date_format: str | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """UTC microseconds since the epoch per row (NaT where empty or bad) and the mask of bad values."""
    n = len(text)
    nat = np.iinfo(np.int64).min
    codes, uniques = pd.factorize(text)
    uniq = pd.Series(uniques, dtype=object)
    local_us = np.full(len(uniq), nat, dtype=np.int64)   # naive local wall time
    instant_us = np.full(len(uniq), nat, dtype=np.int64)  # values that carried their own offset
    nonempty = (uniq != "").to_numpy(dtype=bool)
    if date_format is None:
        has_offset = nonempty & uniq.map(lambda s: bool(_OFFSET_RE.search(s))).to_numpy(dtype=bool)
        naive = nonempty & ~has_offset
        if naive.any():
            parsed = pd.to_datetime(uniq[naive], format="ISO8601", errors="coerce")
            local_us[naive] = _as_us(parsed)
        if has_offset.any():
            parsed = pd.to_datetime(uniq[has_offset], format="ISO8601", errors="coerce", utc=True)
            instant_us[has_offset] = _as_us(parsed.dt.tz_localize(None))
    elif nonempty.any():
        parsed = pd.to_datetime(uniq[nonempty], format=date_format, errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            instant_us[nonempty] = _as_us(parsed.dt.tz_convert("UTC").dt.tz_localize(None))
        else:
            local_us[nonempty] = _as_us(parsed)
    bad_u = nonempty & (local_us == nat) & (instant_us == nat)

    # The source timezone is applied once per distinct local value; rows with minutes use those.
    zoned_us = _localize(local_us, tz)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    row_local = local_us[codes]
    has_minutes = ~np.isnan(minutes)
    shift = np.where(has_minutes, minutes, 0).astype(np.int64) * 60_000_000
    out = np.where(has_minutes & (row_local != nat), row_local - shift, zoned_us[codes])
    out = np.where(instant_us[codes] != nat, instant_us[codes], out)
    return out, bad_u[codes]


def _as_us(values: pd.Series) -> np.ndarray:
    """Naive datetimes as int64 microseconds, NaT as int64 min."""
    return values.astype("datetime64[us]").to_numpy().view(np.int64)


def _localize(local_us: np.ndarray, tz: str) -> np.ndarray:
    """Naive local microseconds -> UTC microseconds in zone ``tz``, resolving like zoneinfo (fold=0)."""
    nat = np.iinfo(np.int64).min
    out = np.full(len(local_us), nat, dtype=np.int64)
    valid = local_us != nat
    if not valid.any():
        return out
    naive = pd.DatetimeIndex(local_us[valid].view("datetime64[us]"))
    aware = naive.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    res = aware.tz_convert("UTC").tz_localize(None).as_unit("us").asi8.copy()
    # Gaps and folds (a few rows a year) get zoneinfo's own answer, which is the documented rule.
    zone = ZoneInfo(tz)
    for j in np.flatnonzero(res == nat):
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
    nat = np.iinfo(np.int64).min
    codes, uniques = pd.factorize(utc_us)
    text = np.full(len(uniques), "", dtype=object)
    real = uniques != nat
    whole = real & (uniques % 1_000_000 == 0)
    # fractions of a second are written only where there are some, as datetime.isoformat does
    for sel, unit in ((whole, "s"), (real & ~whole, "us")):
        if sel.any():
            stamps = uniques[sel].view("datetime64[us]")
            text[sel] = np.char.add(np.datetime_as_string(stamps, unit=unit), "+00:00").astype(object)
    return text[codes] if len(codes) else np.zeros(0, dtype=object)


def utc_us_to_timestamps(utc_us: np.ndarray) -> pd.DatetimeIndex:
    """UTC microseconds (int64 min = none) as ``datetime64[us, UTC]`` (NaT for none)."""
    return pd.DatetimeIndex(np.asarray(utc_us, dtype=np.int64).view("datetime64[us]")).tz_localize("UTC")


def units_to_decimal(units: np.ndarray) -> np.ndarray:
    """int64 micro-points -> ``Decimal`` points (object array), exact; distinct values converted once.

    Whole numbers come out without a fraction (``Decimal('21')``), others without trailing zeros.
    """
    codes, uniques = pd.factorize(np.asarray(units, dtype=np.int64))
    out = np.empty(len(uniques), dtype=object)
    for i, u in enumerate(uniques.tolist()):
        q, r = divmod(u, UNITS_PER_POINT)
        out[i] = Decimal(q) if r == 0 else Decimal(u).scaleb(-POINTS_SCALE).normalize()
    return out[codes] if len(codes) else np.zeros(0, dtype=object)
