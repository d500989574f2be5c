"""The check tables of stage 03's gate: lots and transfers as one row per rule that add up across
member slices (``transfers_checks.lots_check``, ``transfers_check``, ``combine_checks``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.model import expectations_dir
from loyalty_toolkit.stages.transfers.checks import (
    CHECK_COLUMNS,
    LOT_CHECKS,
    TRANSFER_CHECKS,
    combine_checks,
    lots_check,
    transfers_check,
)


def _lots(n: int, seed: int) -> pd.DataFrame:
    """n lots of 3 members per slice, a few breaking each rule (ids repeat, lots go negative ...)."""
    rng = np.random.default_rng(seed)
    accrued = rng.integers(1, 50, n) * 1_000_000
    consumed = np.minimum(rng.integers(0, 60, n) * 1_000_000, accrued)
    remaining = accrued - consumed
    remaining[rng.random(n) < 0.05] -= 3_000_000  # below zero and off
    consumed[rng.random(n) < 0.05] += 1  # a micro-point leaks
    ids = np.asarray([f"gp-{seed}-{i}" for i in range(n)], dtype=object)
    ids[rng.random(n) < 0.05] = f"gp-{seed}-0"
    status = rng.choice(np.asarray(["open", "pending", "expired", "closed", ""], dtype=object), n,
                        p=[0.5, 0.2, 0.2, 0.05, 0.05])
    return pd.DataFrame({"lot_id": ids, "user_id": [f"G{seed}-{i % 3}" for i in range(n)], "status": status,
                         "accrued_units": accrued, "consumed_units": consumed, "remaining_units": remaining})


def _lots_oracle(lots: pd.DataFrame) -> dict[str, int]:
    """The lot rules one lot at a time, as the per-row GX suite counted them."""
    ids = lots["lot_id"].tolist()
    seen = {i: ids.count(i) for i in set(ids)}
    return {
        "lot_id_unique": sum(seen[i] > 1 for i in ids),
        "lot_not_below_zero": sum(r < 0 for r in lots["remaining_units"]),
        "lot_accrued_is_consumed_plus_remaining": sum(
            a != c + r for a, c, r in zip(lots["accrued_units"], lots["consumed_units"], lots["remaining_units"])),
        "lot_status_known": sum(s not in ("open", "pending", "expired") for s in lots["status"]),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lots_check_counts_what_a_row_by_row_reading_counts(seed):
    lots = _lots(400, seed)
    check = lots_check(lots)
    assert list(check.columns) == list(CHECK_COLUMNS) and tuple(check["check"]) == LOT_CHECKS
    assert (check["rows"] == 400).all()
    assert dict(zip(check["check"], check["failing"])) == _lots_oracle(lots)
    assert (check["failing"] > 0).all()  # every rule is exercised, so the comparison means something
    ids = check.set_index("check")["examples"]
    below = lots.loc[lots["remaining_units"] < 0, "lot_id"]
    assert ids["lot_not_below_zero"].split(", ") == list(dict.fromkeys(below))[:5]


def test_checks_of_member_slices_add_up_to_the_check_of_the_whole():
    lots = pd.concat([_lots(300, s) for s in (4, 5, 6)], ignore_index=True)
    # slices by member, as stage 03 cuts them: a member's lots are all in one slice
    members = sorted(set(lots["user_id"]))
    parts = [lots[lots["user_id"].isin(members[i::4])] for i in range(4)]
    combined = combine_checks([lots_check(p) for p in parts])
    whole = lots_check(lots)
    pd.testing.assert_frame_equal(combined[["check", "rows", "failing"]], whole[["check", "rows", "failing"]])
    for got in combined["examples"]:
        assert 1 <= len(got.split(", ")) <= 5
    first = lots_check(parts[0]).set_index("check")["examples"]
    for check, examples in combined.set_index("check")["examples"].items():
        assert examples.startswith(first[check])  # the first slice's examples come first


def test_combine_keeps_five_distinct_examples_and_an_empty_list_adds_nothing():
    a = pd.DataFrame([{"check": "r", "rows": 3, "failing": 3, "examples": "x, y, z"}])
    b = pd.DataFrame([{"check": "r", "rows": 4, "failing": 4, "examples": "y, u, v, w"}])
    c = pd.DataFrame([{"check": "r", "rows": 2, "failing": 0, "examples": ""}])
    out = combine_checks([a, c, b])
    assert out.to_dict("records") == [{"check": "r", "rows": 9, "failing": 7, "examples": "x, y, z, u, v"}]


def _transfers(**changes) -> pd.DataFrame:
    rows = pd.DataFrame({"transfer_id": ["t-1", "t-2", "t-3", "t-4"], "target_id": ["m1", "m1", "m2", "m3"],
                         "wallet_type_code": ["default"] * 4, "type": ["adding", "adding", "spending", "adding"],
                         "points": np.asarray([10, 11, 4, 25], dtype=np.int64)})
    for column, (i, value) in changes.items():
        values = rows[column].astype(object).to_list()
        values[i] = value
        rows[column] = pd.Series(values, dtype=float if isinstance(value, float) else object)
    return rows


@pytest.mark.parametrize("changes, check, examples", [
    ({}, None, ""),
    ({"transfer_id": (2, "t-1")}, "transfer_id_unique", "t-1"),
    ({"transfer_id": (1, None)}, "transfer_id_present", "#1"),
    ({"transfer_id": (1, "")}, "transfer_id_present", "#1"),
    ({"points": (3, 0)}, "transfer_points_at_least_one", "t-4"),
    ({"points": (1, 10.5)}, "transfer_points_whole", "t-2, t-1, t-3, t-4"),  # a float column: all, fractions first
    ({"type": (0, "refund")}, "transfer_type_known", "t-1"),
    ({"type": (0, None)}, "transfer_type_known", "t-1"),
    ({"target_id": (2, "")}, "transfer_target_id_present", "t-3"),
    ({"wallet_type_code": (3, None)}, "transfer_wallet_type_code_present", "t-4"),
])
def test_each_transfer_rule_fails_alone_and_names_the_transfer(changes, check, examples):
    out = transfers_check(_transfers(**changes)).set_index("check")
    assert tuple(out.index) == TRANSFER_CHECKS and (out["rows"] == 4).all()
    failing = out[out["failing"] > 0]
    assert list(failing.index) == ([check] if check else [])
    if check:
        assert failing.loc[check, "examples"] == examples


def test_points_in_an_object_column_are_whole_only_when_each_is_an_int():
    t = _transfers()
    t["points"] = pd.Series([10, 11.0, np.int64(4), None], dtype=object)
    out = transfers_check(t).set_index("check")
    assert out.loc["transfer_points_whole", "failing"] == 2
    assert out.loc["transfer_points_at_least_one", "failing"] == 1  # the missing one


def test_the_suites_name_exactly_the_rules_the_check_tables_hold():
    for table, rules in (("lots", LOT_CHECKS), ("transfers", TRANSFER_CHECKS)):
        suite = json.loads((expectations_dir() / f"transfers.{table}.json").read_text(encoding="utf-8"))
        exps = suite["expectations"]
        assert exps[0]["kwargs"]["value_set"] == list(rules)
        assert [e["kwargs"]["row_condition"]["parameter"] for e in exps[1:]] == list(rules)
        assert all(e["severity"] == "critical" and e["meta"]["description"] for e in exps)


def test_repeats_are_exact_when_hashes_collide_and_across_hash_chunks(monkeypatch):
    from loyalty_toolkit.stages.transfers import checks as transfers_checks

    lots = _lots(400, 7)
    expected = _lots_oracle(lots)["lot_id_unique"]
    monkeypatch.setattr(transfers_checks, "_HASH_CHUNK", 64)  # 400 ids: 7 chunks
    assert lots_check(lots).set_index("check").loc["lot_id_unique", "failing"] == expected
    # every id hashing alike: the text comparison alone decides, so a collision is not a repeat
    monkeypatch.setattr(transfers_checks.pd.util, "hash_array", lambda v, categorize=False: np.zeros(len(v), np.uint64))
    assert lots_check(lots).set_index("check").loc["lot_id_unique", "failing"] == expected
    assert lots_check(lots.drop_duplicates("lot_id")).set_index("check").loc["lot_id_unique", "failing"] == 0
