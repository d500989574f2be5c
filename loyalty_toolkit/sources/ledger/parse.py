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

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.config import LEDGER_COLUMNS
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.normalize import parse_decimal
from loyalty_toolkit.sources.csvfile import categories_dtype
from loyalty_toolkit.sources.ledger.read import DATE_FIELDS, STAGE
from loyalty_toolkit.sources.ledger.times import _Dates, _iso_categoricals, utc_us_to_timestamps

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
CONTROL_CHARACTER = "CONTROL_CHARACTER"  # user id or guestpointsid: the transfer files cannot carry it
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
# The same instants as int64 UTC microseconds (int64 min = none): what the lot engine reads.
ENGINE_TIMES: tuple[str, ...] = ("action_at_us", "effective_start_us", "effective_end_us")
# What stage 03's lot engine, reconciliation and roll-forward read of the entries.
ENGINE_COLUMNS: tuple[str, ...] = ("line", "user_id", "kind", "guestpointsid", "points_units", *ENGINE_TIMES,
                                   "program", "center", "accrual_center", "payment_center")
# The source fields parse_ledger reads to build ENGINE_COLUMNS (read_ledger's ``fields``).
ENGINE_FIELDS: tuple[str, ...] = ("user_id", "record_type", "guestpointsid", "action_date", "points",
                                  "effective_start", "effective_end", "program", "accrual_center",
                                  "payment_center", "accrual_center_minutes", "payment_center_minutes")

# -- parsing -----------------------------------------------------------------------------------


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


@dataclass
class _Text:
    """A text column as distinct ``values`` (unique str) and a code per row: ``values[codes]``.

    ``key`` names the set of values, so columns sharing categories share work done per value.
    """

    codes: np.ndarray
    values: np.ndarray
    key: object
    _dtype: pd.CategoricalDtype | None = None

    def rows(self, rows: np.ndarray) -> np.ndarray:
        return self.values[self.codes[rows]]

    def per_row(self, per_value: np.ndarray) -> np.ndarray:
        return per_value[self.codes]

    @property
    def dtype(self) -> pd.CategoricalDtype:
        if self._dtype is None:
            self._dtype = categories_dtype(self.values)
        return self._dtype

    def categorical(self, keep: np.ndarray | None) -> pd.Categorical:
        codes = self.codes if keep is None else self.codes[keep]
        return pd.Categorical.from_codes(codes, dtype=self.dtype, validate=False)


def _column_text(frame: pd.DataFrame, name: str, n: int) -> _Text:
    """Column ``name`` as a _Text; missing column, missing cells and non-text cells are ""."""
    if name not in frame.columns:
        return _Text(np.zeros(n, dtype=np.int8), np.asarray([""], dtype=object), ("missing", name))
    column = frame[name]
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories
        codes = column.cat.codes.to_numpy()
        values = categories.to_numpy(dtype=object)
        text = _Text(codes, values, ("categories", id(categories)), column.dtype)
        text._categories = categories  # keeps the key's object alive while the text is in use
    else:
        codes, values = pd.factorize(column.to_numpy(dtype=object))
        text = _Text(codes, np.asarray(values, dtype=object), ("column", name))
    return _clean(text)


def _clean(text: _Text) -> _Text:
    """Missing (code -1) and non-str values become ""; values stay distinct."""
    values, codes = text.values, text.codes
    all_str = pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty")
    missing = len(codes) > 0 and codes.min() < 0
    if all_str and not missing:
        return text
    values = np.asarray([v if isinstance(v, str) else "" for v in values] + [""], dtype=object)
    codes = np.where(codes < 0, len(values) - 1, codes)
    merged, values = pd.factorize(values)
    return _Text(merged[codes].astype(np.int32), np.asarray(values, dtype=object), ("clean", text.key))


