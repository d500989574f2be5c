"""Stage 03 logic: open point lots (ledger and opening balances) become the target's unit transfers.

Pure functions over frames; no I/O. Points are exact int64 micro-points inside (``*_units``, as in
``stages.lots``); ``Decimal`` appears only in reported columns.

:func:`opening_lots` matches each opening-balance row to ONE accepted member by phone AND email
together (seed 003): the pair must be held by exactly one member (invariant 6), and that member
must be mapped to a target ID. Matched rows become open lots shaped like ``LotResult.lots``
(program = the rule's action name, center ``opening``, ``source`` ``opening``) holding the WHOLE
points ``parse_opening`` already rounded once; their residue is reported there, never rounded
again here (rounding a whole number is a no-op, so build_transfers adds no residue for them).

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
   legacy_id, adding before spending, oldest ``registered_on`` first, then soonest expiry (never last).
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
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.config import ROUNDING_MODES
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources.ledger import UNITS_PER_POINT, units_to_decimal
from loyalty_toolkit.stages.lots import LOT_COLUMNS, OPEN, PENDING, datetime_us, text_column

STAGE = "transfers"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "loyalty-migrate:unit-transfer")
OPENING_SOURCE, OPENING_CENTER = "opening", "opening"
ADDING, SPENDING = "adding", "spending"

OPENING_NO_MEMBER = "OPENING_NO_MEMBER"
OPENING_MEMBER_AMBIGUOUS = "OPENING_MEMBER_AMBIGUOUS"
OPENING_MEMBER_UNMAPPED = "OPENING_MEMBER_UNMAPPED"
MEMBER_UNMAPPED = "MEMBER_UNMAPPED"
NEGATIVE_BALANCE = "NEGATIVE_BALANCE"

OPENING_LOT_COLUMNS = (*LOT_COLUMNS, "source", "source_file")
UNMATCHED_COLUMNS = (*REJECT_COLUMNS, "legacy_id", "lot_id", "points", "points_exact", "residue")
TRANSFER_COLUMNS = ("transfer_id", "legacy_id", "target_id", "wallet_type_code", "type", "points", "points_exact",
                    "residue", "registered_on", "expires_at", "unlock_at", "validity_days", "lot_ids", "lots",
                    "exact_units", "residue_units")
TRANSFER_REJECT_COLUMNS = (*REJECT_COLUMNS, "legacy_id", "lot_id", "points", "points_units")
REVIEW_COLUMNS = ("legacy_id", "target_id", "reason", "deficit", "deficit_units", "message")
PER_MEMBER_COLUMNS = ("user_id", "target_id", "transfers", "points", "residue", "points_exact", "rejected", "review",
                      "owed", "owed_units", "opening_units", "points_units")
_NAT = np.iinfo(np.int64).min
_DAY_US = 86_400 * 1_000_000


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


def deficit_transfer_id(legacy_id: str, wallet_type_code: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"deficit:{legacy_id}|{wallet_type_code}"))


def _id_map(id_map: pd.DataFrame) -> dict[str, str]:
    legacy = text_column(id_map, "legacy_id")
    if len(set(legacy.tolist())) != len(legacy):
        raise ValueError("id_map must hold each legacy_id once")
    return dict(zip(legacy.tolist(), text_column(id_map, "target_id").tolist()))


# ---------------------------------------------------------------- opening balances -> lots


def opening_lots(balances: pd.DataFrame, members: pd.DataFrame, id_map: pd.DataFrame
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lots, unmatched): each ``parse_opening`` balance matched to one member by phone AND email key.

    ``members``: accepted members with legacy_id, email_key, phone (E.164). ``unmatched``
    (UNMATCHED_COLUMNS, reasons OPENING_NO_MEMBER, OPENING_MEMBER_AMBIGUOUS,
    OPENING_MEMBER_UNMAPPED) carries each row's points so opening points are conserved:
    sum(balances.points) == sum(lots.remaining) + sum(unmatched.points).
    """
    mapped = _id_map(id_map)
    m_id, m_phone, m_email = (text_column(members, c) for c in ("legacy_id", "phone", "email_key"))
    by_pair: dict[tuple[str, str], set[str]] = {}
    by_phone: dict[str, set[str]] = {}
    by_email: dict[str, set[str]] = {}
    for lid, ph, em in zip(m_id.tolist(), m_phone.tolist(), m_email.tolist()):
        if ph:
            by_phone.setdefault(ph, set()).add(lid)
        if em:
            by_email.setdefault(em, set()).add(lid)
        if ph and em:
            by_pair.setdefault((ph, em), set()).add(lid)

    lots, unmatched = [], []
    for row in balances.itertuples(index=False):
        owners = sorted(by_pair.get((row.phone, row.email_key), ()))
        legacy, code = "", ""
        if not owners:
            code = OPENING_NO_MEMBER
            ph, em = sorted(by_phone.get(row.phone, ())), sorted(by_email.get(row.email_key, ()))
            if ph and em:
                msg = (f"no member has both: the phone is member {', '.join(ph)}'s, "
                       f"the email member {', '.join(em)}'s")
            elif ph or em:
                msg = (f"the {'phone' if ph else 'email'} is member {', '.join(ph or em)}'s, "
                       f"but the {'email' if ph else 'phone'} is not")
            else:
                msg = "no accepted member has this phone or this email"
        elif len(owners) > 1:
            code = OPENING_MEMBER_AMBIGUOUS
            msg = f"phone and email are shared by members {', '.join(owners)}: not picked (invariant 6)"
        elif owners[0] not in mapped:
            legacy, code = owners[0], OPENING_MEMBER_UNMAPPED
            msg = f"member {legacy} has no target ID (stage 02): the opening points cannot be transferred"
        else:
            legacy = owners[0]
        file = getattr(row, "source_file", "")
        if code:
            unmatched.append((STAGE, file, int(row.line), row.lot_id, "phone+email", code,
                              f"opening balance of {row.points} points: {msg}", f"{row.phone}|{row.email}",
                              legacy, row.lot_id, int(row.points), row.points_exact, row.residue))
            continue
        pts = Decimal(int(row.points))
        units = int(row.points) * UNITS_PER_POINT
        lots.append((row.lot_id, legacy, pts, Decimal(0), pts, OPEN, row.effective_end, row.effective_start,
                     row.action_name, OPENING_CENTER, int(row.line), row.effective_start, units, 0, units,
                     OPENING_SOURCE, file))
    lot_frame = pd.DataFrame.from_records(lots, columns=list(OPENING_LOT_COLUMNS))
    lot_frame = lot_frame.astype({"line": "int64", "accrued_units": "int64", "consumed_units": "int64",
                                  "remaining_units": "int64"})
    um = pd.DataFrame.from_records(unmatched, columns=list(UNMATCHED_COLUMNS)).astype({"line": "int64",
                                                                                        "points": "int64"})
    return lot_frame, um


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
    live = np.isin(status, (OPEN, PENDING)) & (units > 0)
    user = text_column(lots, "user_id")
    is_mapped = np.fromiter((u in mapped for u in user.tolist()), dtype=bool, count=len(user))
    opening = text_column(lots, "source") == OPENING_SOURCE
    files = text_column(lots, "source_file")
    files[files == ""] = source_file
    lines = lots["line"].to_numpy(dtype=np.int64) if "line" in lots.columns else np.zeros(len(lots), np.int64)

    rej_rows: list[tuple] = []
    for i in np.flatnonzero(live & ~is_mapped).tolist():
        pts = units_to_decimal(units[i:i + 1])[0]
        rej_rows.append((STAGE, files[i], int(lines[i]), lot_id[i], "user_id", MEMBER_UNMAPPED,
                         f"member {user[i]} has no target ID (stage 02): {pts} points of lot {lot_id[i]} "
                         "not transferred", user[i], user[i], lot_id[i], pts, int(units[i])))

    sel = np.flatnonzero(live & is_mapped)
    act = _iso_us(lots, "action_at_utc", sel)
    if (act == _NAT).any():
        raise ValueError("every open or pending lot needs action_at_utc (its accrual time)")
    end = _iso_us(lots, "expires_at_utc", sel)
    unlock = np.where(status[sel] == PENDING, _iso_us(lots, "unlock_at_utc", sel), _NAT)
    if granularity == "lot":
        group = np.arange(len(sel), dtype=np.int64)
    else:
        keys = pd.MultiIndex.from_arrays([user[sel], end, unlock])
        group = pd.factorize(keys)[0].astype(np.int64) if len(sel) else np.zeros(0, dtype=np.int64)
    n = int(group.max()) + 1 if len(group) else 0
    g_units = np.zeros(n, dtype=np.int64)
    np.add.at(g_units, group, units[sel])
    g_act = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(g_act, group, act)
    first = np.unique(group, return_index=True)[1]  # the first row of each group (groups are 0..n-1)
    g_ids: list[list[str]] = [[] for _ in range(n)]
    for g, lid in zip(group.tolist(), lot_id[sel].tolist()):
        g_ids[g].append(lid)
    g_user = user[sel][first]
    rows = _rows(g_user, [mapped[u] for u in g_user.tolist()], ADDING, g_units, rounding, wallet_type_code,
                 [transfer_id(ids, wallet_type_code) for ids in g_ids], g_act, end[first], unlock[first], cut,
                 [",".join(sorted(ids)) for ids in g_ids], [len(ids) for ids in g_ids])

    # per member, signed micro-points by outcome
    acc: dict[str, dict[str, int]] = {}

    def add(member: str, what: str, amount: int) -> None:
        acc.setdefault(member, {"points": 0, "residue": 0, "rejected": 0, "review": 0, "opening": 0, "n": 0})
        acc[member][what] += amount

    for i in np.flatnonzero(live).tolist():
        if opening[i]:
            add(user[i], "opening", int(units[i]))
    for i in np.flatnonzero(live & ~is_mapped).tolist():
        add(user[i], "rejected", int(units[i]))

    review_rows: list[tuple] = []
    if negative_balances is not None and len(negative_balances):
        carry = _deficits(negative_balances, mapped, negative_mode, source_file, rej_rows, review_rows, add)
        if len(carry):
            m, cu = len(carry), carry["user_id"].to_numpy(dtype=object)
            rows = pd.concat([rows, _rows(cu, [mapped[u] for u in cu.tolist()], SPENDING, carry["units"], rounding,
                                          wallet_type_code, [deficit_transfer_id(u, wallet_type_code) for u in cu],
                                          np.full(m, cut), np.full(m, _NAT), np.full(m, _NAT), cut,
                                          [""] * m, [0] * m)], ignore_index=True)

    sign = np.where(rows["type"].to_numpy(dtype=object) == SPENDING, -1, 1)
    for u, p, r, s in zip(rows["legacy_id"].tolist(), rows["points"].tolist(), rows["residue_units"].tolist(),
                          sign.tolist()):
        add(u, "points", s * p * UNITS_PER_POINT)
        add(u, "residue", s * r)
        if p:
            add(u, "n", 1)

    # file order: per member, adding before spending, oldest first, then soonest expiry ("" = never, last)
    rows["_kind"] = (rows["type"] == SPENDING).astype(np.int8)
    rows["_end"] = rows["expires_at"].where(rows["expires_at"] != "", "~")
    rows = rows.sort_values(["legacy_id", "_kind", "registered_on", "_end", "unlock_at", "lot_ids", "transfer_id"],
                            kind="stable").drop(columns=["_kind", "_end"]).reset_index(drop=True)
    emitted = rows["points"].to_numpy(dtype=np.int64) > 0
    transfers = rows[emitted].reset_index(drop=True)
    zero = rows[~emitted].reset_index(drop=True)

    rejects = pd.DataFrame.from_records(rej_rows, columns=list(TRANSFER_REJECT_COLUMNS)).astype(
        {"line": "int64", "points_units": "int64"})
    review = pd.DataFrame.from_records(review_rows, columns=list(REVIEW_COLUMNS)).astype({"deficit_units": "int64"})
    per_member = _per_member(acc, mapped)
    residue_total = units_to_decimal(np.asarray([sum(a["residue"] for a in acc.values())], dtype=np.int64))[0]
    return TransferResult(transfers=transfers, zero=zero, rejects=rejects, review=review, per_member=per_member,
                          residue_total=residue_total)


