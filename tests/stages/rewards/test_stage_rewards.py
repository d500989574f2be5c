"""Stage 04 (rewards): the seed's three examples as acceptance tests, and every rule as a row of one table."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources.splio import MAX_OBJECTS, SplioFile, parse_splio_name, read_scope_file
from loyalty_toolkit.stages.rewards import rules as reward_rules
from loyalty_toolkit.stages.rewards import validation as rewards
from loyalty_toolkit.stages.rewards.validation import (
    reward_state,
    validate_all,
    validate_burned,
    validate_catalog,
    validate_earned,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "splio"
EXAMPLE_1 = FIXTURES / "demo_masterreward_main_20190214.csv"
EXAMPLE_2 = FIXTURES / "demo_earnreward_main_20150106.csv"
EXAMPLE_3 = FIXTURES / "demo_burnreward_main_20180901.csv"
CATALOG_FILE = FIXTURES / "demo_masterreward_main_20180701.csv"
EARN_FILE = FIXTURES / "demo_earnreward_main_20180801.csv"
CUTOVER = datetime(2018, 9, 1, tzinfo=timezone.utc)  # makes Example 3's 2018-09-09 burns future
CARDS = {"CC0001": "M1", "CC0002": "M2", "CC0003": "M3", "CC0004": "M4"}
LEGACY_IDS = {"1066": "welcome", "1086": "chocolate_bone", "1455": "corgi_bowl"}


@pytest.fixture(scope="module")
def context() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The extra catalog fixture and its earned attributions (EG2563, DE-0009-3981 burned, BB-0001, a voucher)."""
    cat = validate_catalog([read_scope_file(CATALOG_FILE)])
    assert cat.rejects.empty
    attributions, rejects = validate_earned(read_scope_file(EARN_FILE), cat.catalog, CARDS, cutover=CUTOVER)
    assert rejects.empty
    return cat.catalog, attributions


def outcomes(rejects: pd.DataFrame) -> dict[int, tuple[str, str]]:
    return {int(r.line): (r.reason_code, r.column) for r in rejects.itertuples()}


# -- the seed's examples -----------------------------------------------------------------------------

# What each Example 1 external_id says is wrong with its row, as (reason_code, column).
EXAMPLE_1_OUTCOMES = {
    "mastertest_missing_price": ("MANDATORY_EMPTY", "nqp_value"),  # the price in points is NULL
    "master_missing_auto_generation": ("AUTO_GENERATION_MISSING", "is_auto_generated"),
    "master_bad_stock": ("STOCK_LIMITED_NOT_POSITIVE", "max_attribution_count"),
    "masterlight": None,
    "Masteritem_0_stock": ("ITEM_STOCK_ZERO", "max_attribution_count"),
    "masteritem_bad_stock": ("STOCK_MISSING", "max_attribution_count"),
}


def test_example_1_only_masterlight_imports() -> None:
    res = validate_catalog([read_scope_file(EXAMPLE_1)])
    got = {r.record_key: (r.reason_code, r.column) for r in res.rejects.itertuples()}
    assert got == {k: v for k, v in EXAMPLE_1_OUTCOMES.items() if v is not None}
    assert res.catalog["external_id"].tolist() == ["masterlight"]
    light = res.catalog.iloc[0]
    assert light["validity_interval_type"] == "months"  # "month" in the file, stored plural
    assert light["monetary"] == "0"                     # empty in the file: not monetary
    assert light["holding_days"] == "0"
    assert int(light["stock_limit"]) == 100 and not light["is_auto"]
    assert list(res.rejects.columns) == list(REJECT_COLUMNS)
    assert set(res.rejects["stage"]) == {"rewards"}
    assert res.rejects["line"].tolist() == [2, 3, 4, 6, 7]


def test_example_2_with_legacy_ids_and_only_migrated_cards(context) -> None:
    catalog, _ = context
    att, rej = validate_earned(read_scope_file(EXAMPLE_2), catalog, CARDS, cutover=CUTOVER, reward_ids=LEGACY_IDS)
    assert att["attribution_id"].tolist() == ["oc_0002750875", "oc_0002750876", "oc_0043302300", "oc_0043243103"]
    assert att["reward_external_id"].tolist() == ["welcome", "chocolate_bone", "corgi_bowl", "corgi_bowl"]
    assert att["reward_id"].tolist() == ["1066", "1086", "1455", "1455"]  # the Splio text is kept
    assert att["member_id"].tolist() == ["M1", "M3", "M2", "M4"]
    assert set(rej["reason_code"]) == {"CARD_UNKNOWN"}
    assert rej["value"].tolist() == ["DD0001", "EE0001", "XXX00000", "abcde", "CC111", "SM123"]


