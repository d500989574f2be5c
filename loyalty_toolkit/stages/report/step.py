"""Stage 05, report: the sign-off report a finance reviewer reads before the import files go out.

This step reads what stages 00-04 left in the run dir (only the stages the program needs: a stage
``Config.stage_plan`` marks not applicable never ran, and its figures and checks are left out) (their records in ``RUN_DIR/stages/``, the
small staging tables through :class:`StagingStore` and the counts and sums SQLite takes over the
large ones (``store.report_queries``: the lots, the transfers and the per-member tables are never
loaded), stage 00's ``inputs/inputs.json``, the reject files and the coupon files written) and computes, with the pure modules ``stages/report/figures.py`` and
``stages/report/checks.py``: the headline figures, row conservation per input file, points
conservation recomputed from stage 03's tables, the liability roll-forward, every stage's gate
outcome, and the cross-stage checks. Its own critical gate (``expectations/report.*.json``):
every cross-stage check agrees, the points difference is 0, every input file's rows are accounted
for and every earlier stage passed and is committed.

Stage 05 reads no input file of its own and writes no import file: rows in are the checks made,
rows out the checks that agree. It commits ``report_*`` tables so the figures signed stay with the run.
"""

from __future__ import annotations

import csv
import html
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.shared.liability import NEVER, bands, month_names, month_starts, months
from loyalty_toolkit.stages.context import StageContext, StageFigures
from loyalty_toolkit.stages.report import checks as report_checks
from loyalty_toolkit.stages.report import figures as report
from loyalty_toolkit.store import StagingStore, report_queries
from loyalty_toolkit.targets.ol_coupons import COUPON_PREFIX, read_coupon_file

# The staging tables the report reads whole, with the columns it needs (None: every column): one
# row per input file, center, program or reward, never per member, lot or transfer.
TABLES: dict[str, list[str] | None] = {
    "transfer_conservation": None, "reward_conservation": None, "reconciliation_total": None,
    "reconciliation_center": None, "reconciliation_program": None, "liability_roll_forward": None,
    "transfer_outputs": None, "reward_state": ["attribution_id", "state"], "reward_import": ["kind", "state", "fate"],
    # reason codes only, for the rejects by reason (one short text per reject row)
    "member_rejects": ["reason_code"], "transfer_rejects": ["reason_code"], "reward_rejects": ["reason_code"],
}
# The tables it only counts, and the amount columns it sums exactly (``report.TableSums``).
COUNTED = ("members", "member_rejects", "member_map", "transfer_rejects", "reward_attributions", "reward_rejects")
AMOUNTS = (("opening_balances", "points"), ("opening_balances", "points_exact"), ("opening_balances", "residue"),
           ("transfer_per_member", "rejected"), ("transfer_review", "deficit"), ("opening_unmatched", "points"))
EXPIRY = "expires_at_utc"
REJECT_FILES = ("members", "transfers", "rewards")


