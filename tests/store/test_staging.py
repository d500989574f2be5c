from decimal import Decimal

import pandas as pd
import pytest

from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.store import StagingStore


@pytest.fixture
def store(tmp_path):
    with StagingStore(tmp_path / "staging.db") as s:
        yield s


def test_commit_writes_tables_and_records_the_stage(store):
    frame = pd.DataFrame({"id": ["a", "b"], "points": [Decimal("0.1"), Decimal("12.50")], "n": [1, 2]})
    store.commit_stage("members", {"members": frame}, inputs_fingerprint="i", parameters_fingerprint="p")
    back = store.read_table("members")
    assert back["points"].tolist() == ["0.1", "12.50"]  # Decimals are exact text, never floats
    assert back["n"].tolist() == [1, 2]
    done = store.completed_stages()
    assert done["members"]["inputs_fingerprint"] == "i"


def test_a_failing_commit_leaves_the_database_as_it_was(store):
    store.commit_stage("members", {"members": pd.DataFrame({"id": ["a"]})}, inputs_fingerprint="1",
                       parameters_fingerprint="1")
    before = store.table_digest("members")
    bad = pd.DataFrame({"x": [object()]})  # sqlite cannot bind it: the write fails half way
    with pytest.raises(LoyaltyError, match="could not write"):
        store.commit_stage("members", {"members": pd.DataFrame({"id": ["z", "y"]}), "other": bad},
                           inputs_fingerprint="2", parameters_fingerprint="2")
    assert store.table_digest("members") == before
    assert not store.has_table("other")
    assert store.completed_stages()["members"]["inputs_fingerprint"] == "1"


def test_invalidate_forgets_completed_stages(store):
    store.commit_stage("subset", {"inputs": pd.DataFrame({"a": [1]})}, inputs_fingerprint="", parameters_fingerprint="")
    store.invalidate_from(["subset"])
    assert "subset" not in store.completed_stages()


def test_reading_a_missing_table_is_one_clear_error(store):
    with pytest.raises(LoyaltyError, match="run the stage that makes it"):
        store.read_table("nope")


def test_digest_ignores_row_order(tmp_path):
    with StagingStore(tmp_path / "a.db") as a, StagingStore(tmp_path / "b.db") as b:
        a.commit_stage("s", {"t": pd.DataFrame({"x": [1, 2]})}, inputs_fingerprint="", parameters_fingerprint="")
        b.commit_stage("s", {"t": pd.DataFrame({"x": [2, 1]})}, inputs_fingerprint="", parameters_fingerprint="")
        assert a.table_digest("t") == b.table_digest("t")


def test_drop_stages_removes_their_tables_and_ledger_rows_only(store):
    store.commit_stage("subset", {"inputs": pd.DataFrame({"a": [1]})}, inputs_fingerprint="", parameters_fingerprint="")
    store.commit_stage("members", {"members": pd.DataFrame({"id": ["x"]}), "member_rejects": pd.DataFrame({"l": [2]})},
                       inputs_fingerprint="", parameters_fingerprint="")
    store.drop_stages(["members", "mapping"])  # mapping never ran: nothing to drop
    assert store.table_names() == ["inputs"] and set(store.completed_stages()) == {"subset"}


def test_snapshot_is_a_consistent_copy(store, tmp_path):
    store.commit_stage("subset", {"inputs": pd.DataFrame({"a": [1, 2]})}, inputs_fingerprint="f",
                       parameters_fingerprint="")
    store.snapshot(tmp_path / "copy" / "staging.db")
    with StagingStore(tmp_path / "copy" / "staging.db") as copy:
        assert list(copy.canonical_lines("inputs")) == list(store.canonical_lines("inputs"))
        assert copy.completed_stages()["subset"]["inputs_fingerprint"] == "f"


def test_canonical_lines_keep_types_and_insertion_order(store):
    store.commit_stage("s", {"t": pd.DataFrame({"k": ["b", "a"], "n": [1, 2], "x": [0.5, None]})},
                       inputs_fingerprint="", parameters_fingerprint="")
    assert list(store.canonical_lines("t")) == ['[["k", "TEXT"], ["n", "INTEGER"], ["x", "REAL"]]',
                                                '["b", 1, 0.5]', '["a", 2, null]']
    assert list(store.canonical_lines("t", exclude=("n", "x"))) == ['[["k", "TEXT"]]', '["b"]', '["a"]']


