"""Stage 03 member slice by member slice gives what one slice gives: files, store, figures, views."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.stages.context import open_stage
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.stages.transfers.slices import plan_slices
from loyalty_toolkit.store import StagingStore

RUN = "runs/t"


def _entries(users: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"line": np.arange(2, len(users) + 2), "user_id": pd.Categorical(users)})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "B", "c1", "c10", "c2", "é", "z", "ß"]), min_size=1, max_size=40),
       st.integers(min_value=1, max_value=12))
def test_a_plan_cuts_members_into_sorted_ranges_and_never_cuts_a_member(users, size):
    entries = _entries(users)
    plan = plan_slices(entries, size)
    rows = plan.rows()
    if len(users) <= size:
        assert plan.count == 1 and rows == [None]
        return
    every = np.concatenate(rows)
    assert sorted(every.tolist()) == list(range(len(users)))  # each row in exactly one slice
    slice_of = {}
    for k, r in enumerate(rows):
        assert (np.diff(r) > 0).all()  # ascending: the slice keeps the ledger's order
        for u in {users[i] for i in r}:
            assert slice_of.setdefault(u, k) == k  # a member is never cut
    names = sorted(slice_of)  # Python str order, the transfer files' order
    assert [slice_of[u] for u in names] == sorted(slice_of[u] for u in names)
    assert plan.of(np.asarray(names, dtype=object)).tolist() == [slice_of[u] for u in names]
    # a member the ledger never names sorts into the slice whose range holds it
    assert plan.of(np.asarray([""], dtype=object)).tolist() == [0]


def test_a_plan_needs_a_positive_size():
    with pytest.raises(ValueError):
        plan_slices(_entries(["a"]), 0)


def _run(root: Path, slice_entries: int):
    ctx = open_stage("transfers", str(root / "migration.yml"), str(root / RUN))
    outcome = s03_transfers.run(ctx, slice_entries=slice_entries)
    report = s03_transfers.gate(ctx, outcome)
    assert report.passed, report.to_frame()
    views = {"counts": outcome.counts(), "bands": outcome.balance_distribution(),
             "calendar": outcome.expiry_calendar(), "pending": outcome.pending_points(),
             "cross_center": outcome.cross_center(), "residue": outcome.rounding_residue(),
             "negative": outcome.negative_balances().sort_values("user_id").reset_index(drop=True),
             "fallbacks": outcome.fallback_matches(), "reconciliation": outcome.reconciliation(),
             "centers": outcome.reconciliation_by_center(), "programs": outcome.reconciliation_by_program(),
             "roll_forward": outcome.liability_roll_forward()}
    b = outcome.lots.balances
    member = sorted(b.loc[b["lots"] > 2, "user_id"])[0]
    views["member_lots"] = outcome.member_lots(member)
    mine = views["member_lots"]
    assert len(mine) >= b.loc[b["user_id"] == member, "lots"].iloc[0]  # + opening lots
    owed = mine["status"].isin(["open", "pending"]) & (mine["remaining"] > 0)
    assert owed.any() and (mine.loc[owed, "transfer"] != "").all()  # a transfer id, or why none
    assert all(isinstance(v, Decimal) for v in mine["remaining"])
    s03_transfers.commit(ctx, outcome, report)
    run_dir = root / RUN
    files = {p.relative_to(run_dir).as_posix(): p.read_bytes()
             for d in ("output", "rejects") for p in sorted((run_dir / d).rglob("*")) if p.is_file()}
    record = json.loads((run_dir / "stages" / "03_transfers.json").read_text(encoding="utf-8"))
    store = StagingStore.for_run(run_dir)
    tables = json.loads(store.completed_stages()["transfers"]["tables"])
    digests = {t: store.table_digest(t) for t in tables}
    store.close()
    return outcome, views, files, record, digests


def test_many_slices_give_the_files_tables_figures_and_views_of_one(program):
    other = program.parent / "sliced"
    shutil.copytree(program, other)
    one, views1, files1, record1, tables1 = _run(program, 10**9)
    many, views2, files2, record2, tables2 = _run(other, 7)
    assert one.slices.slices == 1 and many.slices.slices > 20
    assert files1 and files1 == files2  # transfer files, Haravan file and rejects: the same bytes
    assert record1["totals"] == record2["totals"]
    assert (record1["rows_in"], record1["rows_out"], record1["rows_rejected"]) == \
        (record2["rows_in"], record2["rows_out"], record2["rows_rejected"])
    assert tables1 == tables2  # every committed table holds the same rows (in slice order)
    for name, frame in views1.items():
        pd.testing.assert_frame_equal(frame, views2[name], obj=name)
    for name in ("by_member", "by_center", "by_program", "total", "roll_forward"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(many, name), obj=name)
    ex1, ex2 = one.fallback_examples(100), many.fallback_examples(100)
    assert len(ex1) == len(ex2) and set(ex1["line"]) == set(ex2["line"])


def test_a_failure_after_the_slices_leaves_no_pending_table(program, monkeypatch):
    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("the reconciliation broke")

    monkeypatch.setattr(s03_transfers, "Reconciliation", Broken)
    store = StagingStore.for_run(program / RUN)
    before = store.digests()
    ctx = open_stage("transfers", str(program / "migration.yml"), str(program / RUN))
    with pytest.raises(RuntimeError, match="reconciliation broke"):
        s03_transfers.run(ctx, slice_entries=7)  # many slices went to the writer before it broke
    assert ctx.store.digests() == before
    assert not [t for t in ctx.store.db.table_names() if t.startswith("_pending_")]
    assert not list((program / RUN).glob(".staging-spool/transfers/*"))
