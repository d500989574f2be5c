"""Read and parse the ledger block by block: parse_ledger(read_ledger(...)) without the file's text in memory.

read_ledger's frame of a ten-million-row ledger holds every source field as text, about 4 GB,
before parse_ledger turns it into the lean entries (about 1 GB). Here the file is read a block at
a time (``ledger.read.read_ledger_blocks``), each block is parsed to the entry columns and its text
dropped, and the blocks' entries are joined into exactly what the whole-file path gives: the same
rows, values, dtypes, categories in the same order, rejects and lines. The one rule that spans
rows, GUESTPOINTSID_DUPLICATE, is checked once over the joined entries.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.config import LEDGER_COLUMNS, LedgerSource
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources import arrow_csv
from loyalty_toolkit.sources.csvfile import categories_dtype
from loyalty_toolkit.sources.ledger.parse import (
    ENTRY_COLUMNS,
    GUESTPOINTSID_DUPLICATE,
    LedgerParse,
    _either,
    _Text,
    parse_ledger,
)
from loyalty_toolkit.sources.ledger.read import STAGE, read_ledger, read_ledger_blocks

# About 500k rows of a Zenoti export: a block's text and parse stay within a few hundred MB.
BLOCK_BYTES = 1 << 26
# Entry columns whose categories blocks cannot reproduce: the *_utc ones are in time order, the
# date *_raw ones share one set across the three date fields. Asking for one reads the file whole.
_WHOLE_ONLY = frozenset({"action_at_utc", "effective_start_utc", "effective_end_utc",
                         "action_at_raw", "effective_start_raw", "effective_end_raw"})
# What the join needs of every block, whatever was asked: the repeat check and "center".
_NEEDED = ("line", "kind", "guestpointsid", "user_id", "accrual_center", "payment_center")


def read_and_parse_ledger(
    src: LedgerSource,
    *,
    timezone: str,
    stage: str = STAGE,
    fields: Collection[str] | None = None,
    date_format: str | None = None,
    columns: dict[str, str] | None = None,
    entry_columns: Sequence[str] | None = None,
    block_bytes: int | None = None,
    whole_below: int | None = None,
) -> LedgerParse:
    """``parse_ledger(read_ledger(src, stage=stage, fields=fields), ...)``, read and parsed a block at a time.

    Same arguments and result as those two calls (``source_file`` is the file's name). A file the
    pyarrow reader may take (``arrow_csv.qualifies``, at least ``whole_below`` bytes) goes in
    blocks of about ``block_bytes`` (default :data:`BLOCK_BYTES`); any other file, a file pyarrow
    refuses part-way (read_ledger then reports the problem) and entry columns in
    :data:`_WHOLE_ONLY` go the whole-file way.
    """
    source_file = Path(src.path).name
    options = {"source_file": source_file, "timezone": timezone, "date_format": date_format, "columns": columns}
    order = list(dict.fromkeys(ENTRY_COLUMNS if entry_columns is None else entry_columns))
    blocks = None
    if not set(order) & _WHOLE_ONLY:
        blocks = read_ledger_blocks(src, stage=stage, fields=fields, block_bytes=block_bytes or BLOCK_BYTES,
                                    whole_below=whole_below)
    if blocks is not None:
        try:
            return _parse_blocks(blocks, order, options)
        except arrow_csv.Refused:
            pass
    frame = read_ledger(src, stage=stage, fields=fields)
    return parse_ledger(frame, entry_columns=entry_columns, **options)


def _parse_blocks(blocks, order: list[str], options: dict) -> LedgerParse:
    """Parse each block without the repeat check, then join the entries and check repeats over all."""
    wanted = [c for c in dict.fromkeys([*order, *_NEEDED]) if c != "center"]
    parts: dict[str, list[pd.Series]] = {c: [] for c in wanted}
    rejects: list[pd.DataFrame] = []
    padded: list[tuple[np.ndarray, np.ndarray]] = []
    rows = 0
    for frame in blocks:
        parsed = parse_ledger(frame, entry_columns=wanted, check_repeats=False, **options)
        padded.append(_padded_ids(frame))
        del frame
        rows += parsed.rows_read
        rejects.append(parsed.rejects)
        for c in wanted:
            parts[c].append(parsed.entries[c])
        del parsed

    joined = {c: _join(parts.pop(c)) for c in _NEEDED}
    keep, repeats = _repeats(joined, padded, options)
    if "center" in order:
        joined["center"] = _center(joined)
    data: dict[str, object] = {}
    for c in order:  # one column at a time, so the blocks' copy of it goes before the next is joined
        column = joined.pop(c) if c in joined else _join(parts.pop(c))
        data[c] = column if keep is None else column[keep]
    del joined
    entries = pd.DataFrame({c: data.pop(c) for c in order}, columns=order, copy=False)
    if repeats is not None:
        rejects.append(repeats)
    # an empty frame's text columns are object, a filled one's str: joining them would give object
    filled = [r for r in rejects if len(r)] or rejects[:1]
    rejected = pd.concat(filled, ignore_index=True) if len(filled) > 1 else filled[0]
    if repeats is not None:  # the blocks' rejects are in line order; a repeat goes among them
        rejected = rejected.sort_values("line", kind="stable", ignore_index=True)
    return LedgerParse(entries=entries, rejects=rejected, rows_read=rows, source_file=options["source_file"],
                       timezone=options["timezone"])


def _join(pieces: list[pd.Series]):
    """The blocks' column as one array: Categoricals get the categories of all blocks, in order of
    first appearance (what one read of the whole file gives), each distinct value hashed once."""
    first = pieces[0]
    if not isinstance(first.dtype, pd.CategoricalDtype):
        joined = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else first
        pieces.clear()
        return joined.array if isinstance(joined.dtype, pd.api.extensions.ExtensionDtype) else joined.to_numpy()
    cats = [p.cat.categories for p in pieces]
    if all(c is cats[0] or (len(c) == len(cats[0]) and c.equals(cats[0])) for c in cats):
        codes = np.concatenate([p.cat.codes.to_numpy() for p in pieces])
        pieces.clear()
        return pd.Categorical.from_codes(codes, dtype=first.dtype, validate=False)
    merged, values = pd.factorize(np.concatenate([c.to_numpy(dtype=object) for c in cats]))
    codes = np.empty(sum(len(p) for p in pieces), dtype=np.int32)
    offset = pos = 0
    for p, c in zip(pieces, cats):
        local = p.cat.codes.to_numpy()
        codes[pos:pos + len(local)] = merged[offset:offset + len(c)][local]
        offset += len(c)
        pos += len(local)
    pieces.clear()
    del merged, cats
    return pd.Categorical.from_codes(codes, dtype=categories_dtype(values), validate=False)


def _center(joined: dict) -> pd.Categorical:
    """parse_ledger's "center" (accrual center for accruals, else payment center) from the joined columns."""
    acc, pay = joined["accrual_center"], joined["payment_center"]
    is_accrual = np.asarray(joined["kind"].codes == 0)
    return _either(is_accrual, _Text(acc.codes, acc.categories.to_numpy(dtype=object), "accrual_center"),
                   _Text(pay.codes, pay.categories.to_numpy(dtype=object), "payment_center"), None)


def _padded_ids(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Lines and cells of the block's guestpointsid as read where blanks surround it, for the repeat
    rejects' ``value`` (the cell as read); a clean export has none."""
    if "guestpointsid" not in frame.columns:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    cells = frame["guestpointsid"].array
    values = cells.categories.to_numpy(dtype=object)
    # str.strip returns the very object when there is nothing to strip: no comparison of text
    odd = np.fromiter(map(operator.is_not, map(str.strip, values), values), dtype=bool, count=len(values))
    rows = np.flatnonzero(odd[cells.codes]) if odd.any() else np.zeros(0, dtype=np.int64)
    return frame["_line"].to_numpy(dtype=np.int64)[rows], values[cells.codes[rows]]


def _repeats(joined: dict, padded: list[tuple[np.ndarray, np.ndarray]],
             options: dict) -> tuple[np.ndarray | None, pd.DataFrame | None]:
    """parse_ledger's GUESTPOINTSID_DUPLICATE over all blocks: rows to keep and the rejects (None, None: no repeat).

    A repeat is an accepted accrual whose non-empty id an earlier accepted accrual has: exactly the
    rows parse_ledger's last check looks at, since every earlier check already ran per block.
    """
    gp, kind, lines, user_id = joined["guestpointsid"], joined["kind"], joined["line"], joined["user_id"]
    ids = gp.categories.to_numpy(dtype=object)
    candidates = np.flatnonzero((np.asarray(kind.codes) == 0) & (ids != "")[gp.codes])
    cand_codes = gp.codes[candidates]
    repeat = pd.Series(cand_codes).duplicated(keep="first").to_numpy()
    if not repeat.any():
        return None, None
    first_line = np.zeros(len(ids), dtype=np.int64)
    first_line[cand_codes[~repeat]] = np.asarray(lines)[candidates[~repeat]]
    rows = candidates[repeat]
    at = np.asarray(lines)[rows]
    value = ids[gp.codes[rows]]
    odd_lines = np.concatenate([p[0] for p in padded])
    if len(odd_lines):  # the cell as read, where it differs from the trimmed id
        odd_values = np.concatenate([p[1] for p in padded])
        hit = np.isin(at, odd_lines)
        value[hit] = odd_values[np.searchsorted(odd_lines, at[hit])]
    headers = {**LEDGER_COLUMNS, **(options["columns"] or {})}
    n = len(rows)
    repeats = pd.DataFrame({
        "stage": STAGE,
        "file": options["source_file"],
        "line": at,
        "record_key": user_id.categories.to_numpy(dtype=object)[user_id.codes[rows]],
        "column": np.full(n, headers.get("guestpointsid", "guestpointsid"), dtype=object),
        "reason_code": np.full(n, GUESTPOINTSID_DUPLICATE, dtype=object),
        "message": np.asarray([f"accrual id already used on line {x}" for x in first_line[gp.codes[rows]].tolist()],
                              dtype=object),
        "value": value,
    }, columns=list(REJECT_COLUMNS))
    repeats["line"] = repeats["line"].astype(np.int64)
    keep = np.ones(len(lines), dtype=bool)
    keep[rows] = False
    return keep, repeats
