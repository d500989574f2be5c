"""Stage 03's outcome: the figures the run record keeps and the tables the notebook shows.

``transfers.step.run`` builds it from what the member slices left (``SliceTotals``), the
reconciliation over the whole ledger and the opening balances; it never holds a row per lot or
per transfer (those are in the files and the pending staging tables). The notebook's tables are
drawn by ``stages/transfers/view.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.shared import liability
from loyalty_toolkit.sources.ledger.parse import plain_decimal, units_to_decimal
from loyalty_toolkit.sources.opening_balances import OpeningParse
from loyalty_toolkit.stages.context import StageFigures
from loyalty_toolkit.stages.transfers import target_hold, view
from loyalty_toolkit.stages.transfers.engine import TransferResult
from loyalty_toolkit.stages.transfers.lots import FALLBACK_METHODS, LotResult
from loyalty_toolkit.stages.transfers.slices import SliceTotals, value_counts
from loyalty_toolkit.store import PendingTables
from loyalty_toolkit.store.lookup import StagingReader


def held_summary(held: pd.DataFrame | None) -> dict:
    """Members held back in stage 01 and their points, which are held (itemised), never missing."""
    if held is None or held.empty:
        return {"members": 0, "points": "0"}
    return {"members": int(held["legacy_id"].nunique()),
            "points": plain_decimal(sum((Decimal(str(p)) for p in held["points"]), Decimal(0)))}


@dataclass
class TransfersOutcome:
    lots: LotResult  # every slice's: lots and allocations keep the columns the reconciliation reads
    slices: SliceTotals  # what the member slices left: sums and the notebook's aggregates
    o_lots: pd.DataFrame  # the opening-balance lots of mapped members (OPENING_LOT_COLUMNS)
    result: TransferResult  # every slice's; ``transfers`` holds only the first few rows (the rest are written)
    pending: PendingTables  # lots, allocations, transfers and per-member tables, published by commit
    checks: dict[str, list[pd.DataFrame]]  # per gate table, the slices' rows
    opening: OpeningParse | None
    unmatched: pd.DataFrame  # opening rows matched to no mapped member (UNMATCHED_COLUMNS)
    rejects: pd.DataFrame  # every reject of the stage (REJECT_COLUMNS)
    conservation: pd.DataFrame
    outputs: pd.DataFrame
    by_member: pd.DataFrame  # reconcile(): ledger vs lots vs the transfer rows
    by_center: pd.DataFrame
    by_program: pd.DataFrame
    total: pd.DataFrame
    roll_forward: pd.DataFrame
    files: list[Path]
    ledger_rows: int
    ledger_entries: int
    ledger_rejects: dict[str, int]
    cutover: datetime
    timezone: str
    settings: dict = field(default_factory=dict)  # granularity, rounding, negative_balance, point_value...
    phones_reread: int = 0
    show_pii: bool = False
    held: pd.DataFrame | None = None  # points of members held back in stage 01, per member and rule

    # -- figures -------------------------------------------------------------------------------

    def points(self) -> dict[str, Decimal]:
        """The headline amounts, signed Decimals: before = after is the stage's promise."""
        t = self.total.iloc[0]
        tr, sl = self.result, self.slices
        opening = Decimal(self.opening.points_total) if self.opening is not None else Decimal(0)
        unmatched = Decimal(int(self.unmatched["points"].sum())) if len(self.unmatched) else Decimal(0)
        transferred = Decimal(sl.adding_points - sl.spending_points)
        residue = _dec(sl.residue_units + int(view.signed_residue(tr.zero).sum()))
        rejected = _dec(int(tr.rejects["points_units"].sum()))
        review = -_dec(int(tr.review["deficit_units"].sum()))
        before = t["owed_ledger"] + opening
        after = transferred + residue + rejected + review + unmatched
        lots = self.lots.balances
        out = {"before": before, "after": after, "difference": before - after, "ledger_owed": t["owed_ledger"],
               "opening": opening, "transferred": transferred, "residue": residue, "rejected": rejected,
               "review": review, "opening_unmatched": unmatched,
               "open": _dec(int(lots["open_units"].sum())), "pending": _dec(int(lots["pending_units"].sum())),
               "expired": _dec(int(lots["expired_units"].sum())), "deficit": _dec(int(lots["deficit_units"].sum()))}
        return {k: plain_decimal(v) for k, v in out.items()}

    def figures(self) -> StageFigures:
        c = self.conservation.set_index("input")
        p = self.points()
        tr, sl = self.result, self.slices
        cross = pd.concat(sl.cross_center, ignore_index=True)  # the slices' cross-center parts, in units
        fb = self.lots.fallbacks.set_index("method")
        neg = self.lots.balances[self.lots.balances["deficit_units"] > 0]
        opening = None
        if self.opening is not None:
            o = self.opening
            opening = {"rows": int(c.loc["opening_balances", "rows_read"]), "accepted": len(o.balances),
                       "rejected": len(o.rejects), "rejects_by_reason": o.reject_counts(),
                       "matched": sl.opening_lots, "unmatched": len(self.unmatched),
                       "unmatched_by_reason": value_counts(self.unmatched["reason_code"]),
                       "points": str(o.points_total), "points_exact": str(o.points_exact_total),
                       "conversion_residue": str(o.residue_total), "phones_reread": self.phones_reread}
        rf = self.roll_forward
        liability = {}
        for center, part in rf.groupby("center", sort=True):
            entry = {"closing": str(sum(part["closing"], Decimal(0)))}
            if "closing_value" in part.columns:
                entry["value"] = str(sum(part["closing_value"], Decimal(0)))
            liability[str(center)] = entry
        s = self.settings
        return StageFigures(
            rows_in=int(c["rows_read"].sum()), rows_out=int(c["rows_accepted"].sum()),
            rows_rejected=int(c["rows_rejected"].sum()),
            totals={
                "ledger": {"rows": self.ledger_rows, "entries": self.ledger_entries,
                           "rejected": sum(self.ledger_rejects.values()), "rejects_by_reason": self.ledger_rejects},
                "opening": opening,
                "points_owed_before": str(p["before"]), "points_owed_after": str(p["after"]),
                "points_difference": str(p["difference"]),
                "points": {k: str(v) for k, v in p.items() if k not in ("before", "after", "difference")},
                "residue_total": str(p["residue"]),
                "transfers": {"count": sl.transfers, "adding": sl.adding, "spending": sl.spending,
                              "zero_point": len(tr.zero), "files": [f.name for f in self.files]},
                "lots": dict(sorted(sl.lot_status.items())),
                "fallbacks": {m: int(fb.at[m, "redemptions"]) for m in FALLBACK_METHODS},
                "fallback_points": {m: str(fb.at[m, "points"]) for m in FALLBACK_METHODS},
                "negative_balances": {"members": len(neg), "points": str(_dec(int(neg["deficit_units"].sum()))),
                                      "mode": s.get("negative_balance")},
                "rejected_lots": len(tr.rejects), "held_for_review": len(tr.review),
                "held_by_target": held_summary(self.held),
                "rejects_by_reason": value_counts(self.rejects["reason_code"]),
                "liability_per_center": liability,
                "cross_center": {"allocations": int(cross["allocations"].sum()),
                                 "points": str(_dec(int(cross["points_units"].sum())))},
                **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in s.items()},
            })

    # -- notebook tables -----------------------------------------------------------------------

    def target_changes(self) -> pd.DataFrame:
        """Per month: the points whose expiry or unlock the target moves (it ignores them: oss-3), and
        what the target shows beside what the legacy program owes. Empty when the profile keeps them."""
        if not self.slices.target_hold:
            return pd.DataFrame(columns=list(target_hold.TABLE_COLUMNS))
        return target_hold.table(self.slices.hold_parts, import_at=self.cutover, tz=self.timezone)

    def target_member_changes(self, n: int = 20) -> pd.DataFrame:
        """The members whose balance the target shows otherwise (available at the import, expiring
        earlier or later than the legacy program owes), most points expiring earlier first."""
        parts = [p for p in self.slices.hold_members if len(p)]
        if not parts:
            return pd.DataFrame(columns=list(target_hold.MEMBER_COLUMNS))
        whole = pd.concat(parts, ignore_index=True)
        return (whole.sort_values(["expires_earlier", "legacy_id"], ascending=[False, True], kind="stable")
                .head(n).reset_index(drop=True))

    def target_moved_points(self) -> int:
        """Points whose expiry or unlock the target moves (the warning expectation's figure)."""
        t = self.target_changes()
        return int(t["expiry_changed"].fillna(0).sum() + t["unlock_changed"].fillna(0).sum()) if len(t) else 0

    def held_by_target(self) -> pd.DataFrame:
        """Per member held back in stage 01 (the target profile refuses it): the rule and the points held."""
        return self.held if self.held is not None else pd.DataFrame(columns=["legacy_id", "rule_id", "points"])

    def counts(self) -> pd.DataFrame:
        return view.counts(self.figures(), self.points())

    def balance_distribution(self) -> pd.DataFrame:
        return liability.balance_bands(self.lots.balances, self.o_lots)

    def expiry_calendar(self) -> pd.DataFrame:
        return self.slices.expiry_calendar()

    def pending_points(self) -> pd.DataFrame:
        return self.slices.pending_by_month()

    def fallback_matches(self) -> pd.DataFrame:
        return self.lots.fallbacks.drop(columns=["points_units"])

    def fallback_examples(self, n: int = 10) -> pd.DataFrame:
        return self.slices.fallback_examples(n)

    def negative_balances(self) -> pd.DataFrame:
        return view.negative_balances(self.lots.balances, self.result, self.settings.get("negative_balance"))

    def reconciliation(self) -> pd.DataFrame:
        return view.mismatches(self.by_member, self.total, "user_id")

    def reconciliation_by_center(self) -> pd.DataFrame:
        return view.reconciliation(self.by_center, self.total, "center")

    def reconciliation_by_program(self) -> pd.DataFrame:
        return view.reconciliation(self.by_program, self.total, "program")

    def liability_roll_forward(self) -> pd.DataFrame:
        return view.roll_forward(self.roll_forward)

    def cross_center(self) -> pd.DataFrame:
        return self.slices.cross_center_summary()

    def rounding_residue(self) -> pd.DataFrame:
        sl = self.slices
        return view.residue(sl.residue_rows, sl.residue_units, self.result.zero, self.opening)

    def transfers_sample(self, n: int = 10) -> pd.DataFrame:
        return view.transfers_sample(self.result.transfers, n)

    def member_lots(self, legacy_id: str) -> pd.DataFrame:
        """Every lot of one member (ledger and opening) and what became of it: support's first look.
        Read from the staging tables the slices wrote (pending until the commit publishes them)."""
        self.pending.wait()
        table = self.pending.tables()  # published name -> pending table; empty once committed
        with StagingReader(self.pending.store.path) as reader:
            lots = reader.select(table.get("lots", "lots"), "user_id = ?", [legacy_id]) or []
            transfers = reader.select(table.get("unit_transfers", "unit_transfers"), "legacy_id = ?", [legacy_id]) or []
        return view.member_lots(pd.DataFrame(lots), pd.DataFrame(transfers), self.result.rejects)

    def conservation_table(self) -> pd.DataFrame:
        return self.conservation

    def output_table(self) -> pd.DataFrame:
        return self.outputs

    def rejects_by_reason(self) -> pd.DataFrame:
        return view.rejects_by_reason(self.rejects)

    def reject_examples(self, n: int = 3) -> pd.DataFrame:
        return view.reject_examples(self.rejects, n, show_pii=self.show_pii)


def _dec(units: int) -> Decimal:
    return units_to_decimal(np.asarray([units], dtype=np.int64))[0]
