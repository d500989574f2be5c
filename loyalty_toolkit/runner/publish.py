"""The run record and the database published together: what a run does to its run dir around its
stages, so that after a kill at any point the record never contradicts the database.

A stage's commit point is its ``_stages`` row (``stages/context.py`` writes the stage record into
``stages/NN_stage.json.pending`` first, commits, then switches in ``output/`` and the record). The
run's commit point is ``summary.json``, rewritten after every stage (atomically: a temporary file
renamed over it). Before a run touches anything it writes the summary with the stages it is about
to run as ``running``, so no kill afterwards leaves a summary claiming them passed; a run holding
the run dir's lock (``runner/lock.py``) that finds ``running`` knows that run died. At its start a
run removes what a killed run left (pending tables, spool folders, pending outputs and records),
rolls back a commit the record does not show as passed, and says, one line each, what it removed.
See docs/reliability-runs.md.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.runner import record
from loyalty_toolkit.stages.context import PENDING_SUFFIX
from loyalty_toolkit.store import StagingStore
from loyalty_toolkit.store.staging import PENDING_PREFIX
from loyalty_toolkit.store.spool import drop_leftover_spools

RUNNING = "running"          # the run (or stage) is under way, or its process died: see lock.live_holder
INTERRUPTED = "interrupted"  # a stage a dead run left ``running``, as the next run records it
PENDING_OUTPUTS = ".pending"  # RUN_DIR/.pending/<stage>/<platform>/: import files before the commit


def previous_entries(summary: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The stage entries of the summary a run finds; a ``running`` one is a dead run's (the
    caller holds the lock) and becomes ``interrupted``."""
    out = {}
    for s in (summary or {}).get("stages", []):
        out[s["name"]] = {**s, "status": INTERRUPTED} if s["status"] == RUNNING else s
    return out


def _output_files(run_dir: Path, stage: str) -> list[Path]:
    """The files under ``output/`` that the stage's record (published or pending) says it wrote."""
    rels: set[str] = set()
    base = run_dir / "stages" / f"{notebook_name(stage)}.json"
    for path in (base, base.with_name(base.name + PENDING_SUFFIX)):
        rels |= {r for r in ((record.read_json(path) or {}).get("outputs") or {}) if r.startswith("output/")}
    return [run_dir / r for r in sorted(rels) if (run_dir / r).is_file()]


