"""Reading Splio's master reward export (stage 04, step two): columns mapped in the config, and the
bad exports refused with file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_toolkit.config import REWARD_EXPORT_COLUMNS
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.splio_export import MASTER_EXPORT_COLUMNS, read_master_export

CATALOG = ("welcome", "chocolate_bone", "corgi_bowl")


def write(tmp_path: Path, text: str, name: str = "master_rewards_export.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_the_rehearsal_layout_reads_with_the_default_columns(tmp_path):
    p = write(tmp_path, "id;external_id;name\n1066;welcome;Welcome\n1086;chocolate_bone;Bone\n")
    frame = read_master_export(p, columns=REWARD_EXPORT_COLUMNS, catalog=CATALOG)
    assert list(frame.columns) == list(MASTER_EXPORT_COLUMNS)
    assert frame.to_dict("list") == {"external_id": ["welcome", "chocolate_bone"], "internal_id": ["1066", "1086"],
                                     "source_line": [2, 3]}


def test_columns_are_mapped_from_the_config_and_other_columns_ignored(tmp_path):
    p = write(tmp_path, "Reward ID,Status,Code\n 1455 ,active,corgi_bowl\n")
    frame = read_master_export(p, columns={"external_id": "Code", "internal_id": "Reward ID"}, catalog=CATALOG)
    assert frame[["external_id", "internal_id"]].values.tolist() == [["corgi_bowl", "1455"]]


def test_a_reward_of_the_catalog_may_be_missing_from_the_export(tmp_path):
    # coverage lists it (stages/reward_import.py); the export itself is not wrong
    p = write(tmp_path, "id;external_id\n1066;welcome\n")
    assert len(read_master_export(p, columns=REWARD_EXPORT_COLUMNS, catalog=CATALOG)) == 1


# bad export: (text, line, column, words)
BAD = {
    "duplicate external id": ("id;external_id\n1066;welcome\n1067;chocolate_bone\n1068;welcome\n", 4,
                              "external_id", "external_id 'welcome' repeated (first on line 2)"),
    "duplicate internal id": ("id;external_id\n1066;welcome\n1066;corgi_bowl\n", 3, "id",
                              "internal_id '1066' repeated (first on line 2)"),
    "external id unknown to the catalog": ("id;external_id\n1066;welcome\n1099;masterlight\n", 3, "external_id",
                                           "external_id 'masterlight' is not a reward of the catalog"),
    "empty internal id": ("id;external_id\n;welcome\n", 2, "id", "internal_id is empty"),
    "empty external id": ("id;external_id\n1066;\n", 2, "external_id", "external_id is empty"),
    "mapped column missing": ("reward;external_id\n1066;welcome\n", 1, "id", "missing"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_export_is_one_error_naming_file_line_and_column(tmp_path, case):
    text, line, column, words = BAD[case]
    with pytest.raises(InputError) as err:
        read_master_export(write(tmp_path, text), columns=REWARD_EXPORT_COLUMNS, catalog=CATALOG)
    e = err.value
    assert (e.file, e.line, e.column, e.stage) == ("master_rewards_export.csv", line, column, "rewards")
    assert words in e.message
    assert e.one_line().startswith(f"[rewards] master_rewards_export.csv:{line}: column {column}: ")
