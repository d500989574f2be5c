"""The sample program generator: formats, determinism, and that defects.csv tells the truth."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from loyalty_toolkit.config import LEDGER_COLUMNS, MEMBER_COLUMNS, OPENING_COLUMNS
from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sample import SampleProgram, generate_sample
from loyalty_toolkit.sample.defects import CODES, MEMBER_CODES

CUTOVER = "2026-06-30 23:59:59"
EMAIL_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*@[a-z0-9\-]+(\.[a-z0-9\-]+)+$", re.IGNORECASE)
E164_RE = re.compile(r"^\+(33[67]\d{8}|849\d{8})$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
LEDGER_HEADER = ["organization account name", *LEDGER_COLUMNS.values()]
MASTER_HEADER = ("external_id;name;monetary;monetary_type;monetary_value;nqp_value;description;rich_description;"
                 "holding_days;validity_interval_count;validity_interval_type;forced_validity;forced_validity_start;"
                 "forced_validity_end;is_limited;max_attribution_count;is_auto_generated;image_url").split(";")
EARN_HEADER = ("reward_id;card_code;attribution_id;quantity;earn_date;context;validity_start_date;"
               "validity_end_date;burn_date;store_id").split(";")
BURN_HEADER = "card_code;context;attribution_id;burn_date;store_id".split(";")


def read(path: Path, delimiter: str = ",") -> tuple[list[str], dict[int, dict[str, str]]]:
    """Header and {physical line number: record} of a CSV file."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader)
        rows = {reader.line_num: dict(zip(header, row, strict=True)) for row in reader}
    return header, rows


class Loaded:
    """A generated program read back: every file as {line: record}, defects grouped by file and code."""

    def __init__(self, p: SampleProgram) -> None:
        self.p = p
        self.members_header, self.members = read(p.members)
        self.ledger_header, self.ledger = read(p.ledger)
        self.opening_header, self.opening = read(p.opening_balances)
        self.master_header, self.master = read(p.rewards[0], ";")
        self.earn_header, self.earn = read(p.rewards[1], ";")
        self.burn_header, self.burn = read(p.rewards[2], ";")
        self.defects_header, defect_rows = read(p.defects)
        self.defects: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in defect_rows.values():
            self.defects[row["defect"]].append(row)

    def lines(self, code: str) -> set[int]:
        return {int(d["line"]) for d in self.defects[code]}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return Loaded(generate_sample(tmp_path_factory.mktemp("small"), members=300))


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return Loaded(generate_sample(tmp_path_factory.mktemp("full"), members=2000, seed=11))


@pytest.fixture(params=["small", "full"])
def program(request: pytest.FixtureRequest) -> Loaded:
    return request.getfixturevalue(request.param)


def test_files_exist_with_exact_headers(program: Loaded) -> None:
    p = program.p
    legacy = p.root / "legacy"
    assert (p.members, p.ledger, p.opening_balances, p.defects) == (
        legacy / "members.csv", legacy / "points_liability.csv", legacy / "opening_balances.csv",
        legacy / "defects.csv")
    assert [f.name for f in p.rewards] == [f"demo_{s}_main_20260630.csv"
                                           for s in ("masterreward", "earnreward", "burnreward")]
    assert program.members_header == list(MEMBER_COLUMNS.values())
    assert program.ledger_header == LEDGER_HEADER
    assert program.opening_header == list(OPENING_COLUMNS.values()) == ["phone", "email", "DTDauKy", "DTTichLuy"]
    assert program.master_header == MASTER_HEADER
    assert program.earn_header == EARN_HEADER
    assert program.burn_header == BURN_HEADER
    assert program.defects_header == ["file", "line", "record_key", "defect"]
    for path in (p.members, p.ledger, p.opening_balances, p.defects, *p.rewards):
        raw = path.read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n")
        raw.decode("utf-8")


