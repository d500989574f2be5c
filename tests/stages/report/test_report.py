"""Stage 05's pure logic on a small hand-built run: three members, a few lots, two rewards.

The run below is consistent (every check agrees); each test breaks one thing and asserts that
exactly the checks that should notice it do. The report takes its figures over the large tables
from SQLite, so the hand-built tables are written to a scratch staging database and summed there
(:func:`summed`) before each evaluation, as ``report.step.read_view`` does on a run's database.
"""

from __future__ import annotations

import copy
import tempfile
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.stages.report import checks as report_checks
from loyalty_toolkit.stages.report import figures as report
from loyalty_toolkit.stages.report import step as s05_report
from loyalty_toolkit.stages.report.figures import RunView
from loyalty_toolkit.store import StagingStore


def summed(view: RunView) -> RunView:
    """``view`` with the counts and sums SQLite takes over its tables (written to a scratch database)."""
    with tempfile.TemporaryDirectory() as scratch:
        store = StagingStore(Path(scratch) / "staging.db")
        try:
            store.commit_stage("hand_built", view.tables, inputs_fingerprint="", parameters_fingerprint="")
            view.sums = s05_report.table_sums(store, "UTC")
        finally:
            store.close()
    return view


def _gates(n_ok: int = 2, warnings: int = 0) -> list[dict]:
    return ([{"expectation": "e", "column": "c", "success": True, "critical": True, "unexpected_count": 0}] * n_ok
            + [{"expectation": "w", "column": "c", "success": False, "critical": False, "unexpected_count": 1}]
            * warnings)


def small_run() -> RunView:
    """G1 and G2 mapped, G3 accepted but not mapped, one member row rejected. Ledger owed 17.5 points
    (G1 10 open, G2 5.5 pending, G3 2 open) + an opening balance of 4 for G1 = 21.5 owed before;
    after = 19 whole points transferred + 0.5 residue + 2 rejected (G3) = 21.5."""
    f = pd.DataFrame
    recon = {"owed_ledger": ["17.5"], "owed_lots": ["17.5"], "transfers": ["17.5"], "difference": ["0"],
             "transfer_difference": ["0"]}
    tables = {
        "members": f({"legacy_id": ["G1", "G2", "G3"]}),
        "member_rejects": f({"line": [5]}),
        "member_map": f({"legacy_id": ["G1", "G2"], "target_id": ["T1", "T2"]}),
        "transfer_conservation": f({"input": ["ledger", "opening_balances"], "rows_accepted": [4, 1],
                                    "rows_rejected": [0, 0]}),
        "reward_conservation": f({"input": ["rewards/demo_earnreward_main_20260630.csv"], "rows_accepted": [2],
                                  "rows_rejected": [1]}),
        "reconciliation_total": f({"scope": ["total"], **recon}),
        "reconciliation_center": f({"center": ["Paris"], **recon}),
        "reconciliation_program": f({"program": ["Regular"], **recon}),
        "liability_roll_forward": f({
            "center": ["Paris", "opening"], "program": ["Regular", "Imported Points"], "opening": ["0", "4"],
            "accrued": ["20.5", "0"], "redeemed": ["0", "0"], "expired": ["3", "0"], "closing": ["17.5", "4"],
            "open": ["12", "0"], "pending": ["5.5", "0"], "deficit": ["0", "0"], "difference": ["0", "0"]}),
        "opening_balances": f({"line": [2], "points": [4]}),
        "opening_unmatched": f({"line": [], "points": []}),
        "transfer_per_member": f({"rejected": ["0", "0", "2"]}),
        "transfer_review": f({"legacy_id": [], "deficit": []}),
        "transfer_outputs": f({"output": ["openloyalty/unit_transfers.json", "haravan/opening_balances.csv"],
                               "unit": ["points", "VND"], "total_written": [19, 40000]}),
        "transfer_rejects": f({"line": [9]}),
        "unit_transfers": f({"legacy_id": ["G1", "G2"], "target_id": ["T1", "T2"], "type": ["adding", "adding"],
                             "points": [14, 5], "residue_units": [0, 500_000]}),
        "unit_transfers_zero": f({"type": [], "residue_units": []}),
        "lots": f({"user_id": ["G1", "G1", "G2", "G3", "G1"], "status": ["open", "open", "pending", "open", "expired"],
                   "remaining_units": [10_000_000, 4_000_000, 5_500_000, 2_000_000, 3_000_000],
                   "source": [None, "opening", None, None, None],
                   "expires_at_utc": ["2026-09-01T00:00:00+00:00", "", "2027-01-05T00:00:00+00:00",
                                      "2026-09-10T00:00:00+00:00", "2026-01-01T00:00:00+00:00"]}),
        "lot_balances": f({"user_id": ["G1", "G2", "G3"], "balance_units": [10_000_000, 5_500_000, 2_000_000],
                           "deficit_units": [0, 0, 0]}),
        "reward_state": f({"attribution_id": ["a1", "a2"], "state": ["active", "burned"]}),
        "reward_import": f({"kind": ["earn", "earn", "burn"], "state": ["active", "burned", "burned"],
                            "fate": ["earned", "history", "history"]}),
        "reward_attributions": f({"member_id": ["G1", "G2"]}),
        "reward_rejects": f({"line": [4]}),
    }
    records = {
        "subset": {"status": "passed", "rows_in": 12, "rows_out": 12, "rows_rejected": 0,
                   "totals": {"rows_left_out": 0}, "gates": _gates()},
        "members": {"status": "passed", "rows_in": 4, "rows_out": 3, "rows_rejected": 1, "gates": _gates(3, 1)},
        "mapping": {"status": "passed", "rows_in": 3, "rows_out": 2, "rows_rejected": 1, "gates": _gates()},
        "transfers": {"status": "passed", "rows_in": 5, "rows_out": 5, "rows_rejected": 0, "gates": _gates(),
                      "totals": {"points_owed_before": "21.5", "points_owed_after": "21.5",
                                 "transfers": {"count": 2}}},
        "rewards": {"status": "passed", "rows_in": 3, "rows_out": 2, "rows_rejected": 1, "gates": _gates(),
                    "totals": {"attributions": 2, "states": {"active": 1, "burned": 1, "expired": 0},
                               "import": {"earn_rows_written": 1}}},
    }
    inputs = {"members": {"rows_kept": 4, "rows_read": 4, "frozen_path": "inputs/members/members.csv"},
              "ledger": {"rows_kept": 4, "rows_read": 6, "frozen_path": "inputs/ledger/points.csv"},
              "opening_balances": {"rows_kept": 1, "rows_read": 1, "frozen_path": "inputs/opening/ob.csv"},
              "rewards/demo_earnreward_main_20260630.csv": {
                  "rows_kept": 3, "rows_read": 3, "frozen_path": "inputs/rewards/demo_earnreward_main_20260630.csv"},
              "target_members": {"rows_kept": None, "rows_read": None, "frozen_path": "inputs/t/export.csv"}}
    return summed(RunView(records=records, tables=tables, inputs=inputs, completed=set(report.EARLIER_STAGES),
                          reject_files={"members": 1, "transfers": 1, "rewards": 1}, coupon_codes={"a1"}))


