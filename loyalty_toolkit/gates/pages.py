"""The gate page of a stage: one self-contained HTML file rendered from the validation results.

GX's own Data Docs load bootstrap, jquery, vega and fonts from CDNs, spread a stage over dozens of
files and cost about a second of jinja compiling per stage kernel; reviewers open run folders
offline. This page holds every suite and expectation of the stage with inline CSS and no script,
and gives each expectation an anchor (``#<table>-<position>``) that other pages can link to.
Example values are masked unless ``show_pii``. It does not import great_expectations.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loyalty_toolkit.display import UNITS_SUFFIX, number_text, points_text
from loyalty_toolkit.mask import PII_KINDS, mask_value
from loyalty_toolkit.model import STAGE_NUMBERS, notebook_name

if TYPE_CHECKING:  # the report types live in the package's __init__, which imports this module
    from loyalty_toolkit.gates import GateReport, Outcome

PAGE_NAME = "index.html"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 90em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.92em; }
pre { margin: 0; white-space: pre-wrap; }
tr.fail-critical td { background: #fde2e1; }
tr.fail-warning td { background: #fff4d6; }
tr:target td { outline: 2px solid #3a6ea5; }
p.banner { padding: 8px; } p.failed { background: #fde2e1; } p.passed { background: #e3f6e3; }
.muted { color: #666; }
ul.examples { margin: 0; padding-left: 1.2em; }
td { overflow-wrap: anywhere; } td.evidence { max-width: 26em; }
"""

# The failure box: on the gate page, the stage's notebook page and the index (runner.render, runner.record).
FAILURE_CSS = """
div.lm-failure { border: 2px solid #c0392b; background: #fdf0ef; padding: 10px 14px; margin: 1em 0;
  max-width: 72em; font-family: system-ui, sans-serif; font-size: 14px; color: #222; }
div.lm-failure h3 { margin: 0 0 6px; color: #a12a1e; font-size: 16px; }
div.lm-failure dl { margin: 4px 0 8px; display: grid; grid-template-columns: 11em 1fr; gap: 2px 10px; }
div.lm-failure dt { font-weight: 600; } div.lm-failure dd { margin: 0; overflow-wrap: anywhere; }
div.lm-failure code { font-family: ui-monospace, monospace; }
"""


def anchor(outcome: Outcome) -> str:
    """The id of ``outcome``'s row on the page: its table and its place in the suite file."""
    return f"{outcome.table}-{outcome.position}"


def mask_example_values(kwargs: dict[str, Any], values: list[Any], *, show_pii: bool) -> list[Any]:
    """Mask personal data in unexpected examples by the column(s) they come from.

    A single-column expectation gives scalars, a column pair gives ``[a, b]``, a compound check
    gives ``{column: value}``; each value is masked by its own column. Masks are idempotent, so
    masking an already masked example changes nothing.
    """
    if show_pii:
        return list(values)
    column = kwargs.get("column")
    pair = [kwargs.get("column_A"), kwargs.get("column_B")]
    out = []
    for v in values:
        if isinstance(v, dict):
            out.append({k: _mask(k, x) for k, x in v.items()})
        elif isinstance(v, (list, tuple)) and len(v) == 2 and any(pair):
            out.append([_mask(pair[0], v[0]), _mask(pair[1], v[1])])
        else:
            out.append(_mask(column, v))
    return out


def mask_observed(column: Any, value: Any, *, show_pii: bool) -> Any:
    """Mask an observed value of a personal-data column (a value, or a list of values)."""
    if show_pii:
        return value
    if isinstance(value, (list, tuple)):
        return [_mask(column, v) for v in value]
    return _mask(column, value)


def _mask(column: Any, value: Any) -> Any:
    kind = PII_KINDS.get(str(column)) if column else None
    if not kind or value is None:
        return value
    return mask_value(kind, value)


