"""The local rehearsal of Splio's master reward import: internal ids and the export that lists them.

A rehearsal, not Splio. Splio gives every master reward it imports an internal id (the number in
the url of the reward page; the seed's Example 2 names rewards 1066, 1086, 1455), and earnreward
files must name rewards by it. The rehearsal gives each master reward a number that looks like
one but comes from a generator seeded by the rehearsal seed and the imported files' content, so
a rehearsal replays byte for byte, and writes an export of the catalog in the layout stage 04
reads by default (``id;external_id;name``).
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from loyalty_toolkit.csv_cells import neutralise_row

EXPORT_HEADER = ("id", "external_id", "name")
FIRST_ID, LAST_ID = 1000, 999_999
NOTICE = ("REHEARSAL: this master reward export comes from loyalty-migrate's local rehearsal of the Splio "
          "masterreward import, not from Splio. Internal ids here are not Splio's.\n")


def assign_internal_ids(external_ids: Sequence[str], *, seed: int, content: Iterable[bytes]) -> dict[str, str]:
    """external_id -> a distinct internal id, the same for the same seed, content and ids."""
    h = hashlib.sha256(str(seed).encode())
    for chunk in content:
        h.update(chunk)
    rng = random.Random(h.digest())
    numbers = rng.sample(range(FIRST_ID, LAST_ID + 1), len(external_ids))
    return {ext: str(n) for ext, n in zip(external_ids, numbers, strict=True)}


def write_master_export(rows: Iterable[tuple[str, str, str]], path: str | Path) -> Path:
    """Write (internal id, external_id, name) rows as the export, semicolon-separated UTF-8, ``\\n``
    line ends; a README beside it says it is a rehearsal."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(EXPORT_HEADER)
        writer.writerows(neutralise_row(row) for row in rows)
    (path.parent / "README.txt").write_text(NOTICE, encoding="utf-8")
    return path
