"""Point lots as of the cutover: which accrual each redemption consumed, and what is left.

Every accrual is a lot (``lot_id`` = its guestpointsid, or ``line:<n>`` when the source gave none).
Redemptions are applied in action order (ties by line):

1. A redemption consumes the lot its guestpointsid names (method ``link``), as far as that lot has
   points left. The link is honoured even when the lot's dates look inconsistent with the
   redemption: the source system recorded which lot it used, and it is the authority.
2. The rest falls back (``fallback_missing_link`` when there is no link, ``fallback_unknown_link``
   when it names no lot of this member, ``fallback_overflow`` when the named lot ran short) to the
   member's lots that are not expired at the redemption time (effective end > redemption time, or
   no end). Lots accrued at or before the redemption come first, the one that expires first (no
   expiry last), then the oldest (action time, line); pending lots are eligible since they are
   the member's points all the same. Only then do lots accrued *later* pay it, oldest first:
   Zenoti's rule that later accruals pay a negative balance first (help.zenoti.com 660083).
3. What no lot can pay is the member's ``deficit``: a negative balance, reported, never clipped.
   That piece has method ``deficit`` (no lot): it is not a fallback, so a redemption that exceeds
   every lot of its member counts as a deficit, not as ``fallback_overflow``; a fallback is a piece
   some other lot than the named one actually paid.

A lot never goes below zero. Entries dated after the cutover belong to the delta migration and are
left out (``LotResult.after_cutover``). As of the cutover a lot is ``expired`` when its effective
end <= cutover, else ``pending`` when its effective start > cutover, else ``open``.

Points are exact int64 micro-points inside (``*_units``, see ``sources.ledger.POINTS_SCALE``);
``Decimal`` appears only in the reported columns. Members whose redemptions all name a lot of
theirs that can pay them are settled with array operations; a Python loop runs only over members
that need a fallback (``transfers.fallback``), so 10M ledger rows take about half a minute. Text
columns of the outputs are object arrays sharing the input's strings: converting millions of
values to pandas' ``str`` dtype would cost as much again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.model import EXPIRED, OPEN, PENDING
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import (
    ACCRUAL,
    REDEMPTION,
    UNITS_PER_POINT,
    units_to_decimal,
)
from loyalty_toolkit.sources.ledger.times import iso_utc_strings
from loyalty_toolkit.stages.transfers.fallback import allocate_slow

LINK = "link"
FALLBACK_MISSING = "fallback_missing_link"
FALLBACK_UNKNOWN = "fallback_unknown_link"
FALLBACK_OVERFLOW = "fallback_overflow"
DEFICIT = "deficit"  # the part no lot could pay (lot_id ""): a negative balance, not a fallback
METHODS: tuple[str, ...] = (LINK, FALLBACK_MISSING, FALLBACK_UNKNOWN, FALLBACK_OVERFLOW, DEFICIT)
FALLBACK_METHODS: tuple[str, ...] = METHODS[1:4]


_NAT = np.iinfo(np.int64).min  # "no time": no start, no expiry

LOT_COLUMNS = ("lot_id", "user_id", "accrued", "consumed", "remaining", "status", "expires_at_utc",
               "unlock_at_utc", "program", "center", "line", "action_at_utc",
               "accrued_units", "consumed_units", "remaining_units",
               "expires_at_us", "unlock_at_us", "action_at_us")
ALLOCATION_COLUMNS = ("line", "user_id", "lot_id", "points", "method", "cross_center", "redemption_center",
                      "redemption_program", "lot_center", "lot_program", "lot_line", "points_units")
BALANCE_COLUMNS = ("user_id", "accrued", "redeemed", "expired", "open", "pending", "deficit", "balance",
                   "lots", "redemptions", "fallbacks",
                   "accrued_units", "redeemed_units", "expired_units", "open_units", "pending_units",
                   "deficit_units", "balance_units")


@dataclass
class LotResult:
    """The lot engine's output as of ``cutover`` (see the module docstring for the rules).

    ``lots``: one row per accrual (LOT_COLUMNS). ``allocations``: one row per piece of a redemption
    (ALLOCATION_COLUMNS; ``lot_id`` "" for the deficit part). ``balances``: one row per member
    (BALANCE_COLUMNS; balance = open + pending - deficit). ``fallbacks``: per method, how many
    redemptions used it, in how many pieces, for how many points. ``after_cutover``: entries
    left to the delta. Decimal columns have an exact int64 micro-point twin ``*_units``, and the
    lots' ISO ``*_at_utc`` columns an int64 UTC-microsecond twin ``*_at_us`` (int64 min = none).
    """

    lots: pd.DataFrame
    allocations: pd.DataFrame
    balances: pd.DataFrame
    fallbacks: pd.DataFrame
    after_cutover: pd.DataFrame
    cutover: datetime

    @property
    def fallback_counts(self) -> dict[str, int]:
        """Redemptions that needed each fallback method (a redemption may need two: link, then overflow)."""
        f = self.fallbacks.set_index("method")["redemptions"]
        return {m: int(f.get(m, 0)) for m in FALLBACK_METHODS}


def build_lots(entries: pd.DataFrame, *, cutover: datetime) -> LotResult:
    """Allocate every redemption to lots and classify the lots as of ``cutover`` (aware datetime).

    ``entries`` is ``LedgerParse.entries``; frames built by hand need line, user_id, kind
    ("accrual"/"redemption"), guestpointsid, points (Decimal) or points_units, and the action and
    effective times as ``*_ts`` (aware) or ISO ``*_utc`` strings ("" = none); program, center
    and accrual_center are optional.
    """
    if cutover.tzinfo is None:
        raise ValueError("cutover must be timezone-aware")
    cut = datetime_us(cutover)
    kind = entries["kind"].to_numpy(dtype=object)
    is_acc, is_red = kind == ACCRUAL, kind == REDEMPTION
    if not (is_acc | is_red).all():
        raise ValueError("kind must be 'accrual' or 'redemption' (as parse_ledger writes it)")
    line = entries["line"].to_numpy(dtype=np.int64)
    units = entry_points_units(entries)
    act = entry_action_us(entries)
    if (act == _NAT).any():
        raise ValueError("every entry needs an action time")
    in_scope = act <= cut
    after_cols = [c for c in ("line", "user_id", "kind", "points", "points_units") if c in entries.columns]
    after = entries.loc[~in_scope, after_cols].reset_index(drop=True)

    scope_rows = np.flatnonzero(in_scope)
    user_codes, users = pd.factorize(text_column(entries, "user_id", scope_rows))
    users = np.asarray(users, dtype=object)
    n_users = len(users)
    ucode = np.full(len(entries), -1, dtype=np.int64)
    ucode[scope_rows] = user_codes
    del user_codes, scope_rows

    # -- lots, in source order ------------------------------------------------------------------
    lot_rows = np.flatnonzero(in_scope & is_acc)
    lot_rows = lot_rows[np.argsort(line[lot_rows], kind="stable")]
    lot_user, lot_amt, lot_act, lot_line = ucode[lot_rows], units[lot_rows], act[lot_rows], line[lot_rows]
    lot_start = _time_us(entries, "effective_start_ts", "effective_start_utc", lot_rows)
    lot_end = _time_us(entries, "effective_end_ts", "effective_end_utc", lot_rows)
    lot_id = text_column(entries, "guestpointsid", lot_rows)
    derived = lot_id == ""
    if derived.any():
        lot_id = lot_id.copy()
        lot_id[derived] = [f"line:{x}" for x in lot_line[derived].tolist()]
    lot_index = pd.Index(lot_id, dtype=object)
    if not lot_index.is_unique:
        dups = sorted(set(lot_index[lot_index.duplicated()]))[:5]
        raise ValueError(f"lot ids must be unique (parse_ledger rejects duplicates): {dups}")

    # -- redemptions, in action order -----------------------------------------------------------
    red_rows = np.flatnonzero(in_scope & is_red)
    red_rows = red_rows[np.lexsort((line[red_rows], act[red_rows]))]
    red_user, red_amt, red_act, red_line = ucode[red_rows], -units[red_rows], act[red_rows], line[red_rows]
    del ucode, units, act, line, in_scope, is_acc, is_red, kind
    link_text = text_column(entries, "guestpointsid", red_rows)
    no_link = link_text == ""
    link = np.full(len(red_rows), -1, dtype=np.int64)
    if len(lot_index):
        link = lot_index.get_indexer(link_text).astype(np.int64)
        hit = (link >= 0) & ~no_link
        # a derived id is ours, not the source's: a redemption cannot name it
        hit[hit] = ~derived[link[hit]]
        link[~hit] = -1
    known = link >= 0
    known[known] = lot_user[link[known]] == red_user[known]
    first_method = np.where(known, 0, np.where(no_link, 1, 2)).astype(np.int8)  # index into METHODS
    del link_text, no_link, lot_index
    _check_magnitude(lot_amt, red_amt)

    # -- fast path: members whose every redemption names one of their lots that can pay it -------
    linked_sum = np.zeros(len(lot_rows), dtype=np.int64)
    np.add.at(linked_sum, link[known], red_amt[known])
    slow_user = np.zeros(n_users, dtype=bool)
    slow_user[red_user[~known]] = True
    slow_user[lot_user[linked_sum > lot_amt]] = True
    del linked_sum
    fast_idx = np.flatnonzero(known & ~slow_user[red_user])
    pieces = [(fast_idx, link[fast_idx], red_amt[fast_idx], np.zeros(len(fast_idx), dtype=np.int8))]

    # -- slow path: one member at a time ---------------------------------------------------------
    if slow_user.any():
        pieces.append(allocate_slow(slow_user, lot_user, lot_amt, lot_act, lot_line, lot_end,
                                    red_user, red_amt, red_act, red_line, link, first_method))
    a_red, a_lot, a_pts, a_meth = (np.concatenate([p[i] for p in pieces]) for i in range(4))
    del pieces, fast_idx
    # the two paths never share a redemption, and each lists a redemption's pieces in order
    order = np.argsort(a_red, kind="stable")
    a_red, a_lot, a_pts, a_meth = a_red[order], a_lot[order], a_pts[order], a_meth[order]
    del order

    consumed = np.zeros(len(lot_rows), dtype=np.int64)
    has_lot = a_lot >= 0
    np.add.at(consumed, a_lot[has_lot], a_pts[has_lot])
    remaining = lot_amt - consumed
    if (remaining < 0).any():
        raise AssertionError("a lot went below zero")  # the allocation never takes more than a lot holds

    expired = (lot_end != _NAT) & (lot_end <= cut)
    pending = ~expired & (lot_start != _NAT) & (lot_start > cut)
    status = np.asarray([OPEN, PENDING, EXPIRED], dtype=object)[np.where(expired, 2, np.where(pending, 1, 0))]
    del link, known, first_method, slow_user

    lot_center = text_column(entries, "accrual_center" if "accrual_center" in entries.columns else "center",
                             lot_rows)
    lot_program = text_column(entries, "program", lot_rows)
    lots = _frame({
        "lot_id": lot_id,
        "user_id": users[lot_user],
        "accrued": units_to_decimal(lot_amt),
        "consumed": units_to_decimal(consumed),
        "remaining": units_to_decimal(remaining),
        "status": status,
        "expires_at_utc": iso_utc_strings(lot_end),
        "unlock_at_utc": iso_utc_strings(lot_start),
        "program": lot_program,
        "center": lot_center,
        "line": lot_line,
        "action_at_utc": iso_utc_strings(lot_act),
        "accrued_units": lot_amt,
        "consumed_units": consumed,
        "remaining_units": remaining,
        # the same instants as int64 UTC microseconds: build_transfers need not parse millions of strings
        "expires_at_us": lot_end,
        "unlock_at_us": lot_start,
        "action_at_us": lot_act,
    })
    del lot_start, lot_end, lot_act, red_act

    red_center = text_column(entries, "center" if "center" in entries.columns else "payment_center", red_rows)
    allocations = _allocations(a_red, a_lot, a_pts, a_meth, red_line, red_user, users, lot_id, lot_line,
                               lot_center, lot_program, red_center[a_red],
                               text_column(entries, "program", red_rows)[a_red])

    n = n_users
    is_open = ~expired & ~pending
    deficit = ~has_lot
    first_piece = np.ones(len(a_red), dtype=bool)
    first_piece[1:] = (a_red[1:] != a_red[:-1]) | (a_meth[1:] != a_meth[:-1])
    # one per redemption that needed a fallback (the deficit piece is none: no lot paid it)
    fell_back = first_piece & (a_meth > 0) & (a_meth < METHODS.index(DEFICIT))
    sums = {
        "accrued": _per_key(n, lot_user, lot_amt),
        "redeemed": _per_key(n, red_user, red_amt),
        "expired": _per_key(n, lot_user[expired], remaining[expired]),
        "open": _per_key(n, lot_user[is_open], remaining[is_open]),
        "pending": _per_key(n, lot_user[pending], remaining[pending]),
        "deficit": _per_key(n, red_user[a_red[deficit]], a_pts[deficit]),
    }
    sums["balance"] = sums["open"] + sums["pending"] - sums["deficit"]
    data: dict[str, np.ndarray] = {"user_id": users}
    data.update({k: units_to_decimal(v) for k, v in sums.items()})
    data["lots"] = np.bincount(lot_user, minlength=n).astype(np.int64)
    data["redemptions"] = np.bincount(red_user, minlength=n).astype(np.int64)
    data["fallbacks"] = np.bincount(red_user[a_red[fell_back]], minlength=n).astype(np.int64)
    data.update({f"{k}_units": v for k, v in sums.items()})
    balances = _frame(data)

    rows = []
    for code, method in enumerate(METHODS):
        sel = a_meth == code
        pts = int(a_pts[sel].sum())
        rows.append({"method": method, "redemptions": int((first_piece & sel).sum()), "allocations": int(sel.sum()),
                     "points": units_to_decimal(np.asarray([pts]))[0], "points_units": pts})
    fallbacks = pd.DataFrame(rows, columns=["method", "redemptions", "allocations", "points", "points_units"])
    return LotResult(lots=lots, allocations=allocations, balances=balances, fallbacks=fallbacks,
                     after_cutover=after, cutover=cutover)


def _allocations(a_red, a_lot, a_pts, a_meth, red_line, red_user, users, lot_id, lot_line, lot_center,
                 lot_program, red_center, red_program) -> pd.DataFrame:
    has_lot = a_lot >= 0

    def per_lot(values: np.ndarray, none: object) -> np.ndarray:
        if len(values) == 0:
            return np.full(len(a_lot), none, dtype=values.dtype)
        out = values[np.maximum(a_lot, 0)]
        out[~has_lot] = none
        return out

    alloc_lot_center = per_lot(lot_center, "")
    # a center the source left empty is unknown, not different
    cross = has_lot & (red_center != "") & (alloc_lot_center != "") & (red_center != alloc_lot_center)
    alloc_lot_line = pd.array(per_lot(lot_line, -1), dtype="Int64")
    alloc_lot_line[~has_lot] = pd.NA
    return _frame({
        "line": red_line[a_red],
        "user_id": users[red_user[a_red]],
        "lot_id": per_lot(lot_id, ""),
        "points": units_to_decimal(a_pts),
        "method": np.asarray(METHODS, dtype=object)[a_meth],
        "cross_center": cross,
        "redemption_center": red_center,
        "redemption_program": red_program,
        "lot_center": alloc_lot_center,
        "lot_program": per_lot(lot_program, ""),
        "lot_line": alloc_lot_line,
        "points_units": a_pts,
    })


def entry_points_units(frame: pd.DataFrame) -> np.ndarray:
    """Signed int64 micro-points per row: ``points_units`` if present, else ``points`` (Decimal)."""
    if "points_units" in frame.columns:
        return frame["points_units"].to_numpy(dtype=np.int64)
    return _decimal_units(frame["points"])


def entry_action_us(entries: pd.DataFrame) -> np.ndarray:
    """Action time per row as UTC microseconds (from ``action_at_ts`` or ``action_at_utc``)."""
    return _time_us(entries, "action_at_ts", "action_at_utc")


def category_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(int64 codes, names) of a categorical column, names as :func:`text_column` reads them (a
    missing value is the name ""); None for any other dtype. Ten million small ints to group by,
    instead of ten million strings."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return None
    codes = column.cat.codes.to_numpy().astype(np.int64)
    names = np.asarray([v if isinstance(v, str) else str(v) for v in column.cat.categories.tolist()], dtype=object)
    if (codes < 0).any():
        names = np.concatenate([names, np.asarray([""], dtype=object)])
        codes[codes < 0] = len(names) - 1
    return codes, names


def datetime_us(dt: datetime) -> int:
    """An aware datetime as UTC microseconds since the epoch (the engine's time axis)."""
    delta = dt.astimezone(timezone.utc).replace(tzinfo=None) - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _decimal_units(points: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(points.to_numpy(dtype=object))
    u = np.empty(len(uniques), dtype=np.int64)
    for i, d in enumerate(uniques):
        if isinstance(d, float):  # a float has already lost the source's exact value
            raise TypeError(f"points must be Decimal or text, not float ({d!r})")
        scaled = Decimal(d) * UNITS_PER_POINT
        if scaled != scaled.to_integral_value():
            raise ValueError(f"points {d} have more than 6 decimals")
        u[i] = int(scaled)
    return u[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _time_us(entries: pd.DataFrame, ts_col: str, iso_col: str, rows: np.ndarray | None = None) -> np.ndarray:
    """UTC microseconds (int64 min = none) from the ``*_us`` twin of ``ts_col`` (what parse_ledger
    builds for the engine), an aware datetime column or ISO strings."""
    us_col = ts_col.removesuffix("_ts") + "_us"
    if us_col in entries.columns:
        values = entries[us_col].to_numpy(dtype=np.int64)
        return values.copy() if rows is None else values[rows]
    if ts_col in entries.columns:
        col = entries[ts_col] if rows is None else entries[ts_col].iloc[rows]
        s = pd.DatetimeIndex(col)
    elif iso_col in entries.columns:
        text = pd.Series(text_column(entries, iso_col, rows), dtype=object)
        s = pd.DatetimeIndex(pd.to_datetime(text.where(text != "", None), format="ISO8601", utc=True))
    else:
        return np.full(len(entries) if rows is None else len(rows), _NAT, dtype=np.int64)
    if len(s) and s.tz is None:
        raise ValueError(f"{ts_col} must be timezone-aware")
    if s.tz is not None:
        s = s.tz_convert("UTC").tz_localize(None)
    return s.as_unit("us").asi8.copy()


def _check_magnitude(lot_amt: np.ndarray, red_amt: np.ndarray) -> None:
    # int64 sums wrap silently; float is only a guard here, with room to spare
    total = float(np.abs(lot_amt).astype(np.float64).sum()) + float(np.abs(red_amt).astype(np.float64).sum())
    if total >= 2.0**62:
        raise ValueError("ledger totals exceed the int64 micro-point range")


def _per_key(n: int, key: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Exact int64 sum of ``amount`` per integer key 0..n-1."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, key, amount)
    return out


def _frame(data: dict[str, object]) -> pd.DataFrame:
    """A frame whose text columns stay object arrays: inferring ``str`` would visit every value again."""
    # copy=False keeps one block per column: consolidating would briefly double the frame
    return pd.DataFrame({k: pd.Series(v, dtype=object, copy=False) if isinstance(v, np.ndarray) and v.dtype == object
                         else v for k, v in data.items()}, copy=False)