def write_gate_page(report: GateReport, docs_dir: Path, *, show_pii: bool = False) -> Path:
    """Write ``docs_dir/index.html`` for ``report``; return its path."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    page = docs_dir / PAGE_NAME
    page.write_text(render_gate_page(report, show_pii=show_pii), encoding="utf-8")
    return page


def render_gate_page(report: GateReport, *, show_pii: bool = False) -> str:
    """The page as text: a headline, the failures first (linked), then every suite's expectations."""
    e = html.escape
    outcomes = report.outcomes
    critical = report.critical_failures
    warnings = report.warnings
    if critical:
        stem = notebook_name(report.stage) if report.stage in STAGE_NUMBERS else report.stage
        banner = failure_box(stem, [asdict(o) for o in critical],
                             todo="Fix the input file or the config setting the expectation names, then re-run this "
                                  "stage. The stage stopped and committed nothing; no import file was published.",
                             show_pii=show_pii)
    else:
        banner = "<p class='banner passed'><strong>Gate passed:</strong> no critical expectation failed.</p>"
    pii = ("Personal data in the examples is <strong>shown</strong> (run with show_pii)." if show_pii else
           "Personal data (emails, phones, names) in the examples is masked.")
    failed_list = "".join(
        f"<li><a href='#{e(anchor(o))}'>{e(o.table)} #{o.position}: <code>{e(o.expectation)}</code>"
        f"{' on ' + e(str(o.column)) if o.column else ''}</a> ({'critical' if o.critical else 'warning'}"
        f"{_unexpected_words(o)})</li>" for o in critical + warnings)
    failures = f"<h2>Failures</h2><ul>{failed_list}</ul>" if failed_list else ""
    tables = list(dict.fromkeys([*report.suites, *(o.table for o in outcomes)]))
    toc = "".join(f"<li><a href='#{e(t)}'>{e(report.stage)}.{e(t)}</a> "
                  f"({_suite_counts([o for o in outcomes if o.table == t])})</li>" for t in tables)
    sections = "".join(_suite_section(report.stage, t, report.suites.get(t, ""),
                                      [o for o in outcomes if o.table == t], show_pii) for t in tables)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Gate: stage {e(report.stage)}</title>
