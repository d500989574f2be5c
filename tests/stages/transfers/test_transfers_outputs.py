"""Reading the unit-transfer files back: the strict readers of our own layout give the full parsers' counts.

The reference readers below are the full parsers the stage used before (``json`` line by line,
ElementTree); the strict readers must agree with them on every file, ours or hand-edited, either by
counting it themselves or by handing it to the full parser.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loyalty_toolkit.stages.transfers import outputs as transfers_outputs
from loyalty_toolkit.stages.transfers.outputs import Counted, json_items, output_row, xml_items
from loyalty_toolkit.targets.ol_transfers import write_transfers_json, write_transfers_xml

_TRANSFER_ID = re.compile(r"^transfer ([^;]+);")
_WHOLE = re.compile(r"[1-9][0-9]*")


# -- the reference readers ---------------------------------------------------------------------------

def ref_json_list(path: Path):
    with open(path, encoding="utf-8") as fh:
        if fh.readline().strip() != "[":
            raise ValueError(f"{path.name} is not a JSON list")
        closed, comma, last = False, False, None
        for line in fh:
            text = line.strip()
            if text == "]":
                closed = True
                break
            if last is not None:
                raise ValueError(f"{path.name}: a comma is missing after {last[:60]!r}")
            comma = text.endswith(",")
            item = json.loads(text[:-1] if comma else text)
            if not isinstance(item, dict):
                raise ValueError(f"{path.name}: an item is not an object")
            if not comma:
                last = text
            yield item
        if comma:
            raise ValueError(f"{path.name}: a comma before the closing ]")
        if not closed or fh.read().strip():
            raise ValueError(f"{path.name} is not a closed JSON list")


def ref_json_items(paths):
    for p in paths:
        for it in ref_json_list(p):
            units = it.get("units")
            ok = isinstance(units, int) and not isinstance(units, bool) and units > 0
            m = _TRANSFER_ID.match(str(it.get("comment", "")))
            yield (m.group(1) if m else "", (-1 if it.get("type") == "spending" else 1) * units if ok else None)


def ref_xml_items(paths):
    for p in paths:
        events = ET.iterparse(p, events=("start", "end"))
        _, root = next(events)
        for event, node in events:
            if event != "end" or node.tag != "pointsTransfer":
                continue
            fields = {child.tag: (child.text or "").strip() for child in node}
            root.clear()
            text = fields.get("points", "")
            m = _TRANSFER_ID.match(fields.get("comment", ""))
            sign = -1 if fields.get("type") == "spending" else 1
            yield (m.group(1) if m else "", sign * int(text) if _WHOLE.fullmatch(text) else None)


def recounts(paths: list[Path], suffix: str) -> tuple[dict, dict]:
    new, ref = (json_items, ref_json_items) if suffix == ".json" else (xml_items, ref_xml_items)
    return (output_row("f", "points", paths, (0, 0), new(paths)), output_row("f", "points", paths, (0, 0), ref(paths)))


# -- files to read ----------------------------------------------------------------------------------

_ODD = ['"', "\\", "&", "<", ">", ";", " ", "\x01", "\t", "à", "ộ", "😀", "\u2028", "\x85", "]]>", "&amp;"]
_PLAIN = st.text("0123456789abcdef-", min_size=1, max_size=10)
_ANY = st.lists(st.one_of(st.sampled_from(_ODD), _PLAIN), min_size=1, max_size=4).map("".join)


@st.composite
def frames(draw, plain: bool):
    n = draw(st.integers(0, 8))
    text = _PLAIN if plain else _ANY
    # odd transfer ids (escaped in the files) send a whole file to the full parser: only sometimes
    ids = draw(st.lists(_ANY if not plain and draw(st.booleans()) else _PLAIN, min_size=n, max_size=n,
                        unique=draw(st.booleans())))
    return pd.DataFrame({
        "transfer_id": pd.Series(ids, dtype=object),
        "target_id": pd.Series(draw(st.lists(text, min_size=n, max_size=n)), dtype=object),
        "wallet_type_code": pd.Series(["default"] * n, dtype=object),
        "type": pd.Series(draw(st.lists(st.sampled_from(["adding", "spending"]), min_size=n, max_size=n)),
                          dtype=object),
        # the strict readers take up to 12 digits (a block's sum stays in int64); more go to the full parser
        "points": pd.Series(draw(st.lists(st.integers(1, 10**12 - 1 if plain else 10**15), min_size=n, max_size=n)),
                            dtype=np.int64),
        "registered_on": pd.Series(draw(st.lists(st.sampled_from(["", "2025-01-01 10:00:00"]), min_size=n,
                                                 max_size=n)), dtype=object),
        "expires_at": pd.Series(draw(st.lists(st.one_of(st.just(""), text), min_size=n, max_size=n)), dtype=object),
        "unlock_at": pd.Series([""] * n, dtype=object),
        "validity_days": pd.array(draw(st.lists(st.one_of(st.none(), st.integers(1, 900)), min_size=n, max_size=n)),
                                  dtype="Int64"),
        "lot_ids": pd.Series(draw(st.lists(st.one_of(st.just(""), text), min_size=n, max_size=n)), dtype=object),
    })


def write(frame: pd.DataFrame, directory: Path, suffix: str, limit: int | None) -> list[Path]:
    writer = write_transfers_json if suffix == ".json" else write_transfers_xml
    try:
        return writer(frame, directory / f"t{suffix}", max_file_bytes=limit)
    except ValueError:  # a row the writer refuses (a character XML cannot carry), or a limit too small
        assume(False)
        raise


_BYTES = [b"1", b"7", b"b", b"f", b"-", b"x", b"a", b"0", b'"', b"\\", b"\n", b"\r", b"\t", b",", b"<", b">", b"&", b";", b"]", b"}", b"{", b"0", b"9", b"-", b"a",
          b" ", b"\x00", b"\x85", b"\xc3", b"\xa0", b"\xef\xbf\xbe", b"&amp;", b"&#65;", b"]]>", b"\\u0041",
          b"\\ud800", b"1.5", b"spending", b"adding", b"transfer x;"]


@st.composite
def mutations(draw):
    ops = ["replace", "insert", "delete", "duplicate line", "drop line"] + ["replace a letter or digit"] * 3
    return draw(st.lists(st.tuples(st.sampled_from(ops),
                                   st.floats(0, 1, exclude_max=True), st.sampled_from(_BYTES)),
                         min_size=1, max_size=3))


def mutate(data: bytes, edits) -> bytes:
    for op, where, piece in edits:
        i = int(where * len(data)) if data else 0
        if op == "replace a letter or digit":  # inside values mostly: often still our layout
            spots = [k for k, b in enumerate(data) if chr(b).isalnum()]
            if spots:
                i = spots[int(where * len(spots))]
                data = data[:i] + piece + data[i + 1:]
        elif op == "replace":
            data = data[:i] + piece + data[i + 1:]
        elif op == "insert":
            data = data[:i] + piece + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + len(piece):]
        else:
            lines = data.split(b"\n")
            k = int(where * len(lines))
            lines = lines[:k + 1] + lines[k:] if op == "duplicate line" else lines[:k] + lines[k + 1:]
            data = b"\n".join(lines)
    return data


# -- the tests ----------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(frame=frames(plain=True), suffix=st.sampled_from([".json", ".xml"]), block=st.integers(1, 400),
       limit=st.one_of(st.none(), st.integers(600, 2000)))
def test_our_plain_files_are_counted_by_the_strict_reader(tmp_path_factory, frame, suffix, block, limit):
    paths = write(frame, tmp_path_factory.mktemp("plain"), suffix, limit)
    with mock.patch.object(transfers_outputs, "_BLOCK", block):
        strict = transfers_outputs._json_strict if suffix == ".json" else transfers_outputs._xml_strict
        assert all(strict(p) is not None for p in paths)  # no fallback for what we write
        new, ref = recounts(paths, suffix)
    assert new == ref
    assert new["rows_written"] == len(frame) and new["bad_values"] == 0 and new["problem"] == ""


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(frame=st.booleans().flatmap(lambda plain: frames(plain=plain)), suffix=st.sampled_from([".json", ".xml"]),
       block=st.integers(1, 400), edits=st.one_of(st.just([]), mutations()))
def test_any_file_reads_as_the_full_parser_reads_it(tmp_path_factory, frame, suffix, block, edits):
    (path,) = write(frame, tmp_path_factory.mktemp("any"), suffix, None)
    path.write_bytes(mutate(path.read_bytes(), edits))
    with mock.patch.object(transfers_outputs, "_BLOCK", block):
        new, ref = recounts([path], suffix)
    assert new == ref


def test_a_hand_edited_file_falls_back_to_the_full_parser(tmp_path):
    frame = pd.DataFrame({"transfer_id": ["a", "b"], "target_id": ["t1", "t2"], "wallet_type_code": "default",
                          "type": ["adding", "spending"], "points": [10, 4], "registered_on": "",
                          "expires_at": "", "unlock_at": "", "validity_days": pd.array([None, 3], dtype="Int64"),
                          "lot_ids": ["x", ""]}).astype({c: object for c in ("transfer_id", "target_id", "type")})
    (path,) = write_transfers_json(frame, tmp_path / "t.json")
    assert transfers_outputs._json_strict(path) == Counted([b"a", b"b"], 6)
    path.write_bytes(path.read_bytes().replace(b'"units": 10', b'"units": 10.0'))
    assert transfers_outputs._json_strict(path) is None
    row = output_row("f", "points", [path], (2, 6), json_items([path]))
    assert (row["rows_written"], row["total_written"], row["bad_values"]) == (2, -4, 1)

    (xml,) = write_transfers_xml(frame, tmp_path / "t.xml")
    assert transfers_outputs._xml_strict(xml) == Counted([b"a", b"b"], 6)
    xml.write_bytes(xml.read_bytes().replace(b"<points>4</points>", b"<points> 4 </points>"))
    assert transfers_outputs._xml_strict(xml) is None  # not our layout, yet the same transfer to ElementTree
    row = output_row("f", "points", [xml], (2, 6), xml_items([xml]))
    assert (row["rows_written"], row["total_written"], row["bad_values"]) == (2, 6, 0)


# -- TransferFiles: the files written a slice at a time ----------------------------------------------

def ref_transfer_files(frame: pd.DataFrame, directory: Path, formats) -> tuple[list[Path], list[dict]]:
    """Reference: write_transfer_files as it was, the whole frame per format, then read back."""
    signed = sum(-p if t == "spending" else p for p, t in zip(frame["points"].tolist(), frame["type"].tolist()))
    files, rows = [], []
    for fmt, writer, items in (("json", write_transfers_json, json_items), ("xml", write_transfers_xml, xml_items)):
        if fmt in formats:
            written = writer(frame, directory / f"unit_transfers.{fmt}")
            files += written
            rows.append(output_row(f"openloyalty/unit_transfers.{fmt}", "points", written, (len(frame), signed),
                                   items(written)))
    return files, rows


def _files_outcome(write, frame, directory, formats):
    try:
        files, rows = write(frame, directory, formats)
        result = ("ok", [p.relative_to(directory) for p in files], rows)
    except Exception as exc:  # noqa: BLE001 - the oracle compares any error
        result = ("error", type(exc).__name__, str(exc))
    return result, {p.name: p.read_bytes() for p in sorted(directory.iterdir())} if directory.exists() else {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.booleans().flatmap(lambda plain: frames(plain=plain)), cuts=st.lists(st.integers(0, 8), max_size=4),
       formats=st.sampled_from([{"json"}, {"xml"}, {"json", "xml"}, set()]))
def test_transfer_files_in_pieces_give_write_transfer_files_results(tmp_path_factory, frame, cuts, formats):
    base = tmp_path_factory.mktemp("files")

    def in_pieces(frame, directory, formats):
        bounds = [0, *sorted(min(c, len(frame)) for c in cuts), len(frame)]
        files = transfers_outputs.TransferFiles(directory, formats)
        for lo, hi in zip(bounds, bounds[1:]):
            files.write(frame.iloc[lo:hi].copy())
        return files.close()

    want = _files_outcome(ref_transfer_files, frame, base / "ref", formats)
    assert _files_outcome(in_pieces, frame, base / "pieces", formats) == want
    assert _files_outcome(transfers_outputs.write_transfer_files, frame, base / "whole", formats) == want


def test_transfer_files_keep_no_frame_and_count_what_they_were_given(tmp_path):
    import gc
    import weakref

    frame = pd.DataFrame({"transfer_id": ["a", "b", "c"], "target_id": ["t1", "t2", "t1"],
                          "wallet_type_code": "default", "type": ["adding", "spending", "adding"],
                          "points": [10, 4, 7], "registered_on": "", "expires_at": "", "unlock_at": "",
                          "validity_days": pd.array([None, 3, 1], dtype="Int64"), "lot_ids": ["x", "", "y"]})
    files = transfers_outputs.TransferFiles(tmp_path, {"json", "xml"})
    pieces = [frame.iloc[:1].copy(), frame.iloc[1:].copy()]
    refs = [weakref.ref(p) for p in pieces]
    for piece in pieces:
        files.write(piece)
    del piece, pieces
    gc.collect()
    assert all(r() is None for r in refs)  # the writers hold counts, not frames
    written, rows = files.close()
    assert [p.name for p in written] == ["unit_transfers.json", "unit_transfers.xml"]
    for row in rows:
        assert (row["rows_expected"], row["total_expected"]) == (3, 13)
        assert (row["rows_written"], row["total_written"], row["bad_values"]) == (3, 13, 0)


def test_a_refused_slice_removes_both_files(tmp_path):
    good = pd.DataFrame({"transfer_id": ["a"], "target_id": ["t1"], "wallet_type_code": "default",
                         "type": ["adding"], "points": [10], "registered_on": "", "expires_at": "",
                         "unlock_at": "", "validity_days": pd.array([None], dtype="Int64"), "lot_ids": ["x"]})
    bad = good.assign(transfer_id=["b"], target_id=[""])
    (tmp_path / "unit_transfers_0002.xml").write_bytes(b"an earlier run's part")
    files = transfers_outputs.TransferFiles(tmp_path, {"json", "xml"})
    files.write(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit_transfers_0001.json", "unit_transfers_0001.xml"]
    try:
        files.write(bad)
    except ValueError as exc:
        assert "transfer b: no customerId" in str(exc)
    else:
        raise AssertionError("the slice without a customerId was written")
    assert not list(tmp_path.iterdir())  # no truncated file, no stale part
    try:
        with transfers_outputs.TransferFiles(tmp_path, {"xml"}) as files:
            files.write(good)
            raise KeyboardInterrupt  # the stage's own failure between two slices
    except KeyboardInterrupt:
        pass
    assert not list(tmp_path.iterdir())
