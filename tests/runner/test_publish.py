"""What a run does with what a killed run left (issue #17), without kernels: the leftovers of each
kind removed and said one line each, a commit the record does not vouch for rolled back, a record
the database does not back treated as interrupted, and ``status`` saying all of it meanwhile."""

from __future__ import annotations

import json
import socket
import sqlite3

import pandas as pd
import pytest

import loyalty_toolkit.runner as runner
from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.store import StagingStore
from loyalty_toolkit.store.spool import SPOOL_DIR


@pytest.fixture
def passed_run(program):
    """members_only.yml run whole (fake stages) in runs/r1."""
    assert runner.run(program, run_id="r1").status == "passed"
    return program, program.parent / "runs" / "r1"


def _as_if_killed(run_dir, stage: str) -> None:
    """What a run killed inside a re-run of ``stage``, after its commit, leaves: the summary
    ``running`` (later stages stale), a holder file of a dead process, the stage's ``_stages`` row
    (committed, never recorded), pending tables, a spool folder, pending import files and an unpublished record."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["status"] = "running"
    names = [s["name"] for s in summary["stages"]]
    later = names[names.index(stage) + 1:]
    for s in summary["stages"]:
        if s["name"] == stage:
            s["status"] = "running"
        elif s["name"] in later and s["status"] == "passed":
            s["status"] = "skipped"  # gone stale when the stage was re-run
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / ".run.lock.json").write_text(json.dumps({"pid": 2**22 + 1, "host": socket.gethostname(),
                                                        "since": "2026-12-05T21:00:00+00:00"}))
    with StagingStore.for_run(run_dir) as store:
        store.invalidate_from(later)
        store.pending(stage).append("lots", pd.DataFrame({"a": [1, 2, 3]}))
    spool = run_dir / SPOOL_DIR / stage
    spool.mkdir(parents=True)
    (spool / "000001-lots.arrow").write_bytes(b"x")
    (run_dir / ".pending" / stage / "openloyalty").mkdir(parents=True)
    (run_dir / ".pending" / stage / "openloyalty" / "f.csv").write_text("x")
    (run_dir / "stages" / "02_mapping.json.pending").write_text("{}")


def test_status_tells_an_interrupted_run_and_the_next_run_cleans_up_saying_so(passed_run, capsys):
    program, run_dir = passed_run
    _as_if_killed(run_dir, "mapping")
    text = runner.status(run_dir)
    assert text.splitlines()[0].startswith("run r1: interrupted (the run of pid 4194305 on host ")
    assert "02_mapping    interrupted" in text
    assert "02_mapping committed its tables to the database but its run was interrupted" in text
    assert "1 pending table(s) of an interrupted run are in the database" in text

    with pytest.raises(UsageError, match=r"needs stage mapping to have passed in this run dir \(it is interrupted\)"):
        runner.run(program, run_id="r1", stages="report")
    said = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note: ")]
    assert said == [
        "note: stale lock: pid 4194305 on host " + said[0].split(" on host ")[1].split(" since")[0]
        + " since 2026-12-05T21:00:00+00:00 is no longer running; taking the run dir over",
        "note: removed pending table _pending_mapping_lots (3 rows) left by an interrupted run",
        "note: rolled back stage 02_mapping: committed to the database by an interrupted run that never "
        "recorded it as passed",
        "note: removed spool folder .staging-spool/mapping (1 files) left by an interrupted run",
        "note: removed pending import files .pending/mapping (1 files) left by an interrupted run",
        "note: removed unpublished stage record stages/02_mapping.json.pending left by an interrupted run",
    ]
    with sqlite3.connect(run_dir / "staging.db") as db:
        assert {r[0] for r in db.execute("SELECT stage FROM _stages")} == {"subset", "members"}
        assert not [r for r in db.execute("SELECT name FROM sqlite_master WHERE name LIKE '\\_pending%' ESCAPE '\\'")]
    assert not (run_dir / SPOOL_DIR).exists() and not (run_dir / ".pending" / "mapping").exists()
    assert not (run_dir / "stages" / "02_mapping.json").exists(), "the rolled-back stage's record went too"

    assert runner.run(program, run_id="r1", stages="mapping,report").status == "passed"
    assert runner.status(run_dir).splitlines()[0] == "run r1: passed"


def test_a_record_that_says_passed_without_a_commit_is_not_believed(passed_run, capsys):
    """The issue's run dirs (older releases): summary passed, the ``_stages`` row gone."""
    program, run_dir = passed_run
    with StagingStore.for_run(run_dir) as store:
        store.invalidate_from(["mapping"])
    assert ("warning: 02_mapping is recorded as passed but the database holds no commit of it"
            in runner.status(run_dir))
    with pytest.raises(UsageError, match="needs stage mapping"):
        runner.run(program, run_id="r1", stages="report")
    assert ("note: stage 02_mapping: the record says passed but the database holds no commit of it; treated as "
            "interrupted") in capsys.readouterr().err


def test_a_run_killed_before_its_first_record_is_told_apart_from_no_run(tmp_path):
    run_dir = tmp_path / "r0"
    run_dir.mkdir()
    with pytest.raises(UsageError, match="not a run dir"):
        runner.status(run_dir)
    (run_dir / ".run.lock.json").write_text(json.dumps({"pid": 2**22 + 1, "host": socket.gethostname(),
                                                        "since": "2026-12-05T21:00:00+00:00"}))
    assert runner.status(run_dir).splitlines()[0] == (
        f"run dir {run_dir}: the run of pid 4194305 on host {socket.gethostname()} since "
        "2026-12-05T21:00:00+00:00 was interrupted before writing its record")
