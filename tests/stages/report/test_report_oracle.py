"""Stage 05's id membership tests are hash joins now; the old ``np.isin`` over object arrays (a
pairwise loop, hours at a million ids) is kept here as the oracle, on the sample program's real
staging tables and on made-up ids."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import POINTS_SCALE, plain_decimal
from loyalty_toolkit.stages.context import open_stage
from loyalty_toolkit.stages.report import checks as report_checks
from loyalty_toolkit.stages.report import figures as report
from loyalty_toolkit.stages.report import step as s05_report
from loyalty_toolkit.stages.report.figures import _ints, member_of
from loyalty_toolkit.stages.rewards import step as s04_rewards
from loyalty_toolkit.stages.transfers import step as s03_transfers

RUN = "runs/t"


def old_unmapped_lot_points(view: report.RunView) -> Decimal:
    """``report.unmapped_lot_points`` before the hash join."""
    mapped = set(text_column(view.table("member_map"), "legacy_id").tolist())
    lots, bal = view.table("lots"), view.table("lot_balances")
    live = np.isin(text_column(lots, "status"), ("open", "pending"))
    out_lots = live & ~np.isin(text_column(lots, "user_id"), list(mapped))
    out_bal = ~np.isin(text_column(bal, "user_id"), list(mapped))
    total = int(_ints(lots, "remaining_units")[out_lots].sum()) - int(_ints(bal, "deficit_units")[out_bal].sum())
    return plain_decimal(Decimal(total).scaleb(-POINTS_SCALE))


@pytest.fixture(scope="module")
def view(mapped_program, commit_stages, tmp_path_factory) -> report.RunView:
    root = tmp_path_factory.mktemp("oracle") / "program"
    shutil.copytree(mapped_program, root)
    commit_stages(root / "migration.yml", root / RUN, (("transfers", s03_transfers), ("rewards", s04_rewards)))
    return s05_report.read_view(open_stage("report", str(root / "migration.yml"), str(root / RUN)))


def test_member_of_answers_as_np_isin_did_on_the_staging_ids(view):
    mapped = text_column(view.table("member_map"), "legacy_id")
    cases = [(mapped, text_column(view.table("members"), "legacy_id")),
             (text_column(view.table("reward_attributions"), "member_id"), mapped),
             (text_column(view.table("lots"), "user_id"), mapped),
             (text_column(view.table("lot_balances"), "user_id"), mapped)]
    for values, wanted in cases:
        assert len(values) and len(wanted)
        assert np.array_equal(member_of(values, wanted), np.isin(values, list(set(wanted.tolist()))))


def test_member_of_on_made_up_ids_with_misses_empties_and_repeats():
    rng = np.random.default_rng(5)
    pool = np.array([f"G{i:07d}" for i in range(300)] + ["", " G0000001", "g0000001"], dtype=object)
    values, wanted = rng.choice(pool, 2000), rng.choice(pool, 150)
    got = member_of(values, wanted)
    assert 0 < got.sum() < len(values)
    assert np.array_equal(got, np.isin(values, wanted))
    assert not member_of(values, np.array([], dtype=object)).any()
    assert member_of(np.array([], dtype=object), wanted).shape == (0,)


def test_unmapped_lot_points_and_the_checks_agree_with_the_old_code(view):
    assert report.unmapped_lot_points(view) == old_unmapped_lot_points(view)
    # the sample program leaves some members unmapped, so the figure is not trivially zero
    assert report.unmapped_lot_points(view) != 0
    checks = report_checks.cross_stage_checks(view, report.points_conservation(view))
    membership = checks[checks["check"].isin([
        "members: every mapped member was accepted in stage 01",
        "rewards: every attribution belongs to a member mapped in stage 02"])]
    assert len(membership) == 2 and membership["agree"].all()
    mapped = text_column(view.table("member_map"), "legacy_id")
    accepted = set(text_column(view.table("members"), "legacy_id").tolist())
    assert membership["left_value"].tolist() == [
        str(int(np.isin(mapped, list(accepted)).sum())),
        str(int(np.isin(text_column(view.table("reward_attributions"), "member_id"), mapped).sum()))]
