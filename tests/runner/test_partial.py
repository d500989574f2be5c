"""A run that leaves stages not run is ``partial``, and says so the same way in the CLI's last
line, ``summary.json``, ``status`` and ``index.html`` (issue #17: ``run --stages subset`` on a new
run id printed ``passed`` while summary.json said ``failed`` and index.html "All stages passed").
Stage execution is the fake of conftest.py (no kernel): what is checked is the runner's."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from loyalty_toolkit import cli

NOT_RUN = "01_members, 02_mapping, 05_report"


def test_stages_on_a_new_run_id_make_a_partial_run_everywhere(program):
    res = CliRunner().invoke(cli.main, ["run", str(program), "--run-id", "new", "--stages", "subset"])
    assert res.exit_code == 0, res.output
    run_dir = program.parent / "runs" / "new"
    lines = res.output.strip().splitlines()
    assert lines[-1] == f"partial: {run_dir / 'index.html'}"
    assert lines[-2] == f"partial run: not run in this run dir: {NOT_RUN} (run them with --stages)"

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "partial" and "failure" not in summary["totals"]
    status = CliRunner().invoke(cli.main, ["status", str(run_dir)])
    assert status.output.splitlines()[0] == "run new: partial"
    page = (run_dir / "index.html").read_text()
    assert "All stages passed" not in page and "Every stage that applies passed" not in page
    assert re.search(rf"<strong>Partial run:</strong> not run in this run dir: {NOT_RUN}", page)
    assert "Status: <strong>partial</strong>" in page

    # the rest of the stages in the same run dir: now it passes, everywhere
    res = CliRunner().invoke(cli.main, ["run", str(program), "--run-id", "new", "--stages", "members,mapping,report"])
    assert res.exit_code == 0 and res.output.strip().splitlines()[-1] == f"passed: {run_dir / 'index.html'}"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "passed"
    assert CliRunner().invoke(cli.main, ["status", str(run_dir)]).output.startswith("run new: passed")
    assert "Every stage that applies passed" in (run_dir / "index.html").read_text()


def test_a_whole_run_passes_and_is_not_called_partial(program):
    res = CliRunner().invoke(cli.main, ["run", str(program), "--run-id", "whole"])
    output = res.output.strip().splitlines()
    assert res.exit_code == 0 and output[-1] == f"passed: {program.parent / 'runs' / 'whole' / 'index.html'}"
    assert [line.split()[:2] for line in output[:-1]] == [  # one line per stage (#16)
        ["00_subset", "passed"], ["01_members", "passed"], ["02_mapping", "passed"],
        ["03_transfers", "not_applicable"], ["04_rewards", "not_applicable"], ["05_report", "passed"],
        ["06_verify", "not_applicable"]]
