"""Prove the points owed at the cutover two independent ways, tolerance zero, and roll them forward.

(a) ``owed_ledger``: the signed ledger summed straight from ``entries`` (accruals - redemptions,
    entries up to the cutover), minus what is left on lots that expired by the cutover.
(b) ``owed_lots``: what the lot engine left: open remaining + pending remaining - deficit.

(a) never reads ``LotResult.balances``. Both sides find the member, center and program of a lot
or an allocation through its ledger line in ``entries``, never through the engine's own labels, so
a lot engine that drops, doubles, mis-sizes or mis-assigns an allocation shows as a non-zero
``difference``.

Per center and per program a redemption is attributed where the liability it settles was booked:
to the accrual center and program of the lot it consumed (a deficit, which consumed no lot, to the
redemption's own payment center and program). Redemptions paid at another center than the lot's
are listed separately (:func:`cross_center_redemptions`) and counted in the roll-forward as
``cross_center_out`` (this center's lots redeemed elsewhere) and ``cross_center_in``.

Sums run on exact int64 micro-points; reported figures are ``Decimal``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import numpy as np
import pandas as pd

from loyalty_toolkit.model import EXPIRED, OPEN, PENDING
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import ACCRUAL, REDEMPTION, UNITS_PER_POINT, units_to_decimal
from loyalty_toolkit.stages.transfers.lots import (
    LotResult,
    category_codes,
    datetime_us,
    entry_action_us,
    entry_points_units,
)

By = Literal["member", "center", "program", "total"]
_KEYS = {"member": "user_id", "center": "center", "program": "program", "total": "scope"}
_FIGURES = ("accrued", "redeemed", "expired", "owed_ledger", "open", "pending", "deficit", "owed_lots",
            "difference", "allocated", "unallocated")
# The entry columns the reconciliation reads (points and action time also as points / *_ts / *_utc
# in hand-built entries; center from accrual_center / payment_center when there is no center)
RECONCILE_COLUMNS = ("line", "user_id", "kind", "points_units", "points", "action_at_us", "action_at_ts",
                     "action_at_utc", "program", "center", "accrual_center", "payment_center")
ROLL_FORWARD_COLUMNS = ("center", "program", "opening", "accrued", "redeemed", "expired", "closing",
                        "open", "pending", "deficit", "difference", "cross_center_out", "cross_center_in")


def reconcile(entries: pd.DataFrame, lot_result: LotResult, transfers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per member: (a) ``owed_ledger``, (b) ``owed_lots`` and ``difference`` = (a) - (b), all Decimal.

    Also the parts (accrued, redeemed, expired; open, pending, deficit), ``allocated`` (the
    allocation pieces of the member's redemptions) with ``unallocated`` = redeemed - allocated,
    and ``ok`` (both differences zero). With
    ``transfers`` (user_id and points as Decimal or points_units, one row per unit transfer
    produced, rejected ones included), ``transfers`` and ``transfer_difference`` = (a) - transfers.
    """
    return reconcile_by(entries, lot_result, by="member", transfers=transfers)


def reconcile_by(entries: pd.DataFrame, lot_result: LotResult, *, by: By = "member",
                 transfers: pd.DataFrame | None = None) -> pd.DataFrame:
    """The reconciliation of :func:`reconcile` per ``member``, accrual ``center``, ``program`` or in
    ``total`` (one row, scope "total"); rows in order of first appearance in the ledger.
    ``entries`` must have one row per ledger line: lots and allocations are found by line.

    Per center and program, accruals count where they were earned and redemptions where the lot
    they consumed was earned. ``transfers`` are compared when they carry the roll-up's column
    (``center``/``program``; always for member and total).
    """
    return Reconciliation(entries, lot_result).by(by, transfers=transfers)


def roll_forward(entries: pd.DataFrame, lot_result: LotResult, *, opening: pd.DataFrame | None = None,
                 point_value: Decimal | None = None) -> pd.DataFrame:
    """Per accrual center and program: opening + accrued - redeemed - expired = closing, in points.

    ``accrued`` comes from the ledger; ``redeemed`` is attributed to the lot's center and program
    (a deficit to the redemption's own); ``expired`` is what expired lots still held at the
    cutover. ``open``, ``pending`` and ``deficit`` come from the lots, and ``difference`` =
    closing - (opening + open + pending - deficit) must be zero. ``opening`` (columns center,
    program, opening as Decimal) is carried, not recomputed: the ledger is then the period's
    movements. With ``point_value`` (Decimal per point) every figure gets a ``*_value`` twin: the
    exact product, unrounded, so the identity holds in money too; round only for display.
    """
    return Reconciliation(entries, lot_result).roll_forward(opening=opening, point_value=point_value)


