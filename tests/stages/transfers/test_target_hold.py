"""What oss-3 cannot hold: per month, the points whose expiry or unlock the target moves, and what
the target shows beside what the legacy program owes."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from loyalty_toolkit.stages.transfers.target_hold import member_parts, month_parts, table

IMPORT = datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
T = pd.DataFrame({
    "legacy_id": ["G1", "G2", "G3", "G1"],
    "type": ["adding", "adding", "adding", "spending"],
    "points": [100, 40, 7, 5],
    "expires_at": ["2026-09-15 00:00:00", "", "2027-06-30 00:00:00", ""],
    "unlock_at": ["", "2026-08-01 00:00:00", "", ""],
})


def parts(**kw):
    args = {"ignored": {"expiry", "lock"}, "days_active": 365, "days_locked": 0, "import_at": IMPORT, "tz": "UTC"}
    return month_parts(T, **{**args, **kw})


def test_every_point_whose_expiry_or_unlock_moves_is_listed_by_its_legacy_month():
    got = table([parts()], import_at=IMPORT, tz="UTC").set_index("month")
    # 365 days after the import: 2027-06-30 23:59:59, the same day as the third lot's legacy expiry
    assert got.loc["2026-09", "legacy_expiring"] == 100 and got.loc["2026-09", "expiry_changed"] == 100
    assert got.loc["never", "legacy_expiring"] == 40 and got.loc["never", "expiry_changed"] == 40
    assert got.loc["2027-06", "target_expiring"] == 147 and got.loc["2027-06", "expiry_changed"] == 0
    assert got.loc["2026-08", "unlock_changed"] == 40  # locked until August in the legacy, available at once
    assert got.loc["at import", "legacy_owes_at_month_end"] == 107 and got.loc["at import", "target_shows_at_month_end"] == 147
    assert got.loc["2026-09", "legacy_owes_at_month_end"] == 47 and got.loc["2026-09", "target_shows_at_month_end"] == 147
    assert got.loc["2027-06", "target_shows_at_month_end"] == 0


def test_locked_days_delay_everything_and_slices_add_up():
    one = parts(days_locked=30)
    split = [month_parts(T.iloc[:2], ignored={"expiry", "lock"}, days_active=365, days_locked=30, import_at=IMPORT,
                         tz="UTC"),
             month_parts(T.iloc[2:], ignored={"expiry", "lock"}, days_active=365, days_locked=30, import_at=IMPORT,
                         tz="UTC")]
    whole, cut = table([one], import_at=IMPORT, tz="UTC"), table(split, import_at=IMPORT, tz="UTC")
    pd.testing.assert_frame_equal(whole, cut)
    got = whole.set_index("month")
    assert got.loc["at import", "target_shows_at_month_end"] == 0  # everything locked 30 days
    assert got.loc["2026-07", "target_shows_at_month_end"] == 147


def test_a_profile_that_ignores_nothing_changes_nothing():
    assert parts(ignored=set()).empty and table([parts(ignored=set())], import_at=IMPORT, tz="UTC").empty


def test_per_member_what_the_target_shows_beside_what_the_legacy_owes():
    args = {"ignored": {"expiry", "lock"}, "days_active": 365, "import_at": IMPORT, "tz": "UTC"}
    got = member_parts(T, days_locked=0, **args).set_index("legacy_id")
    # G1: 100 expiring 2026-09-15 in the legacy, a year later at the target; G2: 40 locked until
    # August and never expiring in the legacy, available at once and expiring in a year at the target;
    # G3: the same day on both sides, so not listed
    assert got.to_dict("index") == {
        "G1": {"legacy_available_at_import": 100, "target_shows_at_import": 100, "expires_earlier": 0,
               "expires_later": 100},
        "G2": {"legacy_available_at_import": 0, "target_shows_at_import": 40, "expires_earlier": 40,
               "expires_later": 0}}
    locked = member_parts(T, days_locked=30, **args).set_index("legacy_id")
    assert locked.loc["G3", "target_shows_at_import"] == 0 and locked.loc["G3", "legacy_available_at_import"] == 7
