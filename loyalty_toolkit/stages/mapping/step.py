"""Stage 02, mapping: every migrated member to the target's member ID.

The target assigns its own member IDs on import, and unit transfers need them (seed 000, "Map
Member IDs"). This step reads the target's member export (the real one, or the rehearsal
target's), maps each accepted member through identifiers unique on both sides, checks that every
member reference in the ledger, opening balances and reward files lands on a mapped member, and
reconciles the target's per-item import result with what stage 01 sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.mask import mask_frame, mask_identifier
from loyalty_toolkit.sources.members import read_members
from loyalty_toolkit.sources.references import member_references
from loyalty_toolkit.sources.target_members import read_target_members
from loyalty_toolkit.stages.context import StageContext, StageFigures
from loyalty_toolkit.stages.mapping.matching import MappingResult, coverage, legacy_member_keys, match_members
from loyalty_toolkit.stages.mapping.rehearsal import rehearse_import
from loyalty_toolkit.targets.ol_member_checks import HOLDBACK_COLUMNS
from loyalty_toolkit.targets.ol_profiles import profile_of
from loyalty_toolkit.targets.ol_rehearsal import read_import_result, reconcile_import_result

REFERENCE_INPUTS = ("ledger", "opening_balances")
HELD_REASON = "member_held_by_target"  # an orphan reason: the member was held back in stage 01


@dataclass
class MappingOutcome:
    mapping: MappingResult
    per_input: pd.DataFrame
    orphans: pd.DataFrame
    import_check: pd.DataFrame
    rehearsal: bool
    min_coverage: float
    show_pii: bool = False
    held: pd.DataFrame | None = None  # accepted in stage 01 but held back from the import (target profile)

    @property
    def held_count(self) -> int:
        return 0 if self.held is None else len(self.held)

    @property
    def member_coverage(self) -> float:
        return len(self.mapping.id_map) / self.mapping.accepted if self.mapping.accepted else 1.0

    def summary(self) -> pd.DataFrame:
        """One row: what the critical gate checks (coverage against the configured minimum)."""
        return pd.DataFrame([{"accepted": self.mapping.accepted, "mapped": len(self.mapping.id_map),
                              "member_coverage": self.member_coverage, "min_member_coverage": self.min_coverage,
                              "held_by_target": self.held_count,
                              "accepted_in_stage_01": self.mapping.accepted + self.held_count}])

    def figures(self) -> StageFigures:
        c = self.mapping.counts()
        return StageFigures(
            # rows in: every member accepted in stage 01, those held back (never sent) included
            rows_in=c["accepted"] + self.held_count, rows_out=c["matched"],
            rows_rejected=c["accepted"] + self.held_count - c["matched"],
            totals={**c, "member_coverage": round(self.member_coverage, 6), "rehearsal": self.rehearsal,
                    "held_by_target": self.held_count,
                    "reference_orphans": int(self.per_input["orphans"].sum()) if len(self.per_input) else 0,
                    "coverage_per_input": {r.input: {"references": int(r.references), "resolved": int(r.resolved),
                                                     "orphans": int(r.orphans), "coverage": round(float(r.coverage), 6)}
                                           for r in self.per_input.itertuples()},
                    "import_failed": int((self.import_check["status"] == "failed").sum())
                    if len(self.import_check) else 0})

    def funnel(self) -> pd.DataFrame:
        """Accepted in stage 01 = held back (the target refuses them) + sent, and what became of those sent."""
        f = {"accepted_in_stage_01": self.mapping.accepted + self.held_count, "held_by_target": self.held_count,
             **{("sent" if k == "accepted" else k): v for k, v in self.mapping.funnel().items()}}
        return pd.DataFrame({"step": list(f), "members": list(f.values())})

    def held_members(self) -> pd.DataFrame:
        """The hold-back list: each member with the profile rule that refuses it and the rule's source."""
        return self.held if self.held is not None else pd.DataFrame(columns=list(HOLDBACK_COLUMNS))

    def coverage_table(self) -> pd.DataFrame:
        return self.per_input

    def orphans_by_reason(self) -> pd.DataFrame:
        if self.orphans.empty:
            return pd.DataFrame({"input": [], "reason": [], "references": []})
        return (self.orphans.groupby(["input", "reason"], observed=True).size().rename("references")
                .reset_index())

    def orphan_examples(self, n: int = 5) -> pd.DataFrame:
        """A few orphans per input and reason; card, phone and email references masked."""
        o = self.orphans.groupby(["input", "reason"], observed=True).head(n)
        shown = o[["input", "line", "ref_kind", "ref_value", "reason"]].astype({"ref_value": "str"}).copy()
        if not self.show_pii:
            personal = shown["ref_kind"].astype(str) != "legacy_id"  # legacy ids are not personal data
            shown.loc[personal, "ref_value"] = shown.loc[personal, "ref_value"].map(mask_identifier)
        return shown.reset_index(drop=True)

    def review(self, reason: str, n: int = 20) -> pd.DataFrame:
        return mask_frame(self.mapping.reviewed(reason).head(n), show_pii=self.show_pii)

    def review_counts(self) -> pd.DataFrame:
        r = self.mapping.review
        return r.groupby("reason").size().rename("members").reset_index() if len(r) else \
            pd.DataFrame({"reason": [], "members": []})

    def import_failures(self) -> pd.DataFrame:
        if self.import_check.empty:
            return self.import_check
        failed = self.import_check[self.import_check["status"] != "imported"]
        return mask_frame(failed.rename(columns={"identifier": "identifier_key"}), show_pii=self.show_pii)


