"""The whole program through the CLI (issue #15): ``loyalty-migrate run`` end to end on a generated
program, against the I/O floor of the same run.

    python -m benchmarks.program [--members 1000000 [300000 ...]] [--ledger-rows-per-member 10]

Each program is generated once under ``--out`` (``program-<members>/``, reused by later calls: at
1M members generation takes a few minutes) and each call runs all six stages in a fresh run dir, as
a subprocess, the way an operator does. It prints, per stage and in total: wall seconds, the CPU
seconds of the processes the stage started (on a shared machine the steadier figure), rows per
second, the peak memory of every process (the stage's kernel and, in stage 03, its background
writer, from the stage records; the CLI process itself, sampled from /proc, with its peak before
the first kernel started, i.e. the preflight), and the I/O floor: pyarrow reading the files the
stage reads and writing the files it wrote, in this process right after the run, and the ratio
run / floor. Measure on an otherwise idle machine; on a shared one read the times as upper bounds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measure import print_table
from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.runner import PIPELINE
from loyalty_toolkit.runner.workspace import DEMO_CUTOVER, write_config
from loyalty_toolkit.sample import generate_sample

# The frozen inputs (run dir ``inputs/<name>/``) each stage reads; stage 00 reads the legacy files
# and writes those copies, the later stages read the copies (stage 05 reads the staging database).
STAGE_INPUTS = {"subset": ("members", "ledger", "opening_balances", "rewards", "target_members",
                           "target_import_result"),
                "members": ("members",), "mapping": ("members", "target_members", "target_import_result"),
                "transfers": ("ledger", "opening_balances"), "rewards": ("rewards",), "report": ()}
# What is not a result file of the run: the notebooks, their HTML, logs and Data Docs are the
# reports' rendering, the staging database is measured as part of the stages' work.
NOT_OUTPUTS = ("notebooks", "data_docs", "stages")
SAMPLE_EVERY = 0.1  # seconds between two readings of /proc


def prepare(out: Path, members: int, per_member: float) -> tuple[Path, dict]:
    """The program's config and its generation record (``prepared.json``), generated once."""
    root = out / f"program-{members}"
    marker = root / "prepared.json"
    if marker.is_file():
        made = json.loads(marker.read_text())
        if made.get("members") == members and made.get("ledger_rows_per_member", 10.0) == per_member:
            return root / "migration.yml", made
    if root.exists():
        shutil.rmtree(root)
    t0 = time.monotonic()
    sample = generate_sample(root, members=members, seed=7, cutover=DEMO_CUTOVER, ledger_rows_per_member=per_member)
    config = write_config(root, name=f"bench-{members}", reward_files=sample.rewards)
    made = {"members": members, "ledger_rows_per_member": per_member, "counts": sample.counts,
            "seconds": round(time.monotonic() - t0, 1)}
    marker.write_text(json.dumps(made))
    return config, made


