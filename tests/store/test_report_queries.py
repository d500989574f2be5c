"""Stage 05's counts and sums in SQLite (``store.report_queries``) on small hand-made tables: each
answers as the frame code it replaced (missing values read as "", ids compared as text), sums
exactly, refuses amounts it cannot sum exactly, and takes absent tables as empty."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.shared.liability import expiry_calendar, months
from loyalty_toolkit.stages.report import step as s05_report
from loyalty_toolkit.store import StagingStore, report_queries


@pytest.fixture
def store(tmp_path: Path):
    s = StagingStore(tmp_path / "staging.db")
    yield s
    s.close()


def _put(store: StagingStore, **tables: pd.DataFrame) -> None:
    store.commit_stage("hand_made", tables, inputs_fingerprint="", parameters_fingerprint="")


LOTS = pd.DataFrame({
    "user_id": ["G1", "G1", "G2", None, "G3", "G4", "G4"],
    "status": ["open", "pending", "open", "open", "expired", "open", "open"],
    "remaining_units": [1_500_000, 250_000, 3_000_000, 700_000, 9_000_000, 0, 400_000],
    "source": [None, None, "opening", None, None, None, "opening"],
    "expires_at_utc": ["2026-10-31T23:30:00+00:00", "", "2026-10-24T22:30:00.5+00:00", None,
                       "2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00", "2027-02-28T23:00:00+00:00"],
})


def test_an_absent_table_counts_as_empty(store):
    assert report_queries.row_count(store, "lots") == 0
    assert report_queries.exact_sum(store, "transfer_per_member", "rejected") == 0
    assert report_queries.count_in(store, "member_map", "legacy_id", "members", "legacy_id") == 0
    assert report_queries.transfer_figures(store) == {"count": 0, "points": 0, "residue_units": 0,
                                                      "members_with_points": 0, "in_member_map": 0}
    assert report_queries.lot_figures(store, "expires_at_utc")["unmapped_live_units"] == 0
    assert report_queries.owed_per_member(store).shape == (0,)
    assert report_queries.live_lots_by_range(store, "expires_at_utc", [], [], "never") == []


def test_amounts_stored_as_text_sum_exactly(store):
    # 1,000 x 0.1 is 100 exactly; summed as floats it is 99.9999999999986
    rejected = ["0.1"] * 1000 + ["0", "", None, "12.000001", "-2.5"]
    _put(store, transfer_per_member=pd.DataFrame({"rejected": rejected}))
    got = report_queries.exact_sum(store, "transfer_per_member", "rejected")
    assert got == Decimal("109.500001") and sum(float(v) for v in rejected if v) != 109.500001


def test_text_that_is_not_an_amount_is_refused(store):
    _put(store, transfer_per_member=pd.DataFrame({"rejected": ["1", "one"]}))
    with pytest.raises(ValueError, match="'one'"):
        report_queries.exact_sum(store, "transfer_per_member", "rejected")


def test_micro_points_that_are_not_integers_are_refused(store):
    _put(store, lots=LOTS.assign(remaining_units=LOTS["remaining_units"].astype(float) + 0.5))
    with pytest.raises(LoyaltyError, match="'lots', column 'remaining_units'"):
        report_queries.lot_figures(store, "expires_at_utc")


def test_ids_are_compared_as_text_with_missing_as_empty(store):
    # members' ids stored as text, member_map's written as integers in one row and missing in another
    _put(store, members=pd.DataFrame({"legacy_id": ["1", "2", "", "G4"]}),
         member_map=pd.DataFrame({"legacy_id": ["1", None, "G9"], "target_id": ["T1", "T0", "T9"]}),
         unit_transfers=pd.DataFrame({"legacy_id": ["1", "1", "", "G9", "G9"],
                                      "target_id": ["T1", "T2", "T0", "T9", None],
                                      "type": ["adding", "spending", "adding", "adding", "adding"],
                                      "points": [5, 2, 1, 0, 3],
                                      "residue_units": pd.array([10, 20, 0, 5, None], dtype="Int64")}),
         unit_transfers_zero=pd.DataFrame({"type": ["spending", None], "residue_units": [7, 1]}))
    # "1" is a member; the missing id reads "" like the member whose id is ""; G9 is not a member
    assert report_queries.count_in(store, "member_map", "legacy_id", "members", "legacy_id") == 2
    got = report_queries.transfer_figures(store)
    assert got == {"count": 5, "points": 5 - 2 + 1 + 0 + 3, "residue_units": 10 - 20 + 0 + 5 - 7 + 1,
                   # adding with at least one point: "1", "" and "G9"
                   "members_with_points": 3,
                   # (1, T1), ("", T0) and (G9, T9) are pairs of member_map; (1, T2) and (G9, "") are not
                   "in_member_map": 3}


def test_lot_figures_and_what_members_are_owed(store):
    _put(store, lots=LOTS, member_map=pd.DataFrame({"legacy_id": ["G1"], "target_id": ["T1"]}),
         lot_balances=pd.DataFrame({"user_id": ["G1", "G2", "G3"], "balance_units": [1_750_000, 0, -100],
                                    "deficit_units": [0, 0, 100]}))
    got = report_queries.lot_figures(store, "expires_at_utc")
    # live and not mapped: G2 3.0, the lot without a member 0.7, G4 0 + 0.4; G3's deficit 0.0001
    assert got == {"expired_units": 9_000_000, "unmapped_live_units": 4_100_000, "unmapped_deficit_units": 100,
                   "first_expiry": "2026-10-24T22:30:00.5+00:00", "last_expiry": "2027-02-28T23:00:00+00:00",
                   "expiry_other_layout": 0}
    # balance + opening lots per member: G1 1.75, G2 0 + 3.0, G3 -0.0001, G4 0.4 (opening only)
    assert sorted(report_queries.owed_per_member(store).tolist()) == [-100, 400_000, 1_750_000, 3_000_000]


def test_the_expiry_calendar_from_sqlite_is_the_one_from_the_frame(store):
    _put(store, lots=LOTS)
    for tz in ("Europe/Paris", "UTC", "Asia/Ho_Chi_Minh"):
        got = s05_report.table_sums(store, tz).expiry_months
        pd.testing.assert_frame_equal(months([got]), expiry_calendar(LOTS.fillna({"expires_at_utc": ""}), tz))
    assert months([got])["month"].tolist()[-1] == "never"


def test_an_expiry_not_in_stage_03_s_layout_takes_the_slower_path_with_the_same_months(store):
    lots = LOTS.copy()
    lots.loc[0, "expires_at_utc"] = "2026-11-01T00:30:00+01:00"  # the same instant with an offset
    _put(store, lots=lots)
    # an offset other than +00:00: text order is not time order for such values
    assert report_queries.lot_figures(store, "expires_at_utc")["expiry_other_layout"] == 1
    got = months([s05_report.table_sums(store, "Europe/Paris").expiry_months])
    pd.testing.assert_frame_equal(got, expiry_calendar(LOTS.fillna({"expires_at_utc": ""}), "Europe/Paris"))
    # G4's lot of 2027-01 has no points left; never: G1's pending lot and the lot without a member
    assert got["month"].tolist() == ["2026-10", "2026-11", "2027-03", "never"]
    assert np.array_equal(got["members"], [1, 1, 1, 2])