def evaluate(view: RunView):
    summed(view)  # the tables as the test left them
    points = report.points_conservation(view)
    conservation = report.row_conservation(view)
    checks = report_checks.cross_stage_checks(view, points)
    return points, conservation, checks


def disagreeing(checks: pd.DataFrame) -> set[str]:
    return set(checks.loc[~checks["agree"], "check"])


def test_a_consistent_run_agrees_everywhere():
    view = small_run()
    points, conservation, checks = evaluate(view)
    assert points["before"] == points["after"] == D("21.5") and points["difference"] == 0
    assert (points["ledger_owed"], points["opening"], points["transferred"], points["residue"],
            points["rejected"], points["expired"]) == (D("17.5"), D(4), D(19), D("0.5"), D(2), D(3))
    assert disagreeing(checks) == set() and len(checks) >= 30
    assert conservation["agree"].all()
    gates = report.stage_gates(view)
    figures = report_checks.headline(view, points, conservation)
    sheet = report_checks.checklist(figures, checks, conservation, gates)
    assert sheet["holds"].all() and sheet["proves"].str.len().min() > 20
    assert figures["members_read"] == 4 and figures["members_migrated"] == 2 and figures["members_not_mapped"] == 1
    assert figures["points_difference"] == "0" and figures["rewards_active"] == 1 and figures["rewards_burned"] == 1
    assert figures["rows_rejected"] == 2  # one member row, one reward row


