"""Stage 03's lots -> transfers path at scale: build_lots, then build_transfers, on a synthetic ledger.

    python -m benchmarks.transfers_build --rows 1000000 [--granularity lot] [--negative review] [--digest]

Generates ``--rows`` ledger entries (about 60 % accruals, 10 rows per member, 2 % of members without
a target ID, some pending and never-expiring lots, 15 % of redemptions without a link) straight as
an entries frame, so the reading side is not measured. Prints per phase the wall seconds, the RSS
after it and the phase's own peak RSS (VmHWM, reset before each phase through
``/proc/self/clear_refs``). ``--digest`` also prints a hash of every frame build_transfers returns,
to compare two versions of the code on the same input. Run each measurement in a fresh process.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from benchmarks.measure import reset_peak, status_mb
from loyalty_toolkit.stages.transfers.engine import build_transfers
from loyalty_toolkit.stages.transfers.lots import build_lots

CUTOVER = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
_DAY = 86_400


def synthetic_entries(rows: int, seed: int) -> pd.DataFrame:
    """A parse_ledger-shaped entries frame: accruals and redemptions of ``rows // 10`` members."""
    rng = np.random.default_rng(seed)
    members = max(rows // 10, 1)
    n_acc = int(rows * 0.6)
    n_red = rows - n_acc
    cut = int(CUTOVER.timestamp())
    acc_user = rng.integers(0, members, n_acc)
    acc_at = rng.integers(cut - 500 * _DAY, cut, n_acc)
    acc_pts = rng.integers(1, 50_000, n_acc) * 10_000  # 0.01 .. 500 points, in micro-points
    end = np.where(rng.random(n_acc) < 0.1, -1, (acc_at // _DAY + 366) * _DAY)  # none, or a year on at midnight
    start = np.where(rng.random(n_acc) < 0.03, cut + rng.integers(1, 60, n_acc) * _DAY, acc_at)  # 3 % pending
    red_lot = rng.integers(0, n_acc, n_red)
    red_user = acc_user[red_lot]
    red_at = np.minimum(acc_at[red_lot] + rng.integers(0, 200 * _DAY, n_red), cut)
    red_pts = -np.maximum(acc_pts[red_lot] // rng.integers(2, 6, n_red) // 10_000 * 10_000, 10_000)
    linked = rng.random(n_red) >= 0.15

    def stamps(sec: np.ndarray) -> pd.DatetimeIndex:
        us = np.where(sec < 0, np.iinfo(np.int64).min, sec * 1_000_000)
        return pd.DatetimeIndex(us.view("datetime64[us]")).tz_localize("UTC")

    lot_ids = np.asarray([f"{10_000_000 + i}" for i in range(n_acc)], dtype=object)
    users = np.asarray([f"G{u:08d}" for u in range(members)], dtype=object)
    link = np.where(linked, lot_ids[red_lot], "").astype(object)
    frame = pd.DataFrame({
        "line": np.arange(2, rows + 2, dtype=np.int64),
        "user_id": np.concatenate([users[acc_user], users[red_user]]),
        "kind": np.asarray(["accrual"] * n_acc + ["redemption"] * n_red, dtype=object),
        "guestpointsid": np.concatenate([lot_ids, link]),
        "points_units": np.concatenate([acc_pts, red_pts]).astype(np.int64),
        "action_at_ts": stamps(np.concatenate([acc_at, red_at])),
        "effective_start_ts": stamps(np.concatenate([start, np.full(n_red, -1)])),
        "effective_end_ts": stamps(np.concatenate([end, np.full(n_red, -1)])),
        "program": np.asarray(["Regular", "Gold"], dtype=object)[rng.integers(0, 2, rows)],
        "center": np.asarray(["Paris", "Lyon", "Hanoi"], dtype=object)[rng.integers(0, 3, rows)],
    })
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # ledger order is not lot order


def _digest(frame: pd.DataFrame) -> str:
    h = hashlib.sha256(",".join(f"{c}:{frame[c].dtype}" for c in frame.columns).encode())
    for c in frame.columns:
        h.update(pd.util.hash_pandas_object(frame[c].astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.transfers_build", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--granularity", default="lot", choices=["lot", "member_expiry"])
    ap.add_argument("--negative", default="review", choices=["carry", "review"])
    ap.add_argument("--rounding", default="ROUND_HALF_EVEN")
    ap.add_argument("--digest", action="store_true", help="print a hash of each output frame")
    args = ap.parse_args()
    rows: list[tuple[str, float, float, float]] = []

    def phase(name: str, fn):
        reset_peak()
        t0 = time.monotonic()
        out = fn()
        rows.append((name, time.monotonic() - t0, status_mb("VmRSS"), status_mb("VmHWM")))
        return out

    entries = phase("synthetic entries", lambda: synthetic_entries(args.rows, args.seed))
    lr = phase("build_lots", lambda: build_lots(entries, cutover=CUTOVER))
    del entries
    users = lr.balances["user_id"].to_numpy(dtype=object)
    kept = users[np.arange(len(users)) % 50 != 0]  # 2 % of members have no target ID
    id_map = pd.DataFrame({"legacy_id": kept, "target_id": np.asarray(["T" + u for u in kept.tolist()], dtype=object)})
    lots = lr.lots
    live = int(lots["status"].isin(["open", "pending"]).sum())
    result = phase("build_transfers", lambda: build_transfers(
        lots, id_map, granularity=args.granularity, rounding=args.rounding, negative_balances=lr.balances,
        negative_mode=args.negative, cutover=CUTOVER, source_file="ledger.csv"))
    print(f"{args.rows:,} ledger rows, {len(lots):,} lots ({live:,} open or pending), {len(lr.balances):,} members; "
          f"{len(result.transfers):,} transfers, {len(result.zero):,} zero, {len(result.rejects):,} rejects, "
          f"{len(result.review):,} review; granularity {args.granularity}, negative {args.negative}")
    print(f"{'phase':<20}{'seconds':>9}{'RSS MB':>9}{'peak MB':>9}")
    for name, sec, rss, hwm in rows:
        print(f"{name:<20}{sec:>9.1f}{rss:>9.0f}{hwm:>9.0f}")
    if args.digest:
        for name in ("transfers", "zero", "rejects", "review", "per_member"):
            print(f"digest {name}: {_digest(getattr(result, name))}")
        print(f"residue_total: {result.residue_total}")


if __name__ == "__main__":
    main()
