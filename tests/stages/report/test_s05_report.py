"""Stage 05 step module on a real run dir: the sample program through stages 00-04, then the report.

The earlier stages run through their step modules (no papermill), as their notebooks would call them.
"""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from loyalty_toolkit.errors import GateFailed
from loyalty_toolkit.stages.context import StageContext, open_stage
from loyalty_toolkit.stages.report import step as s05_report
from loyalty_toolkit.stages.rewards import step as s04_rewards
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.store import StagingStore

RUN = "runs/t"


@pytest.fixture(scope="module")
def migrated_program(mapped_program, commit_stages, tmp_path_factory) -> Path:
    """The mapped sample program with stages 03 and 04 committed too."""
    root = tmp_path_factory.mktemp("migrated") / "program"
    shutil.copytree(mapped_program, root)
    commit_stages(root / "migration.yml", root / RUN, (("transfers", s03_transfers), ("rewards", s04_rewards)))
    return root


@pytest.fixture
def migrated(migrated_program, tmp_path) -> Path:
    root = tmp_path / "program"
    shutil.copytree(migrated_program, root)
    return root


def report_ctx(root: Path, **kw) -> StageContext:
    return open_stage("report", str(root / "migration.yml"), str(root / RUN), **kw)


def run_stage(root: Path):
    ctx = report_ctx(root)
    outcome = s05_report.run(ctx)
    return ctx, outcome, s05_report.gate(ctx, outcome)


def stage_json(root: Path, stem: str) -> dict:
    return json.loads((root / RUN / "stages" / f"{stem}.json").read_text(encoding="utf-8"))


def test_stage_05_passes_and_its_figures_match_the_earlier_stages(migrated):
    ctx, outcome, gate = run_stage(migrated)
    assert gate.passed, gate.to_frame()
    assert outcome.checks["agree"].all() and len(outcome.checks) >= 30
    s05_report.commit(ctx, outcome, gate)

    members, mapping = stage_json(migrated, "01_members"), stage_json(migrated, "02_mapping")
    transfers, rewards = stage_json(migrated, "03_transfers")["totals"], stage_json(migrated, "04_rewards")["totals"]
    record = stage_json(migrated, "05_report")
    assert record["status"] == "passed"
    assert record["rows_in"] == record["rows_out"] == len(outcome.checks) and record["rows_rejected"] == 0
    h = record["totals"]["headline"]
    assert h["members_read"] == members["rows_in"] == h["members_accepted"] + h["members_rejected"]
    assert h["members_migrated"] == mapping["rows_out"] and h["members_not_mapped"] == mapping["rows_rejected"]
    assert h["points_owed_before"] == transfers["points_owed_before"] == h["points_owed_after"]
    assert Decimal(h["points_difference"]) == 0
    assert (h["rewards_active"], h["rewards_burned"]) == (rewards["states"]["active"], rewards["states"]["burned"])
    assert h["coupon_codes"] == rewards["coupon_codes"]

    # every frozen legacy file is accounted for by the stage that reads it
    inputs = ctx.frozen_inputs()
    counted = {n for n, i in inputs.items() if i["rows_kept"] is not None}
    assert set(outcome.conservation["input"]) == counted and outcome.conservation["agree"].all()
    # every earlier stage is listed, passed and committed
    assert list(outcome.gates["stage"]) == ["00_subset", "01_members", "02_mapping", "03_transfers", "04_rewards"]
    assert outcome.gates["committed"].all() and (outcome.gates["status"] == "passed").all()

    store = ctx.store
    assert "report" in store.completed_stages()
    for table in ("report_headline", "report_points", "report_checks", "report_conservation", "report_stages"):
        assert store.has_table(table), table
    assert store.count("report_checks") == len(outcome.checks)
    assert (migrated / RUN / "data_docs" / "05_report" / "index.html").is_file()