def test_a_micro_point_missing_from_the_transfers_breaks_points_conservation():
    view = small_run()
    view.tables["unit_transfers"].loc[1, "residue_units"] = 499_999
    points, conservation, checks = evaluate(view)
    assert points["difference"] == D("0.000001")
    assert disagreeing(checks) == {"points: owed before = owed after",
                                   "points: owed after, stage 03's record = its tables",
                                   report_checks.CONSERVATION_CHECK}
    sheet = report_checks.checklist(report_checks.headline(view, points, conservation), checks, conservation,
                                    report.stage_gates(view)).set_index("figure")["holds"]
    assert not sheet["points owed before = points owed after"]
    assert not sheet["cross-stage checks that agree"]


def test_a_stage_record_that_disagrees_with_what_it_committed_is_caught():
    view = small_run()
    view.records["members"]["rows_out"] = 4  # the record says 4 accepted; the staging table holds 3
    view.records["members"]["rows_in"] = 5
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {"members: rows stage 00 froze = rows stage 01 read",
                                   "members: accepted in stage 01 = members committed",
                                   "members: accepted in stage 01 = members stage 02 mapped from"}
    row = checks.set_index("check").loc["members: accepted in stage 01 = members committed"]
    assert (row["left_value"], row["right_value"], row["agree"]) == ("4", "3", False)


def test_a_row_lost_between_stage_00_and_the_stage_that_reads_the_file():
    view = small_run()
    view.inputs["ledger"]["rows_kept"] = 5
    conservation = report.row_conservation(view).set_index("input")
    assert not conservation.loc["ledger", "agree"]
    assert conservation.drop(index="ledger")["agree"].all()
    assert conservation.loc["ledger", "rows_left_out"] == 1 and conservation.loc["ledger", "stage"] == "transfers"


def test_a_frozen_file_no_stage_accounts_for_is_not_conserved():
    view = small_run()
    view.inputs["rewards/demo_burnreward_main_20260630.csv"] = {"rows_kept": 2, "rows_read": 2,
                                                               "frozen_path": "inputs/rewards/b.csv"}
    conservation = report.row_conservation(view).set_index("input")
    row = conservation.loc["rewards/demo_burnreward_main_20260630.csv"]
    assert (row["stage"], row["rows_accounted"], bool(row["agree"])) == ("rewards", 0, False)
    assert "target_members" not in conservation.index  # stage 02's late inputs have no count


def test_more_members_mapped_than_accepted_fails_the_inequality():
    view = small_run()
    view.tables["member_map"] = pd.DataFrame({"legacy_id": ["G1", "G2", "G3", "G9"],
                                              "target_id": ["T1", "T2", "T3", "T9"]})
    _, _, checks = evaluate(view)
    bad = disagreeing(checks)
    assert "members: mapped in stage 02 <= accepted in stage 01" in bad
    assert "members: every mapped member was accepted in stage 01" in bad


@pytest.mark.parametrize("left, right, relation, expected", [
    ("3", "3", "=", True), ("3.0", "3", "=", True), ("0.1", "0.10", "=", True), ("3", "2", "=", False),
    ("2", "3", "<=", True), ("3", "3", "<=", True), ("4", "3", "<=", False),
    ("passed", "passed", "=", True), ("failed", "passed", "=", False), ("missing", "missing", "=", False),
])
def test_figures_compare_exactly(left, right, relation, expected):
    assert report_checks.agrees(left, right, relation) is expected


def test_a_coupon_file_missing_or_a_transfer_to_the_wrong_target_is_caught():
    view = small_run()
    view.coupon_codes = set()
    view.tables["unit_transfers"].loc[1, "target_id"] = "T1"  # G2's points sent to G1's target account
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {"rewards: active rewards with a code = coupon codes written",
                                   "transfers: each goes to a member mapped in stage 02, under its target ID"}


def test_a_stage_that_never_recorded_or_committed_fails_the_stage_checks():
    view = small_run()
    del view.records["rewards"]
    view.completed.discard("mapping")
    gates = report.stage_gates(view).set_index("stage")
    assert gates.loc["04_rewards", "status"] == "not run" and not gates.loc["02_mapping", "committed"]
    _, _, checks = evaluate(view)
    bad = disagreeing(checks)
    assert {"04_rewards: passed and committed", "02_mapping: passed and committed",
            "04_rewards: rows in = rows out + rows rejected",
            "rewards: active in stage 04's record = committed"} <= bad
    row = checks.set_index("check").loc["04_rewards: passed and committed"]
    assert row["left_value"] == "missing"


def test_rejects_counted_in_staging_must_match_the_reject_files():
    view = small_run()
    view.reject_files["transfers"] = 0
    del view.reject_files["rewards"]
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {"transfers: rejects committed = rows in its reject file",
                                   "rewards: rejects committed = rows in its reject file"}


