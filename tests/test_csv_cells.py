"""CSV cells are data (issue #17): every CSV kind the toolkit writes neutralises formula cells, or
refuses a value the target takes as written."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pandas as pd
import pytest

from loyalty_toolkit.csv_cells import is_formula, neutralise, neutralise_frame, restore, write_frame_csv
from loyalty_toolkit.sources.target_members import read_target_members, write_target_members_csv
from loyalty_toolkit.targets.haravan import write_opening_balances
from loyalty_toolkit.targets.ol_coupons import render_codes
from loyalty_toolkit.targets.splio import render_splio
from loyalty_toolkit.targets.splio_rehearsal import write_master_export

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+SUM(1+1)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_cell_gets_a_leading_quote_and_reads_back(value):
    assert is_formula(value) and neutralise(value) == "'" + value and restore(neutralise(value)) == value


@pytest.mark.parametrize("value", ["-108", "+33612345678", "+84 912 345 678", "12.5", "G0000025", "a=b", "", "'=x"])
def test_plain_numbers_phones_and_ordinary_text_are_kept(value):
    assert not is_formula(value) and neutralise(value) == value


def test_numbers_written_as_numbers_are_not_text_cells():
    f = pd.DataFrame({"points": [-108, 5], "amount": [-1.5, 2.0], "note": ["=1+1", "ok"]})
    out = neutralise_frame(f)
    assert out["points"].tolist() == [-108, 5] and out["amount"].tolist() == [-1.5, 2.0]
    assert out["note"].tolist() == ["'=1+1", "ok"] and f["note"].tolist() == ["=1+1", "ok"]


def _cells(text: str, delimiter: str = ",") -> list[str]:
    return [c for row in csv.reader(io.StringIO(text), delimiter=delimiter) for c in row]


def _formula_cells(text: str, delimiter: str = ",") -> list[str]:
    return [c for c in _cells(text, delimiter) if is_formula(c)]


def test_reject_files(tmp_path):
    f = pd.DataFrame({"stage": ["members"] * 2, "line": [2, 3], "value": ["=HYPERLINK(1)", "-5"]})
    text = write_frame_csv(f, tmp_path / "r.csv").read_text(encoding="utf-8")
    assert _formula_cells(text) == [] and "'=HYPERLINK(1)" in _cells(text) and "-5" in _cells(text)


def test_splio_files_quote_text_cells():
    frame = pd.DataFrame({"external_id": ["rw-1"], "name": ["=cmd|' /C calc'!A0"], "description": ["+SUM(1+1)"]})
    text = render_splio(frame, ["external_id", "name", "description"])
    assert _formula_cells(text, ";") == [] and _cells(text, ";")[-2:] == ["'=cmd|' /C calc'!A0", "'+SUM(1+1)"]


def test_ol_coupon_files_refuse_a_formula_code():
    assert render_codes(["ABC-1", "-5"]) == "ABC-1\n-5\n"
    with pytest.raises(ValueError, match="formula"):
        render_codes(["=1+1"])


def test_splio_rehearsal_export(tmp_path):
    path = write_master_export([("1001", "rw-1", "+SUM(1+1)")], tmp_path / "export.csv")
    text = path.read_text(encoding="utf-8")
    assert _formula_cells(text, ";") == [] and "'+SUM(1+1)" in _cells(text, ";")


def test_haravan_file_keeps_phones_and_refuses_a_formula_email(tmp_path):
    frame = pd.DataFrame({"phone": ["+84912345001"], "email": ["an@example.vn"], "opening_revenue": [Decimal(1)],
                          "accumulated_revenue": [Decimal(2)]})
    text = write_opening_balances(frame, tmp_path / "h.csv", bom=False).read_text(encoding="utf-8")
    assert _formula_cells(text) == [] and "+84912345001" in _cells(text)
    with pytest.raises(ValueError, match="formula"):
        write_opening_balances(frame.assign(email=["=x@example.vn"]), tmp_path / "h2.csv")


def test_target_members_export_neutralises_and_reads_back(tmp_path):
    frame = pd.DataFrame({"target_id": ["T1"], "email": ["=x@example.fr"], "phone": ["+33612345678"],
                          "first_name": ["=HYPERLINK(1)"], "last_name": ["@Lee"]})
    path = write_target_members_csv(frame, tmp_path / "export.csv")
    assert _formula_cells(path.read_text(encoding="utf-8")) == []
    back = read_target_members(path, default_region="FR")
    assert back["email"].tolist() == ["=x@example.fr"] and back["phone"].tolist() == ["+33612345678"]
