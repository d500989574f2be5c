"""The terminal says what a run does: through the real CLI and runner (kernels replaced by a stub
that leaves each stage's record), one line per stage as it ends, plus start lines and papermill's
cell bar on a terminal unless --quiet."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from tqdm import tqdm

import loyalty_toolkit.runner as runner_mod
from loyalty_toolkit import cli
from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.runner import PIPELINE, run
from loyalty_toolkit.runner.execute import Execution
from loyalty_toolkit.runner.progress import BAR_DELAY_SECONDS, StageProgress, TerminalProgress, stage_line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stub_kernels(monkeypatch):
    """Each stage 'runs' by writing its record; ``fail`` names a stage whose gate fails. Returns
    the progress_bar option each stage was executed with."""
    bars: dict[str, object] = {}
    state = {"fail": None}

    class NoKernel:
        def __init__(self, *a, **k): ...
        def close(self): ...

    def fake_execute(source, output, parameters, *, cwd, timeout_seconds, kernel=None, progress_bar=False):
        stem = Path(source).stem
        stage = stem.split("_", 1)[1]
        bars[stage] = progress_bar
        status = "failed" if stage == state["fail"] else "passed"
        rec = {"name": stage, "status": status, "rows_in": 2000, "rows_out": 1990, "rows_rejected": 10,
               "peak_rss_mb": 312.4, "gates": []}
        (Path(parameters["run_dir"]) / "stages").mkdir(parents=True, exist_ok=True)
        (Path(parameters["run_dir"]) / "stages" / f"{stem}.json").write_text(json.dumps(rec))
        return Execution(True) if status == "passed" else Execution(False, "GateFailed", f"[{stage}] gate failed")

    monkeypatch.setattr(runner_mod, "WarmKernel", NoKernel)
    monkeypatch.setattr(runner_mod, "execute_notebook", fake_execute)
    return bars, state


def _stage_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\d\d_[a-z]+ ", line)]


def test_cli_prints_one_line_per_stage_as_it_ends_when_output_is_no_terminal(small_program, stub_kernels):
    bars, _ = stub_kernels
    res = CliRunner().invoke(cli.main, ["run", str(small_program), "--run-id", "lines"])
    assert res.exit_code == 0, res.output
    lines = _stage_lines(res.output)
    assert [line.split()[0] for line in lines] == [notebook_name(s) for s in PIPELINE]
    for line in lines:
        assert re.fullmatch(r"\d\d_[a-z]+ +passed +rows in 2,000 out 1,990 rejected 10  \d+\.\d s  peak 312 MB", line), line
    assert "running" not in res.output and set(bars.values()) == {False}, "no start line, no bar off a terminal"
    assert res.output.rstrip().splitlines()[-1].startswith("passed: ")


def test_a_failed_stage_ends_its_line_failed_and_the_later_ones_skipped(small_program, stub_kernels):
    _, state = stub_kernels
    state["fail"] = "mapping"
    res = CliRunner().invoke(cli.main, ["run", str(small_program), "--run-id", "fails", "-q"])
    assert res.exit_code == 1
    status = {line.split()[0]: line.split()[1] for line in _stage_lines(res.stdout)}
    assert status == {"00_subset": "passed", "01_members": "passed", "02_mapping": "failed",
                      "03_transfers": "skipped", "04_rewards": "skipped", "05_report": "skipped",
                      "06_verify": "skipped"}
    assert "(an earlier stage failed)" in _stage_lines(res.stdout)[-1]


def test_on_a_terminal_each_stage_has_a_start_line_and_a_bar_unless_quiet(small_program, stub_kernels):
    bars, _ = stub_kernels
    out = _Tty()
    run(small_program, run_id="tty", progress=TerminalProgress(out))
    lines = _stage_lines(out.getvalue())
    assert len(lines) == 2 * len(PIPELINE)
    for i, stage in enumerate(PIPELINE):
        assert lines[2 * i].split() == [notebook_name(stage), "running"]
        assert lines[2 * i + 1].split()[:2] == [notebook_name(stage), "passed"]
        assert bars[stage]["file"] is out and bars[stage]["delay"] == BAR_DELAY_SECONDS
    quiet = _Tty()
    run(small_program, run_id="tty-quiet", progress=TerminalProgress(quiet, quiet=True))
    assert len(_stage_lines(quiet.getvalue())) == len(PIPELINE) and "running" not in quiet.getvalue()
    assert set(bars.values()) == {False}


def test_the_bar_options_draw_a_tqdm_bar_papermill_can_use():
    out = _Tty()
    options = {**TerminalProgress(out).bar("transfers"), "delay": 0, "mininterval": 0}
    with tqdm(total=4, unit="cell", **options) as bar:
        bar.update(2)
    assert "03_transfers" in out.getvalue() and "2/4" in out.getvalue()
    assert StageProgress().bar("transfers") is False and TerminalProgress(io.StringIO()).bar("transfers") is False


def test_stage_line_for_a_stage_that_did_not_run():
    entry = {"status": "not_applicable", "rows_in": None, "seconds": None}
    assert stage_line("transfers", entry, None, "no ledger") == "03_transfers  not_applicable    (no ledger)"
