"""Pending tables inserted by a background writer process store exactly what the foreground
``PendingTables`` stores (the oracle), in order, and fail in one line leaving the database as it was."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.store import StagingStore, spool
from loyalty_toolkit.store.spool import SPOOL_DIR, SpooledPendingTables, arrow_column, background_pending
from tests.store.test_bulk import _frame


def _frames() -> list[tuple[str, pd.DataFrame]]:
    """Appends as a stage makes them: tables interleaved, empty frames before and between the ones
    with rows, every kind of column test_bulk knows, and the staging tests' small frames."""
    return [
        ("lots", _frame(0)), ("lots", _frame(5)), ("allocs", pd.DataFrame({"n": pd.Series([], dtype=float)})),
        ("allocs", pd.DataFrame({"n": [1, 2]})), ("lots", _frame(3001)), ("allocs", pd.DataFrame({"n": [3]})),
        ("lots", _frame(64)),
        ("money", pd.DataFrame({"id": ["a", "b", None], "points": [Decimal("0.1"), Decimal("12.50"), Decimal("1E+2")],
                                "n": [1, 2, 3]})),
        ("money", pd.DataFrame({"id": ["c"], "points": [None], "n": [4]})),
        ("empty", pd.DataFrame({"a": pd.Series([], dtype=object)})),
        ("odd", pd.DataFrame({"big": pd.array([1, None], dtype="UInt8"), "f32": np.array([1.5, np.nan], np.float32),
                              "objints": pd.Series([1, 2**40], dtype=object), "objfloats": [0.1 + 0.2, float("nan")],
                              "objbools": [True, False], "blob": [b"\x00\xff", None], "na": [pd.NA, "x"],
                              "floatish": pd.Series([1, 0.30000000000000004], dtype=object)})),
    ]


def _write(tmp_path, background: bool, frames) -> dict[str, list[str]]:
    with StagingStore(tmp_path / f"{background}.db") as store:
        pt = background_pending(store, "transfers") if background else store.pending("transfers")
        for name, frame in frames:
            pt.append(name, frame)
        store.commit_stage("transfers", {}, inputs_fingerprint="", parameters_fingerprint="", pending=pt)
        assert not (tmp_path / SPOOL_DIR).exists()  # the spool folder goes with the commit
        return {t: list(store.canonical_lines(t)) for t in store.table_names()}


def test_background_pending_tables_store_what_the_foreground_ones_store(tmp_path):
    frames = _frames()
    background, foreground = _write(tmp_path, True, frames), _write(tmp_path, False, frames)
    assert sorted(background) == ["allocs", "empty", "lots", "money", "odd"]
    assert len(background["lots"]) == 5 + 3001 + 64 + 1
    for name, lines in foreground.items():
        assert background[name] == lines, name


def test_frames_are_applied_in_order_when_the_writer_lags(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "MAX_QUEUED", 1)  # append waits for the writer before each frame
    frames = [("t", pd.DataFrame({"k": [f"r{i}.{j}" for j in range(i % 4)], "n": [i] * (i % 4)})) for i in range(30)]
    lines = _write(tmp_path, True, frames)["t"]
    assert lines[1:] == [f'["r{i}.{j}", {i}]' for i in range(30) for j in range(i % 4)]


def test_a_column_of_mixed_types_keeps_each_cells_python_value():
    # a TEXT column stores 1.0 (a float) as "1.0" and "1" (a str) as "1": the cells cross as they are
    arr, pickled = arrow_column(pd.Series(["1", 1.0, 2, None, Decimal("1.00")], dtype=object))
    assert pickled
    arr, pickled = arrow_column(pd.Series(["a", None, np.nan], dtype=object))
    assert not pickled and arr.to_pylist() == ["a", None, None]