@dataclass
class ReportOutcome:
    view: report.RunView
    points: dict[str, Decimal]
    conservation: pd.DataFrame  # one row per frozen input file
    checks: pd.DataFrame  # one row per cross-stage check
    gates: pd.DataFrame  # one row per earlier stage
    figures_: dict  # the headline figures (JSON-ready)
    timezone: str  # the ledger's, for the expiry calendar
    rejects: pd.DataFrame  # rejected rows per stage and reason code, with the points they hold back
    show_pii: bool = False

    # -- figures -------------------------------------------------------------------------------

    def figures(self) -> StageFigures:
        agree = int(self.checks["agree"].sum())
        return StageFigures(
            rows_in=len(self.checks), rows_out=agree, rows_rejected=len(self.checks) - agree,
            totals={"headline": self.figures_, "checks": len(self.checks), "checks_agreeing": agree,
                    "checks_disagreeing": [str(c) for c in self.checks.loc[~self.checks["agree"], "check"]],
                    "input_files": len(self.conservation),
                    "input_files_accounted": int(self.conservation["agree"].sum()),
                    "warnings": int(pd.to_numeric(self.gates["warnings"]).sum()),
                    "points": {k: str(v) for k, v in self.points.items()},
                    "rejects_by_reason": [{k: (None if v is None else str(v) if isinstance(v, Decimal) else v)
                                           for k, v in r.items()} for r in self.rejects.to_dict("records")]})

    # -- notebook tables -----------------------------------------------------------------------

    def headline(self) -> pd.DataFrame:
        return report_checks.headline_table(self.figures_)

    def rejects_by_reason(self) -> pd.DataFrame:
        """Rejected rows per stage and reason, the points they hold back and the file listing them."""
        return self.rejects

    def not_applicable(self) -> pd.DataFrame:
        """The stages this program does not need and why (none for a full program)."""
        return report.not_applicable_table(self.view)

    def _ran(self, stage: str, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``, or one line saying the stage did not apply (its section has nothing to show)."""
        if self.view.applies(stage):
            return frame
        return pd.DataFrame({"stage": [notebook_name(stage)], "status": ["not_applicable"],
                             "why": [self.view.not_applicable[stage]]})

    def checklist(self) -> pd.DataFrame:
        return report_checks.checklist(self.figures_, self.checks, self.conservation, self.gates)

    def row_conservation(self) -> pd.DataFrame:
        return self.conservation

    def member_funnel(self) -> pd.DataFrame:
        return report.member_funnel(report.member_counts(self.view))

    def points_table(self) -> pd.DataFrame:
        return self._ran("transfers", report.points_table(self.points))

    def points_by_center(self) -> pd.DataFrame:
        return self._ran("transfers", report.by_key(self.view.table("reconciliation_center"),
                                                    self.view.table("reconciliation_total"), "center"))

    def points_by_program(self) -> pd.DataFrame:
        return self._ran("transfers", report.by_key(self.view.table("reconciliation_program"),
                                                    self.view.table("reconciliation_total"), "program"))

    def points_waterfall(self) -> pd.DataFrame:
        """Where every point owed before went (waterfall steps); empty for a program without points."""
        if not self.view.applies("transfers"):
            return pd.DataFrame(columns=list(report.WATERFALL_COLUMNS))
        return report.points_waterfall(self.points)

    def roll_forward_waterfall(self) -> pd.DataFrame:
        """The liability roll-forward of all centers together (waterfall steps)."""
        if not self.view.applies("transfers"):
            return pd.DataFrame(columns=list(report.WATERFALL_COLUMNS))
        return report.roll_forward_waterfall(report.roll_forward(self.view.table("liability_roll_forward")))

    def roll_forward(self) -> pd.DataFrame:
        return self._ran("transfers", report.roll_forward(self.view.table("liability_roll_forward")))

    def balance_distribution(self) -> pd.DataFrame:
        """Members per band of the balance owed at the cutover (stage 03's bands, from its tables);
        empty for a program without points."""
        if not self.view.applies("transfers"):
            return pd.DataFrame(columns=["balance", "members", "points"])
        return bands(self.view.s.owed_per_member)

    def expiry_calendar(self) -> pd.DataFrame:
        """Open and pending points by the month they expire, in the ledger's timezone; empty for a
        program without points."""
        if not self.view.applies("transfers"):
            return pd.DataFrame(columns=["month", "points"])
        return months([self.view.s.expiry_months])

    def rewards(self) -> pd.DataFrame:
        r = report.reward_counts(self.view)
        rows = [("rewards earned and accepted (attributions)", r["attributions"]),
                ("  burned by the cutover", r["burned"]), ("  expired by the cutover", r["expired"]),
                ("  active at the cutover (still owed)", r["active"]),
                ("active rewards with a code", r["active_with_code"]),
                ("coupon codes in the files written", r["coupon_codes_in_files"]),
                ("Splio step two: active rewards earned in earnreward (internal ids, import day)", r["earned"]),
                ("  waiting for Splio's master reward export (not written yet)", r["waiting"]),
                ("  master reward not in the export (listed, not written)", r["unresolved"]),
                ("burn rows waiting for the master reward export", r["burns_waiting"]),
                ("history: burned or expired, not earned again in Splio", r["history"])]
        return self._ran("rewards", pd.DataFrame(rows, columns=["figure", "rewards"]))

    def stage_gates(self) -> pd.DataFrame:
        return self.gates

    def stage_links(self):
        """Every earlier stage's gate outcome with links, relative to ``RUN_DIR/notebooks/`` where the
        executed notebook and its HTML live: the stage report and its Data Docs."""
        from IPython.display import HTML

        rows = []
        for g in self.gates.to_dict("records"):
            stem = g["stage"]
            if g["status"] == "not_applicable":
                rows.append(f"<tr><td>{html.escape(stem)}</td><td>not applicable</td>"
                            f"<td colspan='5'>{html.escape(self.view.not_applicable.get(stem[3:], ''))}; "
                            "not run</td></tr>")
                continue
            cells = [html.escape(str(g[c])) for c in ("stage", "status", "expectations", "passed", "critical_failed",
                                                       "warnings")]
            links = (f'<a href="{html.escape(stem)}.html">report</a> '
                     f'<a href="../data_docs/{html.escape(stem)}/index.html">Data Docs</a>')
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{links}</td></tr>")
        head = "".join(f"<th>{h}</th>" for h in ("stage", "status", "expectations", "passed", "critical failed",
                                                 "warnings", "read"))
        return HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")

    def warnings(self) -> pd.DataFrame:
        return report.warnings_raised(self.view)

    def cross_stage_checks(self) -> pd.DataFrame:
        """The checks as a reader sees them: figures as numbers (aligned, with separators), the
        texts (a status) as they are; ``self.checks`` keeps the exact text the gate compares."""
        out = self.checks.copy()
        for col in ("left_value", "right_value"):
            out[col] = pd.Series([_as_number(v) for v in out[col].tolist()], index=out.index, dtype=object)
        return out


def _as_number(text: str):
    """``"447412.3"`` -> Decimal (exact); anything else (``passed``, ``missing``) unchanged."""
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        return text


# -- run ---------------------------------------------------------------------------------------

def read_view(ctx: StageContext) -> report.RunView:
    """Gather what stages 00-04 left: records, staging tables, frozen-input counts, reject and coupon files."""
    records = {}
    for stage in report.EARLIER_STAGES:
        path = ctx.run_dir / "stages" / f"{notebook_name(stage)}.json"
        if path.is_file():
            records[stage] = json.loads(path.read_text(encoding="utf-8"))
    store = ctx.store
    tables = {}
    for name, columns in TABLES.items():
        if store.has_table(name):
            tables[name] = store.read_table(name, columns=columns)
    ledger = ctx.config.sources.ledger
    reject_files = {s: count_csv_records(p) for s in REJECT_FILES
                    if (p := ctx.run_dir / "rejects" / f"{s}.csv").is_file()}
    codes: set[str] = set()
    for p in sorted((ctx.run_dir / "output" / "openloyalty").glob(f"{COUPON_PREFIX}*.csv")):
        codes.update(read_coupon_file(p))
    plan = ctx.config.stage_plan()
    return report.RunView(records=records, tables=tables, inputs=ctx.frozen_inputs(),
                          completed=set(store.completed_stages()), reject_files=reject_files, coupon_codes=codes,
                          not_applicable={s: why for s, why in plan.items() if why and s in report.EARLIER_STAGES},
                          sums=table_sums(store, ledger.timezone if ledger is not None else "UTC"))


def table_sums(store: StagingStore, timezone: str) -> report.TableSums:
    """The counts and exact sums the report takes over the large staging tables, computed by SQLite;
    the expiry calendar's months in ``timezone`` (the ledger's). The lots' figures are taken on a
    second connection in a second thread meanwhile: SQLite lets go of the GIL while it runs a query,
    so on two cores the two halves take the time of the longer one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        on_lots = pool.submit(_lot_sums, store.path, timezone)
        rest = {"rows": {name: report_queries.row_count(store, name) for name in COUNTED},
                "transfers": report_queries.transfer_figures(store),
                "amounts": {f"{t}.{c}": report_queries.exact_sum(store, t, c) for t, c in AMOUNTS},
                "mapped_in_members": report_queries.count_in(store, "member_map", "legacy_id", "members", "legacy_id"),
                "attributions_of_mapped": report_queries.count_in(store, "reward_attributions", "member_id",
                                                                  "member_map", "legacy_id"),
                "owed_per_member": report_queries.owed_per_member(store)}
        lots, months_ = on_lots.result()
    return report.TableSums(lots=lots, expiry_months=months_, **rest)


def _lot_sums(path: Path, timezone: str) -> tuple[dict, pd.DataFrame]:
    """:func:`report_queries.lot_figures` and the expiry calendar's months, on a connection of their own."""
    with StagingStore(path) as store:
        lots = report_queries.lot_figures(store, EXPIRY)
        months_ = pd.DataFrame(_expiry_months(store, timezone, lots),
                               columns=["label", "lots", "members", "units", "opening_units"]).rename(columns={"label": "month"})
    return {k: v for k, v in lots.items() if k.endswith("_units")}, months_


def count_csv_records(path: Path) -> int:
    """Records in a CSV with a header (quoted line breaks count once)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def run(ctx: StageContext) -> ReportOutcome:
    """Read the run, compute every figure and check (nothing is written until commit)."""
    view = read_view(ctx)
    points = report.points_conservation(view)
    conservation = report.row_conservation(view)
    checks = report_checks.cross_stage_checks(view, points)
    ledger = ctx.config.sources.ledger
    return ReportOutcome(view=view, points=points, conservation=conservation, checks=checks,
                         gates=report.stage_gates(view),
                         figures_=report_checks.headline(view, points, conservation),
                         timezone=ledger.timezone if ledger is not None else "UTC",
                         rejects=report.rejects_by_reason(view, points), show_pii=ctx.show_pii)


# -- gate and commit ---------------------------------------------------------------------------

def _gate_tables(outcome: ReportOutcome) -> dict[str, pd.DataFrame]:
    p = outcome.points
    closing = outcome.checks.loc[outcome.checks["check"].str.startswith("points: closing liability"), "left_value"]
    points = pd.DataFrame([{"before_units": report.units(p["before"]), "after_units": report.units(p["after"]),
                            "difference_units": report.units(p["difference"]),
                            # no roll-forward at all cannot tie: it shows as a closing of -1 micro-point
                            "closing_units": report.units(closing.iloc[0]) if len(closing)
                            else 0 if not outcome.view.applies("transfers") else -1}])
    checks = outcome.checks[["check", "relation", "left_value", "right_value", "agree"]].copy()
    checks["agree"] = checks["agree"].astype(bool)
    c = outcome.conservation
    conservation = c[["input", "stage", "rows_read", "rows_accepted", "rows_rejected", "rows_accounted"]].copy()
    g = outcome.gates[outcome.gates["status"] != "not_applicable"]  # not run: nothing to sign
    stages = pd.DataFrame({"stage": g["stage"], "status": g["status"], "committed": g["committed"].astype(bool),
                           "critical_failed": g["critical_failed"].astype(np.int64)})
    return {"checks": checks, "points": points, "conservation": conservation, "stages": stages}


def gate(ctx: StageContext, outcome: ReportOutcome):
    """Critical: every cross-stage check agrees; points owed before = after, difference 0, and the
    roll-forward's closing = points owed before; rows read = accepted + rejected per input file; every
    earlier stage that applies passed and is committed. Warning: rejected rows. Without points (no
    stage 03) every points figure is 0 and the closing is 0."""
    return ctx.gate(_gate_tables(outcome))


def _store_tables(outcome: ReportOutcome) -> dict[str, pd.DataFrame]:
    headline = pd.DataFrame({"figure": list(outcome.figures_), "value": [str(v) for v in outcome.figures_.values()]})
    points = pd.DataFrame({"figure": list(outcome.points), "points": [str(v) for v in outcome.points.values()]})
    return {"report_headline": headline, "report_points": points, "report_checks": outcome.checks,
            "report_conservation": outcome.conservation, "report_stages": outcome.gates}


def commit(ctx: StageContext, outcome: ReportOutcome, gate_report) -> None:
    """Record the figures and commit the report tables; raises GateFailed on a critical failure."""
    ctx.finish(gate_report, outcome.figures(), _store_tables(outcome))


def _expiry_months(store: StagingStore, timezone: str, lots: dict) -> list[dict]:
    """Live lots per month of expiry in ``timezone`` (``lots``: ``report_queries.lot_figures``, which
    found the first and last expiry and whether all are ISO UTC text of stage 03's layout). SQLite
    puts each lot in its month by comparing its text with the months' first instants, a few
    comparisons a lot; should a value be of another layout, each distinct value is converted here
    instead (slower; any ISO text)."""
    if lots["expiry_other_layout"]:
        instants = report_queries.live_lot_instants(store, EXPIRY)
        labels = dict(zip(instants, month_names(np.asarray(instants, dtype=object), timezone).tolist()))
        return report_queries.live_lots_by_label(store, EXPIRY, labels)
    first, last = lots["first_expiry"], lots["last_expiry"]
    starts, names = month_starts(first, last, timezone) if first and last else ([], [])
    return report_queries.live_lots_by_range(store, EXPIRY, starts, names, NEVER)