def _deficits(negative_balances, mapped, mode, source_file, rej_rows, review_rows, add) -> pd.DataFrame:
    """Route each member's deficit: rejected (unmapped), held for review, or returned to be carried."""
    d_user = text_column(negative_balances, "user_id")
    d_units = (negative_balances["deficit_units"].to_numpy(dtype=np.int64)
               if "deficit_units" in negative_balances.columns else _units(negative_balances["deficit"]))
    carry = []
    for u, amt in zip(d_user.tolist(), d_units.tolist()):
        if amt <= 0:
            continue
        dec = units_to_decimal(np.asarray([amt]))[0]
        if u not in mapped:
            rej_rows.append((STAGE, source_file, 0, f"deficit:{u}", "user_id", MEMBER_UNMAPPED,
                             f"member {u} has no target ID (stage 02): negative balance -{dec} not carried",
                             u, u, "", -dec, -amt))
            add(u, "rejected", -amt)
        elif mode == "review":
            review_rows.append((u, mapped[u], NEGATIVE_BALANCE, dec, amt,
                                f"negative balance of {dec} points held for review (negative_balance: review)"))
            add(u, "review", -amt)
        else:
            carry.append((u, amt))
    return pd.DataFrame(carry, columns=["user_id", "units"]).astype({"units": "int64"})


