"""Phone region per source: a national-format opening-balance file read in its own region.

The members are a French export (``default_region: FR``) holding Vietnamese customers in E.164;
the Haravan opening-balance file writes their phones the Vietnamese national way (``0903 555 017``).
Read in the members' region those would become ``+33903555017`` and match nobody (or the wrong
member); with ``sources.opening_balances.default_region: VN`` every row maps to its member.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from loyalty_toolkit.config import parse_config
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.opening_balances import parse_opening
from loyalty_toolkit.shared.member_rules import FIELDS, prepare_members
from loyalty_toolkit.stages.transfers.opening import member_phones, opening_lots

CUT = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
MEMBERS = [  # legacy_id, email, phone as the French export holds it
    ("V1", "lan@example.vn", "+84903555017"),
    ("V2", "minh@example.vn", "+84 912 345 678"),
    ("V3", "tuan@example.vn", "+84283822 1234"),
    ("F1", "anne@example.fr", "06 12 34 56 78"),  # a French member in the same export
    ("F2", "paul@example.fr", "+33903555017"),    # whom 0903 555 017 read as French would name
]
OPENING = ("phone,email,DTDauKy,DTTichLuy\n"
           "0903 555 017,lan@example.vn,\"1,500,000\",2000000\n"
           "0912.345.678,minh@example.vn,250000,300000\n"
           "(028) 3822 1234,tuan@example.vn,90000,90000\n"
           "+33612345678,anne@example.fr,10000,10000\n")
CONFIG = """
migration: {{name: region, cutover: "2026-06-30T23:59:59+00:00"}}
sources:
  members: {{path: members.csv, default_region: FR}}
  opening_balances: {{path: opening.csv{region}}}
  target_members: {{rehearsal: true}}
"""


def _program(tmp_path, region: str):
    (tmp_path / "members.csv").write_text("guest_id\nV1\n", encoding="utf-8")
    (tmp_path / "opening.csv").write_text(OPENING, encoding="utf-8")
    cfg = parse_config(CONFIG.format(region=region), tmp_path / "migration.yml")
    frame = pd.DataFrame([{f: "" for f in FIELDS} | {"legacy_id": i, "email": e, "phone": p, "first_name": "A",
                                                      "last_name": "B"} for i, e, p in MEMBERS])
    members = prepare_members(frame, source_file="members.csv", default_region=cfg.sources.members.default_region,
                              timezone="UTC").members
    src = cfg.sources.opening_balances
    table = to_frame(read_table(src.path, stage="transfers"), src.column_map())
    opening = parse_opening(table, source_file="opening.csv", default_region=cfg.phone_region("opening_balances"),
                            rule=cfg.transfers.opening, cutover=CUT, columns=src.column_map())
    id_map = pd.DataFrame({"legacy_id": members["legacy_id"], "target_id": "t-" + members["legacy_id"]})
    return cfg, members, opening, id_map


def test_national_opening_phones_read_in_the_files_own_region_map_every_row(tmp_path):
    cfg, members, opening, id_map = _program(tmp_path, ", default_region: VN")
    assert cfg.phone_region("opening_balances") == "VN" and cfg.phone_region("members") == "FR"
    assert opening.balances["phone"].tolist() == ["+84903555017", "+84912345678", "+842838221234", "+33612345678"]
    balances, reread = member_phones(opening.balances, members)
    lots, unmatched = opening_lots(balances, members, id_map)
    assert reread == 0 and unmatched.empty
    assert lots[["line", "user_id"]].values.tolist() == [[2, "V1"], [3, "V2"], [4, "V3"], [5, "F1"]]
    assert lots["accrued"].tolist() == [150, 25, 9, 1]


def test_without_its_own_region_the_file_is_read_in_the_members_region(tmp_path):
    cfg, members, opening, id_map = _program(tmp_path, "")
    assert cfg.phone_region("opening_balances") == "FR"
    # 0903 555 017 read as French is another member's phone: the row names both identifiers and their owners
    assert opening.balances["phone"].iloc[0] == "+33903555017"
    lots, unmatched = opening_lots(opening.balances, members, id_map)
    row = unmatched.set_index("line").loc[2]
    assert row["reason_code"] == "OPENING_NO_MEMBER"
    assert row["message"] == ("opening balance of 150 points: no member holds both: the phone ********5017 is "
                              "member F2's, the email l***@example.vn is member V1's")
    assert 2 not in set(lots["line"])
