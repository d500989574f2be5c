"""The runner without kernels: a fake stage execution that commits and records a stage as its
notebook would, for tests of the runner's orchestration (operating errors, partial runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import loyalty_toolkit.runner as runner
from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.store import StagingStore

PROGRAMS = Path(__file__).parent.parent / "fixtures" / "programs"


class _NoKernel:
    def __init__(self, *a, **k) -> None:
        pass

    def close(self) -> None:
        pass


def fake_stage(stage, run_dir, config_path, timeout, show_pii, kernel=None, bar=False):
    """What a passing stage notebook leaves: its ``_stages`` row and its record."""
    with StagingStore.for_run(run_dir) as store:
        store.commit_stage(stage, {}, inputs_fingerprint="i", parameters_fingerprint="p")
    out = run_dir / "stages" / f"{notebook_name(stage)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"name": stage, "status": "passed", "rows_in": 1, "rows_out": 1, "rows_rejected": 0,
                               "gates": [], "totals": {}, "outputs": {}}), encoding="utf-8")
    return True, 0.1, None, ""


@pytest.fixture
def program(tmp_path, monkeypatch) -> Path:
    shutil.copytree(PROGRAMS, tmp_path, dirs_exist_ok=True)
    monkeypatch.setattr(runner, "_run_stage", fake_stage)
    monkeypatch.setattr(runner, "WarmKernel", _NoKernel)
    return tmp_path / "members_only.yml"


@pytest.fixture
def fake_stage_run():
    return fake_stage