def test_counts_match_the_files(program: Loaded) -> None:
    c = program.p.counts
    assert list(c)[:6] == ["members", "ledger", "opening_balances", "masterreward", "earnreward", "burnreward"]
    assert c["members"] == len(program.members)
    assert c["ledger"] == len(program.ledger)
    assert c["opening_balances"] == len(program.opening)
    assert (c["masterreward"], c["earnreward"], c["burnreward"]) == (
        len(program.master), len(program.earn), len(program.burn))
    for code in CODES:
        assert c[code] == len(program.defects[code]), code
    assert set(program.defects) <= set(CODES)
    # every file's physical line count is its record count plus the header: no embedded newlines
    assert len(program.p.members.read_bytes().splitlines()) == c["members"] + 1


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    kwargs = {"members": 250, "seed": 3, "ledger_rows_per_member": 4.0}
    a = files(generate_sample(tmp_path / "a", **kwargs).root)
    b = files(generate_sample(tmp_path / "b", **kwargs).root)
    assert a.keys() == b.keys() and len(a) == 7
    for name in a:
        assert a[name] == b[name], name
    other = files(generate_sample(tmp_path / "c", **{**kwargs, "seed": 4}).root)
    assert other["legacy/members.csv"] != a["legacy/members.csv"]
    assert other["legacy/points_liability.csv"] != a["legacy/points_liability.csv"]


def test_every_member_class_occurs_at_least_three_times(full: Loaded) -> None:
    c = full.p.counts
    for code in MEMBER_CODES:
        assert c[code] >= 3, code
    assert c["PHONE_NATIONAL_FORMAT"] >= 150 and c["EMAIL_INVALID"] >= 15
    assert c["NEGATIVE_BALANCE"] >= 2
    assert c["BURN_UNKNOWN_ATTRIBUTION"] >= 3
    for code in ("UNKNOWN_MEMBER", "REDEMPTION_NO_LINK", "EXPIRED_LOT", "PENDING_LOT", "FRACTIONAL_POINTS"):
        assert c[code] >= 3, code
    # a member row carries at most one defect
    member_lines = Counter(int(d["line"]) for code in MEMBER_CODES for d in full.defects[code])
    assert max(member_lines.values()) == 1


def test_member_defect_lines_point_at_the_defect(program: Loaded) -> None:
    members = program.members
    for code in MEMBER_CODES:
        for d in program.defects[code]:
            assert d["file"] == "legacy/members.csv"
            assert members[int(d["line"])]["guest_id"] == d["record_key"], d
    for line in program.lines("EMAIL_INVALID"):
        assert not EMAIL_RE.match(members[line]["email"]), members[line]
    pairs = program.lines("EMAIL_CASE_DUPLICATE")
    by_lower = Counter(members[line]["email"].lower() for line in pairs)
    assert all(v == 2 for v in by_lower.values())
    assert all(len({members[x]["email"] for x in pairs if members[x]["email"].lower() == e}) == 2 for e in by_lower)
    for line in program.lines("PHONE_NATIONAL_FORMAT"):
        phone = members[line]["mobile_phone"]
        assert phone.startswith("0") and re.sub(r"[ .]", "", phone).removeprefix("0033").lstrip("0")[0] in "67"
    shared = program.lines("SHARED_IDENTIFIER")
    phones = Counter(members[x]["mobile_phone"] for x in shared)
    cards = Counter(members[x]["card_number"] for x in shared)
    for line in shared:
        m = members[line]
        assert phones[m["mobile_phone"]] == 2 or cards[m["card_number"]] == 2
    for line in program.lines("NO_IDENTIFIER"):
        m = members[line]
        assert m["email"] == m["mobile_phone"] == m["card_number"] == ""
    # and no unrecorded member has these defects
    for line, m in members.items():
        if not EMAIL_RE.match(m["email"]) and m["email"]:
            assert line in program.lines("EMAIL_INVALID")
        if m["mobile_phone"].startswith("0"):
            assert line in program.lines("PHONE_NATIONAL_FORMAT")
        if not (m["email"] or m["mobile_phone"] or m["card_number"]):
            assert line in program.lines("NO_IDENTIFIER")


