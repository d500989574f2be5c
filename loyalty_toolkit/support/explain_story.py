"""One member's story from their staging rows: the model and :func:`build_story` (pure).

The story recomputes the member's balance from the rows themselves (lots, allocation pieces,
transfers, rejects) in exact ``Decimal`` arithmetic, so ``loyalty-migrate explain`` can set it
beside the figures the run stored (``reconciliation_member``, ``transfer_per_member``): a support
engineer sees both the answer and whether the run agrees with it. Rendering: ``stages.explain``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from loyalty_toolkit.model import EXPIRED, OPEN, PENDING, SPENDING
from loyalty_toolkit.sources.ledger.parse import (
    DATE_INVALID,
    GUESTPOINTSID_DUPLICATE,
    POINTS_INVALID,
    POINTS_PRECISION,
    POINTS_SIGN,
    RECORD_TYPE_UNKNOWN,
    USER_ID_MISSING,
)
from loyalty_toolkit.stages.transfers.engine import MEMBER_UNMAPPED, OPENING_SOURCE
from loyalty_toolkit.stages.transfers.lots import FALLBACK_METHODS
from loyalty_toolkit.store import stored_decimal

Row = dict[str, Any]
LEDGER_REASONS = frozenset({USER_ID_MISSING, RECORD_TYPE_UNKNOWN, POINTS_INVALID, POINTS_PRECISION, POINTS_SIGN,
                            DATE_INVALID, GUESTPOINTSID_DUPLICATE})
# Which stage writes which of the member's tables: a missing table means that stage has not committed.
TABLE_STAGE = {"members": "members", "member_map": "mapping", "lots": "transfers", "reward_state": "rewards"}


def fmt(value: Decimal) -> str:
    """``Decimal`` as plain text without exponent or trailing zeros: 100, 12.5, -0.25."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


@dataclass
class Piece:
    """Part of a redemption paid by one lot (``lot_id`` '' for the part no lot could pay)."""

    line: int
    lot_id: str
    points: Decimal
    method: str
    cross_center: bool
    redemption_center: str
    lot_center: str

    @property
    def fallback(self) -> bool:
        return self.method in FALLBACK_METHODS


@dataclass
class Lot:
    row: Row
    pieces: list[Piece] = field(default_factory=list)

    @property
    def opening(self) -> bool:
        return self.row.get("source") == OPENING_SOURCE

    def amount(self, column: str) -> Decimal:
        return stored_decimal(self.row.get(column))


@dataclass
class Balance:
    """The member's points at the cutover, recomputed from the rows (all signed Decimals)."""

    accrued: Decimal = Decimal(0)      # ledger lots
    redeemed: Decimal = Decimal(0)     # every allocation piece, the unpaid part included
    expired: Decimal = Decimal(0)      # left on lots that expired by the cutover
    opening: Decimal = Decimal(0)      # opening-balance lots (whole points)
    open: Decimal = Decimal(0)
    pending: Decimal = Decimal(0)
    deficit: Decimal = Decimal(0)      # redeemed beyond every lot: a negative balance
    transferred: Decimal = Decimal(0)  # adding - spending, whole points in the files
    residue: Decimal = Decimal(0)      # rounding residue of emitted and zero-point transfers
    rejected: Decimal = Decimal(0)     # MEMBER_UNMAPPED lots (+) and deficits (-)
    review: Decimal = Decimal(0)       # deficits held for review (-)
    unmatched_opening: Decimal = Decimal(0)  # opening rows of this member that became no lot

    @property
    def owed(self) -> Decimal:
        return self.accrued - self.redeemed - self.expired + self.opening

    @property
    def owed_lots(self) -> Decimal:
        return self.open + self.pending - self.deficit

    @property
    def accounted(self) -> Decimal:
        return self.transferred + self.residue + self.rejected + self.review


