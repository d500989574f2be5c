"""The local rehearsal of Splio's master reward import: seeded internal ids and the export it writes."""

from __future__ import annotations

import pytest

from loyalty_toolkit.config import REWARD_EXPORT_COLUMNS
from loyalty_toolkit.sources.splio_export import read_master_export
from loyalty_toolkit.targets.splio_rehearsal import EXPORT_HEADER, FIRST_ID, LAST_ID, assign_internal_ids, write_master_export

IDS = [f"rw-{i}" for i in range(50)]


def test_ids_are_distinct_numbers_and_replay_for_the_same_seed_and_content():
    a = assign_internal_ids(IDS, seed=0, content=[b"file"])
    assert list(a) == IDS and len(set(a.values())) == len(IDS)
    assert all(v.isdigit() and FIRST_ID <= int(v) <= LAST_ID for v in a.values())
    assert assign_internal_ids(IDS, seed=0, content=[b"file"]) == a


@pytest.mark.parametrize("seed, content", [(1, [b"file"]), (0, [b"other file"])])
def test_another_seed_or_other_files_give_other_ids(seed, content):
    assert assign_internal_ids(IDS, seed=seed, content=content) != assign_internal_ids(IDS, seed=0, content=[b"file"])


def test_the_export_reads_back_through_the_real_reader(tmp_path):
    ids = assign_internal_ids(["welcome", "corgi_bowl"], seed=3, content=[b"x"])
    path = write_master_export([(ids[e], e, e.title()) for e in ids], tmp_path / "splio" / "export.csv")
    assert path.read_text(encoding="utf-8").splitlines()[0] == ";".join(EXPORT_HEADER)
    assert "REHEARSAL" in (tmp_path / "splio" / "README.txt").read_text(encoding="utf-8")
    back = read_master_export(path, columns=REWARD_EXPORT_COLUMNS, catalog=ids)
    assert dict(zip(back["external_id"], back["internal_id"])) == ids
