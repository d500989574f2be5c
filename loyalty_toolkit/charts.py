"""Small charts for the stage notebooks, returned as PNG images so they render in the executed
notebook and in its offline HTML whatever matplotlib backend the kernel has."""

from __future__ import annotations

import io

import pandas as pd


def _png(fig) -> object:
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    return Image(data=buf.getvalue(), format="png")


def bar(frame: pd.DataFrame, label: str, value: str, *, title: str, horizontal: bool = True):
    """A labelled bar chart of ``value`` by ``label``, as an image the notebook displays."""
    # The object API (no pyplot): no global figure state, no backend to select.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, max(2.0, 0.35 * len(frame) + 1)), layout="tight")
    ax = fig.subplots()
    if frame.empty:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
    elif horizontal:
        ax.barh(frame[label].astype(str), frame[value], color="#4C72B0")
        ax.invert_yaxis()
        for y, v in enumerate(frame[value]):
            ax.text(v, y, f" {v:,}", va="center")
    else:
        ax.bar(frame[label].astype(str), frame[value], color="#4C72B0")
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_title(title)
    return _png(fig)


# A waterfall's bar kinds: a ``total`` stands on zero, a ``step`` moves the running total by its value.
TOTAL, STEP = "total", "step"
_COLOURS = {TOTAL: "#4C72B0", "up": "#55A868", "down": "#C44E52"}


def _label(value) -> str:
    """Thousands separators, exact digits (points are Decimals)."""
    from decimal import Decimal

    d = Decimal(str(value))
    d = d.normalize() if d == d.to_integral_value() else d
    whole, _, frac = f"{abs(d):f}".partition(".")
    return ("-" if d < 0 else "") + f"{int(whole):,}" + (f".{frac}" if frac else "")


def waterfall(steps: pd.DataFrame, *, title: str, unit: str = "points"):
    """A waterfall of ``steps`` (columns ``label``, ``value``, ``kind``: ``total`` or ``step``): each
    total stands on zero, each step floats from the running total, and every bar is labelled with
    its exact value, so a small step (a residue) reads as well as a large one."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.6), layout="tight")
    ax = fig.subplots()
    if steps.empty:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    running = 0.0
    bars = []
    for label, value, kind in zip(steps["label"], steps["value"], steps["kind"]):
        v = float(value)
        if kind == TOTAL:
            bars.append((0.0, v, _COLOURS[TOTAL], _label(value)))
            running = v
        else:
            bars.append((running, v, _COLOURS["up" if v >= 0 else "down"], ("+" if v > 0 else "") + _label(value)))
            running += v
    top = max(max(b, b + h) for b, h, _, _ in bars) or 1.0  # the highest point any bar reaches
    for i, (bottom, height, colour, text) in enumerate(bars):
        ax.bar(i, height, bottom=bottom, color=colour, width=0.6)
        ax.text(i, max(bottom, bottom + height) + top * 0.015, text, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(steps)), [str(x) for x in steps["label"]], fontsize=8)
    ax.tick_params(axis="x", labelrotation=20)
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_ylabel(unit)
    ax.set_ylim(top=top * 1.12)
    ax.set_title(title)
    return _png(fig)


def expiry(calendar: pd.DataFrame, *, title: str):
    """Points owed by month of expiry, the ledger's lots and the opening balances apart: the opening
    balances all expire in one month (``opening.validity_days`` after the cutover) and, drawn in the
    same bars, would flatten every ledger month. Each panel has its own scale."""
    from matplotlib.figure import Figure

    opening = calendar["opening_points"] if "opening_points" in calendar.columns else pd.Series(0, index=calendar.index)
    ledger = [float(p) - float(o) for p, o in zip(calendar["points"], opening)]
    has_opening = any(float(o) for o in opening)
    fig = Figure(figsize=(10, 3.8), layout="tight")
    axes = fig.subplots(1, 2, width_ratios=[4, 1]) if has_opening else [fig.subplots()]
    months = [str(m) for m in calendar["month"]]
    if not months:
        axes[0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
        axes[0].set_axis_off()
        return _png(fig)
    axes[0].bar(months, ledger, color="#4C72B0")
    axes[0].set_title(f"{title}: ledger lots", fontsize=10)
    axes[0].tick_params(axis="x", labelrotation=60, labelsize=7)
    axes[0].set_ylabel("points")
    axes[0].yaxis.set_major_formatter(_thousands())
    if has_opening:
        rows = [(m, float(o)) for m, o in zip(months, opening) if float(o)]
        axes[1].bar([m for m, _ in rows], [o for _, o in rows], color="#DD8452")
        for i, (_, o) in enumerate(rows):
            axes[1].text(i, o, _label(round(o)), ha="center", va="bottom", fontsize=8)
        axes[1].set_title("opening balances", fontsize=10)
        axes[1].tick_params(axis="x", labelsize=7)
        axes[1].yaxis.set_major_formatter(_thousands())
    return _png(fig)


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda y, _: f"{y:,.0f}")