def run(ctx: StageContext) -> MappingOutcome:
    """Map the accepted members to the target's IDs and check every reference resolves."""
    cfg = ctx.config
    tm = cfg.sources.target_members
    if tm is None:
        raise ConfigError("stage 02 needs sources.target_members (rehearsal: true, or the target's export)",
                          stage=ctx.stage, file=cfg.path.name, field="sources.target_members")
    if tm.rehearsal:
        rehearsal = rehearse_import(ctx.run_dir, seed=tm.rehearsal_seed, fresh=True, profile=profile_of(cfg))
        export_path, result_path = rehearsal.members_export, rehearsal.import_result
    else:
        export_path, result_path = tm.path, tm.import_result
    region = cfg.phone_region("target_members")
    target = read_target_members(ctx.freeze_input("target_members", export_path), default_region=region,
                                 stage=ctx.stage)
    migrated = ctx.store.read_table("members")
    held = (ctx.store.read_table("member_holdback") if ctx.store.has_table("member_holdback")
            else pd.DataFrame(columns=list(HOLDBACK_COLUMNS)))
    # members held back in stage 01 were never sent: they are counted as held, not as unmatched
    sent = migrated[~migrated["legacy_id"].isin(held["legacy_id"])] if len(held) else migrated
    mapping = match_members(sent, target)

    frozen = ctx.frozen_inputs()
    ref_paths = {name: ctx.input_path(name) for name in frozen
                 if name in REFERENCE_INPUTS or name.startswith("rewards/")}
    refs = member_references(cfg, ref_paths, stage=ctx.stage)
    raw_members, _ = read_members(ctx.source("members"), stage=ctx.stage)
    _, orphans, per_input = coverage(refs, mapping.id_map, migrated,
                                     legacy_members=legacy_member_keys(raw_members, cfg.sources.members.default_region))
    orphans = _held_orphans(orphans, held)
    import_check = pd.DataFrame(columns=["legacy_id", "identifier", "status", "target_id", "message", "item_index"])
    if result_path is not None:
        result = read_import_result(ctx.freeze_input("target_import_result", result_path))
        import_check = reconcile_import_result(sent[["legacy_id", "email", "phone", "card_number"]], result)
    return MappingOutcome(mapping=mapping, per_input=per_input, orphans=orphans, import_check=import_check,
                          rehearsal=tm.rehearsal, min_coverage=cfg.gates.mapping.min_member_coverage,
                          show_pii=ctx.show_pii, held=held)


def _held_orphans(orphans: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """References to a member held back in stage 01 say so, with the rule (not "rejected or unmapped")."""
    if orphans.empty or held.empty:
        return orphans
    rule_of = dict(zip(held["legacy_id"], held["rule_id"]))
    ids = orphans["legacy_id"].astype(str)
    hit = ids.isin(rule_of.keys()).to_numpy()
    if hit.any():
        orphans = orphans.copy()
        orphans["reason"] = orphans["reason"].astype(object)
        orphans["detail"] = orphans["detail"].astype(object)
        orphans.loc[hit, "reason"] = HELD_REASON
        orphans.loc[hit, "detail"] = [f"held back in stage 01: the target refuses it ({rule_of[i]})"
                                      for i in ids[hit]]
    return orphans


def _tables(outcome: MappingOutcome) -> dict[str, pd.DataFrame]:
    orphans = outcome.orphans.astype({c: "str" for c in outcome.orphans.columns if c != "line"})
    return {"member_map": outcome.mapping.id_map, "mapping_review": outcome.mapping.review,
            "reference_coverage": outcome.per_input, "reference_orphans": orphans,
            "import_results": outcome.import_check}


def gate(ctx: StageContext, outcome: MappingOutcome):
    """Critical: nothing mapped twice, coverage at or above the minimum, every member sent accounted
    for in the import result. Warning: orphaned references."""
    coverage_check = outcome.per_input.assign(accounted=outcome.per_input["resolved"] + outcome.per_input["orphans"])
    return ctx.gate({"id_map": outcome.mapping.id_map, "summary": outcome.summary(),
                     "coverage": coverage_check, "import_check": outcome.import_check},
                    parameters={"min_member_coverage": outcome.min_coverage})


def commit(ctx: StageContext, outcome: MappingOutcome, gate_report) -> None:
    """Record the figures and commit the tables; raises GateFailed on a critical failure."""
    ctx.finish(gate_report, outcome.figures(), _tables(outcome),
               parameters={"min_member_coverage": outcome.min_coverage})