def test_a_table_is_inserted_a_slice_at_a_time_in_order(store, monkeypatch):
    from loyalty_toolkit.store import staging

    monkeypatch.setattr(staging, "_INSERT_ROWS", 3)
    frame = pd.DataFrame({"n": range(10), "points": [Decimal(i) / 4 for i in range(10)],
                          "text": [None if i == 7 else f"t{i}" for i in range(10)]})
    store.commit_stage("members", {"t": frame}, inputs_fingerprint="i", parameters_fingerprint="p")
    back = store.read_table("t")
    assert back["n"].tolist() == list(range(10))
    assert back["points"].tolist() == [str(Decimal(i) / 4) for i in range(10)]
    text = back["text"].tolist()
    assert text[6] == "t6" and pd.isna(text[7]) and text[8] == "t8"  # NULL stays NULL


def test_stored_decimal_reads_back_what_the_store_wrote(store):
    from loyalty_toolkit.store import stored_decimal

    frame = pd.DataFrame({"points": [Decimal("12.50"), Decimal("-0.000001"), None], "units": [3, 4, 5]})
    store.commit_stage("members", {"t": frame}, inputs_fingerprint="i", parameters_fingerprint="p")
    back = store.read_table("t")
    assert [stored_decimal(v) for v in back["points"]] == [Decimal("12.50"), Decimal("-0.000001"), Decimal(0)]
    assert stored_decimal(back["units"][0]) == 3 and stored_decimal("") == 0
    with pytest.raises(ValueError, match="not an exact amount"):
        stored_decimal("12,5")


# -- pending tables: written slice by slice during a stage, published by its commit -------------

def _slices() -> list[pd.DataFrame]:
    """Four member slices of a lots-like table, one of them without rows (but typed, as a slice
    of a typed frame is: an empty *object* column would make pd.concat's bools object)."""
    whole = pd.DataFrame({"lot": [f"L{i}" for i in range(12)], "points": [Decimal(i) / 8 for i in range(12)],
                          "units": range(12), "open": [i % 2 == 0 for i in range(12)],
                          "note": [None if i % 3 else "x" for i in range(12)]})
    return [whole.iloc[a:b] for a, b in ((0, 4), (4, 4), (4, 11), (11, 12))]


def test_pending_tables_publish_what_one_whole_frame_would(tmp_path):
    slices = _slices()
    with StagingStore(tmp_path / "a.db") as a, StagingStore(tmp_path / "b.db") as b:
        pt = a.pending("transfers")
        for s in slices:
            pt.append("lots", s)
        assert a.table_names() == [] and not a.has_table("lots")  # hidden until the commit
        a.commit_stage("transfers", {"small": pd.DataFrame({"k": [1]})}, inputs_fingerprint="i",
                       parameters_fingerprint="p", pending=pt)
        b.commit_stage("transfers", {"small": pd.DataFrame({"k": [1]}), "lots": pd.concat(slices, ignore_index=True)},
                       inputs_fingerprint="i", parameters_fingerprint="p")
        assert list(a.canonical_lines("lots")) == list(b.canonical_lines("lots"))
        assert len(list(a.canonical_lines("lots"))) == 13
        assert sorted(a.table_names()) == ["lots", "small"] == sorted(b.table_names())
        assert [t for t in a.db.table_names() if t.startswith("_pending")] == []
        assert list(a.canonical_lines("_stages", exclude=("completed_at",))) == \
            list(b.canonical_lines("_stages", exclude=("completed_at",)))
        a.drop_stages(["transfers"])  # the ledger row lists the published table
        assert a.table_names() == []


def test_publishing_replaces_the_table_a_previous_run_committed(store):
    store.commit_stage("transfers", {"lots": pd.DataFrame({"old": ["x", "y", "z"]})}, inputs_fingerprint="1",
                       parameters_fingerprint="1")
    pt = store.pending("transfers")
    pt.append("lots", pd.DataFrame({"lot": ["L1"], "n": [1]}))
    store.commit_stage("transfers", {}, inputs_fingerprint="2", parameters_fingerprint="2", pending=pt)
    assert list(store.canonical_lines("lots")) == ['[["lot", "TEXT"], ["n", "INTEGER"]]', '["L1", 1]']


