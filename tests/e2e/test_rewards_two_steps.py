"""End to end, issue #14: rewards reach Splio in two steps, through the real CLI and real papermill kernels.

Step one runs without Splio's master reward export: stage 04 writes the masterreward file, lists the
earn and burn rows as waiting, and the run passes. Then the export comes back from Splio (here a file
written by the test, with its own headers mapped in the config): a bad one is refused with one line
naming file, line and column (exit 2); the good one lets stage 04 write the earnreward file under
Splio's internal ids, earned on the import day, and the report agrees.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_toolkit.sources.splio import read_scope_file

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")
RUN = "two-steps"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def _without_export(config: str) -> str:
    """The workspace's config without its ``reward_master_export`` section (step one only)."""
    return re.sub(r"  reward_master_export:.*?rehearsal: true\n", "", config, flags=re.S)


@pytest.fixture(scope="module")
def step_one(tmp_path_factory):
    ws = tmp_path_factory.mktemp("two-steps") / "ws"
    res = _cli("init", str(ws), "--members", "200", cwd=ws.parent)
    assert res.returncode == 0, res.stderr
    cfg = ws / "migration.yml"
    text = _without_export(cfg.read_text(encoding="utf-8"))
    assert "reward_master_export" not in text and "import_date:" in text
    cfg.write_text(text, encoding="utf-8")
    res = _cli("run", "migration.yml", "--run-id", RUN, cwd=ws)
    assert res.returncode == 0, res.stdout + res.stderr
    return ws, ws / "runs" / RUN


def test_without_the_export_step_one_writes_the_catalog_and_lists_the_rest_as_waiting(step_one):
    ws, run_dir = step_one
    assert [read_scope_file(p).scope for p in sorted((run_dir / "output" / "splio").glob("*.csv"))] == ["masterreward"]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "passed"
    rewards = summary["totals"]["rewards"]
    imp = rewards["import"]
    assert imp["step"] == "one" and imp["earn_rows_written"] == 0
    assert imp["earn_waiting"] == rewards["states"]["active"] > 0
    head = summary["totals"]["report"]["headline"]
    assert head["rewards_waiting"] == imp["earn_waiting"] and head["rewards_earned_in_splio"] == 0
    html = (run_dir / "notebooks" / "05_report.html").read_text(encoding="utf-8")
    assert "waiting for Splio&#x27;s master reward export" in html or "waiting for Splio's master reward export" in html
    with sqlite3.connect(run_dir / "staging.db") as db:
        waiting = db.execute("SELECT COUNT(*) FROM reward_import WHERE kind = 'earn' AND fate = 'waiting'").fetchone()[0]
        assert waiting == imp["earn_waiting"]
        assert db.execute("SELECT COUNT(*) FROM report_checks WHERE agree = 0").fetchone()[0] == 0


def test_step_two_reads_splio_export_with_mapped_columns_and_refuses_a_bad_one(step_one):
    ws, run_dir = step_one
    master = read_scope_file(next((run_dir / "output" / "splio").glob("*_masterreward_*.csv")))
    ids = {ext: str(9000 + i) for i, ext in enumerate(master.rows["external_id"])}
    export = ws / "splio" / "master_rewards.csv"
    export.parent.mkdir()
    config = ws / "migration.yml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "  rewards:                  #",
        "  reward_master_export:\n    path: splio/master_rewards.csv\n"
        "    columns: {external_id: Code, internal_id: Reward ID}\n  rewards:                  #", 1),
        encoding="utf-8")

    rows = [(i, e, "x") for e, i in ids.items()]
    bad = rows + [(rows[0][0], rows[1][1], "x")]  # the second reward again, under the first one's id
    _write(export, bad)
    res = _cli("run", "migration.yml", "--run-id", RUN, "--stages", "rewards", cwd=ws)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()  # the cause on one line, then where the run record is
    assert err[0].startswith("failed: stage 04_rewards: InputError: [rewards] ") and "Traceback" not in res.stderr
    assert f"master_rewards.csv:{len(bad) + 1}: column Code: external_id '{rows[1][1]}' repeated" in err[0], err[0]

    _write(export, rows)
    res = _cli("run", "migration.yml", "--run-id", RUN, "--stages", "rewards,report", cwd=ws)
    assert res.returncode == 0, res.stdout + res.stderr
    files = {read_scope_file(p).scope: read_scope_file(p) for p in (run_dir / "output" / "splio").glob("*.csv")}
    earned = files["earnreward"]
    assert "burn_date" not in earned.header
    assert set(earned.rows["reward_id"]) <= set(ids.values())
    day = re.search(r'import_date: "(\S+)"', config.read_text(encoding="utf-8")).group(1)
    assert (earned.rows["earn_date"].str[:10] >= day).all()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    imp = summary["totals"]["rewards"]["import"]
    assert imp["step"] == "two" and imp["earn_waiting"] == 0
    assert imp["earn_rows_written"] == len(earned.rows) == summary["totals"]["rewards"]["states"]["active"]
    assert summary["totals"]["report"]["headline"]["rewards_waiting"] == 0
    inputs = json.loads((run_dir / "inputs" / "inputs.json").read_text(encoding="utf-8"))
    assert inputs["reward_master_export"]["frozen_path"] == "inputs/reward_master_export/master_rewards.csv"


def _write(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["Reward ID", "Code", "Name"])
        w.writerows(rows)
