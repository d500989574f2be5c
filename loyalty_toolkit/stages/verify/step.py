"""Stage 06, verify: after the unit-transfer import, the target's balances against this run's transfers.

Reads the target's member balance export taken after the import (``sources.target_balances``; with
``rehearsal: true`` the rehearsal target imports the run's transfer files first and writes it) and
proves, per member and in total, to the point: balance at the target = points transferred by this
run (+ the balance before the import, when that export is given). Mismatches are listed per member;
any one fails the stage's critical gate. Without ``sources.target_balances`` the step is waiting
for the export: it records ``state: waiting`` and passes (the import may not have happened yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loyalty_toolkit.errors import GateFailed
from loyalty_toolkit.mask import mask_frame
from loyalty_toolkit.sources.target_balances import read_target_balances
from loyalty_toolkit.stages.context import StageContext, StageFigures
from loyalty_toolkit.stages.verify.balances import MEMBER_COLUMNS, Verification, verify_balances
from loyalty_toolkit.store.rehearsal import RehearsalTargetStore
from loyalty_toolkit.targets.ol_transfer_rehearsal import (
    balance_export,
    transfer_files,
    transferred_points,
    write_balance_export,
)

WAITING = "waiting: no sources.target_balances (the target's balance export after the import) yet"


@dataclass
class VerifyOutcome:
    verification: Verification | None  # None: waiting for the export
    rehearsal: bool = False
    show_pii: bool = False

    @property
    def state(self) -> str:
        if self.verification is None:
            return "waiting"
        return "verified" if self.verification.mismatches().empty else "mismatch"

    def figures(self) -> StageFigures:
        if self.verification is None:
            return StageFigures(rows_in=0, rows_out=0, rows_rejected=0, totals={"state": "waiting", "why": WAITING})
        t = self.verification.totals.iloc[0]
        return StageFigures(rows_in=int(t["members"]), rows_out=int(t["members"]) - int(t["mismatches"]),
                            rows_rejected=int(t["mismatches"]),
                            totals={"state": self.state, "rehearsal": self.rehearsal,
                                    "points_transferred": int(t["transferred"]), "points_expected": str(t["expected"]),
                                    "points_at_target": str(t["at_target"]), "difference": str(t["difference"]),
                                    "mismatched_members": sorted(self.verification.mismatches()["legacy_id"])[:50]})

    def summary(self) -> pd.DataFrame:
        f = self.figures()
        rows = {"state": self.state, **{k: v for k, v in f.totals.items() if k != "mismatched_members"}}
        return pd.DataFrame({"figure": list(rows), "value": [str(v) for v in rows.values()]})

    def mismatches(self) -> pd.DataFrame:
        """The members whose balance at the target is not what this run transferred (ids are not personal data)."""
        if self.verification is None:
            return pd.DataFrame(columns=list(MEMBER_COLUMNS))
        return mask_frame(self.verification.mismatches(), show_pii=self.show_pii)

    def members(self) -> pd.DataFrame:
        return pd.DataFrame(columns=list(MEMBER_COLUMNS)) if self.verification is None else self.verification.members


def rehearse_transfer_import(ctx: StageContext) -> None:
    """Import the run's transfer files into the rehearsal target and write its balance export."""
    src = ctx.config.sources.target_balances
    with RehearsalTargetStore(ctx.run_dir / "rehearsal" / "target.db") as target:
        members = target.members()
    balances = balance_export(members, transferred_points(transfer_files(ctx.run_dir / "output" / "openloyalty")))
    write_balance_export(balances, rehearsal_export(ctx), src.column_map())


def rehearsal_export(ctx: StageContext):
    return ctx.run_dir / "rehearsal" / "balances_after.csv"


def run(ctx: StageContext) -> VerifyOutcome:
    """Read the export(s) and verify every mapped member's balance against this run's transfers."""
    src = ctx.config.sources.target_balances
    if src is None:
        return VerifyOutcome(verification=None, show_pii=ctx.show_pii)
    if src.rehearsal:
        rehearse_transfer_import(ctx)
    columns = src.column_map()
    after_path = ctx.freeze_input("target_balances_after", rehearsal_export(ctx) if src.rehearsal else src.path)
    after = read_target_balances(after_path, columns=columns, encoding=src.encoding, delimiter=src.delimiter,
                                 stage=ctx.stage)
    before = None
    if src.before is not None:
        before_path = ctx.freeze_input("target_balances_before", src.before)
        before = read_target_balances(before_path, columns=columns, encoding=src.encoding, delimiter=src.delimiter,
                                      stage=ctx.stage)
    transfers = ctx.store.read_table("unit_transfers", columns=["target_id", "type", "points"])
    sign = np.where(transfers["type"].astype(str).to_numpy() == "spending", -1, 1)
    signed = pd.DataFrame({"target_id": transfers["target_id"].astype(str),
                           "points": transfers["points"].astype("int64").to_numpy() * sign})
    id_map = ctx.store.read_table("member_map", columns=["legacy_id", "target_id"])
    verification = verify_balances(signed, id_map, after, before, after_file=after_path.name,
                                   before_file=src.before.name if src.before else "", id_column=columns["target_id"])
    return VerifyOutcome(verification=verification, rehearsal=src.rehearsal, show_pii=ctx.show_pii)


def gate(ctx: StageContext, outcome: VerifyOutcome):
    """Critical: every member's difference is zero, and the totals agree."""
    members = outcome.members().copy()
    totals = (outcome.verification.totals if outcome.verification is not None
              else pd.DataFrame(columns=["members", "transferred", "expected", "at_target", "difference", "mismatches"]))
    members["difference_points"] = pd.to_numeric(members["difference"]).astype("float64") if len(members) else []
    return ctx.gate({"members": members, "totals": totals.assign(
        difference_points=pd.to_numeric(totals["difference"]).astype("float64") if len(totals) else [])})


def commit(ctx: StageContext, outcome: VerifyOutcome, gate_report) -> None:
    """Record the figures and commit the per-member table; raises GateFailed naming the mismatches."""
    try:
        ctx.finish(gate_report, outcome.figures(), {"balance_verification": outcome.members()})
    except GateFailed as exc:
        wrong = outcome.members()
        wrong = wrong[wrong["status"] != "ok"]
        named = ", ".join(f"{r.legacy_id} (target {r.target_id}: holds {r.at_target}, expected {r.expected})"
                          for r in wrong.head(10).itertuples())
        more = f" and {len(wrong) - 10} more" if len(wrong) > 10 else ""
        raise GateFailed(f"{exc.message}; members differing: {named}{more}" if named else exc.message,
                         stage=exc.stage, expectation=exc.expectation, unexpected_count=exc.unexpected_count) from None
