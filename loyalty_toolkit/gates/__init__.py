"""Great Expectations gates: the only package that imports great_expectations.

Suites are hand-written files ``expectations/<stage>.<table>.json``, checked strictly when loaded
(GX silently drops an unknown expectation type; here a typo is an error), and run in an ephemeral
context so no GX project folder is left behind. Each expectation carries GX's own ``severity``:
``critical`` failures block the stage, ``warning`` failures are reported. The stage's gate page
(our Data Docs, rendered by :mod:`loyalty_toolkit.gates.pages` without GX and without any remote
asset) is written to ``RUN_DIR/data_docs/<NN_stage>/index.html``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loyalty_toolkit.errors import ConfigError, GateFailed
from loyalty_toolkit.gates.pages import mask_example_values, mask_observed, value_text, write_gate_page

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# jsonschema, which GX loads through altair, compiles rfc3987_syntax's IRI grammar whenever that
# package is installed (jupyter-events installs it): 1.9 s of every stage kernel, for a format
# check GX never makes. Marking it absent makes jsonschema skip it, as it does when uninstalled.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

SEVERITIES = ("critical", "warning", "info")
_SUITE_KEYS = {"name", "meta", "expectations", "notes"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "severity", "notes", "description", "rendered_content"}


@dataclass
class Outcome:
    """One expectation's result, in the shape summary.json lists."""

    table: str
    expectation: str
    column: str | None
    success: bool
    critical: bool
    unexpected_count: int | None
    examples: list[Any] = field(default_factory=list)
    description: str = ""
    observed: Any = None
    # For the gate page: where the expectation sits in its suite file (1-based), its arguments as
    # run (a ``$PARAMETER`` resolved; ``parameters`` names it), and GX's row figures.
    position: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    element_count: int | None = None
    unexpected_percent: float | None = None
    error: str = ""

    def summary_row(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "column": self.column, "success": self.success,
                "critical": self.critical, "unexpected_count": self.unexpected_count}


@dataclass
class GateReport:
    """The outcome of every suite of a stage."""

    stage: str
    outcomes: list[Outcome]
    docs_index: str | None = None
    suites: dict[str, str] = field(default_factory=dict)  # table -> the suite's description

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    @property
    def critical_failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.critical and not o.success]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.critical and not o.success]

    def to_frame(self) -> pd.DataFrame:
        """A table for the notebook: one row per expectation, failures first."""
        rows = [{"table": o.table, "expectation": o.expectation, "column": o.column or "",
                 "severity": "critical" if o.critical else "warning",
                 "result": "pass" if o.success else "FAIL",
                 "unexpected": o.unexpected_count if o.unexpected_count is not None else "",
                 "observed": "" if o.observed is None else value_text(o.column, o.observed),
                 "examples": ", ".join(value_text(o.column, v) for v in o.examples[:5])} for o in self.outcomes]
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame = frame.sort_values(["result", "severity", "table"], ascending=[True, True, True], kind="stable")
        return frame.reset_index(drop=True)

    def summary_rows(self) -> list[dict[str, Any]]:
        return [o.summary_row() for o in self.outcomes]

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "passed": self.passed, "docs_index": self.docs_index,
                "suites": self.suites, "outcomes": [asdict(o) for o in self.outcomes]}

    def raise_if_failed(self) -> None:
        """Raise :class:`GateFailed` naming the first critical failure: the run stops here."""
        if self.passed:
            return
        first = self.critical_failures[0]
        count = f"{first.unexpected_count} unexpected" if first.unexpected_count is not None else "failed"
        col = f" on {first.table}.{first.column}" if first.column else f" on {first.table}"
        more = len(self.critical_failures) - 1
        tail = f" (+{more} more critical)" if more else ""
        raise GateFailed(f"gate failed: {first.expectation}{col}: {count}{tail}", stage=self.stage,
                         expectation=first.expectation, unexpected_count=first.unexpected_count)


# -- suites ------------------------------------------------------------------------------------

def suite_paths(suites_dir: Path, stage: str) -> list[Path]:
    """The suite files of ``stage``: ``<stage>.<table>.json``, sorted."""
    return sorted(Path(suites_dir).glob(f"{stage}.*.json"))


