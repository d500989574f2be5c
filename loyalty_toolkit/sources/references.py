"""Every member reference in the (frozen) inputs, so stage 02 can prove each one resolves.

Stage 02 must show that every row of the ledger, the opening balances and the Splio reward files
that names a member reaches a target member ID. This module only extracts the references; the
resolution is :func:`loyalty_toolkit.stages.mapping.matching.coverage`.

=====================  ===============  ==========================================================
input                  ref_kind         ref_value / ref_value2 / ref_raw
=====================  ===============  ==========================================================
``ledger``             ``legacy_id``    the user id column (config ``sources.ledger``), trimmed
``opening_balances``   ``phone_email``  phone as E.164 read in the file's ``default_region`` (else the members')
                                        / email key (local part case-folded) / the phone as
                                        written (so a national number can be re-read in the
                                        region of the member the email names)
``rewards/<file>``     ``card``         ``card_code`` of earnreward and burnreward files, trimmed
=====================  ===============  ==========================================================

Masterreward files describe the catalog and name no member. The frame has one row per reference
with ``input``, ``file`` (the file's name) and ``line`` (physical line, header = 1). Text columns
are categoricals: ten million ledger rows name far fewer members, and a categorical stores each
user id once plus a small integer per row.

Cost: the ledger's user id column is read by pyarrow when the file's layout lets it agree with
the csv module (:mod:`~loyalty_toolkit.sources.arrow_csv`: no quotes, no blank lines); otherwise
it is streamed by the csv module keeping only that column, about a second per million rows.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from loyalty_toolkit.config import LEDGER_COLUMNS, OPENING_COLUMNS, Config
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.normalize import normalize_emails, normalize_phones
from loyalty_toolkit.sources import arrow_csv
from loyalty_toolkit.sources.csvfile import read_table, sniff, to_frame
from loyalty_toolkit.sources.splio import read_scope_file

REFERENCE_COLUMNS: tuple[str, ...] = ("input", "file", "line", "ref_kind", "ref_value", "ref_value2", "ref_raw")
REF_KINDS: tuple[str, ...] = ("legacy_id", "card", "phone_email", "email", "phone")
MEMBER_SCOPES: tuple[str, ...] = ("earnreward", "burnreward")
TEXT_COLUMNS = tuple(c for c in REFERENCE_COLUMNS if c != "line")


def member_references(config: Config, paths: Mapping[str, Path], *, stage: str = "mapping") -> pd.DataFrame:
    """The member references of the inputs in ``paths`` (name -> file, e.g. the frozen copies).

    Names used: ``ledger``, ``opening_balances`` and ``rewards/<file>``; others are ignored. Columns:
    :data:`REFERENCE_COLUMNS`, in input-name order then line order. Raises InputError (file, line,
    column) when an input cannot be read or lacks the member column.
    """
    parts: list[pd.DataFrame] = []
    for name in sorted(paths):
        path = Path(paths[name])
        if name == "ledger":
            src = config.sources.ledger
            column = src.column_map()["user_id"] if src is not None else LEDGER_COLUMNS["user_id"]
            parts.append(_ledger(name, path, column, src.encoding if src else "auto",
                                 src.delimiter if src else "auto", stage))
        elif name == "opening_balances":
            src = config.sources.opening_balances
            columns = src.column_map() if src is not None else dict(OPENING_COLUMNS)
            parts.append(_opening(name, path, columns, src.encoding if src else "auto",
                                  src.delimiter if src else "auto", config.phone_region("opening_balances"), stage))
        elif name.startswith("rewards/"):
            part = _rewards(name, path, stage)
            if part is not None:
                parts.append(part)
    return _combine(parts)


def read_column(path: Path, header: str, *, encoding: str = "auto", delimiter: str = "auto",
                stage: str | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One column of a delimited file without keeping the others: ``(codes, uniques, lines)``.

    Values are trimmed and interned: ``uniques[codes[i]]`` is record i's value and ``lines[i]``
    the physical line where it starts. Same rules as :func:`csvfile.read_table` (blank lines
    skipped, strict quoting, every record as wide as the header).
    """
    path = Path(path)
    fmt = sniff(path, encoding, delimiter, stage=stage)
    fast = _read_column_fast(path, fmt.encoding, fmt.delimiter, header, stage)
    if fast is not None:
        return fast
    index: dict[str, int] = {}
    codes = array("q")
    lines = array("q")
    try:
        with open(path, encoding=fmt.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=fmt.delimiter, strict=True)
            prev = 0
            position = width = -1
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if position < 0:
                    position, width = _find_header(row, header, path, start, stage), len(row)
                    continue
                if len(row) != width:
                    raise InputError(f"expected {width} fields, found {len(row)}", stage=stage, file=path.name,
                                     line=start)
                value = row[position].strip()
                code = index.get(value)
                if code is None:
                    code = index[value] = len(index)
                codes.append(code)
                lines.append(start)
    except csv.Error as exc:
        raise InputError(f"malformed quoting: {exc}", stage=stage, file=path.name, line=prev + 1) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", stage=stage, file=path.name) from None
    if position < 0:
        raise InputError("file is empty (no header row)", stage=stage, file=path.name, line=1)
    return np.frombuffer(codes, dtype=np.int64), list(index), np.frombuffer(lines, dtype=np.int64)


