"""read_members: the config's column map applied to the legacy member export."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_toolkit.config import MEMBER_COLUMNS, MembersSource
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.members import read_members, required_headers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "members"


def test_reads_canonical_columns_from_a_bom_semicolon_export():
    frame, table = read_members(MembersSource(path=FIXTURES / "utf8_bom_semicolon.csv"))
    assert list(frame.columns) == [*MEMBER_COLUMNS, "_line"]
    assert frame["legacy_id"].tolist() == ["G001", "G002"]
    assert frame["phone"].tolist() == ["06 12 34 56 78", "+33698765432"]
    assert frame["_line"].tolist() == [2, 3]
    assert table.format.delimiter == ";" and table.format.encoding == "utf-8-sig"


def test_default_mapped_optional_columns_may_be_absent():
    frame, _ = read_members(MembersSource(path=FIXTURES / "members_minimal.csv"))
    assert frame["gender"].tolist() == ["", ""]
    assert frame["base_center"].tolist() == ["", ""]
    assert frame["card_number"].tolist() == ["007", "008"]  # leading zeros kept: everything is text


def test_explicitly_mapped_column_must_exist():
    src = MembersSource(path=FIXTURES / "members_minimal.csv", columns={"gender": "sex"})
    assert required_headers(src) == ["guest_id", "sex"]
    with pytest.raises(InputError) as info:
        read_members(src)
    assert str(info.value).startswith("[members] members_minimal.csv:1: column sex: mapped column missing from header")


def test_legacy_id_header_is_required(tmp_path):
    p = tmp_path / "members.csv"
    p.write_text("id,first_name\n1,Ann\n")
    with pytest.raises(InputError) as info:
        read_members(MembersSource(path=p), stage="s01")
    err = info.value
    assert (err.file, err.line, err.column, err.stage) == ("members.csv", 1, "guest_id", "s01")
    assert "(found: id, first_name)" in str(err)


def test_renamed_columns_are_read_under_canonical_names(tmp_path):
    p = tmp_path / "guests.tsv"
    p.write_text("ID\tPrenom\tNom\tMail\nX1\tAnn\tLee\tann@x.fr\n", encoding="utf-8")
    src = MembersSource(path=p, columns={"legacy_id": "ID", "first_name": "Prenom", "last_name": "Nom",
                                         "email": "Mail"})
    frame, _ = read_members(src)
    assert frame.loc[0, ["legacy_id", "first_name", "last_name", "email"]].tolist() == ["X1", "Ann", "Lee", "ann@x.fr"]
    assert frame.loc[0, "phone"] == ""
