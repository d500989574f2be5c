"""Run the pipeline on generated programs and print, per stage, wall seconds, rows per second and
peak memory.

Two measurements:
- fixed cost: the demo at 50 members, where a stage's time is its notebook overhead (kernel start,
  imports, gate, Data Docs, HTML);
- scale: the demo at ``--members`` (default 100,000; the targets in docs/performance.md are for
  1,000,000) with ``--ledger-rows-per-member`` ledger rows each.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

from benchmarks.measure import print_table
from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.runner import run
from loyalty_toolkit.runner.workspace import DEMO_CUTOVER, write_config
from loyalty_toolkit.sample import generate_sample


def _program(root: Path, members: int, ledger_per_member: float) -> tuple[Path, float]:
    if root.exists():
        shutil.rmtree(root)
    t0 = time.monotonic()
    sample = generate_sample(root, members=members, seed=7, cutover=DEMO_CUTOVER,
                             ledger_rows_per_member=ledger_per_member)
    seconds = time.monotonic() - t0
    return write_config(root, name=f"bench-{members}", reward_files=sample.rewards), seconds


def _rows(label: str, run_dir: Path) -> list[tuple]:
    summary = json.loads((run_dir / "summary.json").read_text())
    out = []
    for s in summary["stages"]:
        rec = json.loads((run_dir / "stages" / f"{notebook_name(s['name'])}.json").read_text())
        rows = s["rows_in"] or 0
        out.append((label, notebook_name(s["name"]), s["status"], rows, s["seconds"], rec.get("compute_seconds"),
                    round(rows / rec["compute_seconds"]) if rec.get("compute_seconds") else None, rec.get("peak_rss_mb")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--ledger-rows-per-member", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args()
    table = []
    cfg, _ = _program(args.out / "fixed", 50, 5)
    table += _rows("fixed cost (50 members)", run(cfg).run_dir)
    cfg, gen_s = _program(args.out / "scale", args.members, args.ledger_rows_per_member)
    result = run(cfg)
    table += _rows(f"{args.members:,} members", result.run_dir)
    print(f"machine: {platform.machine()}, {platform.python_version()}; sample generation: {gen_s:.1f} s")
    head = ("run", "stage", "status", "rows in", "wall s", "compute s", "rows/s", "peak MB")
    widths = (26, 12, 8, 12, 9, 10, 11, 9)
    print_table(head, widths, table)


if __name__ == "__main__":
    main()
