"""Size-limited part files: split between items strictly below the limit, runs written whole, no partial leftovers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.targets.parts import PartWriter, Run, write_parts

HEADER, FOOTER = b"<h>\n", b"</h>\n"


def runs_of(items: list[bytes], cuts: list[int], sep: bytes) -> list[Run]:
    """The items grouped into runs at ``cuts`` (empty runs included: writers may yield them)."""
    bounds = [0, *sorted(min(c, len(items)) for c in cuts), len(items)]
    runs = []
    for lo, hi in zip(bounds, bounds[1:]):
        group = items[lo:hi]
        runs.append(Run(sep.join(group), len(group), np.array([len(i) for i in group], dtype=np.int64)))
    return runs


def reference_parts(items: list[bytes], sep: bytes, limit: int | None) -> list[bytes] | str:
    """Reference: one item at a time, a new part when the next item would reach the limit."""
    parts: list[list[bytes]] = []
    size = 0
    for item in items:
        if limit is not None and len(HEADER) + len(item) + len(FOOTER) >= limit:
            return f"max_file_bytes={limit} cannot hold even one item ({len(item)} bytes)"
        if parts and (limit is None or size + len(sep) + len(item) < limit):
            parts[-1].append(item)
            size += len(sep) + len(item)
        else:
            parts.append([item])
            size = len(HEADER) + len(FOOTER) + len(item)
    return [HEADER + sep.join(p) + FOOTER for p in parts]


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.binary(min_size=1, max_size=30), max_size=25),
       cuts=st.lists(st.integers(0, 25), max_size=4), sep=st.sampled_from([b"", b",\n"]),
       limit=st.one_of(st.none(), st.integers(10, 200)))
def test_parts_match_the_item_by_item_splitter(tmp_path_factory, items, cuts, sep, limit):
    out = tmp_path_factory.mktemp("parts")
    want = reference_parts(items, sep, limit)
    try:
        paths = write_parts(runs_of(items, cuts, sep), lambda k: out / f"p_{k:04d}.x", header=HEADER,
                            footer=FOOTER, sep=sep, max_file_bytes=limit)
    except ValueError as exc:
        assert str(exc) == want
        assert not list(out.iterdir())  # the parts written before the failure are gone
        return
    assert [p.read_bytes() for p in paths] == want
    assert paths == [out / f"p_{k:04d}.x" for k in range(1, len(want) + 1)]
    assert all(len(p.read_bytes()) < limit for p in paths) if limit else len(paths) <= 1


def test_an_error_from_the_runs_removes_the_parts_written(tmp_path: Path):
    def runs():
        yield Run(b"aaaa", 1, np.array([4]))
        yield Run(b"bbbb", 1, np.array([4]))
        raise RuntimeError("the writer refused a row")

    with pytest.raises(RuntimeError):
        write_parts(runs(), lambda k: tmp_path / f"p{k}", header=HEADER, footer=FOOTER, max_file_bytes=16)
    assert not list(tmp_path.iterdir())


def test_a_limit_needs_item_sizes(tmp_path: Path):
    with pytest.raises(ValueError, match="sizes"):
        write_parts([Run(b"ab", 2)], lambda k: tmp_path / f"p{k}", header=HEADER, footer=FOOTER, max_file_bytes=99)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.binary(min_size=1, max_size=30), max_size=25),
       cuts=st.lists(st.integers(0, 25), max_size=6), sep=st.sampled_from([b"", b",\n"]),
       limit=st.one_of(st.none(), st.integers(10, 200)))
def test_pushed_runs_give_the_pulled_bytes(tmp_path_factory, items, cuts, sep, limit):
    out = tmp_path_factory.mktemp("pushed")
    want = reference_parts(items, sep, limit)
    writer = PartWriter(lambda k: out / f"p_{k:04d}.x", header=HEADER, footer=FOOTER, sep=sep, max_file_bytes=limit)
    try:
        for run in runs_of(items, cuts, sep):
            writer.add(run)
    except ValueError as exc:
        assert str(exc) == want
        assert not list(out.iterdir())
        with pytest.raises(ValueError, match="aborted"):
            writer.close()
        return
    paths = writer.close()
    assert [p.read_bytes() for p in paths] == want


def test_abort_removes_the_parts_until_closed(tmp_path: Path):
    writer = PartWriter(lambda k: tmp_path / f"p{k}", header=HEADER, footer=FOOTER, max_file_bytes=16)
    writer.add(Run(b"aaaabbbb", 2, np.array([4, 4])))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p1", "p2"]
    writer.abort()
    assert not list(tmp_path.iterdir())
    writer.abort()  # twice is harmless
    with pytest.raises(ValueError, match="aborted"):
        writer.add(Run(b"c", 1, np.array([1])))
    done = PartWriter(lambda k: tmp_path / f"q{k}", header=HEADER, footer=FOOTER)
    done.add(Run(b"x", 1))
    assert done.close() == [tmp_path / "q1"]
    done.abort()  # a closed part is complete: it stays
    assert (tmp_path / "q1").read_bytes() == HEADER + b"x" + FOOTER
    with pytest.raises(ValueError, match="closed"):
        done.add(Run(b"y", 1))