def test_clean_members_have_valid_unique_identifiers(full: Loaded) -> None:
    members = full.members
    planted = {int(d["line"]) for code in MEMBER_CODES for d in full.defects[code]}
    clean = [m for line, m in members.items() if line not in planted]
    assert len(clean) > 1700
    for m in clean:
        assert EMAIL_RE.match(m["email"]) and m["email"] == m["email"].lower(), m
        assert E164_RE.match(m["mobile_phone"]), m
        assert re.fullmatch(r"\d{10}", m["card_number"]), m
    # an identifier shared by several members is always a planted pair
    for column, fold in (("email", str.lower), ("mobile_phone", str), ("card_number", str)):
        owners: dict[str, list[int]] = defaultdict(list)
        for line, m in members.items():
            if m[column]:
                owners[fold(m[column])].append(line)
        for value, lines in owners.items():
            if len(lines) > 1:
                assert len(lines) == 2 and set(lines) <= planted, (column, value, lines)
    assert any(m["card_number"].startswith("0") for m in clean)
    assert all(m["guest_id"] == f"G{line - 1:07d}" for line, m in members.items())
    assert any("," in m["first_name"] for m in members.values())
    assert any(ch in "".join(m["first_name"] + m["last_name"] for m in clean) for ch in "éễịẫ")
    assert {m["gender"] for m in members.values()} == {"male", "female", "M", "F", ""}
    assert {m["base_center"] for m in members.values()} == {
        "Paris Opéra", "Lyon Part-Dieu", "Hanoi Hoàn Kiếm", "Saigon District 1"}
    assert all(DATETIME_RE.match(m["created_at"]) for m in members.values())
    assert all(re.fullmatch(r"(\d{4}-\d{2}-\d{2})?", m["date_of_birth"]) for m in members.values())


def test_ledger_defect_lines_point_at_the_defect(program: Loaded) -> None:
    ledger = program.ledger
    known = {m["guest_id"] for m in program.members.values()}
    for code in ("UNKNOWN_MEMBER", "REDEMPTION_NO_LINK", "EXPIRED_LOT", "PENDING_LOT", "FRACTIONAL_POINTS",
                 "NEGATIVE_BALANCE"):
        for d in program.defects[code]:
            assert d["file"] == "legacy/points_liability.csv"
            assert ledger[int(d["line"])]["user id"] == d["record_key"]
    expected = {
        "UNKNOWN_MEMBER": {n for n, r in ledger.items() if r["user id"] not in known},
        "REDEMPTION_NO_LINK": {n for n, r in ledger.items() if r["record type name"] == "Redemption"
                               and not r["guestpointsid"]},
        "EXPIRED_LOT": {n for n, r in ledger.items() if r["record type name"] == "Accrual"
                        and r["effective end date"] and r["effective end date"] <= CUTOVER},
        "PENDING_LOT": {n for n, r in ledger.items() if r["record type name"] == "Accrual"
                        and r["effective start date"] > CUTOVER},
        "FRACTIONAL_POINTS": {n for n, r in ledger.items() if not float(r["Loyalty Points"]).is_integer()},
    }
    for code, lines in expected.items():
        assert program.lines(code) == lines, code
    for line in program.lines("UNKNOWN_MEMBER"):
        assert ledger[line]["record type name"] == "Accrual"
    # NEGATIVE_BALANCE: the member's running balance crosses below zero exactly on that redemption
    negative = program.lines("NEGATIVE_BALANCE")
    assert negative
    balance: dict[str, float] = defaultdict(float)
    crossed = set()
    for line in sorted(ledger):
        r = ledger[line]
        before = balance[r["user id"]]
        balance[r["user id"]] += float(r["Loyalty Points"])
        if before >= 0 > balance[r["user id"]]:
            crossed.add(line)
    assert crossed == negative
    assert {u for u, b in balance.items() if b < -1e-9} == {ledger[x]["user id"] for x in negative}


