"""The sample program for the oss-3 importer, stages 00-03 through their step modules: stage 01 holds
back the members the importer would refuse, stage 02 counts them, stage 03 itemises their points as
held, writes XML only, and shows per month what the target's global settings change."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.runner.workspace import prepare_demo
from loyalty_toolkit.stages.context import open_stage
from loyalty_toolkit.stages.mapping import step as s02
from loyalty_toolkit.stages.members import step as s01
from loyalty_toolkit.stages.subset import step as s00
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.targets.openloyalty import members_xml_count

RUN = "runs/oss"
SETTINGS = "    settings:\n      points_days_active: 365\n      points_days_locked: 0\n"


def _oss(root: Path, settings: str = SETTINGS) -> Path:
    config = prepare_demo(root, members=200, seed=3)
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"\n    profile: hosted[^\n]*\n", "\n    profile: oss-3\n" + settings, text, count=1)
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def oss_program(tmp_path_factory, commit_stages):
    root = tmp_path_factory.mktemp("oss")
    config = _oss(root)
    commit_stages(config, root / RUN, (("subset", s00), ("members", s01), ("mapping", s02)))
    return config


def test_oss3_holds_back_counts_and_itemises_the_refused_members(oss_program):
    run_dir = oss_program.parent / RUN
    with sqlite3.connect(run_dir / "staging.db") as db:
        held = dict(db.execute("select legacy_id, rule_id from member_holdback").fetchall())
        accepted = db.execute("select count(*) from members").fetchone()[0]
        mapped = db.execute("select count(*) from member_map").fetchone()[0]
    assert "OSS_BIRTHDATE_FORMAT" in held.values()
    xml = sorted((run_dir / "output" / "openloyalty").glob("members_*.xml"))
    assert sum(members_xml_count(p) for p in xml) == accepted - len(held) == mapped

    ctx = open_stage("transfers", str(oss_program), str(run_dir))
    outcome = s03_transfers.run(ctx)
    report = s03_transfers.gate(ctx, outcome)
    assert report.passed, report.to_frame()
    assert [p.suffix for p in outcome.files if p.name.startswith("unit_transfers")] == [".xml"]
    per_member = outcome.held_by_target()
    assert len(per_member) and set(per_member["legacy_id"]) <= set(held)
    assert set(per_member["rule_id"]) <= set(held.values())
    held_rows = outcome.rejects[outcome.rejects["message"].str.startswith("HELD: ")]
    assert len(held_rows) and held_rows["reason_code"].eq("MEMBER_UNMAPPED").all()
    changes = outcome.target_changes()
    assert len(changes) and outcome.target_moved_points() > 0
    assert changes.iloc[0]["month"] == "at import"
    members = outcome.target_member_changes(n=10**6)
    assert len(members) and (members["expires_earlier"] + members["expires_later"]
                             + (members["legacy_available_at_import"] - members["target_shows_at_import"]).abs()).gt(0).all()
    figures = outcome.figures().totals
    assert figures["held_by_target"]["members"] == len(per_member)


def test_oss3_without_the_global_settings_is_a_config_error(tmp_path, commit_stages):
    config = _oss(tmp_path, settings="")
    commit_stages(config, tmp_path / RUN, (("subset", s00), ("members", s01), ("mapping", s02)))
    with pytest.raises(ConfigError) as err:
        s03_transfers.run(open_stage("transfers", str(config), str(tmp_path / RUN)))
    assert err.value.field == "targets.openloyalty.settings" and err.value.line and err.value.column
    assert "ignores each transfer's expiry and lock" in err.value.one_line()