def _status_mb(pid: int, field_name: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of the process itself (not its children), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(_children(child))
    return out


@dataclass
class Watch:
    """The CLI process's memory over the run, and when each stage's record appeared."""
    pid: int
    stages_dir: Path
    cli_peak_mb: float = 0.0
    preflight_peak_mb: float | None = None  # the CLI's peak when its first child (a kernel) appeared
    stage_done: dict[str, float] = field(default_factory=dict)  # stage -> wall-clock time its record appeared
    cli_cpu: float = 0.0
    # every process the CLI started and their children (writers): the kernel it descends from, and
    # its CPU seconds at the last reading (a reading every SAMPLE_EVERY: the last 0.1 s is lost).
    # The CLI starts a stage's kernel one stage ahead, in stage order: the k-th kernel is the k-th
    # stage's, whenever it was first seen.
    kernels: list[int] = field(default_factory=list)
    child_kernel: dict[int, int] = field(default_factory=dict)
    child_cpu: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            hwm = _status_mb(self.pid, "VmHWM")
            if hwm is not None:
                self.cli_peak_mb = max(self.cli_peak_mb, hwm)
                self.cli_cpu = _cpu_seconds(self.pid) or self.cli_cpu
                if self.preflight_peak_mb is None and _children(self.pid):
                    self.preflight_peak_mb = hwm
            for stage in PIPELINE:
                if stage not in self.stage_done and (self.stages_dir / f"{notebook_name(stage)}.json").is_file():
                    self.stage_done[stage] = time.time()
            for kernel in sorted(_children(self.pid)):  # pids grow: two kernels seen at once keep their order
                if kernel not in self.kernels:
                    self.kernels.append(kernel)
                for pid in [kernel, *_descendants(kernel)]:
                    self.child_kernel.setdefault(pid, kernel)
                    self.child_cpu[pid] = _cpu_seconds(pid) or self.child_cpu.get(pid, 0.0)
            self._stop.wait(SAMPLE_EVERY)

    def stage_cpu(self, stage: str, ran: list[str]) -> float:
        """CPU seconds of ``stage``'s kernel and its children; ``ran``: the stages run, in order."""
        k = ran.index(stage)
        if k >= len(self.kernels):
            return 0.0
        return sum(cpu for pid, cpu in self.child_cpu.items() if self.child_kernel[pid] == self.kernels[k])

    def stop(self) -> None:
        self._stop.set()


def run_cli(config: Path, run_id: str) -> tuple[int, float, Watch]:
    """``loyalty-migrate run`` as a subprocess: exit code, wall seconds and the watch."""
    cli = Path(sys.executable).with_name("loyalty-migrate")
    run_dir = config.parent / "runs" / run_id
    t0 = time.monotonic()
    proc = subprocess.Popen([str(cli), "run", str(config), "--run-id", run_id], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    watch = Watch(proc.pid, run_dir / "stages")
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    output, _ = proc.communicate()
    wall = time.monotonic() - t0
    watch.stop()
    thread.join()
    if proc.returncode:
        print(output, file=sys.stderr)
    return proc.returncode, wall, watch


def _stage_files(run_dir: Path, watch: Watch) -> dict[str, list[Path]]:
    """The result files of the run, each given to the stage running when it was last written."""
    ends = [(watch.stage_done.get(s, float("inf")), s) for s in PIPELINE]
    files: dict[str, list[Path]] = {s: [] for s in PIPELINE}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir)
        if rel.parts[0] in NOT_OUTPUTS or path.suffix in (".db", ".db-wal", ".db-shm", ".html") or len(rel.parts) == 1:
            continue
        mtime = path.stat().st_mtime
        stage = next((s for end, s in ends if mtime <= end + 1.0), PIPELINE[-1])
        files[stage].append(path)
    return files


def _inputs(run_dir: Path, stage: str) -> list[Path]:
    return [p for name in STAGE_INPUTS[stage] for p in sorted((run_dir / "inputs" / name).glob("*")) if p.is_file()]


def io_floor(paths_read: list[Path], paths_written: list[Path], scratch: Path) -> float:
    """Seconds pyarrow takes to read ``paths_read`` and to write ``paths_written`` again (CSV
    through pyarrow's reader and writer, other files as bytes): the least any stage could spend."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def as_text(path: Path):  # every column as text: what the stages read, without type inference
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            header = next(csv.reader([handle.readline()]), [])
        return pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                              convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                                   strings_can_be_null=False))

    t0 = time.monotonic()
    for path in paths_read:
        if path.suffix == ".csv":
            as_text(path)
        else:
            path.read_bytes()
    read_s = time.monotonic() - t0
    tables = []
    for path in paths_written:  # loaded first, so only the writing is timed
        if path.suffix == ".csv":
            tables.append((path, as_text(path)))
        else:
            tables.append((path, path.read_bytes()))
    t0 = time.monotonic()
    for i, (path, data) in enumerate(tables):
        dest = scratch / f"{i}{path.suffix}"
        if isinstance(data, bytes):
            with open(dest, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            pacsv.write_csv(data, dest)
        dest.unlink()
    return read_s + time.monotonic() - t0


def measure(config: Path, made: dict, keep: bool) -> list[tuple]:
    run_id = "bench-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = config.parent / "runs" / run_id
    code, wall, watch = run_cli(config, run_id)
    rows: list[tuple] = []
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        ran = [x["name"] for x in summary["stages"] if x["status"] in ("passed", "failed")]
        # the run's own figures first: the floor, measured next, takes minutes on a large program
        print(f"run {run_id}: {summary['status']}, {wall:.1f} s wall, CLI {watch.cli_cpu:.1f} CPU s, peak "
              f"{watch.cli_peak_mb:,.0f} MB; per stage (wall s, CPU s): " + ", ".join(
                  f"{x['name']} {x['seconds']} {watch.stage_cpu(x['name'], ran):.1f}" for x in summary["stages"]
                  if x["name"] in ran), flush=True)
        files = _stage_files(run_dir, watch)
        floor_total = 0.0
        with tempfile.TemporaryDirectory(dir=run_dir.parent) as scratch:
            for s in summary["stages"]:
                name = s["name"]
                rec_path = run_dir / "stages" / f"{notebook_name(name)}.json"
                rec = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
                reads = [p for p in config.parent.joinpath("legacy").rglob("*.csv") if p.name != "defects.csv"] \
                    if name == "subset" else _inputs(run_dir, name)
                floor = io_floor(reads, files[name], Path(scratch))
                floor_total += floor
                seconds, rows_in = s.get("seconds"), s.get("rows_in") or 0
                ran = [x["name"] for x in summary["stages"] if x["status"] in ("passed", "failed")]
                cpu = round(watch.stage_cpu(name, ran), 1) if name in ran else None
                rows.append((notebook_name(name), s["status"], rows_in, seconds, cpu,
                             round(rows_in / seconds) if seconds else None, rec.get("peak_rss_mb"),
                             rec.get("writer_peak_rss_mb"), round(floor, 1),
                             round(seconds / floor, 1) if seconds and floor > 0.05 else None))
        rows.append(("total (CLI wall)", summary["status"] if not code else f"exit {code}",
                     made["counts"].get("ledger"), round(wall, 1),
                     round(watch.cli_cpu + sum(watch.child_cpu.values()), 1), round(made["counts"].get("ledger", 0) / wall),
                     max((r[6] or 0) for r in rows), None, round(floor_total, 1), round(wall / floor_total, 1)))
        rows.append(("CLI process", "", None, None, round(watch.cli_cpu, 1), None, round(watch.cli_peak_mb),
                     f"preflight {watch.preflight_peak_mb:,.0f}" if watch.preflight_peak_mb else None, None, None))
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return rows


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.program", description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--ledger-rows-per-member", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out") / "program")
    ap.add_argument("--keep", action="store_true", help="keep the measured run dirs (removed by default)")
    args = ap.parse_args()
    head = ("stage", "status", "rows in", "wall s", "CPU s", "rows/s", "kernel MB", "writer MB", "floor s",
            "wall/floor")
    widths = (18, 10, 13, 9, 8, 11, 11, 18, 9, 10)
    for members in args.members:
        config, made = prepare(args.out, members, args.ledger_rows_per_member)
        before = load()
        rows = measure(config, made, args.keep)
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
        print(f"\n{members:,} members, {made['counts'].get('ledger', 0):,} ledger rows; "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores, "
              f"{mem:.0f} GB, Python {platform.python_version()}; load average before {before}, after {load()}")
        print_table(head, widths, rows)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