<style>{_CSS}</style></head><body>
<h1>Gate of stage {e(report.stage)}</h1>
{banner}
<p>{len(outcomes)} expectations in {len(tables)} suite(s): {len(outcomes) - len(critical) - len(warnings)} passed,
{len(critical)} critical failed, {len(warnings)} warnings. Suites are the files
<code>expectations/{e(report.stage)}.&lt;table&gt;.json</code>. {pii}</p>
{failures}
<h2>Suites</h2><ul>{toc}</ul>
{sections}
</body></html>
"""


def _unexpected_words(o: Outcome) -> str:
    if o.error:
        return ", raised an error"
    if o.unexpected_count is None:
        return ""
    pct = f", {o.unexpected_percent:.4g}%" if o.unexpected_percent is not None else ""
    return f", {o.unexpected_count:,} unexpected{pct}"


def _suite_counts(outcomes: list[Outcome]) -> str:
    failed = sum(not o.success for o in outcomes)
    return f"{len(outcomes)} expectations, {failed} failed" if failed else f"{len(outcomes)} expectations, all passed"


def _suite_section(stage: str, table: str, description: str, outcomes: list[Outcome], show_pii: bool) -> str:
    e = html.escape
    rows = "".join(_row(o, show_pii) for o in outcomes)
    desc = f"<p>{e(description)}</p>" if description else ""
    return (f"<h2 id='{e(table)}'>{e(stage)}.{e(table)}</h2>{desc}"
            "<table><tr><th>#</th><th>expectation</th><th>column</th><th>arguments</th><th>severity</th>"
            "<th>result</th><th>rows</th><th>unexpected</th><th>unexpected %</th><th>examples / observed</th></tr>"
            f"{rows}</table>")


def _row(o: Outcome, show_pii: bool) -> str:
    e = html.escape
    severity = "critical" if o.critical else "warning"
    css = "" if o.success else f" class='fail-{severity}'"
    desc = f"<br><span class='muted'>{e(o.description)}</span>" if o.description else ""
    column = e(str(o.column)) if o.column else ""
    pct = "" if o.unexpected_percent is None else f"{o.unexpected_percent:.4g}"
    return (f"<tr id='{e(anchor(o))}'{css}><td class='num'><a href='#{e(anchor(o))}'>{o.position}</a></td>"
            f"<td><code>{e(o.expectation)}</code>{desc}</td><td>{column}</td><td>{_kwargs(o)}</td>"
            f"<td>{severity}</td><td>{'pass' if o.success else '<strong>FAIL</strong>'}</td>"
            f"<td class='num'>{_num(o.element_count)}</td><td class='num'>{_num(o.unexpected_count)}</td>"
            f"<td class='num'>{pct}</td><td class='evidence'>{_evidence(o, show_pii)}</td></tr>")


def _kwargs(o: Outcome) -> str:
    """Arguments as run, minus the column(s) shown elsewhere; a resolved parameter names its source."""
    e = html.escape
    items = []
    for k, v in o.kwargs.items():
        if k == "column":
            continue
        source = f" <span class='muted'>($PARAMETER {e(o.parameters[k])})</span>" if k in o.parameters else ""
        items.append(f"<code>{e(k)}</code>: <code>{e(_condition_text(v) if k == 'row_condition' else _text(v))}</code>"
                     f"{source}")
    return "<br>".join(items)


def _evidence(o: Outcome, show_pii: bool) -> str:
    e = html.escape
    if o.error:
        return f"<strong>error:</strong> <pre>{e(o.error)}</pre>"
    parts = []
    examples = mask_example_values(o.kwargs, o.examples, show_pii=show_pii)
    if examples:
        parts.append("<ul class='examples'>" + "".join(
            f"<li><code>{e(_example_text(o.kwargs, reader_value(o.column, v)))}</code></li>" for v in examples)
            + "</ul>")
    if o.observed is not None:
        observed = mask_observed(o.column, o.observed, show_pii=show_pii)
        parts.append(f"observed: <code>{e(value_text(o.column, observed))}</code>")
    return "".join(parts)


def _example_text(kwargs: dict[str, Any], v: Any) -> str:
    """``rows_read: 3, rows_accounted: 2`` for a column pair or a compound example; else the value."""
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_text(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)) and len(v) == 2 and kwargs.get("column_A") and kwargs.get("column_B"):
        return f"{kwargs['column_A']}: {_text(v[0])}, {kwargs['column_B']}: {_text(v[1])}"
    return _text(v)


def _condition_text(v: Any) -> str:
    """GX's comparison condition as a reviewer reads it (``check == "lot_not_below_zero"``); else the JSON."""
    if isinstance(v, dict) and v.get("type") == "comparison" and isinstance(v.get("column"), dict):
        return f"{v['column'].get('name')} {v.get('operator')} {json.dumps(v.get('parameter'), ensure_ascii=False)}"
    return _text(v)


def reader_value(column: Any, value: Any) -> Any:
    """A value as a reader sees it: an integer of a micro-point column (``*_units``) as points
    (``3444300000`` -> ``3,444.3 points``); a list element by element; anything else unchanged."""
    if isinstance(value, (list, tuple)):
        return [reader_value(column, v) for v in value]
    if str(column or "").endswith(UNITS_SUFFIX) and isinstance(value, int) and not isinstance(value, bool):
        return f"{points_text(value)} points"
    return value


def value_text(column: Any, value: Any) -> str:
    """``reader_value`` as text, numbers with thousands separators."""
    v = reader_value(column, value)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return number_text(v)
    return _text(v)


def required_text(expectation: str, kwargs: dict[str, Any]) -> str:
    """What the expectation requires, in words: ``>= 1.0 and <= 1``, ``= 1``, ``one of ...``."""
    column = kwargs.get("column")
    parts = []
    if kwargs.get("value") is not None:
        parts.append(f"= {value_text(column, kwargs['value'])}")
    if kwargs.get("min_value") is not None:
        parts.append(f">= {value_text(column, kwargs['min_value'])}")
    if kwargs.get("max_value") is not None:
        parts.append(f"<= {value_text(column, kwargs['max_value'])}")
    if kwargs.get("value_set") is not None:
        values = list(kwargs["value_set"])
        parts.append("one of " + ", ".join(_text(v) for v in values[:8]) + (" ..." if len(values) > 8 else ""))
    if kwargs.get("regex"):
        parts.append(f"matching {kwargs['regex']}")
    if kwargs.get("column_A") and kwargs.get("column_B"):
        relation = ">=" if kwargs.get("or_equal") else ">" if "greater" in expectation else "="
        parts.append(f"{kwargs['column_A']} {relation} {kwargs['column_B']} on every row")
    if kwargs.get("mostly") is not None:
        parts.append(f"on at least {float(kwargs['mostly']):.0%} of rows")
    words = expectation.removeprefix("expect_").replace("_", " ")
    return " and ".join(parts) if parts else words


