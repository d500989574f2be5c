"""The members XML is read one customer at a time now; the old whole-tree parser is kept here as
the oracle: the same customers in the same order, the same one-line errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.targets.ol_rehearsal import INVALID_STRUCTURE, _customer, iter_members_xml, parse_members_xml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mapping"


def old_parse_members_xml(path: Path) -> list[dict]:
    """``parse_members_xml`` before streaming: the whole document as one tree."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"{INVALID_STRUCTURE} ({exc})", file=path.name, line=exc.position[0]) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path.name) from None
    if root.tag != "customers":
        raise InputError(f"{INVALID_STRUCTURE} (root element is <{root.tag}>, expected <customers>)",
                         file=path.name, line=1)
    return [_customer(node) for node in root if node.tag == "customer"]


def outcome(fn, path):
    try:
        return fn(path)
    except InputError as exc:
        return exc.one_line()


DOCUMENTS = {
    "nested and repeated nodes": (b'<?xml version="1.0" encoding="UTF-8"?>\n<customers>\n'
                                  b"<customer><email>a@x.fr</email><email>b@x.fr</email><address><city>Paris</city>"
                                  b"</address><labels><label><key>legacy_id</key><value>G1</value></label></labels>"
                                  b"</customer>\n<note>skip me</note>\n<customer><firstName/><phone> +33 </phone>"
                                  b"<customer><email>inner@x.fr</email></customer></customer>\n</customers>\n"),
    "empty root": b"<customers/>",
    "wrong root": b"<clients><customer><email>a@x.fr</email></customer></clients>",
    "wrong root and broken later": b"<clients><customer></clients>",
    "broken late": b"<customers>" + b"<customer><email>a@x.fr</email></customer>\n" * 500 + b"<customer></customers>",
    "not xml": b"hello",
    "empty": b"",
    "text between customers": b"<customers>text<customer><gender>male</gender></customer>tail</customers>",
}


@pytest.mark.parametrize("content", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_same_customers_and_errors_as_the_whole_tree_parser(tmp_path, content):
    path = tmp_path / "members_0001.xml"
    path.write_bytes(content)
    assert outcome(parse_members_xml, path) == outcome(old_parse_members_xml, path)
    assert outcome(lambda p: list(iter_members_xml(p)), path) == outcome(old_parse_members_xml, path)


def test_same_customers_on_the_fixture_and_a_missing_file(tmp_path):
    for path in (*sorted(FIXTURES.glob("*.xml")), tmp_path / "absent.xml"):
        assert outcome(parse_members_xml, path) == outcome(old_parse_members_xml, path)


def test_same_customers_on_the_sample_programs_members_file(tmp_path):
    from loyalty_toolkit.runner.workspace import prepare_demo
    from loyalty_toolkit.stages.context import open_stage
    from loyalty_toolkit.stages.members import step as s01_members
    from loyalty_toolkit.stages.subset import step as s00_subset

    config = prepare_demo(tmp_path, members=120, seed=4)
    run_dir = tmp_path / "runs" / "t"
    for name, step in (("subset", s00_subset), ("members", s01_members)):
        ctx = open_stage(name, str(config), str(run_dir))
        out = step.run(ctx)
        step.commit(ctx, out, step.gate(ctx, out))
    xml = sorted((run_dir / "output" / "openloyalty").glob("members_*.xml"))
    assert xml
    for path in xml:
        old = old_parse_members_xml(path)
        assert len(old) > 100 and parse_members_xml(path) == old
