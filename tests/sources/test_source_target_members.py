"""Reading the target's member export (CSV or JSON), normalised like stage 01, and writing one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.target_members import (
    EXPORT_COLUMNS, TARGET_MEMBER_COLUMNS, read_target_members, write_target_members_csv,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mapping"
ID = "2f1c9a4e-0000-4000-8000-00000000000{}".format

EXPECTED = pd.DataFrame({
    "target_id": [ID(1), ID(2), ID(3), ID(4)],
    "email": ["Jean.Dupont@example.com", "anne.martin@example.fr", "", "solo@example.com"],
    "email_key": ["jean.dupont@example.com", "anne.martin@example.fr", "", "solo@example.com"],
    "phone": ["+33612345678", "+33622334455", "+33698765432", ""],
    "card_number": ["0001234567", "0009999999", "", ""],
    "created_at": [f"2026-07-01T09:00:0{i}+00:00" for i in range(4)],
})


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_csv_export_is_normalised_like_stage_01() -> None:
    frame = read_target_members(FIXTURES / "target_members.csv", default_region="FR")
    assert list(frame.columns) == list(TARGET_MEMBER_COLUMNS)
    pd.testing.assert_frame_equal(frame.drop(columns="source_line"), EXPECTED, check_dtype=False)
    assert frame["source_line"].tolist() == [2, 3, 4, 5]


def test_json_items_export_gives_the_same_members() -> None:
    frame = read_target_members(FIXTURES / "target_members_items.json", default_region="FR")
    pd.testing.assert_frame_equal(frame.drop(columns="source_line"), EXPECTED, check_dtype=False)
    assert frame["source_line"].tolist() == [1, 2, 3, 4]  # 1-based item numbers


def test_json_list_without_extension_is_detected_by_content(tmp_path: Path) -> None:
    items = json.loads((FIXTURES / "target_members_items.json").read_text(encoding="utf-8"))["items"]
    p = write(tmp_path, "export.txt", json.dumps(items))
    frame = read_target_members(p, default_region="FR")
    assert frame["target_id"].tolist() == EXPECTED["target_id"].tolist()


@pytest.mark.parametrize("delimiter, encoding", [(";", "utf-8-sig"), ("\t", "utf-8"), ("|", "cp1252")])
def test_csv_any_delimiter_and_encoding(tmp_path: Path, delimiter: str, encoding: str) -> None:
    lines = ["memberId;email;phone;loyaltyCardNumber;createdAt;firstName",
             "A1;Élodie@Example.com;06 12 34 56 78;007;2026-07-01;Élodie"]
    p = write(tmp_path, "export.csv", "\r\n".join(l.replace(";", delimiter) for l in lines) + "\r\n", encoding)
    frame = read_target_members(p, default_region="FR")
    row = frame.iloc[0]
    assert (row["target_id"], row["email_key"], row["phone"], row["card_number"]) == (
        "A1", "élodie@example.com", "+33612345678", "007")


@pytest.mark.parametrize("phone", ["06 12 34 56 78", "+33612345678", "0033 6 12 34 56 78", "06.12.34.56.78"])
def test_phone_spellings_become_one_e164(tmp_path: Path, phone: str) -> None:
    p = write(tmp_path, "export.csv", f'memberId,phone\nA1,"{phone}"\n')
    assert read_target_members(p, default_region="FR")["phone"].tolist() == ["+33612345678"]


def test_optional_columns_may_be_absent_and_header_only_is_empty(tmp_path: Path) -> None:
    frame = read_target_members(write(tmp_path, "a.csv", "memberId\nA1\n"), default_region="FR")
    assert frame.iloc[0][["email", "phone", "card_number", "created_at"]].tolist() == ["", "", "", ""]
    empty = read_target_members(write(tmp_path, "b.csv", "memberId,email\n"), default_region="FR")
    assert empty.empty and list(empty.columns) == list(TARGET_MEMBER_COLUMNS)


@pytest.mark.parametrize("name, text, line, column, words", [
    ("a.csv", "id,email\nA1,a@b.fr\n", 1, "memberId", "missing from header"),
    ("b.csv", "memberId,email\nA1,a@b.fr\n  ,c@d.fr\n", 3, "memberId", "empty"),
    ("c.csv", "memberId,email\nA1,a@b.fr\nA2,c@d.fr\nA1,e@f.fr\n", 4, "memberId", "repeated (first on line 2)"),
    ("d.csv", "memberId,email\nA1,a@b.fr,extra\n", 2, None, "expected 2 fields"),
    ("e.json", '[{"memberId": "A1"},\n {"memberId": "A2",}]', 2, 20, "not valid JSON"),
    ("f.json", '[{"memberId": "A1"}, "A2"]', 2, None, "item 2 is not an object"),
    ("g.json", '[{"memberId": "A1", "loyaltyCardNumber": 1234.0}]', 1, "loyaltyCardNumber", "found float"),
    ("h.json", '[{"memberId": "A1", "phone": true}]', 1, "phone", "found bool"),
    ("i.json", '[{"email": "a@b.fr"}]', 1, "memberId", "empty"),
    ("j.json", '{"members": []}', None, "items", '"items" list'),
    ("k.json", '"A1"', None, None, "expected a list"),
])
def test_bad_export_names_file_line_and_column(tmp_path: Path, name: str, text: str, line, column, words: str) -> None:
    with pytest.raises(InputError) as exc:
        read_target_members(write(tmp_path, name, text), default_region="FR")
    err = exc.value
    assert (err.file, err.line, err.column, err.stage) == (name, line, column, "mapping")
    assert words in err.message


def test_json_number_card_is_read_as_text(tmp_path: Path) -> None:
    p = write(tmp_path, "x.json", '[{"memberId": 42, "loyaltyCardNumber": 1234567}]')
    frame = read_target_members(p, default_region="FR")
    assert frame.iloc[0][["target_id", "card_number"]].tolist() == ["42", "1234567"]


def test_written_export_has_the_real_columns_and_reads_back(tmp_path: Path) -> None:
    members = pd.DataFrame({
        "target_id": ["T2", "T1"], "email": ["b@x.fr", "a@x.fr"], "phone": ["+33612345678", ""],
        "card_number": ["00042", ""], "first_name": ["Zoé", "Jean, Marc"], "last_name": ["Ngô", "Dupont"],
        "active": [True, False], "created_at": ["2026-07-01T00:00:00+00:00", ""],
    })
    path = write_target_members_csv(members, tmp_path / "out" / "export.csv")
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(EXPORT_COLUMNS.values())
    assert text.splitlines()[1] == "T2,b@x.fr,+33612345678,00042,Zoé,Ngô,,,true,2026-07-01T00:00:00+00:00"
    assert '"Jean, Marc"' in text and "\r" not in text
    back = read_target_members(path, default_region="FR")
    assert back[["target_id", "card_number", "phone"]].values.tolist() == [
        ["T2", "00042", "+33612345678"], ["T1", "", ""]]
    again = write_target_members_csv(members, tmp_path / "again.csv")
    assert again.read_bytes() == path.read_bytes()
