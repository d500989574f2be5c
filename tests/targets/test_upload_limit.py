"""Every import file kind stays below the profile's upload limit: a small limit forces each writer
(members XML, unit transfers JSON and XML, coupons in both formats) to split, and nothing is lost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.stages.transfers.outputs import write_transfer_files
from loyalty_toolkit.targets.ol_coupons import read_coupon_file, write_coupon_files
from loyalty_toolkit.targets.ol_profiles import profile
from loyalty_toolkit.targets.openloyalty import members_xml_count, write_members_xml

LIMIT = 2_000


def test_members_xml_splits_below_a_small_limit(tmp_path: Path):
    members = pd.DataFrame({"legacy_id": [f"G{i:03d}" for i in range(60)], "first_name": "Ann", "last_name": "Lee",
                            "email": [f"m{i}@x.fr" for i in range(60)], "birth_date": "1980-01-01",
                            "gender": "female"})
    paths = write_members_xml(members, tmp_path, active=True, agreement1=False, send_activation_mail=False,
                              max_file_bytes=LIMIT)
    assert len(paths) > 2 and all(p.stat().st_size < LIMIT for p in paths)
    assert sum(members_xml_count(p) for p in paths) == 60


def _transfers(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "transfer_id": [f"00000000-0000-4000-8000-{i:012d}" for i in range(n)],
        "target_id": [f"T-{i}" for i in range(n)], "wallet_type_code": "default", "type": "adding",
        "points": pd.Series(range(1, n + 1), dtype="int64"), "registered_on": "2025-01-01 10:00:00",
        "expires_at": "2027-01-01 00:00:00", "unlock_at": "", "validity_days": pd.Series([200] * n, dtype="Int64"),
        "lot_ids": [f"lot{i}" for i in range(n)]})


def test_transfer_files_split_below_a_small_limit_in_both_formats(tmp_path: Path):
    files, rows = write_transfer_files(_transfers(40), tmp_path, ["json", "xml"], max_file_bytes=LIMIT)
    kinds = {p.suffix for p in files}
    assert kinds == {".json", ".xml"}
    assert sum(p.suffix == ".json" for p in files) > 2 and sum(p.suffix == ".xml" for p in files) > 2
    assert all(p.stat().st_size < LIMIT for p in files)
    assert [(r["rows_written"], r["rows_expected"]) for r in rows] == [(40, 40), (40, 40)]
    # whole numbers without a decimal point, in both formats
    units = [item["units"] for p in files if p.suffix == ".json" for item in json.loads(p.read_text())]
    assert units == list(range(1, 41)) and all(isinstance(u, int) for u in units)
    xml = "".join(p.read_text() for p in files if p.suffix == ".xml")
    assert re.findall(r"<points>([^<]*)</points>", xml) == [str(i) for i in range(1, 41)]


@pytest.mark.parametrize("name", ["oss-3", "hosted"])
def test_coupon_files_split_below_a_small_limit_in_the_profiles_format(tmp_path: Path, name: str):
    p = profile(name)
    codes = [f"CODE-{i:05d}" for i in range(500)]
    coupons = pd.DataFrame({"coupon_file": "coupons_R1.csv", "code": codes})
    paths = write_coupon_files(coupons, tmp_path, separator=p.coupon_separator(), max_file_bytes=LIMIT)
    assert len(paths) > 2 and all(f.stat().st_size < LIMIT for f in paths)
    assert [c for f in paths for c in read_coupon_file(f)] == codes
    text = paths[0].read_text()
    if name == "oss-3":  # one line of codes split on ';' by the 3.x admin
        assert "\n" not in text and text.split(";")[:2] == codes[:2]
    else:
        assert text.splitlines()[:2] == codes[:2]


def test_coupons_fitting_the_limit_keep_one_file_and_rerun_removes_stale_parts(tmp_path: Path):
    coupons = pd.DataFrame({"coupon_file": "coupons_R1.csv", "code": [f"C{i}" for i in range(600)]})
    assert len(write_coupon_files(coupons, tmp_path, separator=";", max_file_bytes=LIMIT)) > 1
    paths = write_coupon_files(coupons.head(3), tmp_path, separator=";", max_file_bytes=LIMIT)
    assert [f.name for f in paths] == ["coupons_R1.csv"] and sorted(f.name for f in tmp_path.iterdir()) == [
        "coupons_R1.csv"]
    assert paths[0].read_text() == "C0;C1;C2"


def test_a_code_the_semicolon_format_cannot_carry_is_named(tmp_path: Path):
    coupons = pd.DataFrame({"coupon_file": "coupons_R1.csv", "code": ["A1", "B;2"]})
    with pytest.raises(InputError) as err:
        write_coupon_files(coupons, tmp_path, separator=";")
    assert "coupons_R1.csv" in err.value.one_line() and "'B;2'" in err.value.one_line()
