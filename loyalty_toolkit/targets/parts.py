"""Size-limited numbered part files, shared by the import writers (members XML, unit transfers).

A writer hands over its items already encoded, in runs (:class:`Run`: the items of a batch joined
by ``sep``, and each item's size), so a run is written with one call instead of one per item.
Each part is ``header``, items separated by ``sep``, ``footer``; with ``max_file_bytes`` every
part stays strictly smaller than it, split only between items (the target platforms cap a file's
size: Open Loyalty takes at most 100 MB). A write that fails removes every part it created, so a
truncated file can never be imported by mistake. Naming parts and removing an earlier run's stale
parts are the caller's (each writer names its files its own way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Run:
    """``count`` items joined by the writer's ``sep`` into ``data``; ``sizes`` are their byte lengths
    in order (needed only to split below ``max_file_bytes``: ``None`` when there is no limit)."""

    data: bytes
    count: int
    sizes: np.ndarray | None = None


def write_parts(runs: Iterable[Run], part_path: Callable[[int], Path], *, header: bytes, footer: bytes,
                sep: bytes = b"", max_file_bytes: int | None = None, noun: str = "item") -> list[Path]:
    """Stream ``runs`` into parts ``part_path(1)``, ``part_path(2)`` … and return their paths in order
    (none when there are no items). Raises ValueError, after removing the parts written so far, when
    one item alone cannot fit below ``max_file_bytes`` (an error raised by ``runs`` removes them too).
    """
    paths: list[Path] = []
    fixed = len(header) + len(footer)
    handle = None
    size = 0
    complete = False
    try:
        for run in runs:
            if run.count == 0:
                continue
            if max_file_bytes is None:
                if handle is None:
                    paths.append(part_path(len(paths) + 1))
                    handle = open(paths[-1], "wb")
                    handle.write(header)
                else:
                    handle.write(sep)
                handle.write(run.data)
                continue
            if run.sizes is None or len(run.sizes) != run.count:
                raise ValueError("a run needs its items' sizes to split below max_file_bytes")
            sizes = np.asarray(run.sizes, dtype=np.int64)
            too_big = np.flatnonzero(fixed + sizes >= max_file_bytes)
            usable = int(too_big[0]) if len(too_big) else run.count
            ends = np.cumsum(sizes + len(sep))  # ends[j] - len(sep): where item j ends in data
            starts = ends - sizes - len(sep)
            view = memoryview(run.data)
            i = 0
            while i < usable:
                if handle is None:  # a new part always takes its first item (it fits: checked above)
                    paths.append(part_path(len(paths) + 1))
                    handle = open(paths[-1], "wb")
                    handle.write(header)
                    handle.write(view[starts[i]:starts[i] + sizes[i]])
                    size = fixed + int(sizes[i])
                    i += 1
                    continue
                # items i..k-1 fit while size + (their sizes, a sep before each) stays below the limit
                k = min(int(np.searchsorted(ends, max_file_bytes - size + starts[i], side="left")), usable)
                if k > i:
                    handle.write(sep)
                    handle.write(view[starts[i]:ends[k - 1] - len(sep)])
                    size += int(ends[k - 1] - starts[i])
                    i = k
                if i < usable:  # item i would reach the limit: close this part
                    handle.write(footer)
                    handle.close()
                    handle = None
            if usable < run.count:
                raise ValueError(f"max_file_bytes={max_file_bytes} cannot hold even one {noun} "
                                 f"({int(sizes[usable])} bytes)")
        if handle is not None:
            handle.write(footer)
            handle.close()
            handle = None
        complete = True
    finally:
        if handle is not None:
            handle.close()
        if not complete:  # never leave a truncated part that could be imported by mistake
            for p in paths:
                p.unlink(missing_ok=True)
    return paths
