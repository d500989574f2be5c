"""The tables stage 03's gate checks, built independently of the transfer engine.

The gate proves the points owed before = after with tolerance zero, so its figures must not come
from the bookkeeping of the code they check: the transfer side is summed here from the transfer
rows themselves (``produced_per_member``, ``transfer_side``; never ``TransferResult.per_member``),
and every reconciliation, roll-forward, lot and opening-balance figure is turned into exact int64
micro-points before the suites compare them (``expectations/transfers.*.json``). Pure: frames in,
frames out; the step module (``s03_transfers``) assembles them into the gate's tables.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.sources.ledger import UNITS_PER_POINT
from loyalty_toolkit.sources.opening_balances import OpeningParse
from loyalty_toolkit.stages.lots import FALLBACK_METHODS, text_column
from loyalty_toolkit.stages.transfers import OPENING_SOURCE, SPENDING, TransferResult

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


def lots_check(all_lots: pd.DataFrame) -> pd.DataFrame:
    """Each lot (ledger and opening): what it accrued against what it consumed + kept, and what is left."""
    al = all_lots
    return pd.DataFrame({"lot_id": text_column(al, "lot_id"), "status": text_column(al, "status"),
                         "accrued_units": al["accrued_units"].to_numpy(np.int64),
                         "accounted_units": al["consumed_units"].to_numpy(np.int64)
                         + al["remaining_units"].to_numpy(np.int64),
                         "remaining_units": al["remaining_units"].to_numpy(np.int64)})


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