def test_the_roll_forward_ties_per_row_and_closes_on_the_points_owed():
    view = small_run()
    rf = report.roll_forward(view.table("liability_roll_forward"))
    assert list(rf["center"]) == ["Paris", "opening", "total"] and rf["ties"].all()
    assert rf["closing"].iloc[-1] == D("21.5")
    view.tables["liability_roll_forward"].loc[0, "expired"] = "2.9"  # movements no longer give the closing
    assert list(report.roll_forward(view.table("liability_roll_forward"))["ties"]) == [False, True, False]
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {"points: every roll-forward row ties",
                                   "points: expired at the cutover, lots = roll-forward"}


def test_a_center_whose_transfer_side_differs_is_caught():
    view = small_run()
    view.tables["reconciliation_center"] = pd.DataFrame({
        "center": ["Paris", "Lyon"], "owed_ledger": ["17", "0.5"], "owed_lots": ["17", "0.5"],
        "transfers": ["17.5", "0"], "difference": ["0", "0"], "transfer_difference": ["-0.5", "0.5"]})
    table = report.by_key(view.table("reconciliation_center"), view.table("reconciliation_total"), "center")
    assert list(table["agree"]) == [False, False, True]
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {"points: every center reconciles (ledger = lots = transfer side)"}


def test_member_funnel_and_rewards():
    view = small_run()
    funnel = report.member_funnel(report.member_counts(view))
    assert list(funnel["members"]) == [4, 3, 2, 2]
    rewards = report.reward_counts(view)
    assert (rewards["active"], rewards["burned"], rewards["active_with_code"]) == (1, 1, 1)
    assert (rewards["earned"], rewards["waiting"], rewards["history"], rewards["burns_waiting"]) == (1, 0, 1, 0)


def test_rewards_waiting_for_the_master_reward_export_still_agree_but_a_lost_one_does_not():
    view = small_run()
    view.tables["reward_import"].loc[0, "fate"] = "waiting"  # step one only: listed, not written
    view.records["rewards"]["totals"]["import"]["earn_rows_written"] = 0
    figures, _, checks = evaluate(view)
    assert not disagreeing(checks)
    assert report.reward_counts(view)["waiting"] == 1
    view.tables["reward_import"] = view.tables["reward_import"].iloc[1:]  # the active reward has no fate
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {"rewards: active at the cutover = earned in Splio + waiting + unresolved"}


def test_warnings_of_earlier_stages_are_listed_with_their_meaning():
    view = copy.deepcopy(small_run())
    view.records["members"]["gate_report"] = {"outcomes": [
        {"table": "members", "expectation": "expect_column_values_to_be_unique", "column": "email_key",
         "success": False, "critical": False, "unexpected_count": 2, "description": "Shared email keys."},
        {"table": "members", "expectation": "expect_x", "column": "a", "success": True, "critical": False}]}
    w = report.warnings_raised(view)
    assert list(w["stage"]) == ["01_members"] and w["meaning"].iloc[0] == "Shared email keys."
    assert report.stage_gates(view).set_index("stage").loc["01_members", "warnings"] == 1


def test_headline_table_keeps_exact_digits():
    table = report_checks.headline_table({"points_owed_before": "1234567.891", "members_read": 2000,
                                          "points_difference": "-0.5"})
    assert list(table["value"]) == ["1,234,567.891", "2,000", "-0.5"]


def members_only_run() -> RunView:
    """small_run without stages 03 and 04: the program has no ledger, opening balances or rewards."""
    view = small_run()
    keep = {"members", "member_rejects", "member_map"}
    return summed(RunView(records={k: v for k, v in view.records.items() if k in ("subset", "members", "mapping")},
                          tables={k: v for k, v in view.tables.items() if k in keep},
                          inputs={k: v for k, v in view.inputs.items() if k in ("members", "target_members")},
                          completed={"subset", "members", "mapping"}, reject_files={"members": 1},
                          not_applicable={"transfers": "no sources.ledger and no sources.opening_balances",
                                          "rewards": "no sources.rewards.files"}))


