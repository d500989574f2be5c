"""The row rules of stage 04 (rewards): reason codes, Splio dates, and one check per scope.

Kept apart from :mod:`loyalty_toolkit.stages.rewards.validation` (which sequences rows and files, builds the
frames and the state) so each rule is a small function that returns typed values or raises
:class:`RuleFailure`. The reason-code table, the order of checks and the stock rule are documented
in ``stages/rewards/validation.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache

import pandas as pd

from loyalty_toolkit.csv_cells import is_formula

STAGE = "rewards"
MAX_TEXT = 128  # external_id, name and attribution_id: "Text (max. 128 characters)"
# Splio reads and stamps dates in GMT+1 (seed 001, "Explanation: Dates"); a fixed offset, no DST.
SPLIO_TZ = timezone(timedelta(hours=1), "GMT+1")

# Reason codes. Each is a row of the table in stages/rewards/validation.py; a test keeps the two in step.
MANDATORY_EMPTY = "MANDATORY_EMPTY"
VALUE_TOO_LONG = "VALUE_TOO_LONG"
FLAG_INVALID = "FLAG_INVALID"
MONETARY_TYPE_INVALID = "MONETARY_TYPE_INVALID"
MONETARY_VALUE_INVALID = "MONETARY_VALUE_INVALID"
MONETARY_INCOMPLETE = "MONETARY_INCOMPLETE"
NQP_VALUE_INVALID = "NQP_VALUE_INVALID"
HOLDING_DAYS_INVALID = "HOLDING_DAYS_INVALID"
VALIDITY_COUNT_INVALID = "VALIDITY_COUNT_INVALID"
VALIDITY_TYPE_INVALID = "VALIDITY_TYPE_INVALID"
DATE_INVALID = "DATE_INVALID"
DATE_INCOMPLETE = "DATE_INCOMPLETE"
FORCED_VALIDITY_INCOMPLETE = "FORCED_VALIDITY_INCOMPLETE"
VALIDITY_RANGE_INVALID = "VALIDITY_RANGE_INVALID"
MAX_ATTRIBUTION_COUNT_INVALID = "MAX_ATTRIBUTION_COUNT_INVALID"
STOCK_LIMITED_NOT_POSITIVE = "STOCK_LIMITED_NOT_POSITIVE"
AUTO_GENERATION_MISSING = "AUTO_GENERATION_MISSING"
ITEM_STOCK_ZERO = "ITEM_STOCK_ZERO"
STOCK_MISSING = "STOCK_MISSING"
AUTO_GENERATED_WITH_COUNT = "AUTO_GENERATED_WITH_COUNT"
REWARD_UNKNOWN = "REWARD_UNKNOWN"
CARD_UNKNOWN = "CARD_UNKNOWN"
ATTRIBUTION_ID_AUTO_GENERATED = "ATTRIBUTION_ID_AUTO_GENERATED"
ATTRIBUTION_ID_DUPLICATE = "ATTRIBUTION_ID_DUPLICATE"
QUANTITY_INVALID = "QUANTITY_INVALID"
EARN_DATE_AFTER_CUTOVER = "EARN_DATE_AFTER_CUTOVER"
BURN_DATE_FUTURE = "BURN_DATE_FUTURE"
BURN_BEFORE_EARN = "BURN_BEFORE_EARN"
STOCK_EXHAUSTED = "STOCK_EXHAUSTED"
ATTRIBUTION_UNKNOWN = "ATTRIBUTION_UNKNOWN"
BURN_DATE_MISSING = "BURN_DATE_MISSING"
ALREADY_BURNED = "ALREADY_BURNED"
ATTRIBUTION_CARD_MISMATCH = "ATTRIBUTION_CARD_MISMATCH"
FORMULA_CELL = "FORMULA_CELL"  # = csv_cells.FORMULA_CELL
CONTROL_CHARACTER = "CONTROL_CHARACTER"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

REASON_CODES: tuple[str, ...] = (
    MANDATORY_EMPTY, VALUE_TOO_LONG, FLAG_INVALID, MONETARY_TYPE_INVALID, MONETARY_VALUE_INVALID,
    MONETARY_INCOMPLETE, NQP_VALUE_INVALID, HOLDING_DAYS_INVALID, VALIDITY_COUNT_INVALID,
    VALIDITY_TYPE_INVALID, DATE_INVALID, DATE_INCOMPLETE, FORCED_VALIDITY_INCOMPLETE,
    VALIDITY_RANGE_INVALID, MAX_ATTRIBUTION_COUNT_INVALID, STOCK_LIMITED_NOT_POSITIVE,
    AUTO_GENERATION_MISSING, ITEM_STOCK_ZERO, STOCK_MISSING, AUTO_GENERATED_WITH_COUNT, REWARD_UNKNOWN,
    CARD_UNKNOWN, ATTRIBUTION_ID_AUTO_GENERATED, ATTRIBUTION_ID_DUPLICATE, QUANTITY_INVALID,
    EARN_DATE_AFTER_CUTOVER, BURN_DATE_FUTURE, BURN_BEFORE_EARN, STOCK_EXHAUSTED,
    ATTRIBUTION_UNKNOWN, BURN_DATE_MISSING, ALREADY_BURNED, ATTRIBUTION_CARD_MISMATCH, FORMULA_CELL,
    CONTROL_CHARACTER,
)
# Identifiers and codes Splio and Open Loyalty take as written: a spreadsheet formula there cannot be
# neutralised (a leading ' would change the id or the coupon code), so the row is refused instead.
VERBATIM: dict[str, tuple[str, ...]] = {"masterreward": ("external_id",),
                                        "earnreward": ("reward_id", "attribution_id"),
                                        "burnreward": ("attribution_id",)}

# Masterreward columns whose value must not be empty. "monetary" is a mandatory column too, but the
# seed's only importing row (masterlight) leaves it empty, so an empty value means 0 there.
MASTER_REQUIRED_VALUES: tuple[str, ...] = (
    "external_id", "name", "nqp_value", "holding_days", "validity_interval_count",
    "validity_interval_type", "forced_validity",
)
# The documented plural list, plus the singular forms the seed's Example 1 uses ("day", "week", "month").
VALIDITY_TYPES: dict[str, str] = {
    "days": "days", "weeks": "weeks", "months": "months", "years": "years",
    "day": "days", "week": "weeks", "month": "months", "year": "years",
}
MONETARY_TYPES = ("value", "percentage")

_FULL_DT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PARTIAL_DT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}(?::[0-9]{2})?)?")
_INT = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class RuleFailure(Exception):
    """A row broke a rule: the reason code, the column it is about, a message and the value."""

    def __init__(self, code: str, column: str, message: str, value: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.column = column
        self.message = message
        self.value = value


def value(row: Mapping[str, object], column: str) -> str:
    """The row's text for ``column``; absent columns and NULL read as ``""``."""
    v = row.get(column)
    return v if isinstance(v, str) else ""


