"""What every benchmark measures and prints: this process's memory, and a plain-text table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM = peak) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux >= 4.0), so each phase shows its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def print_table(head: Sequence[str], widths: Sequence[int], rows: Iterable[Sequence[object]]) -> None:
    """Left-aligned columns; integers with thousands separators, None as blank."""
    print("".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("".join(("" if v is None else (f"{v:,}" if isinstance(v, int) else str(v))).ljust(w)
                      for v, w in zip(row, widths)))
