"""Stage 05's logic: the sign-off figures, computed from what the earlier stages left behind.

Pure: a :class:`RunView` (the stages' JSON records, the small staging tables the report shows, the
counts and exact sums SQLite took over the large ones (:class:`TableSums`), stage 00's record of the
frozen inputs, and a few counts taken from the files on disk) in, frames and dicts out. The step
module (``report.step``) gathers the view; the notebook shows what these functions return.

The report does not trust any single stage's bookkeeping: each cross-stage check puts a figure one
stage recorded next to the same figure derived from another source (another stage's tables, the
staging database, the files written) and says whether they agree. Points are compared exactly, as
integer micro-points, never through float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from loyalty_toolkit.model import STAGE_NAMES, notebook_name
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import POINTS_SCALE, plain_decimal
from loyalty_toolkit.store import stored_decimal

REPORT_STAGE = "report"
EARLIER_STAGES: tuple[str, ...] = STAGE_NAMES[:STAGE_NAMES.index(REPORT_STAGE)]
CHECK_COLUMNS = ("check", "left", "left_value", "relation", "right", "right_value", "agree")
CONSERVATION_COLUMNS = ("input", "file", "stage", "rows_in_source", "rows_left_out", "rows_read", "rows_accepted",
                        "rows_rejected", "rows_accounted", "agree")
GATE_COLUMNS = ("stage", "status", "committed", "rows_in", "rows_out", "rows_rejected", "expectations", "passed",
                "critical_failed", "warnings")
# The stage that accounts for each frozen input's rows (reward files: every input named rewards/...).
CONSUMER = {"members": "members", "ledger": "transfers", "opening_balances": "transfers"}


@dataclass
class TableSums:
    """What the report needs from the large staging tables (``lots``, ``unit_transfers``, the
    per-member tables), counted and summed by SQLite (``store.report_queries``, gathered by
    ``report.step.table_sums``): at a million members the tables themselves are gigabytes."""

    rows: dict[str, int]  # table -> rows (absent table: 0)
    transfers: dict[str, int]  # report_queries.transfer_figures: count, points, residue_units, ...
    lots: dict[str, int]  # report_queries.lot_figures: expired_units, unmapped_live_units, ...
    amounts: dict[str, Decimal]  # "table.column" -> the exact sum of that amount column
    mapped_in_members: int  # member_map rows whose legacy id is a row of members
    attributions_of_mapped: int  # reward_attributions rows whose member is in member_map
    owed_per_member: np.ndarray  # int64 micro-points owed per member (balance bands)
    expiry_months: pd.DataFrame  # live lots per month of expiry: month, lots, members, units

    def amount(self, table: str, column: str) -> Decimal:
        """The exact sum of ``table.column`` (0 when the table is absent: its stage did not apply)."""
        return self.amounts.get(f"{table}.{column}", Decimal(0))


@dataclass
class RunView:
    """What stage 05 reads from a run dir, gathered by the step module."""

    records: dict[str, dict[str, Any]]  # stage -> RUN_DIR/stages/NN_stage.json (absent: the stage never recorded)
    tables: dict[str, pd.DataFrame]  # the small staging tables by name (the large ones: ``sums``)
    inputs: dict[str, dict[str, Any]]  # inputs/inputs.json (stage 00's counts of each frozen file)
    completed: set[str] = field(default_factory=set)  # stages committed in the staging database (_stages)
    reject_files: dict[str, int] = field(default_factory=dict)  # stage -> rows in rejects/<stage>.csv
    coupon_codes: set[str] = field(default_factory=set)  # the codes in output/openloyalty/coupons_*.csv
    not_applicable: dict[str, str] = field(default_factory=dict)  # stage -> why the program does not need it
    sums: TableSums | None = None  # the large tables' counts and sums

    @property
    def s(self) -> TableSums:
        """The large tables' counts and sums; a view gathered without them cannot give a figure."""
        if self.sums is None:
            raise ValueError("the run view has no table sums: gather it with report.step.read_view")
        return self.sums

    def applies(self, stage: str) -> bool:
        """Whether the program needs ``stage`` (a not-applicable stage never ran and is not signed)."""
        return stage not in self.not_applicable

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def record(self, stage: str) -> dict[str, Any]:
        return self.records.get(stage) or {}

    def totals(self, stage: str) -> dict[str, Any]:
        return self.record(stage).get("totals") or {}


