"""Tables as a person reads them, one look for every stage page.

pandas' own HTML cuts text at 50 characters, prints the row index, aligns numbers and text
alike and writes large counts without separators; a reviewer signs from these pages. Every
table shown in a stage notebook goes through :func:`table` (``install`` makes it the kernel's way
of showing a ``DataFrame``): no index column, text never cut (long cells wrap), numbers aligned
right with thousands separators and their exact digits, and micro-point columns (``*_units``,
integers of points x 10^6) shown as points, so no micro-unit figure reaches a reader.
"""

from __future__ import annotations

import html
import math
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

import pandas as pd

# Points are stored as integer micro-points in ``*_units`` columns (``sources.ledger.parse.POINTS_SCALE``).
UNITS_SUFFIX = "_units"
FLOAT_PLACES_MIN = 0.0001  # smaller floats keep 4 significant digits instead of 4 decimal places
POINTS_SCALE = 6

# One style for every table; scoped to the class so JupyterLab and the offline page look the same
# (``!important``: the lab theme right-aligns every cell of a rendered table).
STYLE = """<style>
table.lm-table { border-collapse: collapse; margin: 0.4em 0 1em; table-layout: auto; max-width: 100%;
  font-size: 13px; }
table.lm-table th, table.lm-table td { border: 1px solid #d0d0d0; padding: 3px 7px; vertical-align: top;
  text-align: left !important; white-space: normal; overflow-wrap: anywhere; max-width: 32em; }
table.lm-table th { background: #f3f3f3; font-weight: 600; overflow-wrap: normal; }
table.lm-table td.num, table.lm-table th.num { text-align: right !important; white-space: nowrap;
  font-variant-numeric: tabular-nums; }
table.lm-table caption { caption-side: bottom; text-align: left; color: #555; padding-top: 3px; }
table.lm-table tr.lm-fail td { background: #fde2e1; }
details.lm-details { margin: 0.4em 0 1em; } details.lm-details summary { cursor: pointer; color: #3a6ea5; }
</style>"""


def points_text(units: int) -> str:
    """``3444300000`` micro-points -> ``3,444.3``: exact digits, separators, no trailing zeros."""
    return number_text(units_points(units))


def units_points(units: int) -> Decimal:
    """Integer micro-points as points, without trailing zeros (``3444300000`` -> ``3444.3``)."""
    d = Decimal(int(units)).scaleb(-POINTS_SCALE).normalize()
    return d if d.as_tuple().exponent <= 0 else d.quantize(Decimal(1))


def number_text(value: Any) -> str:
    """A number as a reader sees it: thousands separators and its exact digits (Decimal), a float
    to 4 decimal places (``0.9949``), never scientific notation for a figure of 0.0001 or more."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if isinstance(value, Real) and not isinstance(value, Decimal):
        f = float(value)
        if math.isnan(f):
            return ""
        if f and abs(f) < FLOAT_PLACES_MIN:
            return f"{f:.4g}"
        # a ratio or a share (coverage 0.98653198...) reads to 4 places; points are never floats
        value = Decimal(repr(f)).quantize(Decimal(1).scaleb(-4)).normalize()
    d = value.normalize() if value == value.to_integral_value() else value
    sign = "-" if d < 0 else ""
    whole, _, frac = f"{abs(d):f}".partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


def is_number(value: Any) -> bool:
    return isinstance(value, (Integral, Real, Decimal)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, tuple, dict)) else False
    except (TypeError, ValueError):
        return False


def reader_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its micro-point columns as points (``deficit_units`` -> ``deficit (points)``)."""
    out = frame.copy()
    renames = {}
    for col in out.columns:
        name = str(col)
        if name.endswith(UNITS_SUFFIX) and pd.api.types.is_integer_dtype(out[col]):
            out[col] = pd.Series([units_points(v) for v in out[col].tolist()], index=out.index, dtype=object)
            renames[col] = f"{name[:-len(UNITS_SUFFIX)]} (points)"
    return out.rename(columns=renames)


