"""rehearse-import: the members XML through the local rehearsal target, replayable by seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sources.target_members import read_target_members
from loyalty_toolkit.stages.mapping.rehearsal import rehearse_import

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "mapping" / "members_0001.xml"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    out = tmp_path / "run" / "output" / "openloyalty"
    out.mkdir(parents=True)
    shutil.copy(FIXTURE, out / "members_0001.xml")
    return tmp_path / "run"


def test_rehearsal_writes_a_result_and_an_export_in_the_targets_format(run_dir):
    r = rehearse_import(run_dir, seed=1)
    result = json.loads(r.import_result.read_text())
    assert result["rehearsal"] is True
    assert result["totalProcessed"] == len(result["items"]) == result["totalSuccess"] + result["totalFailed"]
    export = read_target_members(r.members_export, default_region="FR")
    assert len(export) == result["totalSuccess"]
    ids = {i["processImportResult"]["object"] for i in result["items"] if i["status"] == "success"}
    assert set(export["target_id"]) == ids
    assert "not the platform" in (run_dir / "rehearsal" / "README.txt").read_text()


def test_the_same_seed_replays_byte_for_byte_and_another_seed_does_not(run_dir):
    first = rehearse_import(run_dir, seed=1).members_export.read_bytes()
    assert rehearse_import(run_dir, seed=1).members_export.read_bytes() == first
    assert rehearse_import(run_dir, seed=2).members_export.read_bytes() != first


def test_importing_again_on_top_refuses_every_member_as_the_platform_would(run_dir):
    first = rehearse_import(run_dir, seed=1)
    before = json.loads(first.import_result.read_text())["items"]
    assert any(i["status"] == "success" for i in before)
    again = rehearse_import(run_dir, seed=1, fresh=False)
    result = json.loads(again.import_result.read_text())
    assert result["totalSuccess"] == 0 and result["totalFailed"] == first.totals["totalProcessed"]
    for old, new in zip(before, result["items"]):
        if old["status"] == "success":
            assert new["message"].startswith("Process exception: Customer with such"), new
        else:
            assert new["message"] == old["message"]


def test_no_xml_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="stage 01 must pass first"):
        rehearse_import(tmp_path)
