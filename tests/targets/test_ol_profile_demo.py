"""On the demo's 2,000 members, each profile's hold-back list is exactly what the rehearsal target
refuses when every accepted member is sent, member by member; the file written without them is
imported whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_toolkit.config import MembersSource
from loyalty_toolkit.sample.generator import generate_sample
from loyalty_toolkit.shared.member_rules import prepare_members
from loyalty_toolkit.sources.members import read_members
from loyalty_toolkit.targets.ol_profiles import profile
from loyalty_toolkit.targets.ol_rehearsal import ExistingIdentifiers, RehearsalImport, iter_members_xml
from loyalty_toolkit.targets.openloyalty import member_holdback, write_members_xml

FLAGS = {"active": True, "agreement1": False, "send_activation_mail": False}


@pytest.fixture(scope="module")
def demo_members(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    sample = generate_sample(root, members=2000)
    src = MembersSource(path=sample.members)
    frame, _ = read_members(src)
    return prepare_members(frame, source_file=src.path.name, default_region=src.default_region,
                           timezone=src.timezone).members


def _ids():
    n = iter(range(1, 10**7))
    return lambda: f"T-{next(n)}"


def _rehearse(paths, p):
    customers = [c for path in paths for c in iter_members_xml(path)]
    out = RehearsalImport(profile=p).import_customers(customers, ExistingIdentifiers(), id_factory=_ids())
    return {customers[i]["labels"][0]["value"]: rule for i, rule in out.refusals.items()}, len(customers)


@pytest.mark.parametrize("name", ["oss-3", "hosted"])
def test_the_rehearsal_predicts_exactly_the_hold_back_list_on_the_demo(tmp_path: Path, demo_members, name):
    p = profile(name)
    held = member_holdback(demo_members, p.member_rules(), **FLAGS)
    refused, sent = _rehearse(write_members_xml(demo_members, tmp_path / "all", max_file_bytes=None, **FLAGS), p)
    assert sent == len(demo_members)
    assert refused == dict(zip(held["legacy_id"], held["rule_id"]))
    if name == "oss-3":  # the demo has members without a birth date or email, and shared identifiers
        by_rule = held["rule_id"].value_counts().to_dict()
        assert by_rule.get("OSS_BIRTHDATE_FORMAT", 0) > 50 and by_rule.get("OSS_EMAIL_REQUIRED", 0) > 0
        assert len(held) > len(member_holdback(demo_members, profile("hosted").member_rules(), **FLAGS))
    kept = demo_members[~demo_members["legacy_id"].isin(held["legacy_id"])]
    refused_again, sent_again = _rehearse(write_members_xml(kept, tmp_path / "kept", max_file_bytes=None, **FLAGS), p)
    assert refused_again == {} and sent_again == len(kept)