@dataclass
class MemberStory:
    legacy_id: str
    query: str
    matched_by: list[str]
    cutover: str
    member: Row | None
    rows: dict[str, list[Row] | None]
    lots: list[Lot]
    redemptions: dict[int, list[Piece]]
    balance: Balance
    rejects: list[Row]           # every reject touching the member, all stages
    ledger_rejects: list[Row]    # the member's ledger rows refused by stage 03 (in no figure)
    missing_stages: list[str]

    def table(self, name: str) -> list[Row]:
        return self.rows.get(name) or []

    @property
    def target_id(self) -> str:
        m = self.table("member_map")
        return str(m[0]["target_id"]) if m else ""


def build_story(legacy_id: str, rows: dict[str, list[Row] | None], *, query: str = "",
                matched_by: list[str] | None = None, cutover: str = "") -> MemberStory:
    """The member's story from their staging rows (see ``store.lookup.member_rows``)."""
    def get(name: str) -> list[Row]:
        return rows.get(name) or []

    lots = [Lot(r) for r in sorted(get("lots"), key=lambda r: (str(r.get("action_at_utc") or ""), r.get("line") or 0))]
    by_id = {lot.row["lot_id"]: lot for lot in lots}
    redemptions: dict[int, list[Piece]] = defaultdict(list)
    for a in get("lot_allocations"):
        p = Piece(int(a["line"]), str(a.get("lot_id") or ""), stored_decimal(a["points"]), str(a.get("method") or ""),
                  bool(a.get("cross_center")), str(a.get("redemption_center") or ""), str(a.get("lot_center") or ""))
        redemptions[p.line].append(p)
        if p.lot_id in by_id:
            by_id[p.lot_id].pieces.append(p)

    b = Balance()
    for lot in lots:
        status, remaining = lot.row.get("status"), lot.amount("remaining")
        if lot.opening:
            b.opening += lot.amount("accrued")
        else:
            b.accrued += lot.amount("accrued")
            if status == EXPIRED:
                b.expired += remaining
        if status == OPEN:
            b.open += remaining
        elif status == PENDING:
            b.pending += remaining
    for pieces in redemptions.values():
        for p in pieces:
            b.redeemed += p.points
            if not p.lot_id:
                b.deficit += p.points
    for t in get("unit_transfers") + get("unit_transfers_zero"):
        sign = -1 if t.get("type") == SPENDING else 1
        b.residue += sign * stored_decimal(t.get("residue"))
    for t in get("unit_transfers"):
        b.transferred += (-1 if t.get("type") == SPENDING else 1) * stored_decimal(t.get("points"))
    for r in get("transfer_review"):
        b.review -= stored_decimal(r.get("deficit"))
    for r in get("transfer_rejects"):
        if r.get("reason_code") != MEMBER_UNMAPPED:
            continue
        key = str(r.get("record_key") or "")
        if key in by_id and by_id[key].row.get("status") in (OPEN, PENDING):
            b.rejected += by_id[key].amount("remaining")
        elif key == f"deficit:{legacy_id}":  # an unmapped member's negative balance, rejected whole
            b.rejected -= b.deficit
    for u in get("opening_unmatched"):
        if u.get("legacy_id") == legacy_id:
            b.unmatched_opening += stored_decimal(u.get("points"))

    rejects = sorted(get("member_rejects") + get("transfer_rejects") + get("reward_rejects"),
                     key=lambda r: (str(r.get("stage") or ""), str(r.get("file") or ""), int(r.get("line") or 0)))
    ledger_rejects = [r for r in get("transfer_rejects")
                      if r.get("reason_code") in LEDGER_REASONS and r.get("record_key") == legacy_id]
    missing = [stage for table, stage in TABLE_STAGE.items() if rows.get(table) is None]
    return MemberStory(legacy_id=legacy_id, query=query, matched_by=list(matched_by or []), cutover=cutover,
                       member=(get("members") or [None])[0], rows=rows, lots=lots, redemptions=dict(redemptions),
                       balance=b, rejects=rejects, ledger_rejects=ledger_rejects, missing_stages=missing)
