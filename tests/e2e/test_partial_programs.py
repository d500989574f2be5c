"""End to end: programs that need only some stages run to their sign-off (issue #12).

A members-only, a points-only and a rewards-only program (``tests/fixtures/programs/``: six
members, seven ledger rows, three opening balances, four earned rewards) through the real CLI,
real papermill kernels and real SQLite. The stages a program does not need are
``not_applicable``: recorded, not executed, no obstacle to the report, and the run exits 0. Every
figure asserted below is worked out by hand from the fixture files (see the comments).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.runner import PIPELINE

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")
PROGRAMS = Path(__file__).parent.parent / "fixtures" / "programs"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("partial")
    shutil.copytree(PROGRAMS, work, dirs_exist_ok=True)
    return work


def _run(workspace: Path, program: str) -> tuple[Path, dict, dict]:
    res = _cli("run", f"{program}.yml", "--run-id", program, cwd=workspace)
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = workspace / "runs" / program
    summary = json.loads((run_dir / "summary.json").read_text())
    return run_dir, summary, summary["totals"]["report"]["headline"]


def _statuses(summary: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in summary["stages"]}


def _members_figures(h: dict) -> None:
    # 6 rows; G5 has no identifier (rejected); G3's email jane@@mail is left out, its card kept
    assert (h["members_read"], h["members_accepted"], h["members_rejected"]) == (6, 5, 1)
    assert (h["members_migrated"], h["members_not_mapped"]) == (5, 0)


def test_a_members_only_program_signs_off_without_transfers_or_rewards(workspace):
    check = _cli("validate", "members_only.yml", cwd=workspace)
    assert check.returncode == 0, check.stderr
    assert "03_transfers  not applicable  no sources.ledger and no sources.opening_balances" in check.stdout
    assert "04_rewards    not applicable  no sources.rewards.files" in check.stdout
    assert "05_report     runs" in check.stdout

    run_dir, summary, h = _run(workspace, "members_only")
    assert summary["status"] == "passed"
    assert _statuses(summary) == {"subset": "passed", "members": "passed", "mapping": "passed",
                                  "transfers": "not_applicable", "rewards": "not_applicable", "report": "passed",
                                  "verify": "not_applicable"}  # issue 13: no points, nothing to verify
    assert summary["totals"]["stages_not_applicable"] == 3 and set(summary["totals"]["not_applicable"]) == {
        "transfers", "rewards", "verify"}
    for stage in ("transfers", "rewards"):  # never executed: no notebook, no record
        assert not (run_dir / "notebooks" / f"{notebook_name(stage)}.ipynb").exists()
        assert not (run_dir / "stages" / f"{notebook_name(stage)}.json").exists()
    _members_figures(h)
    assert h["stages_not_applicable"] == "03_transfers, 04_rewards"
    assert not any(k.startswith(("points_", "rewards_")) for k in h), "no figure of a stage that did not run"
    report = summary["totals"]["report"]
    assert report["checks_disagreeing"] == [] and report["input_files"] == report["input_files_accounted"] == 1
    # the malformed email: the member is migrated with its card, the email only in the review list
    with sqlite3.connect(run_dir / "staging.db") as db:
        assert db.execute("SELECT email, email_raw, card_number FROM members WHERE legacy_id='G3'").fetchone() == (
            "", "jane@@mail", "1000000003")
        assert db.execute("SELECT record_key, reason_code, value FROM member_review").fetchall() == [
            ("G3", "EMAIL_INVALID_DROPPED", "jane@@mail")]
        assert db.execute("SELECT count(*) FROM member_map WHERE legacy_id='G3'").fetchone() == (1,)
    xml = (run_dir / "output" / "openloyalty" / "members_0001.xml").read_text(encoding="utf-8")
    assert "1000000003" in xml and "jane@@mail" not in xml
    status = _cli("status", str(run_dir), cwd=workspace)
    assert status.returncode == 0 and "03_transfers  not_applicable" in status.stdout
    assert "03_transfers not applicable: no sources.ledger" in status.stdout
    index = (run_dir / "index.html").read_text(encoding="utf-8")
    assert "<tr class='not_applicable'><td>03_transfers</td><td>not applicable</td>" in index
    assert "Every stage that applies passed." in index
    report_html = (run_dir / "notebooks" / "05_report.html").read_text(encoding="utf-8")
    assert "Stages that did not apply" in report_html and "no sources.rewards.files" in report_html

    # --stages accepts the absence of the not-applicable stages before the report
    again = _cli("run", "members_only.yml", "--run-id", "members_only", "--stages", "report", cwd=workspace)
    assert again.returncode == 0, again.stderr
    assert _statuses(json.loads((run_dir / "summary.json").read_text()))["transfers"] == "not_applicable"


def test_a_points_only_program_accounts_for_every_point(workspace):
    run_dir, summary, h = _run(workspace, "points_only")
    assert summary["status"] == "passed"
    assert [s["status"] for s in summary["stages"]] == ["passed"] * 4 + ["not_applicable", "passed", "passed"]
    assert summary["totals"]["verify"]["state"] == "verified"  # issue 13: the balances after the import
    _members_figures(h)
    # ledger owed: G1 100 - 30 = 70, G4 -15 (gp-2's 50 expired, gp-3's 20 pay 20 of 35), G3 12.5,
    # G9 8 (no member) -> 75.5; opening (VN national phones, read in VN): 1,505,000 and 99,999 VND
    # at 1 point per 10,000, rounded down -> 150 + 9, and 30,000 -> 3 for nobody: 162, residue
    # 0.5 + 0.9999 = 1.4999
    assert h["points_owed_before"] == h["points_owed_after"] == "237.5" and h["points_difference"] == "0"
    assert h["points_expired"] == "50" and h["opening_conversion_residue"] == "1.4999"
    # transferred: G1 70 + G3 12 (0.5 residue) + G2 150 + G6 9 = 241; G9's 8 rejected, G4's -15
    # held for review, the 3 opening points of nobody unmatched
    assert h["points_transferred"] == "241" and h["members_with_points"] == 4
    assert h["stages_not_applicable"] == "04_rewards"
    assert not any(k.startswith("rewards_") for k in h)
    p = summary["totals"]["report"]["points"]
    assert (p["ledger_owed"], p["opening"], p["opening_exact"], p["residue"], p["rejected"], p["review"],
            p["opening_unmatched"]) == ("75.5", "162", "163.4999", "0.5", "8", "-15", "3")
    with sqlite3.connect(run_dir / "staging.db") as db:
        checks = dict(db.execute('SELECT "check", agree FROM report_checks').fetchall())
        transferred = dict(db.execute("SELECT legacy_id, sum(points) FROM unit_transfers WHERE type = 'adding' "
                                      "GROUP BY legacy_id").fetchall())
        fallbacks = dict(db.execute("SELECT method, redemptions FROM lot_fallbacks").fetchall())
    assert checks["points: opening conversion residue, stage 03's record = its tables"] == 1
    assert checks["points: opening balances exact = points + conversion residue"] == 1
    # every opening row of a member found its member although its phone is Vietnamese national format
    assert transferred == {"G1": 70, "G2": 150, "G3": 12, "G6": 9}
    # G4's redemption beyond its lots is a deficit, not a fallback
    assert fallbacks["deficit"] == 1 and fallbacks["fallback_overflow"] == 0
    assert summary["totals"]["transfers"]["fallbacks"]["fallback_overflow"] == 0
    rejects = (run_dir / "rejects" / "transfers.csv").read_text(encoding="utf-8")
    assert ("no member holds both: the phone ********0000 is no accepted member's, the email n***@example.vn "
            "is no accepted member's") in rejects


def test_a_rewards_only_program_signs_off_without_transfers(workspace):
    run_dir, summary, h = _run(workspace, "rewards_only")
    assert summary["status"] == "passed"
    assert _statuses(summary)["transfers"] == "not_applicable" and _statuses(summary)["rewards"] == "passed"
    _members_figures(h)
    # at-1 burned on 2026-06-10, at-2 valid to 2026-08-02 (active, G3's card), at-3 ended 2025-01-31
    # (expired); at-4's card is nobody's (rejected)
    assert (h["rewards_active"], h["rewards_burned"], h["rewards_expired"], h["coupon_codes"]) == (1, 1, 1, 1)
    assert h["rows_rejected"] == 2 and h["stages_not_applicable"] == "03_transfers"
    assert not any(k.startswith("points_") for k in h)
    assert summary["totals"]["report"]["checks_disagreeing"] == []
    assert list((run_dir / "output" / "openloyalty").glob("coupons_*.csv"))
    assert [s["name"] for s in summary["stages"]] == list(PIPELINE)
