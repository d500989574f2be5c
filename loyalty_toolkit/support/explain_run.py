"""``loyalty-migrate explain RUN_DIR MEMBER``: find the member in the run's staging database and
tell their story (the one library call behind the command).

Reads ``RUN_DIR/manifest.json`` for the cutover and the members' default phone region (a national
phone in the query is read as stage 01 read the export), then ``store.lookup`` for the rows, and
``stages.explain`` for the text. A query that names no member, or several (a shared email or
phone), is a usage error (exit 2) with one line: the legacy ids to choose from, never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.store.lookup import StagingReader, find_members, member_rows
from loyalty_toolkit.support.explain import build_story, mask_query, render_story

MAX_LISTED = 20  # an ambiguous query lists at most this many members on its one line


def run_settings(run_dir: Path) -> tuple[str, str]:
    """(cutover, default region) of the run, from its manifest's resolved config."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise UsageError("not a run dir: no manifest.json (give RUN_DIR = <output_dir>/<run_id>)", file=path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))["config"]
        return str(config["migration"]["cutover"]), str(config["sources"]["members"].get("default_region") or "FR")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"manifest without the run's config ({type(exc).__name__}: {exc})", file=path) from None


def explain_member(run_dir: Path, query: str, *, show_pii: bool = False) -> str:
    """The member's story as text; UsageError (exit 2) when ``query`` names no member or several."""
    run_dir = Path(run_dir)
    cutover, region = run_settings(run_dir)
    with StagingReader.for_run(run_dir) as reader:
        matches = find_members(reader, query, region=region)
        shown = mask_query(query.strip(), [k for m in matches for k in m.matched_by], show_pii=show_pii)
        if not matches:
            raise UsageError(f"no member matches {shown!r} (legacy id, email, phone, card number or target id)",
                             file=reader.path)
        if len(matches) > 1:
            listed = ", ".join(f"{m.legacy_id} ({' and '.join(m.matched_by)})" for m in matches[:MAX_LISTED])
            more = f" and {len(matches) - MAX_LISTED} more" if len(matches) > MAX_LISTED else ""
            raise UsageError(f"{len(matches)} members match {shown!r}: {listed}{more}; "
                             "give one of these legacy ids, or a card number or target id")
        match = matches[0]
        rows = member_rows(reader, match.legacy_id)
    story = build_story(match.legacy_id, rows, query=query.strip(), matched_by=match.matched_by, cutover=cutover)
    return render_story(story, show_pii=show_pii)

