"""``repro``: replay one stage of a recorded run into a new folder, outside the archived run, and
say, file by file and table by table, whether it produced the same bytes.

Support answers "why does member X have 120 points?" months after a run, from its record. A replay
proves the record is the whole story (DESIGN.md invariant 7): the same config and inputs, checked
by sha256 before anything runs, give byte-identical import files, rejects and staging tables.
Times, memory and absolute paths are not compared; docs/support.md lists every exclusion.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any

from loyalty_toolkit.config import load_config
from loyalty_toolkit.errors import ReproMismatch, UsageError
from loyalty_toolkit.model import STAGE_NUMBERS, expectations_dir, notebook_name, notebooks_dir
from loyalty_toolkit.runner import record, say
from loyalty_toolkit.runner.environment import version_warnings
from loyalty_toolkit.runner.lock import LOCK_FILE, run_lock
from loyalty_toolkit.runner.execute import execute_notebook
from loyalty_toolkit.runner.render import notebook_to_html
from loyalty_toolkit.stages.context import INPUTS_FILE, file_sha256
from loyalty_toolkit.store import StagingStore

# By default replays live in OUTPUT_DIR/repro/<run_id>/<stage>-<UTC time>/: beside the run they
# replay, never inside it, so the archived run dir stays exactly as it was signed.
REPLAY_FOLDER = "repro"
# Stage-JSON keys that measure the machine, not the migration; "outputs" is compared file by file.
VOLATILE_FIGURES = ("compute_seconds", "peak_rss_mb", "writer_peak_rss_mb", "outputs")
# Columns of the stage ledger (_stages) that say when a stage ran, not what it produced.
LEDGER_EXCLUDED = ("completed_at",)
IDENTICAL, DIFFERENT, MISSING = "identical", "DIFFERENT", "missing"
RUN_DIR_MARK = "<RUN_DIR>"


@dataclass
class Comparison:
    """One compared item: a file (run-dir-relative path), a staging table, the stage's ledger row
    or its figures, and whether the replay matched it."""

    kind: str          # "file" | "table" | "ledger" | "figures"
    name: str
    status: str        # identical | DIFFERENT | missing
    detail: str = ""

    def line(self) -> str:
        text = f"{self.status:<10} {self.kind:<8} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class ReproResult:
    """What a replay checked, ran and found; ``exit_code`` is 0 when everything is identical."""

    run_dir: Path
    stage: str
    replay_dir: Path
    checked: list[str] = field(default_factory=list)       # verified before replaying
    notes: list[str] = field(default_factory=list)         # changed code: reported, not refused
    warnings: list[str] = field(default_factory=list)      # a package installed at another version than the run's
    comparisons: list[Comparison] = field(default_factory=list)
    failure: str | None = None                             # the replayed stage did not pass

    @property
    def identical(self) -> bool:
        return self.failure is None and bool(self.comparisons) and all(c.status == IDENTICAL for c in self.comparisons)

    @property
    def exit_code(self) -> int:
        return 0 if self.identical else 1

    def text(self) -> str:
        lines = [f"replay of stage {notebook_name(self.stage)} of run {self.run_dir.name}",
                 f"replay folder: {self.replay_dir}"]
        lines += [f"checked: {c}" for c in self.checked]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.failure:
            lines.append(f"failed: the replayed stage did not pass: {self.failure}")
        lines += [c.line() for c in self.comparisons]
        differ = sum(c.status != IDENTICAL for c in self.comparisons)
        if self.identical:
            lines.append(f"result: identical ({len(self.comparisons)} files, tables and figures compared)")
        else:
            lines.append(f"result: DIFFERENT ({differ} of {len(self.comparisons)} differ or are missing"
                         f"{'; the stage failed' if self.failure else ''})")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "stage": self.stage, "replay_dir": str(self.replay_dir),
                "identical": self.identical, "checked": self.checked, "notes": self.notes,
                "warnings": self.warnings, "failure": self.failure,
                "comparisons": [asdict(c) for c in self.comparisons]}


# -- the replay --------------------------------------------------------------------------------------

def repro(run_dir: str | Path, stage: str, out: str | Path | None = None) -> ReproResult:
    """Re-execute ``stage`` of the run in ``run_dir`` into ``out`` (by default
    ``OUTPUT_DIR/repro/<run_id>/<stage>-<time>/``, beside the run) and compare what it wrote with
    what the run wrote; the run dir is only read. Raises ReproMismatch (exit 2) where the config,
    an input or an earlier stage's file changed since the run; UsageError where there is nothing
    to replay, or ``out`` is inside the run or not empty. Holds the run dir's lock: a run writing
    it meanwhile would move what is compared."""
    rd = Path(run_dir).resolve()
    if not (rd / "manifest.json").is_file():
        raise UsageError("not a run dir (no readable manifest.json)", file=str(rd))
    if not (rd / LOCK_FILE).is_file():
        # every run creates its lock file before its first write: without one, no run writes here,
        # and creating it would change the archived run, which a replay never does
        return _repro(rd, stage, out)
    with run_lock(rd, say):
        return _repro(rd, stage, out)


def _repro(rd: Path, stage: str, out: str | Path | None) -> ReproResult:
    manifest = record.read_json(rd / "manifest.json")
    if not isinstance(manifest, dict) or "config_path" not in manifest:
        raise UsageError("not a run dir (no readable manifest.json)", file=str(rd))
    pipeline = list(manifest.get("pipeline") or [])
    stage = _stage_name(stage, pipeline)
    earlier = _check_passed(rd, stage, pipeline[:pipeline.index(stage)])
    inputs = record.read_json(rd / INPUTS_FILE, {}) or {}
    result = ReproResult(rd, stage, _replay_dir(rd, stage, out))

    config_path = Path(manifest["config_path"])
    _check_sha(config_path, manifest.get("config_sha256", ""), "the config")
    result.checked.append(f"config {config_path.name} unchanged (sha256)")
    result.checked += _check_inputs(rd, stage, earlier, manifest.get("inputs", {}), inputs)
    seeded_outputs = _check_earlier_outputs(rd, earlier)
    if seeded_outputs:
        result.checked.append(f"{len(seeded_outputs)} import file(s) of earlier stages unchanged (sha256)")
    result.notes += _code_notes(manifest, stage)
    result.warnings += version_warnings(manifest.get("environment"), manifest.get("versions"))

    config = load_config(config_path)
    _seed(rd, result.replay_dir, stage, pipeline, earlier, inputs, seeded_outputs)
    stem = notebook_name(stage)
    out_nb = result.replay_dir / "notebooks" / f"{stem}.ipynb"
    params = {"config_path": str(config_path), "run_dir": str(result.replay_dir),
              "show_pii": bool((manifest.get("parameters") or {}).get("show_pii", False))}
    execution = execute_notebook(notebooks_dir() / f"{stem}.ipynb", out_nb, params, cwd=result.replay_dir,
                                 timeout_seconds=config.run.cell_timeout_seconds)
    if out_nb.exists():
        notebook_to_html(out_nb, out_nb.with_suffix(".html"))
    replayed = record.stage_record(result.replay_dir, stage)
    if not (execution.ok and replayed and replayed.get("status") == "passed"):
        result.failure = (f"{execution.error_name}: {execution.error_message}" if not execution.ok
                          else "the notebook finished without recording a passed gate")

    result.comparisons = compare_stage(rd, result.replay_dir, stage)
    record.write_json(result.replay_dir / "repro.json", result.to_json())
    return result


def _stage_name(stage: str, pipeline: list[str]) -> str:
    """``transfers``, ``03_transfers`` and ``03`` all name stage 03."""
    by_number = {STAGE_NUMBERS.get(s): s for s in pipeline}
    name = stage if stage in pipeline else by_number.get(stage.split("_", 1)[0])
    if name not in pipeline:
        raise UsageError(f"unknown stage {stage!r}; this run has: {', '.join(pipeline) or 'no stages'}")
    return name


def _check_passed(rd: Path, stage: str, earlier: list[str]) -> list[str]:
    """Check that ``stage`` and every earlier stage that applied passed; return those earlier
    stages (a ``not_applicable`` one never ran: nothing of it to check or seed)."""
    summary = record.read_json(rd / "summary.json")
    if not isinstance(summary, dict):
        raise UsageError("not a run dir (no summary.json)", file=str(rd))
    status = {s["name"]: s["status"] for s in summary.get("stages", [])}
    if status.get(stage) == "not_applicable":
        raise UsageError(f"stage {notebook_name(stage)} did not apply to this program (not_applicable): "
                         "there is nothing to replay", file=str(rd))
    earlier = [s for s in earlier if status.get(s) != "not_applicable"]
    for s in [*earlier, stage]:
        if status.get(s) != "passed":
            raise UsageError(f"stage {notebook_name(s)} did not pass in this run ({status.get(s, 'not run')}); "
                             f"there is nothing to replay for {notebook_name(stage)}", file=str(rd))
    if record.stage_record(rd, stage) is None:
        raise UsageError(f"the run has no record of stage {notebook_name(stage)}",
                         file=str(rd / "stages" / f"{notebook_name(stage)}.json"))
    return earlier


def _check_sha(path: Path, recorded: str, what: str) -> None:
    """Refuse, naming the file and both hashes, when ``path`` is gone or its bytes changed."""
    if not path.is_file():
        raise ReproMismatch(f"{what} is gone since the run (sha256 {recorded} recorded); refusing to replay",
                            file=str(path))
    now = file_sha256(path)
    if now != recorded:
        raise ReproMismatch(f"{what} changed since the run: sha256 {recorded} recorded, {now} now; "
                            "refusing to replay", file=str(path))


def _frozen_by(info: dict[str, Any]) -> str:
    """The stage that froze an input: stage 00 for the config's inputs, else the one recorded."""
    return info.get("stage") or "subset"