def test_a_members_only_run_is_signed_on_what_ran_and_names_what_did_not_apply():
    view = members_only_run()
    points, conservation, checks = evaluate(view)
    assert disagreeing(checks) == set()
    assert not checks["check"].str.startswith(("points", "transfers", "rewards", "03_", "04_")).any()
    gates = report.stage_gates(view)
    assert gates.set_index("stage")["status"].to_dict() == {"00_subset": "passed", "01_members": "passed",
                                                            "02_mapping": "passed", "03_transfers": "not_applicable",
                                                            "04_rewards": "not_applicable"}
    figures = report_checks.headline(view, points, conservation)
    assert not any(k.startswith(("points_", "rewards_")) or k == "coupon_codes" for k in figures)
    assert figures["stages_not_applicable"] == "03_transfers, 04_rewards" and figures["members_read"] == 4
    sheet = report_checks.checklist(figures, checks, conservation, gates)
    assert sheet["holds"].all()
    assert not sheet["figure"].str.startswith(("points", "closing", "rewards")).any()
    assert sheet["figure"].iloc[-1] == "stages not applicable to this program"
    assert sheet["value"].iloc[-1] == "03_transfers, 04_rewards"
    na = report.not_applicable_table(view)
    assert na.values.tolist() == [["03_transfers", "not_applicable", "no sources.ledger and no sources.opening_balances"],
                                  ["04_rewards", "not_applicable", "no sources.rewards.files"]]


def test_the_opening_conversion_residue_is_in_the_points_conservation_and_the_checklist():
    view = copy.deepcopy(small_run())
    view.tables["opening_balances"] = pd.DataFrame({"line": [2], "points": [4], "points_exact": ["4.75"],
                                                    "residue": ["0.75"]})
    view.records["transfers"]["totals"]["opening"] = {"conversion_residue": "0.75", "points": "4"}
    points, conservation, checks = evaluate(view)
    assert (points["opening_exact"], points["opening"], points["opening_residue"]) == (D("4.75"), D(4), D("0.75"))
    assert disagreeing(checks) == set()
    table = report.points_table(points).set_index("figure")["points"]
    assert table["opening balances: conversion residue (fractions rounded away, once)"] == D("0.75")
    figures = report_checks.headline(view, points, conservation)
    sheet = report_checks.checklist(figures, checks, conservation, report.stage_gates(view)).set_index("figure")
    line = sheet.loc["opening balances converted exactly = points imported + conversion residue"]
    assert line["holds"] and line["value"] == "4.75 = 4.75 (residue 0.75)"
    # stage 03 recording another residue than its table holds is caught
    view.records["transfers"]["totals"]["opening"]["conversion_residue"] = "0.5"
    assert disagreeing(evaluate(view)[2]) == {"points: opening conversion residue, stage 03's record = its tables"}


def test_the_conservation_with_expiry_ties_every_point_to_where_it_went():
    view = small_run()
    points, conservation, checks = evaluate(view)
    # the roll-forward held 24.5 before the cutover expired 3: 19 transferred + 0.5 residue + 2 rejected + 3 expired
    assert points["before_expiry"] == D("24.5") and points["expired_roll_forward"] == D(3)
    row = checks.set_index("check").loc[report_checks.CONSERVATION_CHECK]
    assert (row["left_value"], row["right_value"], row["agree"]) == ("24.5", "24.5", True)
    view.tables["lots"].loc[4, "remaining_units"] = 2_999_999  # a micro-point of expired lost from the lots
    _, _, checks = evaluate(view)
    assert disagreeing(checks) == {report_checks.CONSERVATION_CHECK,
                                   "points: expired at the cutover, lots = roll-forward"}


def test_the_headline_carries_every_point_figure_and_rejects_by_reason():
    view = small_run()
    view.tables["member_rejects"] = pd.DataFrame({"line": [5], "reason_code": ["NO_IDENTIFIER"]})
    view.tables["transfer_rejects"] = pd.DataFrame({"line": [9, 11], "reason_code": ["MEMBER_UNMAPPED"] * 2})
    points, conservation, _ = evaluate(view)
    figures = report_checks.headline(view, points, conservation)
    assert [k for k in figures if k.startswith("points_")] == [
        "points_owed_before", "points_transferred", "points_residue", "points_rejected", "points_held_for_review",
        "points_opening_unmatched", "points_owed_after", "points_difference", "points_expired"]
    assert (figures["points_transferred"], figures["points_residue"], figures["points_rejected"],
            figures["points_expired"]) == ("19", "0.5", "2", "3")
    rejects = report.rejects_by_reason(view, points)
    assert rejects.to_dict("records") == [
        {"stage": "01_members", "reason_code": "NO_IDENTIFIER", "rows": 1, "points": None,
         "file": "rejects/members.csv"},
        {"stage": "03_transfers", "reason_code": "MEMBER_UNMAPPED", "rows": 2, "points": D(2),
         "file": "rejects/transfers.csv"}]
