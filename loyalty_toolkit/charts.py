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