def test_notebook_tables_tie_out_and_show_no_personal_data(migrated):
    ctx, outcome, _ = run_stage(migrated)
    sheet = outcome.checklist()
    assert sheet["holds"].all() and len(sheet) >= 6
    points = outcome.points_table().set_index("figure")["points"]
    assert points["POINTS OWED BEFORE"] == points["POINTS OWED AFTER"] and points["DIFFERENCE (must be 0)"] == 0
    rf = outcome.roll_forward()
    assert rf["ties"].all() and rf["closing"].iloc[-1] == points["POINTS OWED BEFORE"]
    for table in (outcome.points_by_center(), outcome.points_by_program()):
        assert table["agree"].all() and table.iloc[-1, 0] == "total"
    funnel = list(outcome.member_funnel()["members"])
    assert funnel == sorted(funnel, reverse=True) and funnel[0] > funnel[-1] > 0
    bands = outcome.balance_distribution()
    lots = ctx.store.read_table("lots")  # the report itself only sums it in SQLite
    owed = set(ctx.store.read_table("lot_balances")["user_id"]) | set(lots.loc[lots["source"] == "opening", "user_id"])
    assert bands["members"].sum() == len(owed)  # every member owed something (or a deficit) in one band
    calendar = outcome.expiry_calendar()
    assert len(calendar) and sum(calendar["points"], Decimal(0)) > 0

    html = outcome.stage_links().data
    assert 'href="../data_docs/03_transfers/index.html"' in html and 'href="04_rewards.html"' in html
    assert "http" not in html

    members = ctx.store.read_table("members")
    personal = ({v for v in members["email"] if v} | {v for v in members["phone"] if v}
                | {v for v in members["last_name"] if len(v) > 3})
    shown = " ".join(t.to_string() for t in (
        outcome.headline(), sheet, outcome.row_conservation(), outcome.member_funnel(), outcome.points_table(),
        outcome.points_by_center(), outcome.points_by_program(), rf, bands, calendar, outcome.rewards(),
        outcome.stage_gates(), outcome.warnings(), outcome.cross_stage_checks())) + html
    assert not [v for v in personal if v in shown]


def test_a_stage_record_that_disagrees_with_its_tables_fails_the_gate_and_commits_nothing(migrated):
    run_dir = migrated / RUN
    path = run_dir / "stages" / "03_transfers.json"
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec["totals"]["points_owed_after"] = str(Decimal(rec["totals"]["points_owed_after"]) + Decimal("0.1"))
    path.write_text(json.dumps(rec), encoding="utf-8")
    with StagingStore.for_run(run_dir) as store:
        before = store.digests()

    ctx, outcome, gate = run_stage(migrated)
    assert not gate.passed
    assert set(outcome.checks.loc[~outcome.checks["agree"], "check"]) == {
        "points: owed after, stage 03's record = its tables"}
    assert {(o.table, o.column) for o in gate.critical_failures} == {("checks", "agree")}
    with pytest.raises(GateFailed) as err:
        s05_report.commit(ctx, outcome, gate)
    assert err.value.stage == "report"
    with StagingStore.for_run(run_dir) as store:
        assert store.digests() == before and "report" not in store.completed_stages()
    record = stage_json(migrated, "05_report")
    assert record["status"] == "failed" and record["rows_rejected"] == 1
    assert record["totals"]["checks_disagreeing"] == ["points: owed after, stage 03's record = its tables"]


def test_a_reject_file_cut_short_is_caught(migrated):
    path = migrated / RUN / "rejects" / "members.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) > 2
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows[:-1])
    _, outcome, gate = run_stage(migrated)
    assert not gate.passed
    assert set(outcome.checks.loc[~outcome.checks["agree"], "check"]) == {
        "members: rejected in stage 01 = rows in its reject file"}


def test_a_coupon_file_removed_after_stage_04_is_caught(migrated):
    files = sorted((migrated / RUN / "output" / "openloyalty").glob("coupons_*.csv"))
    assert files
    files[0].unlink()
    _, outcome, gate = run_stage(migrated)
    assert not gate.passed
    assert "rewards: active rewards with a code = coupon codes written" in set(
        outcome.checks.loc[~outcome.checks["agree"], "check"])
    assert not outcome.checklist().set_index("figure").loc[
        "rewards active at the cutover with a code = coupon codes written", "holds"]


def test_an_earlier_stage_without_a_record_fails_the_stages_gate(migrated):
    (migrated / RUN / "stages" / "04_rewards.json").unlink()
    _, outcome, gate = run_stage(migrated)
    assert outcome.gates.set_index("stage").loc["04_rewards", "status"] == "not run"
    failed = {(o.table, o.column) for o in gate.critical_failures}
    assert ("stages", "status") in failed and ("checks", "agree") in failed