def _rows(users, targets, kind, total_units, rounding, wallet, ids, act, end, unlock, cut, lot_ids, counts
          ) -> pd.DataFrame:
    total_units = np.asarray(total_units, dtype=np.int64)
    rounded = round_units(total_units, rounding)
    residue = total_units - rounded * UNITS_PER_POINT
    end = np.asarray(end, dtype=np.int64)
    has_end = end != _NAT
    days = pd.array(np.where(has_end, -((cut - end) // _DAY_US), 0), dtype="Int64")  # ceil of days to expiry
    days[~has_end] = pd.NA
    return pd.DataFrame({
        "transfer_id": pd.Series(ids, dtype=object),
        "legacy_id": pd.Series(np.asarray(users, dtype=object), dtype=object),
        "target_id": pd.Series(targets, dtype=object),
        "wallet_type_code": pd.Series([wallet] * len(ids), dtype=object),
        "type": pd.Series([kind] * len(ids), dtype=object),
        "points": rounded,
        "points_exact": pd.Series(units_to_decimal(total_units), dtype=object),
        "residue": pd.Series(units_to_decimal(residue), dtype=object),
        "registered_on": pd.Series(format_utc(act), dtype=object),
        "expires_at": pd.Series(format_utc(end), dtype=object),
        "unlock_at": pd.Series(format_utc(unlock), dtype=object),
        "validity_days": days,
        "lot_ids": pd.Series(lot_ids, dtype=object),
        "lots": np.asarray(counts, dtype=np.int64),
        "exact_units": total_units,
        "residue_units": residue,
    }, columns=list(TRANSFER_COLUMNS))


def _per_member(acc: dict[str, dict[str, int]], mapped: dict[str, str]) -> pd.DataFrame:
    users = sorted(acc)

    def col(key: str) -> np.ndarray:
        return np.asarray([acc[u][key] for u in users], dtype=np.int64)

    points, residue, rejected, review, opening = (col(k) for k in ("points", "residue", "rejected", "review",
                                                                    "opening"))
    owed = points + residue + rejected + review
    return pd.DataFrame({
        "user_id": pd.Series(users, dtype=object),
        "target_id": pd.Series([mapped.get(u, "") for u in users], dtype=object),
        "transfers": col("n"),
        "points": points // UNITS_PER_POINT,
        "residue": pd.Series(units_to_decimal(residue), dtype=object),
        "points_exact": pd.Series(units_to_decimal(points + residue), dtype=object),
        "rejected": pd.Series(units_to_decimal(rejected), dtype=object),
        "review": pd.Series(units_to_decimal(review), dtype=object),
        "owed": pd.Series(units_to_decimal(owed), dtype=object),
        "owed_units": owed,
        "opening_units": opening,
        "points_units": owed - opening,
    }, columns=list(PER_MEMBER_COLUMNS))


def format_utc(utc_us: np.ndarray) -> np.ndarray:
    """UTC microseconds (int64 min = none) as ``YYYY-MM-DD HH:MM:SS`` (fraction dropped), "" for none."""
    utc_us = np.asarray(utc_us, dtype=np.int64)
    out = np.full(len(utc_us), "", dtype=object)
    real = utc_us != _NAT
    if real.any():
        text = np.datetime_as_string((utc_us[real] // 1_000_000).view("datetime64[s]"), unit="s")
        out[real] = np.char.replace(text, "T", " ").astype(object)
    return out


def _iso_us(frame: pd.DataFrame, column: str, rows: np.ndarray) -> np.ndarray:
    """ISO date-times of ``column`` at ``rows`` as UTC microseconds, int64 min for "" (none)."""
    text = pd.Series(text_column(frame, column, rows), dtype=object)
    if not len(text):
        return np.zeros(0, dtype=np.int64)
    stamps = pd.DatetimeIndex(pd.to_datetime(text.where(text != "", None), format="ISO8601", utc=True))
    return stamps.tz_convert("UTC").tz_localize(None).as_unit("us").asi8.copy()


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