# line -> (the row's context column, the outcome it names)
EXAMPLE_3_OUTCOMES = {
    2: ("An incredible corgi designed bowl (empty unique_key)", ("MANDATORY_EMPTY", "attribution_id")),
    3: ("An incredible corgi designed bowl", ("CARD_UNKNOWN", "card_code")),       # card "invalidcardcode"
    4: ("Welcome reward (valid burn)", None),
    5: ("Chocolate bone", ("ATTRIBUTION_UNKNOWN", "attribution_id")),              # "invalidattrid"
    6: ("Chocolate bone(invalid date: future)", ("BURN_DATE_FUTURE", "burn_date")),
    7: ("Chocolate bone(invalid date bis)", ("DATE_INCOMPLETE", "burn_date")),
    8: ("already_burned", ("ALREADY_BURNED", "attribution_id")),
    9: ("An incredible corgi designed bowl(valid burn)", None),
}


def test_example_3_each_row_ends_as_its_context_says(context) -> None:
    _, attributions = context
    f = read_scope_file(EXAMPLE_3)
    assert dict(zip(f.rows["_line"], f.rows["context"])) == {k: v[0] for k, v in EXAMPLE_3_OUTCOMES.items()}
    burns, rej = validate_burned(f, attributions, cutover=CUTOVER, card_to_member=CARDS)
    assert outcomes(rej) == {k: v[1] for k, v in EXAMPLE_3_OUTCOMES.items() if v[1] is not None}
    assert burns["line"].tolist() == [k for k, v in EXAMPLE_3_OUTCOMES.items() if v[1] is None]
    assert burns["attribution_id"].tolist() == ["EG2563", "BB-0001"]
    assert burns["member_id"].tolist() == ["M1", "M4"]


def test_whole_run_counts_and_state_at_the_cutover() -> None:
    res = validate_all(sorted(FIXTURES.glob("demo_*.csv"), reverse=True), CARDS, cutover=CUTOVER,
                       reward_ids=LEGACY_IDS)
    assert res.counts.to_dict("records") == [
        {"file": "demo_masterreward_main_20180701.csv", "scope": "masterreward", "rows": 4, "accepted": 4, "rejected": 0},
        {"file": "demo_masterreward_main_20190214.csv", "scope": "masterreward", "rows": 6, "accepted": 1, "rejected": 5},
        {"file": "demo_earnreward_main_20150106.csv", "scope": "earnreward", "rows": 10, "accepted": 4, "rejected": 6},
        {"file": "demo_earnreward_main_20180801.csv", "scope": "earnreward", "rows": 4, "accepted": 4, "rejected": 0},
        {"file": "demo_burnreward_main_20180901.csv", "scope": "burnreward", "rows": 8, "accepted": 2, "rejected": 6},
    ]
    state = dict(zip(res.attribution_state["attribution_id"], res.attribution_state["state"]))
    assert state["EG2563"] == state["DE-0009-3981"] == state["BB-0001"] == "burned"
    assert state["oc_0002750875"] == "expired"  # Example 2's validity ended in 2012
    voucher = res.attribution_state[res.attribution_state["reward_external_id"] == "birthday_voucher"]
    assert voucher["state"].tolist() == ["expired"]  # 2018-08-31 23:59:59 GMT+1 is before the cutover
    per = res.per_reward.set_index("external_id")
    assert per.loc["corgi_bowl", ["earned", "burned", "active", "expired", "stock_used"]].tolist() == [3, 1, 0, 2, 3]
    assert per.loc["corgi_bowl", "stock_remaining"] == 47
    assert pd.isna(per.loc["birthday_voucher", "max_attribution_count"])
    assert per.loc["masterlight", "earned"] == 0


def test_state_distinguishes_active_burned_expired_at_the_cutover(context) -> None:
    catalog, _ = context
    rows = pd.DataFrame({
        "reward_id": ["chocolate_bone"] * 4, "card_code": ["CC0001"] * 4, "attribution_id": ["A", "B", "C", "D"],
        "quantity": ["2", "", "1", "1"], "earn_date": ["2018-08-01 10:00:00"] * 4,
        "validity_start_date": ["2018-08-01 10:00:00"] * 4,
        # the cutover is 2018-09-01 00:00 UTC = 01:00 GMT+1: C ends exactly then, D a second later
        "validity_end_date": ["2018-12-31 00:00:00", "2018-12-31 00:00:00", "2018-09-01 01:00:00",
                              "2018-09-01 01:00:01"],
        "burn_date": ["", "2018-08-20 12:00:00", "", ""],
    })
    att, rej = validate_earned(rows, catalog, CARDS, cutover=CUTOVER)
    assert rej.empty
    burns, rej = validate_burned(pd.DataFrame({"card_code": ["CC0001"], "attribution_id": ["A"],
                                               "burn_date": ["2018-08-25 09:00:00"]}), att, cutover=CUTOVER)
    assert rej.empty
    st_, per = reward_state(catalog, att, burns, cutover=CUTOVER)
    assert st_["state"].tolist() == ["burned", "burned", "expired", "active"]
    assert st_["burned_at"].iloc[0] == pd.Timestamp("2018-08-25 08:00:00", tz="UTC")
    bone = per.set_index("external_id").loc["chocolate_bone"]
    assert (bone["earned"], bone["burned"], bone["active"], bone["expired"], bone["stock_used"]) == (4, 2, 1, 1, 5)
    assert bone["stock_remaining"] == 495


