"""Open Loyalty unit-transfer files: OSS XML and SaaS JSON, integer points, deterministic bytes, split."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_toolkit.stages.transfers.engine import build_transfers
from loyalty_toolkit.stages.transfers.lots import LOT_COLUMNS
from loyalty_toolkit.targets.ol_transfers import (
    JSON_DOCUMENTED,
    JSON_OURS,
    TransferFileWriter,
    write_transfers_json,
    write_transfers_xml,
)

CUT = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
D = Decimal


def transfers(n_extra: int = 0, mode: str = "carry") -> pd.DataFrame:
    def lot(lid, user, pts, status="open", end="2027-01-01T00:00:00+00:00", start="", line=2):
        u = int(D(pts) * 1_000_000)
        return {"lot_id": lid, "user_id": user, "accrued": D(pts), "consumed": D(0), "remaining": D(pts),
                "status": status, "expires_at_utc": end, "unlock_at_utc": start, "program": "P", "center": "C",
                "line": line, "action_at_utc": "2025-01-01T10:00:00+00:00", "accrued_units": u, "consumed_units": 0,
                "remaining_units": u}
    rows = [lot("g<1>&", "A", "12.4"), lot("g2", "A", "3", end="", line=3),
            lot("g3", "B", "7", status="pending", start="2026-08-01T00:00:00+00:00", line=4)]
    rows += [lot(f"x{i:04d}", f"M{i:04d}", "5", line=10 + i) for i in range(n_extra)]
    ids = pd.DataFrame({"legacy_id": ["A", "B", "C"] + [f"M{i:04d}" for i in range(n_extra)],
                        "target_id": ["00000000-0000-474c-b092-b0dd880c07e2", "t-b", "t-c"]
                        + [f"t{i:04d}" for i in range(n_extra)]})
    neg = pd.DataFrame({"user_id": ["C"], "deficit": [D("4.5")]})
    return build_transfers(pd.DataFrame(rows, columns=list(LOT_COLUMNS)), ids, granularity="lot",
                           rounding="ROUND_HALF_EVEN", wallet_type_code="default", negative_balances=neg,
                           negative_mode=mode, cutover=CUT).transfers


def test_xml_is_well_formed_with_integer_points(tmp_path):
    (path,) = write_transfers_xml(transfers(), tmp_path / "transfers.xml")
    data = path.read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<pointsTransfers>\n  <pointsTransfer>\n')
    root = ET.fromstring(data)
    assert root.tag == "pointsTransfers"
    items = root.findall("pointsTransfer")
    assert [i.findtext("customerId") for i in items] == ["00000000-0000-474c-b092-b0dd880c07e2"] * 2 + ["t-b", "t-c"]
    for item in items:
        assert [c.tag for c in item] == ["customerId", "points", "type", "validityDuration", "comment"]
        assert re.fullmatch(r"[1-9][0-9]*", item.findtext("points"))  # OSS: a string round-trip integer
        assert re.fullmatch(r"[0-9]+", item.findtext("validityDuration"))
    assert [i.findtext("points") for i in items] == ["12", "3", "7", "4"]
    assert [i.findtext("type") for i in items] == ["adding", "adding", "adding", "spending"]
    assert [i.findtext("validityDuration") for i in items] == ["185", "0", "185", "0"]  # 0: never expires
    c = items[0].findtext("comment")
    assert "lots g<1>&" in c and "registered 2025-01-01 10:00:00 UTC" in c and "expires 2027-01-01 00:00:00 UTC" in c
    assert "locked until 2026-08-01 00:00:00 UTC" in items[2].findtext("comment")
    assert "negative balance carried" in items[3].findtext("comment")
    assert b"g&lt;1&gt;&amp;" in data


def test_xml_no_expiry_sentinel_is_configurable(tmp_path):
    (path,) = write_transfers_xml(transfers(), tmp_path / "t.xml", no_expiry="36500")
    items = ET.parse(path).getroot().findall("pointsTransfer")
    assert [i.findtext("validityDuration") for i in items] == ["185", "36500", "185", "36500"]
    with pytest.raises(ValueError):
        write_transfers_xml(transfers(), tmp_path / "t.xml", no_expiry="never")


def test_json_fields_and_formats(tmp_path):
    (path,) = write_transfers_json(transfers(), tmp_path / "transfers.json")
    data = path.read_bytes()
    items = json.loads(data)
    assert isinstance(items, list) and len(items) == 4
    for item in items:
        assert set(JSON_DOCUMENTED) <= set(item) <= set(JSON_DOCUMENTED) | set(JSON_OURS)
        assert type(item["units"]) is int and item["units"] > 0
        assert item["walletTypeCode"] == "default" and item["type"] in ("adding", "spending")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", item["registeredOn"])
    assert items[0]["customerId"] == "00000000-0000-474c-b092-b0dd880c07e2"
    assert items[0]["expiresAt"] == "2027-01-01 00:00:00" and "lockedUntil" not in items[0]
    assert "expiresAt" not in items[1]
    assert items[2]["lockedUntil"] == "2026-08-01 00:00:00"
    assert items[3] == {"customerId": "t-c", "units": 4, "walletTypeCode": "default",
                        "registeredOn": "2026-06-30 23:59:59", "type": "spending",
                        "comment": items[3]["comment"]}
    assert items[0]["comment"].startswith("transfer ") and "lots g<1>&" in items[0]["comment"]
    assert data.startswith(b'[\n  {"customerId": ') and data.endswith(b"}\n]\n")
    assert data.count(b"\n") == 6  # "[", one object per line, "]"


def test_outputs_are_byte_identical_across_runs(tmp_path):
    a = write_transfers_json(transfers(), tmp_path / "a" / "t.json") + write_transfers_xml(transfers(),
                                                                                         tmp_path / "a" / "t.xml")
    b = write_transfers_json(transfers(), tmp_path / "b" / "t.json") + write_transfers_xml(transfers(),
                                                                                         tmp_path / "b" / "t.xml")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


@pytest.mark.parametrize("writer, suffix", [(write_transfers_json, ".json"), (write_transfers_xml, ".xml")])
def test_split_below_limit_and_stale_parts_removed(tmp_path, writer, suffix):
    frame = transfers(n_extra=40)
    (whole,) = writer(frame, tmp_path / f"t{suffix}")
    whole_bytes = whole.read_bytes()
    size = len(whole_bytes)
    limit = size // 3
    parts = writer(frame, tmp_path / f"t{suffix}", max_file_bytes=limit)
    assert len(parts) >= 3 and not whole.exists()
    assert [p.name for p in parts] == [f"t_{k:04d}{suffix}" for k in range(1, len(parts) + 1)]
    assert all(len(p.read_bytes()) < limit for p in parts)
    if suffix == ".json":
        merged = [x for p in parts for x in json.loads(p.read_bytes())]
        assert merged == json.loads(whole_bytes)
    else:
        def items(root):
            return [ET.tostring(x).rstrip() for x in root]
        merged = [x for p in parts for x in items(ET.parse(p).getroot())]
        assert merged == items(ET.fromstring(whole_bytes))
    again = writer(frame.head(2), tmp_path / f"t{suffix}", max_file_bytes=limit)
    assert again == [tmp_path / f"t{suffix}"]
    assert sorted(x.name for x in tmp_path.iterdir()) == [f"t{suffix}"]
    with pytest.raises(ValueError, match="even one"):
        writer(frame, tmp_path / f"t{suffix}", max_file_bytes=100)
    assert not list(tmp_path.iterdir())  # no truncated part left behind


def test_empty_and_refused_rows(tmp_path):
    empty = transfers().head(0)
    (j,) = write_transfers_json(empty, tmp_path / "e.json")
    (x,) = write_transfers_xml(empty, tmp_path / "e.xml")
    assert json.loads(j.read_bytes()) == [] and ET.parse(x).getroot().tag == "pointsTransfers"
    bad = transfers()
    for column, value in (("points", 0), ("points", 1.5), ("type", "expired"), ("target_id", "")):
        frame = bad.copy()
        frame[column] = frame[column].astype(object)
        frame.loc[0, column] = value
        with pytest.raises(ValueError):
            write_transfers_xml(frame, tmp_path / "bad.xml")
    frame = bad.copy()
    frame.loc[0, "lot_ids"] = "a\x01b"
    with pytest.raises(ValueError, match="U\\+0001"):
        write_transfers_json(frame, tmp_path / "bad.json")


# -- oracle: the column-wise writer against the row-by-row writer it replaced ------------------------

def _ref_records(frame: pd.DataFrame):
    """Reference: one dict per row, checked one at a time (the writer before it went column-wise)."""
    cols = ("transfer_id", "target_id", "wallet_type_code", "type", "points", "registered_on", "expires_at",
            "unlock_at", "validity_days", "lot_ids")
    missing = [c for c in cols if c not in frame.columns and c not in ("unlock_at", "validity_days", "lot_ids")]
    if missing:
        raise ValueError(f"transfers lack column(s) {missing}")
    n = len(frame)
    data = {c: (frame[c].to_numpy(dtype=object) if c in frame.columns else np.full(n, None, dtype=object))
            for c in cols}
    for i in range(n):
        row = {c: data[c][i] for c in cols}
        for c in ("transfer_id", "target_id", "wallet_type_code", "type", "registered_on", "expires_at", "unlock_at",
                  "lot_ids"):
            row[c] = "" if row[c] is None or row[c] is pd.NA or (isinstance(row[c], float) and row[c] != row[c]) \
                else str(row[c])
        pts = row["points"]
        if isinstance(pts, (bool, np.bool_)) or not isinstance(pts, (int, np.integer)) or pts <= 0:
            raise ValueError(f"transfer {row['transfer_id']}: points must be a whole number above 0, not {pts!r}")
        row["points"] = int(pts)
        if row["type"] not in ("adding", "spending"):
            raise ValueError(f"transfer {row['transfer_id']}: type must be adding or spending, not {row['type']!r}")
        if not row["target_id"]:
            raise ValueError(f"transfer {row['transfer_id']}: no customerId (target_id)")
        for key in ("target_id", "wallet_type_code", "lot_ids", "transfer_id"):
            bad = REF_NOT_XML.search(row[key])
            if bad:
                raise ValueError(f"transfer {row['transfer_id']}: {key} holds U+{ord(bad.group()):04X}")
        days = row["validity_days"]
        row["validity_days"] = None if days is None or days is pd.NA or (isinstance(days, float) and days != days) \
            else int(days)
        yield row


REF_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _ref_comment(row: dict) -> str:
    lots = row.get("lot_ids") or ""
    return f"transfer {row['transfer_id']}; " + (f"lots {lots}" if lots else "negative balance carried")


def _ref_json_item(row: dict) -> bytes:
    item = {"customerId": row["target_id"], "units": row["points"], "walletTypeCode": row["wallet_type_code"]}
    if row["registered_on"]:
        item["registeredOn"] = row["registered_on"]
    item["type"] = row["type"]
    if row["expires_at"]:
        item["expiresAt"] = row["expires_at"]
    if row["unlock_at"]:
        item["lockedUntil"] = row["unlock_at"]
    item["comment"] = _ref_comment(row)
    return ("  " + json.dumps(item, ensure_ascii=False, separators=(", ", ": "))).encode("utf-8")


def _ref_xml_item(row: dict, no_expiry: str) -> bytes:
    from xml.sax.saxutils import escape
    days = row["validity_days"]
    note = _ref_comment(row)
    for label, key in (("registered", "registered_on"), ("expires", "expires_at"), ("locked until", "unlock_at")):
        if row[key]:
            note += f"; {label} {row[key]} UTC"
    return ("  <pointsTransfer>\n"
            f"    <customerId>{escape(row['target_id'])}</customerId>\n"
            f"    <points>{row['points']}</points>\n"
            f"    <type>{row['type']}</type>\n"
            f"    <validityDuration>{no_expiry if days is None else max(days, 1)}</validityDuration>\n"
            f"    <comment>{escape(note)}</comment>\n"
            "  </pointsTransfer>\n").encode("utf-8")


def _ref_write(path, items, header: bytes, footer: bytes, sep: bytes, max_file_bytes):
    """Reference: the item-by-item part splitter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = re.compile(re.escape(path.stem) + r"_[0-9]{4}" + re.escape(path.suffix))
    for old in sorted(path.parent.iterdir()):
        if old == path or stale.fullmatch(old.name):
            old.unlink()
    paths, handle, size, complete = [], None, 0, False
    try:
        for item in items:
            if max_file_bytes is not None and len(header) + len(item) + len(footer) >= max_file_bytes:
                raise ValueError(f"max_file_bytes={max_file_bytes} cannot hold even one transfer ({len(item)} bytes)")
            if handle is not None and max_file_bytes is not None and size + len(sep) + len(item) >= max_file_bytes:
                handle.write(footer)
                handle.close()
                handle = None
            if handle is None:
                paths.append(path.with_name(f"{path.stem}_{len(paths) + 1:04d}{path.suffix}"))
                handle = open(paths[-1], "wb")
                handle.write(header)
                size = len(header) + len(footer)
            else:
                handle.write(sep)
                size += len(sep)
            handle.write(item)
            size += len(item)
        if handle is not None:
            handle.write(footer)
            handle.close()
            handle = None
        complete = True
    finally:
        if handle is not None:
            handle.close()
        if not complete:
            for p in paths:
                p.unlink(missing_ok=True)
    if not paths:
        path.write_bytes(b"[\n]\n" if header == b"[\n" else header + footer)
        return [path]
    if len(paths) == 1:
        paths[0].replace(path)
        return [path]
    return paths


