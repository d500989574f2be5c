"""Open Loyalty coupon files: one file of codes per reward, named after the reward.

Stage 04 writes them; stage 05 reads them back to count the codes it promises were written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from loyalty_toolkit.csv_cells import is_formula

COUPON_PREFIX = "coupons_"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")


def coupon_file_name(external_id: str) -> str:
    """``coupons_<external_id>.csv``; an id that is not a safe file name is replaced by a safe one
    plus a short hash of the id, so two ids never share a file."""
    if _SAFE_NAME.fullmatch(external_id) and len(external_id) <= 100:
        return f"{COUPON_PREFIX}{external_id}.csv"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", external_id)[:80].strip("._") or "reward"
    digest = hashlib.sha256(external_id.encode("utf-8")).hexdigest()[:10]
    return f"{COUPON_PREFIX}{safe}-{digest}.csv"


def render_codes(codes: Iterable[str]) -> str:
    """One code per line, no header, quoted only when a code holds a comma, quote or line break."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for code in codes:
        if is_formula(code):  # a coupon code is taken as written: stage 04 refuses it (FORMULA_CELL)
            raise ValueError(f"coupon code {code!r} starts like a spreadsheet formula")
        writer.writerow([code])
    return buf.getvalue()


def write_coupon_files(coupons: pd.DataFrame, directory: Path) -> list[Path]:
    """One CSV of codes per reward; each code once (a code is one coupon in the target)."""
    written = []
    for name, part in coupons.groupby("coupon_file", sort=True):
        path = Path(directory) / str(name)
        path.write_text(render_codes(dict.fromkeys(part["code"])), encoding="utf-8", newline="")
        written.append(path)
    return written


def read_coupon_file(path: Path) -> list[str]:
    """The codes of a coupon file (what the outputs gate recounts)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [row[0] for row in csv.reader(fh) if row]
