"""What a stage notebook holds on to: config, run dir, frozen inputs, gate and commit.

A stage computes its frames in memory, shows them, runs its gate, then commits: the tables and the
stage's ledger row go into the staging database in one transaction, only if no critical
expectation failed. The stage's figures go to ``RUN_DIR/stages/<NN_stage>.json``, which the runner
reads into ``summary.json`` (the notebook never talks to the runner directly).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loyalty_toolkit import gates
from loyalty_toolkit.checkpoints import checkpoint
from loyalty_toolkit.config import Config, load_config
from loyalty_toolkit.csv_cells import write_frame_csv
from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.mask import PII_KINDS, mask_rejects
from loyalty_toolkit.model import REJECT_COLUMNS, STAGE_NAMES, expectations_dir, notebook_name
from loyalty_toolkit.store import PendingTables, StagingStore

INPUTS_FILE = "inputs/inputs.json"
PENDING_SUFFIX = ".pending"  # stages/NN_stage.json.pending: a record not yet switched in


@dataclass
class StageFigures:
    """The counts a stage reports: rows in, out and rejected, plus stage-specific totals."""

    rows_in: int
    rows_out: int
    rows_rejected: int
    totals: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageContext:
    stage: str
    config: Config
    run_dir: Path
    show_pii: bool = False
    started: float = field(default_factory=time.monotonic)
    _store: StagingStore | None = None
    # Files this stage wrote outside the pending folder (rejects, late inputs), by run-dir-relative
    # path: recorded with their sha256 in the stage JSON so that ``repro`` knows what to compare.
    _written: dict[str, Path] = field(default_factory=dict)

    # -- inputs --------------------------------------------------------------------------------

    def frozen_inputs(self) -> dict[str, dict[str, Any]]:
        """Stage 00's record of the frozen inputs: name -> {path, sha256, size, rows, ...}."""
        p = self.run_dir / INPUTS_FILE
        if not p.is_file():
            raise UsageError("inputs are not frozen in this run dir; run stage 00 (subset) first",
                             stage=self.stage, file=str(p))
        return json.loads(p.read_text(encoding="utf-8"))

    def input_path(self, name: str) -> Path:
        """The frozen copy of input ``name`` that every stage after 00 reads."""
        info = self.frozen_inputs().get(name)
        if info is None:
            raise UsageError(f"input {name!r} is not declared in the config", stage=self.stage)
        return self.run_dir / info["frozen_path"]

    def source(self, name: str):
        """The config block of source ``name`` with its path pointing at the frozen copy."""
        src = getattr(self.config.sources, name)
        return src.model_copy(update={"path": self.input_path(name)})

    def freeze_input(self, name: str, path: Path, rows: int | None = None) -> Path:
        """Freeze a late input (one that exists only after an earlier stage, such as the target's
        member export) into ``RUN_DIR/inputs/<name>/`` and record it like stage 00's inputs."""
        inputs = self.frozen_inputs()
        dest = self.run_dir / "inputs" / name / Path(path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(path).resolve() != dest.resolve():
            shutil.copyfile(path, dest)
        digest = file_sha256(dest)
        inputs[name] = {"source_path": str(path), "frozen_path": dest.relative_to(self.run_dir).as_posix(),
                        "size": dest.stat().st_size, "sha256": digest, "source_sha256": digest,
                        "rows_read": rows, "rows_kept": rows, "encoding": "", "delimiter": "", "stage": self.stage}
        (self.run_dir / INPUTS_FILE).write_text(json.dumps(inputs, indent=2, sort_keys=True), encoding="utf-8")
        self._written[inputs[name]["frozen_path"]] = dest
        return dest

    def inputs_fingerprint(self) -> str:
        inputs = self.frozen_inputs()
        blob = json.dumps({k: v["sha256"] for k, v in sorted(inputs.items())}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    # -- store, gate, outputs ------------------------------------------------------------------

    @property
    def store(self) -> StagingStore:
        if self._store is None:
            self._store = StagingStore.for_run(self.run_dir)
        return self._store

    def output_dir(self, platform: str) -> Path:
        """Where the stage writes import files for ``platform``: a pending folder, published to
        ``RUN_DIR/output/<platform>`` only when the stage passes, so a failed stage leaves no file
        that someone could upload by mistake."""
        d = self.run_dir / ".pending" / self.stage / platform
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def _publish_outputs(self) -> None:
        pending = self.run_dir / ".pending" / self.stage
        if not pending.exists():
            return
        for platform_dir in sorted(p for p in pending.iterdir() if p.is_dir()):
            dest = self.run_dir / "output" / platform_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in sorted(platform_dir.iterdir()):
                os.replace(f, dest / f.name)
        shutil.rmtree(pending)

    def _outputs(self) -> dict[str, str]:
        """Every file the stage wrote, by the run-dir-relative path it has once published
        (``output/<platform>/<file>``, ``rejects/<stage>.csv``, late inputs), with its sha256."""
        files = dict(self._written)
        pending = self.run_dir / ".pending" / self.stage
        if pending.exists():
            for f in sorted(p for p in pending.rglob("*") if p.is_file()):
                files["output/" + f.relative_to(pending).as_posix()] = f
        return {rel: file_sha256(p) for rel, p in sorted(files.items()) if p.is_file()}

    def write_rejects(self, rejects: pd.DataFrame) -> Path:
        """``RUN_DIR/rejects/<stage>.csv``: every rejected row with file, line, reason and message, its
        personal data masked (unless ``show_pii``) as reviewers read it; the unmasked rows go to the
        restricted ``RUN_DIR/rejects/pii/<stage>.csv``."""
        path = self.run_dir / "rejects" / f"{self.stage}.csv"
        restricted = self.run_dir / "rejects" / "pii" / f"{self.stage}.csv"
        restricted.parent.mkdir(parents=True, exist_ok=True)
        frame = rejects.reindex(columns=list(REJECT_COLUMNS)).sort_values(["file", "line"], kind="stable")
        shown = frame if self.show_pii else mask_rejects(frame, kinds=self._personal_headers())
        for target, rows in ((restricted, frame), (path, shown)):
            write_frame_csv(rows, target)
            self._written[target.relative_to(self.run_dir).as_posix()] = target
        return path

    def _personal_headers(self) -> dict[str, str]:
        """Each source's own header for a personal field (``{"Courriel": "email"}``), for masking."""
        kinds: dict[str, str] = {}
        for name in ("members", "ledger", "opening_balances"):
            src = getattr(self.config.sources, name, None)
            for canonical, header in (src.column_map().items() if src is not None else ()):
                if canonical in PII_KINDS:
                    kinds[header] = PII_KINDS[canonical]
        return kinds

    def gate(self, tables: dict[str, pd.DataFrame], parameters: dict[str, Any] | None = None) -> gates.GateReport:
        """Run the stage's suites over ``tables``; Data Docs go to ``RUN_DIR/data_docs/<NN_stage>``."""
        docs = self.run_dir / "data_docs" / notebook_name(self.stage)
        return gates.run_gate(self.stage, tables, suites_dir=expectations_dir(), docs_dir=docs,
                              parameters=parameters, show_pii=self.show_pii)

    def finish(self, gate: gates.GateReport, figures: StageFigures, tables: dict[str, pd.DataFrame],
               parameters: dict[str, Any] | None = None, pending: PendingTables | None = None) -> None:
        """Record the stage's figures, then commit its tables and publish its ``pending`` ones
        (written during the stage), or drop those and raise GateFailed (nothing committed)."""
        if pending is not None and gate.passed:
            pending.wait()  # a background writer's failure fails the stage before its record says passed
        record = {
            "name": self.stage, "status": "passed" if gate.passed else "failed",
            "rows_in": figures.rows_in, "rows_out": figures.rows_out, "rows_rejected": figures.rows_rejected,
            "totals": figures.totals, "gates": gate.summary_rows(), "gate_report": gate.to_json(),
            "compute_seconds": round(time.monotonic() - self.started, 3),
            # The kernel runs one stage, so its peak RSS is the stage's (benchmarks read it).
            "peak_rss_mb": peak_rss_mb(),
            "outputs": self._outputs(),
        }
        writer_mb = getattr(pending, "writer_peak_mb", None)
        if writer_mb is not None:  # a background writer is a process of its own: its peak counts too
            record["writer_peak_rss_mb"] = round(writer_mb, 1)
        # Commit order, the same on every path (docs/reliability-runs.md): the record is written
        # into a pending place, then the database commits (tables and the _stages row, the commit
        # point), then the import files and the record are switched in. A kill before the commit
        # leaves nothing published; after it, the runner's next start finishes or rolls back.
        out = self.run_dir / "stages" / f"{notebook_name(self.stage)}.json"
        staged = out.with_name(out.name + PENDING_SUFFIX)
        out.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(json.dumps(record, indent=2, default=str, sort_keys=True), encoding="utf-8")
        checkpoint(self.stage, "recorded")
        if pending is not None and not gate.passed:
            pending.discard()
        if not gate.passed:
            os.replace(staged, out)  # a failed stage's record is published at once: nothing to commit
        gate.raise_if_failed()
        params = json.dumps({"config": self.config.fingerprint(), **(parameters or {})}, sort_keys=True)
        self.store.commit_stage(self.stage, tables, inputs_fingerprint=self.inputs_fingerprint(),
                                parameters_fingerprint=hashlib.sha256(params.encode()).hexdigest(),
                                details={"rows_in": figures.rows_in, "rows_out": figures.rows_out,
                                         "rows_rejected": figures.rows_rejected}, pending=pending)
        checkpoint(self.stage, "committed")
        self._publish_outputs()
        checkpoint(self.stage, "published")
        os.replace(staged, out)


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks (import files can be hundreds of megabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent across fork and exec, so a kernel would report the runner's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def release_free_memory() -> None:
    """Hand the heap memory Python has freed back to the system (glibc's ``malloc_trim``). glibc
    keeps freed blocks for reuse; after a ten-million-row ledger is read in blocks, or a member
    slice is dropped, that is hundreds of megabytes the stage's memory budget would still count.
    Elsewhere than glibc there is nothing to trim."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def open_stage(stage: str, config_path: str, run_dir: str, *, show_pii: bool = False) -> StageContext:
    """The context a stage notebook starts with (called from its first code cell)."""
    if stage not in STAGE_NAMES:
        raise UsageError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_NAMES)}")
    config = load_config(config_path)
    rd = Path(run_dir)
    rd.mkdir(parents=True, exist_ok=True)
    return StageContext(stage=stage, config=config, run_dir=rd.resolve(), show_pii=bool(show_pii or config.run.show_pii))
