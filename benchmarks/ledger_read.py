"""Stage 03's ledger path at scale: read_ledger + parse_ledger + build_lots + reconcile.

    python -m benchmarks.ledger_read PATH [--timezone Europe/Paris] [--simple]

PATH is a Zenoti ledger export, e.g. the one ``generate_sample(root, members=1_000_000,
ledger_rows_per_member=10)`` writes to ``root/legacy/points_liability.csv`` (10M rows, ~2 GB).
Prints per phase the wall seconds, the process RSS after it and the peak RSS so far (VmHWM).
``--simple`` reads with ``csvfile.read_table`` + ``to_frame`` (one Python string per cell) for
comparison. Run each measurement in a fresh process: the peak never goes down.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measure import status_mb
from loyalty_toolkit.config import LedgerSource
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.ledger.parse import parse_ledger
from loyalty_toolkit.sources.ledger.read import read_ledger, required_headers
from loyalty_toolkit.stages.transfers.lots import build_lots
from loyalty_toolkit.stages.transfers.reconcile import reconcile


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ledger_read", description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--timezone", default="Europe/Paris")
    ap.add_argument("--cutover", default="2026-06-30T23:59:59+00:00")
    ap.add_argument("--simple", action="store_true", help="read_table + to_frame instead of read_ledger")
    args = ap.parse_args()
    src = LedgerSource(path=args.path, timezone=args.timezone)
    cutover = datetime.fromisoformat(args.cutover).astimezone(UTC)
    rows: list[tuple[str, float, float, float]] = []
    t_all = time.monotonic()

    def phase(name: str, fn):
        t0 = time.monotonic()
        out = fn()
        rows.append((name, time.monotonic() - t0, status_mb("VmRSS"), status_mb("VmHWM")))
        return out

    if args.simple:
        frame = phase("read (read_table+to_frame)", lambda: to_frame(
            read_table(src.path, encoding=src.encoding, delimiter=src.delimiter, required=required_headers(src),
                       stage="transfers"), src.column_map()))
    else:
        frame = phase("read_ledger", lambda: read_ledger(src))
    n = len(frame)
    parsed = phase("parse_ledger", lambda: parse_ledger(frame, source_file=src.path.name, timezone=src.timezone,
                                                         columns=src.column_map()))
    del frame
    lots = phase("build_lots", lambda: build_lots(parsed.entries, cutover=cutover))
    rec = phase("reconcile", lambda: reconcile(parsed.entries, lots))
    total = time.monotonic() - t_all
    print(f"{n:,} rows, {len(parsed.entries):,} entries, {len(parsed.rejects):,} rejects, "
          f"{len(lots.lots):,} lots, {len(lots.allocations):,} allocations, "
          f"{int((~rec['ok']).sum()):,} members not ok")
    print(f"{'phase':<28}{'seconds':>9}{'RSS MB':>10}{'peak MB':>10}")
    for name, s, rss, hwm in rows:
        print(f"{name:<28}{s:>9.1f}{rss:>10.0f}{hwm:>10.0f}")
    print(f"{'total':<28}{total:>9.1f}{'':>10}{status_mb('VmHWM'):>10.0f}")


if __name__ == "__main__":
    main()