def load_suite(path: Path) -> dict[str, Any]:
    """Read a suite file and check every expectation strictly; raise ConfigError naming the field."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    name = Path(path).name
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", file=name, line=exc.lineno, column=exc.colno) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ConfigError("a suite is an object with an 'expectations' list", file=name)
    extra = set(raw) - _SUITE_KEYS
    if extra:
        raise ConfigError(f"unknown key(s) {sorted(extra)}", file=name)
    expected_name = Path(path).stem
    if raw.get("name") != expected_name:
        raise ConfigError(f"suite name must be {expected_name!r} (the file name), found {raw.get('name')!r}",
                          file=name, field="name")
    for i, exp in enumerate(raw["expectations"]):
        where = f"expectations[{i}]"
        if not isinstance(exp, dict):
            raise ConfigError("an expectation is an object", file=name, field=where)
        extra = set(exp) - _EXPECTATION_KEYS
        if extra:
            raise ConfigError(f"unknown key(s) {sorted(extra)}", file=name, field=where)
        if exp.get("severity") not in SEVERITIES:
            raise ConfigError(f"severity must be one of {SEVERITIES}", file=name, field=f"{where}.severity")
        try:
            ExpectationConfiguration(**exp).to_domain_obj()
        except Exception as exc:  # GX raises several types; all mean "this expectation is not valid"
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"invalid expectation {exp.get('type')!r}: {msg}", file=name,
                              field=f"{where}.type") from None
    return raw


# -- running -----------------------------------------------------------------------------------

def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _suite_columns(raw: dict[str, Any]) -> set[str] | None:
    """The columns a suite reads, or None when an expectation reads the whole table."""
    cols: set[str] = set()
    for exp in raw["expectations"]:
        kw = exp.get("kwargs", {})
        named = [kw.get(k) for k in ("column", "column_A", "column_B") if kw.get(k)]
        named += list(kw.get("column_list") or [])
        if not named and exp["type"] not in TABLE_LEVEL:
            return None
        cols.update(named)
    return cols


# A check table (e.g. ``stages.transfers.checks.lots_check``) has one row per rule of a big
# table: how many rows it looked at, how many broke the rule, and a few of their ids. Its rows add
# up across member slices, so the gate never holds the big table. GX counts check rows; the
# outcome of an expectation on its ``failing`` column is restated in the big table's rows
# (unexpected = failing rows, element_count = rows looked at) with the failing ids as examples.
CHECK_TABLE_COLUMNS = ("check", "rows", "failing", "examples")
EXAMPLE_SEPARATOR = ", "


def is_check_table(frame: pd.DataFrame) -> bool:
    return all(c in frame.columns for c in CHECK_TABLE_COLUMNS)


# Expectations that only look at the row count or the column names.
TABLE_LEVEL = {"expect_table_row_count_to_equal", "expect_table_row_count_to_be_between"}


def _gx_frame(frame: pd.DataFrame, columns: set[str] | None) -> pd.DataFrame:
    """Only the columns the suite reads (GX copies what it is given); Decimals as floats, which GX's
    pandas metrics handle (exact checks on Decimals belong to the stage's own reconciliation)."""
    out = frame[[c for c in frame.columns if c in columns]] if columns is not None else frame
    out = out.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object:
            first = next((v for v in s.head(1000) if v is not None), None)
            if first is not None and first.__class__.__name__ == "Decimal":
                out[col] = s.map(lambda v: float(v) if v is not None else None)
    return out


def run_gate(stage: str, tables: dict[str, pd.DataFrame], *, suites_dir: Path, docs_dir: Path | None = None,
             parameters: dict[str, Any] | None = None, show_pii: bool = False, examples: int = 5) -> GateReport:
    """Validate each table of ``stage`` against ``expectations/<stage>.<table>.json``.

    Every suite of the stage must find its table in ``tables`` (a missing table is a ConfigError),
    so a gate cannot pass by not running. With ``docs_dir``, the stage's gate page is written to
    ``docs_dir/index.html`` (examples masked unless ``show_pii``).
    """
    import great_expectations as gx

    paths = suite_paths(suites_dir, stage)
    if not paths:
        raise ConfigError(f"no suite for stage {stage!r} in {suites_dir}", stage=stage)
    ctx = _context()
    source = ctx.data_sources.add_pandas("staging")
    outcomes: list[Outcome] = []
    suites: dict[str, str] = {}
    for path in paths:
        raw = load_suite(path)
        table = path.stem.split(".", 1)[1]
        if table not in tables:
            raise ConfigError(f"suite {path.name} gates table {table!r}, which stage {stage!r} did not produce",
                              stage=stage, file=path.name)
        suites[table] = str((raw.get("meta") or {}).get("description", ""))
        suite = ctx.suites.add(gx.ExpectationSuite(**raw))
        # GX does not return results in suite order; the id it gave each expectation says where it sits.
        positions = {e.id: i for i, e in enumerate(suite.expectations, start=1)}
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=path.stem, data=batch, suite=suite))
        frame, columns = tables[table], _suite_columns(raw)
        result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": examples}
        checks = is_check_table(frame)
        if checks:  # each unexpected row comes back with its rule, rows looked at and failing ids
            result_format["unexpected_index_column_names"] = ["check", "rows", "examples"]
            columns = None if columns is None else columns | set(CHECK_TABLE_COLUMNS)
        result = vd.run(batch_parameters={"dataframe": _gx_frame(frame, columns)},
                        expectation_parameters=parameters or {}, result_format=result_format)
        found = sorted(result.results, key=lambda r: positions.get(r.expectation_config.id, len(positions) + 1))
        for r in found:
            outcome = _outcome(table, r, raw["expectations"], positions, show_pii=show_pii, examples=examples)
            if checks and outcome.column == "failing" and not outcome.error:
                _restate_check(outcome, r.result or {}, frame, examples)
            outcomes.append(outcome)
    report = GateReport(stage=stage, outcomes=outcomes, suites=suites)
    if docs_dir is not None:
        report.docs_index = str(write_gate_page(report, Path(docs_dir), show_pii=show_pii))
    return report


