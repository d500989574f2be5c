"""Small matplotlib charts for the stage notebooks (rendered inline as PNG, so HTML works offline)."""

from __future__ import annotations

import pandas as pd


def bar(frame: pd.DataFrame, label: str, value: str, *, title: str, horizontal: bool = True):
    """A labelled bar chart of ``value`` by ``label``; returns the figure (shown by the notebook)."""
    import matplotlib.pyplot as plt  # imported on first chart: half a second a stage kernel otherwise

    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.35 * len(frame) + 1)))
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
    ax.set_title(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
