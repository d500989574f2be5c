"""Open Loyalty members XML: well-formed, required elements, booleans, size split, deterministic bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.targets.openloyalty import members_xml_count, write_members_xml

ORDER = ["firstName", "lastName", "email", "phone", "loyaltyCardNumber", "birthDate", "gender", "active",
         "sendActivationMail", "agreement1", "labels"]


def members(n: int = 3) -> pd.DataFrame:
    rows = [
        {"legacy_id": "G2", "first_name": "Élodie", "last_name": "D'Arc & <Fils>", "email": "elodie@example.fr",
         "phone": "+33612345678", "card_number": "000123", "birth_date": "1985-04-12", "gender": "female"},
        {"legacy_id": "G1", "first_name": "Thu", "last_name": "Nguyễn", "email": "", "phone": "+84912345678",
         "card_number": "", "birth_date": "", "gender": "not_disclosed"},
        {"legacy_id": "G3", "first_name": "Bob", "last_name": "Kim", "email": "bob@x.fr", "phone": "",
         "card_number": "7", "birth_date": "", "gender": ""},
    ]
    rows += [{"legacy_id": f"H{i:04d}", "first_name": "Ann", "last_name": "Lee", "email": f"ann{i}@x.fr",
              "phone": "", "card_number": "", "birth_date": "", "gender": "male"} for i in range(max(0, n - 3))]
    return pd.DataFrame(rows[:n] if n < 3 else rows)


def write(tmp_path, frame, **kwargs):
    args = {"active": True, "agreement1": False, "send_activation_mail": False, "max_file_bytes": 10_000_000, **kwargs}
    return write_members_xml(frame, tmp_path / "ol", **args)


def test_xml_is_well_formed_with_required_elements_in_order(tmp_path):
    (path,) = write(tmp_path, members())
    assert path.name == "members_0001.xml"
    data = path.read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<customers>\n  <customer>\n')
    assert data.endswith(b"  </customer>\n</customers>\n")
    root = ET.fromstring(data)
    customers = root.findall("customer")
    assert [c.find("labels/label/value").text for c in customers] == ["G1", "G2", "G3"]  # sorted by legacy_id
    g1, g2, g3 = customers
    assert [e.tag for e in g2] == ORDER
    assert g2.findtext("lastName") == "D'Arc & <Fils>"  # escaped in the file, intact when parsed
    assert b"D'Arc &amp; &lt;Fils&gt;" in data
    assert g1.findtext("lastName") == "Nguyễn" and "Nguyễn".encode() in data  # UTF-8, not entities
    assert g1.find("email") is None and g1.find("birthDate") is None and g1.find("loyaltyCardNumber") is None
    assert g1.findtext("phone") == "+84912345678"
    assert g3.findtext("gender") == "not_disclosed"  # empty gender still gets a valid value
    assert g2.findtext("loyaltyCardNumber") == "000123" and g2.findtext("birthDate") == "1985-04-12"
    label = g2.find("labels/label")
    assert (label.findtext("key"), label.findtext("value")) == ("legacy_id", "G2")


@pytest.mark.parametrize(("flags", "expected"), [
    ({"active": True, "agreement1": False, "send_activation_mail": False}, ("true", "false", "false")),
    ({"active": False, "agreement1": True, "send_activation_mail": True}, ("false", "true", "true")),
])
def test_booleans_are_true_false(tmp_path, flags, expected):
    (path,) = write(tmp_path, members(), **flags)
    for customer in ET.parse(path).getroot():
        assert (customer.findtext("active"), customer.findtext("agreement1"),
                customer.findtext("sendActivationMail")) == expected


def test_split_below_max_file_bytes_and_counts_add_up(tmp_path):
    frame = members(40)
    limit = 2_000
    paths = write(tmp_path, frame, max_file_bytes=limit)
    assert len(paths) > 3
    assert [p.name for p in paths] == [f"members_{i:04d}.xml" for i in range(1, len(paths) + 1)]
    assert all(p.stat().st_size < limit for p in paths)
    assert sum(members_xml_count(p) for p in paths) == 40
    ids = [v.text for p in paths for v in ET.parse(p).getroot().iter("value")]
    assert ids == sorted(frame["legacy_id"])  # order continues across files


def test_same_input_same_bytes_and_no_stale_parts(tmp_path):
    big = write(tmp_path, members(40), max_file_bytes=2_000)
    first = [p.read_bytes() for p in big]
    shuffled = members(40).sample(frac=1, random_state=3)
    again = write(tmp_path, shuffled, max_file_bytes=2_000)
    assert [p.read_bytes() for p in again] == first
    small = write(tmp_path, members(3), max_file_bytes=2_000)
    assert sorted(p.name for p in (tmp_path / "ol").glob("members_*.xml")) == [p.name for p in small]


def test_no_members_no_file(tmp_path):
    assert write(tmp_path, members(3).iloc[:0]) == []


def test_a_customer_too_big_for_the_limit(tmp_path):
    with pytest.raises(ValueError, match="cannot hold even one customer"):
        write(tmp_path, members(), max_file_bytes=300)
    assert list((tmp_path / "ol").glob("members_*.xml")) == []


def test_characters_xml_cannot_carry_are_refused(tmp_path):
    frame = members()
    frame.loc[0, "first_name"] = "Bad\x01Name"
    with pytest.raises(ValueError, match=r"member 'G2': firstName holds U\+0001"):
        write(tmp_path, frame)


def test_count_refuses_malformed_xml(tmp_path):
    p = tmp_path / "broken.xml"
    p.write_bytes(b'<?xml version="1.0"?>\n<customers>\n  <customer>\n</customers>\n')
    with pytest.raises(InputError, match=r"broken.xml:4: column 3: not well-formed XML: mismatched tag"):
        members_xml_count(p)