def _strip_text(text: _Text, memo: dict) -> _Text:
    """The column without surrounding blanks, which no field means anything by.

    Stripped once per distinct value; unchanged values are the same objects (``str.strip``
    returns its argument when there is nothing to strip), so an already clean column costs no memory.
    """
    if text.key not in memo:
        stripped = np.fromiter(map(str.strip, text.values), dtype=object, count=len(text.values))
        if any(map(operator.is_not, stripped, text.values)):
            merged, values = pd.factorize(stripped)
            memo[text.key] = (merged.astype(np.int32), np.asarray(values, dtype=object), ("stripped", text.key))
        else:
            memo[text.key] = None
    found = memo[text.key]
    if found is None:
        return text
    merged, values, key = found
    return _Text(merged[text.codes], values, key)


@dataclass
class _Check:
    code: str
    column: str
    message: str | Callable[[np.ndarray], np.ndarray]
    cells: _Text | None


def parse_ledger(
    frame: pd.DataFrame,
    *,
    source_file: str,
    timezone: str,
    date_format: str | None = None,
    columns: Mapping[str, str] | None = None,
    entry_columns: Sequence[str] | None = None,
    check_repeats: bool = True,
) -> LedgerParse:
    """Check and type every ledger row of ``frame`` (canonical text columns + ``_line``).

    Text columns may be ``str``/object or ``Categorical`` (as :func:`read_ledger` gives them); the
    result is the same. Every conversion runs once per distinct text (columns sharing categories
    share it), so a categorical frame costs per distinct value, not per row.

    ``date_format`` is a strftime pattern for all three dates; ``None`` accepts ISO 8601 (date only,
    date and time, optionally with an explicit offset, which then wins over minutes and timezone).
    ``columns`` maps canonical fields to source headers, used to name the column in rejects.

    Output ``entries`` columns (:data:`ENTRY_COLUMNS`): ``points`` holds ``Decimal`` signed as in
    the source, ``points_units`` the same in int64 micro-points; ``*_utc`` are ISO strings
    (``""`` = no start / no expiry) and ``*_ts`` the same instants as ``datetime64[us, UTC]``;
    ``center`` is the accrual center for accruals and the payment center for redemptions;
    ``minutes_to_add`` is the offset applied, or <NA> where the source timezone was used.
    Every text column of ``entries`` is a ``Categorical`` (trimmed text, ``*_raw`` as read); its
    categories may include values of rejected rows, and the ``*_utc`` categories are in time order.

    ``entry_columns`` picks the columns to build (any of :data:`ENTRY_COLUMNS` and the int64 UTC
    microsecond columns :data:`ENGINE_TIMES`); the default is ENTRY_COLUMNS. Stage 03 asks for
    :data:`ENGINE_COLUMNS` only: on ten million rows, raw and ISO text and ``Decimal`` objects per
    row cost gigabytes that the lot engine never reads. Checks and rejects are the same either way.

    ``check_repeats=False`` leaves GUESTPOINTSID_DUPLICATE out: for a caller that parses a file
    block by block and checks repeats across blocks (``ledger.stream``).
    """
    headers = {**LEDGER_COLUMNS, **(columns or {})}
    n = len(frame)
    lines = frame["_line"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    raw_texts: dict[str, _Text] = {}
    strip_memo: dict = {}

    def raw(name: str) -> _Text:
        """The cells as read."""
        if name not in raw_texts:
            raw_texts[name] = _column_text(frame, name, n)
        return raw_texts[name]

    def col(name: str) -> _Text:
        """The cells without surrounding blanks; missing -> ""."""
        return _strip_text(raw(name), strip_memo)

    reason = np.zeros(n, dtype=np.int16)  # 0 = accepted, k = checks[k - 1]
    checks: list[_Check] = []

    def reject(mask: np.ndarray, code: str, field: str, msg: str | Callable[[np.ndarray], np.ndarray],
               cells: _Text | None) -> None:
        """Give ``code`` to the rows of ``mask`` that have no reason yet (the first check wins)."""
        mask = mask & (reason == 0)
        if not mask.any():
            return
        checks.append(_Check(code, headers.get(field, field), msg, cells))
        reason[mask] = len(checks)

    user_id = col("user_id")
    for field in ("user_id", "guestpointsid"):  # both end up in the transfer files (XML, JSON)
        text = col(field)
        bad = np.fromiter((bool(_NOT_XML.search(v)) for v in text.values), dtype=bool, count=len(text.values))
        reject(text.per_row(bad), CONTROL_CHARACTER, field,
               f"{headers.get(field, field)} holds a control character (a NUL byte?) the transfer files cannot carry",
               None)
    reject(user_id.per_row(user_id.values == ""), USER_ID_MISSING, "user_id", "user id is empty", None)

    # few distinct record types: lower-case those, not every row
    record_type = col("record_type")
    lowered = np.asarray([t.lower() for t in record_type.values], dtype=object)
    is_accrual = record_type.per_row(lowered == ACCRUAL)
    is_redemption = record_type.per_row(lowered == REDEMPTION)
    del lowered
    reject(~(is_accrual | is_redemption), RECORD_TYPE_UNKNOWN, "record_type",
           "record type must be Accrual or Redemption", raw("record_type"))

    points = col("points")
    p_dec, p_units, p_code, p_msg = _parse_points(points.values)
    units = points.per_row(p_units)
    for i, code in enumerate((POINTS_INVALID, POINTS_PRECISION), start=1):
        reject(points.per_row(p_code == i), code, "points", lambda rows: p_msg[points.codes[rows]], raw("points"))
    reject(is_accrual & (units <= 0), POINTS_SIGN, "points", "an accrual must be positive", raw("points"))
    reject(is_redemption & (units >= 0), POINTS_SIGN, "points", "a redemption must be negative", raw("points"))

    acc_min, pay_min = col("accrual_center_minutes"), col("payment_center_minutes")
    a_num, a_bad = _minutes(acc_min.values)
    p_num, p_bad = _minutes(pay_min.values)
    minutes = np.where(is_accrual, acc_min.per_row(a_num), pay_min.per_row(p_num))
    m_bad = np.where(is_accrual, acc_min.per_row(a_bad), pay_min.per_row(p_bad))
    for field, rows in (("accrual_center_minutes", is_accrual), ("payment_center_minutes", ~is_accrual)):
        reject(m_bad & rows, DATE_INVALID, field,
               f"minutes to add must be a whole number between -{MAX_MINUTES_TO_ADD} and {MAX_MINUTES_TO_ADD}",
               raw(field))
    del m_bad, a_bad, p_bad

    has_minutes = ~np.isnan(minutes)
    shift = np.where(has_minutes, minutes, 0).astype(np.int64) * 60_000_000
    dates: dict[object, _Dates] = {}
    utc: dict[str, np.ndarray] = {}
    for field, required in (("action_date", True), ("effective_start", False), ("effective_end", False)):
        text = col(field)
        if text.key not in dates:
            dates[text.key] = _Dates(text.values, date_format, timezone)
        parsed = dates[text.key]
        utc[field] = parsed.utc_us(text.codes, has_minutes, shift)
        if required:
            reject(text.per_row(text.values == ""), DATE_INVALID, field, f"{headers[field]} is empty", raw(field))
        reject(text.per_row(parsed.bad), DATE_INVALID, field,
               f"not a date ({'ISO 8601' if date_format is None else date_format})", raw(field))
    del dates, shift, has_minutes

    # An accrual id names one lot. A repeat keeps the first (what a redemption's link most likely
    # meant) and itemises the others; "" is no id at all, so it never repeats.
    gp = col("guestpointsid")
    candidates = np.flatnonzero((reason == 0) & is_accrual & gp.per_row(gp.values != ""))
    cand_codes = gp.codes[candidates]
    repeat = pd.Series(cand_codes).duplicated(keep="first").to_numpy()
    if check_repeats and repeat.any():
        first_line = np.zeros(len(gp.values), dtype=np.int64)
        first_line[cand_codes[~repeat]] = lines[candidates[~repeat]]
        dup = np.zeros(n, dtype=bool)
        dup[candidates[repeat]] = True

        def dup_message(rows: np.ndarray) -> np.ndarray:
            return np.asarray([f"accrual id already used on line {x}" for x in first_line[gp.codes[rows]].tolist()],
                              dtype=object)

        reject(dup, GUESTPOINTSID_DUPLICATE, "guestpointsid", dup_message, raw("guestpointsid"))
    del candidates, cand_codes, repeat

    ok = reason == 0
    rejects = _rejects(reason, checks, lines, user_id, source_file)
    del reason
    keep = None if ok.all() else ok  # all accepted: the entries share the frame's codes

    def kept(values: np.ndarray) -> np.ndarray:
        return values if keep is None else values[keep]

    acc_ok = kept(is_accrual)
    order = list(dict.fromkeys(ENTRY_COLUMNS if entry_columns is None else entry_columns))
    unknown = set(order) - {*ENTRY_COLUMNS, *ENGINE_TIMES}
    if unknown:
        raise ValueError(f"unknown entry columns {sorted(unknown)}")
    want = set(order)
    data: dict[str, object] = {
        "line": kept(lines),
        "user_id": user_id.categorical(keep),
        "kind": pd.Categorical.from_codes((~acc_ok).astype(np.int8), categories=[ACCRUAL, REDEMPTION]),
        "guestpointsid": gp.categorical(keep),
        "points_units": kept(units),
    }
    if "points" in want:
        data["points"] = pd.Series(kept(points.per_row(p_dec)), dtype=object, copy=False)
    del units
    instants = {field: kept(utc.pop(field)) for field in DATE_FIELDS}
    prefixes = dict(zip(DATE_FIELDS, ("action_at", "effective_start", "effective_end")))
    if any(f"{prefix}_utc" in want for prefix in prefixes.values()):
        for field, iso_column in zip(DATE_FIELDS, _iso_categoricals(list(instants.values()))):
            data[f"{prefixes[field]}_utc"] = iso_column
    for field, prefix in prefixes.items():
        if f"{prefix}_raw" in want:
            data[f"{prefix}_raw"] = raw(field).categorical(keep)
        if f"{prefix}_ts" in want:
            data[f"{prefix}_ts"] = utc_us_to_timestamps(instants[field])
        data[f"{prefix}_us"] = instants.pop(field)
    accrual_center, payment_center = col("accrual_center"), col("payment_center")
    data.update({
        "program": col("program").categorical(keep),
        "center": _either(acc_ok, accrual_center, payment_center, keep),
        "accrual_center": accrual_center.categorical(keep),
        "payment_center": payment_center.categorical(keep),
    })
    if "minutes_to_add" in want:
        data["minutes_to_add"] = pd.array(kept(minutes), dtype="Int64")
    for name in ("action_name", "previous_tier", "current_tier", "accrual_tier", "invoice_id", "invoice_no"):
        if name in want:
            data[name] = col(name).categorical(keep)
    entries = pd.DataFrame({c: data[c] for c in order}, columns=order, copy=False)
    return LedgerParse(entries=entries, rejects=rejects, rows_read=n, source_file=source_file, timezone=timezone)


def _rejects(reason: np.ndarray, checks: list[_Check], lines: np.ndarray, user_id: _Text,
             source_file: str) -> pd.DataFrame:
    rows = np.flatnonzero(reason)
    which = reason[rows]
    column = np.full(len(rows), "", dtype=object)
    code = np.full(len(rows), "", dtype=object)
    message = np.full(len(rows), "", dtype=object)
    value = np.full(len(rows), "", dtype=object)
    for k, check in enumerate(checks, start=1):
        sel = which == k
        column[sel] = check.column
        code[sel] = check.code
        message[sel] = check.message if isinstance(check.message, str) else check.message(rows[sel])
        if check.cells is not None:
            value[sel] = check.cells.rows(rows[sel])
    rejects = pd.DataFrame({
        "stage": STAGE,
        "file": source_file,
        "line": lines[rows],
        "record_key": user_id.rows(rows),
        "column": column,
        "reason_code": code,
        "message": message,
        "value": value,
    }, columns=list(REJECT_COLUMNS))
    rejects["line"] = rejects["line"].astype(np.int64)
    return rejects


def _either(first: np.ndarray, a: _Text, b: _Text, keep: np.ndarray | None) -> pd.Categorical:
    """``a`` where ``first`` (already kept), else ``b``, as one Categorical."""
    if a.key == b.key:
        return pd.Categorical.from_codes(np.where(first, a.categorical(keep).codes, b.categorical(keep).codes),
                                         dtype=a.dtype, validate=False)
    merged, values = pd.factorize(np.concatenate([a.values, b.values]))
    a_codes = merged[:len(a.values)].astype(np.int32)[a.codes if keep is None else a.codes[keep]]
    b_codes = merged[len(a.values):].astype(np.int32)[b.codes if keep is None else b.codes[keep]]
    return pd.Categorical.from_codes(np.where(first, a_codes, b_codes), dtype=categories_dtype(values),
                                     validate=False)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Commas only as thousands separators: 1,500,000 or 1,500.25 (a single ,500 is refused by parse_decimal).
_COMMA_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _parse_points(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct text: Decimal, int64 micro-points, check (0 ok, 1 POINTS_INVALID, 2 POINTS_PRECISION)
    and message. Ledgers repeat a few thousand values over millions of rows, and the rows then
    share one ``Decimal`` object per value."""
    k = len(values)
    u_dec = np.full(k, None, dtype=object)
    u_units = np.zeros(k, dtype=np.int64)
    u_code = np.zeros(k, dtype=np.int8)
    u_msg = np.full(k, "", dtype=object)
    quantum = Decimal(1).scaleb(-POINTS_SCALE)
    for i, t in enumerate(values):
        if t == "":
            u_code[i], u_msg[i] = 1, "points are empty"
            continue
        if "," in t and not _COMMA_THOUSANDS.fullmatch(t.strip()):
            # Zenoti writes a decimal point; 12,5 is a decimal comma from a re-saved file (docs/transfers.md)
            u_code[i], u_msg[i] = 1, "a decimal comma (write 12.5, not 12,5)"
            continue
        try:
            d = parse_decimal(t)
        except ValueError:
            u_code[i], u_msg[i] = 1, "not a number"
            continue
        if not d.is_finite():
            u_code[i], u_msg[i] = 1, "not a finite number"
        elif abs(d) > MAX_POINTS_PER_ROW:
            u_code[i], u_msg[i] = 1, f"beyond {MAX_POINTS_PER_ROW:,} points"
        elif d != d.quantize(quantum):  # float noise included: see the module docstring
            u_code[i], u_msg[i] = 2, f"more than {POINTS_SCALE} decimals"
        else:
            u_dec[i] = d
            u_units[i] = int(d.scaleb(POINTS_SCALE))
    return u_dec, u_units, u_code, u_msg


def _minutes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct text: the center offset in minutes (NaN = none given) and whether it is unusable."""
    num = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float, copy=True)
    empty = np.asarray([u == "" for u in values], dtype=bool)
    bad = ~empty & (np.isnan(num) | (num != np.round(num)) | (np.abs(num) > MAX_MINUTES_TO_ADD))
    num[empty | bad] = np.nan
    return num, bad



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


def plain_decimal(d: Decimal) -> Decimal:
    """The same value without trailing zeros or exponent: ``12.50`` -> ``12.5``, ``0E-6`` -> ``0``."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()
