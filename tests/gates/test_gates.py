"""The gates, tested as data: every case in gate_cases.json runs through the real suites."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit import gates
from loyalty_toolkit.gates import pages
from loyalty_toolkit.errors import ConfigError, GateFailed
from loyalty_toolkit.model import REJECT_COLUMNS, expectations_dir

CASES = json.loads((Path(__file__).parent / "gate_cases.json").read_text(encoding="utf-8"))


def _frame(table: str, rows: list[dict]) -> pd.DataFrame:
    if not rows and table == "rejects":
        return pd.DataFrame(columns=list(REJECT_COLUMNS))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_gate_case(case, tmp_path):
    tables = {name: _frame(name, rows) for name, rows in case["tables"].items()}
    report = gates.run_gate(case["stage"], tables, suites_dir=expectations_dir(), docs_dir=tmp_path / "docs")
    failed = sorted(f"{o.table}.{o.expectation}.{'critical' if o.critical else 'warning'}"
                    for o in report.outcomes if not o.success)
    assert report.passed is case["passed"]
    assert failed == sorted(case["failed"])
    # A check table (one row per rule): which rules failed, and the ids the page shows for each.
    failed_checks = {f"{o.table}.{o.kwargs['row_condition']['parameter']}": o.examples
                     for o in report.outcomes if not o.success and "row_condition" in o.kwargs}
    assert failed_checks == case.get("failed_checks", {})
    # One self-contained page per stage: every expectation has its anchored row, failures are linked.
    assert [p.name for p in (tmp_path / "docs").rglob("*") if p.is_file()] == ["index.html"]
    assert report.docs_index == str(tmp_path / "docs" / "index.html")
    page = (tmp_path / "docs" / "index.html").read_text(encoding="utf-8")
    for o in report.outcomes:
        assert page.count(f"id='{pages.anchor(o)}'") == 1
        assert (f"href='#{pages.anchor(o)}'>{o.table} #{o.position}:" in page) is (not o.success)
    assert ("Gate failed" in page) is (not case["passed"])
    if not case["passed"]:
        with pytest.raises(GateFailed) as err:
            report.raise_if_failed()
        assert err.value.stage == case["stage"] and err.value.exit_code == 1
        assert err.value.expectation in err.value.one_line()


def _suite(tmp_path: Path, expectations: list[dict], name: str = "members.members") -> Path:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps({"name": name, "expectations": expectations}), encoding="utf-8")
    return p


@pytest.mark.parametrize("expectation, field, words", [
    ({"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "a"}, "severity": "critical"},
     "expectations[0].type", "invalid expectation"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}, "expectations[0].severity", "severity"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "severity": "critical", "sevrity": 1},
     "expectations[0]", "unknown key"),
])
def test_a_typo_in_a_suite_is_an_error_not_a_silent_drop(tmp_path, expectation, field, words):
    with pytest.raises(ConfigError) as err:
        gates.load_suite(_suite(tmp_path, [expectation]))
    assert err.value.field == field and words in err.value.message


def test_suite_name_must_match_its_file(tmp_path):
    p = tmp_path / "members.members.json"
    p.write_text(json.dumps({"name": "other", "expectations": []}), encoding="utf-8")
    with pytest.raises(ConfigError, match="suite name must be"):
        gates.load_suite(p)


def test_every_shipped_suite_loads_strictly():
    paths = sorted(expectations_dir().glob("*.json"))
    assert paths
    for p in paths:
        assert gates.load_suite(p)["expectations"]


def test_a_suite_whose_table_is_missing_cannot_pass_by_not_running(tmp_path):
    with pytest.raises(ConfigError, match="did not produce"):
        gates.run_gate("subset", {"inputs": pd.DataFrame()}, suites_dir=expectations_dir())


def test_examples_are_masked_by_default(tmp_path):
    suite = _suite(tmp_path, [{"type": "expect_column_values_to_match_regex",
                               "kwargs": {"column": "email", "regex": "^x$"}, "severity": "warning"}])
    frame = pd.DataFrame({"email": ["jean@example.com"]})
    report = gates.run_gate("members", {"members": frame}, suites_dir=suite.parent)
    assert report.outcomes[0].examples == ["j***@example.com"]
    shown = gates.run_gate("members", {"members": frame}, suites_dir=suite.parent, show_pii=True,
                           docs_dir=tmp_path / "shown")
    assert shown.outcomes[0].examples == ["jean@example.com"]
    assert "jean@example.com" in (tmp_path / "shown" / "index.html").read_text(encoding="utf-8")


def test_outcomes_follow_the_suite_file_and_carry_what_the_page_shows(tmp_path):
    suite = _suite(tmp_path, [
        {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 2}, "severity": "warning"},
        {"type": "expect_column_values_to_be_between", "severity": "critical",
         "kwargs": {"column": "points", "min_value": {"$PARAMETER": "floor"}}, "meta": {"description": "d"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "points"}, "severity": "critical"},
    ])
    frame = pd.DataFrame({"points": [5, -3, 7, 9]})
    report = gates.run_gate("members", {"members": frame}, suites_dir=suite.parent, parameters={"floor": 0})
    assert [o.position for o in report.outcomes] == [1, 2, 3]
    count, between, _ = report.outcomes
    assert count.observed == 4 and not count.success and not count.critical
    assert between.kwargs == {"column": "points", "min_value": 0} and between.parameters == {"min_value": "floor"}
    assert (between.element_count, between.unexpected_count, between.unexpected_percent) == (4, 1, 25.0)
    assert between.examples == [-3] and between.description == "d" and not between.success
    page = pages.render_gate_page(report)
    assert "($PARAMETER floor)" in page and "<code>-3</code>" in page


def test_compound_examples_are_masked_column_by_column(tmp_path):
    suite = _suite(tmp_path, [{"type": "expect_compound_columns_to_be_unique",
                               "kwargs": {"column_list": ["email", "center"]}, "severity": "warning"}])
    frame = pd.DataFrame({"email": ["jean@example.com", "jean@example.com"], "center": ["C1", "C1"]})
    report = gates.run_gate("members", {"members": frame}, suites_dir=suite.parent, docs_dir=tmp_path / "docs")
    assert report.outcomes[0].examples[0] == {"email": "j***@example.com", "center": "C1"}
    assert "jean@example.com" not in (tmp_path / "docs" / "index.html").read_text(encoding="utf-8")


def test_a_check_table_is_reported_in_the_rows_it_checked_with_the_failing_ids(tmp_path):
    rule = {"type": "comparison", "column": {"name": "check"}, "operator": "==", "parameter": "lot_not_below_zero"}
    suite = _suite(tmp_path, [
        {"type": "expect_column_values_to_be_between", "severity": "critical", "meta": {"description": "d"},
         "kwargs": {"column": "failing", "min_value": 0, "max_value": 0, "row_condition": rule}},
        {"type": "expect_column_values_to_be_between", "severity": "critical",
         "kwargs": {"column": "failing", "min_value": 0, "max_value": 0,
                    "row_condition": {**rule, "parameter": "lot_status_known"}}},
    ], name="transfers.lots")
    frame = pd.DataFrame({"check": ["lot_not_below_zero", "lot_status_known"], "rows": [6_400_000, 6_400_000],
                          "failing": [3, 0], "examples": ["gp-7, gp-9, line:12", ""]})
    report = gates.run_gate("transfers", {"lots": frame}, suites_dir=suite.parent, docs_dir=tmp_path / "docs")
    below, status = report.outcomes
    assert (below.success, below.element_count, below.unexpected_count) == (False, 6_400_000, 3)
    assert below.examples == ["gp-7", "gp-9", "line:12"]
    assert (status.success, status.element_count, status.unexpected_count, status.examples) == (True, 6_400_000, 0, [])
    with pytest.raises(GateFailed, match="3 unexpected"):
        report.raise_if_failed()
    page = (tmp_path / "docs" / "index.html").read_text(encoding="utf-8")
    assert "<code>line:12</code>" in page and "6,400,000" in page
    assert "<code>check == &quot;lot_not_below_zero&quot;</code>" in page


def test_a_check_table_takes_only_the_check_equals_rule_condition(tmp_path):
    suite = _suite(tmp_path, [{"type": "expect_column_values_to_be_between", "severity": "critical",
                               "kwargs": {"column": "failing", "min_value": 0, "max_value": 0,
                                          "row_condition": {"type": "comparison", "column": {"name": "rows"},
                                                            "operator": ">", "parameter": 0}}}],
                   name="transfers.lots")
    frame = pd.DataFrame({"check": ["r"], "rows": [1], "failing": [1], "examples": ["x"]})
    with pytest.raises(ConfigError, match="check == <rule>"):
        gates.run_gate("transfers", {"lots": frame}, suites_dir=suite.parent)