# -- exact numbers -----------------------------------------------------------------------------

def dec_sum(values) -> Decimal:
    return sum((stored_decimal(v) for v in values), Decimal(0))


def units(value: Any) -> int:
    """Exact integer micro-points of a figure."""
    return int(stored_decimal(value).scaleb(POINTS_SCALE))


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([], dtype=object)


def _ints(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(_column(frame, name), errors="coerce").fillna(0).to_numpy(np.int64)


# -- points ------------------------------------------------------------------------------------

def points_conservation(view: RunView) -> dict[str, Decimal]:
    """Points owed before and after the migration, summed from stage 03's staging tables.

    ``before_expiry`` (the roll-forward's opening + accrued - redeemed) is what the books held
    before the cutover expired anything: it must equal after + expired, expired taken from the lots.

    Before: the ledger's balances (``reconciliation_total.owed_ledger``) + the opening balances read.
    After: whole points in the unit transfers (adding - spending) + the rounding residue of every
    transfer (zero-point ones too) + points of members stage 02 did not map (itemised per member) +
    negative balances held for review (negative) + opening rows matched to no member. The opening
    balances' conversion (revenue -> points, rounded once) is shown beside them: exact = points +
    conversion residue, so the points the rounding took are accounted for too.
    """
    s = view.s
    ledger = dec_sum(_column(view.table("reconciliation_total"), "owed_ledger"))
    opening = s.amount("opening_balances", "points")
    opening_exact = s.amount("opening_balances", "points_exact")
    opening_residue = s.amount("opening_balances", "residue")
    transferred = Decimal(s.transfers["points"])
    residue = Decimal(s.transfers["residue_units"]).scaleb(-6)
    rejected = s.amount("transfer_per_member", "rejected")
    review = -s.amount("transfer_review", "deficit")
    unmatched = s.amount("opening_unmatched", "points")
    before = ledger + opening
    after = transferred + residue + rejected + review + unmatched
    expired = Decimal(s.lots["expired_units"]).scaleb(-6)
    rf = view.table("liability_roll_forward")
    out = {"ledger_owed": ledger, "opening": opening, "before": before, "transferred": transferred,
           "residue": residue, "rejected": rejected, "review": review, "opening_unmatched": unmatched,
           "after": after, "difference": before - after, "expired": expired, "opening_exact": opening_exact,
           "opening_residue": opening_residue,
           # the roll-forward's side of the conservation that includes expiry (stage 05's checks tie them)
           "before_expiry": dec_sum(_column(rf, "opening")) + dec_sum(_column(rf, "accrued"))
           - dec_sum(_column(rf, "redeemed")),
           "expired_roll_forward": dec_sum(_column(rf, "expired"))}
    return {k: plain_decimal(v) for k, v in out.items()}


def points_table(points: dict[str, Decimal]) -> pd.DataFrame:
    """The points conservation as the reviewer reads it: the opening balances' conversion, before,
    the parts of after, the difference."""
    rows = [("opening balances: revenue converted to points, exact (before rounding)", points["opening_exact"]),
            ("opening balances: conversion residue (fractions rounded away, once)", points["opening_residue"]),
            ("points owed before: the ledger's balances at the cutover", points["ledger_owed"]),
            ("points owed before: opening balances (exact - conversion residue)", points["opening"]),
            ("POINTS OWED BEFORE", points["before"]),
            ("after: whole points in unit transfers (adding - spending)", points["transferred"]),
            ("after: rounding residue (fractions not transferred)", points["residue"]),
            ("after: members not mapped in stage 02 (rejected, itemised)", points["rejected"]),
            ("after: negative balances held for review", points["review"]),
            ("after: opening rows matched to no member", points["opening_unmatched"]),
            ("POINTS OWED AFTER", points["after"]),
            ("DIFFERENCE (must be 0)", points["difference"]),
            ("for information: points expired at the cutover (no longer owed)", points["expired"])]
    return pd.DataFrame(rows, columns=["figure", "points"]).astype({"points": object})


# Each stage's reject table and file; the points a transfer reject carries come from the
# conservation's parts (a refused ledger or opening row never became points owed).
REJECT_TABLES = {"members": "member_rejects", "transfers": "transfer_rejects", "rewards": "reward_rejects"}
REJECT_REASON_COLUMNS = ("stage", "reason_code", "rows", "points", "file")


def rejects_by_reason(view: RunView, points: dict[str, Decimal]) -> pd.DataFrame:
    """Rejected rows per stage and reason code, with the points they hold back where they hold any:
    ``MEMBER_UNMAPPED`` the rejected points, ``NEGATIVE_BALANCE`` the deficits held for review, an
    opening row matched to no member its points; ``points`` is None for a row refused before it
    owed anything. ``file`` is the reject file (relative to the run dir) listing the rows."""
    unmatched = view.table("opening_unmatched")
    by_code = {str(c): dec_sum(g) for c, g in _column(unmatched, "points").groupby(
        text_column(unmatched, "reason_code"))} if len(unmatched) else {}
    carried = {"MEMBER_UNMAPPED": points.get("rejected"), "NEGATIVE_BALANCE": points.get("review"), **by_code}
    rows = []
    for stage, table in REJECT_TABLES.items():
        if not view.applies(stage):
            continue
        codes = pd.Series(text_column(view.table(table), "reason_code"), dtype=object)
        for code, n in codes[codes != ""].value_counts().sort_index().items():
            held = carried.get(str(code)) if stage == "transfers" else None
            rows.append({"stage": notebook_name(stage), "reason_code": str(code), "rows": int(n),
                         "points": None if held is None else plain_decimal(held), "file": f"rejects/{stage}.csv"})
    return pd.DataFrame(rows, columns=list(REJECT_REASON_COLUMNS))


WATERFALL_COLUMNS = ("label", "value", "kind")


def points_waterfall(points: dict[str, Decimal]) -> pd.DataFrame:
    """Where every point went, as waterfall steps: what the books held before the cutover, minus
    what expired, is the points owed before; each destination then takes its part (a negative
    balance held for review gives back), and what is left unaccounted must be 0."""
    p = points
    rows = [("held before the cutover (roll-forward)", p["before_expiry"], "total"),
            ("expired at the cutover", -p["expired"], "step"),
            ("POINTS OWED BEFORE", p["before"], "total"),
            ("transferred", -p["transferred"], "step"),
            ("rounding residue", -p["residue"], "step"),
            ("rejected (not mapped)", -p["rejected"], "step"),
            ("held for review", -p["review"], "step"),
            ("opening rows unmatched", -p["opening_unmatched"], "step"),
            ("left unaccounted (must be 0)", p["difference"], "total")]
    if not p["opening_unmatched"]:
        rows = [r for r in rows if r[0] != "opening rows unmatched"]
    return pd.DataFrame(rows, columns=list(WATERFALL_COLUMNS))


def roll_forward_waterfall(tied: pd.DataFrame) -> pd.DataFrame:
    """The liability roll-forward of every center and program together (:func:`roll_forward`'s total
    row) as waterfall steps: opening + accrued - redeemed - expired = closing."""
    if tied.empty:
        return pd.DataFrame(columns=list(WATERFALL_COLUMNS))
    t = tied.iloc[-1]
    return pd.DataFrame([("opening balances", t["opening"], "total"), ("accrued", t["accrued"], "step"),
                         ("redeemed", -t["redeemed"], "step"), ("expired", -t["expired"], "step"),
                         ("closing liability", t["closing"], "total")], columns=list(WATERFALL_COLUMNS))


def unmapped_lot_points(view: RunView) -> Decimal:
    """Points the lots hold for members stage 02 did not map (open + pending - deficit): what stage 03
    must have rejected for them, derived from the lots instead of the transfer engine."""
    lots = view.s.lots
    total = lots["unmapped_live_units"] - lots["unmapped_deficit_units"]
    return plain_decimal(Decimal(total).scaleb(-POINTS_SCALE))


def by_key(frame: pd.DataFrame, total: pd.DataFrame, key: str) -> pd.DataFrame:
    """Stage 03's reconciliation per center or program with the total below (points as Decimals);
    empty when stage 03 did not run (a program without points)."""
    if key not in frame.columns:
        return pd.DataFrame(columns=[key, "owed_ledger", "owed_lots", "transfers", "difference", "agree"])
    cols = [c for c in ("owed_ledger", "owed_lots", "transfers", "difference", "transfer_difference")
            if c in frame.columns]
    body = frame[[key, *cols]].copy()
    tot = total.reindex(columns=cols).assign(**{key: "total"})[[key, *cols]]
    out = pd.concat([body, tot], ignore_index=True)
    for c in cols:
        out[c] = out[c].map(lambda v: plain_decimal(stored_decimal(v))).astype(object)
    out["agree"] = [a == b == c for a, b, c in zip(out["owed_ledger"], out.get("owed_lots", out["owed_ledger"]),
                                                   out.get("transfers", out["owed_ledger"]))]
    return out


RF_POINTS = ("opening", "accrued", "redeemed", "expired", "closing", "open", "pending", "deficit")


def roll_forward(rf: pd.DataFrame) -> pd.DataFrame:
    """The liability roll-forward per center and program, a total row, and whether each row ties:
    closing = opening + accrued - redeemed - expired = opening + open + pending - deficit. Empty
    when stage 03 did not run."""
    if not {"center", "program"} <= set(rf.columns):
        return pd.DataFrame(columns=["center", "program", *RF_POINTS, "ties"])
    cols = [c for c in rf.columns if c in RF_POINTS or c.endswith("_value") or c.startswith("cross_center")]
    out = rf[["center", "program", *cols]].copy()
    for c in cols:
        out[c] = out[c].map(stored_decimal).astype(object)
    total = {"center": "total", "program": "", **{c: sum(out[c], Decimal(0)) for c in cols}}
    out = pd.concat([out, pd.DataFrame([total])], ignore_index=True)
    d = {c: out[c] if c in out.columns else pd.Series([Decimal(0)] * len(out)) for c in RF_POINTS}
    moves = d["opening"] + d["accrued"] - d["redeemed"] - d["expired"]
    held = d["opening"] + d["open"] + d["pending"] - d["deficit"]
    out["ties"] = [c == m == h for c, m, h in zip(d["closing"], moves, held)]
    for c in cols:
        out[c] = out[c].map(lambda v: plain_decimal(v.quantize(Decimal("0.01"))) if c.endswith("_value") else plain_decimal(v))
    return out


# -- members, rewards, rows --------------------------------------------------------------------

def member_counts(view: RunView) -> dict[str, int]:
    """Members read (stage 00's count of the frozen export) -> accepted -> mapped -> given points."""
    s = view.s
    read = (view.inputs.get("members") or {}).get("rows_kept")
    members, mapped = s.rows.get("members", 0), s.rows.get("member_map", 0)
    return {"read": int(read) if read is not None else 0, "accepted": members,
            "rejected": s.rows.get("member_rejects", 0), "mapped": mapped, "not_mapped": members - mapped,
            "with_points": s.transfers["members_with_points"]}


def member_funnel(counts: dict[str, int]) -> pd.DataFrame:
    steps = [("read (legacy export)", counts["read"]), ("accepted (stage 01)", counts["accepted"]),
             ("migrated: mapped to a target ID (stage 02)", counts["mapped"]),
             ("given points (at least one unit transfer)", counts["with_points"])]
    return pd.DataFrame(steps, columns=["step", "members"])


def reward_counts(view: RunView) -> dict[str, int]:
    """Rewards per state at the cutover (stage 04's ``reward_state``) and the codes sent."""
    state = view.table("reward_state")
    s = text_column(state, "state")
    ids = text_column(state, "attribution_id")
    plan = view.table("reward_import")  # stage 04's fate of every accepted earn and burn row
    kind, fate = text_column(plan, "kind"), text_column(plan, "fate")
    earn = kind == "earn"
    return {"active": int((s == "active").sum()), "burned": int((s == "burned").sum()),
            "expired": int((s == "expired").sum()), "attributions": len(state),
            "active_with_code": len(set(ids[(s == "active") & (ids != "")].tolist())),
            "coupon_codes_in_files": len(view.coupon_codes),
            "earned": int((earn & (fate == "earned")).sum()), "waiting": int((earn & (fate == "waiting")).sum()),
            "unresolved": int((earn & (fate == "unresolved")).sum()),
            "history": int((earn & (fate == "history")).sum()),
            "burns_waiting": int((~earn & (fate == "waiting")).sum())}


def row_conservation(view: RunView) -> pd.DataFrame:
    """Per frozen input: rows stage 00 counted = rows the consuming stage accepted + rejected.

    Inputs without a count (the target's export and import result, which stage 02 freezes) are not
    legacy exports and are left out; an input that no stage accounts for shows 0 accepted, 0 rejected.
    """
    consumed: dict[str, tuple[str, int, int]] = {
        "members": ("members", view.s.rows.get("members", 0), view.s.rows.get("member_rejects", 0))}
    for stage, name in (("transfers", "transfer_conservation"), ("rewards", "reward_conservation")):
        t = view.table(name)
        for inp, acc, rej in zip(text_column(t, "input"), _ints(t, "rows_accepted"), _ints(t, "rows_rejected")):
            consumed[inp] = (stage, int(acc), int(rej))
    rows = []
    for name, info in sorted(view.inputs.items()):
        if info.get("rows_kept") is None:
            continue
        stage, acc, rej = consumed.get(name, (CONSUMER.get(name, "rewards" if name.startswith("rewards/") else ""),
                                              0, 0))
        kept, source = int(info["rows_kept"]), info.get("rows_read")
        rows.append({"input": name, "file": str(info.get("frozen_path", name)).rsplit("/", 1)[-1], "stage": stage,
                     "rows_in_source": int(source) if source is not None else kept,
                     "rows_left_out": (int(source) - kept) if source is not None else 0, "rows_read": kept,
                     "rows_accepted": acc, "rows_rejected": rej, "rows_accounted": acc + rej,
                     "agree": kept == acc + rej})
    return pd.DataFrame(rows, columns=list(CONSERVATION_COLUMNS))


# -- the stages' gates -------------------------------------------------------------------------

def stage_gates(view: RunView) -> pd.DataFrame:
    """Every earlier stage: its status, whether it is committed, its rows and its gate's outcome; a
    stage the program does not need shows ``not_applicable``."""
    rows = []
    for stage in EARLIER_STAGES:
        if not view.applies(stage):
            rows.append({"stage": notebook_name(stage), "status": "not_applicable", "committed": False,
                         "rows_in": None, "rows_out": None, "rows_rejected": None, "expectations": 0, "passed": 0,
                         "critical_failed": 0, "warnings": 0})
            continue
        rec = view.records.get(stage)
        gates = (rec or {}).get("gates") or []
        rows.append({"stage": notebook_name(stage), "status": (rec or {}).get("status", "not run"),
                     "committed": stage in view.completed, "rows_in": (rec or {}).get("rows_in"),
                     "rows_out": (rec or {}).get("rows_out"), "rows_rejected": (rec or {}).get("rows_rejected"),
                     "expectations": len(gates), "passed": sum(bool(g.get("success")) for g in gates),
                     "critical_failed": sum(not g.get("success") and bool(g.get("critical")) for g in gates),
                     "warnings": sum(not g.get("success") and not g.get("critical") for g in gates)})
    return pd.DataFrame(rows, columns=list(GATE_COLUMNS))


def not_applicable_table(view: RunView) -> pd.DataFrame:
    """The stages this program does not need and why: they never ran, and no figure of theirs is signed."""
    return pd.DataFrame({"stage": [notebook_name(s) for s in view.not_applicable],
                         "status": ["not_applicable"] * len(view.not_applicable),
                         "why": list(view.not_applicable.values())}, columns=["stage", "status", "why"])


def warnings_raised(view: RunView) -> pd.DataFrame:
    """Every expectation that failed as a warning in an earlier stage, with what it means."""
    rows = []
    for stage in EARLIER_STAGES:
        for o in ((view.record(stage).get("gate_report") or {}).get("outcomes") or []):
            if not o.get("success") and not o.get("critical"):
                rows.append({"stage": notebook_name(stage), "table": o.get("table"), "expectation": o.get("expectation"),
                             "column": o.get("column") or "", "unexpected": o.get("unexpected_count"),
                             "meaning": o.get("description", "")})
    return pd.DataFrame(rows, columns=["stage", "table", "expectation", "column", "unexpected", "meaning"])