def clean_leftovers(run_dir: Path, pipeline: list[str], previous: dict[str, dict[str, Any]]) -> list[str]:
    """Remove what a killed run left and roll back what its record does not vouch for; mark in
    ``previous`` (in place) a stage the record calls passed but the database never committed.
    Returns one line per item."""
    lines: list[str] = []
    db = run_dir / "staging.db"
    if db.is_file():
        with StagingStore(db) as store:
            for table, rows in store.drop_pending_tables():
                lines.append(f"removed pending table {table} ({rows:,} rows) left by an interrupted run")
            done = store.completed_stages()
            orphans = [s for s in pipeline if s in done and (previous.get(s) or {}).get("status") != "passed"]
            for s in orphans:
                for f in _output_files(run_dir, s):
                    f.unlink()
                (run_dir / "stages" / f"{notebook_name(s)}.json").unlink(missing_ok=True)
                lines.append(f"rolled back stage {notebook_name(s)}: committed to the database by an interrupted "
                             "run that never recorded it as passed")
            store.invalidate_from(orphans)
            for s in pipeline:
                entry = previous.get(s)
                if entry is not None and entry["status"] == "passed" and s not in done:
                    previous[s] = {**entry, "status": INTERRUPTED}
                    lines.append(f"stage {notebook_name(s)}: the record says passed but the database holds no commit "
                                 "of it; treated as interrupted")
    for folder, files in drop_leftover_spools(db):
        lines.append(f"removed spool folder {folder.relative_to(run_dir)} ({files} files) left by an interrupted run")
    pending = run_dir / PENDING_OUTPUTS
    for folder in sorted(p for p in pending.iterdir() if p.is_dir()) if pending.is_dir() else []:
        files = sum(1 for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
        lines.append(f"removed pending import files {folder.relative_to(run_dir)} ({files} files) "
                     "left by an interrupted run")
    for staged in sorted((run_dir / "stages").glob(f"*.json{PENDING_SUFFIX}")):
        staged.unlink()
        lines.append(f"removed unpublished stage record {staged.relative_to(run_dir)} left by an interrupted run")
    return lines


def disagreements(run_dir: Path, stages: list[dict[str, Any]]) -> list[str]:
    """Where the database and the record of a run no process is writing disagree, one line each
    (an interrupted run leaves at most its last stage so; the next run settles it)."""
    db = run_dir / "staging.db"
    if not db.is_file():
        return []
    with StagingStore(db) as store:
        done = store.completed_stages()
        pending = [t for t in store.db.table_names() if t.startswith(PENDING_PREFIX)]
    lines = []
    for s in stages:
        stem = notebook_name(s["name"])
        if s["status"] == "passed" and s["name"] not in done:
            lines.append(f"warning: {stem} is recorded as passed but the database holds no commit of it; "
                         "the next run treats it as interrupted")
        elif s["status"] not in ("passed", "not_applicable") and s["name"] in done:
            lines.append(f"note: {stem} committed its tables to the database but its run was interrupted before "
                         "recording it; the next run rolls that commit back")
    if pending:
        lines.append(f"note: {len(pending)} pending table(s) of an interrupted run are in the database; "
                     "the next run removes them")
    return lines


def retire(run_dir: Path, stages: list[str]) -> None:
    """Before ``stages`` are re-run (or go stale): their import files leave ``output/``, their
    records go, then their ``_stages`` rows (the summary already says they are not passed)."""
    for s in stages:
        for f in _output_files(run_dir, s):
            f.unlink()
        (run_dir / "stages" / f"{notebook_name(s)}.json").unlink(missing_ok=True)
    with StagingStore.for_run(run_dir) as store:
        store.invalidate_from(stages)


@dataclass
class Progress:
    """The summary as the run goes: ``start`` holds every stage's entry before the first one
    runs (``running`` for those this run executes), ``entries`` the ones the stage loop has
    settled. :meth:`save` writes it with the run ``running``."""

    run_dir: Path
    run_id: str
    pipeline: list[str]
    start: dict[str, dict[str, Any]]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    def stages(self) -> list[dict[str, Any]]:
        return [self.entries.get(s) or self.start[s] for s in self.pipeline]

    def save(self) -> None:
        summary = record.build_summary(self.run_id, self.stages(), None, None, self.not_applicable)
        summary["status"] = RUNNING
        record.write_json(self.run_dir / "summary.json", summary)
        manifest = record.read_json(self.run_dir / "manifest.json")
        if manifest is not None:  # the page a reviewer opens must not say passed meanwhile either
            record.write_index(self.run_dir, summary, manifest)

    def fail(self, line: str) -> str:
        """Write the summary of a run stopped by ``line`` (an operating error): the stage under way
        failed, the rest skipped. Returns where the record is, or why it could not be written."""
        stages, stopped = [], False
        for entry in self.stages():
            if entry["status"] == RUNNING:
                entry = {**entry, "status": "skipped" if stopped else "failed"}
                stopped = True
            stages.append(entry)
        summary = record.build_summary(self.run_id, stages, line, None, self.not_applicable)
        path = self.run_dir / "summary.json"
        try:
            record.write_json(path, summary)
        except OSError as exc:
            return f"the run record could not be written ({exc.strerror or exc}: {exc.filename or path})"
        manifest = record.read_json(self.run_dir / "manifest.json")
        try:
            if manifest is not None:
                record.write_index(self.run_dir, summary, manifest)
        except OSError as exc:
            return f"run record: {path} (index.html not rewritten: {exc.strerror or exc})"
        return f"run record: {path}"