def _read_column_fast(path: Path, codec: str, delimiter: str, header: str,
                      stage: str | None) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """:func:`read_column` through pyarrow, for a file laid out so the two readers cannot disagree
    (one record per physical line, the header on line 1); None otherwise, or when pyarrow refuses
    it. Codes follow the first appearance of each trimmed value, as the csv loop numbers them."""
    if not arrow_csv.qualifies(path, codec):
        return None
    with open(path, encoding=codec, newline="") as handle:
        first = handle.readline()
    row = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter), [])
    if len(row) < 2:
        return None  # a blank line before the header, or one column, where a blank line reads as a record
    position = _find_header(row, header, path, 1, stage)
    frame = arrow_csv.read_columns(path, delimiter, len(row), ["value"], {"value": position})
    if frame is None:
        return None
    values = frame["value"].array
    # pyarrow numbers the values as read in order of first appearance; trimming may merge some,
    # and factorizing the trimmed categories in that order keeps first appearance
    merged, uniques = pd.factorize(pd.Index(values.categories, dtype=object).str.strip())
    codes = merged[values.codes].astype(np.int64)
    return codes, [str(u) for u in uniques], frame["_line"].to_numpy(dtype=np.int64)


def _find_header(row: list[str], header: str, path: Path, line: int, stage: str | None) -> int:
    names = [h.strip() for h in row]
    names[0] = names[0].lstrip("\ufeff").strip()
    if header.strip() not in names:
        found = ", ".join(n for n in names if n)
        raise InputError(f"member column missing from header (found: {found})", stage=stage, file=path.name,
                         line=line, column=header)
    return names.index(header.strip())


def _constant(value: str, n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _part(name: str, path: Path, lines: np.ndarray, kind: str, value: pd.Categorical | pd.Series,
          value2: pd.Series | None = None, raw: pd.Series | None = None) -> pd.DataFrame:
    n = len(lines)

    def cat(series: pd.Series | pd.Categorical | None) -> pd.Categorical:
        if series is None or n == 0:  # an empty file: text categories all the same, as union_categoricals needs
            return _constant("", n)
        return series if isinstance(series, pd.Categorical) else pd.Categorical(np.asarray(series, dtype=object))

    return pd.DataFrame({
        "input": _constant(name, n), "file": _constant(path.name, n), "line": np.asarray(lines, dtype=np.int64),
        "ref_kind": _constant(kind, n), "ref_value": cat(value), "ref_value2": cat(value2), "ref_raw": cat(raw),
    })


def _ledger(name: str, path: Path, column: str, encoding: str, delimiter: str, stage: str) -> pd.DataFrame:
    codes, uniques, lines = read_column(path, column, encoding=encoding, delimiter=delimiter, stage=stage)
    if not uniques:
        uniques = [""]
    values = pd.Categorical.from_codes(codes.astype(np.int32), categories=uniques)
    return _part(name, path, lines, "legacy_id", values)


def _opening(name: str, path: Path, columns: dict[str, str], encoding: str, delimiter: str, region: str,
             stage: str) -> pd.DataFrame:
    wanted = {"phone": columns["phone"], "email": columns["email"]}
    table = read_table(path, encoding=encoding, delimiter=delimiter, required=wanted.values(), allow_empty=True,
                       stage=stage)
    if not len(table):
        return _part(name, path, np.zeros(0, dtype=np.int64), "phone_email", pd.Series([], dtype="str"))
    frame = to_frame(table, wanted)
    phone_raw = frame["phone"].str.strip()
    phones = normalize_phones(phone_raw, region)["phone"]
    email_keys = normalize_emails(frame["email"])["email_key"]
    return _part(name, path, frame["_line"].to_numpy(), "phone_email", phones, email_keys, phone_raw)


def _rewards(name: str, path: Path, stage: str) -> pd.DataFrame | None:
    splio = read_scope_file(path, stage=stage)
    if splio.scope not in MEMBER_SCOPES:
        return None
    rows = splio.rows
    return _part(name, path, rows["_line"].to_numpy(), "card", rows["card_code"].str.strip())


def _combine(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame; categories are unioned so ten million ledger rows are never turned into strings."""
    if not parts:
        empty = {c: pd.Categorical([]) for c in TEXT_COLUMNS}
        return pd.DataFrame({**empty, "line": np.zeros(0, dtype=np.int64)}, columns=list(REFERENCE_COLUMNS))
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    data = {c: union_categoricals([_text_categories(p[c].array) for p in parts]) for c in TEXT_COLUMNS}
    data["line"] = np.concatenate([p["line"].to_numpy() for p in parts])
    return pd.DataFrame(data, columns=list(REFERENCE_COLUMNS))


def _text_categories(values: pd.Categorical) -> pd.Categorical:
    """The same values with ``str`` categories: union_categoricals refuses mixed category dtypes, and
    an input with no rows (a header-only file) infers ``object`` categories where others have ``str``."""
    if values.categories.dtype == "str":
        return values
    return pd.Categorical.from_codes(values.codes, categories=pd.Index(values.categories, dtype="str"))
