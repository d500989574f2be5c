"""Stage 01 logic: one reason code per rejected row, row conservation, duplicate review groups."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.shared.member_rules import (
    DUPLICATE_COLUMNS,
    FIELDS,
    MEMBER_COLUMNS_OUT,
    REASON_CODES,
    prepare_members,
)

GOOD = {"first_name": "Ann", "last_name": "Lee", "email": "", "phone": "", "card_number": "", "birth_date": "",
        "gender": "", "created_at": "", "base_center": ""}


def member_frame(rows: list[dict[str, str]], first_line: int = 2) -> pd.DataFrame:
    frame = pd.DataFrame([{**GOOD, **r} for r in rows], columns=list(FIELDS)).fillna("").astype("str")
    frame["_line"] = range(first_line, first_line + len(frame))
    return frame


def prepare(rows: list[dict[str, str]], **kwargs) -> object:
    args = {"source_file": "members.csv", "default_region": "FR", "timezone": "Europe/Paris", **kwargs}
    return prepare_members(member_frame(rows), **args)


# One row per reason code (plus accepted rows), in file order: (row, expected reason or None).
CASES = [
    ({"legacy_id": "G1", "email": "ann@x.fr"}, None),
    ({"legacy_id": " ", "email": "nobody@x.fr"}, ("LEGACY_ID_MISSING", "legacy_id")),
    ({"legacy_id": "G1", "email": "again@x.fr"}, ("LEGACY_ID_DUPLICATE", "legacy_id")),
    ({"legacy_id": "G3"}, ("NO_IDENTIFIER", "email/phone/card_number")),
    ({"legacy_id": "G4", "email": "ann@"}, ("EMAIL_INVALID", "email")),
    ({"legacy_id": "G5", "phone": "06 12"}, ("PHONE_INVALID", "phone")),
    ({"legacy_id": "G6", "card_number": "77", "last_name": " "}, ("NAME_MISSING", "last_name")),
    ({"legacy_id": "G7", "card_number": "78", "birth_date": "1985-02-30"}, ("BIRTH_DATE_INVALID", "birth_date")),
    ({"legacy_id": "G8", "card_number": "79", "birth_date": "1850-01-01"}, ("BIRTH_DATE_INVALID", "birth_date")),
    ({"legacy_id": "G9", "card_number": "80", "created_at": "last tuesday"}, ("CREATED_AT_INVALID", "created_at")),
    ({"legacy_id": "G10", "phone": "06 12 34 56 78", "first_name": "  Élodie ", "birth_date": "25/04/1985",
      "gender": "F", "created_at": "2024-01-15 10:00:00", "card_number": " 000123 "}, None),
    ({"legacy_id": "G11", "card_number": "8\x001"}, ("CONTROL_CHARACTER", "card_number")),
]


def test_one_row_per_reason_code_and_conservation():
    result = prepare([row for row, _ in CASES])
    assert result.rows_read == len(result.members) + len(result.rejects) == len(CASES)
    assert list(result.rejects.columns) == list(REJECT_COLUMNS)
    expected = [(i + 2, reason) for i, (_, reason) in enumerate(CASES) if reason]
    got = [(line, (code, column)) for line, code, column in
           result.rejects[["line", "reason_code", "column"]].itertuples(index=False)]
    assert got == expected
    assert set(result.rejects["reason_code"]) == set(REASON_CODES)
    assert (result.rejects["stage"] == "members").all() and (result.rejects["file"] == "members.csv").all()
    assert result.counts() == {"rows_read": 12, "accepted": 2, "rejected": 10, "duplicate_groups": 0,
                               "duplicate_members": 0, "identifiers_dropped": 0}


def test_a_bad_optional_identifier_is_left_out_and_listed_not_a_reason_to_reject():
    result = prepare([
        {"legacy_id": "J1", "email": "jane@@mail", "card_number": "4400"},          # email out, card kept
        {"legacy_id": "J2", "email": "jane@@mail", "phone": "06 12 34 56 78"},      # email out, phone kept
        {"legacy_id": "J3", "email": "jo@x.fr", "phone": "06 12"},                  # phone out, email kept
        {"legacy_id": "J4", "email": "jane@@mail", "phone": "06 12"},               # nothing usable left
        {"legacy_id": "J5", "email": "kim@@mail", "card_number": "4400"},           # card shared with J1
    ])
    assert result.rows_read == len(result.members) + len(result.rejects) == 5
    assert result.rejects[["record_key", "reason_code"]].values.tolist() == [["J4", "EMAIL_INVALID"]]
    m = result.members.set_index("legacy_id")
    assert list(m.index) == ["J1", "J2", "J3", "J5"]
    assert m.loc["J1", "email"] == m.loc["J1", "email_key"] == "" and m.loc["J1", "email_raw"] == "jane@@mail"
    assert m.loc["J1", "card_number"] == "4400" and m.loc["J2", "phone"] == "+33612345678"
    assert m.loc["J3", "phone"] == "" and m.loc["J3", "phone_raw"] == "06 12" and m.loc["J3", "email"] == "jo@x.fr"
    review = result.review
    assert list(review.columns) == list(REJECT_COLUMNS)
    assert review[["line", "record_key", "column", "reason_code", "value"]].values.tolist() == [
        [2, "J1", "email", "EMAIL_INVALID_DROPPED", "jane@@mail"],
        [3, "J2", "email", "EMAIL_INVALID_DROPPED", "jane@@mail"],
        [4, "J3", "phone", "PHONE_INVALID_DROPPED", "06 12"],
        [6, "J5", "email", "EMAIL_INVALID_DROPPED", "kim@@mail"]]
    assert review["message"].iloc[0].startswith("email: not a valid address")
    # a dropped email is no duplicate key: J1 and J5 share only their card
    assert set(result.duplicates["identifier"]) == {"card_number"}
    assert result.counts()["identifiers_dropped"] == 4


def test_reject_messages_name_the_column_and_the_problem():
    r = prepare([row for row, _ in CASES]).rejects.set_index("record_key")
    assert r.loc["G1", "message"] == "legacy_id: already used on line 2; the first occurrence is kept"
    assert r.loc["G4", "message"] == "email: not a valid address (empty domain)"
    assert r.loc["G4", "value"] == "ann@"
    assert r.loc["G5", "message"].startswith("phone: not a possible number")
    assert r.loc["G6", "message"].startswith("last_name: empty")
    assert r.loc["G7", "message"] == "birth_date: not a real date (day is out of range for month)"
    assert r.loc["G8", "message"] == "birth_date: before 1900-01-01"
    assert r.loc["G9", "message"].startswith("created_at: not a date-time")
    assert r.loc["G9", "value"] == "last tuesday"
    assert r.loc["", "reason_code"] == "LEGACY_ID_MISSING"


def test_accepted_members_are_normalised():
    m = prepare([row for row, _ in CASES]).members
    assert list(m.columns) == list(MEMBER_COLUMNS_OUT)
    assert m["legacy_id"].tolist() == ["G1", "G10"]  # sorted by legacy_id (as text)
    g10 = m.set_index("legacy_id").loc["G10"]
    assert g10["first_name"] == "Élodie"
    assert (g10["phone"], g10["phone_raw"]) == ("+33612345678", "06 12 34 56 78")
    assert g10["card_number"] == "000123"
    assert g10["birth_date"] == "1985-04-25" and g10["gender"] == "female"
    assert (g10["created_at_utc"], g10["created_at_raw"]) == ("2024-01-15T09:00:00+00:00", "2024-01-15 10:00:00")
    assert (g10["source_file"], g10["source_line"]) == ("members.csv", 12)
    g1 = m.set_index("legacy_id").loc["G1"]
    assert (g1["email"], g1["email_key"], g1["phone"], g1["gender"]) == ("ann@x.fr", "ann@x.fr", "", "not_disclosed")


def test_first_occurrence_of_an_id_is_kept_even_if_later_rows_look_better():
    r = prepare([{"legacy_id": "D1", "email": "first@x.fr"}, {"legacy_id": "D1 ", "email": "second@x.fr"}])
    assert r.members["email"].tolist() == ["first@x.fr"]
    assert r.rejects["reason_code"].tolist() == ["LEGACY_ID_DUPLICATE"]


# Duplicate candidates: (identifier, rows of the group) - never merged, never rejected.
DUPLICATE_CASES = [
    ("email", [{"email": "Jean.Dupont@Example.com"}, {"email": "jean.dupont@example.COM"}],
     "email:jean.dupont@example.com"),
    ("phone", [{"phone": "06 12 34 56 78"}, {"phone": "+33612345678"}, {"phone": "0033 6 12 34 56 78"}],
     "phone:+33612345678"),
    ("card_number", [{"card_number": "000123"}, {"card_number": " 000123"}], "card_number:000123"),
]


@pytest.mark.parametrize(("identifier", "rows", "group_id"), DUPLICATE_CASES, ids=[c[0] for c in DUPLICATE_CASES])
def test_shared_identifiers_become_review_groups(identifier, rows, group_id):
    others = [{"legacy_id": "Z9", "email": "lonely@x.fr", "card_number": "123"}]  # "123" != "000123"
    r = prepare([{"legacy_id": f"M{i}", **row} for i, row in enumerate(rows)] + others)
    assert len(r.members) == len(rows) + 1 and r.rejects.empty
    d = r.duplicates
    assert list(d.columns) == list(DUPLICATE_COLUMNS)
    assert d["group_id"].unique().tolist() == [group_id]
    assert set(d["identifier"]) == {identifier}
    assert d["legacy_id"].tolist() == [f"M{i}" for i in range(len(rows))]
    assert d["source_line"].tolist() == list(range(2, 2 + len(rows)))
    assert r.counts()["duplicate_groups"] == 1 and r.counts()["duplicate_members"] == len(rows)


def test_rejected_rows_never_form_duplicate_groups():
    r = prepare([{"legacy_id": "A", "email": "x@y.fr"}, {"legacy_id": "B", "email": "X@y.fr", "first_name": ""}])
    assert r.duplicates.empty and len(r.members) == 1


def test_empty_frame():
    r = prepare([])
    assert r.counts() == {"rows_read": 0, "accepted": 0, "rejected": 0, "duplicate_groups": 0, "duplicate_members": 0,
                          "identifiers_dropped": 0}
    assert list(r.members.columns) == list(MEMBER_COLUMNS_OUT) and list(r.rejects.columns) == list(REJECT_COLUMNS)


def test_date_format_and_missing_columns():
    frame = pd.DataFrame({"legacy_id": ["A"], "first_name": ["Ann"], "last_name": ["Lee"], "card_number": ["1"],
                          "birth_date": ["04/12/1985"]})  # no _line, no email/phone/... columns
    r = prepare_members(frame, source_file="m.csv", default_region="FR", timezone="UTC", date_format="%m/%d/%Y")
    assert r.members.loc[0, "birth_date"] == "1985-04-12" and r.members.loc[0, "source_line"] == 2


VALUES = st.sampled_from(["", " ", "A1", "A2", "a1", "x@y.fr", "X@Y.FR", "bad@", "06 12 34 56 78", "+33612345678",
                          "12", "000123", "1985-02-30", "1985-04-12", "1850-01-01", "2024-03-31 02:30:00", "junk",
                          "Élodie", "F", "M", "\t"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({f: VALUES for f in FIELDS}), max_size=25))
def test_every_row_is_accepted_or_rejected_with_a_reason(rows):
    frame = pd.DataFrame(rows, columns=list(FIELDS)).astype("str")
    frame["_line"] = range(2, 2 + len(frame))
    r = prepare_members(frame, source_file="f.csv", default_region="FR", timezone="Europe/Paris")
    assert r.rows_read == len(r.members) + len(r.rejects) == len(rows)
    assert r.rejects["reason_code"].isin(REASON_CODES).all()
    assert (r.rejects["message"] != "").all()
    lines = sorted(r.members["source_line"].tolist() + r.rejects["line"].tolist())
    assert lines == list(range(2, 2 + len(rows)))  # each input line exactly once
    assert r.members["legacy_id"].is_unique and (r.members["legacy_id"] != "").all()
    assert r.members["legacy_id"].tolist() == sorted(r.members["legacy_id"])
    identifiers = (r.members["email"] != "") | (r.members["phone"] != "") | (r.members["card_number"] != "")
    assert identifiers.all()
    assert (r.duplicates.groupby("group_id")["legacy_id"].nunique() >= 2).all()


def test_a_nul_byte_rejects_the_row_and_an_ambiguous_date_is_refused_unless_date_format_says():
    frame = pd.DataFrame({"legacy_id": ["G\x002", "G3", "G4"], "first_name": ["Ann", "Bo", "Cy"],
                          "last_name": ["Lee", "Ng", "Li"], "card_number": ["1", "2\x00", "3"],
                          "birth_date": ["", "", "03/04/1990"], "_line": [2, 3, 4]})
    r = prepare_members(frame, source_file="m.csv", default_region="FR", timezone="UTC")
    assert r.rows_read == 3 and len(r.members) == 0
    got = r.rejects[["line", "record_key", "column", "reason_code", "value"]].values.tolist()
    assert got == [[2, "G\\x002", "legacy_id", "CONTROL_CHARACTER", "G\\x002"],
                   [3, "G3", "card_number", "CONTROL_CHARACTER", "2\\x00"],
                   [4, "G4", "birth_date", "BIRTH_DATE_INVALID", "03/04/1990"]]
    assert "U+0000" in r.rejects["message"].iloc[0] and "date_format" in r.rejects["message"].iloc[2]
    told = prepare_members(frame.iloc[2:], source_file="m.csv", default_region="FR", timezone="UTC",
                           date_format="%d/%m/%Y")
    assert told.members["birth_date"].tolist() == ["1990-04-03"]
