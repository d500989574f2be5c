"""Read Splio reward import files (seed 001/002): the file name, the three scopes and their columns.

Splio names each file ``universe_scope_subsection_YYYYMMDD.csv`` and processes files by scope
(``masterreward``, then ``earnreward``, then ``burnreward``) and date. A file is refused whole when
a mandatory column is missing, a column is not recognised, or it holds more than 200,000 objects.

Splio gives meaning to quoting, which generic CSV readers drop, so this module tokenizes the
semicolon-separated text itself: an unquoted ``NULL`` (exactly, no spaces) and an unquoted empty
field (``;;``, the Spanish article says so) are NULL; a quoted ``""`` is an empty string that never
erases a stored value; a quoted ``"NULL"`` is the four-letter text. Values reach the frame as text
(NULL as ``""``) and ``_null_columns`` lists the columns that were NULL on that row.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from loyalty_toolkit.errors import InputError

SCOPES: tuple[str, ...] = ("masterreward", "earnreward", "burnreward")
MAX_OBJECTS = 200_000
NULL = "NULL"
DELIMITER = ";"
CUSTOM_COLUMNS: tuple[str, ...] = tuple(f"c{i}" for i in range(32))

# (column, mandatory) in the order of the seed's tables. "Mandatory" is about the column being in
# the header; which values may be empty is the stage's business (see stages/rewards/validation.py).
SCOPE_SPEC: dict[str, tuple[tuple[str, bool], ...]] = {
    "masterreward": (
        ("external_id", True), ("name", True), ("monetary", True), ("monetary_type", False),
        ("monetary_value", False), ("nqp_value", True), ("description", False),
        ("rich_description", False), ("holding_days", True), ("validity_interval_count", True),
        ("validity_interval_type", True), ("forced_validity", True), ("forced_validity_start", False),
        ("forced_validity_end", False), ("is_limited", False), ("max_attribution_count", False),
        ("is_auto_generated", False), ("image_url", False),
        *((c, False) for c in CUSTOM_COLUMNS),
    ),
    "earnreward": (
        ("reward_id", True), ("card_code", True), ("attribution_id", True), ("quantity", False),
        ("earn_date", True), ("context", False), ("validity_start_date", True),
        ("validity_end_date", True), ("burn_date", False), ("store_id", False),
    ),
    "burnreward": (
        ("card_code", True), ("context", False), ("attribution_id", True), ("burn_date", False),
        ("store_id", False),
    ),
}
SCOPE_COLUMNS: dict[str, tuple[str, ...]] = {s: tuple(c for c, _ in spec) for s, spec in SCOPE_SPEC.items()}
MANDATORY_COLUMNS: dict[str, tuple[str, ...]] = {s: tuple(c for c, m in spec if m) for s, spec in SCOPE_SPEC.items()}

_QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_UNQUOTED = re.compile(r'[^;"]*')
_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SplioName:
    """The parts of a Splio file name; ``sort_key`` is Splio's processing order."""

    universe: str
    scope: str
    subsection: str
    date: date
    filename: str

    @property
    def sort_key(self) -> tuple[int, date, str]:
        return (SCOPES.index(self.scope), self.date, self.filename)


@dataclass
class SplioFile:
    """One read file: its parsed name, header as written, and rows (text + ``_file``/``_line``/``_null_columns``)."""

    name: SplioName
    header: tuple[str, ...]
    rows: pd.DataFrame
    path: Path

    @property
    def scope(self) -> str:
        return self.name.scope


