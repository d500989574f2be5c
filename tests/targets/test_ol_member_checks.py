"""The oss-3 profile's member rules, one case each, as the rehearsal applies them and as stage 01's
hold-back list derives them: both must name the same rule for the same member."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.targets.ol_member_checks import holdback
from loyalty_toolkit.targets.ol_profiles import profile
from loyalty_toolkit.targets.ol_rehearsal import ExistingIdentifiers, RehearsalImport, parse_members_xml
from loyalty_toolkit.targets.openloyalty import ELEMENTS, member_holdback, write_members_xml

OSS = profile("oss-3")
VALID = {"firstName": "Jean", "lastName": "Dupont", "email": "jean@example.com", "gender": "male",
         "active": "true", "agreement1": "false", "birthDate": "1980-02-29"}
CONSTANTS = {"active": "true", "agreement1": "false", "sendActivationMail": "false", "gender": "male"}
COLUMN_OF = dict(ELEMENTS)


def customer(**changes) -> dict:
    out = {**VALID, **changes}
    return {k: v for k, v in out.items() if v is not None}


def counter():
    n = iter(range(1, 10**6))
    return lambda: f"T-{next(n)}"


# (case, earlier customer in the same file or None, this customer's changes, rule refusing it or None,
#  the real code line that refuses it)
CASES = [
    ("valid", None, {}, None, "-"),
    ("email absent", None, {"email": None, "phone": "+33612345678"}, "OSS_EMAIL_REQUIRED",
     "CustomerXmlImportConverter.php:25, XmlNodeValidator.php:42"),
    ("firstName absent", None, {"firstName": None}, "OSS_FIRSTNAME_REQUIRED", "CustomerXmlImportConverter.php:26"),
    ("lastName absent", None, {"lastName": None}, "OSS_LASTNAME_REQUIRED", "CustomerXmlImportConverter.php:27"),
    ("active absent", None, {"active": None}, "OSS_ACTIVE_REQUIRED", "CustomerXmlImportConverter.php:28-29"),
    ("active not a boolean", None, {"active": "yes"}, "OSS_ACTIVE_BOOL", "XmlNodeValidator.php:77-88"),
    ("active '0' is PHP-empty", None, {"active": "0"}, None, "XmlNodeValidator.php:82"),
    ("sendActivationMail not a boolean", None, {"sendActivationMail": "no"}, "OSS_SENDMAIL_BOOL",
     "CustomerXmlImportConverter.php:32-34"),
    ("birthDate absent: checked anyway", None, {"birthDate": None}, "OSS_BIRTHDATE_FORMAT",
     "XmlNodeValidator.php:46-53"),
    ("birthDate day first", None, {"birthDate": "29/02/1980"}, "OSS_BIRTHDATE_FORMAT", "XmlNodeValidator.php:52"),
    ("birthDate rolls over in PHP", None, {"birthDate": "1990-02-30"}, None, "XmlNodeValidator.php:52"),
    ("agreement1 absent", None, {"agreement1": None}, "OSS_AGREEMENT1_REQUIRED", "CustomerXmlImportConverter.php:38-39"),
    ("agreement1 not a boolean", None, {"agreement1": "1"}, "OSS_AGREEMENT1_BOOL", "CustomerXmlImportConverter.php:40"),
    ("agreement2 not a boolean", None, {"agreement2": "yes"}, "OSS_AGREEMENT2_BOOL",
     "CustomerXmlImportConverter.php:42-44"),
    ("agreement3 not a boolean", None, {"agreement3": "yes"}, "OSS_AGREEMENT3_BOOL",
     "CustomerXmlImportConverter.php:45-47"),
    ("gender absent", None, {"gender": None}, "OSS_GENDER_REQUIRED", "CustomerXmlImportConverter.php:48-49"),
    ("gender M", None, {"gender": "M"}, "OSS_GENDER_ENUM", "CustomerXmlImportConverter.php:50-51"),
    ("levelId not a UUID", None, {"levelId": "gold"}, "OSS_LEVELID_UUID", "CustomerXmlImportConverter.php:53-55"),
    ("posId not a UUID", None, {"posId": "shop"}, "OSS_POSID_UUID", "CustomerXmlImportConverter.php:56-58"),
    ("sellerId not a UUID", None, {"sellerId": "bob"}, "OSS_SELLERID_UUID", "CustomerXmlImportConverter.php:59-61"),
    ("email taken, any case", {"email": "JEAN@example.com"}, {}, "OSS_EMAIL_UNIQUE",
     "RegisterCustomerManager.php:116-119"),
    ("card taken", {"email": "a@x.fr", "loyaltyCardNumber": "0001"}, {"loyaltyCardNumber": "0001"},
     "OSS_CARD_UNIQUE", "RegisterCustomerManager.php:124-129"),
    ("phone taken", {"email": "a@x.fr", "phone": "+33612345678"}, {"phone": "+33612345678"}, "OSS_PHONE_UNIQUE",
     "RegisterCustomerManager.php:130-132"),
    ("first rule in the importer's order wins", None, {"birthDate": None, "gender": "M"}, "OSS_BIRTHDATE_FORMAT",
     "AbstractXMLImportConverter.php:25-29"),
]


def test_every_oss_member_rule_has_a_case():
    assert {c[3] for c in CASES} - {None} == {r.rule_id for r in OSS.member_rules()}


@pytest.mark.parametrize("earlier, changes, rule_id, code_line", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_rehearsal_refuses_with_the_rule(earlier, changes, rule_id, code_line):
    customers = ([customer(**earlier)] if earlier else []) + [customer(**changes)]
    outcome = RehearsalImport(profile=OSS).import_customers(customers, ExistingIdentifiers(), id_factory=counter())
    last = len(customers) - 1
    assert outcome.refusals.get(last) == rule_id
    rule = next((r for r in OSS.rules if r.rule_id == rule_id), None)
    item = outcome.items[last]
    if rule is None:
        assert item["status"] == "success"
    else:
        prefix = "Process exception: " if rule.kind == "unique" else "Convert exception: "
        assert item["message"] == prefix + rule.message
        assert code_line.split(":")[0] in rule.source or code_line.startswith("AbstractXML")


@pytest.mark.parametrize("earlier, changes, rule_id, code_line", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_hold_back_list_derives_the_same_rule(earlier, changes, rule_id, code_line):
    """The frame-wise derivation (stage 01) over every element as a column gives the rehearsal's answer."""
    nodes = sorted({*VALID, *changes, *(earlier or {}), "phone", "loyaltyCardNumber", "sendActivationMail",
                    "agreement2", "agreement3", "levelId", "posId", "sellerId"})
    rows = ([customer(**earlier)] if earlier else []) + [customer(**changes)]
    frame = pd.DataFrame([{"legacy_id": f"G{i}", **{n: row.get(n, "") for n in nodes}} for i, row in enumerate(rows)])
    held = holdback(frame, OSS.member_rules(), {n: n for n in nodes}, {})
    got = dict(zip(held["legacy_id"], held["rule_id"]))
    assert got.get(f"G{len(rows) - 1}") == rule_id
    assert f"G{len(rows) - 1}" in got or rule_id is None


