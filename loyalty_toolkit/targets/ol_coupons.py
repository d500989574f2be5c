"""Open Loyalty coupon files: one file of codes per reward, named after the reward.

Stage 04 writes them; stage 05 reads them back to count the codes it promises were written. The
format is the target profile's (``targets/ol_profiles.py``, rule ``coupon_format``): ``\n`` writes
a CSV of codes, one per line (hosted: "a CSV file containing coupon codes"); ``;`` writes the codes
separated by ``;`` on one line (the 3.x admin reads the file as text and splits it on ``;``), so a
code holding ``;`` or a line break cannot be written there. A reward whose codes would reach the
upload limit is split into ``coupons_<id>_0001.csv``, ``_0002`` … (``targets/parts.py``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from loyalty_toolkit.csv_cells import is_formula
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.targets.parts import Run, write_parts

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


def _items(codes: list[str], separator: str, file_name: str) -> list[bytes]:
    """Each code as the bytes it takes in the file (the separator between items is the writer's)."""
    if separator == "\n":
        return [render_codes([code]).encode("utf-8") for code in codes]
    for code in codes:
        if not code or separator in code or "\n" in code or "\r" in code:
            raise InputError(f"coupon code {code!r} cannot be written: the target splits the file on "
                             f"{separator!r}", file=file_name, column="code")
    return [code.encode("utf-8") for code in codes]


def write_coupon_files(coupons: pd.DataFrame, directory: Path, *, separator: str = "\n",
                       max_file_bytes: int | None = None) -> list[Path]:
    """One file of codes per reward, each code once (a code is one coupon in the target), split
    below ``max_file_bytes``; earlier parts of the same reward are removed first."""
    written = []
    directory = Path(directory)
    sep = b"" if separator == "\n" else separator.encode("utf-8")
    for name, part in coupons.groupby("coupon_file", sort=True):
        path = directory / str(name)
        for stale in directory.glob(f"{path.stem}_[0-9][0-9][0-9][0-9]{path.suffix}"):
            stale.unlink()
        items = _items(list(dict.fromkeys(part["code"])), separator, path.name)
        sizes = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        parts = write_parts([Run(sep.join(items), len(items), sizes)],
                            lambda k, p=path: p.with_name(f"{p.stem}_{k:04d}{p.suffix}"),
                            header=b"", footer=b"", sep=sep, max_file_bytes=max_file_bytes, noun="coupon code")
        if len(parts) == 1:
            parts[0].replace(path)
            parts = [path]
        written += parts
    return written


def read_coupon_file(path: Path) -> list[str]:
    """The codes of a coupon file (what the outputs gate recounts), in either format: a file without
    a line break is one ``;``-separated line (our writer never puts a line break there)."""
    text = Path(path).read_text(encoding="utf-8")
    if "\n" not in text and "\r" not in text:
        return [code for code in text.split(";") if code]
    return [row[0] for row in csv.reader(io.StringIO(text, newline="")) if row]
