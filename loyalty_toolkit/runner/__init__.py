"""Run the staged migration: execute stage notebooks in order, gate by gate, and keep the record.

``run`` executes ``notebooks/NN_<stage>.ipynb`` with papermill into ``RUN_DIR/notebooks``,
renders each to HTML, and writes ``manifest.json``, ``summary.json`` and ``index.html``. A stage
runs only when every stage before it passed in the same run dir; the first failure stops the run
and the later stages are ``skipped``. A stage the program does not need (``Config.stage_plan``: no
ledger nor opening balances, no reward files) is ``not_applicable``: recorded, never executed, and
no obstacle to the stages after it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loyalty_toolkit.checkpoints import checkpoint
from loyalty_toolkit.config import load_config
from loyalty_toolkit.errors import InputError, UsageError, operating_error
from loyalty_toolkit.model import notebook_name, notebooks_dir
from loyalty_toolkit.runner import publish, record
from loyalty_toolkit.runner.lock import live_holder, refuse_if_held, run_lock
from loyalty_toolkit.runner.operating import check_folders, check_run_id, kernel_operating_error, with_note
from loyalty_toolkit.runner.publish import Progress
from loyalty_toolkit.runner.preflight import preflight
from loyalty_toolkit.runner.execute import WarmKernel, execute_notebook
from loyalty_toolkit.runner.progress import StageProgress
from loyalty_toolkit.runner.render import notebook_to_html

# The stages this release runs, in order (the six DESIGN.md lists).
PIPELINE: tuple[str, ...] = ("subset", "members", "mapping", "transfers", "rewards", "report", "verify")


__all__ = ["PIPELINE", "RunResult", "parse_stages", "preflight", "run", "status"]

NOT_APPLICABLE = "not_applicable"
# Statuses that let a later stage run: the stage passed, or the program does not need it.
DONE = frozenset({"passed", NOT_APPLICABLE})

# A stage that stops on one of these was given bad input or config, not a failed gate: exit 2.
BAD_INPUT_ERRORS = frozenset({"InputError", "ConfigError", "UsageError", "OperatingError"})


@dataclass
class RunResult:
    run_dir: Path
    status: str           # "passed" | "failed"
    exit_code: int        # 0 passed, 1 a gate or stage failed, 2 a stage met bad input
    message: str          # one line: where it stopped and why, or the index path

    @property
    def index(self) -> Path:
        return self.run_dir / "index.html"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_stages(text: str | None) -> list[str] | None:
    """``"members,mapping"`` -> pipeline-ordered list; unknown names are a usage error."""
    if not text:
        return None
    names = [s.strip() for s in text.replace(" ", ",").split(",") if s.strip()]
    unknown = [n for n in names if n not in PIPELINE]
    if unknown:
        raise UsageError(f"unknown stage(s) {', '.join(unknown)}; this release runs: {', '.join(PIPELINE)}")
    return [s for s in PIPELINE if s in names]


def _plan(requested: list[str], previous: dict[str, str],
          not_applicable: frozenset[str] | set[str] = frozenset()) -> tuple[list[str], set[str]]:
    """Check that every stage before a requested one passed and is still valid; return the stages
    to run and the later ones whose results go stale (they become ``skipped``). A stage the
    program does not need is neither required nor run."""
    stale: set[str] = set()
    rerun_seen = False
    for s in PIPELINE:
        if s in requested:
            rerun_seen = True
        elif rerun_seen and previous.get(s) == "passed":
            stale.add(s)
    for s in requested:
        for earlier in PIPELINE[:PIPELINE.index(s)]:
            if earlier in requested or earlier in not_applicable:
                continue
            if previous.get(earlier) != "passed" or earlier in stale:
                raise UsageError(f"stage {s} needs stage {earlier} to have passed in this run dir "
                                 f"(it is {previous.get(earlier, 'not run')}); add it to --stages")
    return requested, stale


def run(config_path: str | Path, *, stages: str | list[str] | None = None, run_id: str | None = None,
        show_pii: bool = False, progress: StageProgress | None = None) -> RunResult:
    """Run the pipeline (or ``stages`` of an existing run dir) for the config at ``config_path``,
    holding the run dir's lock throughout (``runner/lock.py``: one writer per run); ``progress``
    hears each stage start and end (``runner.progress``: the terminal's lines)."""
    lines = progress or StageProgress()
    config = load_config(config_path)
    requested = parse_stages(stages) if isinstance(stages, str) or stages is None else parse_stages(",".join(stages))
    run_id = new_run_id() if run_id is None else check_run_id(run_id)
    run_dir = config.output_root() / run_id
    refuse_if_held(run_dir)  # at once, not after the preflight has counted every input's rows
    check = preflight(config_path)
    if check.problems:
        raise InputError(check.problems[0], stage="validate")
    check_folders(config.output_root(), run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise with_note(operating_error(exc), "no run record written: the run dir could not be created") from None
    try:
        with run_lock(run_dir, say):
            return _run_holding_lock(config, requested, run_id, run_dir, show_pii, lines)
    except OSError as exc:  # the lock's own files: what happens under the lock is named inside
        raise with_note(operating_error(exc), "no run record written: the run dir's lock could not be taken") from None


def _run_holding_lock(config, requested: list[str] | None, run_id: str, run_dir: Path, show_pii: bool,
                      lines: StageProgress) -> RunResult:
    """:func:`_run_locked`, with an OSError turned into one line naming its path, and the run
    record written as far as the run got (or the reason it could not be)."""
    progress: Progress | None = None

    def started(p: Progress) -> None:
        nonlocal progress
        progress = p

    try:
        return _run_locked(config, requested, run_id, run_dir, show_pii, started, lines)
    except OSError as exc:
        error = operating_error(exc)
        where = (progress.fail(error.one_line()) if progress is not None
                 else "no run record written: the run stopped before its first record")
        raise with_note(error, where) from None


def say(line: str) -> None:
    """A line for the operator, on stderr (what a run cleaned up or took over)."""
    print(f"note: {line}", file=sys.stderr, flush=True)


def _run_locked(config, requested: list[str] | None, run_id: str, run_dir: Path, show_pii: bool,
                started, lines: StageProgress) -> RunResult:
    previous_summary = record.read_json(run_dir / "summary.json")
    previous = publish.previous_entries(previous_summary)
    for line in publish.clean_leftovers(run_dir, list(PIPELINE), previous):
        say(line)
    if requested is None:
        if previous_summary is not None:
            raise UsageError(f"run dir {run_dir} already holds a run; re-run stages with --stages, "
                             "or start a new run without --run-id")
        requested = list(PIPELINE)
    plan = config.stage_plan()
    not_applicable = {s for s in PIPELINE if plan.get(s)}
    to_run, stale = _plan([s for s in requested if s not in not_applicable],
                          {k: v["status"] for k, v in previous.items()}, not_applicable)
    started_at = record.now_iso()
    params = {"show_pii": bool(show_pii)}
    record.write_manifest(run_dir, run_id=run_id, config=config, started_at=started_at, ended_at=None,
                          pipeline=list(PIPELINE), parameters=params)

    def first_entry(s: str) -> dict:
        """A stage's entry before the first one runs: ``running`` for those this run executes."""
        if s in not_applicable or s in to_run or s in stale or s not in previous:
            status = (NOT_APPLICABLE if s in not_applicable else publish.RUNNING if s in to_run else "skipped")
            return record.stage_entry(s, status, None, None)
        return previous[s]

    progress = publish.Progress(run_dir, run_id, list(PIPELINE), {s: first_entry(s) for s in PIPELINE},
                                not_applicable={s: plan[s] for s in PIPELINE if s in not_applicable})
    started(progress)
    progress.save()  # from here on, no kill leaves a summary saying these stages passed
    publish.retire(run_dir, [s for s in PIPELINE if s in to_run or s in stale])

    entries: dict[str, dict] = progress.entries
    failure: str | None = None
    bad_input = False
    order = [s for s in PIPELINE if s in to_run]
    warm: dict[str, WarmKernel] = {}
    try:
        for stage in PIPELINE:
            if stage in not_applicable:
                # never executed: a record an earlier config left must not pass for this one's
                (run_dir / "stages" / f"{notebook_name(stage)}.json").unlink(missing_ok=True)
                entries[stage] = record.stage_entry(stage, NOT_APPLICABLE, None, None)
                lines.finished(stage, entries[stage], None, plan[stage])
                continue
            if stage not in to_run:
                if stage in stale or stage not in previous:
                    entries[stage] = record.stage_entry(stage, "skipped", None, None)
                else:
                    entries[stage] = previous[stage]
                lines.finished(stage, entries[stage], None, "not run now")
                continue
            if failure:
                entries[stage] = record.stage_entry(stage, "skipped", None, None)
                lines.finished(stage, entries[stage], None, "an earlier stage failed")
                continue
            # this stage's kernel (if not started ahead) and the next one's, warming while this runs
            for ahead in order[order.index(stage):order.index(stage) + 2]:
                if ahead not in warm:
                    warm[ahead] = WarmKernel(run_dir, run_dir / "notebooks" / f"{notebook_name(ahead)}.log")
            lines.started(stage)
            ok, seconds, failure, error_name = _run_stage(stage, run_dir, config.path, config.run.cell_timeout_seconds,
                                                          show_pii, warm.pop(stage), lines.bar(stage))
            bad_input = error_name in BAD_INPUT_ERRORS
            entries[stage] = record.stage_entry(stage, "passed" if ok else "failed", seconds,
                                                record.stage_record(run_dir, stage))
            checkpoint(stage, "done")
            progress.save()  # the stage's outcome is the record's before the next stage starts
            lines.finished(stage, entries[stage], record.stage_record(run_dir, stage))
    finally:
        for kernel in warm.values():  # started for a stage that will not run now
            kernel.close()
    stage_totals = {s: (record.stage_record(run_dir, s) or {}).get("totals", {}) for s in PIPELINE
                    if entries[s]["status"] == "passed"}
    summary = record.build_summary(run_id, [entries[s] for s in PIPELINE], failure, stage_totals,
                                   {s: plan[s] for s in PIPELINE if s in not_applicable})
    record.write_json(run_dir / "summary.json", summary)
    manifest = record.write_manifest(run_dir, run_id=run_id, config=config, started_at=started_at,
                                     ended_at=record.now_iso(), pipeline=list(PIPELINE), parameters=params)
    index = record.write_index(run_dir, summary, manifest)
    if failure:
        return RunResult(run_dir, "failed", 2 if bad_input else 1, failure)
    if summary["status"] == "partial":
        not_run = [notebook_name(s["name"]) for s in summary["stages"] if s["status"] not in DONE]
        return RunResult(run_dir, "partial", 0, f"partial run: not run in this run dir: {', '.join(not_run)} "
                                                "(run them with --stages)")
    return RunResult(run_dir, "passed", 0, str(index))


def _run_stage(stage: str, run_dir: Path, config_path: Path, timeout: int, show_pii: bool,
               kernel: WarmKernel | None = None, bar: dict | bool = False) -> tuple[bool, float, str | None, str]:
    """Execute and render one stage; return (passed, seconds, one-line failure or None, error name)."""
    stem = notebook_name(stage)
    stage_json = run_dir / "stages" / f"{stem}.json"
    stage_json.unlink(missing_ok=True)  # a stale record must not pass for this attempt's
    out_nb = run_dir / "notebooks" / f"{stem}.ipynb"
    t0 = time.monotonic()
    execution = execute_notebook(notebooks_dir() / f"{stem}.ipynb", out_nb,
                                 {"config_path": str(config_path), "run_dir": str(run_dir), "show_pii": show_pii},
                                 cwd=run_dir, timeout_seconds=timeout, kernel=kernel, progress_bar=bar)
    seconds = time.monotonic() - t0
    rec = record.stage_record(run_dir, stage)
    if out_nb.exists():
        notebook_to_html(out_nb, out_nb.with_suffix(".html"), record.failure_html(stem, rec, execution, "../"))
    if execution.ok and rec and rec.get("status") == "passed":
        return True, seconds, None, ""
    name = execution.error_name
    if name == "GateFailed" or (rec and rec.get("status") == "failed"):
        return False, seconds, f"stage {stem}: {execution.error_message or 'gate failed'}", "GateFailed"
    if execution.ok:
        return False, seconds, f"stage {stem}: the notebook finished without recording its gate", ""
    plain = kernel_operating_error(name, execution.error_message)
    if plain is not None:  # the machine refused a write, not a gate: exit 2, the path named
        return False, seconds, f"stage {stem}: {plain}", "OperatingError"
    return False, seconds, f"stage {stem}: {name}: {execution.error_message}", name


def status(run_dir: str | Path) -> str:
    """The stage table of a run dir, as text: what its record says, checked against who holds
    the run dir (a ``running`` run whose process is gone was interrupted) and the database (a
    commit the record does not show, or a record the database does not back, is said)."""
    rd = Path(run_dir)
    summary = record.read_json(rd / "summary.json")
    holder, alive = live_holder(rd)
    if summary is None:
        if holder is not None:
            state = "is running" if alive else "was interrupted"
            return (f"run dir {rd}: the run of {holder.describe()} {state} before writing its record\n"
                    f"index: {rd / 'index.html'}")
        raise UsageError("not a run dir (no summary.json)", file=str(rd))
    run_status = summary["status"]
    stages = [dict(s) for s in summary["stages"]]
    if run_status == publish.RUNNING and not alive:
        run_status = "interrupted" + (f" (the run of {holder.describe()} is gone)" if holder else "")
        first = True
        for s in stages:
            if s["status"] == publish.RUNNING:
                s["status"], first = (publish.INTERRUPTED if first else "not run"), False
    elif run_status == publish.RUNNING and holder is not None:
        run_status = f"running ({holder.describe()})"
    lines = [f"run {summary['run_id']}: {run_status}",
             f"{'stage':<14}{'status':<16}{'rows in':>10}{'rows out':>10}{'rejected':>10}{'gates':>8}{'seconds':>9}"]
    for s in stages:
        fails = sum(not g["success"] for g in s["gates"])
        gates = f"{len(s['gates']) - fails}/{len(s['gates'])}" if s["gates"] else ""
        lines.append(f"{notebook_name(s['name']):<14}{s['status']:<16}{_n(s['rows_in']):>10}{_n(s['rows_out']):>10}"
                     f"{_n(s['rows_rejected']):>10}{gates:>8}{_n(s['seconds']):>9}")
    for name, why in (summary["totals"].get("not_applicable") or {}).items():
        lines.append(f"{notebook_name(name)} not applicable: {why}")
    if summary["totals"].get("failure"):
        lines.append(f"stopped: {summary['totals']['failure']}")
    if not alive:
        lines += publish.disagreements(rd, stages)
    lines.append(f"index: {rd / 'index.html'}")
    return "\n".join(lines)


def _n(v) -> str:
    return "" if v is None else (f"{v:,}" if isinstance(v, int) else str(v))