def test_redemptions_consume_existing_lots_of_the_same_member(program: Loaded) -> None:
    ledger = program.ledger
    lots = {r["guestpointsid"]: r for r in ledger.values() if r["record type name"] == "Accrual"}
    assert len(lots) == sum(r["record type name"] == "Accrual" for r in ledger.values())  # ids are unique
    assert all(len(g) <= 36 and g for g in lots)
    negative = program.lines("NEGATIVE_BALANCE")
    created = {m["guest_id"]: m["created_at"] for m in program.members.values()}
    assert all(r["action date"] > created.get(r["user id"], "") for r in ledger.values())
    remaining = {g: float(r["Loyalty Points"]) for g, r in lots.items()}
    for line in sorted(ledger):
        r = ledger[line]
        points = float(r["Loyalty Points"])
        assert DATETIME_RE.match(r["action date"]) and r["action date"] < CUTOVER
        if r["record type name"] == "Accrual":
            assert points > 0 and r["accrual center name"] and not r["payment center name"]
            assert r["accrual center minutes to add"] in {"60", "420"}
            continue
        assert r["record type name"] == "Redemption" and points < 0
        assert r["payment center name"] and not r["accrual center name"]
        if not r["guestpointsid"]:
            continue
        lot = lots[r["guestpointsid"]]
        assert lot["user id"] == r["user id"]
        assert r["action date"] > (lot["effective start date"] or lot["action date"])
        assert not lot["effective end date"] or r["action date"] < lot["effective end date"]
        remaining[r["guestpointsid"]] += points
        if line not in negative:
            assert remaining[r["guestpointsid"]] >= -1e-9, (line, r)
    cross = [r for r in ledger.values() if r["record type name"] == "Redemption" and r["guestpointsid"]
             and r["payment center name"] != lots[r["guestpointsid"]]["accrual center name"]]
    assert cross, "some redemptions happen at another center"


def test_ledger_value_shapes(full: Loaded) -> None:
    rows = list(full.ledger.values())
    points = Counter("." in r["Loyalty Points"] for r in rows)
    assert points[False] > 20 * points[True] > 0
    assert all(re.fullmatch(r"-?\d+(\.\d)?", r["Loyalty Points"]) for r in rows)
    assert {r["program name"] for r in rows} == {"Regular", "Promotion B"}
    assert {r["organization account name"] for r in rows} == {"demo"}
    assert {r["accrual tier name"] for r in rows} == {"bronze", "silver", "gold"}
    accruals = [r for r in rows if r["record type name"] == "Accrual"]
    assert any(not r["effective start date"] for r in accruals)
    assert any(not r["effective end date"] for r in accruals)
    same_start = sum(r["effective start date"] == r["action date"] for r in accruals)
    assert same_start > 0.8 * len(accruals)
    assert all(len(r["invoiceid"]) <= 36 for r in rows)
    invoices = [r["invoiceid"] for r in rows if r["invoiceid"]]
    assert len(set(invoices)) == len(invoices)
    assert 4.5 < len(rows) / len(full.members) < 5.5


def test_worked_examples_of_seed_004(small: Loaded) -> None:
    ledger = list(small.ledger.values())
    first = [r for r in ledger if r["user id"] == "G0000001"]
    assert [(r["action name"], r["Loyalty Points"], r["previous tier name"], r["current tier name"],
             r["accrual tier name"]) for r in first] == [
        ("Welcome bonus", "10", "", "bronze", "bronze"), ("Amount spent", "11", "bronze", "silver", "silver")]
    assert first[0]["action date"] < first[1]["action date"]
    linked = [r for r in ledger if r["guestpointsid"] == "ab3cde"]
    assert [(r["record type name"], r["Loyalty Points"]) for r in linked] == [("Accrual", "100"), ("Redemption", "-75")]
    assert linked[0]["user id"] == linked[1]["user id"]


