"""Stage 05's cross-stage checks, headline figures and sign-off checklist.

Each check is one row: a figure from one place (a stage's record, a staging table, a file on
disk), the same figure from another, the relation they must satisfy and whether they do. Stage
05's critical gate requires every check to agree, so a stage that recorded one thing and committed
or wrote another cannot be signed off. Pure: a :class:`report.RunView` in, frames out.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import plain_decimal
from loyalty_toolkit.stages.report.figures import (
    CHECK_COLUMNS,
    EARLIER_STAGES,
    RunView,
    by_key,
    dec_sum,
    member_counts,
    reward_counts,
    roll_forward,
    unmapped_lot_points,
)

MISSING = "missing"
CONSERVATION_CHECK = ("points: before expiry = transferred + residue + rejected + held + unmatched + expired")


def _text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, Decimal):
        return str(plain_decimal(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def agrees(left: str, right: str, relation: str = "=") -> bool:
    """Compare two figures as exact numbers when both are numbers, else as text; missing never agrees."""
    if MISSING in (left, right):
        return False
    try:
        a, b = Decimal(left), Decimal(right)
    except (InvalidOperation, ValueError):
        return relation == "=" and left == right
    return a == b if relation == "=" else a <= b


def check(name: str, left: str, left_value: Any, right: str, right_value: Any, relation: str = "=") -> dict[str, Any]:
    """One cross-stage check as a row of :data:`report.CHECK_COLUMNS`."""
    lv, rv = _text(left_value), _text(right_value)
    return {"check": name, "left": left, "left_value": lv, "relation": relation, "right": right, "right_value": rv,
            "agree": agrees(lv, rv, relation)}


def cross_stage_checks(view: RunView, points: dict[str, Decimal]) -> pd.DataFrame:
    """Every check that ties the stages to each other, to the staging database and to the files;
    the checks of a stage the program does not need are left out (it never ran)."""
    rec, tot = view.record, view.totals
    m = member_counts(view)
    rows = [
        check("members: rows stage 00 froze = rows stage 01 read", "inputs.json: members rows", m["read"],
              "stage 01 record: rows in", rec("members").get("rows_in")),
        check("members: accepted in stage 01 = members committed", "stage 01 record: rows out",
              rec("members").get("rows_out"), "staging: members", m["accepted"]),
        check("members: rejected in stage 01 = rows in its reject file", "staging: member_rejects", m["rejected"],
              "rejects/members.csv", view.reject_files.get("members")),
        check("members: accepted in stage 01 = members stage 02 mapped from", "stage 01 record: rows out",
              rec("members").get("rows_out"), "stage 02 record: rows in", rec("mapping").get("rows_in")),
        check("members: mapped in stage 02 = rows committed in member_map", "stage 02 record: rows out",
              rec("mapping").get("rows_out"), "staging: member_map", m["mapped"]),
        check("members: mapped in stage 02 <= accepted in stage 01", "staging: member_map", m["mapped"],
              "staging: members", m["accepted"], "<="),
        check("members: every mapped member was accepted in stage 01", "member_map rows found in members",
              view.s.mapped_in_members, "staging: member_map", m["mapped"]),
    ]
    if view.applies("transfers"):
        rows += _transfer_checks(view, points)
    if view.applies("rewards"):
        rows += _reward_checks(view)
    for stage in (s for s in EARLIER_STAGES if view.applies(s)):
        record = rec(stage)
        stem = notebook_name(stage)
        if stage == "subset":
            extra, label = tot(stage).get("rows_left_out"), "rows out + rows left out"
        else:
            extra, label = record.get("rows_rejected"), "rows out + rows rejected"
        out = record.get("rows_out")
        rows.append(check(f"{stem}: rows in = {label}", "rows in", record.get("rows_in"), label,
                          None if out is None or extra is None else int(out) + int(extra)))
        rows.append(check(f"{stem}: passed and committed", "stage record: status", record.get("status"),
                          "staging: _stages", "passed" if stage in view.completed else "not committed"))
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS))


def _transfer_checks(view: RunView, points: dict[str, Decimal]) -> list[dict[str, Any]]:
    """Stage 03's figures against its tables, its files and stage 02's map (a program with points)."""
    tot, t, s = view.totals, view.table, view.s
    rows = [
        check("points: owed before, stage 03's record = its tables", "stage 03 record: points owed before",
              tot("transfers").get("points_owed_before"), "staging: ledger owed + opening balances", points["before"]),
        check("points: owed after, stage 03's record = its tables", "stage 03 record: points owed after",
              tot("transfers").get("points_owed_after"), "staging: transfers + residue + rejected + held + unmatched",
              points["after"]),
        check("points: owed before = owed after", "points owed before", points["before"], "points owed after",
              points["after"]),
        # The conservation with expiry in it, every part from another table: what the books held before the
        # cutover expired anything (roll-forward) = every point's destination (transfers, lots, rejects).
        check(CONSERVATION_CHECK, "liability_roll_forward: opening + accrued - redeemed", points["before_expiry"],
              "transferred + residue + rejected + held + unmatched + expired (lots)",
              points["after"] + points["expired"]),
        check("points: expired at the cutover, lots = roll-forward", "lots: expired remaining",
              points["expired"], "liability_roll_forward: sum of expired", points["expired_roll_forward"]),
    ]
    total = t("reconciliation_total")
    ledger_total = dec_sum(total["owed_ledger"]) if "owed_ledger" in total.columns else None
    for key, name in (("center", "reconciliation_center"), ("program", "reconciliation_program")):
        frame = t(name)
        rows.append(check(f"points: ledger owed in total = the sum over {key}s", "reconciliation_total: owed_ledger",
                          ledger_total, f"{name}: sum of owed_ledger",
                          dec_sum(frame["owed_ledger"]) if "owed_ledger" in frame.columns else None))
        if len(frame) and {key, "owed_ledger"} <= set(frame.columns):
            rows.append(check(f"points: every {key} reconciles (ledger = lots = transfer side)", f"{key}s that agree",
                              int(by_key(frame, total, key)["agree"].iloc[:-1].sum()), f"{key}s", len(frame)))
    rf = t("liability_roll_forward")
    tied = roll_forward(rf)
    # a ledger with no entry and no opening balance has no roll-forward row: its closing sums to 0
    rows.append(check("points: closing liability (roll-forward, all centers) = points owed before",
                      "liability_roll_forward: sum of closing", tied["closing"].iloc[-1] if len(rf) else Decimal(0),
                      "points owed before", points["before"]))
    if len(rf):
        rows.append(check("points: every roll-forward row ties", "rows that tie", int(tied["ties"].iloc[:-1].sum()),
                          "roll-forward rows", len(rf)))
    outputs = t("transfer_outputs")
    for out, unit, written in zip(text_column(outputs, "output"), text_column(outputs, "unit"),
                                  outputs.get("total_written", pd.Series([None] * len(outputs)))):
        if unit == "points":
            rows.append(check(f"points: unit transfers committed = {out} read back", "staging: unit_transfers points",
                              points["transferred"], f"output/{out}: points", written))
    rows += [
        check("points: rejected for unmapped members = what their lots hold", "staging: rejected points per member",
              points["rejected"], "lots of members not in member_map", unmapped_lot_points(view)),
        check("transfers: stage 03's record = rows committed", "stage 03 record: transfers",
              (tot("transfers").get("transfers") or {}).get("count"), "staging: unit_transfers",
              s.transfers["count"]),
        check("transfers: each goes to a member mapped in stage 02, under its target ID",
              "transfers whose (legacy id, target id) is in member_map", s.transfers["in_member_map"],
              "staging: unit_transfers", s.transfers["count"]),
        check("transfers: rejects committed = rows in its reject file", "staging: transfer_rejects",
              s.rows.get("transfer_rejects", 0), "rejects/transfers.csv", view.reject_files.get("transfers")),
    ]
    opening = tot("transfers").get("opening")
    if opening:
        rows.append(check("points: opening conversion residue, stage 03's record = its tables",
                          "stage 03 record: opening conversion_residue", opening.get("conversion_residue"),
                          "staging: opening_balances residue", points["opening_residue"]))
        rows.append(check("points: opening balances exact = points + conversion residue",
                          "staging: opening_balances points_exact", points["opening_exact"],
                          "staging: points + residue", points["opening"] + points["opening_residue"]))
    return rows


def _reward_checks(view: RunView) -> list[dict[str, Any]]:
    """Stage 04's figures against its tables, its files and stage 02's map (a program with rewards)."""
    tot, s = view.totals, view.s
    r = reward_counts(view)
    rows = [
        check("rewards: attributions in stage 04's record = states committed", "stage 04 record: attributions",
              tot("rewards").get("attributions"), "staging: reward_state", r["attributions"]),
    ]
    states = tot("rewards").get("states") or {}
    for state in ("active", "burned", "expired"):
        rows.append(check(f"rewards: {state} in stage 04's record = committed", f"stage 04 record: {state}",
                          states.get(state), f"staging: reward_state {state}", r[state]))
    rows += [
        check("rewards: every attribution belongs to a member mapped in stage 02", "attributions of mapped members",
              s.attributions_of_mapped, "staging: reward_attributions", s.rows.get("reward_attributions", 0)),
        check("rewards: active rewards with a code = coupon codes written", "staging: active codes",
              r["active_with_code"], "output/openloyalty/coupons_*.csv: codes", r["coupon_codes_in_files"]),
        check("rewards: rejects committed = rows in its reject file", "staging: reward_rejects",
              s.rows.get("reward_rejects", 0), "rejects/rewards.csv", view.reject_files.get("rewards")),
        check("rewards: active at the cutover = earned in Splio + waiting + unresolved", "staging: reward_state active",
              r["active"], "staging: reward_import earn rows earned, waiting, unresolved",
              r["earned"] + r["waiting"] + r["unresolved"]),
        check("rewards: burned + expired = history (not earned again in Splio)", "staging: reward_state burned + expired",
              r["burned"] + r["expired"], "staging: reward_import earn rows in history", r["history"]),
        check("rewards: earnreward rows in stage 04's record = earned rows committed",
              "stage 04 record: earnreward rows written", (tot("rewards").get("import") or {}).get("earn_rows_written"),
              "staging: reward_import earned", r["earned"]),
    ]
    return rows


# -- headline and checklist --------------------------------------------------------------------

HEADLINE_LABELS = {
    "members_read": "members read", "members_accepted": "members accepted (stage 01)",
    "members_rejected": "members rejected, with a reason (stage 01)",
    "members_migrated": "members migrated: mapped to a target ID (stage 02)",
    "members_not_mapped": "members accepted but not mapped (review list, stage 02)",
    "members_with_points": "members given points", "points_owed_before": "points owed before",
    "points_owed_after": "points owed after", "points_difference": "difference (must be 0)",
    "points_transferred": "points transferred (whole points in unit transfers)",
    "points_expired": "points expired at the cutover (no longer owed)",
    "points_rejected": "points rejected: members not mapped (itemised)",
    "points_held_for_review": "points held for review: negative balances",
    "points_residue": "points left as rounding residue (not transferred)",
    "points_opening_unmatched": "points of opening rows matched to no member",
    "rewards_active": "rewards active at the cutover (owed)", "rewards_burned": "rewards burned by the cutover",
    "rewards_expired": "rewards expired by the cutover", "coupon_codes": "coupon codes written",
    "rewards_earned_in_splio": "rewards earned in Splio (step two: internal ids, import day)",
    "rewards_waiting": "rewards waiting for Splio's master reward export (not a failure)",
    "rows_rejected": "input rows rejected (all files, itemised)",
    "opening_conversion_residue": "opening balances: conversion residue (rounded away, accounted for)",
    "stages_not_applicable": "stages not applicable to this program (not run)",
}
POINTS_FIGURES = ("members_with_points", "points_owed_before", "points_owed_after", "points_difference",
                  "points_transferred", "points_expired", "opening_conversion_residue", "points_rejected",
                  "points_held_for_review", "points_residue", "points_opening_unmatched")
REWARD_FIGURES = ("rewards_active", "rewards_burned", "rewards_expired", "rewards_earned_in_splio",
                  "rewards_waiting", "coupon_codes")


def headline(view: RunView, points: dict[str, Decimal], conservation: pd.DataFrame) -> dict[str, Any]:
    """The figures a reviewer signs: JSON-ready (points as exact text). Only the stages that ran
    give figures: no points figure for a program without points, no reward figure without rewards;
    ``stages_not_applicable`` names the stages left out."""
    m, r = member_counts(view), reward_counts(view)
    # points in the order a reviewer follows them: before, where each point went, after, expired
    out = {"members_read": m["read"], "members_accepted": m["accepted"], "members_rejected": m["rejected"],
           "members_migrated": m["mapped"], "members_not_mapped": m["not_mapped"],
           "members_with_points": m["with_points"], "points_owed_before": str(points["before"]),
           "points_transferred": str(points["transferred"]), "points_residue": str(points["residue"]),
           "points_rejected": str(points["rejected"]), "points_held_for_review": str(points["review"]),
           "points_opening_unmatched": str(points["opening_unmatched"]),
           "points_owed_after": str(points["after"]), "points_difference": str(points["difference"]),
           "points_expired": str(points["expired"]),
           "opening_conversion_residue": str(points["opening_residue"]),
           "rewards_active": r["active"], "rewards_burned": r["burned"], "rewards_expired": r["expired"],
           "rewards_earned_in_splio": r["earned"], "rewards_waiting": r["waiting"] + r["unresolved"],
           "coupon_codes": r["coupon_codes_in_files"], "rows_rejected": int(conservation["rows_rejected"].sum())}
    if not view.applies("transfers"):
        out = {k: v for k, v in out.items() if k not in POINTS_FIGURES}
    if not view.applies("rewards"):
        out = {k: v for k, v in out.items() if k not in REWARD_FIGURES}
    if view.not_applicable:
        out["stages_not_applicable"] = ", ".join(notebook_name(s) for s in view.not_applicable)
    return out


def headline_table(figures: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({"figure": [HEADLINE_LABELS.get(k, k) for k in figures],
                         "value": [_shown(v) for v in figures.values()]})


def _shown(v: Any) -> str:
    """Thousands separators for the reader; exact digits kept."""
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return str(v)
    whole, _, frac = str(plain_decimal(d)).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return sign + f"{int(whole.lstrip('-')):,}" + (f".{frac}" if frac else "")


def checklist(figures: dict[str, Any], checks: pd.DataFrame, conservation: pd.DataFrame,
              gates: pd.DataFrame) -> pd.DataFrame:
    """The sign-off checklist: each figure, its value, whether it holds, and what it proves. The
    points lines appear only when stage 03 ran, the rewards line only when stage 04 ran; a last
    line names the stages that did not apply."""
    f, s = figures, _shown
    gates = gates[gates["status"] != "not_applicable"]
    agreeing = int(checks["agree"].sum())
    files_ok = int(conservation["agree"].sum())

    def pair(name: str) -> tuple[str, bool]:
        row = checks[checks["check"] == name]
        if not len(row):
            return MISSING, False
        return f"{s(row['left_value'].iloc[0])} = {s(row['right_value'].iloc[0])}", bool(row["agree"].all())

    members_ok = (f["members_read"] == f["members_accepted"] + f["members_rejected"]
                  and f["members_migrated"] + f["members_not_mapped"] == f["members_accepted"])
    critical = int(pd.to_numeric(gates["critical_failed"]).sum())
    warnings = int(pd.to_numeric(gates["warnings"]).sum())
    rows = [
        ("rows read = accepted + rejected, per input file", f"{files_ok} of {len(conservation)} files",
         files_ok == len(conservation) and len(conservation) > 0,
         "No row of any legacy export was lost or counted twice; each rejected row is in rejects/<stage>.csv "
         "with its file, line and reason."),
        ("members read = accepted + rejected; accepted = migrated + not mapped",
         f"{s(f['members_read'])} = {s(f['members_accepted'])} + {s(f['members_rejected'])}; "
         f"{s(f['members_accepted'])} = {s(f['members_migrated'])} + {s(f['members_not_mapped'])}", members_ok,
         "Every member is migrated, rejected with a reason (stage 01) or on stage 02's review list: none vanishes."),
    ]
    if "points_difference" in f:
        opening, opening_ok = pair("points: opening balances exact = points + conversion residue")
        if opening != MISSING:
            rows.append(("opening balances converted exactly = points imported + conversion residue",
                         f"{opening} (residue {s(f['opening_conversion_residue'])})", opening_ok,
                         "Revenue converted to points and rounded once: the fractions rounded away are counted, "
                         "so every point of the opening balances is accounted for."))
        closing, closing_ok = pair("points: closing liability (roll-forward, all centers) = points owed before")
        rows += [
            ("points owed before = points owed after",
             f"{s(f['points_owed_before'])} = {s(f['points_owed_after'])}, difference {s(f['points_difference'])}",
             Decimal(f["points_difference"]) == 0,
             "The migration changes what the company owes its members by exactly zero, computed from the staging "
             "tables apart from stage 03's own figures."),
            ("closing liability (roll-forward) = points owed before", closing, closing_ok,
             "Per center and program, opening + accrued - redeemed - expired = closing, and the closings add up "
             "to what is owed."),
        ]
    if "rewards_active" in f:
        coupons, coupons_ok = pair("rewards: active rewards with a code = coupon codes written")
        rows.append(("rewards active at the cutover with a code = coupon codes written", coupons, coupons_ok,
                     "Every reward still owed goes to the target as a code; burned and expired rewards do not."))
    rows += [
        ("cross-stage checks that agree", f"{agreeing} of {len(checks)}", agreeing == len(checks) and len(checks) > 0,
         "The stages' records, the staging database and the files written tell the same story."),
        ("critical expectations failed, stages that apply", str(critical),
         critical == 0 and bool((gates["status"] == "passed").all()),
         "Every stage's gate passed; its Data Docs hold the evidence."),
        ("warnings raised, stages that apply", str(warnings), True,
         "Itemised exceptions (rejects, fallback matches, review lists) to read before signing; not failures."),
    ]
    if "stages_not_applicable" in f:
        rows.append(("stages not applicable to this program", f["stages_not_applicable"], True,
                     "The program does not need these stages (no points: no 03_transfers; no reward files: no "
                     "04_rewards); they did not run and none of their figures is signed here."))
    return pd.DataFrame(rows, columns=["figure", "value", "holds", "proves"])