def test_dates_are_gmt_plus_one_stored_utc_and_raw_text_kept(context) -> None:
    _, att = context
    eg = att.set_index("attribution_id").loc["EG2563"]
    assert eg["earn_date"] == "2018-08-01 09:00:00"
    assert eg["earn_date_utc"] == "2018-08-01T08:00:00+00:00"
    assert eg["earn_date_ts"] == pd.Timestamp("2018-08-01 08:00:00", tz="UTC")
    assert str(att["earn_date_ts"].dtype) == "datetime64[us, UTC]"
    assert reward_rules.parse_splio_datetime("2019-01-01 00:30:00", "x") == datetime(2018, 12, 31, 23, 30,
                                                                                     tzinfo=timezone.utc)


# -- updates, NULL and "" ------------------------------------------------------------------------------

UPDATE_HEADER = "external_id;name;monetary;nqp_value;description;holding_days;validity_interval_count;" \
                "validity_interval_type;forced_validity;is_limited;max_attribution_count;c0"


def update_file(tmp_path: Path, line: str) -> Path:
    p = tmp_path / "demo_masterreward_main_20180801.csv"
    p.write_text(UPDATE_HEADER + "\n" + line + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("description, c0, erase_on_null, want_description, want_c0, want_erase", [
    ("NULL", "NULL", False, "Given when the card is created", "onboarding", ""),   # NULL keeps
    ('""', '""', False, "Given when the card is created", "onboarding", ""),       # "" never erases
    ('""', '""', True, "Given when the card is created", "onboarding", ""),
    ("NULL", "", True, "", "", "description,c0"),                                   # NULL and ;; erase
    ('"new text"', "NULL", True, "new text", "", "c0"),
])
def test_update_merges_with_splio_null_semantics(tmp_path, description, c0, erase_on_null, want_description,
                                                 want_c0, want_erase) -> None:
    existing = validate_catalog([read_scope_file(CATALOG_FILE)]).catalog
    line = f'"welcome";"Welcome!";"0";"5";{description};"0";"3";"months";"0";"0";"1000";{c0}'
    res = validate_catalog([read_scope_file(update_file(tmp_path, line))], existing=existing,
                           erase_on_null=erase_on_null)
    assert res.rejects.empty and res.accepted["action"].tolist() == ["update"]
    cat = res.catalog.set_index("external_id")
    assert len(cat) == 4  # the untouched rewards are carried along
    row = cat.loc["welcome"]
    assert (row["name"], row["nqp_value"]) == ("Welcome!", "5")
    assert (row["description"], row["c0"], row["erase"], row["action"]) == (want_description, want_c0, want_erase,
                                                                          "update")
    assert cat.loc["corgi_bowl", "action"] == "unchanged"


def test_update_is_checked_after_the_merge(tmp_path) -> None:
    """A stored limited reward cannot be made unlimited without a stock by an update."""
    existing = validate_catalog([read_scope_file(CATALOG_FILE)]).catalog
    line = '"chocolate_bone";"Chocolate bone";;"50";NULL;"0";"2";"weeks";"0";"0";NULL;NULL'
    res = validate_catalog([read_scope_file(update_file(tmp_path, line))], existing=existing)
    assert outcomes(res.rejects) == {}  # limited=0 but the stored count 500 stays: a plain stock
    line = '"chocolate_bone";"Chocolate bone";;"50";NULL;"0";"2";"weeks";"0";"1";"0";NULL'
    res = validate_catalog([read_scope_file(update_file(tmp_path, line))], existing=existing)
    assert outcomes(res.rejects) == {2: ("STOCK_LIMITED_NOT_POSITIVE", "max_attribution_count")}
    assert res.catalog.set_index("external_id").loc["chocolate_bone", "max_attribution_count"] == "500"


def test_existing_ids_only_make_an_update(tmp_path) -> None:
    line = '"welcome";"Welcome";"0";"5";NULL;"0";"3";"months";"0";"1";"10";NULL'
    res = validate_catalog([read_scope_file(update_file(tmp_path, line))], existing=["welcome"])
    assert res.accepted["action"].tolist() == ["update"]


def test_second_row_for_an_external_id_updates_the_first(tmp_path) -> None:
    p = update_file(tmp_path, '"r1";"One";"0";"5";"first";"0";"3";"months";"0";"1";"10";NULL\n'
                              '"r1";"One again";"0";"6";"";"0";"3";"months";"0";"1";"10";NULL')
    res = validate_catalog([read_scope_file(p)])
    assert res.accepted["action"].tolist() == ["create", "update"]
    row = res.catalog.set_index("external_id").loc["r1"]
    assert (row["name"], row["description"], row["action"], row["line"]) == ("One again", "first", "create", 3)


def test_erase_intent_is_recorded_for_earned_rows(context) -> None:
    catalog, _ = context
    f = read_scope_file(EARN_FILE)
    att, _ = validate_earned(f, catalog, CARDS, cutover=CUTOVER, erase_on_null=True)
    assert att["erase"].tolist() == ["burn_date,store_id", "", "burn_date,store_id", "quantity,burn_date,store_id"]


# -- row conservation ---------------------------------------------------------------------------------

_MASTER_VALUES = {
    "monetary": ["0", "1", "", "2"], "monetary_type": ["", "value", "percentage", "x"],
    "monetary_value": ["", "5", "150", "a"], "nqp_value": ["", "0", "10"], "holding_days": ["0", "-1", ""],
    "validity_interval_type": ["day", "months", "x"], "is_limited": ["", "0", "1"],
    "max_attribution_count": ["", "0", "10"], "is_auto_generated": ["", "0", "1"],
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _MASTER_VALUES.items()}),
                min_size=1, max_size=12))
