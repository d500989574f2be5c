"""Stage 03's unit-transfer files at scale: write JSON and XML, then read them back and recount.

    python -m benchmarks.transfer_files --rows 1000000 [--non-ascii 0.01] [--formats json,xml]
                                        [--pieces N [--stream]] [--live-objects MILLIONS] [--out DIR]

Builds a synthetic ``TransferResult.transfers`` frame shaped like ``build_transfers``' output
(object text columns, int64 points, Int64 validity_days; some spending, pending and never-expiring
rows, a few multi-lot lot ids and a ``--non-ascii`` fraction with Vietnamese letters), then times
per format the writer alone and ``write_transfer_files`` (write + read-back recount, as stage 03
runs it). Prints per phase the wall seconds, the RSS after it and the phase's peak RSS (VmHWM,
reset before each phase where Linux allows; the frame itself is part of every figure).
``--pieces N`` hands the frame to the writers in N slices (``TransferFileWriter``, ``TransferFiles``),
as stage 03 does per member slice; with ``--stream`` each slice is built on its own and dropped once
written, so the whole frame never exists (the seconds then count writing and reading only).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.measure import reset_peak, status_mb
from loyalty_toolkit.stages.transfers.outputs import TransferFiles
from loyalty_toolkit.targets.ol_transfers import TransferFileWriter


def _hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """UUID-shaped text ids (8-4-4-4-12 hex), built column-wise."""
    digits = np.array(list("0123456789abcdef"))
    raw = digits[rng.integers(0, 16, size=(n, 32))]
    flat = raw.view("<U32").ravel() if raw.flags.c_contiguous else None
    s = pd.Series(flat if flat is not None else ["".join(r) for r in raw], dtype=object)
    return (s.str[0:8] + "-" + s.str[8:12] + "-" + s.str[12:16] + "-" + s.str[16:20] + "-" + s.str[20:32]).to_numpy()


def synthetic_transfers(n: int, seed: int = 7, non_ascii: float = 0.01) -> pd.DataFrame:
    """``n`` unit transfers in file order, shaped like ``build_transfers(...).transfers``; a
    ``non_ascii`` fraction of them has a lot id with Vietnamese letters (the files are then UTF-8
    rather than plain ASCII, the slower case for both writing and reading back)."""
    rng = np.random.default_rng(seed)
    members = max(n // 3, 1)
    member = np.sort(rng.integers(0, members, size=n))
    legacy = pd.Series(member).map("M{:07d}".format).to_numpy(dtype=object)
    target_of = _hex_ids(rng, members)
    spending = rng.random(n) < 0.05
    pending = (rng.random(n) < 0.05) & ~spending
    never = (rng.random(n) < 0.3) & ~spending
    cut = np.datetime64("2026-06-30T23:59:59")
    reg = cut - rng.integers(0, 3 * 365 * 86400, size=n).astype("timedelta64[s]")
    reg[spending] = cut
    end = cut + rng.integers(1, 2 * 365, size=n).astype("timedelta64[D]")
    unlock = cut + rng.integers(1, 60, size=n).astype("timedelta64[D]")

    def fmt(a: np.ndarray) -> np.ndarray:
        return np.char.replace(np.datetime_as_string(a.astype("datetime64[s]"), unit="s"), "T", " ").astype(object)

    expires = fmt(end)
    expires[never | spending] = ""
    unlock_at = fmt(unlock)
    unlock_at[~pending] = ""
    days = pd.array(((end - cut).astype("timedelta64[D]").astype(np.int64)), dtype="Int64")
    days[never | spending] = pd.NA
    lots = pd.Series(rng.integers(0, 10**8, size=n)).map("G{:08d}".format).to_numpy(dtype=object)
    multi = rng.random(n) < 0.1
    lots[multi] = lots[multi] + "," + lots[np.roll(multi, 1)][: int(multi.sum())]
    accents = rng.random(n) < non_ascii
    lots[accents] = lots[accents] + "-Hà Nội"
    lots[spending] = ""
    text = {  # object columns, as build_transfers makes them (pandas 3 would infer its str dtype)
        "transfer_id": _hex_ids(rng, n), "legacy_id": legacy, "target_id": target_of[member],
        "wallet_type_code": np.full(n, "default", dtype=object),
        "type": np.where(spending, "spending", "adding").astype(object), "registered_on": fmt(reg),
        "expires_at": expires, "unlock_at": unlock_at, "lot_ids": lots}
    text = {k: pd.Series(v, dtype=object) for k, v in text.items()}
    return pd.DataFrame({
        **text,
        "points": rng.integers(1, 5000, size=n).astype(np.int64),
        "validity_days": days,
    })[["transfer_id", "legacy_id", "target_id", "wallet_type_code", "type", "points", "registered_on",
        "expires_at", "unlock_at", "validity_days", "lot_ids"]]


def _slices(frame: pd.DataFrame | None, rows: int, pieces: int, non_ascii: float):
    """The transfers in ``pieces`` slices: of ``frame``, or (no frame) each built on its own."""
    bounds = np.linspace(0, rows, pieces + 1).astype(np.int64).tolist()
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        yield frame.iloc[lo:hi] if frame is not None else synthetic_transfers(hi - lo, seed=7 + k, non_ascii=non_ascii)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.transfer_files", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None, help="directory for the files (default: a temporary one)")
    ap.add_argument("--formats", default="json,xml")
    ap.add_argument("--non-ascii", type=float, default=0.01, help="fraction of lot ids with non-ASCII letters")
    ap.add_argument("--pieces", type=int, default=1, help="slices the transfers are written in")
    ap.add_argument("--stream", action="store_true", help="build each slice on its own: no whole frame")
    ap.add_argument("--live-objects", type=float, default=0, metavar="MILLIONS",
                    help="keep this many million small containers alive meanwhile, as the stage's frames and "
                         "dicts are: the garbage collector's full passes walk them all")
    args = ap.parse_args()
    live = [(i, None) for i in range(int(args.live_objects * 1e6))]  # noqa: F841 - kept alive on purpose
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-transfers-"))
    t0 = time.monotonic()
    frame = None if args.stream else synthetic_transfers(args.rows, non_ascii=args.non_ascii)
    print(f"synthetic frame: {0 if frame is None else len(frame):,} rows in {time.monotonic() - t0:.1f} s; "
          f"{args.pieces} piece(s){', each built on its own' if args.stream else ''}; {len(live):,} live containers; "
          f"RSS {status_mb('VmRSS'):.0f} MB, peak {status_mb('VmHWM'):.0f} MB")
    print(f"{'phase':<34}{'seconds':>9}{'RSS MB':>9}{'peak MB':>9}")
    for fmt in args.formats.split(","):
        reset_peak()
        busy = 0.0
        writer = TransferFileWriter(out / "writer_only" / f"unit_transfers.{fmt}", fmt)
        for piece in _slices(frame, args.rows, args.pieces, args.non_ascii):
            t0 = time.monotonic()
            writer.write(piece)
            busy += time.monotonic() - t0
            del piece
        t0 = time.monotonic()
        writer.close()
        busy += time.monotonic() - t0
        print(f"{fmt + ' writer alone':<34}{busy:>9.1f}{status_mb('VmRSS'):>9.0f}{status_mb('VmHWM'):>9.0f}")
        shutil.rmtree(out / "writer_only")
        reset_peak()
        busy = 0.0
        target = TransferFiles(out, {fmt})
        for piece in _slices(frame, args.rows, args.pieces, args.non_ascii):
            t0 = time.monotonic()
            target.write(piece)
            busy += time.monotonic() - t0
            del piece
        t0 = time.monotonic()
        files, rows = target.close()
        busy += time.monotonic() - t0
        size = sum(p.stat().st_size for p in files)
        print(f"{fmt + ' write + read back':<34}{busy:>9.1f}{status_mb('VmRSS'):>9.0f}{status_mb('VmHWM'):>9.0f}"
              f"   {len(files)} file(s), {size / 1e6:.0f} MB, rows {rows[0]['rows_written']:,}, "
              f"bad {rows[0]['bad_values']}, dup {rows[0]['duplicate_ids']}, total {rows[0]['total_written']:,}")
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
