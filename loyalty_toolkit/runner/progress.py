"""What the terminal shows while a run goes: a line as each stage starts and one as it ends
(status, rows, seconds, peak memory), and papermill's cell bar (tqdm) for a stage that runs longer
than a few seconds.

The bar and the start lines are for a person watching a terminal; ``--quiet`` or an output that is
not a terminal (CI, a log file, a pipe) keeps only the end line of each stage, which is what a log
needs. The library's default, ``StageProgress``, says nothing (tests, notebooks, benchmarks).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from loyalty_toolkit.model import notebook_name

# A bar appears only once a stage has run this long: a short stage leaves just its two lines.
BAR_DELAY_SECONDS = 3.0


class StageProgress:
    """Says nothing; the runner calls it as stages start and end."""

    def started(self, stage: str) -> None:
        """``stage`` is about to execute."""

    def finished(self, stage: str, entry: dict[str, Any], figures: dict[str, Any] | None, note: str = "") -> None:
        """``stage`` ended (or was not run: ``note`` says why) with its summary ``entry``."""

    def bar(self, stage: str) -> dict[str, Any] | bool:
        """papermill's ``progress_bar`` for ``stage``: False, or tqdm's options."""
        return False


class TerminalProgress(StageProgress):
    """Lines on ``stream`` (stdout by default); the bar and start lines only on a terminal, unless quiet."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.live = not quiet and bool(isatty and isatty())

    def started(self, stage: str) -> None:
        if self.live:
            self._say(f"{notebook_name(stage):<14}{'running':<16}")

    def finished(self, stage: str, entry: dict[str, Any], figures: dict[str, Any] | None, note: str = "") -> None:
        self._say(stage_line(stage, entry, figures, note))

    def bar(self, stage: str) -> dict[str, Any] | bool:
        if not self.live:
            return False
        return {"file": self.stream, "desc": notebook_name(stage), "delay": BAR_DELAY_SECONDS, "leave": False,
                "dynamic_ncols": True}

    def _say(self, line: str) -> None:
        self.stream.write(line.rstrip() + "\n")
        self.stream.flush()


def stage_line(stage: str, entry: dict[str, Any], figures: dict[str, Any] | None, note: str = "") -> str:
    """``03_transfers  passed  rows in 20,000 out 19,800 rejected 200  41.2 s  peak 612 MB``."""
    parts = [f"{notebook_name(stage):<14}{entry.get('status', ''):<16}"]
    if entry.get("rows_in") is not None:
        parts.append(f"rows in {_n(entry['rows_in'])} out {_n(entry.get('rows_out'))} "
                     f"rejected {_n(entry.get('rows_rejected'))}")
    if entry.get("seconds") is not None:
        parts.append(f"{entry['seconds']:.1f} s")
    peak = (figures or {}).get("peak_rss_mb")
    if peak is not None:
        parts.append(f"peak {peak:,.0f} MB")
    if note:
        parts.append(f"({note})")
    return "  ".join(parts)


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else ("-" if value is None else str(value))
