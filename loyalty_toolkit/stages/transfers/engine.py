"""Stage 03 logic: open point lots (ledger and opening balances) become the target's unit transfers.

Pure functions over frames; no I/O. Points are exact int64 micro-points inside (``*_units``, as in
``stages.lots``); ``Decimal`` appears only in reported columns.

Opening-balance rows become lots in ``stages.transfers.opening`` (:func:`opening_lots`).

:func:`build_transfers` rules:

1. Only ``open`` and ``pending`` lots with points left are owed; expired or spent lots give nothing.
2. Lots of members without a target ID are rejected ``MEMBER_UNMAPPED``, one row per lot, with
   their exact points (signed; a carried deficit of such a member is rejected the same way).
3. Granularity ``lot``: one transfer per lot. ``member_expiry``: one per member, expiry instant
   and (pending lots only) unlock instant; ``registered_on`` is then the oldest lot's accrual time.
4. Whole units: each transfer's exact total is rounded ONCE with the configured Decimal mode;
   ``residue`` = exact - rounded is kept per transfer. A transfer that rounds to 0 is not emitted
   but listed in ``zero`` with its residue (its whole exact value).
5. ``transfer_id`` = uuid5(NAMESPACE, "<sorted lot ids joined by ,>|<wallet>") (a carried deficit:
   "deficit:<legacy_id>|<wallet>"), so re-runs give identical ids (invariant 7). File order: per
   legacy_id, adding before spending, oldest ``registered_on`` first, then soonest expiry (never
   last), then ``unlock_at`` (none first), ``lot_ids`` and ``transfer_id``, each compared as text.
6. Negative balances (``negative_balances``: user_id + deficit or deficit_units, e.g.
   ``LotResult.balances``): ``carry`` emits a ``spending`` transfer of the rounded deficit
   registered at the cutover (the target's wallet must allow negative balances: OSS refuses a
   spend beyond the balance); ``review`` lists it in ``review`` and emits nothing.

Reconciliation (invariant 2, tolerance zero): per member, with signed amounts,
``owed = points + residue + rejected + review`` where ``points`` is what the emitted transfers
carry, ``residue`` sums the residue of emitted AND zero-point transfers, ``rejected`` the
MEMBER_UNMAPPED rows and ``review`` the deficits held for review. ``per_member.points_units`` is
the ledger part of ``owed`` (opening lots excluded: the ledger does not know them) so
``reconcile(entries, lot_result, per_member)`` ties to zero; ``opening_units`` is the rest.

Scale (millions of lots): the work is array operations over whole columns. Lots read their times
from the int64 ``*_at_us`` twins ``build_lots`` and ``opening_lots`` give them (a frame built by
hand without them is parsed from its ISO text, once per distinct value); members are numbered
once; sums per member are ``np.add.at``; the file order is one ``np.lexsort`` over integer ranks
(``stages.transfers.keys``). Python loops run only over rejected lots, deficits, unmatched opening
rows and distinct values, and once per transfer for the SHA-1 of its id: 1.3M transfers take about
3 s, 4.3M about 13 s. ``tests/stages/transfers/test_transfers.py`` keeps the row-by-row implementation this
replaced, as an oracle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.config import ROUNDING_MODES
from loyalty_toolkit.model import ADDING, OPEN, PENDING, REJECT_COLUMNS, SPENDING
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import UNITS_PER_POINT, units_to_decimal
from loyalty_toolkit.stages.transfers.keys import (  # format_utc: part of this module's interface
    column_frame,
    file_order,
    format_utc,
    group_ids,
    join_sorted,
    text_rank,
    utc_text_and_rank,
    uuid5_strings,
)
from loyalty_toolkit.stages.transfers.lots import LOT_COLUMNS, datetime_us

STAGE = "transfers"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "loyalty-migrate:unit-transfer")
OPENING_SOURCE, OPENING_CENTER = "opening", "opening"
MEMBER_UNMAPPED = "MEMBER_UNMAPPED"
NEGATIVE_BALANCE = "NEGATIVE_BALANCE"

OPENING_LOT_COLUMNS = (*LOT_COLUMNS, "source", "source_file")
TRANSFER_COLUMNS = ("transfer_id", "legacy_id", "target_id", "wallet_type_code", "type", "points", "points_exact",
                    "residue", "registered_on", "expires_at", "unlock_at", "validity_days", "lot_ids", "lots",
                    "exact_units", "residue_units")
TRANSFER_REJECT_COLUMNS = (*REJECT_COLUMNS, "legacy_id", "lot_id", "points", "points_units")
REVIEW_COLUMNS = ("legacy_id", "target_id", "reason", "deficit", "deficit_units", "message")
PER_MEMBER_COLUMNS = ("user_id", "target_id", "transfers", "points", "residue", "points_exact", "rejected", "review",
                      "owed", "owed_units", "opening_units", "points_units")
_NAT = np.iinfo(np.int64).min
_DAY_US = 86_400 * 1_000_000
# a lot's instants: int64 UTC microseconds (build_lots) -> the ISO text they twin
US_OF = {"expires_at_us": "expires_at_utc", "unlock_at_us": "unlock_at_utc", "action_at_us": "action_at_utc"}


@dataclass
class TransferResult:
    """``transfers`` (TRANSFER_COLUMNS, file order), ``zero`` (same columns, not emitted),
    ``rejects`` (TRANSFER_REJECT_COLUMNS), ``review`` (REVIEW_COLUMNS), ``per_member``
    (PER_MEMBER_COLUMNS; signed) and ``residue_total`` (signed, emitted + zero-point)."""

    transfers: pd.DataFrame
    zero: pd.DataFrame
    rejects: pd.DataFrame
    review: pd.DataFrame
    per_member: pd.DataFrame
    residue_total: Decimal

    def totals(self) -> dict[str, Decimal]:
        """Signed totals: owed == points + residue + rejected + review."""
        pm = self.per_member
        return {
            "points": Decimal(int(pm["points"].sum())),
            "residue": self.residue_total,
            "rejected": sum(pm["rejected"].tolist(), Decimal(0)),
            "review": sum(pm["review"].tolist(), Decimal(0)),
            "owed": sum(pm["owed"].tolist(), Decimal(0)),
        }


def round_units(units: np.ndarray, mode: str) -> np.ndarray:
    """Whole points from non-negative micro-points, exactly as ``Decimal.quantize(1, mode)`` would."""
    if mode not in ROUNDING_MODES and mode not in ("ROUND_HALF_DOWN", "ROUND_05UP"):
        raise ValueError(f"unknown rounding mode {mode!r}")
    units = np.asarray(units, dtype=np.int64)
    if (units < 0).any():
        raise ValueError("round_units takes magnitudes (>= 0)")
    q, r = np.divmod(units, UNITS_PER_POINT)
    half = UNITS_PER_POINT // 2
    up = {
        "ROUND_DOWN": np.zeros(len(r), dtype=bool), "ROUND_FLOOR": np.zeros(len(r), dtype=bool),
        "ROUND_UP": r > 0, "ROUND_CEILING": r > 0,
        "ROUND_HALF_UP": r >= half, "ROUND_HALF_DOWN": r > half,
        "ROUND_HALF_EVEN": (r > half) | ((r == half) & (q % 2 == 1)),
        "ROUND_05UP": (r > 0) & np.isin(q % 10, (0, 5)),
    }[mode]
    return q + up


def transfer_id(lot_ids: list[str] | tuple[str, ...], wallet_type_code: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{','.join(sorted(lot_ids))}|{wallet_type_code}"))


def _id_map(id_map: pd.DataFrame) -> dict[str, str]:
    legacy = text_column(id_map, "legacy_id")
    if len(set(legacy.tolist())) != len(legacy):
        raise ValueError("id_map must hold each legacy_id once")
    return dict(zip(legacy.tolist(), text_column(id_map, "target_id").tolist()))


# ---------------------------------------------------------------- lots -> unit transfers


def build_transfers(lots: pd.DataFrame, id_map: pd.DataFrame, *, granularity: str = "lot",
                    rounding: str = "ROUND_HALF_EVEN", wallet_type_code: str = "default",
                    negative_balances: pd.DataFrame | None = None, negative_mode: str = "review",
                    cutover: datetime, source_file: str = "") -> TransferResult:
    """The unit transfers owed at ``cutover`` for ``lots`` (``LotResult.lots``, opening lots, or
    both concatenated); see the module docstring for the rules. ``source_file`` names the ledger
    in rejects of lots without a ``source_file`` column."""
    if granularity not in ("lot", "member_expiry"):
        raise ValueError("granularity must be 'lot' or 'member_expiry'")
    if negative_mode not in ("carry", "review"):
        raise ValueError("negative_mode must be 'carry' or 'review'")
    if cutover.tzinfo is None:
        raise ValueError("cutover must be timezone-aware")
    round_units(np.zeros(0, dtype=np.int64), rounding)  # validates the mode
    cut = datetime_us(cutover)
    mapped = _id_map(id_map)

    lot_id = text_column(lots, "lot_id")
    if len(set(lot_id.tolist())) != len(lot_id):
        raise ValueError("lot ids must be unique across the lots given")
    status = text_column(lots, "status")
    units = (lots["remaining_units"].to_numpy(dtype=np.int64) if "remaining_units" in lots.columns
             else _units(lots["remaining"]))
    live = np.flatnonzero(((status == OPEN) | (status == PENDING)) & (units > 0))
    # members are numbered once; mapping is looked up per member, not per lot
    ucode, users = pd.factorize(text_column(lots, "user_id", live))
    users = np.asarray(users, dtype=object)
    u_mapped = np.fromiter((u in mapped for u in users.tolist()), dtype=bool, count=len(users))
    ok = u_mapped[ucode]
    rej, rej_user = live[~ok], ucode[~ok]
    sel, s_user = live[ok], ucode[ok]
    rej_rows = _unmapped_rows(lots, rej, users[rej_user], lot_id[rej], units[rej], source_file)

    act = _time_column(lots, "action_at_us", "action_at_utc", sel)
    if (act == _NAT).any():
        raise ValueError("every open or pending lot needs action_at_utc (its accrual time)")
    end = _time_column(lots, "expires_at_us", "expires_at_utc", sel)
    unlock = np.full(len(sel), _NAT, dtype=np.int64)
    pend = status[sel] == PENDING
    if pend.any():
        unlock[pend] = _time_column(lots, "unlock_at_us", "unlock_at_utc", sel[pend])
    g = _groups(granularity, s_user, units[sel], act, end, unlock, lot_id[sel])

    review_rows: list[tuple] = []
    carry_user, carry_units, extra = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), []
    if negative_balances is not None and len(negative_balances):
        carry_user, carry_units, extra = _deficits(negative_balances, mapped, negative_mode, source_file, rej_rows,
                                                   review_rows)
    # members: those with live lots, then those known only by a deficit
    ext_codes, names = pd.factorize(np.concatenate([users, np.asarray([e[0] for e in extra], dtype=object)]))
    names = np.asarray(names, dtype=object)
    extra_code = ext_codes[len(users):]
    carry_code = extra_code[[i for i, e in enumerate(extra) if e[1] == "carry"]]
    targets = np.asarray([mapped.get(u, "") for u in names.tolist()], dtype=object)

    m = len(carry_user)
    rows = {
        "member": np.concatenate([g["user"], carry_code]).astype(np.int64),
        "kind": np.concatenate([np.zeros(g["n"], dtype=np.int8), np.ones(m, dtype=np.int8)]),
        "units": np.concatenate([g["units"], carry_units]),
        "act": np.concatenate([g["act"], np.full(m, cut, dtype=np.int64)]),
        "end": np.concatenate([g["end"], np.full(m, _NAT, dtype=np.int64)]),
        "unlock": np.concatenate([g["unlock"], np.full(m, _NAT, dtype=np.int64)]),
        "lot_ids": np.concatenate([g["lot_ids"], np.full(m, "", dtype=object)]),
        "lots": np.concatenate([g["count"], np.zeros(m, dtype=np.int64)]),
        "transfer_id": np.concatenate([uuid5_strings(NAMESPACE, g["lot_ids"], suffix=f"|{wallet_type_code}"),
                                       uuid5_strings(NAMESPACE, carry_user, "deficit:", f"|{wallet_type_code}")]),
    }
    rows["points"] = round_units(rows["units"], rounding)
    rows["residue"] = rows["units"] - rows["points"] * UNITS_PER_POINT
    sign = np.where(rows["kind"] == 1, -1, 1)

    # file order: per member, adding before spending, oldest first, then soonest expiry (none last)
    rows["registered_on"], reg_rank = utc_text_and_rank(rows["act"])
    rows["expires_at"], end_rank = utc_text_and_rank(rows["end"])
    end_rank[rows["end"] == _NAT] = np.iinfo(np.int64).max  # as "~": after every date
    rows["unlock_at"], unlock_rank = utc_text_and_rank(rows["unlock"])
    member_rank = text_rank(names)
    order = file_order([member_rank[rows["member"]], rows["kind"], reg_rank, end_rank, unlock_rank],
                       [rows["lot_ids"], rows["transfer_id"]])
    emitted = rows["points"][order] > 0
    transfers = _transfer_frame(rows, order[emitted], names, targets, wallet_type_code, cut)
    zero = _transfer_frame(rows, order[~emitted], names, targets, wallet_type_code, cut)

    # per member, signed micro-points by outcome
    nm = len(names)
    acc = {k: np.zeros(nm, dtype=np.int64) for k in ("points", "residue", "rejected", "review", "opening")}
    np.add.at(acc["points"], rows["member"], sign * rows["points"] * UNITS_PER_POINT)
    np.add.at(acc["residue"], rows["member"], sign * rows["residue"])
    acc["n"] = np.bincount(rows["member"][rows["points"] != 0], minlength=nm).astype(np.int64)
    is_opening = text_column(lots, "source", live) == OPENING_SOURCE
    np.add.at(acc["opening"], ucode[is_opening], units[live[is_opening]])
    np.add.at(acc["rejected"], rej_user, units[rej])
    for code, (_, what, amount) in zip(extra_code.tolist(), extra):
        if what != "carry":
            acc[what][code] += amount
    present = np.zeros(nm, dtype=bool)
    present[ucode] = True
    present[extra_code] = True
    keep = np.flatnonzero(present)
    keep = keep[np.argsort(member_rank[keep], kind="stable")]

    rejects = pd.DataFrame.from_records(rej_rows, columns=list(TRANSFER_REJECT_COLUMNS)).astype(
        {"line": "int64", "points_units": "int64"})
    review = pd.DataFrame.from_records(review_rows, columns=list(REVIEW_COLUMNS)).astype({"deficit_units": "int64"})
    per_member = _per_member(names[keep], targets[keep], {k: v[keep] for k, v in acc.items()})
    residue_total = units_to_decimal(np.asarray([int(acc["residue"].sum())], dtype=np.int64))[0]
    return TransferResult(transfers=transfers, zero=zero, rejects=rejects, review=review, per_member=per_member,
                          residue_total=residue_total)


def _groups(granularity, user, units, act, end, unlock, lot_id) -> dict[str, np.ndarray | int]:
    """One entry per transfer to add: per lot, or per member, expiry and unlock instant."""
    if granularity == "lot":
        return {"n": len(user), "user": user, "units": units, "act": act, "end": end, "unlock": unlock,
                "lot_ids": lot_id, "count": np.ones(len(user), dtype=np.int64)}
    group, n = group_ids(user, end, unlock)
    g_units = np.zeros(n, dtype=np.int64)
    np.add.at(g_units, group, units)
    g_act = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(g_act, group, act)  # registered_on: the oldest lot's accrual
    first = np.full(n, len(group), dtype=np.int64)
    np.minimum.at(first, group, np.arange(len(group), dtype=np.int64))
    return {"n": n, "user": user[first], "units": g_units, "act": g_act, "end": end[first], "unlock": unlock[first],
            "lot_ids": join_sorted(group, lot_id, n), "count": np.bincount(group, minlength=n).astype(np.int64)}


def _unmapped_rows(lots, rows, users, lot_ids, units, source_file) -> list[tuple]:
    """MEMBER_UNMAPPED reject records of the live lots at ``rows`` (a loop over those lots only)."""
    files = text_column(lots, "source_file", rows)
    files[files == ""] = source_file
    lines = (lots["line"].to_numpy(dtype=np.int64)[rows] if "line" in lots.columns
             else np.zeros(len(rows), dtype=np.int64))
    pts = units_to_decimal(units)
    return [(STAGE, f, ln, lid, "user_id", MEMBER_UNMAPPED,
             f"member {u} has no target ID (stage 02): {p} points of lot {lid} not transferred", u, u, lid, p, x)
            for f, ln, lid, u, p, x in zip(files.tolist(), lines.tolist(), lot_ids.tolist(), users.tolist(),
                                           pts.tolist(), units.tolist())]


def _deficits(negative_balances, mapped, mode, source_file, rej_rows, review_rows
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str, int]]]:
    """Route each member's deficit: rejected (unmapped), held for review, or carried. Returns the
    carried (users, units) and, per deficit, (member, "rejected" | "review" | "carry", signed units)."""
    d_user = text_column(negative_balances, "user_id")
    d_units = (negative_balances["deficit_units"].to_numpy(dtype=np.int64)
               if "deficit_units" in negative_balances.columns else _units(negative_balances["deficit"]))
    owing = np.flatnonzero(d_units > 0)  # most members owe nothing: loop over the others only
    decimals = units_to_decimal(d_units[owing])
    extra: list[tuple[str, str, int]] = []
    carry_user, carry_units = [], []
    for u, amt, dec in zip(d_user[owing].tolist(), d_units[owing].tolist(), decimals.tolist()):
        if u not in mapped:
            rej_rows.append((STAGE, source_file, 0, f"deficit:{u}", "user_id", MEMBER_UNMAPPED,
                             f"member {u} has no target ID (stage 02): negative balance -{dec} not carried",
                             u, u, "", -dec, -amt))
            extra.append((u, "rejected", -amt))
        elif mode == "review":
            review_rows.append((u, mapped[u], NEGATIVE_BALANCE, dec, amt,
                                f"negative balance of {dec} points held for review (negative_balance: review)"))
            extra.append((u, "review", -amt))
        else:
            carry_user.append(u)
            carry_units.append(amt)
            extra.append((u, "carry", -amt))
    return np.asarray(carry_user, dtype=object), np.asarray(carry_units, dtype=np.int64), extra


def _transfer_frame(rows: dict[str, np.ndarray], idx: np.ndarray, names: np.ndarray, targets: np.ndarray,
                    wallet: str, cut: int) -> pd.DataFrame:
    """TRANSFER_COLUMNS of the transfer rows at ``idx``, in that order."""
    member, units, residue = rows["member"][idx], rows["units"][idx], rows["residue"][idx]
    end = rows["end"][idx]
    has_end = end != _NAT
    days = np.zeros(len(idx), dtype=np.int64)
    days[has_end] = -((cut - end[has_end]) // _DAY_US)  # ceil of days to expiry
    validity = pd.array(days, dtype="Int64")
    validity[~has_end] = pd.NA
    return column_frame({
        "transfer_id": rows["transfer_id"][idx],
        "legacy_id": names[member],
        "target_id": targets[member],
        "wallet_type_code": np.asarray([wallet] * len(idx), dtype=object),  # one shared str, not one per row
        "type": np.asarray([ADDING, SPENDING], dtype=object)[rows["kind"][idx]],
        "points": rows["points"][idx],
        "points_exact": units_to_decimal(units),
        "residue": units_to_decimal(residue),
        "registered_on": rows["registered_on"][idx],
        "expires_at": rows["expires_at"][idx],
        "unlock_at": rows["unlock_at"][idx],
        "validity_days": validity,
        "lot_ids": rows["lot_ids"][idx],
        "lots": rows["lots"][idx],
        "exact_units": units,
        "residue_units": residue,
    })


def _per_member(users: np.ndarray, targets: np.ndarray, acc: dict[str, np.ndarray]) -> pd.DataFrame:
    points, residue, rejected, review, opening = (acc[k] for k in ("points", "residue", "rejected", "review",
                                                                    "opening"))
    owed = points + residue + rejected + review
    return column_frame({
        "user_id": users,
        "target_id": targets,
        "transfers": acc["n"],
        "points": points // UNITS_PER_POINT,
        "residue": units_to_decimal(residue),
        "points_exact": units_to_decimal(points + residue),
        "rejected": units_to_decimal(rejected),
        "review": units_to_decimal(review),
        "owed": units_to_decimal(owed),
        "owed_units": owed,
        "opening_units": opening,
        "points_units": owed - opening,
    })


def _time_column(frame: pd.DataFrame, us_column: str, iso_column: str, rows: np.ndarray) -> np.ndarray:
    """UTC microseconds (int64 min = none) at ``rows``: the int64 twin ``us_column`` when the frame
    has it (``build_lots``, ``opening_lots``), else parsed from the ISO strings (frames built by hand)."""
    if us_column in frame.columns:
        dtype = frame[us_column].dtype
        if isinstance(dtype, np.dtype) and dtype.kind == "i":  # a hand-built frame's NaN column is float
            return frame[us_column].to_numpy(dtype=np.int64)[rows]
    return iso_us(frame, iso_column, rows)


def iso_us(frame: pd.DataFrame, column: str, rows: np.ndarray | None = None) -> np.ndarray:
    """ISO date-times of ``column`` (at ``rows``) as UTC microseconds, int64 min for "" (none);
    each distinct text is parsed once."""
    codes, uniques = pd.factorize(text_column(frame, column, rows))
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    stamps = pd.DatetimeIndex(pd.to_datetime(text.where(text != "", None), format="ISO8601", utc=True))
    return stamps.tz_convert("UTC").tz_localize(None).as_unit("us").asi8[codes]


def _units(values: pd.Series) -> np.ndarray:
    out = []
    for v in values.tolist():
        if isinstance(v, float):
            raise TypeError(f"points must be Decimal or text, not float ({v!r})")
        scaled = Decimal(str(v)) * UNITS_PER_POINT
        if scaled != scaled.to_integral_value():
            raise ValueError(f"points {v} have more than 6 decimals")
        out.append(int(scaled))
    return np.asarray(out, dtype=np.int64)