def ref_write_json(frame, path, *, max_file_bytes=None):
    return _ref_write(path, (_ref_json_item(r) for r in _ref_records(frame)), b"[\n", b"\n]\n", b",\n",
                      max_file_bytes)


def ref_write_xml(frame, path, *, max_file_bytes=None, no_expiry="0"):
    if not re.fullmatch(r"[0-9]+", no_expiry):
        raise ValueError("no_expiry must be a whole number of days as text, e.g. '0'")
    return _ref_write(path, (_ref_xml_item(r, no_expiry) for r in _ref_records(frame)),
                      b'<?xml version="1.0" encoding="UTF-8"?>\n<pointsTransfers>\n', b"</pointsTransfers>\n", b"",
                      max_file_bytes)


def _outcome(writer, frame, path, **kw):
    """What a writer leaves: its result or error, and every file in the directory with its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "stale_0007.json").write_bytes(b"old")  # not ours: must survive
    (path.with_name(f"{path.stem}_0009{path.suffix}")).write_bytes(b"old part")  # ours: must go
    try:
        result = ("ok", [p.name for p in writer(frame, path, **kw)])
    except Exception as exc:  # noqa: BLE001 - the oracle compares any error
        result = ("error", type(exc).__name__, str(exc))
    return result, {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


_ODD = ['"', "\\", "&", "<", ">", ";", ",", " ", "\n", "\t", "\r", "\x01", "\x1f", "\x7f", "à", "ộ", "€", "😀",
        "\u2028", "\ufffe", "\ud800", "]]>", "&amp;"]
_TEXT = st.lists(st.one_of(st.sampled_from(_ODD), st.text("abcXYZ0189-_:", min_size=1, max_size=6)),
                 max_size=4).map("".join)
_TEXTISH = st.one_of(_TEXT, st.just(""), st.none(), st.just(float("nan")), st.integers(-3, 99))
_DATE = st.one_of(st.just(""), st.just("2027-01-01 00:00:00"), st.just("2025-06-30 12:30:00"), _TEXT)


@st.composite
def transfer_frames(draw):
    n = draw(st.integers(0, 9))
    odd = draw(st.booleans())  # odd rows: refusals, unusual values and dtypes
    ids = draw(st.lists(_TEXT if odd else st.text("0123456789abcdef-", min_size=1, max_size=12),
                        min_size=n, max_size=n))
    frame = pd.DataFrame({
        "transfer_id": pd.Series(ids, dtype=object),
        "target_id": pd.Series(draw(st.lists(_TEXTISH if odd else st.sampled_from(["t-1", "t&2", "ölé", 't"3']),
                                             min_size=n, max_size=n)), dtype=object),
        "wallet_type_code": pd.Series(draw(st.lists(st.sampled_from(["default", "w<1>", 'a"b\\'] + (["", "\x02"] if odd
                                                                                                   else [])),
                                                    min_size=n, max_size=n)), dtype=object),
        "type": pd.Series(draw(st.lists(st.sampled_from(["adding", "spending"] * 3 + (["expired", None] if odd else [])),
                                        min_size=n, max_size=n)), dtype=object),
        "points": pd.Series(draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n)), dtype=np.int64),
        "registered_on": pd.Series(draw(st.lists(_DATE, min_size=n, max_size=n)), dtype=object),
        "expires_at": pd.Series(draw(st.lists(_DATE, min_size=n, max_size=n)), dtype=object),
        "unlock_at": pd.Series(draw(st.lists(_DATE, min_size=n, max_size=n)), dtype=object),
        "validity_days": pd.array(draw(st.lists(st.one_of(st.none(), st.integers(-5, 800)), min_size=n, max_size=n)),
                                  dtype="Int64"),
        "lot_ids": pd.Series(draw(st.lists(st.one_of(st.just(""), _TEXT), min_size=n, max_size=n)), dtype=object),
    })
    if odd and n:
        fine = st.integers(1, 50)
        points = draw(st.lists(st.one_of(fine, fine, fine, st.sampled_from([0, -2, 1.5, True, None, np.int32(7)])),
                               min_size=n, max_size=n))
        frame["points"] = pd.Series(points, dtype=object)
        days = draw(st.lists(st.one_of(st.none(), st.integers(-5, 800), st.sampled_from(
            [12.7, float("nan"), float("inf"), "30", "x", pd.NaT, pd.NA])), min_size=n, max_size=n))
        frame["validity_days"] = pd.Series(days, dtype=object)
        for column in draw(st.lists(st.sampled_from(["lot_ids", "unlock_at", "validity_days"]), max_size=2)):
            frame = frame.drop(columns=[column], errors="ignore")
        if draw(st.booleans()):
            frame["registered_on"] = frame["registered_on"].astype("str")  # pandas' own text dtype, NaN for None
    return frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=transfer_frames(), chunk=st.integers(1, 4), limit=st.one_of(st.none(), st.integers(40, 1500)),
       no_expiry=st.sampled_from(["0", "36500"]))
def test_writers_give_the_row_by_row_writers_bytes_and_errors(tmp_path_factory, frame, chunk, limit, no_expiry):
    from unittest import mock

    from loyalty_toolkit.targets import ol_transfers
    base = tmp_path_factory.mktemp("oracle")
    with mock.patch.object(ol_transfers, "_CHUNK", chunk):
        for new, ref, suffix, kw in ((write_transfers_json, ref_write_json, ".json", {}),
                                     (write_transfers_xml, ref_write_xml, ".xml", {"no_expiry": no_expiry})):
            got = _outcome(new, frame, base / "new" / f"t{suffix}", max_file_bytes=limit, **kw)
            want = _outcome(ref, frame, base / "ref" / f"t{suffix}", max_file_bytes=limit, **kw)
            assert got == want


# -- push-based writing: the same bytes for the whole frame written in any number of pieces ----------

def _pieces_writer(fmt: str, cuts: list[int]):
    """A ``write_transfers_*``-shaped function feeding ``TransferFileWriter`` the frame cut at ``cuts``
    (duplicates and 0 / n give empty pieces)."""
    def write(frame, path, **kw):
        bounds = [0, *sorted(min(c, len(frame)) for c in cuts), len(frame)]
        writer = TransferFileWriter(path, fmt, **kw)
        for lo, hi in zip(bounds, bounds[1:]):
            writer.write(frame.iloc[lo:hi])
        return writer.close()
    return write


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=transfer_frames(), cuts=st.lists(st.integers(0, 9), max_size=5), chunk=st.integers(1, 4),
       limit=st.one_of(st.none(), st.integers(40, 1500)), no_expiry=st.sampled_from(["0", "36500"]))
def test_writing_in_pieces_gives_the_whole_frames_bytes_and_errors(tmp_path_factory, frame, cuts, chunk, limit,
                                                                   no_expiry):
    from unittest import mock

    from loyalty_toolkit.targets import ol_transfers
    base = tmp_path_factory.mktemp("pieces")
    with mock.patch.object(ol_transfers, "_CHUNK", chunk):  # chunks end inside and at the pieces' edges
        for fmt, ref, kw in (("json", ref_write_json, {}), ("xml", ref_write_xml, {"no_expiry": no_expiry})):
            got = _outcome(_pieces_writer(fmt, cuts), frame, base / "new" / f"t.{fmt}", max_file_bytes=limit, **kw)
            want = _outcome(ref, frame, base / "ref" / f"t.{fmt}", max_file_bytes=limit, **kw)
            assert got == want


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_pieces_roll_parts_over_like_the_whole_frame(tmp_path, fmt):
    frame = transfers(n_extra=60)
    frame.loc[5, "lot_ids"] = "Hà Nội"  # a non-ASCII row: byte sizes, not characters, decide the split
    whole = write_transfers_json if fmt == "json" else write_transfers_xml
    (one,) = whole(frame, tmp_path / "one" / f"t.{fmt}")
    limit = len(one.read_bytes()) // 5
    want = [p.read_bytes() for p in whole(frame, tmp_path / "whole" / f"t.{fmt}", max_file_bytes=limit)]
    cuts = [0, 0, 1, 7, 8, 30, 63, 63]  # empty pieces, one-row pieces, a piece past every part edge
    got = _pieces_writer(fmt, cuts)(frame, tmp_path / "pieces" / f"t.{fmt}", max_file_bytes=limit)
    assert len(want) >= 5 and [p.read_bytes() for p in got] == want
    assert [p.name for p in got] == [f"t_{k:04d}.{fmt}" for k in range(1, len(want) + 1)]


def test_a_refused_row_in_a_later_piece_removes_the_parts_already_written(tmp_path):
    frame = transfers(n_extra=30)
    frame["points"] = frame["points"].astype(object)
    frame.loc[25, "points"] = 0
    (tmp_path / "t_0003.json").write_bytes(b"stale part")
    writer = TransferFileWriter(tmp_path / "t.json", "json", max_file_bytes=600)
    assert not list(tmp_path.iterdir())  # stale parts go when the writer is created
    writer.write(frame.iloc[:20])
    assert len(list(tmp_path.iterdir())) >= 3  # parts rolled over already
    with pytest.raises(ValueError, match="points must be a whole number above 0"):
        writer.write(frame.iloc[20:])
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="aborted"):
        writer.write(frame.iloc[:0])
    with pytest.raises(ValueError, match="aborted"):
        writer.close()


def test_abort_close_and_the_context_manager(tmp_path):
    frame = transfers()
    with pytest.raises(RuntimeError):
        with TransferFileWriter(tmp_path / "t.xml", "xml") as writer:
            writer.write(frame)
            assert list(tmp_path.iterdir())
            raise RuntimeError("the slice after failed")  # the caller's own error aborts the file
    assert not list(tmp_path.iterdir())
    with TransferFileWriter(tmp_path / "t.xml", "xml") as writer:
        writer.write(frame.iloc[:2])
        writer.write(frame.iloc[2:])
        (path,) = writer.close()
    writer.abort()  # once closed the file is complete: abort leaves it
    assert path.read_bytes() == write_transfers_xml(frame, tmp_path / "again" / "t.xml")[0].read_bytes()
    with pytest.raises(ValueError, match="closed"):
        writer.write(frame)
    with pytest.raises(ValueError, match="json or xml"):
        TransferFileWriter(tmp_path / "t.csv", "csv")
    with pytest.raises(ValueError, match="no_expiry"):
        TransferFileWriter(tmp_path / "t.xml", "xml", no_expiry="never")
    assert path.exists()  # a refused argument touches no file