def test_every_master_row_is_accepted_or_rejected_once(rows) -> None:
    name = "x_masterreward_y_20180101.csv"
    frame = pd.DataFrame([{"external_id": f"r{i % 4}", "name": "n", "validity_interval_count": "1",
                           "forced_validity": "0", **r} for i, r in enumerate(rows)])
    header = tuple(frame.columns)
    frame["_file"], frame["_line"], frame["_null_columns"] = name, range(2, len(rows) + 2), ""
    res = validate_catalog([SplioFile(name=parse_splio_name(name), header=header, rows=frame, path=Path(name))])
    assert len(res.accepted) + len(res.rejects) == len(rows)
    assert sorted(list(res.accepted["line"]) + list(res.rejects["line"])) == list(range(2, len(rows) + 2))


# -- every rule, one row each ---------------------------------------------------------------------------

MASTER_BASE = {
    "external_id": "R-NEW", "name": "New reward", "monetary": "0", "monetary_type": None, "monetary_value": None,
    "nqp_value": "10", "description": "A reward", "rich_description": None, "holding_days": "0",
    "validity_interval_count": "1", "validity_interval_type": "months", "forced_validity": "0",
    "forced_validity_start": None, "forced_validity_end": None, "is_limited": "1", "max_attribution_count": "10",
    "is_auto_generated": "0", "image_url": None, "c5": "custom",
}
EARN_BASE = {
    "reward_id": "welcome", "card_code": "CC0001", "attribution_id": "A-NEW", "quantity": "1",
    "earn_date": "2018-08-10 10:00:00", "context": "rule", "validity_start_date": "2018-08-10 10:00:00",
    "validity_end_date": "2018-12-31 23:59:59", "burn_date": None, "store_id": None,
}
BURN_BASE = {"card_code": "CC0001", "context": "rule", "burn_date": "2018-08-09 10:00:05", "attribution_id": "EG2563",
             "store_id": None}
BASES = {"masterreward": MASTER_BASE, "earnreward": EARN_BASE, "burnreward": BURN_BASE}
STOCK = {"is_limited", "max_attribution_count", "is_auto_generated"}


def M(rule: str, set_: dict, expect: str, column: str | None = None, **kw) -> dict:
    return {"scope": "masterreward", "rule": rule, "set": set_, "expect": expect, "column": column, **kw}


def E(rule: str, set_: dict, expect: str, column: str | None = None, **kw) -> dict:
    return {"scope": "earnreward", "rule": rule, "set": set_, "expect": expect, "column": column, **kw}


def B(rule: str, set_: dict, expect: str, column: str | None = None, **kw) -> dict:
    return {"scope": "burnreward", "rule": rule, "set": set_, "expect": expect, "column": column, **kw}


