"""Great Expectations gates: the only module that imports great_expectations.

Suites are hand-written files ``expectations/<stage>.<table>.json``, checked strictly when loaded
(GX silently drops an unknown expectation type; here a typo is an error), and run in an ephemeral
context so no GX project folder is left behind. Each expectation carries GX's own ``severity``:
``critical`` failures block the stage, ``warning`` failures are reported. Data Docs are written to
``RUN_DIR/data_docs/<NN_stage>/``.
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
from loyalty_toolkit.mask import PII_KINDS, mask_examples, mask_value

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

    def summary_row(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "column": self.column, "success": self.success,
                "critical": self.critical, "unexpected_count": self.unexpected_count}


@dataclass
class GateReport:
    """The outcome of every suite of a stage."""

    stage: str
    outcomes: list[Outcome]
    docs_index: str | None = None

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
                 "observed": "" if o.observed is None else str(o.observed),
                 "examples": ", ".join(map(str, o.examples[:5]))} for o in self.outcomes]
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame = frame.sort_values(["result", "severity", "table"], ascending=[True, True, True], kind="stable")
        return frame.reset_index(drop=True)

    def summary_rows(self) -> list[dict[str, Any]]:
        return [o.summary_row() for o in self.outcomes]

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "passed": self.passed, "docs_index": self.docs_index,
                "outcomes": [asdict(o) for o in self.outcomes]}

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

def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        ctx.add_data_docs_site(site_name="run", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        for site in list(ctx.get_site_names()):
            if site != "run":
                ctx.delete_data_docs_site(site)
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
    so a gate cannot pass by not running.
    """
    import great_expectations as gx

    raw_pii: dict[str, str] = {}
    paths = suite_paths(suites_dir, stage)
    if not paths:
        raise ConfigError(f"no suite for stage {stage!r} in {suites_dir}", stage=stage)
    ctx = _context(docs_dir)
    source = ctx.data_sources.add_pandas("staging")
    outcomes: list[Outcome] = []
    for path in paths:
        raw = load_suite(path)
        table = path.stem.split(".", 1)[1]
        if table not in tables:
            raise ConfigError(f"suite {path.name} gates table {table!r}, which stage {stage!r} did not produce",
                              stage=stage, file=path.name)
        suite = ctx.suites.add(gx.ExpectationSuite(**raw))
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=path.stem, data=batch, suite=suite))
        result = vd.run(batch_parameters={"dataframe": _gx_frame(tables[table], _suite_columns(raw))},
                        expectation_parameters=parameters or {},
                        result_format={"result_format": "COMPLETE", "partial_unexpected_count": examples})
        for r in result.results:
            cfg = r.expectation_config
            res = r.result or {}
            column = cfg.kwargs.get("column")
            raised = isinstance(r.exception_info, dict) and r.exception_info.get("raised_exception")
            if not show_pii and PII_KINDS.get(str(column)):
                raw_pii.update(_pii_values(PII_KINDS[str(column)], res))
            examples_list = list(res.get("partial_unexpected_list") or [])[:examples]
            examples_list = mask_examples(column, [_plain(v) for v in examples_list], show_pii=show_pii)
            if raised:
                examples_list = [str(r.exception_info.get("exception_message", "error"))[:200]]
            outcomes.append(Outcome(
                table=table, expectation=cfg.type, column=column, success=bool(r.success),
                critical=str(getattr(cfg.severity, "value", cfg.severity)) == "critical",
                unexpected_count=_int_or_none(res.get("unexpected_count")),
                examples=examples_list, description=(cfg.meta or {}).get("description", ""),
                observed=_plain(res.get("observed_value")),
            ))
    docs_index = None
    if docs_dir is not None:
        ctx.build_data_docs(site_names=["run"])
        docs_index = str(Path(docs_dir) / "index.html")
        if raw_pii:
            scrub_docs(Path(docs_dir), raw_pii)
    return GateReport(stage=stage, outcomes=outcomes, docs_index=docs_index)


def _pii_values(kind: str, result: dict[str, Any]) -> dict[str, str]:
    """Raw personal values GX put in a result (which Data Docs would print), with their masks."""
    found: dict[str, str] = {}
    for key in ("partial_unexpected_list", "unexpected_list"):
        for v in result.get(key) or []:
            if isinstance(v, str) and v:
                found[v] = mask_value(kind, v)
    for item in result.get("partial_unexpected_counts") or []:
        v = item.get("value") if isinstance(item, dict) else None
        if isinstance(v, str) and v:
            found[v] = mask_value(kind, v)
    return found


def scrub_docs(docs_dir: Path, replacements: dict[str, str]) -> None:
    """Mask personal values in the Data Docs pages GX rendered: GX has no masking of its own."""
    import html as html_lib

    pairs = sorted(replacements.items(), key=lambda kv: -len(kv[0]))  # longest first: no partial overlaps
    for page in Path(docs_dir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = text
        for raw, masked in pairs:
            for form in {raw, html_lib.escape(raw), html_lib.escape(raw, quote=False)}:
                new = new.replace(form, masked)
        if new != text:
            page.write_text(new, encoding="utf-8")


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    return v