def parse_splio_name(path: str | Path, *, stage: str | None = "rewards") -> SplioName:
    """Parse ``universe_scope_subsection_YYYYMMDD.csv``; InputError naming the bad part otherwise.

    Universe and subsection may hold underscores; the first part that is a scope name splits them.
    """
    filename = Path(path).name

    def bad(msg: str, part: str) -> InputError:
        return InputError(f"{msg}; Splio names files universe_scope_subsection_YYYYMMDD.csv",
                          stage=stage, file=filename, column=part)

    if not filename.endswith(".csv"):
        raise bad("file name must end in .csv", "extension")
    parts = filename[: -len(".csv")].split("_")
    if len(parts) < 4:
        raise bad(f"expected 4 parts separated by '_', found {len(parts)}", "name")
    stamp = parts[-1]
    if not re.fullmatch(r"[0-9]{8}", stamp):
        raise bad(f"date part {stamp!r} is not YYYYMMDD", "date")
    try:
        day = datetime.strptime(stamp, "%Y%m%d").date()
    except ValueError:
        raise bad(f"date part {stamp!r} is not a real date", "date") from None
    middle = parts[1:-2]  # the scope needs a universe before it and a subsection after it
    at = next((i + 1 for i, p in enumerate(middle) if p in SCOPES), None)
    if at is None:
        raise bad(f"no scope in the name (found {parts[1]!r}); expected one of {', '.join(SCOPES)}", "scope")
    universe, subsection = "_".join(parts[:at]), "_".join(parts[at + 1:-1])
    for part, text in (("universe", universe), ("subsection", subsection)):
        if not text.strip("_"):
            raise bad(f"the {part} is empty", part)
    return SplioName(universe=universe, scope=parts[at], subsection=subsection, date=day, filename=filename)


def order_files(paths: Iterable[str | Path], *, stage: str | None = "rewards") -> list[Path]:
    """The paths in Splio's processing order: scope (master, earn, burn), then date, then name."""
    named = [(parse_splio_name(p, stage=stage), Path(p)) for p in paths]
    return [p for _, p in sorted(named, key=lambda t: t[0].sort_key)]


def read_scope_file(path: str | Path, *, stage: str | None = "rewards", max_objects: int = MAX_OBJECTS) -> SplioFile:
    """Read one Splio file of any scope, checking its name, header, field counts and size.

    Raises InputError (file, line, column) on anything Splio would refuse for the whole file.
    """
    p = Path(path)
    name = parse_splio_name(p, stage=stage)
    fname = name.filename
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", stage=stage, file=fname) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 (byte 0x{raw[exc.start]:02x}); Splio files are UTF-8",
                         stage=stage, file=fname, line=line) from None

    records = _records(text, fname, stage)
    first = next(records, None)
    if first is None:
        raise InputError("empty file: expected a header line", stage=stage, file=fname, line=1)
    header_line, header_fields = first
    header = tuple(v for v, _ in header_fields)
    _check_header(header, name.scope, fname, header_line, stage)

    columns: dict[str, list[str]] = {c: [] for c in header}
    lines: list[int] = []
    nulls: list[str] = []
    width = len(header)
    for line, fields in records:
        if len(lines) >= max_objects:
            raise InputError(f"more than {max_objects:,} objects in one file; Splio refuses it: split the file",
                             stage=stage, file=fname, line=line)
        if len(fields) != width:
            col = header[len(fields)] if len(fields) < width else width + 1
            raise InputError(f"expected {width} fields, found {len(fields)}", stage=stage, file=fname,
                             line=line, column=col)
        null_cols = []
        for c, (value, quoted) in zip(header, fields):
            if not quoted and value in ("", NULL):
                null_cols.append(c)
                value = ""
            columns[c].append(value)
        lines.append(line)
        nulls.append(",".join(null_cols))

    rows = pd.DataFrame({**{c: pd.Series(v, dtype=str) for c, v in columns.items()},
                         "_file": pd.Series([fname] * len(lines), dtype=str),
                         "_line": pd.Series(lines, dtype="int64"),
                         "_null_columns": pd.Series(nulls, dtype=str)})
    return SplioFile(name=name, header=header, rows=rows, path=p)