def _check_inputs(rd: Path, stage: str, earlier: list[str], recorded: dict[str, dict],
                  inputs: dict[str, dict]) -> list[str]:
    """Stage 00 re-reads the config's sources: check those. A later stage reads the frozen copies
    (and a late input it freezes itself from outside the run, such as a real target export)."""
    if not earlier and not recorded:
        raise UsageError("the manifest records no inputs", file=str(rd / "manifest.json"))
    sources = frozen = 0
    for name, info in sorted(recorded.items()):
        by = _frozen_by(inputs.get(name, {}))
        if by in earlier:
            _check_sha(rd / info["frozen_path"], info["sha256"], f"the frozen copy of input {name}")
            frozen += 1
        elif by == stage and not _inside(Path(info["path"]), rd):
            _check_sha(Path(info["path"]), info["source_sha256"], f"input {name}")
            sources += 1
    done = []
    if sources:
        done.append(f"{sources} source input(s) unchanged (sha256 of the files the stage reads again)")
    if frozen:
        done.append(f"{frozen} frozen input(s) in RUN_DIR/inputs unchanged (sha256)")
    return done


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _check_earlier_outputs(rd: Path, earlier: list[str]) -> list[str]:
    """Import files of earlier stages that a later one reads (stage 02 imports stage 01's XML into
    the rehearsal target): each must still match the sha256 its stage recorded."""
    rels = []
    for s in earlier:
        for rel, sha in sorted(((record.stage_record(rd, s) or {}).get("outputs") or {}).items()):
            if rel.startswith("output/"):
                _check_sha(rd / rel, sha, f"import file {rel} of stage {notebook_name(s)}")
                rels.append(rel)
    return rels


