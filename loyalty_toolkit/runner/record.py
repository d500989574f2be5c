"""The run record: ``manifest.json``, ``summary.json`` and ``index.html`` of a run dir.

These are what reviewers read without Jupyter and what support replays from months later. The
summary has exactly the fields DESIGN.md lists; stage figures come from the JSON each stage
notebook leaves in ``RUN_DIR/stages/``.
"""

from __future__ import annotations

import html
import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from loyalty_toolkit import __version__
from loyalty_toolkit.config import Config
from loyalty_toolkit.gates import pages
from loyalty_toolkit.model import expectations_dir, notebook_name, notebooks_dir
from loyalty_toolkit.runner.environment import environment_record
from loyalty_toolkit.stages.context import file_sha256

KEY_PACKAGES = ("pandas", "numpy", "great-expectations", "papermill", "nbconvert", "sqlite-utils", "phonenumbers",
                "pydantic", "ipykernel")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "loyalty-migrate": __version__}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` whole or not at all: into a temporary file renamed over ``path``, so a kill
    or a full disk never leaves half a summary."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write_text(tmp, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # the file meant, not its temporary
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """``path.write_text``, whose OSError always names the file (a write or close that fails on a
    full disk carries no file name of its own)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_manifest(run_dir: Path, *, run_id: str, config: Config, started_at: str, ended_at: str | None,
                   pipeline: list[str], parameters: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to replay the run: config as resolved, inputs, code and versions."""
    previous = read_json(run_dir / "manifest.json", {}) or {}
    inputs = read_json(run_dir / "inputs" / "inputs.json", {}) or {}
    manifest = {
        "run_id": run_id,
        "config_path": str(config.path),
        "config": config.resolved(),
        "config_sha256": file_sha256(config.path),
        "inputs": {name: {"path": info["source_path"], "frozen_path": info["frozen_path"], "size": info["size"],
                          "rows": info["rows_kept"], "rows_in_source": info["rows_read"], "sha256": info["sha256"],
                          "source_sha256": info["source_sha256"], "encoding": info["encoding"],
                          "delimiter": info["delimiter"]} for name, info in sorted(inputs.items())},
        "pipeline": pipeline,
        "parameters": parameters,
        "notebooks": {p.name: file_sha256(p) for p in sorted(notebooks_dir().glob("*.ipynb"))},
        "suites": {p.name: file_sha256(p) for p in sorted(expectations_dir().glob("*.json"))},
        "versions": package_versions(),
        "environment": environment_record(KEY_PACKAGES),  # the lock's sha256, every locked package's version
        "command": sys.argv[:1] and [Path(sys.argv[0]).name, *sys.argv[1:]],
        "started_at": previous.get("started_at", started_at),
        "ended_at": ended_at,
    }
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def stage_record(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """The figures a stage notebook left, or None if it never got that far."""
    return read_json(run_dir / "stages" / f"{notebook_name(stage)}.json")


def build_summary(run_id: str, stages: list[dict[str, Any]], failure: str | None,
                  stage_totals: dict[str, dict[str, Any]] | None = None,
                  not_applicable: dict[str, str] | None = None) -> dict[str, Any]:
    """``summary.json`` with exactly the fields DESIGN.md lists; totals add the figures up and
    carry each stage's own totals (coverage per input, duplicate groups ...) under its name, and
    why each ``not_applicable`` stage does not apply. A run passes when every stage that applies
    passed, fails when a stage failed, and is ``partial`` when, without a failure, some stage was
    not run (``run --stages`` on a new run id, stages gone stale, an interrupted one)."""
    status = ("failed" if failure or any(s["status"] == "failed" for s in stages)
              else "passed" if all(s["status"] in ("passed", "not_applicable") for s in stages)
              else "partial")
    totals: dict[str, Any] = {
        "stages_passed": sum(s["status"] == "passed" for s in stages),
        "stages_failed": sum(s["status"] == "failed" for s in stages),
        "stages_skipped": sum(s["status"] == "skipped" for s in stages),
        "stages_not_applicable": sum(s["status"] == "not_applicable" for s in stages),
        "rows_rejected": sum(s["rows_rejected"] or 0 for s in stages),
        "seconds": round(sum(s["seconds"] or 0 for s in stages), 3),
    }
    if failure:
        totals["failure"] = failure
    if not_applicable:
        totals["not_applicable"] = dict(not_applicable)
    for name, extra in (stage_totals or {}).items():
        totals[name] = extra
    return {"run_id": run_id, "status": status, "stages": stages, "totals": totals}


def stage_entry(name: str, status: str, seconds: float | None, record: dict[str, Any] | None) -> dict[str, Any]:
    r = record or {}
    return {"name": name, "status": status, "rows_in": r.get("rows_in"), "rows_out": r.get("rows_out"),
            "rows_rejected": r.get("rows_rejected"), "seconds": round(seconds, 3) if seconds is not None else None,
            "gates": r.get("gates", [])}


def failure_html(stem: str, rec: dict[str, Any] | None, execution: Any, prefix: str = "") -> str | None:
    """The plain box a reader sees where a stage stopped: its failed gate (observed vs required,
    examples, what to do) from the stage record, or the error's one-line cause; None when the
    stage passed. ``prefix`` leads from the page to the run dir (``../`` from ``notebooks/``)."""
    report = (rec or {}).get("gate_report") or {}
    if rec and rec.get("status") == "failed" and report.get("outcomes"):
        return pages.failure_box(stem, report["outcomes"], gate_page=f"{prefix}data_docs/{stem}/index.html")
    if execution is not None and not execution.ok:
        return pages.error_box(stem, execution.error_name or "error", execution.error_message,
                               log=f"notebooks/{stem}.log")
    return None


def _count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _link(run_dir: Path, rel: str, text: str | None = None) -> str:
    if not (run_dir / rel).exists():
        return html.escape(text or rel) + " <em>(missing)</em>"
    return f'<a href="{html.escape(rel)}">{html.escape(text or rel)}</a>'


# The headline figures index.html shows, from stage 05's totals: (key, label).
HEADLINE = (("members_read", "members read"), ("members_migrated", "members migrated (mapped to a target ID)"),
            ("members_rejected", "members rejected, with a reason"),
            ("members_not_mapped", "members accepted but not mapped (review list)"),
            ("points_owed_before", "points owed before"),
            ("points_transferred", "points transferred (unit transfers)"),
            ("points_residue", "points left as rounding residue"),
            ("points_rejected", "points rejected (members not mapped)"),
            ("points_held_for_review", "points held for review (negative balances)"),
            ("points_opening_unmatched", "points of opening rows matched to no member"),
            ("points_owed_after", "points owed after"),
            ("points_difference", "difference (must be 0)"),
            ("points_expired", "points expired at the cutover (no longer owed)"),
            ("rewards_active", "rewards active at the cutover"),
            ("rewards_burned", "rewards burned by the cutover"),
            ("stages_not_applicable", "stages not applicable to this program (not run)"))


def _headline(run_dir: Path, summary: dict[str, Any]) -> str:
    """The sign-off figures, shown only when stage 05 passed (its figures are then proven to agree)."""
    report = next((s for s in summary["stages"] if s["name"] == "report"), None)
    figures = (summary["totals"].get("report") or {}).get("headline")
    if report is None or report["status"] != "passed" or not figures:
        return ("<p><em>No headline figures: the sign-off report (stage 05) did not pass in this run.</em></p>"
                if report is not None else "")
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(_figure(figures.get(key)))}</td>"
                   f"<td class='unit'>{'points' if key.startswith('points_') else ''}</td></tr>"
                   for key, label in HEADLINE if key in figures)
    link = _link(run_dir, "notebooks/05_report.html", "the sign-off report")
    return (f"<h2>Headline</h2>\n<table class='headline'>{rows}</table>\n"
            f"{_rejects(run_dir, (summary['totals'].get('report') or {}).get('rejects_by_reason') or [])}"
            f"<p>Read {link} before signing.</p>")


def _rejects(run_dir: Path, rows: list[dict[str, Any]]) -> str:
    """Rejected rows per stage and reason code, the points they hold back, and the file listing them."""
    if not rows:
        return "<h3>Rejects by reason</h3><p>No row was rejected.</p>"
    e = html.escape
    body = "".join(
        f"<tr><td>{e(str(r['stage']))}</td><td><code>{e(str(r['reason_code']))}</code></td>"
        f"<td class='num'>{_count(r['rows'])}</td>"
        f"<td class='num'>{e(_figure(r['points'])) + ' points' if r.get('points') is not None else '&ndash;'}</td>"
        f"<td>{_link(run_dir, str(r['file']))}</td></tr>" for r in rows)
    return ("<h3>Rejects by reason</h3><table class='rejects'><tr><th>stage</th><th>reason</th><th>rows</th>"
            f"<th>points held back</th><th>rows listed in</th></tr>{body}</table>"
            "<p class='muted'>&ndash;: the row was refused before it owed any point.</p>")


def _figure(v: Any) -> str:
    """Thousands separators, exact digits: ``447412.3`` -> ``447,412.3``."""
    whole, dot, frac = str(v).partition(".")
    digits = whole.lstrip("-")
    if not digits.isdigit():
        return str(v)
    return ("-" if whole.startswith("-") else "") + f"{int(digits):,}" + dot + frac


def _pii_note(manifest: dict[str, Any]) -> str:
    """Whether the run's reports mask personal data: ``--show-pii`` or ``run.show_pii`` turn it off."""
    shown = (manifest.get("parameters") or {}).get("show_pii") or \
        ((manifest.get("config") or {}).get("run") or {}).get("show_pii")
    if shown:
        return ("<strong>Personal data (emails, phones, names) is shown unmasked in these reports</strong> "
                "(run with show_pii); do not share them.")
    return ("Personal data (emails, phones, names, cards, birth dates) is masked in the reports and the "
            "reject files; the staging database, the import files and the restricted <code>rejects/pii/</code> "
            "files keep it.")


def write_index(run_dir: Path, summary: dict[str, Any], manifest: dict[str, Any]) -> Path:
    """One offline page linking the notebooks, Data Docs, rejects and outputs, with headline figures."""
    e = html.escape
    rows = []
    reasons = summary["totals"].get("not_applicable") or {}
    for s in summary["stages"]:
        stem = notebook_name(s["name"])
        if s["status"] == "not_applicable":
            rows.append(f"<tr class='not_applicable'><td>{e(stem)}</td><td>not applicable</td>"
                        f"<td colspan='6'>{e(reasons.get(s['name'], 'the program does not need this stage'))}; "
                        "not run</td></tr>")
            continue
        critical = sum(1 for g in s["gates"] if not g["success"] and g["critical"])
        warned = sum(1 for g in s["gates"] if not g["success"] and not g["critical"])
        nb = _link(run_dir, f"notebooks/{stem}.html", "report") if s["status"] != "skipped" else ""
        docs = _link(run_dir, f"data_docs/{stem}/index.html", "Data Docs") if s["status"] != "skipped" else ""
        rows.append(f"<tr class='{e(s['status'])}'><td>{e(stem)}</td><td>{e(s['status'])}</td>"
                    f"<td class='num'>{_count(s['rows_in'])}</td>"
                    f"<td class='num'>{_count(s['rows_out'])}</td>"
                    f"<td class='num'>{_count(s['rows_rejected'])}</td>"
                    f"<td>{len(s['gates'])}: {critical} critical failed, {warned} warnings</td>"
                    f"<td class='num'>{s['seconds'] or ''}</td>"
                    f"<td>{nb} {docs}</td></tr>")
    files = []
    for folder in ("rejects", "output"):
        for p in sorted((run_dir / folder).rglob("*")) if (run_dir / folder).exists() else []:
            if p.is_file():
                rel = p.relative_to(run_dir).as_posix()
                restricted = (" <strong class='restricted'>restricted: unmasked personal data, not for "
                              "reviewers</strong>" if rel.startswith("rejects/pii/") else "")
                files.append(f"<li>{_link(run_dir, rel)} ({p.stat().st_size:,} bytes){restricted}</li>")
    inputs = "".join(f"<tr><td>{e(n)}</td><td class='num'>{_count(i['rows'])}</td>"
                     f"<td class='num'>{_count(i['rows_in_source'])}</td>"
                     f"<td><code>{e(i['sha256'])}</code></td></tr>" for n, i in manifest["inputs"].items())
    failure = summary["totals"].get("failure")
    boxes = "".join(failure_html(notebook_name(s["name"]), stage_record(run_dir, s["name"]), None) or ""
                    for s in summary["stages"] if s["status"] == "failed")
    not_run = [notebook_name(s["name"]) for s in summary["stages"] if s["status"] not in ("passed", "not_applicable")]
    banner = (f"<p class='failed'><strong>Run failed:</strong> {e(failure)}</p>{boxes}" if failure
              else "<p class='partial'><strong>Run under way, or interrupted:</strong> stages marked running "
                   "have not finished; <code>loyalty-migrate status</code> says which.</p>"
              if summary["status"] == "running"
              else f"<p class='partial'><strong>Partial run:</strong> not run in this run dir: "
                   f"{e(', '.join(not_run))} (run them with <code>--stages</code>).</p>" if summary["status"] == "partial"
              else "<p class='passed'><strong>All stages passed.</strong></p>" if not reasons
              else "<p class='passed'><strong>Every stage that applies passed.</strong> Not applicable to this "
                   f"program: {e(', '.join(notebook_name(n) for n in reasons))}.</p>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Run {e(summary['run_id'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
tr.failed td, p.failed {{ background: #fde2e1; }} tr.skipped td {{ color: #888; }}
tr.not_applicable td {{ color: #555; background: #f2f2f2; font-style: italic; }} p.passed {{ background: #e3f6e3; }}
p.partial {{ background: #fff4d6; }} p.failed, p.passed, p.partial {{ padding: 8px; }}
table.headline td, td.num {{ text-align: right; white-space: nowrap; }}
.muted {{ color: #666; }} td {{ overflow-wrap: anywhere; }} table.headline td.unit {{ text-align: left; color: #555; }}
</style></head><body>
<h1>Migration run {e(summary['run_id'])}</h1>
<p>Migration <strong>{e(manifest['config']['migration']['name'])}</strong>, cutover
{e(str(manifest['config']['migration']['cutover']))}. Status: <strong>{e(summary['status'])}</strong>.</p>
{banner}
{_headline(run_dir, summary)}
<p>{_pii_note(manifest)}</p>
<h2>Stages</h2>
<table><tr><th>stage</th><th>status</th><th>rows in</th><th>rows out</th><th>rejected</th><th>expectations</th>
<th>seconds</th><th>read</th></tr>
{''.join(rows)}</table>
<h2>Inputs (frozen)</h2>
<table><tr><th>input</th><th>rows used</th><th>rows in source</th><th>sha256</th></tr>{inputs}</table>
<h2>Files</h2><ul>{''.join(files) or '<li>none</li>'}</ul>
<h2>Record</h2><ul><li>{_link(run_dir, 'manifest.json')}</li><li>{_link(run_dir, 'summary.json')}</li>
<li>{_link(run_dir, 'staging.db')} (SQLite)</li></ul>
</body></html>
"""
    out = run_dir / "index.html"
    write_text(out, page)
    return out
