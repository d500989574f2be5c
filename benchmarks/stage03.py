"""Stage 03 (transfers) at scale, the issue #4 target: 10M ledger rows within 120 s and 4 GB.

    python -m benchmarks.stage03 [--members 1000000] [--ledger-rows-per-member 10] [--steps]

Generates the sample program once under ``--out`` and runs stages 00-02 on it once (a run called
``base``, reused by later calls: at 1M members that takes about 10 minutes). Each call then copies
``base`` to a fresh run dir and runs stage 03 alone, through papermill as ``run`` does, and prints
the stage's wall seconds (kernel start to HTML), compute seconds and the kernel's peak memory.
``--steps`` instead runs stage 03's functions in this process and prints each step's seconds and
memory, to see where the time goes. Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measure import print_table, reset_peak, status_mb
from loyalty_toolkit.runner import run
from loyalty_toolkit.runner.workspace import DEMO_CUTOVER, write_config
from loyalty_toolkit.sample import generate_sample
from loyalty_toolkit.stages import context
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.stages.transfers.outputs import TransferFiles
from loyalty_toolkit.stages.transfers.reconcile import Reconciliation
from loyalty_toolkit.stages.transfers.slices import SliceTotals
from loyalty_toolkit.store import PendingTables
from loyalty_toolkit.store.spool import SpooledPendingTables

METHODS = ((TransferFiles, "write"), (TransferFiles, "close"), (PendingTables, "append"), (SliceTotals, "add_lots"),
           (SliceTotals, "add_transfers"), (SliceTotals, "lot_result"), (Reconciliation, "by"),
           (Reconciliation, "roll_forward"), (context.StageContext, "write_rejects"),
           (SpooledPendingTables, "wait"))
STEPS = ("read_and_parse_ledger", "parse_opening", "member_phones", "_all_rejects", "plan_slices", "opening_lots", "build_lots", "build_transfers", "produced_per_member",
         "transfer_side", "lots_check", "transfers_check", "write_haravan_file", "Reconciliation")


def prepare(out: Path, members: int, per_member: float) -> tuple[Path, Path]:
    """The program's config and its ``base`` run dir with stages 00-02 passed (made once)."""
    root = out / f"program-{members}"
    config = root / "migration.yml"
    base = root / "runs" / "base"
    summary = base / "summary.json"
    if summary.is_file():
        passed = {s["name"] for s in json.loads(summary.read_text())["stages"] if s["status"] == "passed"}
        if {"subset", "members", "mapping"} <= passed:
            return config, base
    if root.exists():
        shutil.rmtree(root)
    t0 = time.monotonic()
    sample = generate_sample(root, members=members, seed=7, cutover=DEMO_CUTOVER, ledger_rows_per_member=per_member)
    config = write_config(root, name=f"bench-{members}", reward_files=sample.rewards)
    print(f"sample generated in {time.monotonic() - t0:.0f} s; running stages 00-02 once", flush=True)
    result = run(config, stages="subset,members,mapping", run_id="base")
    if result.exit_code:
        raise SystemExit(f"stages 00-02 failed: {result.message}")
    return config, base


def fresh_run(base: Path) -> Path:
    run_id = "s03-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    dest = base.parent / run_id
    shutil.copytree(base, dest)
    return dest


def notebook(config: Path, base: Path) -> list[tuple]:
    run_dir = fresh_run(base)
    result = run(config, stages="transfers", run_id=run_dir.name)
    rec = json.loads((run_dir / "stages" / "03_transfers.json").read_text())
    stage = next(s for s in json.loads((run_dir / "summary.json").read_text())["stages"] if s["name"] == "transfers")
    kernel, writer = rec.get("peak_rss_mb"), rec.get("writer_peak_rss_mb")
    note = f"+ writer {writer:,.0f} = {kernel + writer:,.0f} MB" if writer is not None else ""
    return [("03_transfers (notebook)", stage["status"], rec["totals"]["ledger"]["rows"], stage["seconds"],
             rec.get("compute_seconds"), kernel, result.message if result.exit_code else note)]