def observed_text(o: dict[str, Any]) -> str:
    """What the gate saw: the observed value, the one unexpected value of a one-row table, or how
    many rows broke the rule."""
    column = o.get("column")
    if o.get("error"):
        return f"the expectation could not run: {o['error']}"
    observed = o.get("observed")
    if observed is not None and not isinstance(observed, (list, dict)):
        return value_text(column, observed)
    examples = o.get("examples") or []
    count, rows = o.get("unexpected_count"), o.get("element_count")
    if count is not None and rows == 1 and len(examples) == 1 and not isinstance(examples[0], (dict, list)):
        return value_text(column, examples[0])
    if count is not None:
        return f"{count:,} of {rows:,} rows break it" if rows is not None else f"{count:,} rows break it"
    return "failed"


def failure_box(stage: str, outcomes: list[dict[str, Any]], *, gate_page: str | None = None,
                todo: str = "", show_pii: bool = False) -> str:
    """A plain box for a stage whose gate failed: per critical failure (the first three) the
    expectation in words, observed vs required and a few (already masked) examples, then what to
    do. ``outcomes`` are :class:`Outcome` fields as dicts (``stages/NN.json`` ``gate_report``)."""
    e = html.escape
    failed = [o for o in outcomes if o.get("critical") and not o.get("success")]
    items = []
    for o in failed[:3]:
        where = f"{o.get('table')}" + (f".{o['column']}" if o.get("column") else "")
        examples = mask_example_values(o.get("kwargs") or {}, list(o.get("examples") or [])[:5], show_pii=show_pii)
        shown = ", ".join(value_text(o.get("column"), v) if not isinstance(v, (dict, list, tuple))
                          else _example_text(o.get("kwargs") or {}, reader_value(o.get("column"), v)) for v in examples)
        items.append(
            f"<dl><dt>expectation</dt><dd>{e(o.get('description') or '')} <code>{e(str(o.get('expectation')))}</code>"
            f" on <code>{e(where)}</code></dd>"
            f"<dt>observed vs required</dt><dd><strong>{e(observed_text(o))}</strong> vs required "
            f"<strong>{e(required_text(str(o.get('expectation')), o.get('kwargs') or {}))}</strong></dd>"
            + (f"<dt>examples</dt><dd><code>{e(shown)}</code></dd>" if shown else "") + "</dl>")
    more = f"<p>{len(failed) - 3} more critical failure(s) on the gate page.</p>" if len(failed) > 3 else ""
    link = f" The gate page lists every expectation: <a href='{e(gate_page)}'>{e(gate_page)}</a>." if gate_page else ""
    what = todo or ("Fix the input file or the config setting the expectation names, then re-run this stage "
                    "(<code>loyalty-migrate run CONFIG --run-id RUN --stages NAME</code>). Nothing of this stage "
                    "was committed and no import file was published.")
    return (f"<style>{FAILURE_CSS}</style><div class='lm-failure'><h3>Gate failed: stage {e(stage)} stopped on "
            f"{len(failed)} critical expectation(s)</h3>{''.join(items)}{more}<p><strong>What to do:</strong> "
            f"{what}{link}</p></div>")


def error_box(stage: str, name: str, message: str, *, log: str | None = None) -> str:
    """A plain box for a stage that stopped on an error (bad input, a timeout): the one-line cause;
    the traceback is for engineers, in the stage log."""
    e = html.escape
    where = f" The engineer's details (the traceback) are in <code>{e(log)}</code>." if log else ""
    return (f"<style>{FAILURE_CSS}</style><div class='lm-failure'><h3>Stage {e(stage)} stopped</h3>"
            f"<p><strong>{e(name)}</strong>: {e(message)}</p><p><strong>What to do:</strong> fix the file, line or "
            f"setting named above and re-run this stage.{where}</p></div>")


def _num(v: int | None) -> str:
    return "" if v is None else f"{v:,}"


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