def cell_text(value: Any) -> str:
    """One cell's text: numbers formatted, lists joined, missing values empty; never cut."""
    if _missing(value):
        return ""
    if isinstance(value, bool) or (hasattr(value, "dtype") and getattr(value, "dtype", None) == bool):
        return "yes" if bool(value) else "no"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if is_number(value):
        return number_text(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def plain_number_column(name: Any) -> bool:
    """Line numbers and numeric ids read without separators (``line 1204``, not ``1,204``)."""
    n = str(name)
    return n == "line" or n.endswith("_line") or n.endswith("_id") or n == "position"


def table_html(frame: pd.DataFrame, *, max_rows: int | None = None, more: str = "", caption: str = "",
               fail_column: str | None = None, links: dict[str, str] | None = None,
               collapsed: str = "") -> str:
    """``frame`` as an HTML table (see the module docstring). With ``max_rows``, only the first rows
    are shown and the caption says how many there are and where the rest is (``more``). A row whose
    ``fail_column`` is false (or ``FAIL``) is tinted. ``links`` maps a column of relative paths to the
    prefix that leads from the page to them (``{"file": "../"}``): its cells become links. With
    ``collapsed`` (a one-line summary), the table is folded under that line (a ``details`` element:
    no script) so a long page reads summaries first."""
    links = links or {}
    e = html.escape
    shown = reader_frame(frame)
    total = len(shown)
    if max_rows is not None and total > max_rows:
        shown = shown.head(max_rows)
        note = f"The first {max_rows:,} of {total:,} rows" + (f"; every row: {more}" if more else "") + "."
        caption = f"{caption} {note}".strip()
    # a column of numbers (an empty text is a blank cell, as in a gate table's "unexpected") aligns right
    # (values as a list: a categorical column's .map stays categorical and has no .all)
    values = {c: shown[c].tolist() for c in shown.columns}
    numeric = {c: all(is_number(v) or _missing(v) or v == "" for v in values[c])
               and any(is_number(v) for v in values[c]) for c in shown.columns}
    num = {c: " class='num'" if numeric[c] else "" for c in shown.columns}
    head = "".join(f"<th{num[c]}>{e(str(c))}</th>" for c in shown.columns)
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells = "".join(f"<td{num[c]}>{_cell(c, v, links)}</td>" for c, v in zip(shown.columns, record))
        failed = fail_column is not None and _failed(dict(zip(shown.columns, record)).get(fail_column))
        rows.append(f"<tr class='lm-fail'>{cells}</tr>" if failed else f"<tr>{cells}</tr>")
    if not rows:
        rows.append(f"<tr><td colspan='{max(len(shown.columns), 1)}'><em>none</em></td></tr>")
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    out = (f"<table class='lm-table'>{cap}<thead><tr>{head}</tr></thead>"
           f"<tbody>{''.join(rows)}</tbody></table>")
    if collapsed:
        out = (f"<details class='lm-details'><summary>{e(collapsed)} ({total:,} rows; click to show)</summary>"
               f"{out}</details>")
    return STYLE + out


def _cell(column: Any, value: Any, links: dict[str, str]) -> str:
    plain = plain_number_column(column) and isinstance(value, Integral) and not isinstance(value, bool)
    text = html.escape(str(int(value)) if plain else cell_text(value))
    if column in links and text:
        return f"<a href='{html.escape(links[column])}{text}'>{text}</a>"
    return text


def _failed(value: Any) -> bool:
    return value is False or str(value) in ("False", "FAIL", "false")


class Table:
    """What a notebook cell shows: rendered by IPython as HTML, and plain text elsewhere."""

    def __init__(self, frame: pd.DataFrame, **options: Any) -> None:
        self.frame = frame
        self.options = options

    def _repr_html_(self) -> str:
        return table_html(self.frame, **self.options)

    def __repr__(self) -> str:
        return reader_frame(self.frame).to_string(index=False)


def table(frame: pd.DataFrame, *, max_rows: int | None = None, more: str = "", caption: str = "",
          fail_column: str | None = None, links: dict[str, str] | None = None, collapsed: str = "") -> Table:
    """The table a notebook shows for ``frame`` (the notebook's last expression, or ``display``ed)."""
    return Table(frame, max_rows=max_rows, more=more, caption=caption, fail_column=fail_column, links=links,
                 collapsed=collapsed)


def install() -> None:
    """Show every ``DataFrame`` of this kernel through :func:`table_html` (a stage notebook's first
    cell calls it): the notebook keeps returning plain frames and every page looks the same."""
    try:
        from IPython import get_ipython
    except ImportError:  # not in a kernel: nothing to install
        return
    shell = get_ipython()
    if shell is None:
        return
    shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, safe_table_html)


def safe_table_html(frame: pd.DataFrame) -> str:
    """:func:`table_html`, or, should a value defeat it, pandas' own table without index and without
    cutting text: a display problem must never stop a stage."""
    try:
        return table_html(frame)
    except Exception:  # noqa: BLE001 - any value a frame can hold; the page still shows every cell
        with pd.option_context("display.max_colwidth", None):
            return frame.to_html(index=False)
