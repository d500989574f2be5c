"""Stage 03's read + parse of the ledger, whole-file against block by block: seconds and peak RSS.

    python -m benchmarks.ledger_stream PATH --mode whole|blocks [--block-mib 16] [--timezone Europe/Paris]

``whole`` is read_ledger + parse_ledger (ENGINE_FIELDS -> ENGINE_COLUMNS) as stage 03 did it;
``blocks`` is ledger_stream.read_and_parse_ledger. cpu_s (user + system, all threads) is steadier
than wall seconds on a shared machine. Run each mode in a fresh process (the peak,
VmHWM, never goes down) and back to back, since the machine is shared.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from benchmarks.measure import status_mb
from loyalty_toolkit.config import LedgerSource
from loyalty_toolkit.sources.ledger.parse import ENGINE_COLUMNS, ENGINE_FIELDS, parse_ledger


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ledger_stream", description=__doc__.splitlines()[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--mode", choices=("whole", "blocks"), required=True)
    ap.add_argument("--block-mib", type=float, default=None)
    ap.add_argument("--timezone", default="Europe/Paris")
    args = ap.parse_args()
    src = LedgerSource(path=args.path, timezone=args.timezone)
    base = status_mb("VmRSS")
    t0 = time.monotonic()
    if args.mode == "whole":
        from loyalty_toolkit.sources.ledger.read import read_ledger
        frame = read_ledger(src, fields=ENGINE_FIELDS)
        parsed = parse_ledger(frame, source_file=src.path.name, timezone=src.timezone, columns=src.column_map(),
                              entry_columns=ENGINE_COLUMNS)
        del frame
    else:
        from loyalty_toolkit.sources.ledger.stream import read_and_parse_ledger
        extra = {} if args.block_mib is None else {"block_bytes": int(args.block_mib * (1 << 20))}
        parsed = read_and_parse_ledger(src, timezone=src.timezone, fields=ENGINE_FIELDS, columns=src.column_map(),
                                       entry_columns=ENGINE_COLUMNS, **extra)
    seconds = time.monotonic() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    entries_mb = parsed.entries.memory_usage(deep=False).sum() / (1 << 20)
    print(f"mode={args.mode} rows_read={parsed.rows_read:,} entries={len(parsed.entries):,} "
          f"rejects={len(parsed.rejects):,} seconds={seconds:.1f} cpu_s={usage.ru_utime + usage.ru_stime:.1f} base_rss_mb={base:.0f} "
          f"rss_mb={status_mb('VmRSS'):.0f} peak_mb={status_mb('VmHWM'):.0f} entries_shallow_mb={entries_mb:.0f}")


if __name__ == "__main__":
    main()
