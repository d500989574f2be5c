"""Open Loyalty unit-transfer files: OSS XML and SaaS JSON, integer points, deterministic bytes, split."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd
import pytest

from loyalty_toolkit.stages.lots import LOT_COLUMNS
from loyalty_toolkit.stages.transfers import build_transfers
from loyalty_toolkit.targets.ol_transfers import JSON_DOCUMENTED, JSON_OURS, write_transfers_json, write_transfers_xml

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