def stock(limited, count, auto, value=None) -> dict:
    return {"is_limited": limited, "max_attribution_count": count, "is_auto_generated": auto, "monetary_value": value}


# None is a bare NULL, "raw:..." is written unquoted as is, any other string is quoted.
RULES = [
    # file rules: the whole file is refused, naming the column on line 1
    M("missing mandatory column", {}, "InputError", "nqp_value", drop=["nqp_value"]),
    M("unrecognised column", {"points": "1"}, "InputError", "points"),
    M("custom columns stop at c31", {"c32": "x"}, "InputError", "c32"),
    M("c31 is a custom column", {"c31": "x"}, "accepted"),
    E("earnreward takes no custom column", {"c0": "x"}, "InputError", "c0"),
    E("earnreward needs attribution_id column", {}, "InputError", "attribution_id", drop=["attribution_id"]),
    B("burnreward needs card_code column", {}, "InputError", "card_code", drop=["card_code"]),
    B("burn_date column is optional", {}, "BURN_DATE_MISSING", "burn_date", drop=["burn_date"]),
    B("more objects than the limit", {}, "InputError", None, before=[{}, {}], max_objects=2),
    # masterreward
    M("a complete reward", {}, "accepted"),
    M("external_id empty string", {"external_id": ""}, "MANDATORY_EMPTY", "external_id"),
    M("external_id NULL", {"external_id": None}, "MANDATORY_EMPTY", "external_id"),
    M("external_id blanks", {"external_id": "   "}, "MANDATORY_EMPTY", "external_id"),
    M("name empty (;;)", {"name": "raw:"}, "MANDATORY_EMPTY", "name"),
    M("nqp_value NULL", {"nqp_value": None}, "MANDATORY_EMPTY", "nqp_value"),
    M("holding_days empty", {"holding_days": ""}, "MANDATORY_EMPTY", "holding_days"),
    M("validity_interval_count empty", {"validity_interval_count": ""}, "MANDATORY_EMPTY", "validity_interval_count"),
    M("validity_interval_type empty", {"validity_interval_type": None}, "MANDATORY_EMPTY", "validity_interval_type"),
    M("forced_validity empty", {"forced_validity": ""}, "MANDATORY_EMPTY", "forced_validity"),
    M("monetary empty means 0 (Example 1)", {"monetary": None}, "accepted"),
    M("external_id of 128 characters", {"external_id": "x" * 128}, "accepted"),
    M("external_id of 129 characters", {"external_id": "x" * 129}, "VALUE_TOO_LONG", "external_id"),
    M("name of 129 characters", {"name": "é" * 129}, "VALUE_TOO_LONG", "name"),
    M("monetary not 0/1", {"monetary": "2"}, "FLAG_INVALID", "monetary"),
    M("forced_validity not 0/1", {"forced_validity": "yes"}, "FLAG_INVALID", "forced_validity"),
    M("is_limited not 0/1", {"is_limited": "true"}, "FLAG_INVALID", "is_limited"),
    M("is_auto_generated not 0/1", {"is_auto_generated": " 1"}, "FLAG_INVALID", "is_auto_generated"),
    M("monetary_type not in the list", {"monetary_type": "amount"}, "MONETARY_TYPE_INVALID", "monetary_type"),
    M("monetary_value with a comma", {"monetary_value": "12,5"}, "MONETARY_VALUE_INVALID", "monetary_value"),
    M("monetary_value negative", {"monetary_value": "-1"}, "MONETARY_VALUE_INVALID", "monetary_value"),
    M("percentage above 100", {"monetary": "1", "monetary_type": "percentage", "monetary_value": "150"},
      "MONETARY_VALUE_INVALID", "monetary_value"),
    M("monetary 1 without type", {"monetary": "1", "monetary_value": "12.50"}, "MONETARY_INCOMPLETE", "monetary_type"),
    M("monetary 1 without value", {"monetary": "1", "monetary_type": "value"}, "MONETARY_INCOMPLETE",
      "monetary_value"),
    M("monetary 1 complete", {"monetary": "1", "monetary_type": "value", "monetary_value": "12.50"}, "accepted"),
    M("nqp_value 0", {"nqp_value": "0"}, "NQP_VALUE_INVALID", "nqp_value"),
    M("external_id a spreadsheet formula", {"external_id": "=cmd|' /C calc'!A0"}, "FORMULA_CELL", "external_id"),
    M("name a spreadsheet formula is text (written with a ')", {"name": "+SUM(1+1)"}, "accepted"),
    M("nqp_value decimal", {"nqp_value": "1.5"}, "NQP_VALUE_INVALID", "nqp_value"),
    M("holding_days 0 (Example 1)", {"holding_days": "0"}, "accepted"),
    M("holding_days negative", {"holding_days": "-1"}, "HOLDING_DAYS_INVALID", "holding_days"),
    M("holding_days words", {"holding_days": "two"}, "HOLDING_DAYS_INVALID", "holding_days"),
    M("validity_interval_count 0", {"validity_interval_count": "0"}, "VALIDITY_COUNT_INVALID",
      "validity_interval_count"),
    M("validity_interval_type singular (Example 1)", {"validity_interval_type": "week"}, "accepted"),
    M("validity_interval_type years", {"validity_interval_type": "years"}, "accepted"),
    M("validity_interval_type unknown", {"validity_interval_type": "fortnight"}, "VALIDITY_TYPE_INVALID",
      "validity_interval_type"),
    M("validity_interval_type capitalised", {"validity_interval_type": "Days"}, "VALIDITY_TYPE_INVALID",
      "validity_interval_type"),
    M("forced validity complete", {"forced_validity": "1", "forced_validity_start": "2018-01-01 00:00:00",
                                   "forced_validity_end": "2018-12-31 23:59:59"}, "accepted"),
    M("forced validity dates without time", {"forced_validity": "1", "forced_validity_start": "2018-01-01",
                                             "forced_validity_end": "2018-12-31"}, "accepted"),
    M("forced validity with hours and minutes only", {"forced_validity_start": "2018-01-01 10:00"},
      "DATE_INCOMPLETE", "forced_validity_start"),
    M("forced validity not a real date", {"forced_validity_end": "2018-13-01 00:00:00"}, "DATE_INVALID",
      "forced_validity_end"),
    M("forced validity without start", {"forced_validity": "1", "forced_validity_end": "2018-12-31 23:59:59"},
      "FORCED_VALIDITY_INCOMPLETE", "forced_validity_start"),
    M("forced validity without end", {"forced_validity": "1", "forced_validity_start": "2018-01-01 00:00:00"},
      "FORCED_VALIDITY_INCOMPLETE", "forced_validity_end"),
    M("forced validity ends before it starts", {"forced_validity_start": "2018-12-31 00:00:00",
                                                "forced_validity_end": "2018-01-01 00:00:00"},
      "VALIDITY_RANGE_INVALID", "forced_validity_end"),
    M("max_attribution_count words", {"max_attribution_count": "ten"}, "MAX_ATTRIBUTION_COUNT_INVALID",
      "max_attribution_count"),
    M("limited with a stock (masterlight)", stock("1", "100", None, "9"), "accepted"),
    M("limited with 0 (master_bad_stock)", stock("1", "0", None, "9"), "STOCK_LIMITED_NOT_POSITIVE",
      "max_attribution_count"),
    M("limited without count", stock("1", None, "0"), "STOCK_LIMITED_NOT_POSITIVE", "max_attribution_count"),
    M("limited auto-generated with a cap", stock("1", "5", "1"), "accepted"),
    M("unlimited auto-generated, count 0", stock("0", "0", "1"), "accepted"),
    M("unlimited auto-generated, no count", stock(None, None, "1"), "accepted"),
    M("unlimited auto-generated with a count", stock("0", "5", "1"), "AUTO_GENERATED_WITH_COUNT",
      "max_attribution_count"),
    M("plain stock", stock("0", "5", "0"), "accepted"),
    M("no stock at all (masteritem_bad_stock)", stock(None, None, None), "STOCK_MISSING", "max_attribution_count"),
    M("valued, 0, not generated (master_missing_auto_generation)", stock(None, "0", None, "9"),
      "AUTO_GENERATION_MISSING", "is_auto_generated"),
    M("item, 0, not generated (Masteritem_0_stock)", stock(None, "0", None), "ITEM_STOCK_ZERO",
      "max_attribution_count"),
    M("same external_id twice in a file is an update", {}, "accepted", before=[{"name": "first"}], action="update"),
    M("external_id already in the catalog is an update", {"external_id": "welcome"}, "accepted", existing=True,
      action="update"),
    # earnreward (catalog and earned attributions from the fixtures; cutover 2018-09-01 00:00 UTC)
    E("a complete attribution", {}, "accepted"),
    E("reward_id empty", {"reward_id": None}, "MANDATORY_EMPTY", "reward_id"),
    E("card_code empty", {"card_code": ""}, "MANDATORY_EMPTY", "card_code"),
    E("earn_date empty (no 'now' in a migration)", {"earn_date": None}, "MANDATORY_EMPTY", "earn_date"),
    E("validity_start_date empty", {"validity_start_date": ""}, "MANDATORY_EMPTY", "validity_start_date"),
    E("validity_end_date empty", {"validity_end_date": None}, "MANDATORY_EMPTY", "validity_end_date"),
    E("attribution_id empty for imported codes", {"attribution_id": None}, "MANDATORY_EMPTY", "attribution_id"),
    E("reward_id not in the catalog", {"reward_id": "1234"}, "REWARD_UNKNOWN", "reward_id"),
    E("legacy reward_id mapped to the catalog", {"reward_id": "1066"}, "accepted", reward_ids=LEGACY_IDS),
    E("card of no migrated member", {"card_code": "CC9999"}, "CARD_UNKNOWN", "card_code"),
    E("attribution_id given for auto-generated codes", {"reward_id": "birthday_voucher"},
      "ATTRIBUTION_ID_AUTO_GENERATED", "attribution_id"),
    E("attribution_id empty for auto-generated codes", {"reward_id": "birthday_voucher", "attribution_id": ""},
      "accepted"),
    E("attribution_id of 129 characters", {"attribution_id": "a" * 129}, "VALUE_TOO_LONG", "attribution_id"),
    E("attribution_id earned in an earlier file", {"attribution_id": "EG2563"}, "ATTRIBUTION_ID_DUPLICATE",
      "attribution_id"),
    E("attribution_id twice in the file", {}, "ATTRIBUTION_ID_DUPLICATE", "attribution_id", before=[{}]),
    E("quantity empty means 1", {"quantity": None}, "accepted"),
    E("quantity 0", {"quantity": "0"}, "QUANTITY_INVALID", "quantity"),
    E("attribution_id a spreadsheet formula (the coupon code)", {"attribution_id": "@SUM(A1)"}, "FORMULA_CELL",
      "attribution_id"),
    E("quantity decimal", {"quantity": "1.0"}, "QUANTITY_INVALID", "quantity"),
    E("earn_date without time", {"earn_date": "2018-08-10"}, "DATE_INCOMPLETE", "earn_date"),
    E("earn_date without seconds", {"earn_date": "2018-08-10 10:00"}, "DATE_INCOMPLETE", "earn_date"),
    E("earn_date day first", {"earn_date": "10/08/2018 10:00:00"}, "DATE_INVALID", "earn_date"),
    E("validity_end_date not real", {"validity_end_date": "2018-02-30 00:00:00"}, "DATE_INVALID", "validity_end_date"),
    E("burn_date incomplete", {"burn_date": "2018-08-20"}, "DATE_INCOMPLETE", "burn_date"),
    E("validity ends before it starts", {"validity_end_date": "2018-08-10 09:59:59"}, "VALIDITY_RANGE_INVALID",
      "validity_end_date"),
    E("earned after the cutover", {"earn_date": "2018-09-01 01:00:01",
                                                "validity_start_date": "2018-09-02 00:00:00"},
      "EARN_DATE_AFTER_CUTOVER", "earn_date"),
    E("earned at the cutover", {"earn_date": "2018-09-01 01:00:00"}, "accepted"),
    E("earned long before the import day (history, rewritten on export)", {"earn_date": "2018-08-10 10:00:00"},
      "accepted"),
    E("earned and burned before the cutover", {"burn_date": "2018-08-20 10:00:00"}, "accepted"),
    E("burned after the cutover", {"burn_date": "2018-09-05 10:00:00"}, "BURN_DATE_FUTURE", "burn_date"),
    E("burned before it was earned", {"burn_date": "2018-08-10 09:59:59"}, "BURN_BEFORE_EARN", "burn_date"),
    E("stock used up (corgi_bowl: 50, BB-0001 holds 1)", {"reward_id": "corgi_bowl", "quantity": "50"},
      "STOCK_EXHAUSTED", "quantity"),
    E("stock just enough", {"reward_id": "corgi_bowl", "quantity": "49"}, "accepted"),
    # burnreward (attributions: EG2563 CC0001, DE-0009-3981 CC0003 burned 2018-08-05, BB-0001 CC0004)
    B("a valid burn", {}, "accepted"),
    B("attribution_id NULL", {"attribution_id": None}, "MANDATORY_EMPTY", "attribution_id"),
    B("attribution_id empty string", {"attribution_id": ""}, "MANDATORY_EMPTY", "attribution_id"),
    B('attribution_id "NULL" quoted is text', {"attribution_id": "NULL"}, "ATTRIBUTION_UNKNOWN", "attribution_id"),
    B("card_code empty", {"card_code": None}, "MANDATORY_EMPTY", "card_code"),
    B("card of no migrated member", {"card_code": "invalidcardcode"}, "CARD_UNKNOWN", "card_code"),
    B("attribution never earned", {"attribution_id": "invalidattrid"}, "ATTRIBUTION_UNKNOWN", "attribution_id"),
    B("burn_date NULL", {"burn_date": None}, "BURN_DATE_MISSING", "burn_date"),
    B("burn_date without time", {"burn_date": "2018-08-09"}, "DATE_INCOMPLETE", "burn_date"),
    B("burn_date not real", {"burn_date": "2018-08-32 10:00:00"}, "DATE_INVALID", "burn_date"),
    B("burned after the cutover", {"burn_date": "2018-09-01 01:00:01"}, "BURN_DATE_FUTURE", "burn_date"),
    B("burned at the cutover", {"burn_date": "2018-09-01 01:00:00"}, "accepted"),
    B("burned in earnreward already", {"card_code": "CC0003", "attribution_id": "DE-0009-3981"}, "ALREADY_BURNED",
      "attribution_id"),
    B("burned twice in the file", {}, "ALREADY_BURNED", "attribution_id", before=[{}]),
    B("attribution of another card", {"card_code": "CC0004"}, "ATTRIBUTION_CARD_MISMATCH", "card_code"),
    B("burned before it was earned", {"burn_date": "2018-08-01 08:59:59"}, "BURN_BEFORE_EARN", "burn_date"),
    B("attribution_id a spreadsheet formula", {"attribution_id": "=cmd|' /C calc'!A0"}, "FORMULA_CELL",
      "attribution_id"),
    B("attribution_id with a NUL byte", {"attribution_id": "EG\x002563"}, "CONTROL_CHARACTER", "attribution_id"),
]


