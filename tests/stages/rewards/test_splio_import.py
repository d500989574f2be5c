"""Stage 04, step two (``stages/rewards/splio_import.py``): every rule of what goes to Splio, as rows of one table.

The catalog is the fixture ``demo_masterreward_main_20180701.csv``; the earned and burned rows below
cover each state at the cutover (2018-09-01 00:00 UTC, 01:00 in Splio's GMT+1).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.stages.rewards.splio_import import (
    FATES, IMPORT_CHECKS, PLAN_COLUMNS, earn_instant, import_checks, plan_import,
)
from loyalty_toolkit.stages.rewards.rules import SPLIO_TZ
from loyalty_toolkit.stages.rewards.validation import validate_all

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "splio"
CUTOVER = datetime(2018, 9, 1, tzinfo=timezone.utc)
CARDS = {"CC0001": "M1", "CC0002": "M2", "CC0003": "M3", "CC0004": "M4"}
IDS = {"welcome": "4711", "chocolate_bone": "4712", "corgi_bowl": "4713", "birthday_voucher": "4714"}
EARN = """reward_id;card_code;attribution_id;quantity;earn_date;context;validity_start_date;validity_end_date;burn_date;store_id
"welcome";"CC0001";"A-ACTIVE";"1";"2018-08-01 09:00:00";"web";"2018-08-01 09:00:00";"2018-12-31 23:59:59";NULL;"s1"
"chocolate_bone";"CC0003";"A-BURNED-IN-EARN";"1";"2018-08-01 10:30:00";"";"2018-08-01 00:00:00";"2018-12-31 23:59:59";"2018-08-05 16:20:00";"s2"
"corgi_bowl";"CC0004";"A-BURNED-BY-FILE";"1";"2018-08-01 11:15:00";"";"2018-08-01 00:00:00";"2018-12-31 23:59:59";NULL;NULL
"welcome";"CC0002";"A-EXPIRED";"1";"2018-06-01 09:00:00";"";"2018-06-01 09:00:00";"2018-08-20 23:59:59";NULL;NULL
"birthday_voucher";"CC0002";"";;"2018-08-01 00:05:00";"";"2018-08-01 00:05:00";"2018-12-31 23:59:59";NULL;NULL
"birthday_voucher";"CC0001";"";;"2018-08-01 00:05:00";"";"2018-08-01 00:05:00";"2018-12-31 23:59:59";"2018-08-10 10:00:00";NULL
"""
BURN = """card_code;context;burn_date;attribution_id
CC0004;used in store;2018-08-09 08:12:10;A-BURNED-BY-FILE
"""
# the earnreward line of each attribution (auto-generated codes have no id)
LINE = {"A-ACTIVE": 2, "A-BURNED-IN-EARN": 3, "A-BURNED-BY-FILE": 4, "A-EXPIRED": 5, "VOUCHER-ACTIVE": 6,
        "VOUCHER-BURNED": 7}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    d = tmp_path_factory.mktemp("splio")
    (d / "demo_earnreward_main_20180801.csv").write_text(EARN, encoding="utf-8")
    (d / "demo_burnreward_main_20180901.csv").write_text(BURN, encoding="utf-8")
    files = [FIXTURES / "demo_masterreward_main_20180701.csv", *sorted(d.glob("*.csv"))]
    res = validate_all(files, CARDS, cutover=CUTOVER)
    assert res.rejects.empty, res.rejects
    return res


def plan(result, *, ids=IDS, import_day=date(2018, 9, 1), historical=False, earn_header=None):
    header = set(EARN.splitlines()[0].split(";")) if earn_header is None else earn_header
    return plan_import(result, ids=ids, import_day=import_day, cutover=CUTOVER, tz=SPLIO_TZ, historical=historical,
                       earn_header=header, burn_header={"card_code", "context", "burn_date", "attribution_id"})


def row_of(frame: pd.DataFrame, att: str) -> pd.Series | None:
    hit = frame[frame["line"] == LINE[att]] if "line" in frame else frame[frame["attribution_id"] == att]
    return None if hit.empty else hit.iloc[0]


def R(rule: str, att: str, expect: dict, **setup) -> dict:
    return {"rule": rule, "att": att, "expect": expect, "setup": setup}


# Each rule of docs/rewards.md "Two steps" as (rule, attribution, what its earn row becomes).
# expect: plan columns (fate, written, internal_id, earn_date), "upload"/"history" (in the
# earnreward upload / history rows), "context", "validity_end_date", "burn_upload", "history_burn".
RULES = [
    R("active, master reward in the export: earned under its internal id", "A-ACTIVE",
      {"fate": "earned", "written": "earnreward", "internal_id": "4711", "upload": True, "history": False}),
    R("earned on the first second of the import day after the cutover", "A-ACTIVE",
      {"earn_date": "2018-09-01 01:00:01"}),
    R("an import day after the cutover's day: its first second", "A-ACTIVE",
      {"earn_date": "2018-09-03 00:00:00"}, import_day=date(2018, 9, 3)),
    R("the legacy earn date goes to context, after the legacy context", "A-ACTIVE",
      {"context": "web; legacy earn_date 2018-08-01 09:00:00"}),
    R("validity is kept", "A-ACTIVE", {"validity_end_date": "2018-12-31 23:59:59", "store_id": "s1"}),
    R("auto-generated codes: earned without an attribution_id", "VOUCHER-ACTIVE",
      {"fate": "earned", "internal_id": "4714", "upload": True, "context": "legacy earn_date 2018-08-01 00:05:00"}),
    R("no master reward export yet: waiting, nothing written", "A-ACTIVE",
      {"fate": "waiting", "written": "", "internal_id": "", "upload": False}, ids=None),
    R("master reward missing from the export: unresolved, listed", "A-ACTIVE",
      {"fate": "unresolved", "written": "", "upload": False}, ids={k: v for k, v in IDS.items() if k != "welcome"}),
    R("burned by an earnreward burn_date: history, not earned again", "A-BURNED-IN-EARN",
      {"fate": "history", "written": "", "upload": False, "history": False}),
    R("burned by a burnreward row: history, and its burn is not uploaded", "A-BURNED-BY-FILE",
      {"fate": "history", "upload": False, "burn_upload": False}),
    R("expired: history", "A-EXPIRED", {"fate": "history", "upload": False}),
    R("history export: a burned reward with its legacy earn date", "A-BURNED-BY-FILE",
      {"written": "history", "history": True, "history_earn_date": "2018-08-01 11:15:00", "history_burn": True},
      historical=True),
    R("history export: an earnreward burn_date becomes a burnreward row", "A-BURNED-IN-EARN",
      {"written": "history", "history": True, "history_burn": True}, historical=True),
    R("history export: an expired reward, no burn", "A-EXPIRED",
      {"written": "history", "history": True, "history_burn": False}, historical=True),
    R("history export: a code Splio generated cannot be burned by file, so it is left out", "VOUCHER-BURNED",
      {"fate": "history", "written": "", "history": False}, historical=True),
    R("history export needs the internal ids: without an export nothing is written", "A-EXPIRED",
      {"fate": "history", "written": "", "history": False}, historical=True, ids=None),
    R("active rewards are never in the history export", "A-ACTIVE",
      {"fate": "earned", "upload": True, "history": False}, historical=True),
]


@pytest.mark.parametrize("case", RULES, ids=[c["rule"] for c in RULES])
def test_rule(case, result):
    imp = plan(result, **case["setup"])
    p = imp.plan[imp.plan["kind"] == "earn"]
    row = row_of(p, case["att"])
    assert row is not None
    up = row_of(imp.earn_upload, case["att"])
    hist = row_of(imp.history_earn, case["att"])
    for key, want in case["expect"].items():
        if key == "upload":
            assert (up is not None) is want
        elif key == "history":
            assert (hist is not None) is want
        elif key == "history_earn_date":
            assert hist["earn_date"] == want
        elif key == "burn_upload":
            assert bool((imp.burn_upload["attribution_id"] == case["att"]).any()) is want
        elif key == "history_burn":
            assert bool((imp.history_burn["attribution_id"] == case["att"]).any()) is want
        elif key in PLAN_COLUMNS:
            assert row[key] == want, key
        else:
            assert up[key] == want, key


def test_every_row_has_one_fate_and_the_counts_add_up(result):
    imp = plan(result, historical=True)
    p = imp.plan
    assert set(p["fate"]) <= set(FATES)
    assert len(p) == len(result.attributions) + len(result.burns)
    c = imp.counts()
    states = result.attribution_state["state"].value_counts()
    assert c["earn_earned"] + c["earn_waiting"] + c["earn_unresolved"] == states["active"] == 2
    assert c["earn_history"] == states["burned"] + states["expired"] == 4
    assert c["history_unwritable"] == 1 and c["history_earn_rows_written"] == 3
    assert c["step"] == "two" and c["import_date"] == "2018-09-01"
    waiting = plan(result, ids=None).counts()
    assert (waiting["step"], waiting["earn_waiting"], waiting["earn_rows_written"]) == ("one", 2, 0)


def test_earnreward_columns_never_hold_burn_date(result):
    imp = plan(result)
    assert "burn_date" not in imp.earn_columns and "context" in imp.earn_columns
    assert imp.earn_columns[:3] == ["reward_id", "card_code", "attribution_id"]


def test_resolution_lists_every_reward_to_migrate(result):
    res = plan(result, ids={k: v for k, v in IDS.items() if k != "welcome"}).resolution.set_index("external_id")
    assert res.loc["welcome", "status"] == "not_in_export" and res.loc["welcome", "active"] == 1
    assert res.loc["birthday_voucher", "status"] == "resolved"
    assert res.loc["corgi_bowl", "status"] == "nothing_to_migrate"
    assert set(plan(result, ids=None).resolution["status"]) == {"waiting", "nothing_to_migrate"}


@pytest.mark.parametrize("import_day, cutover, want", [
    (date(2026, 7, 1), datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc), "2026-07-01 01:00:00"),
    (date(2026, 7, 2), datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc), "2026-07-02 00:00:00"),
    (date(2026, 7, 1), datetime(2026, 6, 30, 23, 59, 59, 500000, tzinfo=timezone.utc), "2026-07-01 01:00:00"),
])
def test_earn_instant_is_on_the_import_day_and_after_the_cutover(import_day, cutover, want):
    at = earn_instant(import_day, cutover, SPLIO_TZ)
    assert at.astimezone(SPLIO_TZ).strftime("%Y-%m-%d %H:%M:%S") == want and at > cutover


def test_checks_catch_each_broken_rule(result):
    imp = plan(result)
    up = imp.earn_upload
    good = import_checks(imp, result.attribution_state, {"splio/e.csv": list(imp.earn_columns)}, up, up[:0])
    assert list(good["check"]) == list(IMPORT_CHECKS) and good["failing"].sum() == 0
    bad_rows = up.assign(reward_id=up["reward_external_id"], earn_date="2018-08-31 23:00:00")
    history = result.attributions[result.attributions["attribution_id"] == "A-EXPIRED"]
    bad_rows = pd.concat([bad_rows, history], ignore_index=True)
    burns = result.burns  # a burn of a reward that is history
    lost = imp.plan[~((imp.plan["kind"] == "earn") & (imp.plan["line"] == LINE["A-ACTIVE"]))]
    imp.plan = lost
    bad = import_checks(imp, result.attribution_state, {"splio/e.csv": [*imp.earn_columns, "burn_date"]},
                        bad_rows, burns).set_index("check")
    assert bad.loc["earn_reward_id_is_internal", "failing"] == 3
    assert "welcome" in bad.loc["earn_reward_id_is_internal", "examples"]
    assert bad.loc["earn_date_on_or_after_import_day", "failing"] == 3
    assert bad.loc["earnreward_has_no_burn_date", "examples"] == "splio/e.csv"
    assert bad.loc["active_earned_or_listed", "examples"] == "A-ACTIVE"
    assert bad.loc["burn_only_for_earned", "examples"] == "A-BURNED-BY-FILE"
    assert bad.loc["history_not_earned", "examples"] == "A-EXPIRED"


def test_a_catalog_without_earned_rewards_plans_nothing_and_needs_no_export(tmp_path):
    res = validate_all([FIXTURES / "demo_masterreward_main_20180701.csv"], CARDS, cutover=CUTOVER)
    imp = plan_import(res, ids=None, import_day=None, cutover=CUTOVER, tz=SPLIO_TZ, historical=True,
                      earn_header=set(), burn_header=set())
    assert imp.plan.empty and imp.earn_upload.empty and imp.history_burn.empty
    assert set(imp.resolution["status"]) == {"nothing_to_migrate"}
    checks = import_checks(imp, res.attribution_state, {}, imp.earn_upload, imp.burn_upload)
    assert checks["failing"].sum() == 0 and checks["rows"].sum() == 0


def test_the_rehearsal_of_an_empty_catalog_exports_no_reward(tmp_path):
    from loyalty_toolkit.config import REWARD_EXPORT_COLUMNS
    from loyalty_toolkit.sources.splio_export import read_master_export
    from loyalty_toolkit.stages.rewards.rehearsal import rehearse_master_import

    path = rehearse_master_import(tmp_path, [], seed=0)
    assert read_master_export(path, columns=REWARD_EXPORT_COLUMNS, catalog=()).empty
    again = rehearse_master_import(tmp_path / "b", [FIXTURES / "demo_masterreward_main_20180701.csv"], seed=0)
    first = rehearse_master_import(tmp_path / "c", [FIXTURES / "demo_masterreward_main_20180701.csv"], seed=0)
    assert again.read_bytes() == first.read_bytes()  # a rehearsal replays byte for byte
    ids = read_master_export(again, columns=REWARD_EXPORT_COLUMNS, catalog=IDS)
    assert list(ids["external_id"]) == list(IDS)
