"""The gates, tested as data: every case in gate_cases.json runs through the real suites."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit import gates
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
    assert (tmp_path / "docs" / "index.html").is_file()
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
    shown = gates.run_gate("members", {"members": frame}, suites_dir=suite.parent, show_pii=True)
    assert shown.outcomes[0].examples == ["jean@example.com"]
