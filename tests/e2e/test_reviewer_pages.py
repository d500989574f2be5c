"""End to end: the pages a reviewer reads, of a passed run and of a failed one, over real kernels.

Every page (index, each stage's notebook page, each gate page) must show no cut cell, no index
column, no micro-unit figure and no Python traceback; a failed gate shows a plain failure box with
the observed value against the required one on the notebook page, the gate page and the index.
"""

from __future__ import annotations

import html
import os
import shutil
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_toolkit.model import project_root

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")
UNITS_SUFFIX = "_units"


def _run(config: Path, run_id: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "run", str(config), "--run-id", run_id], cwd=config.parent, capture_output=True,
                          text=True, timeout=900, env=env)


def _pages(run_dir: Path) -> list[Path]:
    return [run_dir / "index.html", *sorted(run_dir.glob("notebooks/*.html")),
            *sorted(run_dir.glob("data_docs/*/index.html"))]


def _visible(page: str) -> str:
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _numeric_cells(page: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<td class=['\"]num['\"]>(.*?)</td>", page, flags=re.S)]


def _micro_unit_values(run_dir: Path) -> set[str]:
    """The raw integers of every micro-point column a gate reported (examples and observed values)."""
    raw = set()
    for record in run_dir.glob("stages/*.json"):
        for o in (json.loads(record.read_text()).get("gate_report") or {}).get("outcomes", []):
            if str(o.get("column") or "").endswith(UNITS_SUFFIX):
                for v in [*(o.get("examples") or []), o.get("observed")]:
                    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 1000:
                        raw.add(str(v))
    return raw


def assert_readable(run_dir: Path) -> None:
    """No cut cell, no index column, no micro-unit figure, no traceback, on every page."""
    micro = _micro_unit_values(run_dir)
    pages = _pages(run_dir)
    assert len(pages) >= 3
    for path in pages:
        page = path.read_text(encoding="utf-8")
        name = path.relative_to(run_dir)
        text = _visible(page)
        assert not re.search(r"(\.\.\.|…)\s*</t[dh]>", page), f"{name}: a cut cell"
        assert 'class="dataframe"' not in page and "<th></th>" not in page, f"{name}: pandas' index column"
        for cell in _numeric_cells(page):
            assert not re.search(r"\d{7,}", cell), f"{name}: a figure without separators: {cell}"
        shown = {v for v in micro if re.search(rf"(?<![\d,.]){v}(?![\d,])", text)}
        assert not shown, f"{name}: micro-unit figures {shown}"
        for trace in ("Traceback", "An Exception was encountered", "-" * 40, "site-packages", 'Cell In['):
            assert trace not in text, f"{name}: a traceback ({trace!r})"


@pytest.fixture(scope="module")
def passed_run(small_program):
    res = _run(small_program, "reviewer-pages-passed")
    assert res.returncode == 0, res.stdout + res.stderr
    return small_program.parent / "runs" / "reviewer-pages-passed"


@pytest.fixture(scope="module")
def failed_run(small_program, tmp_path_factory):
    """The sample program under a stricter mapping suite: no member may be held back from the target
    (the sample holds a few, #13), so stage 02's critical gate fails with a figure against a bound."""
    home = tmp_path_factory.mktemp("strict_home")
    shutil.copytree(project_root() / "notebooks", home / "notebooks")
    shutil.copytree(project_root() / "expectations", home / "expectations")
    suite = home / "expectations" / "mapping.summary.json"
    data = json.loads(suite.read_text(encoding="utf-8"))
    data["expectations"].append({"type": "expect_column_values_to_be_between",
                                 "kwargs": {"column": "held_by_target", "min_value": 0, "max_value": 0},
                                 "severity": "critical", "meta": {"description": "No member held back."}})
    suite.write_text(json.dumps(data), encoding="utf-8")
    res = _run(small_program, "reviewer-pages-failed", env={**os.environ, "LOYALTY_MIGRATE_HOME": str(home)})
    assert res.returncode == 1, res.stdout + res.stderr
    return small_program.parent / "runs" / "reviewer-pages-failed"


def test_the_pages_of_a_passed_run_are_readable(passed_run):
    assert_readable(passed_run)
    # the micro-point warnings of stage 03 exist in this run and read as points
    assert _micro_unit_values(passed_run)
    gate = (passed_run / "data_docs" / "03_transfers" / "index.html").read_text(encoding="utf-8")
    assert re.search(r"[\d,.]+ points", _visible(gate))


def test_the_index_carries_every_point_figure_and_the_rejects_by_reason(passed_run):
    index = _visible((passed_run / "index.html").read_text(encoding="utf-8"))
    for label in ("points owed before", "points transferred", "points left as rounding residue", "points rejected",
                  "points held for review", "points owed after", "points expired at the cutover"):
        assert label in index, label
    assert "Rejects by reason" in index and "MEMBER_UNMAPPED" in index
    report = json.loads((passed_run / "stages" / "05_report.json").read_text())["totals"]
    assert {r["reason_code"] for r in report["rejects_by_reason"]} >= {"MEMBER_UNMAPPED"}
    page = (passed_run / "notebooks" / "05_report.html").read_text(encoding="utf-8")
    assert "Where every point went" in page and page.count("<img") >= 5  # funnel, two waterfalls, bands, expiry


def test_a_failed_gate_shows_a_plain_box_and_no_traceback(failed_run):
    assert_readable(failed_run)
    summary = json.loads((failed_run / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]][:3] == ["passed", "passed", "failed"]
    coverage = json.loads((failed_run / "stages" / "02_mapping.json").read_text())["totals"]
    for rel in ("notebooks/02_mapping.html", "data_docs/02_mapping/index.html", "index.html"):
        text = " ".join(_visible((failed_run / rel).read_text(encoding="utf-8")).split())
        assert "Gate failed: stage 02_mapping stopped on 1 critical expectation(s)" in text, rel
        assert "observed vs required" in text and "vs required >= 0 and <= 0" in text, rel
        assert "What to do:" in text, rel
    notebook = _visible((failed_run / "notebooks" / "02_mapping.html").read_text(encoding="utf-8"))
    observed = re.search(r"observed vs required\s+(\d+) vs required", " ".join(notebook.split()))
    assert observed and int(observed.group(1)) > 0, notebook[-2000:]
    assert coverage  # the stage recorded its figures before its gate stopped it
    log = (failed_run / "notebooks" / "02_mapping.log").read_text(encoding="utf-8")
    assert "GateFailed" in log, "the traceback stays in the stage log for engineers"