def _outcome(table: str, r: Any, suite_expectations: list[dict[str, Any]], positions: dict[str, int], *,
             show_pii: bool, examples: int) -> Outcome:
    """One GX expectation result as an :class:`Outcome`, its examples masked unless ``show_pii``."""
    cfg = r.expectation_config
    res = r.result or {}
    kwargs = {k: _plain(v) for k, v in cfg.kwargs.items() if k != "batch_id"}
    position = positions.get(cfg.id, 0)
    declared = suite_expectations[position - 1].get("kwargs", {}) if position else {}
    parameters = {k: v["$PARAMETER"] for k, v in declared.items() if isinstance(v, dict) and "$PARAMETER" in v}
    examples_list = [_plain(v) for v in list(res.get("partial_unexpected_list") or [])[:examples]]
    examples_list = mask_example_values(kwargs, examples_list, show_pii=show_pii)
    error = _exception_message(r.exception_info)
    if error:
        examples_list = [error]
    percent = res.get("unexpected_percent")
    return Outcome(
        table=table, expectation=cfg.type, column=cfg.kwargs.get("column"), success=bool(r.success),
        critical=str(getattr(cfg.severity, "value", cfg.severity)) == "critical",
        unexpected_count=_int_or_none(res.get("unexpected_count")),
        examples=examples_list, description=(cfg.meta or {}).get("description", ""),
        observed=mask_observed(cfg.kwargs.get("column"), _plain(res.get("observed_value")), show_pii=show_pii),
        position=position, kwargs=kwargs, parameters=parameters,
        element_count=_int_or_none(res.get("element_count")),
        unexpected_percent=None if percent is None else float(percent), error=error,
    )


def _restate_check(outcome: Outcome, res: dict[str, Any], frame: pd.DataFrame, examples: int) -> None:
    """An expectation on a check table's ``failing`` column, in the big table's rows: unexpected =
    the failing rows of the check rows GX found unexpected, element_count = the rows the checks
    its ``row_condition`` selects looked at, examples = the failing ids."""
    selected = frame[_check_rows(frame, outcome.kwargs.get("row_condition"), outcome.table)]
    unexpected = list(res.get("unexpected_index_list") or [])
    outcome.element_count = int(selected["rows"].sum())
    outcome.unexpected_count = sum(int(u.get("failing") or 0) for u in unexpected)
    outcome.unexpected_percent = (100.0 * outcome.unexpected_count / outcome.element_count
                                  if outcome.element_count else None)
    ids: list[Any] = []
    for u in unexpected:
        ids += [x for x in str(u.get("examples") or "").split(EXAMPLE_SEPARATOR) if x]
    outcome.examples = ids[:examples]


def _check_rows(frame: pd.DataFrame, condition: Any, table: str) -> pd.Series:
    """The check rows a ``row_condition`` selects: none given, every row; else it must be GX's
    comparison ``check == <rule>`` (``{"type": "comparison", "column": {"name": "check"},
    "operator": "==", "parameter": <rule>}``), the one form a check suite uses."""
    if condition is None:
        return pd.Series(True, index=frame.index)
    if (isinstance(condition, dict) and condition.get("type") == "comparison" and condition.get("operator") == "=="
            and (condition.get("column") or {}).get("name") == "check"):
        return frame["check"] == condition.get("parameter")
    raise ConfigError(f"a check table's row_condition must be check == <rule>, found {condition!r}", file=table)


def _exception_message(info: Any) -> str:
    """The message of an expectation that raised, or "". GX gives ``exception_info`` either flat or
    keyed by metric id."""
    if not isinstance(info, dict):
        return ""
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    for c in candidates:
        if c.get("raised_exception"):
            return str(c.get("exception_message") or "error")[:200]
    return ""


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def _plain(v: Any) -> Any:
    """A JSON-friendly value: numpy scalars as Python ones (also inside lists and dicts), NaN as None."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    return v
