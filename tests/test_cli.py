"""The CLI is thin: each command hands its arguments to one library call and maps errors to exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from loyalty_toolkit import cli
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.runner import RunResult
from loyalty_toolkit.runner.progress import TerminalProgress


@pytest.fixture
def calls(monkeypatch):
    seen = {}

    def fake_run(config, **kw):
        seen["run"] = (config, kw)
        return RunResult(Path("/tmp/r"), "passed", 0, "/tmp/r/index.html")

    def fake_demo(directory, **kw):
        seen["demo"] = (directory, kw)
        return RunResult(Path("/tmp/r"), "failed", 1, "stage 01_members: gate failed: x")

    monkeypatch.setattr(cli, "run", fake_run)
    monkeypatch.setattr(cli, "run_demo", fake_demo)
    return seen


def test_run_passes_its_arguments_through(calls):
    res = CliRunner().invoke(cli.main, ["run", "m.yml", "--stages", "members", "--run-id", "r1"])
    assert res.exit_code == 0, res.output
    progress = calls["run"][1].pop("progress")  # the terminal's stage lines (issue #16)
    assert isinstance(progress, TerminalProgress) and not progress.live, "CliRunner's output is no terminal"
    assert calls["run"] == (Path("m.yml"), {"stages": "members", "run_id": "r1", "show_pii": False})
    assert "passed: /tmp/r/index.html" in res.output


def test_demo_reports_a_failed_gate_with_exit_1(calls):
    res = CliRunner().invoke(cli.main, ["demo", "--members", "50", "--seed", "3"])
    assert res.exit_code == 1
    assert isinstance(calls["demo"][1].pop("progress"), TerminalProgress)
    assert calls["demo"] == (Path("demo"), {"members": 50, "seed": 3, "fraction": 1.0, "show_pii": False})
    assert "failed: stage 01_members: gate failed: x" in res.output


def test_a_loyalty_error_is_one_line_and_exit_2(monkeypatch):
    def boom(config, **kw):
        raise InputError("expected 10 fields, found 9", file="members.csv", line=7)

    monkeypatch.setattr(cli, "run", boom)
    res = CliRunner().invoke(cli.main, ["run", "m.yml"])
    assert res.exit_code == 2
    assert res.output.strip() == "error: members.csv:7: expected 10 fields, found 9"


def test_an_unexpected_error_is_still_one_line(monkeypatch):
    monkeypatch.setattr(cli, "status", lambda run_dir: 1 / 0)
    res = CliRunner().invoke(cli.main, ["status", "x"])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "ZeroDivisionError" in res.output


def test_every_command_has_help():
    for name, command in cli.main.commands.items():
        assert command.help, name
        assert CliRunner().invoke(cli.main, [name, "--help"]).exit_code == 0


def test_repro_prints_the_comparison_and_exits_with_its_code(monkeypatch):
    from loyalty_toolkit.errors import ReproMismatch
    from loyalty_toolkit.support.repro import Comparison, ReproResult

    def fake_repro(run_dir, stage, out=None):
        if stage == "members":
            raise ReproMismatch("input members changed since the run", file="members.csv")
        r = ReproResult(Path(run_dir), stage, Path(run_dir) / "repro" / "x")
        r.comparisons = [Comparison("file", "output/openloyalty/unit_transfers.json", "DIFFERENT", "line 2")]
        return r

    monkeypatch.setattr(cli, "repro", fake_repro)
    res = CliRunner().invoke(cli.main, ["repro", "runs/r1", "--stage", "transfers"])
    assert res.exit_code == 1 and "DIFFERENT  file     output/openloyalty/unit_transfers.json: line 2" in res.output
    res = CliRunner().invoke(cli.main, ["repro", "runs/r1", "--stage", "members"])
    assert res.exit_code == 2 and res.output.strip() == "error: members.csv: input members changed since the run"
