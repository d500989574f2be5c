"""Size-limited numbered part files, shared by the import writers (members XML, unit transfers).

A writer hands over its items already encoded, in runs (:class:`Run`: the items of a batch joined
by ``sep``, and each item's size), so a run is written with one call instead of one per item.
Each part is ``header``, items separated by ``sep``, ``footer``; with ``max_file_bytes`` every
part stays strictly smaller than it, split only between items (the target platforms cap a file's
size: Open Loyalty takes at most 100 MB). A write that fails removes every part it created, so a
truncated file can never be imported by mistake. Naming parts and removing an earlier run's stale
parts are the caller's (each writer names its files its own way). :class:`PartWriter` takes the runs
pushed one at a time (a caller producing its items slice by slice); ``write_parts`` pulls them.
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


class PartWriter:
    """Push-based :func:`write_parts`: ``add`` runs as they are produced, ``close`` for the paths. The
    bytes are those of ``write_parts`` over the same items however they are grouped into runs, so a
    caller can format and hand over its items a batch at a time without keeping them all."""

    def __init__(self, part_path: Callable[[int], Path], *, header: bytes, footer: bytes, sep: bytes = b"",
                 max_file_bytes: int | None = None, noun: str = "item"):
        self.part_path, self.header, self.footer, self.sep = part_path, header, footer, sep
        self.max_file_bytes, self.noun = max_file_bytes, noun
        self.paths: list[Path] = []
        self._handle = None
        self._size = 0  # bytes of the open part, its footer included
        self._state = "open"  # open -> closed | aborted

    def check_open(self) -> None:
        """Raise ValueError once the writer is closed or aborted (nothing more may be written)."""
        if self._state != "open":
            raise ValueError(f"the part writer is {self._state}")

    def add(self, run: Run) -> None:
        """Append the run's items. Raises ValueError, after removing the parts written so far, when one
        item alone cannot fit below ``max_file_bytes``; any error while writing removes them too."""
        self.check_open()
        try:
            self._add(run)
        except BaseException:
            self.abort()
            raise

    def _add(self, run: Run) -> None:
        if run.count == 0:
            return
        sep, footer, max_file_bytes = self.sep, self.footer, self.max_file_bytes
        if max_file_bytes is None:
            if self._handle is None:
                self._open_part()
            else:
                self._handle.write(sep)
            self._handle.write(run.data)
            return
        if run.sizes is None or len(run.sizes) != run.count:
            raise ValueError("a run needs its items' sizes to split below max_file_bytes")
        fixed = len(self.header) + len(footer)
        sizes = np.asarray(run.sizes, dtype=np.int64)
        too_big = np.flatnonzero(fixed + sizes >= max_file_bytes)
        usable = int(too_big[0]) if len(too_big) else run.count
        ends = np.cumsum(sizes + len(sep))  # ends[j] - len(sep): where item j ends in data
        starts = ends - sizes - len(sep)
        view = memoryview(run.data)
        i = 0
        while i < usable:
            if self._handle is None:  # a new part always takes its first item (it fits: checked above)
                self._open_part()
                self._handle.write(view[starts[i]:starts[i] + sizes[i]])
                self._size = fixed + int(sizes[i])
                i += 1
                continue
            # items i..k-1 fit while size + (their sizes, a sep before each) stays below the limit
            k = min(int(np.searchsorted(ends, max_file_bytes - self._size + starts[i], side="left")), usable)
            if k > i:
                self._handle.write(sep)
                self._handle.write(view[starts[i]:ends[k - 1] - len(sep)])
                self._size += int(ends[k - 1] - starts[i])
                i = k
            if i < usable:  # item i would reach the limit: close this part
                self._handle.write(footer)
                self._handle.close()
                self._handle = None
        if usable < run.count:
            raise ValueError(f"max_file_bytes={max_file_bytes} cannot hold even one {self.noun} "
                             f"({int(sizes[usable])} bytes)")

    def _open_part(self) -> None:
        self.paths.append(self.part_path(len(self.paths) + 1))
        self._handle = open(self.paths[-1], "wb")
        self._handle.write(self.header)

    def close(self) -> list[Path]:
        """Finish the last part; returns the parts' paths in order (none when no item came)."""
        self.check_open()
        try:
            if self._handle is not None:
                self._handle.write(self.footer)
                self._handle.close()
                self._handle = None
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return list(self.paths)

    def abort(self) -> None:
        """Remove every part written so far: a truncated file must never be imported by mistake. Does
        nothing once closed (the parts are complete) or already aborted."""
        if self._state != "open":
            return
        self._state = "aborted"
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()
        for p in self.paths:
            p.unlink(missing_ok=True)


def write_parts(runs: Iterable[Run], part_path: Callable[[int], Path], *, header: bytes, footer: bytes,
                sep: bytes = b"", max_file_bytes: int | None = None, noun: str = "item") -> list[Path]:
    """Stream ``runs`` into parts ``part_path(1)``, ``part_path(2)`` … and return their paths in order
    (none when there are no items). Raises ValueError, after removing the parts written so far, when
    one item alone cannot fit below ``max_file_bytes`` (an error raised by ``runs`` removes them too).
    """
    writer = PartWriter(part_path, header=header, footer=footer, sep=sep, max_file_bytes=max_file_bytes, noun=noun)
    try:
        for run in runs:
            writer.add(run)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