MEMBERS = pd.DataFrame({
    "legacy_id": [f"G{i:02d}" for i in range(1, 11)],
    "first_name": ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo"],
    "last_name": ["Lee"] * 10,
    "email": ["a@x.fr", "", "A@X.FR", "d@x.fr", "e@x.fr", "f@x.fr", "g@x.fr", "h@x.fr", "i@x.fr", "j@x.fr"],
    "phone": ["", "+33611111111", "", "+33622222222", "+33622222222", "", "", "", "", "+33633333333"],
    "card_number": ["", "", "", "", "", "C1", "C1", "", "", ""],
    "birth_date": ["1980-01-01", "1981-01-01", "1982-01-01", "", "1984-01-01", "1985-01-01", "1986-01-01",
                   "1987-01-01", "", "1989-01-01"],
    "gender": ["female"] * 10,
})


@pytest.mark.parametrize("name", ["oss-3", "hosted"])
def test_held_back_equals_what_the_rehearsal_refuses_member_by_member(tmp_path: Path, name: str):
    """Write every member, rehearse the file with the profile: its refusals are the hold-back list."""
    p = profile(name)
    flags = {"active": True, "agreement1": False, "send_activation_mail": False}
    held = member_holdback(MEMBERS, p.member_rules(), **flags)
    paths = write_members_xml(MEMBERS, tmp_path, max_file_bytes=None, **flags)
    customers = [c for path in paths for c in parse_members_xml(path)]
    outcome = RehearsalImport(profile=p).import_customers(customers, ExistingIdentifiers(), id_factory=counter())
    refused = {customers[i]["labels"][0]["value"]: rule for i, rule in outcome.refusals.items()}
    assert refused == dict(zip(held["legacy_id"], held["rule_id"]))
    expected = {"oss-3": {"G02": "OSS_EMAIL_REQUIRED", "G03": "OSS_EMAIL_UNIQUE", "G04": "OSS_BIRTHDATE_FORMAT",
                          "G07": "OSS_CARD_UNIQUE", "G09": "OSS_BIRTHDATE_FORMAT"},  # G04 refused: G05's phone is free
                "hosted": {"G03": "HOSTED_EMAIL_UNIQUE", "G05": "HOSTED_PHONE_UNIQUE", "G07": "HOSTED_CARD_UNIQUE"}}
    assert refused == expected[name]
    # the members the profile accepts, written alone, are all imported
    kept = MEMBERS[~MEMBERS["legacy_id"].isin(held["legacy_id"])]
    again = write_members_xml(kept, tmp_path / "kept", max_file_bytes=None, **flags)
    result = RehearsalImport(profile=p).import_customers(
        [c for path in again for c in parse_members_xml(path)], ExistingIdentifiers(), id_factory=counter())
    assert not result.refusals and len(result.items) == len(kept)