class Reconciliation:
    """The ledger and the lot engine's result located by ledger line once, then rolled up as many
    ways as asked (:func:`reconcile_by`, :func:`roll_forward`): at ten million entries, locating
    the lots and allocations is most of the work."""

    def __init__(self, entries: pd.DataFrame, lot_result: LotResult) -> None:
        self._ledger = _Ledger(entries, lot_result)

    def by(self, by: By = "member", transfers: pd.DataFrame | None = None) -> pd.DataFrame:
        """:func:`reconcile_by`."""
        if by not in _KEYS:
            raise ValueError(f"by must be one of {sorted(_KEYS)}")
        led = self._ledger
        if by == "member":
            key, names = led.codes("user_id")
        elif by == "total":
            key, names = np.zeros(len(led.entries), dtype=np.int64), np.asarray(["total"], dtype=object)
        else:
            key, names = led.codes("center" if by == "center" else "program")
        f = led.figures(key, len(names), redeemed_from_ledger=by in ("member", "total"))
        f["owed_ledger"] = f["accrued"] - f["redeemed"] - f["expired"]
        f["owed_lots"] = f["open"] + f["pending"] - f["deficit"]
        f["difference"] = f["owed_ledger"] - f["owed_lots"]
        f["unallocated"] = f["redeemed"] - f["allocated"]
        present = f.pop("present")
        if by == "total":
            present[:] = True  # the total is reported even for an empty ledger
        figures = list(_FIGURES)
        col = _KEYS[by]
        if transfers is not None and (by == "total" or col in transfers.columns):
            t_units = entry_points_units(transfers)
            if by == "total":
                t_key = np.zeros(len(transfers), dtype=np.int64)
            else:
                t_key = pd.Index(names, dtype=object).get_indexer(text_column(transfers, col))
                new = pd.unique(text_column(transfers, col)[t_key < 0])
                if len(new):  # transfers for a key the ledger never saw must show, not vanish
                    names = np.concatenate([names, np.asarray(new, dtype=object)])
                    t_key = pd.Index(names, dtype=object).get_indexer(text_column(transfers, col))
                    f = {k: np.concatenate([v, np.zeros(len(new), dtype=v.dtype)]) for k, v in f.items()}
                    present = np.concatenate([present, np.ones(len(new), dtype=bool)])
            f["transfers"] = _per_key(len(names), t_key, t_units)
            f["transfer_difference"] = f["owed_ledger"] - f["transfers"]
            figures += ["transfers", "transfer_difference"]
        out = pd.DataFrame({col: pd.Series(names[present], dtype=object)})
        for name in figures:
            out[name] = units_to_decimal(f[name][present])
        ok = (f["difference"][present] == 0) & (f["unallocated"][present] == 0)
        if "transfer_difference" in f:
            ok &= f["transfer_difference"][present] == 0
        out["ok"] = ok
        return out

    def roll_forward(self, opening: pd.DataFrame | None = None, point_value: Decimal | None = None) -> pd.DataFrame:
        """:func:`roll_forward`."""
        led = self._ledger
        c_key, centers = led.codes("center")
        p_key, programs = led.codes("program")
        # (center, program) pairs: few, so a lookup table over their codes, not a hash of ten
        # million keys (their order is irrelevant: the rows are sorted by name below)
        pair = c_key * max(len(programs), 1)
        pair += p_key
        del c_key, p_key
        seen = np.bincount(pair, minlength=len(centers) * max(len(programs), 1)) > 0
        pair_codes = np.flatnonzero(seen)
        remap = np.full(len(seen), -1, dtype=np.int64)
        remap[pair_codes] = np.arange(len(pair_codes))
        pair_key = remap[pair]
        del pair
        n = len(pair_codes)
        f = led.figures(pair_key, n, redeemed_from_ledger=False)
        keep = f.pop("present")
        center_of = centers[pair_codes // max(len(programs), 1)] if n else np.zeros(0, dtype=object)
        program_of = programs[pair_codes % max(len(programs), 1)] if n else np.zeros(0, dtype=object)

        # cross-center: out where the lot was earned, in where it was redeemed
        cross = led.alloc_cross
        f["cross_center_out"] = _per_key(n, pair_key[led.alloc_attr_row[cross]], led.alloc_pts[cross])
        f["cross_center_in"] = _per_key(n, pair_key[led.alloc_red_row[cross]], led.alloc_pts[cross])
        keep |= f["cross_center_in"] > 0

        opening_units = np.zeros(n, dtype=np.int64)
        if opening is not None and len(opening):
            index = {(c, p): i for i, (c, p) in enumerate(zip(center_of.tolist(), program_of.tolist()))}
            extra_c, extra_p, extra_u = [], [], []
            for c, p, v in zip(text_column(opening, "center"), text_column(opening, "program"), opening["opening"]):
                u = _to_units(v)
                if (c, p) in index:
                    opening_units[index[(c, p)]] += u
                else:  # an opening balance with no movement in the period still rolls forward
                    index[(c, p)] = n + len(extra_c)
                    extra_c.append(c)
                    extra_p.append(p)
                    extra_u.append(u)
            if extra_c:
                grow = len(extra_c)
                f = {k: np.concatenate([v, np.zeros(grow, dtype=np.int64)]) for k, v in f.items()}
                opening_units = np.concatenate([opening_units, np.asarray(extra_u, dtype=np.int64)])
                center_of = np.concatenate([center_of, np.asarray(extra_c, dtype=object)])
                program_of = np.concatenate([program_of, np.asarray(extra_p, dtype=object)])
                keep = np.concatenate([keep, np.ones(grow, dtype=bool)])
            keep |= opening_units != 0
        f["opening"] = opening_units
        f["closing"] = f["opening"] + f["accrued"] - f["redeemed"] - f["expired"]
        f["difference"] = f["closing"] - (f["opening"] + f["open"] + f["pending"] - f["deficit"])

        order = np.lexsort((program_of[keep].astype(str), center_of[keep].astype(str)))
        out = pd.DataFrame({"center": pd.Series(center_of[keep][order], dtype=object),
                            "program": pd.Series(program_of[keep][order], dtype=object)})
        for name in ROLL_FORWARD_COLUMNS[2:]:
            out[name] = units_to_decimal(f[name][keep][order])
        if point_value is not None:
            if isinstance(point_value, float):
                raise TypeError("point_value must be a Decimal (or text), not a float")
            value = Decimal(point_value)
            for name in ROLL_FORWARD_COLUMNS[2:]:
                out[f"{name}_value"] = pd.Series([p * value for p in out[name]], dtype=object)
        return out


def cross_center_redemptions(lot_result: LotResult) -> pd.DataFrame:
    """Every allocation where the points were paid at another center than the one that issued them."""
    alloc = lot_result.allocations
    cols = ["line", "user_id", "lot_id", "redemption_center", "lot_center", "lot_program", "points", "method"]
    return alloc.loc[alloc["cross_center"].to_numpy(dtype=bool), cols].reset_index(drop=True)


def cross_center_summary(lot_result: LotResult) -> pd.DataFrame:
    """Cross-center points per (issuing lot center, redeeming center): allocations and points."""
    return cross_center_total([cross_center_parts(lot_result.allocations)])


def cross_center_parts(allocations: pd.DataFrame) -> pd.DataFrame:
    """Cross-center allocations and int64 micro-points per (lot center, redemption center) of some
    allocations: one member slice's part, which :func:`cross_center_total` adds up."""
    cc = allocations.loc[allocations["cross_center"].to_numpy(dtype=bool)]
    g = cc.groupby(["lot_center", "redemption_center"], sort=True)["points_units"].agg(["size", "sum"])
    return pd.DataFrame({"lot_center": pd.Series(g.index.get_level_values(0), dtype=object),
                         "redemption_center": pd.Series(g.index.get_level_values(1), dtype=object),
                         "allocations": g["size"].to_numpy(dtype=np.int64),
                         "points_units": g["sum"].to_numpy(dtype=np.int64)})


def cross_center_total(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`cross_center_parts` added up, per pair of centers, points as Decimal."""
    g = (pd.concat(parts, ignore_index=True).groupby(["lot_center", "redemption_center"], sort=True)
         [["allocations", "points_units"]].sum())
    return pd.DataFrame({
        "lot_center": pd.Series(g.index.get_level_values(0), dtype=object),
        "redemption_center": pd.Series(g.index.get_level_values(1), dtype=object),
        "allocations": g["allocations"].to_numpy(dtype=np.int64),
        "points": units_to_decimal(g["points_units"].to_numpy(dtype=np.int64)),
    })


class _Ledger:
    """The entries up to the cutover, and the engine's lots and allocations located by ledger line."""

    def __init__(self, entries: pd.DataFrame, lot_result: LotResult) -> None:
        self.entries = entries
        line = entries["line"].to_numpy(dtype=np.int64)
        self.line = line
        # a parsed ledger is in line order: a binary search then needs no hash table of ten
        # million lines (hundreds of megabytes); hand-built entries in another order get one
        self.sorted = bool((line[1:] > line[:-1]).all())
        self.by_line = None if self.sorted else pd.Index(line)
        if not self.sorted and not self.by_line.is_unique:
            raise ValueError("entries must have one row per ledger line")
        # later entries belong to the delta migration, exactly as in the lot engine
        self.scope = entry_action_us(entries) <= datetime_us(lot_result.cutover)
        kind = entries["kind"].to_numpy(dtype=object)
        self.units = entry_points_units(entries)
        self.acc = self.scope & (kind == ACCRUAL)
        self.red = self.scope & (kind == REDEMPTION)
        lots, alloc = lot_result.lots, lot_result.allocations
        self.lot_row = self._rows(lots["line"], "lots")
        self.lot_rem = lots["remaining_units"].to_numpy(dtype=np.int64)
        status = lots["status"].to_numpy(dtype=object)
        self.lot_status = {s: status == s for s in (OPEN, PENDING, EXPIRED)}
        self.alloc_pts = alloc["points_units"].to_numpy(dtype=np.int64)
        self.alloc_red_row = self._rows(alloc["line"], "allocations")
        has_lot = alloc["lot_line"].notna().to_numpy()
        self.alloc_deficit = ~has_lot
        lot_line = alloc["lot_line"].fillna(-1).to_numpy(dtype=np.int64)
        # where the liability a piece settled was booked: the lot's row, or the redemption's for a deficit
        self.alloc_attr_row = np.where(has_lot, self.row_of(lot_line), self.alloc_red_row)
        if (self.alloc_attr_row < 0).any():
            raise ValueError("allocations name lot lines that are not in entries")
        self.alloc_cross = alloc["cross_center"].to_numpy(dtype=bool)

    def row_of(self, lines: np.ndarray) -> np.ndarray:
        """The entry row of each ledger line, -1 where no entry has it."""
        if not self.sorted:
            return self.by_line.get_indexer(lines)
        pos = np.searchsorted(self.line, lines)
        found = pos < len(self.line)
        found[found] = self.line[pos[found]] == lines[found]
        return np.where(found, pos, -1)

    def _rows(self, lines: pd.Series, what: str) -> np.ndarray:
        rows = self.row_of(lines.to_numpy(dtype=np.int64))
        if (rows < 0).any():
            raise ValueError(f"{what} name ledger lines that are not in entries")
        return rows

    def codes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Integer key per entry row for ``column`` and the names, in order of first appearance.

        ``center`` is the accrual center of an accrual and the payment center of a redemption.
        """
        if column == "center" and "center" not in self.entries.columns:
            values = np.where(self.entries["kind"].to_numpy(dtype=object) == ACCRUAL,
                              text_column(self.entries, "accrual_center"),
                              text_column(self.entries, "payment_center"))
        else:
            coded = category_codes(self.entries[column])
            if coded is not None:  # numbered again in order of first appearance, as factorize does
                codes, first = pd.factorize(coded[0])
                return codes.astype(np.int64), coded[1][first]
            values = text_column(self.entries, column)
        codes, names = pd.factorize(values)
        return codes.astype(np.int64), np.asarray(names, dtype=object)

    def figures(self, key: np.ndarray, n: int, *, redeemed_from_ledger: bool) -> dict[str, np.ndarray]:
        """accrued, redeemed, expired (side a) and open, pending, deficit (side b) per key, in units.

        Per member and in total, redeemed is the ledger's own sum (a redemption only ever consumes
        its member's lots). Per center and program it goes through the allocation, since the
        ledger alone cannot say which center's liability a fallback redemption settled.
        """
        u, lk, ak = self.units, key[self.lot_row], key[self.alloc_attr_row]
        st, d = self.lot_status, self.alloc_deficit
        if redeemed_from_ledger:
            redeemed = _per_key(n, key[self.red], -u[self.red])
        else:
            redeemed = _per_key(n, ak, self.alloc_pts)
        f = {
            "accrued": _per_key(n, key[self.acc], u[self.acc]),
            "redeemed": redeemed,
            "expired": _per_key(n, lk[st[EXPIRED]], self.lot_rem[st[EXPIRED]]),
            "open": _per_key(n, lk[st[OPEN]], self.lot_rem[st[OPEN]]),
            "pending": _per_key(n, lk[st[PENDING]], self.lot_rem[st[PENDING]]),
            "deficit": _per_key(n, ak[d], self.alloc_pts[d]),
            # every redemption point must sit in exactly one allocation piece
            "allocated": _per_key(n, key[self.alloc_red_row] if redeemed_from_ledger else ak, self.alloc_pts),
        }
        f["present"] = np.bincount(key[self.scope], minlength=n)[:n] > 0
        return f


def _per_key(n: int, key: np.ndarray, amount: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, key, np.asarray(amount, dtype=np.int64))
    return out


def _to_units(value: object) -> int:
    if isinstance(value, float):
        raise TypeError(f"opening must be Decimal or text, not float ({value!r})")
    scaled = Decimal(str(value)) * UNITS_PER_POINT
    if scaled != scaled.to_integral_value():
        raise ValueError(f"opening {value} has more than 6 decimals")
    return int(scaled)
