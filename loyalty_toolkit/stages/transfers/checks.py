"""The tables stage 03's gate checks, built independently of the transfer engine.

The gate proves the points owed before = after with tolerance zero, so its figures must not come
from the bookkeeping of the code they check: the transfer side is summed here from the transfer
rows themselves (``produced_per_member``, ``transfer_side``; never ``TransferResult.per_member``),
and every reconciliation, roll-forward, lot and opening-balance figure is turned into exact int64
micro-points before the suites compare them (``expectations/transfers.*.json``). Pure: frames in,
frames out; the step module (``transfers.step``) assembles them into the gate's tables.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.gates import CHECK_TABLE_COLUMNS, EXAMPLE_SEPARATOR
from loyalty_toolkit.model import ADDING, EXPIRED, OPEN, PENDING, SPENDING
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import UNITS_PER_POINT
from loyalty_toolkit.sources.opening_balances import OpeningParse
from loyalty_toolkit.stages.transfers.engine import OPENING_SOURCE, TransferResult
from loyalty_toolkit.stages.transfers.lots import FALLBACK_METHODS

RECONCILE_UNITS = ("owed_ledger", "owed_lots", "transfers", "unallocated", "deficit")


# -- the transfer side of the reconciliation --------------------------------------------------

def produced_per_member(result: TransferResult, o_lots: pd.DataFrame) -> pd.DataFrame:
    """Per member, the ledger points the transfer side accounts for, summed from the rows themselves.

    Emitted and zero-point transfers (points + residue, spending negative), rejected lots and
    deficits (MEMBER_UNMAPPED) and deficits held for review, minus the member's opening lots (the
    ledger does not know them). ``TransferResult.per_member`` is not read: a transfer missing from
    ``transfers`` must show here.
    """
    rows = pd.concat([result.transfers, result.zero], ignore_index=True)
    sign = np.where(rows["type"].to_numpy(dtype=object) == SPENDING, -1, 1)
    parts = [
        (text_column(rows, "legacy_id"),
         sign * (rows["points"].to_numpy(np.int64) * UNITS_PER_POINT + rows["residue_units"].to_numpy(np.int64))),
        (text_column(result.rejects, "legacy_id"), result.rejects["points_units"].to_numpy(np.int64)),
        (text_column(result.review, "legacy_id"), -result.review["deficit_units"].to_numpy(np.int64)),
        (text_column(o_lots, "user_id"), -o_lots["remaining_units"].to_numpy(np.int64)),
    ]
    users = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=object)
    units = np.concatenate([p[1] for p in parts]).astype(np.int64)
    g = pd.Series(units).groupby(pd.Series(users, dtype=object), sort=True).sum()
    return pd.DataFrame({"user_id": pd.Series(g.index.to_numpy(dtype=object), dtype=object),
                         "points_units": g.to_numpy(np.int64)})


def transfer_side(all_lots: pd.DataFrame, result: TransferResult, allocations: pd.DataFrame) -> pd.DataFrame:
    """The transfer side per accrual center and program (columns center, program, points_units).

    Each adding transfer's exact amount is spread over its lots (each lot's remaining, the last
    ledger lot of the transfer taking whatever the transfer holds beyond them, so a transfer that
    is off shows at its center); rejected lots count at their own center. A member's deficit as
    the transfer side carries it (spending transfer, review or MEMBER_UNMAPPED) is spread over the
    deficit pieces of the member's redemptions, at the redemption's center and program, the last
    piece taking the rest. Opening lots are left out: they have no ledger center.
    """
    lot_ids = pd.Index(text_column(all_lots, "lot_id"), dtype=object)
    rem = all_lots["remaining_units"].to_numpy(np.int64)
    center, program = text_column(all_lots, "center"), text_column(all_lots, "program")
    is_open_lot = text_column(all_lots, "source") == OPENING_SOURCE
    rows = pd.concat([result.transfers, result.zero], ignore_index=True)
    spending = rows["type"].to_numpy(dtype=object) == SPENDING
    exact = rows["points"].to_numpy(np.int64) * UNITS_PER_POINT + rows["residue_units"].to_numpy(np.int64)
    add = np.flatnonzero(~spending)
    texts = text_column(rows, "lot_ids")[add]
    if "," in "\n".join(texts.tolist()):
        lists = [s.split(",") if s else [] for s in texts.tolist()]
        t = np.repeat(np.arange(len(add)), [len(x) for x in lists])
        flat = np.asarray([x for xs in lists for x in xs], dtype=object)
    else:  # one lot per transfer (granularity lot): no text to split, millions of times
        t = np.flatnonzero(texts != "")
        flat = texts[t]
    pos = lot_ids.get_indexer(flat) if len(flat) else np.zeros(0, dtype=np.int64)
    opening = np.where(pos >= 0, is_open_lot[np.maximum(pos, 0)], False) if len(pos) else np.zeros(0, bool)
    order = np.lexsort((~opening, t))  # per transfer, opening lots first: the remainder lands on a ledger lot
    t, pos, opening = t[order], pos[order], opening[order]
    amount = np.where(pos >= 0, rem[np.maximum(pos, 0)], 0) if len(pos) else np.zeros(0, np.int64)
    if len(t):
        last = np.r_[t[1:] != t[:-1], True]
        sums = np.zeros(len(add), np.int64)
        np.add.at(sums, t, amount)
        amount[last] += exact[add][t[last]] - sums[t[last]]
    keep = ~opening
    c = np.where(pos >= 0, center[np.maximum(pos, 0)], "")[keep] if len(pos) else np.zeros(0, dtype=object)
    p = np.where(pos >= 0, program[np.maximum(pos, 0)], "")[keep] if len(pos) else np.zeros(0, dtype=object)
    parts = [(c, p, amount[keep])]

    rj = result.rejects
    rj_lot = text_column(rj, "lot_id")
    has_lot = rj_lot != ""
    rpos = lot_ids.get_indexer(rj_lot[has_lot]) if has_lot.any() else np.zeros(0, dtype=np.int64)
    rkeep = ~np.where(rpos >= 0, is_open_lot[np.maximum(rpos, 0)], False) if len(rpos) else np.zeros(0, bool)
    parts.append((np.where(rpos >= 0, center[np.maximum(rpos, 0)], "")[rkeep],
                  np.where(rpos >= 0, program[np.maximum(rpos, 0)], "")[rkeep],
                  rj["points_units"].to_numpy(np.int64)[has_lot][rkeep]))

    # deficits: the transfer side's amount per member, spread over the lot side's deficit pieces
    d_user = np.concatenate([text_column(rows, "legacy_id")[spending], text_column(rj, "legacy_id")[~has_lot],
                             text_column(result.review, "legacy_id")])
    d_units = np.concatenate([-exact[spending], rj["points_units"].to_numpy(np.int64)[~has_lot],
                              -result.review["deficit_units"].to_numpy(np.int64)])
    owed = pd.Series(d_units).groupby(pd.Series(d_user, dtype=object)).sum().to_dict()
    pieces = allocations[text_column(allocations, "lot_id") == ""]
    pu, pc, pp = (text_column(pieces, k) for k in ("user_id", "redemption_center", "redemption_program"))
    pa = -pieces["points_units"].to_numpy(np.int64)
    if len(pu):
        order = np.argsort(pu, kind="stable")
        pu, pc, pp, pa = pu[order], pc[order], pp[order], pa[order].copy()
        last = np.r_[pu[1:] != pu[:-1], True]
        sums = pd.Series(pa).groupby(pd.Series(pu, dtype=object)).sum().to_dict()
        for i in np.flatnonzero(last).tolist():
            pa[i] += owed.get(pu[i], 0) - sums[pu[i]]
    parts.append((pc, pp, pa))
    missing = sorted(set(owed) - set(pu.tolist()))
    parts.append((np.full(len(missing), "", dtype=object), np.full(len(missing), "", dtype=object),
                  np.asarray([owed[u] for u in missing], dtype=np.int64)))
    return pd.DataFrame({"center": pd.Series(np.concatenate([x[0] for x in parts]), dtype=object),
                         "program": pd.Series(np.concatenate([x[1] for x in parts]), dtype=object),
                         "points_units": np.concatenate([x[2] for x in parts]).astype(np.int64)})


# -- the gate's tables, in exact micro-points -------------------------------------------------

def _units(values: pd.Series) -> np.ndarray:
    """Exact int64 micro-points of a Decimal column (the reconciliation's figures)."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    u = np.asarray([int(Decimal(v).scaleb(6)) for v in uniques], dtype=np.int64)
    return u[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def reconciliation_check(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """A ``reconcile()`` frame (per member, center, program or total) as exact int64 micro-points:
    the gate compares ledger, lots and transfer side with tolerance zero."""
    out = pd.DataFrame({key: frame[key].astype(str)})
    for name in RECONCILE_UNITS:
        if name in frame.columns:
            out[f"{name}_units"] = _units(frame[name])
    if "transfers_units" not in out.columns:  # no transfer side: the ledger must still tie to the lots
        out["transfers_units"] = out["owed_ledger_units"]
    return out


def totals_check(total: pd.DataFrame, points: dict[str, Decimal]) -> pd.DataFrame:
    """The total reconciliation plus the headline amounts (``TransfersOutcome.points()``): before,
    after and the parts of after that are not transfers."""
    totals = reconciliation_check(total, "scope")
    for k in ("before", "after", "residue", "rejected", "review"):
        totals[f"{k}_units"] = int(points[k].scaleb(6))
    return totals


def roll_forward_check(rf: pd.DataFrame) -> pd.DataFrame:
    """Per center and program: the closing liability, the movements that should produce it and the
    lots that should hold it; with a point value, the money's difference too."""
    roll = pd.DataFrame({"center": rf["center"].astype(str), "program": rf["program"].astype(str),
                         "closing_units": _units(rf["closing"]),
                         "movements_units": _units(rf["opening"]) + _units(rf["accrued"]) - _units(rf["redeemed"])
                         - _units(rf["expired"]),
                         "lots_units": _units(rf["opening"]) + _units(rf["open"]) + _units(rf["pending"])
                         - _units(rf["deficit"])})
    roll["value_difference"] = 0.0
    if "closing_value" in rf.columns:
        roll["value_difference"] = [float(c - (o + a - r - e)) for c, o, a, r, e in zip(
            rf["closing_value"], rf["opening_value"], rf["accrued_value"], rf["redeemed_value"], rf["expired_value"])]
    return roll


# -- check tables: rows that add up across member slices -------------------------------------

# A check table has one row per rule: how many rows it looked at, how many broke the rule and up
# to CHECK_EXAMPLES of their ids (joined by EXAMPLE_SEPARATOR). The suites expect ``failing`` to
# be 0 on each rule's row; the gate shows the examples (``gates``: check tables). Rows of
# different member slices add up (``combine_checks``), so the gate never holds the millions of
# lots and transfers a slice drops.
CHECK_COLUMNS = CHECK_TABLE_COLUMNS
CHECK_EXAMPLES = 5
_HASH_CHUNK = 1 << 18
LOT_STATUSES = (OPEN, PENDING, EXPIRED)
TRANSFER_TYPES = (ADDING, SPENDING)
LOT_CHECKS = ("lot_id_unique", "lot_not_below_zero", "lot_accrued_is_consumed_plus_remaining", "lot_status_known")
TRANSFER_CHECKS = ("transfer_id_unique", "transfer_id_present", "transfer_points_at_least_one",
                   "transfer_points_whole", "transfer_type_known", "transfer_target_id_present",
                   "transfer_wallet_type_code_present")


def _check_rows(rows: int, checks: list[tuple[str, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """A check table: per rule (name, failing mask, ids), the rows, the failing count and the
    first CHECK_EXAMPLES distinct ids of the failing rows, in row order."""
    out = []
    for name, failing, ids in checks:
        bad = ids[failing]
        examples = pd.unique(bad[:64])[:CHECK_EXAMPLES]
        if len(examples) < CHECK_EXAMPLES and len(bad) > 64:  # the first failures repeat a few ids
            examples = pd.unique(bad)[:CHECK_EXAMPLES]
        out.append({"check": name, "rows": int(rows), "failing": int(failing.sum()),
                    "examples": EXAMPLE_SEPARATOR.join(str(x) for x in examples)})
    return pd.DataFrame(out, columns=list(CHECK_COLUMNS)).astype({"rows": np.int64, "failing": np.int64})


def combine_checks(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The check tables of several member slices as one: per rule (first-seen order) rows and
    failing counts add up; the examples keep the first CHECK_EXAMPLES ids, earlier slices first."""
    rows: dict[str, list] = {}
    for frame in frames:
        for check, n, failing, examples in frame[list(CHECK_COLUMNS)].itertuples(index=False, name=None):
            acc = rows.setdefault(check, [0, 0, []])
            acc[0] += int(n)
            acc[1] += int(failing)
            for x in examples.split(EXAMPLE_SEPARATOR) if examples else []:
                if len(acc[2]) < CHECK_EXAMPLES and x not in acc[2]:
                    acc[2].append(x)
    out = [{"check": c, "rows": n, "failing": f, "examples": EXAMPLE_SEPARATOR.join(ex[:CHECK_EXAMPLES])}
           for c, (n, f, ex) in rows.items()]
    return pd.DataFrame(out, columns=list(CHECK_COLUMNS)).astype({"rows": np.int64, "failing": np.int64})


def _repeated(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Rows whose (present) text occurs more than once among the present values, every copy.

    Exact, and cheap on millions of ids: a 64-bit hash per value (pandas' C hashing; factorizing
    the text costs five times as much) and a sort find the candidates, and only those few rows
    are compared as text, so a hash collision cannot pass for a repeat."""
    out = np.zeros(len(values), dtype=bool)
    if not present.any():
        return out
    # a chunk at a time: pandas keeps every value's UTF-8 bytes alive until the chunk is hashed
    hashes = np.concatenate([pd.util.hash_array(values[lo:lo + _HASH_CHUNK], categorize=False)
                             for lo in range(0, len(values), _HASH_CHUNK)])
    ordered = np.sort(hashes[present])
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(twice):
        return out
    candidates = np.flatnonzero(present & np.isin(hashes, twice))
    out[candidates] = pd.Series(values[candidates], dtype=object).duplicated(keep=False).to_numpy()
    return out


def _not_in(values: np.ndarray, allowed: tuple[str, ...]) -> np.ndarray:
    """Rows whose text is not one of ``allowed`` (each distinct value compared once)."""
    codes, uniques = pd.factorize(values)
    ok = np.isin(np.asarray(uniques, dtype=object), np.asarray(allowed, dtype=object))
    return ~ok[codes] if len(codes) else np.zeros(0, dtype=bool)


def lots_check(all_lots: pd.DataFrame) -> pd.DataFrame:
    """The lot rules as a check table (``CHECK_COLUMNS``), one row per rule of LOT_CHECKS: lot id
    unique, no lot below zero, accrued = consumed + remaining, status open, pending or expired.

    The examples are lot ids. Uniqueness is checked within the lots given, which is enough when
    they are one member slice of a whole ledger: a ledger lot id is the accrual's guestpointsid,
    which ``parse_ledger`` keeps unique over the whole file before any slicing (a repeat is
    rejected as GUESTPOINTSID_DUPLICATE), or ``line:<n>`` for an accrual without one, unique by
    its line; an opening lot's id is ``opening:`` + a hash of the row's phone and email key,
    which ``parse_opening`` keeps unique over its file (OPENING_DUPLICATE). So two slices cannot
    share a lot id unless those whole-file rules failed, which their own tests cover. (The ids do
    not embed the member: a per-slice check rests on the whole-file rules, not on the slicing.)
    """
    al = all_lots
    ids = text_column(al, "lot_id")
    accrued, consumed, remaining = (al[c].to_numpy(np.int64) for c in
                                    ("accrued_units", "consumed_units", "remaining_units"))
    return _check_rows(len(al), [
        ("lot_id_unique", _repeated(ids, np.ones(len(ids), dtype=bool)), ids),
        ("lot_not_below_zero", remaining < 0, ids),
        ("lot_accrued_is_consumed_plus_remaining", accrued != consumed + remaining, ids),
        ("lot_status_known", _not_in(text_column(al, "status"), LOT_STATUSES), ids),
    ])


def transfers_check(transfers: pd.DataFrame) -> pd.DataFrame:
    """The rules of the unit transfers produced, as a check table (``CHECK_COLUMNS``), one row per
    rule of TRANSFER_CHECKS: transfer id unique and present, points >= 1 and whole, type adding or
    spending, target_id and wallet_type_code non-empty. The examples are transfer ids (the row's
    position, ``#<n>``, for a transfer without one).

    Stricter than the GX column checks they replace in one way: a missing (null) value breaks
    every rule here, where GX skipped nulls. Points are whole when the column is an integer
    column; in any other column a fractional or missing value breaks the rule, and so does every
    value of a float column (the files would carry ``10.0``: the target refuses fractions).
    Uniqueness within a member slice is enough: an id is the UUIDv5 of the transfer's sorted lot
    ids and wallet (lot ids are unique over the ledger, see ``lots_check``) or of ``deficit:``
    and the member, and a member's transfers are all in one slice.
    """
    t = transfers
    n = len(t)
    raw_id = t["transfer_id"].to_numpy(dtype=object)
    has_id = ~pd.isna(raw_id)
    ids = text_column(t, "transfer_id")
    has_id &= ids != ""
    shown = ids.copy()
    if not has_id.all():
        shown[~has_id] = [f"#{i}" for i in np.flatnonzero(~has_id).tolist()]
    points = t["points"]
    values = pd.to_numeric(points, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_integer_dtype(points.dtype):
        whole = np.ones(n, dtype=bool)
    elif pd.api.types.is_float_dtype(points.dtype):
        whole = np.zeros(n, dtype=bool)
    else:  # object: each value must be an int itself
        whole = np.asarray([isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                            for v in points.tolist()], dtype=bool)
    # a float column fails as a whole; its fractional (or missing) values come first as examples
    order = np.argsort(np.floor(values) == values, kind="stable") if not whole.all() else slice(None)
    return _check_rows(n, [
        ("transfer_id_unique", _repeated(ids, has_id), shown),
        ("transfer_id_present", ~has_id, shown),
        ("transfer_points_at_least_one", ~(values >= 1), shown),
        ("transfer_points_whole", ~whole[order], shown[order]),
        ("transfer_type_known", _not_in(text_column(t, "type"), TRANSFER_TYPES), shown),
        ("transfer_target_id_present", text_column(t, "target_id") == "", shown),
        ("transfer_wallet_type_code_present", text_column(t, "wallet_type_code") == "", shown),
    ])


def opening_check(opening: OpeningParse | None, all_lots: pd.DataFrame, unmatched: pd.DataFrame) -> pd.DataFrame:
    """One row when opening balances were read (none otherwise): every accepted row and point became
    an opening lot or an unmatched row, and the conversion to points lost nothing but its residue."""
    if opening is None:
        return pd.DataFrame(columns=["rows_accepted", "rows_accounted", "rows_unmatched", "points_accepted",
                                     "points_accounted", "exact_difference"])
    o, um = opening, unmatched
    matched = all_lots[text_column(all_lots, "source") == OPENING_SOURCE]
    points_matched = int(matched["accrued_units"].sum()) // UNITS_PER_POINT
    return pd.DataFrame([{
        "rows_accepted": len(o.balances), "rows_accounted": len(matched) + len(um), "rows_unmatched": len(um),
        "points_accepted": o.points_total, "points_accounted": points_matched + int(um["points"].sum()),
        "exact_difference": float(o.points_exact_total - (o.points_total + o.residue_total))}])


def fallbacks_check(fallbacks: pd.DataFrame) -> pd.DataFrame:
    """Redemptions matched to lots by a fallback method, one row per method (a warning)."""
    fb = fallbacks
    return fb.loc[fb["method"].isin(FALLBACK_METHODS), ["method", "redemptions"]].reset_index(drop=True)