def _code_notes(manifest: dict[str, Any], stage: str) -> list[str]:
    """The stage's notebook and suites that differ from the run's (package versions: warnings)."""
    notes = []
    stem = notebook_name(stage)
    nb = notebooks_dir() / f"{stem}.ipynb"
    was = (manifest.get("notebooks") or {}).get(nb.name)
    now = file_sha256(nb) if nb.is_file() else None
    if was != now:
        notes.append(f"notebook {nb.name} changed since the run (sha256 {_short(was)} recorded, {_short(now)} today)")
    recorded = {k: v for k, v in (manifest.get("suites") or {}).items() if k.startswith(f"{stage}.")}
    today = {p.name: file_sha256(p) for p in sorted(expectations_dir().glob(f"{stage}.*.json"))}
    for name in sorted(set(recorded) | set(today)):
        if recorded.get(name) != today.get(name):
            notes.append(f"suite {name} changed since the run (sha256 {_short(recorded.get(name))} recorded, "
                         f"{_short(today.get(name))} today)")
    return notes


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


def _replay_dir(rd: Path, stage: str, out: str | Path | None = None) -> Path:
    """``out`` when given (it must be empty and outside the run), else a new folder beside the run."""
    if out is not None:
        folder = Path(out).resolve()
        if _inside(folder, rd):
            raise UsageError("the replay folder is inside the archived run; name one outside it", file=str(folder))
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UsageError("the replay folder exists and is not empty; name a new one", file=str(folder))
        return folder
    base = rd.parent / REPLAY_FOLDER / rd.name / f"{stage}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def _seed(rd: Path, new: Path, stage: str, pipeline: list[str], earlier: list[str], inputs: dict[str, dict],
          outputs: list[str]) -> None:
    """What the stage finds when it starts: earlier stages' frozen inputs, import files and tables;
    none of its own or later stages' work."""
    new.mkdir(parents=True, exist_ok=True)  # _replay_dir made sure it is new or empty
    if earlier:
        seed = {n: i for n, i in inputs.items() if _frozen_by(i) in earlier}
        for info in seed.values():
            _copy(rd / info["frozen_path"], new / info["frozen_path"])
        (new / INPUTS_FILE).parent.mkdir(parents=True, exist_ok=True)
        # The format stage 00 and freeze_input write: the stages' inputs fingerprint is over it.
        (new / INPUTS_FILE).write_text(json.dumps(seed, indent=2, sort_keys=True), encoding="utf-8")
    for rel in outputs:
        _copy(rd / rel, new / rel)
    with StagingStore.for_run(rd) as store:
        store.snapshot(new / "staging.db")
    with StagingStore.for_run(new) as store:
        store.drop_stages(pipeline[pipeline.index(stage):])


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


