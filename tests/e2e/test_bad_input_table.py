"""The bad-input table (issue #17): every row of ``tests/fixtures/bad_input/cases.json`` through the
real CLI. A defect is either a one-line error naming file, line and column (exit 2, no traceback, no
stage run) or a reject row with its reason code while the run goes on (every row accounted for)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures"
TABLE = json.loads((FIXTURES / "bad_input" / "cases.json").read_text(encoding="utf-8"))["cases"]
CLI = str(Path(sys.executable).parent / "loyalty-migrate")


def _workspace(tmp_path: Path, case: dict) -> Path:
    shutil.copytree(FIXTURES / "programs" / "legacy", tmp_path / "legacy")
    for dest, fixture in case["files"].items():
        shutil.copyfile(FIXTURES / "bad_input" / fixture, tmp_path / dest)
    config = FIXTURES / "bad_input" / case["config"]
    if not config.is_file():
        config = FIXTURES / "programs" / case["config"]
    shutil.copyfile(config, tmp_path / "migration.yml")
    return tmp_path


@pytest.mark.parametrize("case", TABLE, ids=[c["case"] for c in TABLE])
def test_bad_input(tmp_path, case):
    work = _workspace(tmp_path, case)
    res = subprocess.run([CLI, case["command"], "migration.yml"], cwd=work, capture_output=True, text=True,
                         timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == case["exit"], out
    assert "Traceback" not in out and "internal error" not in out, out
    if case["exit"] == 2:
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and case["message"] in err[0], out
        assert not (work / "runs").is_dir() or not any((work / "runs").iterdir()), "no stage ran"
        return
    assert case["message"] in out, out
    if case["reject"] is None:
        return
    run_dir = next(p for p in (work / "runs").iterdir() if p.is_dir())
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for stage in summary["stages"]:  # every row read is accepted or rejected
        if stage["status"] == "passed" and stage["rows_in"] is not None and stage["name"] != "report":
            assert stage["rows_in"] == stage["rows_out"] + stage["rows_rejected"], stage
    rejects = list(csv.DictReader(open(run_dir / case["reject"]["file"], encoding="utf-8")))
    got = {(int(r["line"]), r["reason_code"]) for r in rejects}
    assert (case["reject"]["line"], case["reject"]["reason_code"]) in got, rejects
