"""End to end: the demo closes the loop (stage 06 verifies the rehearsal target's balances after the
transfer import), and `loyalty-migrate verify` fails naming the member whose balance a test edits."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("verify")
    res = _cli("demo", "--dir", "ws", "--members", "300", cwd=work)
    assert res.returncode == 0, res.stdout + res.stderr
    runs = sorted((work / "ws" / "runs").iterdir())
    return work / "ws", runs[-1]


def test_the_demo_verifies_every_balance_after_the_import(demo):
    ws, run_dir = demo
    summary = json.loads((run_dir / "summary.json").read_text())
    verify = next(s for s in summary["stages"] if s["name"] == "verify")
    assert verify["status"] == "passed"
    totals = summary["totals"]["verify"]
    assert totals["state"] == "verified" and totals["difference"] == "0" and totals["mismatched_members"] == []
    assert int(totals["points_transferred"]) > 0 and totals["points_at_target"] == totals["points_expected"]
    assert (run_dir / "data_docs" / "06_verify" / "index.html").is_file()
    assert (run_dir / "notebooks" / "06_verify.html").is_file()


def test_verify_fails_naming_the_member_whose_balance_was_edited(demo, tmp_path):
    ws, run_dir = demo
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    rows = list(csv.reader(open(run_dir / "rehearsal" / "balances_after.csv", encoding="utf-8")))
    header, body = rows[0], rows[1:]
    edited = next(r for r in body if int(r[1]) > 0)
    edited[1] = str(int(edited[1]) - 1)
    (copy / "target").mkdir()
    with open(copy / "target" / "after.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *body])
    config = (copy / "migration.yml").read_text(encoding="utf-8")
    start = config.index("  target_balances:")
    end = config.index("    rehearsal: true\n", start) + len("    rehearsal: true\n")
    (copy / "verify.yml").write_text(config[:start] + "  target_balances:\n    path: target/after.csv\n"
                                     + config[end:], encoding="utf-8")
    res = _cli("verify", "verify.yml", "--run-id", run_dir.name, cwd=copy)
    assert res.returncode == 1, res.stdout + res.stderr
    with sqlite3.connect(copy / "runs" / run_dir.name / "staging.db") as db:
        legacy = db.execute("select legacy_id from member_map where target_id = ?", [edited[0]]).fetchone()[0]
    assert f"members differing: {legacy} (target {edited[0]}" in res.stderr
    # bad input: an unknown member id is one line with file, line and column, exit 2
    with open(copy / "target" / "after.csv", "a", encoding="utf-8") as fh:
        fh.write("not-a-member,5\n")
    res = _cli("verify", "verify.yml", "--run-id", run_dir.name, cwd=copy)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"after.csv:{len(body) + 2}: column memberId: unknown member not-a-member" in res.stderr


def test_an_oss3_program_runs_the_whole_loop(tmp_path):
    """Profile oss-3 through the real CLI: the members the 3.x importer would refuse are held back (the
    rehearsal then refuses none), transfers go as XML only, and stage 06 verifies every balance."""
    res = _cli("init", "ws", "--members", "300", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    config = tmp_path / "ws" / "migration.yml"
    text = config.read_text(encoding="utf-8")
    start = text.index("    profile: hosted")
    end = text.index("\n", start) + 1
    config.write_text(text[:start] + "    profile: oss-3\n    settings:\n      points_days_active: 365\n"
                      + text[end:], encoding="utf-8")
    res = _cli("run", "migration.yml", "--run-id", "oss", cwd=tmp_path / "ws")
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = tmp_path / "ws" / "runs" / "oss"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["totals"]["verify"]["state"] == "verified"
    assert summary["totals"]["members"]["held_by_target"] > 0
    assert summary["totals"]["mapping"]["held_by_target"] == summary["totals"]["members"]["held_by_target"]
    result = json.loads((run_dir / "rehearsal" / "import_result.json").read_text())
    assert result["totalFailed"] == 0, "every member the rules table refuses was held back, none was sent"
    out = run_dir / "output" / "openloyalty"
    assert list(out.glob("unit_transfers*.xml")) and not list(out.glob("unit_transfers*.json"))
    assert summary["totals"]["transfers"]["held_by_target"]["members"] > 0
