"""Stage 01, members: read the legacy member export, normalise, reject with reasons, list
duplicate candidates for review, and write the target's member import (Open Loyalty XML).

Row conservation is a critical gate: rows read (counted by stage 00 on the frozen file) must
equal rows accepted + rows rejected, and every accepted member must be in the XML exactly once or on
the hold-back list: a member the target profile refuses (``targets/ol_profiles.py``) is not written,
and waits for review with the rule that refuses it (table ``member_holdback``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loyalty_toolkit.mask import PII_KINDS, mask_frame, mask_value
from loyalty_toolkit.shared.member_rules import MembersResult, prepare_members
from loyalty_toolkit.sources.members import read_members
from loyalty_toolkit.stages.context import StageContext, StageFigures
from loyalty_toolkit.targets.ol_profiles import profile_of
from loyalty_toolkit.targets.openloyalty import member_holdback, members_xml_count, write_members_xml


@dataclass
class MembersOutcome:
    result: MembersResult
    xml_files: list[Path]
    conservation: pd.DataFrame
    show_pii: bool = False
    held: pd.DataFrame | None = None  # accepted members the target profile refuses: not in the XML

    def figures(self) -> StageFigures:
        c = self.result.counts()
        return StageFigures(rows_in=c["rows_read"], rows_out=c["accepted"], rows_rejected=c["rejected"],
                            totals={"duplicate_groups": c["duplicate_groups"], "duplicate_members": c["duplicate_members"],
                                    "identifiers_dropped": c["identifiers_dropped"],
                                    "xml_files": len(self.xml_files),
                                    "held_by_target": 0 if self.held is None else len(self.held),
                                    "members_in_xml": int(self.conservation["rows_in_xml"].iloc[0])})

    def counts(self) -> pd.DataFrame:
        """The headline counts as a two-column table for the notebook."""
        f = self.figures()
        rows = {"rows read": f.rows_in, "accepted": f.rows_out, "rejected": f.rows_rejected, **f.totals}
        return pd.DataFrame({"figure": list(rows), "value": list(rows.values())})

    def rejects_by_reason(self) -> pd.DataFrame:
        r = self.result.rejects
        if r.empty:
            return pd.DataFrame({"reason_code": [], "rows": []})
        return r.groupby("reason_code").size().rename("rows").reset_index().sort_values("rows", ascending=False)

    def reject_examples(self, n: int = 3) -> pd.DataFrame:
        """A few rejects per reason, personal data masked."""
        r = self.result.rejects.sort_values(["reason_code", "line"]).groupby("reason_code").head(n)
        return _mask_values(r, self.show_pii)

    def review(self) -> pd.DataFrame:
        """Accepted members with a bad optional identifier left out: file, line, reason, value (masked)."""
        return _mask_values(self.result.review, self.show_pii)

    def duplicates(self) -> pd.DataFrame:
        return mask_frame(self.result.duplicates, show_pii=self.show_pii)

    def duplicates_by_identifier(self) -> pd.DataFrame:
        d = self.result.duplicates
        if d.empty:
            return pd.DataFrame({"identifier": [], "groups": [], "members": []})
        return d.groupby("identifier").agg(groups=("group_id", "nunique"), members=("legacy_id", "nunique")).reset_index()

    def held_by_rule(self) -> pd.DataFrame:
        """Members held back from the import file per profile rule, with the rule's source."""
        h = self.held if self.held is not None else pd.DataFrame(columns=["rule_id", "message", "source"])
        if h.empty:
            return pd.DataFrame({"rule_id": [], "message": [], "source": [], "members": []})
        return (h.groupby(["rule_id", "message", "source"]).size().rename("members").reset_index()
                .sort_values("members", ascending=False, kind="stable").reset_index(drop=True))

    def members_sample(self, n: int = 10) -> pd.DataFrame:
        cols = ["legacy_id", "first_name", "last_name", "email", "phone", "card_number", "birth_date", "gender"]
        return mask_frame(self.result.members[cols].head(n), show_pii=self.show_pii)


def _mask_values(rejects: pd.DataFrame, show_pii: bool) -> pd.DataFrame:
    """Reject values may be emails, phones or names: mask each by the column it came from."""
    if show_pii or rejects.empty:
        return rejects
    out = rejects.copy()
    out["value"] = [mask_value(PII_KINDS[c], v) if c in PII_KINDS else v for c, v in zip(out["column"], out["value"])]
    return out


def run(ctx: StageContext) -> MembersOutcome:
    """Read the frozen member export, prepare members, write the members XML (pending the gate)."""
    src = ctx.source("members")
    frame, _table = read_members(src, stage=ctx.stage)
    result = prepare_members(frame, source_file=src.path.name, default_region=src.default_region,
                             timezone=src.timezone, date_format=src.date_format)
    ol = ctx.config.targets.openloyalty.members
    profile = profile_of(ctx.config)
    # what the target's importer would refuse is held back for review, never sent to be refused there
    held = member_holdback(result.members, profile.member_rules(), active=ol.active, agreement1=ol.agreement1,
                           send_activation_mail=ol.send_activation_mail)
    sent = result.members[~result.members["legacy_id"].isin(held["legacy_id"])] if len(held) else result.members
    xml_files = write_members_xml(sent, ctx.output_dir("openloyalty"), active=ol.active,
                                  agreement1=ol.agreement1, send_activation_mail=ol.send_activation_mail,
                                  max_file_bytes=min(int(ol.max_file_mb * 1_000_000), profile.upload_limit_bytes()))
    in_xml = sum(members_xml_count(p) for p in xml_files)
    ctx.write_rejects(result.rejects)
    conservation = pd.DataFrame([{
        "file": src.path.name,
        # Counted by stage 00 on the frozen file, independently of this stage's parser.
        "rows_read": int(ctx.frozen_inputs()["members"]["rows_kept"]),
        "rows_accepted": len(result.members),
        "rows_rejected": len(result.rejects),
        "rows_accounted": len(result.members) + len(result.rejects),
        "rows_in_xml": in_xml,
        "rows_held": len(held),
        "rows_in_xml_or_held": in_xml + len(held),
    }])
    return MembersOutcome(result=result, xml_files=xml_files, conservation=conservation, show_pii=ctx.show_pii,
                          held=held)


def gate(ctx: StageContext, outcome: MembersOutcome):
    """Run the stage's suites: accepted members, rejects and row conservation."""
    members = outcome.result.members.copy()
    members["has_identifier"] = (members["email"] != "") | (members["phone"] != "") | (members["card_number"] != "")
    return ctx.gate({"members": members, "rejects": outcome.result.rejects, "conservation": outcome.conservation})


def commit(ctx: StageContext, outcome: MembersOutcome, gate_report) -> None:
    """Record the figures and commit the tables; raises GateFailed on a critical failure."""
    ctx.finish(gate_report, outcome.figures(), {"members": outcome.result.members,
                                                "member_rejects": outcome.result.rejects,
                                                "member_review": outcome.result.review,
                                                "duplicate_candidates": outcome.result.duplicates,
                                                "member_holdback": outcome.held})