def require(row: Mapping[str, object], columns: tuple[str, ...]) -> None:
    """MANDATORY_EMPTY for the first column whose value is NULL, "" or blanks (Splio skips those lines)."""
    for c in columns:
        if not value(row, c).strip():
            raise RuleFailure(MANDATORY_EMPTY, c, f"mandatory value {c} is empty", value(row, c))


def verbatim(row: Mapping[str, object], scope: str) -> None:
    """FORMULA_CELL for the first identifier or code of ``scope`` a spreadsheet would run as a formula."""
    for c in VERBATIM[scope]:
        if _CONTROL.search(value(row, c)):
            raise RuleFailure(CONTROL_CHARACTER, c, f"{c} holds a control character (a NUL byte?) the target "
                              "cannot take", value(row, c).encode("unicode_escape").decode("ascii"))
        if is_formula(value(row, c)):
            raise RuleFailure(FORMULA_CELL, c, f"{c} starts like a spreadsheet formula and the target takes it "
                              "as written: refused rather than altered", value(row, c))


def max_length(row: Mapping[str, object], column: str) -> str:
    v = value(row, column)
    if len(v) > MAX_TEXT:
        raise RuleFailure(VALUE_TOO_LONG, column, f"{column} has {len(v)} characters, Splio allows {MAX_TEXT}",
                          v[:MAX_TEXT] + "...")
    return v


def flag(row: Mapping[str, object], column: str) -> int:
    """A 0/1 column; empty reads as 0."""
    v = value(row, column)
    if v in ("", "0", "1"):
        return int(v or 0)
    raise RuleFailure(FLAG_INVALID, column, f"{column} must be 0 or 1", v)