def test_opening_balances_match_members_by_phone_and_email(full: Loaded) -> None:
    members = {m["email"]: m for m in full.members.values() if m["email"]}
    rows = list(full.opening.values())
    assert 0.25 < len(rows) / len(full.members) < 0.35
    assert len({r["email"] for r in rows}) == len(rows)

    def amount(text: str) -> int:
        assert re.fullmatch(r"\d+|\d{1,3}(,\d{3})+|\d{1,3}(\.\d{3})+", text), text
        return int(text.replace(",", "").replace(".", ""))

    national = 0
    for r in rows:
        m = members[r["email"]]
        phone = m["mobile_phone"]
        assert r["phone"] == phone or (phone.startswith("+") and r["phone"] == "0" + phone[3:]), (r, m)
        national += r["phone"].startswith("0")
        assert amount(r["DTTichLuy"]) >= amount(r["DTDauKy"]) >= 0
    assert national > 0
    assert any("," in r["DTDauKy"] for r in rows) and any("." in r["DTDauKy"] for r in rows)
    assert b'"' in full.p.opening_balances.read_bytes()  # "1,500,000" is quoted


def test_rewards_are_consistent(program: Loaded) -> None:
    catalog = {r["external_id"] for r in program.master.values()}
    assert len(catalog) == len(program.master) >= 8
    cards = {m["card_number"] for m in program.members.values() if m["card_number"]}
    earned = {r["attribution_id"]: r for r in program.earn.values()}
    assert len(earned) == len(program.earn)
    assert 0.4 < len(earned) / len(program.members) < 0.6
    for r in program.earn.values():
        assert r["reward_id"] in catalog and r["card_code"] in cards
        assert r["validity_start_date"] <= r["earn_date"] < r["validity_end_date"]
        assert not r["burn_date"] or r["earn_date"] < r["burn_date"] < CUTOVER
    assert sum(bool(r["burn_date"]) for r in program.earn.values()) < 0.2 * len(earned)
    unknown = program.lines("BURN_UNKNOWN_ATTRIBUTION")
    for line, b in program.burn.items():
        assert DATETIME_RE.match(b["burn_date"]) and b["burn_date"] < CUTOVER
        e = earned.get(b["attribution_id"])
        assert (e is None) == (line in unknown)
        if e is not None:
            assert e["card_code"] == b["card_code"]
            assert e["earn_date"] < b["burn_date"] < e["validity_end_date"]
            assert not e["burn_date"]
    for d in program.defects["BURN_UNKNOWN_ATTRIBUTION"]:
        assert d["file"] == f"legacy/rewards/{program.p.rewards[2].name}"
        assert program.burn[int(d["line"])]["attribution_id"] == d["record_key"]
    assert len(unknown) >= 3
    burned = [b for b in program.burn.values() if b["attribution_id"] in earned]
    assert len({b["attribution_id"] for b in burned}) == len(burned)
    assert 0.3 < len(burned) / len(earned) < 0.5


def test_cutover_in_another_zone_and_bad_arguments(tmp_path: Path) -> None:
    paris = timezone(timedelta(hours=2))
    p = generate_sample(tmp_path / "z", members=20, cutover=datetime(2025, 1, 1, 1, 0, tzinfo=paris))
    assert p.rewards[0].name.endswith("_20241231.csv")  # the file date is the cutover's UTC date
    assert p.counts["members"] == 20
    with pytest.raises(UsageError):
        generate_sample(tmp_path / "x", cutover=datetime(2026, 6, 30))
    with pytest.raises(UsageError):
        generate_sample(tmp_path / "x", members=0)
    with pytest.raises(UsageError):
        generate_sample(tmp_path / "x", seed=-1)
    one = generate_sample(tmp_path / "one", members=1, cutover=datetime(2026, 6, 30, tzinfo=UTC))
    assert one.counts["members"] == 1 and one.counts["ledger"] >= 2
