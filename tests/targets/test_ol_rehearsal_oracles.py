"""Oracles for the rehearsal's rewritten parts: the members XML is read one customer at a time
(the old whole-tree parser gives the same customers in the same order and the same one-line
errors), and the import result's leftover items are placed in one pass (the old quadratic loop
gives the same frame)."""

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


def old_reconcile_import_result(sent, result):
    """``reconcile_import_result`` before the one-pass placement (``list.remove`` per item)."""
    import pandas as pd

    from loyalty_toolkit.targets.ol_rehearsal import RECONCILE_COLUMNS, _item_outcome, _key

    items = list(result.get("items") or [])
    n = len(sent)
    ids = [str(v) for v in sent["legacy_id"].tolist()] if n else []

    def col(name):
        return sent[name].tolist() if name in sent.columns else [""] * n

    member_keys = [_key(e) or _key(c) or _key(p) for e, c, p in zip(col("email"), col("card_number"), col("phone"))]
    waiting: dict = {}
    for pos, key in enumerate(member_keys):
        waiting.setdefault(key, []).append(pos)
    for queue in waiting.values():
        queue.reverse()
    assigned = [None] * n
    leftover = []
    for index, item in enumerate(items):
        queue = waiting.get(_key(item.get("identifier")))
        if queue:
            assigned[queue.pop()] = index
        else:
            leftover.append(index)
    if len(items) == n:
        for index in list(leftover):
            if assigned[index] is None:
                assigned[index] = index
                leftover.remove(index)
    rows = []
    for pos in range(n):
        index = assigned[pos]
        if index is None:
            rows.append((ids[pos], member_keys[pos], "missing_from_result", "",
                         "no item in the import result for this member", -1))
        else:
            rows.append((ids[pos], member_keys[pos], *_item_outcome(items[index]), index))
    for index in leftover:
        status, target_id, message = _item_outcome(items[index])
        rows.append(("", _key(items[index].get("identifier")), "unexpected_item", target_id,
                     f"{status}: {message}" if message else status, index))
    frame = pd.DataFrame.from_records(rows, columns=list(RECONCILE_COLUMNS))
    return frame.astype({c: "str" for c in RECONCILE_COLUMNS if c != "item_index"}).astype({"item_index": "int64"})


@pytest.mark.parametrize("seed", range(6))
def test_reconcile_import_result_answers_as_before(seed):
    """Random results: items matched by identifier, by position (one item per member), shuffled,
    missing, unexpected, and the OSS's exceptions that carry their message as identifier."""
    import random

    import pandas as pd

    from loyalty_toolkit.targets.ol_rehearsal import reconcile_import_result

    rng = random.Random(seed)
    n = rng.randint(1, 400)
    emails = [rng.choice(["", f"M{i}@X.fr", "shared@x.fr"]) for i in range(n)]
    sent = pd.DataFrame({"legacy_id": [f"G{i}" for i in range(n)], "email": emails,
                         "phone": [rng.choice(["", f"+3361234{i:04d}"]) for i in range(n)],
                         "card_number": [rng.choice(["", f"C{i}"]) for i in range(n)]})
    items = []
    for i in range(n if seed % 2 == 0 else rng.randint(0, n + 50)):
        kind = rng.random()
        if kind < 0.6 and i < n:
            ident = emails[i] or sent["card_number"][i] or sent["phone"][i]
            items.append({"status": "success", "identifier": ident, "message": None,
                          "processImportResult": {"object": f"t-{i}"}})
        elif kind < 0.85:
            items.append({"status": "error", "identifier": f"exception {i}", "message": "process failed",
                          "processImportResult": None})
        else:
            items.append({"status": "error", "identifier": rng.choice(emails) if emails else "", "message": "dup",
                          "processImportResult": None})
    if seed % 3 == 0:
        rng.shuffle(items)
    result = {"items": items}
    got = reconcile_import_result(sent, result)
    assert got.equals(old_reconcile_import_result(sent, result))
    assert len(got) >= n