def steps(config: Path, base: Path) -> list[tuple]:
    """Stage 03's functions in this process, each timed (``transfers.step`` looks them up at call
    time); a function called once per member slice shows its total and its number of calls."""
    spent: dict[str, list] = {}  # name -> [seconds, calls, own peak MB (the highest call), RSS after]
    between = {"peak": 0.0, "after": ""}  # the highest peak outside any timed call, and after what
    t_all = time.monotonic()

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            outside = status_mb("VmHWM")
            if outside > between["peak"]:
                between["peak"], between["after"] = outside, last[0]
            reset_peak()  # each call's own peak (Linux clear_refs), not the process's so far
            t0 = time.monotonic()
            out = fn(*args, **kwargs)
            entry = spent.setdefault(name, [0.0, 0, 0, 0])
            entry[0] += time.monotonic() - t0
            entry[1] += 1
            entry[2] = max(entry[2], round(status_mb("VmHWM")))
            entry[3] = round(status_mb("VmRSS"))
            last[0] = name
            reset_peak()
            return out
        return wrapper

    last = [""]
    for name in STEPS:
        setattr(s03_transfers, name, timed(name, getattr(s03_transfers, name)))
    for cls, method in METHODS:  # methods: patched on their class, for this process only
        setattr(cls, method, timed(f"{cls.__name__}.{method}", getattr(cls, method)))
    ctx = context.open_stage("transfers", str(config), str(fresh_run(base)))
    t0 = time.monotonic()
    outcome = s03_transfers.run(ctx)
    rows = [(name, "", "", round(sec, 1), "", peak, f"rss {rss:,}" + (f", {calls} calls" if calls > 1 else ""))
            for name, (sec, calls, peak, rss) in spent.items()]
    rows.append(("(highest peak between timed calls)", "", "", "", "", round(between["peak"]),
                 f"after {between['after']}"))
    rest = time.monotonic() - t0 - sum(v[0] for v in spent.values())
    rows.append(("(rest of run: slices, reconciliation, rejects ...)", "", "", round(rest, 1), "",
                 round(status_mb("VmHWM")), f"{outcome.slices.slices} slices (peak: since the last call)"))
    reset_peak()
    t0 = time.monotonic()
    report = s03_transfers.gate(ctx, outcome)
    rows.append(("gate", "passed" if report.passed else "failed", "", round(time.monotonic() - t0, 1), "",
                 round(status_mb("VmHWM")), ""))
    reset_peak()
    t0 = time.monotonic()
    s03_transfers.commit(ctx, outcome, report)
    rows.append(("commit", "", "", round(time.monotonic() - t0, 1), "", round(status_mb("VmHWM")), ""))
    writer_mb = getattr(outcome.pending, "writer_peak_mb", None)
    if writer_mb is not None:  # the background writer of the pending tables: a process of its own
        rows.append(("(pending-table writer process)", "", "", "", "", round(writer_mb), "its own peak"))
    rows.append(("total", "", outcome.ledger_rows, round(time.monotonic() - t_all, 1), "",
                 max(r[5] for r in rows if isinstance(r[5], (int, float)) and r[0] != "(pending-table writer process)"),
                 "this process's highest peak"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stage03", description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--ledger-rows-per-member", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out") / "stage03")
    ap.add_argument("--steps", action="store_true", help="time each step in this process instead of the notebook")
    ap.add_argument("--keep", action="store_true", help="keep the measured run dir (removed by default)")
    args = ap.parse_args()
    config, base = prepare(args.out, args.members, args.ledger_rows_per_member)
    before = set(base.parent.iterdir())
    try:
        table = steps(config, base) if args.steps else notebook(config, base)
    finally:  # each measurement copies the 3.6 GB base run: keep the disk for the next one
        if not args.keep:
            for run_dir in set(base.parent.iterdir()) - before:
                shutil.rmtree(run_dir, ignore_errors=True)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {args.members:,} members")
    head = ("what", "status", "ledger rows", "seconds", "compute s", "peak MB", "note (steps: the call's own peak; RSS after)")
    widths = (50, 8, 13, 9, 10, 9, 24)
    print_table(head, widths, table)


if __name__ == "__main__":
    main()