def render(value: str | None) -> str:
    if value is None:
        return "NULL"
    if value.startswith("raw:"):
        return value[4:]
    return '"' + value.replace('"', '""') + '"'


def run_rule(case: dict, tmp_path: Path, context) -> tuple[str, object]:
    """Write the case's file (earlier rows, then the row under test), run its scope, return its outcome."""
    catalog, attributions = context
    base = {k: v for k, v in BASES[case["scope"]].items() if k not in case.get("drop", ())}
    header = list(dict.fromkeys([*base, *case["set"]]))
    rows = [{**base, **r} for r in case.get("before", [])] + [{**base, **case["set"]}]
    text = ";".join(header) + "\n" + "".join(";".join(render(r[c]) for c in header) + "\n" for r in rows)
    path = tmp_path / f"rules_{case['scope']}_main_20180815.csv"
    path.write_text(text, encoding="utf-8")
    line = len(rows) + 1
    try:
        f = read_scope_file(path, max_objects=case.get("max_objects", MAX_OBJECTS))
    except InputError as exc:
        assert exc.line == 1 or case.get("max_objects")
        return "InputError", exc.column
    if case["scope"] == "masterreward":
        res = validate_catalog([f], existing=catalog if case.get("existing") else ())
        accepted, rejects = res.accepted, res.rejects
        if case.get("action"):
            assert res.accepted.set_index("line").loc[line, "action"] == case["action"]
    elif case["scope"] == "earnreward":
        accepted, rejects = validate_earned(f, catalog, CARDS, cutover=CUTOVER, previous=attributions,
                                            reward_ids=case.get("reward_ids"))
    else:
        accepted, rejects = validate_burned(f, attributions, cutover=CUTOVER, card_to_member=CARDS)
    assert len(accepted) + len(rejects) == len(rows)
    mine = rejects[rejects["line"] == line]
    if mine.empty:
        assert line in set(accepted["line"])
        return "accepted", None
    return mine["reason_code"].iloc[0], mine["column"].iloc[0]


@pytest.mark.parametrize("case", RULES, ids=[f"{c['scope'][:-6]}: {c['rule']}" for c in RULES])
def test_rule(case: dict, tmp_path: Path, context) -> None:
    assert run_rule(case, tmp_path, context) == (case["expect"], case["column"])


def test_every_reason_code_is_in_the_docstring_table_and_the_rules_table() -> None:
    table = set(re.findall(r"^\| ([A-Z_]+) \|", rewards.__doc__, flags=re.MULTILINE))
    assert table == set(reward_rules.REASON_CODES)
    assert len(reward_rules.REASON_CODES) == len(set(reward_rules.REASON_CODES))
    exercised = {c["expect"] for c in RULES}
    assert set(reward_rules.REASON_CODES) <= exercised


def test_a_non_master_file_is_not_a_catalog() -> None:
    with pytest.raises(InputError, match="burnreward file given as master rewards"):
        validate_catalog([read_scope_file(EXAMPLE_3)])


def test_cutover_needs_an_offset(context) -> None:
    catalog, att = context
    with pytest.raises(ValueError, match="UTC offset"):
        validate_burned(read_scope_file(EXAMPLE_3), att, cutover=datetime(2018, 9, 1))