def read_scope_files(paths: Iterable[str | Path], *, stage: str | None = "rewards",
                     max_objects: int = MAX_OBJECTS) -> list[SplioFile]:
    """Read several files, returned in Splio's processing order."""
    return [read_scope_file(p, stage=stage, max_objects=max_objects) for p in order_files(paths, stage=stage)]


def null_columns(row_nulls: str) -> set[str]:
    """The set behind a ``_null_columns`` cell."""
    return set(row_nulls.split(",")) if row_nulls else set()


def export_columns(scope: str, present: Iterable[str]) -> list[str]:
    """The scope's columns among ``present``, in Splio's order (what a writer should emit).

    Mandatory columns are always included; optional ones only when present, because a custom
    column ``cN`` that the target universe does not define makes Splio refuse the file.
    """
    have = set(present)
    return [c for c, mandatory in SCOPE_SPEC[scope] if mandatory or c in have]


def _check_header(header: Sequence[str], scope: str, fname: str, line: int, stage: str | None) -> None:
    known = set(SCOPE_COLUMNS[scope])
    seen: set[str] = set()
    for col in header:
        if col not in known:
            raise InputError(f"unrecognised column {col!r} for scope {scope}; Splio refuses the whole file",
                             stage=stage, file=fname, line=line, column=col)
        if col in seen:
            raise InputError(f"column {col!r} appears twice", stage=stage, file=fname, line=line, column=col)
        seen.add(col)
    for col in MANDATORY_COLUMNS[scope]:
        if col not in seen:
            raise InputError(f"mandatory column {col!r} is missing; Splio refuses the whole file",
                             stage=stage, file=fname, line=line, column=col)


def _records(text: str, fname: str, stage: str | None) -> Iterator[tuple[int, list[tuple[str, bool]]]]:
    """Yield ``(physical line, [(value, quoted), ...])`` per record, skipping blank lines.

    A quoted field may span lines; lines are joined until the quotes balance, which is cheap and
    keeps the common unquoted line on a plain ``split``.
    """
    buf: list[str] = []
    start = 0
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        if not buf:
            start = number
        buf.append(line)
        joined = "".join(buf)
        if joined.count('"') % 2:
            continue  # inside a quoted field that goes on past this line break
        buf = []
        record = joined.rstrip("\r\n")
        if not record.strip():
            continue
        if '"' not in record:
            yield start, [(v, False) for v in record.split(DELIMITER)]
        else:
            yield start, _split_quoted(record, start, fname, stage)
    if buf:
        # the quotes never balanced: point at a stray quote if there is one, else at the open field
        _split_quoted("".join(buf).rstrip("\r\n"), start, fname, stage)
        raise InputError("quoted field is not closed before the end of the file", stage=stage, file=fname,
                         line=start)


def _split_quoted(record: str, start: int, fname: str, stage: str | None) -> list[tuple[str, bool]]:
    fields: list[tuple[str, bool]] = []
    pos, n = 0, len(record)
    while True:
        if pos < n and record[pos] == '"':
            m = _QUOTED.match(record, pos)
            if m is None:
                raise _where(record, pos, start, fname, stage, len(fields) + 1, "quoted field is not closed")
            fields.append((m.group(1).replace('""', '"'), True))
        else:
            m = _UNQUOTED.match(record, pos)
            fields.append((m.group(0), False))
        pos = m.end()
        if pos == n:
            return fields
        if record[pos] != DELIMITER:
            what = "a quote inside an unquoted field" if record[pos] == '"' and not fields[-1][1] \
                else f"unexpected {record[pos]!r} after a closing quote"
            raise _where(record, pos, start, fname, stage, len(fields), what)
        pos += 1


def _where(record: str, pos: int, start: int, fname: str, stage: str | None, field_no: int, what: str) -> InputError:
    line = start + len(_BREAK.findall(record, 0, pos))
    return InputError(f"{what} (field {field_no})", stage=stage, file=fname, line=line, column=field_no)