def integer(row: Mapping[str, object], column: str, code: str, *, minimum: int) -> int | None:
    """A whole number >= ``minimum`` written in digits only; empty gives None."""
    v = value(row, column)
    if v == "":
        return None
    if not _INT.fullmatch(v) or int(v) < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise RuleFailure(code, column, f"{column} must be {what}", v)
    return int(v)


def parse_splio_datetime(text: str, column: str, *, tz: tzinfo = SPLIO_TZ, date_only_ok: bool = False) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` in Splio's timezone, returned in UTC.

    A date or a date with hours (and minutes) only is DATE_INCOMPLETE: the seed says such lines
    are not imported. ``date_only_ok`` accepts a bare date as 00:00:00, which the masterreward table
    allows for the forced validity dates.
    """
    return _parse_datetime(text, column, tz, date_only_ok)


@lru_cache(maxsize=65536)
def _parse_datetime(text: str, column: str, tz: tzinfo, date_only_ok: bool) -> datetime:
    # cached: exports repeat the same timestamps (validity ends, batch earn times) across many rows
    if date_only_ok and _DATE_ONLY.fullmatch(text):
        text += " 00:00:00"
    m = _FULL_DT.fullmatch(text)
    if m is None:
        if _PARTIAL_DT.fullmatch(text):
            raise RuleFailure(DATE_INCOMPLETE, column, f"{column} needs a complete YYYY-MM-DD HH:MM:SS", text)
        raise RuleFailure(DATE_INVALID, column, f"{column} is not YYYY-MM-DD HH:MM:SS", text)
    try:
        local = datetime(*(int(g) for g in m.groups()), tzinfo=tz)
    except ValueError:
        raise RuleFailure(DATE_INVALID, column, f"{column} is not a real date and time", text) from None
    return local.astimezone(timezone.utc)


def optional_datetime(row: Mapping[str, object], column: str, *, tz: tzinfo, date_only_ok: bool = False
                      ) -> datetime | None:
    v = value(row, column)
    return parse_splio_datetime(v, column, tz=tz, date_only_ok=date_only_ok) if v else None


def check_master(rec: Mapping[str, object], *, tz: tzinfo = SPLIO_TZ) -> dict[str, object]:
    """Check one masterreward record (text values); return its normalised and typed values.

    Rules run in the order of the reason table in stages/rewards/validation.py; the first failure is raised.
    """
    require(rec, MASTER_REQUIRED_VALUES)
    verbatim(rec, "masterreward")
    max_length(rec, "external_id")
    max_length(rec, "name")
    monetary = flag(rec, "monetary")
    flag(rec, "forced_validity")
    limited = flag(rec, "is_limited")
    auto = flag(rec, "is_auto_generated")

    mtype, mval = value(rec, "monetary_type"), value(rec, "monetary_value")
    if mtype and mtype not in MONETARY_TYPES:
        raise RuleFailure(MONETARY_TYPE_INVALID, "monetary_type", "monetary_type must be value or percentage", mtype)
    if mval:
        amount = Decimal(mval) if _DECIMAL.fullmatch(mval) else None
        if amount is None:
            raise RuleFailure(MONETARY_VALUE_INVALID, "monetary_value",
                              "monetary_value must be a number >= 0 with a '.' decimal point", mval)
        if mtype == "percentage" and amount > 100:
            raise RuleFailure(MONETARY_VALUE_INVALID, "monetary_value", "a percentage cannot exceed 100", mval)
    if monetary == 1 and not (mtype and mval):
        missing = "monetary_type" if not mtype else "monetary_value"
        raise RuleFailure(MONETARY_INCOMPLETE, missing, f"monetary is 1 but {missing} is empty", "")

    integer(rec, "nqp_value", NQP_VALUE_INVALID, minimum=1)
    integer(rec, "holding_days", HOLDING_DAYS_INVALID, minimum=0)
    integer(rec, "validity_interval_count", VALIDITY_COUNT_INVALID, minimum=1)
    vtype = value(rec, "validity_interval_type")
    if vtype not in VALIDITY_TYPES:
        raise RuleFailure(VALIDITY_TYPE_INVALID, "validity_interval_type",
                          "validity_interval_type must be days, weeks, months or years", vtype)

    start = optional_datetime(rec, "forced_validity_start", tz=tz, date_only_ok=True)
    end = optional_datetime(rec, "forced_validity_end", tz=tz, date_only_ok=True)
    if value(rec, "forced_validity") == "1" and (start is None or end is None):
        missing = "forced_validity_start" if start is None else "forced_validity_end"
        raise RuleFailure(FORCED_VALIDITY_INCOMPLETE, missing, f"forced_validity is 1 but {missing} is empty", "")
    if start is not None and end is not None and start > end:
        raise RuleFailure(VALIDITY_RANGE_INVALID, "forced_validity_end", "forced validity ends before it starts",
                          value(rec, "forced_validity_end"))

    count = integer(rec, "max_attribution_count", MAX_ATTRIBUTION_COUNT_INVALID, minimum=0)
    valued = monetary == 1 or bool(mval)
    check_stock(limited=limited, auto=auto, count=count, valued=valued, raw=value(rec, "max_attribution_count"))
    return {
        "monetary": str(monetary),
        "validity_interval_type": VALIDITY_TYPES[vtype],
        "is_auto": bool(auto),
        "stock_limit": count if count else None,
        "forced_validity_start_at": start,
        "forced_validity_end_at": end,
    }


def check_stock(*, limited: int, auto: int, count: int | None, valued: bool, raw: str) -> None:
    """The stock rule that makes the seed's Example 1 come out as its external_ids say.

    A count > 0 is a cap on attributions. A limited reward needs one. An unlimited auto-generated
    reward takes none (0 or empty). Otherwise codes come from the imports, so a stock must be given:
    0 there is how Splio marks auto-generated codes, hence "missing auto generation" for a reward
    with a value, and "zero stock" for an item (no monetary value).
    """
    col = "max_attribution_count"
    if limited:
        if not count:
            raise RuleFailure(STOCK_LIMITED_NOT_POSITIVE, col, "is_limited is 1: max_attribution_count must be > 0", raw)
    elif auto:
        if count:
            raise RuleFailure(AUTO_GENERATED_WITH_COUNT, col,
                              "unlimited auto-generated codes take max_attribution_count 0 or empty", raw)
    elif count is None:
        raise RuleFailure(STOCK_MISSING, col, "neither limited nor auto-generated: max_attribution_count is needed", raw)
    elif count == 0:
        if valued:
            raise RuleFailure(AUTO_GENERATION_MISSING, "is_auto_generated",
                              "max_attribution_count 0 means auto-generated codes, but is_auto_generated is not 1", raw)
        raise RuleFailure(ITEM_STOCK_ZERO, col, "an item reward with a stock of 0 can never be attributed", raw)


@dataclass
class EarnContext:
    """What an earnreward row is checked against; ``seen`` and ``used`` grow as rows are accepted."""

    rewards: Mapping[str, Mapping[str, object]]  # catalog rows by external_id
    card_to_member: Mapping[str, str]
    reward_ids: Mapping[str, str]  # legacy internal id -> external_id
    cutover: datetime  # UTC
    tz: tzinfo
    seen: set[str]  # attribution_ids earned so far
    used: Counter[str]  # quantities earned so far, by external_id


def check_earned(rec: Mapping[str, object], ctx: EarnContext) -> dict[str, object]:
    """Check one earnreward row; return its typed values and record it in ``ctx`` (ids, stock)."""
    require(rec, ("reward_id", "card_code", "earn_date", "validity_start_date", "validity_end_date"))
    verbatim(rec, "earnreward")
    rid = value(rec, "reward_id")
    ext = ctx.reward_ids.get(rid, rid)
    reward = ctx.rewards.get(ext)
    if reward is None:
        raise RuleFailure(REWARD_UNKNOWN, "reward_id", f"reward {ext!r} is not in the catalog", rid)
    card = value(rec, "card_code")
    member = ctx.card_to_member.get(card)
    if member is None:
        raise RuleFailure(CARD_UNKNOWN, "card_code", "card_code is not a migrated member's card", card)
    att = value(rec, "attribution_id")
    if bool(reward.get("is_auto")):
        if att.strip():
            raise RuleFailure(ATTRIBUTION_ID_AUTO_GENERATED, "attribution_id",
                              f"reward {ext!r} has auto-generated codes: attribution_id must be empty", att)
    else:
        require(rec, ("attribution_id",))
        max_length(rec, "attribution_id")
        if att in ctx.seen:
            raise RuleFailure(ATTRIBUTION_ID_DUPLICATE, "attribution_id", "attribution_id already earned", att)
    qty = integer(rec, "quantity", QUANTITY_INVALID, minimum=1) or 1
    earn = parse_splio_datetime(value(rec, "earn_date"), "earn_date", tz=ctx.tz)
    start = parse_splio_datetime(value(rec, "validity_start_date"), "validity_start_date", tz=ctx.tz)
    end = parse_splio_datetime(value(rec, "validity_end_date"), "validity_end_date", tz=ctx.tz)
    burn = optional_datetime(rec, "burn_date", tz=ctx.tz)
    if start > end:
        raise RuleFailure(VALIDITY_RANGE_INVALID, "validity_end_date", "validity ends before it starts",
                          value(rec, "validity_end_date"))
    # The legacy earn date is history: it must be by the cutover. What Splio receives is the import
    # day (stages/rewards/splio_import.py), so Splio's "import day or after" is never a reason to reject.
    if earn > ctx.cutover:
        raise RuleFailure(EARN_DATE_AFTER_CUTOVER, "earn_date", "earned after the cutover", value(rec, "earn_date"))
    if burn is not None:
        check_burn_date(burn, earn, ctx.cutover, value(rec, "burn_date"))
    limit = reward.get("stock_limit")
    if limit is not None and not pd.isna(limit) and ctx.used[ext] + qty > int(limit):
        raise RuleFailure(STOCK_EXHAUSTED, "quantity",
                          f"stock of {int(limit)} for {ext!r} used up ({ctx.used[ext]} earned before)", str(qty))
    if att:
        ctx.seen.add(att)
    ctx.used[ext] += qty
    return {"reward_external_id": ext, "member_id": member, "quantity_int": qty, "earn_date_at": earn,
            "validity_start_date_at": start, "validity_end_date_at": end, "burn_date_at": burn}


def check_burned(rec: Mapping[str, object], *, cards: set[str] | frozenset[str],
                 attributions: Mapping[str, Mapping[str, object]], burned: Mapping[str, str], cutover: datetime,
                 tz: tzinfo) -> tuple[datetime, Mapping[str, object]]:
    """Check one burnreward row -> (burn instant in UTC, the attribution it burns).

    ``burned`` maps attribution_ids burned so far to a description of that burn.
    """
    require(rec, ("card_code", "attribution_id"))
    verbatim(rec, "burnreward")
    card, att = value(rec, "card_code"), value(rec, "attribution_id")
    if card not in cards:
        raise RuleFailure(CARD_UNKNOWN, "card_code", "card_code is not a migrated member's card", card)
    earned = attributions.get(att)
    if earned is None:
        raise RuleFailure(ATTRIBUTION_UNKNOWN, "attribution_id", "no earned reward has this attribution_id", att)
    raw = value(rec, "burn_date")
    if not raw.strip():
        raise RuleFailure(BURN_DATE_MISSING, "burn_date",
                          "burn_date is empty; Splio would stamp the import time, after the cutover", raw)
    burn = parse_splio_datetime(raw, "burn_date", tz=tz)
    if burn > cutover:
        raise RuleFailure(BURN_DATE_FUTURE, "burn_date", "burned after the cutover", raw)
    if att in burned:
        raise RuleFailure(ALREADY_BURNED, "attribution_id", f"attribution already {burned[att]}", att)
    if earned["card_code"] != card:
        raise RuleFailure(ATTRIBUTION_CARD_MISMATCH, "card_code", "the attribution belongs to another card", card)
    check_burn_date(burn, earned["earn_date_ts"], cutover, raw)
    return burn, earned


def check_burn_date(burn: datetime, earn: datetime, cutover: datetime, raw: str) -> None:
    """A burn happens by the cutover and not before the reward was earned."""
    if burn > cutover:
        raise RuleFailure(BURN_DATE_FUTURE, "burn_date", "burned after the cutover", raw)
    if burn < earn:
        raise RuleFailure(BURN_BEFORE_EARN, "burn_date", "burned before it was earned", raw)