def test_discarded_pending_tables_leave_the_database_as_it_was(store):
    store.commit_stage("members", {"members": pd.DataFrame({"id": ["a"]})}, inputs_fingerprint="1",
                       parameters_fingerprint="1")
    before = store.digests()
    pt = store.pending("transfers")
    for s in _slices():
        pt.append("lots", s)
    pt.append("allocations", pd.DataFrame({"n": [1, 2]}))
    assert store.digests() != before
    pt.discard()
    assert store.digests() == before


def test_a_failing_commit_drops_the_pending_tables_too(store):
    store.commit_stage("transfers", {"lots": pd.DataFrame({"id": ["a"]})}, inputs_fingerprint="1",
                       parameters_fingerprint="1")
    before = store.digests()
    pt = store.pending("transfers")
    pt.append("lots", pd.DataFrame({"id": ["z", "y"]}))
    with pytest.raises(LoyaltyError, match="could not write"):
        store.commit_stage("transfers", {"other": pd.DataFrame({"x": [object()]})}, inputs_fingerprint="2",
                           parameters_fingerprint="2", pending=pt)
    assert store.digests() == before


def test_a_crashed_runs_pending_tables_are_dropped_when_the_stage_opens_them_again(tmp_path):
    with StagingStore(tmp_path / "s.db") as s:
        before = s.digests()
        s.pending("transfers").append("lots", pd.DataFrame({"n": [1]}))
        s.pending("rewards").append("rewards", pd.DataFrame({"n": [2]}))
    with StagingStore(tmp_path / "s.db") as s:  # the process died: no discard, no commit
        pt = s.pending("transfers")
        assert not s.has_table("_pending_transfers_lots")
        assert s.has_table("_pending_rewards_rewards")  # another stage's: not this stage's to drop
        s.pending("rewards").discard()
        assert s.digests() == before
        pt.append("lots", pd.DataFrame({"n": [3]}))
        s.commit_stage("transfers", {}, inputs_fingerprint="", parameters_fingerprint="", pending=pt)
        assert s.read_table("lots")["n"].tolist() == [3]


def test_pending_frames_must_match_the_first_ones_columns_and_types(store):
    pt = store.pending("transfers")
    pt.append("lots", pd.DataFrame({"lot": ["L1"], "n": [1]}))
    with pytest.raises(LoyaltyError, match=r"pending table 'lots'.*columns \['n', 'lot'\]"):
        pt.append("lots", pd.DataFrame({"n": [2], "lot": ["L2"]}))
    with pytest.raises(LoyaltyError, match=r"pending table 'lots'.*'n' would be REAL where earlier frames made it INTEGER"):
        pt.append("lots", pd.DataFrame({"lot": ["L2"], "n": [2.5]}))
    with pytest.raises(LoyaltyError, match="reserved"):
        pt.append("_stages", pd.DataFrame({"n": [1]}))
    pt.append("lots", pd.DataFrame({"lot": pd.Series([], dtype=object), "n": pd.Series([], dtype=object)}))
    assert store.count("_pending_transfers_lots") == 1  # the refused frames wrote nothing


def test_empty_frames_do_not_fix_the_pending_tables_types(store):
    pt = store.pending("transfers")
    pt.append("lots", pd.DataFrame({"lot": pd.Series([], dtype=object), "n": pd.Series([], dtype=object)}))
    pt.append("lots", pd.DataFrame({"lot": ["L1"], "n": [1]}))
    store.commit_stage("transfers", {}, inputs_fingerprint="", parameters_fingerprint="", pending=pt)
    assert list(store.canonical_lines("lots")) == ['[["lot", "TEXT"], ["n", "INTEGER"]]', '["L1", 1]']


def test_a_pending_table_cannot_also_be_written_whole(store):
    pt = store.pending("transfers")
    pt.append("lots", pd.DataFrame({"n": [1]}))
    with pytest.raises(LoyaltyError, match="'lots' is both written whole and pending"):
        store.commit_stage("transfers", {"lots": pd.DataFrame({"n": [2]})}, inputs_fingerprint="",
                           parameters_fingerprint="", pending=pt)
