"""The staging store's insert at stage 03's scale: rows per second for a lots-shaped and a
per-member table, written whole (``commit_stage``) and slice by slice (``pending`` + commit).

    python -m benchmarks.store_insert [--members 100000] [--rows 1000000] [--slices 5]

Runs stage 03 once on the ``--members`` program of ``benchmarks.stage03`` (made if missing) for
real frames (shared Decimal objects, ISO text, ints), repeats them to ``--rows`` rows, and writes
each into a fresh database. Conversion is the Python side alone (frame columns to bindable values).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import time
from pathlib import Path

import pandas as pd

from benchmarks.measure import print_table, status_mb
from benchmarks.stage03 import fresh_run, prepare
from loyalty_toolkit.stages import context
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.store import StagingStore, bulk

SHAPES = {"lots": "lots", "per-member": "reconciliation_member"}


def _frames(out: Path, members: int, rows: int) -> dict[str, pd.DataFrame]:
    config, base = prepare(out, members, 10.0)
    run_dir = fresh_run(base)
    try:
        outcome = s03_transfers.run(context.open_stage("transfers", str(config), str(run_dir)))
        tables = s03_transfers._store_tables(outcome)
    finally:
        shutil.rmtree(run_dir)
    frames = {}
    for label, name in SHAPES.items():
        f = tables[name]
        frames[label] = pd.concat([f] * -(-rows // len(f)), ignore_index=True).iloc[:rows].reset_index(drop=True)
    return frames


def _fresh(path: Path) -> StagingStore:
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    return StagingStore(path)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.store_insert", description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--slices", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench-out") / "stage03")
    args = ap.parse_args()
    frames = _frames(args.out, args.members, args.rows)
    db = args.out / "store_insert.db"
    table = []
    for label, frame in frames.items():
        gc.collect()
        t0 = time.perf_counter()
        converted = [bulk.column_values(frame[c]) for c in frame.columns]
        conversion = time.perf_counter() - t0
        del converted
        with _fresh(db) as store:
            t0 = time.perf_counter()
            store.commit_stage("bench", {label: frame}, inputs_fingerprint="", parameters_fingerprint="")
            whole = time.perf_counter() - t0
        with _fresh(db) as store:
            t0 = time.perf_counter()
            pending = store.pending("bench")
            step = -(-len(frame) // args.slices)
            for start in range(0, len(frame), step):
                pending.append(label, frame.iloc[start:start + step])
            store.commit_stage("bench", {}, inputs_fingerprint="", parameters_fingerprint="", pending=pending)
            sliced = time.perf_counter() - t0
        size = db.stat().st_size / 1e6
        table.append((label, len(frame), frame.shape[1], round(conversion, 2), round(whole, 2),
                      round(len(frame) / whole), round(sliced, 2), round(size), round(status_mb("VmHWM"))))
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    head = ("frame", "rows", "columns", "conversion s", "whole s", "rows/s", "pending s", "db MB", "peak MB")
    print_table(head, (12, 11, 9, 14, 9, 10, 11, 7, 8), table)


if __name__ == "__main__":
    main()