def _begin(tmp_path):
    store = StagingStore(tmp_path / "staging.db")
    store.commit_stage("members", {"members": pd.DataFrame({"id": ["a"]})}, inputs_fingerprint="1",
                       parameters_fingerprint="1")
    return store, store.digests()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_a_killed_writer_fails_the_next_append_naming_the_table(tmp_path):
    store, before = _begin(tmp_path)
    pt = background_pending(store, "transfers")
    pt.append("lots", _frame(3001))
    assert isinstance(pt, SpooledPendingTables) and pt._proc is not None
    os.kill(pt._proc.pid, signal.SIGKILL)
    pt._proc.wait()
    with pytest.raises(LoyaltyError, match="pending table 'lots'.*writer process was killed by signal SIGKILL") as exc:
        pt.append("lots", _frame(5))
    _one_line(exc)
    assert store.digests() == before
    assert not (tmp_path / SPOOL_DIR).exists()
    store.close()


def test_a_killed_writer_fails_the_commit_and_nothing_is_committed(tmp_path):
    store, before = _begin(tmp_path)
    pt = background_pending(store, "transfers")
    pt.append("unit_transfers", _frame(999))
    os.kill(pt._proc.pid, signal.SIGKILL)
    with pytest.raises(LoyaltyError, match="pending table 'unit_transfers'.*killed") as exc:
        store.commit_stage("transfers", {"other": pd.DataFrame({"x": [1]})}, inputs_fingerprint="2",
                           parameters_fingerprint="2", pending=pt)
    _one_line(exc)
    assert store.digests() == before
    store.close()


def test_a_frame_the_writer_cannot_insert_fails_in_one_line_and_leaves_the_database(tmp_path):
    store, before = _begin(tmp_path)
    pt = background_pending(store, "transfers")
    pt.append("lots", _frame(64))
    pt.append("bad", pd.DataFrame({"x": [object()]}))  # SQLite cannot bind it: the writer fails on it
    with pytest.raises(LoyaltyError, match="could not write pending table 'bad' to the staging database") as exc:
        store.commit_stage("transfers", {}, inputs_fingerprint="2", parameters_fingerprint="2", pending=pt)
    _one_line(exc)
    assert store.digests() == before
    store.close()


def test_a_frame_that_cannot_be_spooled_fails_at_its_append(tmp_path):
    store, before = _begin(tmp_path)
    pt = background_pending(store, "transfers")
    with pytest.raises(LoyaltyError, match="could not write pending table 'bad'") as exc:
        pt.append("bad", pd.DataFrame({"x": [lambda: 1]}))  # not even picklable
    _one_line(exc)
    with pytest.raises(LoyaltyError, match=r"pending table 'lots'.*'n' would be REAL where earlier frames made it INTEGER"):
        pt.append("lots", pd.DataFrame({"n": [1]}))
        pt.append("lots", pd.DataFrame({"n": [1.5]}))  # refused here, as the foreground refuses it
    pt.discard()
    assert pt._proc is None
    assert store.digests() == before
    assert not (tmp_path / SPOOL_DIR).exists()
    store.close()


def test_discard_stops_the_writer_and_drops_what_it_wrote(tmp_path):
    store, before = _begin(tmp_path)
    pt = background_pending(store, "transfers")
    for _ in range(3):
        pt.append("lots", _frame(3001))
    proc = pt._proc
    pt.discard()
    assert proc.poll() is not None
    assert store.digests() == before
    store.close()


def test_a_crashed_runs_spool_files_and_tables_go_when_the_stage_opens_them_again(tmp_path):
    store, before = _begin(tmp_path)
    pt = background_pending(store, "transfers")
    pt.append("lots", _frame(64))
    pt.wait()  # written; then the run "crashes" before its commit, leaving a spool file too
    left = tmp_path / SPOOL_DIR / "transfers" / "000009-lots.arrow"
    left.write_bytes(b"half a file")
    assert store.has_table("_pending_transfers_lots")
    again = background_pending(store, "transfers")
    assert not left.exists() and not (tmp_path / SPOOL_DIR).exists()
    assert store.digests() == before
    again.append("lots", pd.DataFrame({"n": [7]}))
    store.commit_stage("transfers", {}, inputs_fingerprint="", parameters_fingerprint="", pending=again)
    assert store.read_table("lots")["n"].tolist() == [7]
    store.close()
