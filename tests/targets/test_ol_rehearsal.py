"""The local rehearsal of Open Loyalty's member import: parsing, validation, uniqueness, results."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.targets.ol_rehearsal import (
    NEW_MEMBER_COLUMNS, RECONCILE_COLUMNS, ExistingIdentifiers, RehearsalImport, parse_members_xml,
    read_import_result, reconcile_import_result, result_json, validate_customer,
)
from loyalty_toolkit.targets.openloyalty import write_members_xml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mapping"
VALID = {"firstName": "Jean", "lastName": "Dupont", "email": "jean@example.com", "gender": "male",
         "active": "true", "agreement1": "false"}


def customer(**changes) -> dict:
    """VALID with changes; a value of None removes the node."""
    out = {**VALID, **changes}
    return {k: v for k, v in out.items() if v is not None}


def counter(prefix: str = "id"):
    n = iter(range(1, 10**6))
    return lambda: f"{prefix}-{next(n)}"


# -------------------------------------------------------------- parsing


def test_parse_members_xml_gives_one_dict_per_customer() -> None:
    customers = parse_members_xml(FIXTURES / "members_0001.xml")
    assert len(customers) == 4
    first = customers[0]
    assert first["email"] == "Jean.Dupont@example.com" and first["loyaltyCardNumber"] == "0001234567"
    assert first["address"] == {"street": "1 rue de la Paix", "city": "Paris"}
    assert first["labels"] == [{"key": "legacy_id", "value": "G1"}]
    assert "email" not in customers[1] and customers[1]["lastName"] == "Nguyễn"


@pytest.mark.parametrize("text, line", [
    ("<customers><customer><email>a@b.fr</customer></customers>", 1),
    ("<?xml version='1.0'?>\n<customers>\n<customer>\n<email>a&b</email></customer></customers>", 4),
    ("", 1),
    ("<members><customer/></members>", 1),
])
def test_unparsable_members_file_has_invalid_structure(tmp_path: Path, text: str, line: int) -> None:
    p = tmp_path / "members_0001.xml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        parse_members_xml(p)
    assert "XML has invalid structure" in exc.value.message
    assert (exc.value.file, exc.value.line) == ("members_0001.xml", line)


# -------------------------------------------------------------- validation, one rule at a time

RULES = [
    ("valid", {}, None),
    ("firstName missing", {"firstName": None}, "firstName is required node"),
    ("lastName missing", {"lastName": None}, "lastName is required node"),
    ("blank counts as missing", {"lastName": "  "}, "lastName is required node"),
    ("active missing", {"active": None}, "active is required node"),
    ("agreement1 missing", {"agreement1": None}, "agreement1 is required node"),
    ("gender missing", {"gender": None}, "gender is required node"),
    ("email missing, no other identifier", {"email": None}, "email is required node"),
    ("email optional with a phone", {"email": None, "phone": "+33612345678"}, None),
    ("email optional with a card", {"email": None, "loyaltyCardNumber": "0001"}, None),
    ("active not a boolean", {"active": "yes"}, "active should one of (true, false)"),
    ("active capitalised", {"active": "True"}, "active should one of (true, false)"),
    ("agreement1 as 1", {"agreement1": "1"}, "agreement1 should one of (true, false)"),
    ("sendActivationMail", {"sendActivationMail": "no"}, "sendActivationMail should one of (true, false)"),
    ("agreement2", {"agreement2": "0"}, "agreement2 should one of (true, false)"),
    ("agreement3 empty is fine", {"agreement3": ""}, None),
    ("gender M", {"gender": "M"}, "gender should one of (male, female, not_disclosed)"),
    ("gender not disclosed", {"gender": "not_disclosed"}, None),
    ("birthDate ok", {"birthDate": "1980-02-29"}, None),
    ("birthDate day first", {"birthDate": "29/02/1980"}, "birthDate has invalid date format (Y-m-d required)"),
    ("birthDate not a real day", {"birthDate": "1981-02-29"}, "birthDate has invalid date format (Y-m-d required)"),
    ("birthDate with time", {"birthDate": "1980-02-29T00:00:00"}, "birthDate has invalid date format (Y-m-d required)"),
    ("birthDate present but empty", {"birthDate": ""}, "birthDate has invalid date format (Y-m-d required)"),
    ("levelId not a UUID", {"levelId": "gold"}, "levelId should be UUID"),
    ("posId UUID", {"posId": "00000000-0000-4000-8000-000000000000"}, None),
    ("first failing rule wins", {"firstName": None, "gender": "x", "active": "y"}, "firstName is required node"),
    ("converter order: active before gender", {"gender": "x", "active": "y"}, "active should one of (true, false)"),
]


@pytest.mark.parametrize("changes, message", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_validate_customer(changes: dict, message: str | None) -> None:
    got = validate_customer(customer(**changes))
    assert got == (None if message is None else f"Convert exception: {message}")


@pytest.mark.parametrize("options, changes, message", [
    ({"email_optional": False}, {"email": None, "phone": "+33612345678"}, "email is required node"),
    ({"birth_date_required": True}, {}, "birthDate has invalid date format (Y-m-d required)"),
    ({"birth_date_required": True}, {"birthDate": "1990-01-31"}, None),
])
def test_oss_strict_options(options: dict, changes: dict, message: str | None) -> None:
    got = validate_customer(customer(**changes), **options)
    assert got == (None if message is None else f"Convert exception: {message}")


# -------------------------------------------------------------- import: uniqueness and ids

DUPLICATES = [
    ("email, any case, within the file",
     [customer(email="A@x.fr"), customer(email="a@X.FR")], ExistingIdentifiers(),
     ["success", "Process exception: Customer with such email already exists."]),
    ("card against the target", [customer(loyaltyCardNumber="0001")], ExistingIdentifiers(cards=frozenset({"0001"})),
     ["Process exception: Customer with such loyalty card number already exists."]),
    ("phone within the file",
     [customer(email="a@x.fr", phone="+33612345678"), customer(email="b@x.fr", phone="+33612345678")],
     ExistingIdentifiers(), ["success", "Process exception: Customer with such phone already exists."]),
    ("email against the target, checked before card",
     [customer(email="Old@x.fr", loyaltyCardNumber="0001")],
     ExistingIdentifiers(emails=frozenset({"old@x.fr"}), cards=frozenset({"0001"})),
     ["Process exception: Customer with such email already exists."]),
    ("a refused member reserves nothing",
     [customer(email="a@x.fr", gender="M"), customer(email="a@x.fr")], ExistingIdentifiers(),
     ["Convert exception: gender should one of (male, female, not_disclosed)", "success"]),
    ("leading zeros make another card",
     [customer(loyaltyCardNumber="01"), customer(email="b@x.fr", loyaltyCardNumber="1")],
     ExistingIdentifiers(), ["success", "success"]),
]


@pytest.mark.parametrize("customers, existing, expected", [d[1:] for d in DUPLICATES], ids=[d[0] for d in DUPLICATES])
def test_import_refuses_existing_identifiers(customers, existing, expected) -> None:
    outcome = RehearsalImport().import_customers(customers, existing, id_factory=counter())
    got = [i["status"] if i["status"] == "success" else i["message"] for i in outcome.items]
    assert got == expected
    assert len(outcome.new_members) == expected.count("success")


def test_items_totals_identifiers_and_new_members() -> None:
    label = [{"key": "legacy_id", "value": "G1"}]
    customers = [customer(email="Jean@Example.com", loyaltyCardNumber="007", labels=label),
                 customer(email=None, loyaltyCardNumber="008"), customer(email=None, phone="+33611111111"),
                 customer(firstName=None, email="x@y.fr")]
    existing = ExistingIdentifiers()
    outcome = RehearsalImport().import_customers(customers, existing, id_factory=counter("T"),
                                                 created_at="2026-07-01T00:00:00+00:00")
    assert outcome.items == [
        {"status": "success", "identifier": "Jean@Example.com", "message": None,
         "processImportResult": {"object": "T-1"}},
        {"status": "success", "identifier": "008", "message": None, "processImportResult": {"object": "T-2"}},
        {"status": "success", "identifier": "+33611111111", "message": None, "processImportResult": {"object": "T-3"}},
        {"status": "error", "identifier": "x@y.fr", "message": "Convert exception: firstName is required node",
         "processImportResult": None},
    ]
    result = result_json(outcome)
    assert (result["totalProcessed"], result["totalSuccess"], result["totalFailed"]) == (4, 3, 1)
    assert json.loads(json.dumps(result)) == result
    members = outcome.new_members
    assert list(members.columns) == list(NEW_MEMBER_COLUMNS)
    assert members.iloc[0][["target_id", "email", "card_number", "legacy_id", "created_at"]].tolist() == [
        "T-1", "jean@example.com", "007", "G1", "2026-07-01T00:00:00+00:00"]
    assert existing == ExistingIdentifiers()  # the input state is not touched
    after = existing.with_members(members)
    assert after.emails == {"jean@example.com"} and after.cards == {"007", "008"} and after.phones == {"+33611111111"}


def test_seeded_id_factory_gives_identical_runs() -> None:
    customers = parse_members_xml(FIXTURES / "members_0001.xml")

    def run():
        rng = random.Random(7)
        return RehearsalImport().import_customers(customers, ExistingIdentifiers(),
                                                  id_factory=lambda: uuid.UUID(int=rng.getrandbits(128), version=4))
    first, second = run(), run()
    assert result_json(first) == result_json(second)
    assert [i["status"] for i in first.items] == ["success", "success", "error", "error"]
    assert uuid.UUID(first.items[0]["processImportResult"]["object"]).version == 4


def test_existing_identifiers_from_a_target_export() -> None:
    export = pd.DataFrame({"email": ["A@x.fr", ""], "card_number": ["0001", None], "phone": ["", "+33612345678"]})
    existing = ExistingIdentifiers.from_members(export)
    outcome = RehearsalImport().import_customers(
        [customer(email="a@x.fr"), customer(email="b@x.fr", phone="+33612345678")], existing, id_factory=counter())
    assert [i["message"] for i in outcome.items] == [
        "Process exception: Customer with such email already exists.",
        "Process exception: Customer with such phone already exists."]


def test_stage_01_members_xml_imports_as_written(tmp_path: Path) -> None:
    members = pd.DataFrame({
        "legacy_id": ["G1", "G2", "G3"], "first_name": ["Jean", "Lan", "Zoé"], "last_name": ["Dupont", "Ngô", "Roux"],
        "email": ["jean@x.fr", "", "zoe & co@x.fr"], "phone": ["+33612345678", "+84912345678", ""],
        "card_number": ["0001", "", "0003"], "birth_date": ["1980-01-31", "", ""], "gender": ["male", "", "F"],
    })
    paths = write_members_xml(members, tmp_path, active=True, agreement1=False, send_activation_mail=False,
                              max_file_bytes=10_000)
    outcome = RehearsalImport().import_customers(parse_members_xml(paths[0]), ExistingIdentifiers(),
                                                 id_factory=counter())
    assert [i["status"] for i in outcome.items] == ["success"] * 3
    assert outcome.new_members["legacy_id"].tolist() == ["G1", "G2", "G3"]
    assert outcome.new_members["gender"].tolist() == ["male", "not_disclosed", "not_disclosed"]


# -------------------------------------------------------------- reading a result back

SENT = pd.DataFrame({"legacy_id": ["G1", "G2", "G3", "G4"],
                     "email": ["Jean.Dupont@example.com", "", "JEAN.DUPONT@EXAMPLE.COM", "jean.dupont@example.com"],
                     "phone": ["+33612345678", "+84912345678", "", ""], "card_number": ["0001234567", "", "", ""]})


def test_reconcile_a_real_oss_result_with_its_quirks() -> None:
    result = read_import_result(FIXTURES / "import_result_oss.json")
    rec = reconcile_import_result(SENT, result)
    assert list(rec.columns) == list(RECONCILE_COLUMNS)
    assert rec[["legacy_id", "status", "target_id", "item_index"]].values.tolist() == [
        ["G1", "imported", "00000000-0000-4000-8000-00000000000a", 0],
        ["G2", "failed", "", 1],   # identifier '' (no email): matched by position
        ["G3", "failed", "", 2],   # same email, different case: second item with that identifier
        ["G4", "failed", "", 3],   # OSS puts the message in the identifier: matched by position
    ]
    assert rec["message"].tolist()[1:] == ["Convert exception: email is required node",
                                           "Convert exception: gender should one of (male, female, not_disclosed)",
                                           "Customer with such email already exists."]


def test_reconcile_missing_and_unexpected_items() -> None:
    result = {"items": [
        {"status": "success", "identifier": "+84912345678", "message": None, "processImportResult": {"object": "T2"}},
        {"status": "error", "identifier": "someone@else.fr", "message": "Convert exception: x",
         "processImportResult": None},
    ]}
    rec = reconcile_import_result(SENT, result)
    assert rec[["legacy_id", "status", "target_id"]].values.tolist() == [
        ["G1", "missing_from_result", ""], ["G2", "imported", "T2"], ["G3", "missing_from_result", ""],
        ["G4", "missing_from_result", ""], ["", "unexpected_item", ""]]
    assert rec["message"].iloc[-1] == "failed: Convert exception: x"


def test_reconcile_our_own_result_in_order() -> None:
    customers = [customer(email=e or None, phone=p or None, loyaltyCardNumber=c or None)
                 for e, p, c in zip(SENT["email"], SENT["phone"], SENT["card_number"])]
    outcome = RehearsalImport().import_customers(customers, ExistingIdentifiers(), id_factory=counter("T"))
    rec = reconcile_import_result(SENT, result_json(outcome))
    assert rec[["legacy_id", "status", "target_id"]].values.tolist() == [
        ["G1", "imported", "T-1"], ["G2", "imported", "T-2"], ["G3", "failed", ""], ["G4", "failed", ""]]


@pytest.mark.parametrize("text, line, words", [
    ('{"items": [', 1, "not valid JSON"),
    ('{"totalProcessed": 0}', None, '"items" list'),
    ('{"items": [{"status": "ok"}]}', None, 'status "success" or "error"'),
    ('[1, 2]', None, '"items" list'),
])
def test_read_import_result_refuses_what_is_not_a_result(tmp_path: Path, text: str, line, words: str) -> None:
    p = tmp_path / "result.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        read_import_result(p)
    assert (exc.value.file, exc.value.line) == ("result.json", line)
    assert words in exc.value.message
