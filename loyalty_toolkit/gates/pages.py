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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loyalty_toolkit.mask import PII_KINDS, mask_value

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
        banner = (f"<p class='banner failed'><strong>Gate failed:</strong> {len(critical)} critical expectation(s) "
                  f"failed; the stage stopped and committed nothing.</p>")
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
            f"<td class='num'>{pct}</td><td>{_evidence(o, show_pii)}</td></tr>")


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
        parts.append("<ul class='examples'>" + "".join(f"<li><code>{e(_example_text(o.kwargs, v))}</code></li>"
                                                     for v in examples) + "</ul>")
    if o.observed is not None:
        observed = mask_observed(o.column, o.observed, show_pii=show_pii)
        parts.append(f"observed: <code>{e(_text(observed))}</code>")
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


def _num(v: int | None) -> str:
    return "" if v is None else f"{v:,}"


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
