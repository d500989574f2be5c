"""Stage 03 one member slice at a time: the cut, and what each slice leaves behind.

Every rule of the lot engine and the transfer engine is per member (a redemption only consumes its
own member's lots; a transfer carries one member's lots; a deficit is one member's), so the stage
may run them over the members a slice at a time and get the same lots and the same transfers. At
ten million ledger rows that is what keeps the stage inside its memory budget: the lean entries
stay whole, while each slice's lots, allocations and transfers (text ids and times, millions of
rows) are written out and dropped before the next slice is built.

Slices are contiguous ranges of legacy member ids in Python's string order, the order the transfer
files list members in, so the files are the same bytes however the members are cut. What a slice
leaves behind is :class:`SliceTotals`: per-member tables (one row per member), the lean columns the
reconciliation reads, sums, and the notebook's aggregates, none of them a row per lot or transfer.
A program of up to ``SLICE_ENTRIES`` ledger rows is one slice, which is the stage as it always ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.model import ADDING, PENDING, SPENDING
from loyalty_toolkit.shared import liability
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import units_to_decimal
from loyalty_toolkit.stages.transfers import target_hold, view
from loyalty_toolkit.stages.transfers.engine import TransferResult
from loyalty_toolkit.stages.transfers.lots import LotResult, category_codes
from loyalty_toolkit.stages.transfers.reconcile import cross_center_parts, cross_center_total

# Ledger rows per slice: at 10M rows, twenty slices; a slice's frames then add about 0.3 GB at most.
SLICE_ENTRIES = 500_000
SAMPLE_ROWS = 50  # transfers and fallback pieces kept for the notebook's examples
_LEAN_LOTS = ("line", "remaining_units", "status")
_LEAN_ALLOCATIONS = ("line", "lot_line", "points_units", "cross_center")


# -- the cut -----------------------------------------------------------------------------------

@dataclass
class SlicePlan:
    """Which slice each ledger row, and each member id, belongs to.

    ``bounds``: the first member id of slices 1..n-1 (sorted); a member id sorts into the slice
    whose range holds it, so members the ledger never names (opening balances) find theirs too.
    """

    bounds: np.ndarray
    row_slice: np.ndarray | None  # slice per entry row; None when there is one slice

    @property
    def count(self) -> int:
        return len(self.bounds) + 1

    def of(self, member_ids: np.ndarray) -> np.ndarray:
        """The slice of each member id (object array of str)."""
        if not len(self.bounds):
            return np.zeros(len(member_ids), dtype=np.int64)
        return np.searchsorted(self.bounds, np.asarray(member_ids, dtype=object), side="right").astype(np.int64)

    def rows(self) -> list[np.ndarray | None]:
        """Per slice, the entry rows in it (ascending); ``[None]`` for a single slice (all rows)."""
        if self.row_slice is None:
            return [None]
        order = np.argsort(self.row_slice, kind="stable")
        edges = np.searchsorted(self.row_slice[order], np.arange(self.count + 1))
        return [order[edges[k]:edges[k + 1]] for k in range(self.count)]


def plan_slices(entries: pd.DataFrame, max_entries: int = SLICE_ENTRIES) -> SlicePlan:
    """Cut the members into ranges of about ``max_entries`` ledger rows each (a member is never cut)."""
    if max_entries < 1:
        raise ValueError("max_entries must be at least 1")
    if len(entries) <= max_entries:
        return SlicePlan(bounds=np.zeros(0, dtype=object), row_slice=None)
    coded = category_codes(entries["user_id"])
    if coded is None:
        codes, names = pd.factorize(text_column(entries, "user_id"))
        coded = codes, np.asarray(names, dtype=object)
    codes, names = coded
    per_name = np.bincount(codes, minlength=len(names))
    order = np.argsort(names, kind="stable")  # object arrays compare as Python str: the files' order
    order = order[per_name[order] > 0]
    before = np.cumsum(per_name[order]) - per_name[order]
    sorted_slice = before // max_entries
    starts = np.flatnonzero(np.r_[False, sorted_slice[1:] != sorted_slice[:-1]])
    bounds = names[order[starts]]
    slice_of_name = np.zeros(len(names), dtype=np.int64)
    slice_of_name[order] = np.searchsorted(starts, np.arange(len(order)), side="right")
    return SlicePlan(bounds=np.asarray(bounds, dtype=object), row_slice=slice_of_name[codes])


# -- what the slices leave ---------------------------------------------------------------------

@dataclass
class SliceTotals:
    """What stays of the slices once their lots and transfers are written out (see module doc)."""

    cutover: object
    timezone: str
    lots_lean: list[pd.DataFrame] = field(default_factory=list)
    allocations_lean: list[pd.DataFrame] = field(default_factory=list)
    balances: list[pd.DataFrame] = field(default_factory=list)
    after_cutover: list[pd.DataFrame] = field(default_factory=list)
    fallbacks: list[pd.DataFrame] = field(default_factory=list)
    zero: list[pd.DataFrame] = field(default_factory=list)
    rejects: list[pd.DataFrame] = field(default_factory=list)
    review: list[pd.DataFrame] = field(default_factory=list)
    per_member: list[pd.DataFrame] = field(default_factory=list)
    produced: list[pd.DataFrame] = field(default_factory=list)
    side: list[pd.DataFrame] = field(default_factory=list)
    deficit_lines: list[pd.Series] = field(default_factory=list)
    calendar: list[pd.DataFrame] = field(default_factory=list)
    pending: list[pd.DataFrame] = field(default_factory=list)
    cross_center: list[pd.DataFrame] = field(default_factory=list)
    fallback_pieces: list[pd.DataFrame] = field(default_factory=list)
    transfer_sample: list[pd.DataFrame] = field(default_factory=list)
    lot_status: dict[str, int] = field(default_factory=dict)
    opening_lots: int = 0
    transfers: int = 0
    adding: int = 0
    spending: int = 0
    adding_points: int = 0
    spending_points: int = 0
    residue_rows: int = 0  # emitted transfers with a rounding residue (zero-point ones are kept whole)
    residue_units: int = 0  # their signed residue, from the rows
    residue_total: Decimal = Decimal(0)  # the engine's own, emitted and zero-point
    slices: int = 0
    target_hold: dict | None = None  # what the target ignores and its settings (target_hold.month_parts)
    hold_parts: list[pd.DataFrame] = field(default_factory=list)
    hold_members: list[pd.DataFrame] = field(default_factory=list)

    def add_lots(self, lots: LotResult, all_lots: pd.DataFrame, n_opening: int) -> None:
        """A slice's lot engine output and its lots with the slice's opening lots."""
        self.slices += 1
        self.lots_lean.append(lots.lots[list(_LEAN_LOTS)])
        self.allocations_lean.append(lots.allocations[list(_LEAN_ALLOCATIONS)])
        self.balances.append(lots.balances)
        self.after_cutover.append(lots.after_cutover)
        self.fallbacks.append(lots.fallbacks)
        self.opening_lots += n_opening
        for status, n in value_counts(lots.lots["status"]).items():  # ledger lots, as the figures count
            self.lot_status[status] = self.lot_status.get(status, 0) + n
        alloc = lots.allocations
        self.cross_center.append(cross_center_parts(alloc))
        self.fallback_pieces.append(view.fallback_examples(alloc, SAMPLE_ROWS))
        deficit = alloc[text_column(alloc, "lot_id") == ""]
        if len(deficit):
            self.deficit_lines.append(deficit.groupby("user_id", sort=False)["line"].min())
        owed = liability.live(all_lots)
        self.calendar.append(liability.month_totals(owed, "expires_at_utc", self.timezone))
        self.pending.append(liability.month_totals(owed[text_column(owed, "status") == PENDING], "unlock_at_utc",
                                              self.timezone))

    def add_transfers(self, result: TransferResult, produced: pd.DataFrame, side: pd.DataFrame) -> None:
        """A slice's transfer engine output and its transfer side of the reconciliation."""
        t = result.transfers
        adding = t["type"].to_numpy(dtype=object) == ADDING
        pts = t["points"].to_numpy(np.int64)
        self.transfers += len(t)
        self.adding += int(adding.sum())
        self.spending += int((t["type"].to_numpy(dtype=object) == SPENDING).sum())
        self.adding_points += int(pts[adding].sum())
        self.spending_points += int(pts[~adding].sum())
        res = view.signed_residue(t)
        self.residue_rows += int((res != 0).sum())
        self.residue_units += int(res.sum())
        self.residue_total += result.residue_total
        if sum(len(s) for s in self.transfer_sample) < SAMPLE_ROWS:
            self.transfer_sample.append(t.head(SAMPLE_ROWS))
        if self.target_hold:
            self.hold_parts.append(target_hold.month_parts(t, **self.target_hold))
            self.hold_members.append(target_hold.member_parts(t, **self.target_hold))
        self.zero.append(result.zero)
        self.rejects.append(result.rejects)
        self.review.append(result.review)
        self.per_member.append(result.per_member)
        self.produced.append(produced)
        self.side.append(side.groupby(["center", "program"], sort=False, dropna=False)["points_units"].sum()
                         .reset_index())

    # -- the whole program ---------------------------------------------------------------------

    def lot_result(self) -> LotResult:
        """The lot engine's result over every slice, as the reconciliation and the figures read it:
        lots and allocations keep only the lean columns the reconciliation locates by line."""
        fb = self._joined("fallbacks")
        if len(fb):
            fb = fb.groupby("method", sort=False)[["redemptions", "allocations", "points_units"]].sum().reset_index()
            fb["points"] = pd.Series(units_to_decimal(fb["points_units"].to_numpy(np.int64)), dtype=object)
            fb = fb[["method", "redemptions", "allocations", "points", "points_units"]]
        return LotResult(lots=self._joined("lots_lean"), allocations=self._joined("allocations_lean"),
                         balances=self._joined("balances"), fallbacks=fb, after_cutover=self._joined("after_cutover"),
                         cutover=self.cutover)

    def transfer_result(self) -> TransferResult:
        """The transfer engine's result over every slice, without the transfer rows (they are in the
        files and the store): ``transfers`` holds the first few, for the notebook."""
        return TransferResult(transfers=self._joined("transfer_sample").head(SAMPLE_ROWS), zero=self._joined("zero"),
                              rejects=self._joined("rejects"), review=self._joined("review"),
                              per_member=self._joined("per_member"), residue_total=self.residue_total)

    def produced_per_member(self) -> pd.DataFrame:
        return self._joined("produced")

    def transfer_side(self) -> pd.DataFrame:
        return self._joined("side")

    def _joined(self, name: str) -> pd.DataFrame:
        """The slices' frames of ``name`` as one, kept as the only part: the pieces are let go, so
        the whole is never held twice."""
        whole = _concat(getattr(self, name))
        setattr(self, name, [whole])
        return whole

    def first_deficit_line(self) -> dict[str, int]:
        """Per member with a deficit, the ledger line of the first redemption no lot could pay."""
        return {str(k): int(v) for s in self.deficit_lines for k, v in s.items()}

    def expiry_calendar(self) -> pd.DataFrame:
        return liability.months(self.calendar)

    def pending_by_month(self) -> pd.DataFrame:
        return liability.months(self.pending)

    def cross_center_summary(self) -> pd.DataFrame:
        """Cross-center allocations and points per pair of centers, every slice's added up."""
        return cross_center_total(self.cross_center)

    def fallback_examples(self, n: int) -> pd.DataFrame:
        """The first ``n`` fallback pieces per method: the first slices' (each kept its first ones)."""
        return view.fallback_examples(pd.concat(self.fallback_pieces, ignore_index=True), n)


def value_counts(column: pd.Series) -> dict[str, int]:
    """How many times each value occurs, by value (the figures' ``..._by_reason`` and status counts)."""
    return {str(k): int(v) for k, v in column.astype(object).value_counts().sort_index().items()}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The slices' frames as one; a single slice's frame as it is (the stage as it always ran)."""
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
