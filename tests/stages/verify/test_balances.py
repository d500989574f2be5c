"""Stage 06's proof: per member and in total, balance at the target = points this run transferred
(+ the balance before the import); mismatches named; bad exports refused with file, line, column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.target_balances import read_target_balances
from loyalty_toolkit.stages.verify.balances import verify_balances

ID_MAP = pd.DataFrame({"legacy_id": ["G1", "G2", "G3"], "target_id": ["T1", "T2", "T3"]})
TRANSFERS = pd.DataFrame({"target_id": ["T1", "T1", "T2", "T1"], "points": [100, 20, 7, -5]})


def export(tmp_path: Path, text: str, name: str = "after.csv") -> pd.DataFrame:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return read_target_balances(p)


def test_balances_equal_to_the_transfers_verify(tmp_path):
    after = export(tmp_path, "memberId,points\nT1,115\nT2,7\nT3,0\n")
    v = verify_balances(TRANSFERS, ID_MAP, after, after_file="after.csv")
    assert v.mismatches().empty
    assert v.totals.iloc[0].to_dict() == {"members": 3, "transferred": 122, "expected": "122", "at_target": "122",
                                          "difference": "0", "mismatches": 0}


def test_one_edited_balance_is_named_with_both_figures(tmp_path):
    after = export(tmp_path, "memberId,points\nT1,115\nT2,8\nT3,0\n")
    v = verify_balances(TRANSFERS, ID_MAP, after, after_file="after.csv")
    bad = v.mismatches()
    assert bad[["legacy_id", "target_id", "expected", "at_target", "difference", "status", "line"]].values.tolist() == [
        ["G2", "T2", "7", "8", "1", "mismatch", 3]]
    assert v.totals.iloc[0]["difference"] == "1"


def test_the_balance_before_the_import_is_added(tmp_path):
    before = export(tmp_path, "memberId,points\nT3,40\n", "before.csv")
    after = export(tmp_path, "memberId,points\nT1,115\nT2,7\nT3,40\n")
    v = verify_balances(TRANSFERS, ID_MAP, after, before, after_file="after.csv")
    assert v.mismatches().empty and v.totals.iloc[0]["expected"] == "162"
    assert verify_balances(TRANSFERS, ID_MAP, after).mismatches()["legacy_id"].tolist() == ["G3"]


def test_a_member_owed_points_and_missing_from_the_export_is_a_mismatch(tmp_path):
    after = export(tmp_path, "memberId,points\nT1,115\n")
    v = verify_balances(TRANSFERS, ID_MAP, after)
    assert v.mismatches()[["legacy_id", "status"]].values.tolist() == [["G2", "missing_from_export"]]


def test_an_unknown_member_is_refused_with_file_line_and_column(tmp_path):
    after = export(tmp_path, "memberId,points\nT1,115\nT9,7\n")
    with pytest.raises(InputError) as err:
        verify_balances(TRANSFERS, ID_MAP, after, after_file="after.csv", id_column="memberId")
    assert (err.value.file, err.value.line, err.value.column, err.value.exit_code) == ("after.csv", 3, "memberId", 2)
    assert "unknown member T9" in err.value.one_line()


@pytest.mark.parametrize("text, line, column, words", [
    ("memberId,points\nT1,115\nT1,7\n", 3, "memberId", "member T1 is listed twice (first on line 2)"),
    ("memberId,points\nT1,115\nT2,seven\n", 3, "points", "balance 'seven' is not a number"),
    ("memberId,points\nT1,115\nT2,\n", 3, "points", "balance '' is not a number"),
    ("memberId,points\n,115\n", 2, "memberId", "empty member ID"),
])
def test_a_bad_export_is_one_line_with_file_line_and_column(tmp_path, text, line, column, words):
    with pytest.raises(InputError) as err:
        export(tmp_path, text)
    assert (err.value.file, err.value.line, err.value.column) == ("after.csv", line, column)
    assert words in err.value.one_line()


def test_columns_are_mapped_like_every_source(tmp_path):
    p = tmp_path / "after.csv"
    p.write_text("id;solde\nT1;115.00\n", encoding="utf-8")
    frame = read_target_balances(p, columns={"target_id": "id", "balance": "solde"})
    assert frame.values.tolist() == [["T1", Decimal("115.00"), 2]]
    with pytest.raises(InputError):
        read_target_balances(p)  # the default headers are not there