# -- the comparison ----------------------------------------------------------------------------------

def stage_files(run_dir: Path, stage: str) -> dict[str, str | None]:
    """The files ``stage`` wrote in ``run_dir``, run-dir-relative, with the sha256 recorded for
    each (None where the record has none): its recorded outputs, the inputs it froze, its rejects."""
    files: dict[str, str | None] = dict((record.stage_record(run_dir, stage) or {}).get("outputs") or {})
    for info in (record.read_json(run_dir / INPUTS_FILE, {}) or {}).values():
        if _frozen_by(info) == stage:
            files.setdefault(info["frozen_path"], info.get("sha256"))
    rejects = f"rejects/{stage}.csv"
    if (run_dir / rejects).is_file():
        files.setdefault(rejects, None)
    return files


def compare_stage(run_dir: Path, replay_dir: Path, stage: str) -> list[Comparison]:
    """Files, staging tables, ledger row and figures of ``stage``: the run's against the replay's."""
    run_files = stage_files(run_dir, stage)
    out = [compare_file(run_dir, replay_dir, rel, run_files.get(rel))
           for rel in sorted(set(run_files) | set(stage_files(replay_dir, stage)))]
    with StagingStore.for_run(run_dir) as a, StagingStore.for_run(replay_dir) as b:
        ra, rb = a.completed_stages().get(stage) or {}, b.completed_stages().get(stage) or {}
        tables = set(json.loads(ra.get("tables") or "[]")) | set(json.loads(rb.get("tables") or "[]"))
        out += [compare_table(a, b, t) for t in sorted(tables)]
        out.append(_compare_ledger(ra, rb, stage))
    out.append(compare_figures(run_dir, replay_dir, stage))
    return out


def compare_file(run_dir: Path, replay_dir: Path, rel: str, recorded_sha: str | None = None) -> Comparison:
    """Byte for byte; where they differ, the first differing line (never its content: import
    files hold personal data)."""
    a, b = run_dir / rel, replay_dir / rel
    if not a.is_file():
        return Comparison("file", rel, MISSING, "not in the run (the replay wrote it)")
    if not b.is_file():
        return Comparison("file", rel, MISSING, "not written by the replay")
    sha_a = file_sha256(a)
    tampered = (f"; the run's file no longer matches the sha256 its stage recorded"
                if recorded_sha and recorded_sha != sha_a else "")
    if sha_a == file_sha256(b):
        return Comparison("file", rel, IDENTICAL, tampered.lstrip("; "))
    sizes = f"{a.stat().st_size:,} vs {b.stat().st_size:,} bytes"
    return Comparison("file", rel, DIFFERENT, f"{first_difference(a, b)} ({sizes}){tampered}")


def first_difference(a: Path, b: Path) -> str:
    """Where two files first differ, as line and byte within the line."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for n, (x, y) in enumerate(zip_longest(fa, fb), start=1):
            if x == y:
                continue
            if x is None:
                return f"the replay has more lines, from line {n}"
            if y is None:
                return f"the replay ends after line {n - 1}"
            col = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            return f"first difference at line {n}, byte {col + 1}"
    return "same lines"


def compare_table(a: StagingStore, b: StagingStore, name: str, exclude: tuple[str, ...] = ()) -> Comparison:
    """Two tables as canonical lines (typed values, rowid order): identical, or the first row and
    column that differ (not the values: tables hold personal data)."""
    if not a.has_table(name):
        return Comparison("table", name, MISSING, "not in the run's staging.db")
    if not b.has_table(name):
        return Comparison("table", name, MISSING, "not written by the replay")
    la, lb = a.canonical_lines(name, exclude=exclude), b.canonical_lines(name, exclude=exclude)
    head_a, head_b = next(la), next(lb)
    if head_a != head_b:
        cols_a, cols_b = json.loads(head_a), json.loads(head_b)
        return Comparison("table", name, DIFFERENT, f"columns differ: {_columns(cols_a)} vs {_columns(cols_b)}")
    columns = [c for c, _ in json.loads(head_a)]
    ha, hb = hashlib.sha256(head_a.encode()), hashlib.sha256(head_b.encode())
    rows_a = rows_b = 0
    first = ""
    for n, (x, y) in enumerate(zip_longest(la, lb), start=1):
        if x is not None:
            rows_a += 1
            ha.update(x.encode() + b"\n")
        if y is not None:
            rows_b += 1
            hb.update(y.encode() + b"\n")
        if not first and x != y:
            first = _row_difference(n, x, y, columns)
    if ha.digest() == hb.digest():
        return Comparison("table", name, IDENTICAL, f"{rows_a:,} rows")
    return Comparison("table", name, DIFFERENT, f"{rows_a:,} vs {rows_b:,} rows; {first}")


def _columns(cols: list[list[str]]) -> str:
    return ",".join(f"{c} {t}".strip() for c, t in cols)


def _row_difference(n: int, x: str | None, y: str | None, columns: list[str]) -> str:
    if x is None:
        return f"row {n:,} is only in the replay"
    if y is None:
        return f"row {n:,} is only in the run"
    vx, vy = json.loads(x), json.loads(y)
    col = next((c for c, p, q in zip(columns, vx, vy) if json.dumps(p) != json.dumps(q)), "?")
    return f"first difference at row {n:,} (rowid order), column {col}"


def _compare_ledger(ra: dict[str, Any], rb: dict[str, Any], stage: str) -> Comparison:
    """The stage's row in ``_stages``: fingerprints of inputs and parameters, tables, figures."""
    name = f"_stages[{stage}]"
    if not ra or not rb:
        return Comparison("ledger", name, MISSING, "not in the run" if not ra else "not written by the replay")
    diff = [k for k in sorted(set(ra) | set(rb)) if k not in LEDGER_EXCLUDED and ra.get(k) != rb.get(k)]
    if diff:
        return Comparison("ledger", name, DIFFERENT, f"{', '.join(diff)} differ")
    return Comparison("ledger", name, IDENTICAL, f"{', '.join(LEDGER_EXCLUDED)} not compared")


def comparable_figures(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """The stage JSON without times and memory, its run dir's path replaced by a mark."""
    path = run_dir / "stages" / f"{notebook_name(stage)}.json"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").replace(json.dumps(str(run_dir))[1:-1], RUN_DIR_MARK)
    data = json.loads(text)
    return {k: v for k, v in data.items() if k not in VOLATILE_FIGURES}


def compare_figures(run_dir: Path, replay_dir: Path, stage: str) -> Comparison:
    name = f"stages/{notebook_name(stage)}.json"
    a, b = comparable_figures(run_dir, stage), comparable_figures(replay_dir, stage)
    if a is None or b is None:
        return Comparison("figures", name, MISSING, "not in the run" if a is None else "not written by the replay")
    where = first_key_difference(a, b)
    if where is None:
        return Comparison("figures", name, IDENTICAL, f"{', '.join(VOLATILE_FIGURES[:3])} not compared")
    return Comparison("figures", name, DIFFERENT, f"first difference at {where}")


def first_key_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first key path (``totals.points.owed``, ``gates[3].success``) where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}".lstrip(".")
            inner = first_key_difference(a[k], b[k], f"{path}.{k}")
            if inner is not None:
                return inner.lstrip(".")
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            inner = first_key_difference(x, y, f"{path}[{i}]")
            if inner is not None:
                return inner
        return f"{path.lstrip('.') or '(top level)'} (length {len(a)} vs {len(b)})" if len(a) != len(b) else None
    return None if a == b and type(a) is type(b) else (path.lstrip(".") or "(top level)")
